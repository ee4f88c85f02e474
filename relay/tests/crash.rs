//! Crash safety: the relay binary is killed with SIGKILL at random moments while wallets are bound
//! over HTTP and native peers publish rollouts over gossip, and started again on the same data
//! folder. After every restart: the ledger opens, every binding the relay acknowledged (201/200)
//! is there, every credit it had shown in `/api/peer/<id>` is still there, and nothing is
//! credited twice; at the end every peer re-publishes everything it ever published, and each is
//! credited exactly once per group, and SQLite's integrity check passes.
//!
//! The same run with a chain (a local anvil with the registry deployed, the relay submitting
//! every second, one-second rounds, so kills land between sending a transaction and noting it):
//! at the end every acknowledged binding is registered on chain to its wallet, and every round
//! the ledger holds is recorded on chain once — by one transaction, with exactly the ledger's
//! totals — and marked as submitted.
//!
//! `TABSWARM_CRASH_KILLS` sets the number of kills (5 in the normal test run; the 100-kill runs and
//! their results are in docs/reliability.md). `TABSWARM_CRASH_SEED` picks the kill moments.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use libp2p::identity::Keypair;
use tabswarm_devchain::{Anvil, DEV_KEYS};
use tabswarm_net::{NodeCommand, NodeHandle, native};
use tabswarm_protocol::api::PeerRecord;
use tabswarm_protocol::identity::{BindingDomain, SignedBinding};
use tabswarm_protocol::rollout::RolloutGroup;
use tabswarm_protocol::tasks::{Family, QuestionId};
use tabswarm_relay::chain::{Chain, RecordedRound, record_round_call};
use tabswarm_relay::ledger::Ledger;
use tabswarm_relay::swarm::unix_now;

const WAIT: Duration = Duration::from_secs(60);
/// Completions per published group (what one group credits).
const ROLLOUTS_PER_GROUP: u64 = 2;

type Http = Client<HttpConnector, Full<Bytes>>;

fn http() -> Http {
    Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new())
}

/// (status, body) of a request, or `None` when the relay did not answer (down, or killed mid-way).
async fn request(client: &Http, method: &str, url: &str, body: Option<String>) -> Option<(u16, Vec<u8>)> {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request)).await.ok()?.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes().to_vec();
    Some((status, body))
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("port").port()
}

/// A tiny deterministic generator for the kill moments (xorshift64*).
struct Moments(u64);

impl Moments {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// The relay process, killed when dropped.
struct Relay {
    child: Child,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    data: std::path::PathBuf,
    assets: std::path::PathBuf,
    http: u16,
    tcp: u16,
    webrtc: u16,
    /// Extra options (the chain's).
    extra: Vec<String>,
}

/// A local chain with the registry deployed, and the relay's key for it in a file.
struct OnChain {
    _anvil: Anvil,
    chain: Chain,
    args: Vec<String>,
}

impl OnChain {
    async fn start(dir: &std::path::Path) -> Self {
        let anvil = Anvil::start().unwrap_or_else(|e| panic!("{e}"));
        let chain = Chain::deploy(&anvil.url, DEV_KEYS[0], "tabswarm").await.unwrap_or_else(|e| panic!("deploy: {e}"));
        let key_file = dir.join("chain-key");
        std::fs::write(&key_file, DEV_KEYS[0]).expect("key file");
        let args = vec![
            "--rpc-url".into(),
            anvil.url.clone(),
            "--registry".into(),
            chain.registry().to_string(),
            "--chain-key-file".into(),
            key_file.display().to_string(),
            "--submit-every-secs".into(),
            "1".into(),
            "--round-secs".into(),
            "1".into(),
        ];
        Self { _anvil: anvil, chain, args }
    }
}

impl Setup {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn spawn(&self) -> Relay {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .expect("relay log");
        let child = Command::new(env!("CARGO_BIN_EXE_tabswarm-relay"))
            .args(["--host", "127.0.0.1", "--port", &self.http.to_string()])
            .args(["--p2p-port", &self.tcp.to_string(), "--webrtc-port", &self.webrtc.to_string()])
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--assets")
            .arg(&self.assets)
            // The peers here publish far faster than a tab (the point is many writes between kills).
            .args(["--gossip-per-peer-per-minute", "0"])
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the relay");
        Relay { child }
    }

    /// Waits until the relay answers `/healthz`.
    async fn up(&self, client: &Http, relay: &mut Relay) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = relay.child.try_wait().expect("relay status") {
                let log = std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default();
                panic!("the relay exited ({status}) on restart: {}", tail(&log));
            }
            if let Some((200, _)) = request(client, "GET", &format!("{}/healthz", self.url()), None).await {
                return;
            }
            assert!(Instant::now() < deadline, "the relay did not come up within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn tail(log: &str) -> String {
    log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A publishing peer: its node, wallet and every group it published (by seed).
struct Publisher {
    handle: NodeHandle,
    task: tokio::task::JoinHandle<()>,
    key: Keypair,
    wallet: k256::ecdsa::SigningKey,
    published: BTreeSet<u64>,
    /// The most rollouts the relay has shown credited to it.
    acknowledged: u64,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Publisher {
    fn id(&self) -> String {
        self.key.public().to_peer_id().to_string()
    }

    fn group(&self, seed: u64) -> RolloutGroup {
        RolloutGroup {
            question: QuestionId::new(Family::Add, 2, seed),
            peer: self.id(),
            policy_version: 0,
            completions: vec!["12".into(), "7".into()],
            rewards: Vec::new(),
        }
    }

    /// Publishes the groups of `seeds` in one message (the node drops it while disconnected).
    fn publish(&mut self, seeds: &[u64]) {
        let groups = seeds.iter().map(|s| self.group(*s)).collect();
        // A full queue means the node is busy reconnecting: the group counts as published anyway
        // (the final re-publication sends it again).
        let _ = self.handle.commands.try_send(NodeCommand::Publish(groups));
        self.published.extend(seeds);
    }

    /// Publishes the groups of `seeds` in one message, waiting for room in the node's queue.
    async fn publish_waiting(&mut self, seeds: &[u64]) {
        use futures::SinkExt as _;
        let groups = seeds.iter().map(|s| self.group(*s)).collect();
        self.handle.commands.send(NodeCommand::Publish(groups)).await.expect("node running");
    }

    /// Rollouts its groups are worth, each credited once.
    fn worth(&self) -> u64 {
        self.published.len() as u64 * ROLLOUTS_PER_GROUP
    }

    /// Drains the node's events (it must not block on a full channel).
    fn drain(&mut self) {
        while self.handle.events.try_recv().is_ok() {}
    }
}

fn wallet(seed: &str) -> k256::ecdsa::SigningKey {
    use sha2::Digest as _;
    k256::ecdsa::SigningKey::from_slice(&sha2::Sha256::digest(seed.as_bytes())).expect("key")
}

fn binding(domain: &BindingDomain, wallet: &k256::ecdsa::SigningKey, key: &Keypair) -> SignedBinding {
    native::bind_with_key(domain, wallet, key, 30 * 24 * 3600).expect("binding")
}

async fn post_binding(client: &Http, url: &str, signed: &SignedBinding) -> Option<u16> {
    let body = serde_json::to_string(signed).expect("json");
    request(client, "POST", &format!("{url}/api/bindings"), Some(body)).await.map(|(status, _)| status)
}

/// `/api/peer/<id>`; `None` when the relay does not know the peer or does not answer (after a
/// few tries: a pooled connection to a killed relay fails once).
async fn peer_record(client: &Http, url: &str, id: &str) -> Option<PeerRecord> {
    for _ in 0..3 {
        match request(client, "GET", &format!("{url}/api/peer/{id}"), None).await {
            Some((200, body)) => return Some(serde_json::from_slice(&body).expect("a peer record")),
            Some(_) => return None,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}

/// What the relay acknowledged: bindings (peer id → wallet) and, per publisher, credits shown.
async fn check_acknowledged(
    client: &Http,
    url: &str,
    bound: &BTreeMap<String, String>,
    publishers: &[Publisher],
    after_kill: usize,
) {
    for (peer, address) in bound {
        let record = peer_record(client, url, peer).await;
        let got = record.as_ref().and_then(|r| r.address.clone());
        assert_eq!(
            got.as_deref(),
            Some(address.as_str()),
            "after kill {after_kill}: acknowledged binding of {peer} lost"
        );
    }
    for p in publishers {
        let record = peer_record(client, url, &p.id()).await.expect("a publisher is known");
        assert!(
            record.rollouts >= p.acknowledged,
            "after kill {after_kill}: {} had {} rollouts credited, now {}",
            p.id(),
            p.acknowledged,
            record.rollouts
        );
        assert!(
            record.rollouts <= p.worth(),
            "after kill {after_kill}: {} credited {} rollouts for {} groups",
            p.id(),
            record.rollouts,
            p.published.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_at_random_moments_loses_no_acknowledged_binding_or_credit_and_credits_nothing_twice() {
    killed_at_random_moments(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_at_random_moments_while_submitting_puts_everything_on_chain_once() {
    killed_at_random_moments(true).await;
}

async fn killed_at_random_moments(with_chain: bool) {
    let kills: usize = std::env::var("TABSWARM_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let seed: u64 = std::env::var("TABSWARM_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    let mut moments = Moments(seed | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let assets = dir.path().join("site");
    std::fs::create_dir_all(&assets).expect("site");
    std::fs::write(assets.join("index.html"), "<!doctype html><title>Tabswarm</title>").expect("index");
    let on_chain = if with_chain { Some(OnChain::start(dir.path()).await) } else { None };
    let setup = Setup {
        data: dir.path().join("data"),
        assets,
        http: free_tcp(),
        tcp: free_tcp(),
        webrtc: free_udp(),
        extra: on_chain.as_ref().map(|c| c.args.clone()).unwrap_or_default(),
    };
    let client = http();
    let url = setup.url();

    let mut relay = setup.spawn();
    setup.up(&client, &mut relay).await;
    let domain = native::fetch_identity(&url).await.expect("the binding domain");
    let (addrs, _) = native::fetch_bootstrap(&url).await.expect("bootstrap");
    let relay_addrs: Vec<libp2p::Multiaddr> = addrs.into_iter().filter(native::can_dial).collect();

    // Three peers bound to wallets, publishing for the whole run.
    let mut publishers = Vec::new();
    for i in 0..3 {
        let key = Keypair::generate_ed25519();
        let wallet = wallet(&format!("publisher {i}"));
        let signed = binding(&domain, &wallet, &key);
        assert_eq!(post_binding(&client, &url, &signed).await, Some(201));
        let (mut handle, run) = native::node(key.clone(), relay_addrs.clone(), "cpu").expect("node").spawn();
        // The node publishes once it knows its binding (it announces it to every relay it joins).
        handle.commands.try_send(NodeCommand::Bind(Box::new(signed))).expect("node running");
        publishers.push(Publisher {
            handle,
            task: tokio::spawn(run),
            key,
            wallet,
            published: BTreeSet::new(),
            acknowledged: 0,
        });
    }
    let mut bound: BTreeMap<String, String> = publishers
        .iter()
        .map(|p| (p.id(), alloy_primitives::Address::from_private_key(&p.wallet).to_checksum(None)))
        .collect();
    let mut next_seed = 1u64;
    let mut bindings_refused_by_kill = 0usize;

    for kill in 1..=kills {
        // SIGKILL at a random moment while the work goes on (bindings posted one after another,
        // each peer publishing a new group every 50 ms and now and then an old one again, credits
        // read), so the kill lands in the middle of requests and writes; the work goes on for a
        // moment after it.
        let kill_at = Duration::from_millis(300 + moments.below(1_500));
        let pid = relay.child.id().to_string();
        let killer = tokio::spawn(async move {
            tokio::time::sleep(kill_at).await;
            Command::new("kill").args(["-KILL", &pid]).status().expect("kill")
        });
        let until = Instant::now() + kill_at + Duration::from_millis(200);
        let mut round = 0u64;
        while Instant::now() < until {
            round += 1;
            for p in &mut publishers {
                p.drain();
                let mut seeds = vec![next_seed];
                next_seed += 1;
                if round.is_multiple_of(7) && !p.published.is_empty() {
                    let old: Vec<u64> = p.published.iter().copied().collect();
                    seeds.push(old[moments.below(old.len() as u64) as usize]);
                }
                p.publish(&seeds);
            }
            if round.is_multiple_of(3) {
                let key = Keypair::generate_ed25519();
                let wallet = wallet(&format!("binder {kill} {round}"));
                match post_binding(&client, &url, &binding(&domain, &wallet, &key)).await {
                    Some(201 | 200) => {
                        bound.insert(
                            key.public().to_peer_id().to_string(),
                            alloy_primitives::Address::from_private_key(&wallet).to_checksum(None),
                        );
                    }
                    Some(status) => panic!("a binding refused with {status}"),
                    None => bindings_refused_by_kill += 1,
                }
            }
            if round.is_multiple_of(5) {
                for p in &mut publishers {
                    if let Some(record) = peer_record(&client, &url, &p.id()).await {
                        p.acknowledged = p.acknowledged.max(record.rollouts);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(killer.await.expect("killer").success(), "kill -KILL failed");
        relay.child.wait().expect("reaped");
        // Every fourth restart is killed again while it starts (opening the ledger, migrating).
        if kill.is_multiple_of(4) {
            let mut early = setup.spawn();
            tokio::time::sleep(Duration::from_millis(moments.below(400))).await;
            early.child.kill().expect("SIGKILL");
            early.child.wait().expect("reaped");
        }
        relay = setup.spawn();
        setup.up(&client, &mut relay).await;
        check_acknowledged(&client, &url, &bound, &publishers, kill).await;
    }

    // Every peer sends everything again, in new messages (so gossip's own duplicate filter does
    // not stop them), until the relay has heard each group: then each is credited exactly once.
    let deadline = Instant::now() + WAIT;
    for p in &mut publishers {
        for attempt in 0.. {
            p.drain();
            let mut all: Vec<u64> = p.published.iter().copied().collect();
            // Each attempt cuts the list differently, so every message is new to gossip.
            let shift = attempt % all.len().max(1);
            all.rotate_left(shift);
            for chunk in all.chunks(tabswarm_protocol::wire::MAX_GROUPS_PER_MESSAGE) {
                p.publish_waiting(chunk).await;
                p.drain();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let record = peer_record(&client, &url, &p.id()).await.expect("known");
            let expected = p.worth();
            assert!(
                record.rollouts <= expected,
                "{} credited {} for {} groups",
                p.id(),
                record.rollouts,
                p.published.len()
            );
            if record.rollouts == expected {
                break;
            }
            assert!(Instant::now() < deadline, "{} stays at {} of {expected} rollouts", p.id(), record.rollouts);
        }
    }
    check_acknowledged(&client, &url, &bound, &publishers, kills).await;
    if let Some(on_chain) = &on_chain {
        check_on_chain(&on_chain.chain, &setup.data.join("ledger.sqlite"), &bound).await;
    }
    drop(relay);

    let ledger = rusqlite::Connection::open(setup.data.join("ledger.sqlite")).expect("open the ledger");
    let integrity: String = ledger.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity check");
    assert_eq!(integrity, "ok");
    let groups: u64 =
        ledger.query_row("SELECT COALESCE(SUM(groups), 0) FROM contributions", [], |r| r.get(0)).expect("sum");
    let published: u64 = publishers.iter().map(|p| p.published.len() as u64).sum();
    assert_eq!(groups, published, "each group credited once");
    let on_chain = if with_chain {
        let marks: Vec<String> = ledger
            .prepare("SELECT tx FROM round_submissions WHERE tx LIKE 'refused:%'")
            .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
            .expect("refused rounds");
        format!(", everything on chain once (rounds a restart re-sent and the registry refused: {})", marks.len())
    } else {
        String::new()
    };
    eprintln!(
        "{kills} kills (seed {seed}): {} bindings acknowledged and kept ({bindings_refused_by_kill} cut off by a kill), \
         {published} groups credited once each{on_chain}",
        bound.len()
    );
}

/// Waits for the relay to submit everything, then compares the chain with the ledger: every
/// acknowledged binding registered to its wallet, every round recorded by one transaction with
/// exactly the ledger's totals.
async fn check_on_chain(chain: &Chain, ledger_file: &std::path::Path, bound: &BTreeMap<String, String>) {
    let ledger = Ledger::open(ledger_file).expect("the ledger opens beside the relay");
    let deadline = Instant::now() + WAIT;
    loop {
        let now = unix_now();
        let bindings = ledger.unsubmitted_bindings(now).expect("unsubmitted bindings");
        // Every round, the last one too (the relay submits it once it has closed).
        let rounds = ledger.unsubmitted_rounds(i64::MAX as u64).expect("unsubmitted rounds");
        if bindings.is_empty() && rounds.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} bindings and rounds {rounds:?} still not submitted after {WAIT:?}",
            bindings.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (peer, wallet) in bound {
        let owner = chain.owner_of(peer).await.expect("ownerOf").map(|(owner, _)| owner.to_checksum(None));
        assert_eq!(owner.as_ref(), Some(wallet), "the binding of {peer} on chain");
    }
    let mut recorded: BTreeMap<u64, Vec<RecordedRound>> = BTreeMap::new();
    for event in chain.rounds_recorded().await.expect("RoundRecorded logs") {
        recorded.entry(event.round).or_default().push(event);
    }
    let rounds: Vec<u64> = rusqlite::Connection::open(ledger_file)
        .expect("open the ledger")
        .prepare("SELECT DISTINCT round FROM contributions ORDER BY round")
        .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
        .expect("rounds");
    assert!(!rounds.is_empty(), "no round was credited");
    for round in &rounds {
        let events = recorded.remove(round).unwrap_or_else(|| panic!("round {round} is not on chain"));
        let txs: BTreeSet<_> = events.iter().map(|e| e.tx).collect();
        assert_eq!(txs.len(), 1, "round {round} recorded by {} transactions", txs.len());
        let on_chain: BTreeMap<_, _> = events.iter().map(|e| (e.contributor, (e.rollouts, e.reward_micros))).collect();
        assert_eq!(on_chain.len(), events.len(), "a contributor of round {round} recorded twice");
        let in_ledger: BTreeMap<_, _> = ledger
            .round_totals(*round)
            .expect("round totals")
            .iter()
            .map(|t| (t.address, (t.rollouts, record_round_call(*round, std::slice::from_ref(t)).rewardMicros[0])))
            .collect();
        assert_eq!(on_chain, in_ledger, "round {round}: the chain and the ledger disagree");
    }
    assert!(recorded.is_empty(), "rounds on chain the ledger does not hold: {:?}", recorded.keys());
}

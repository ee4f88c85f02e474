//! The swarm's network in one process: real relays (their libp2p node, as `tabswarm-relay` runs
//! it) and real native peers (`tabswarm_net`, as `tabswarm-peer` runs it) over TCP on
//! loopback. No browser, no page: these run in the plain `cargo test`.

use std::collections::{BTreeSet, HashMap};
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use libp2p::{Multiaddr, PeerId, identity};
use tabswarm_e2e::free_tcp_port;
use tabswarm_net::{ConnectionState, NodeCommand, NodeEvent, NodeHandle, native};
use tabswarm_protocol::api::{Bootstrap, SwarmStats};
use tabswarm_protocol::identity::BindingDomain;
use tabswarm_protocol::rollout::RolloutGroup;
use tabswarm_protocol::tasks::{Family, QuestionId};
use tabswarm_relay::ledger::Ledger;
use tabswarm_relay::swarm::{self, SwarmConfig, SwarmHandle};
use tokio::sync::oneshot;

#[path = "../bare_peer.rs"]
mod bare_peer;

const WAIT: Duration = Duration::from_secs(30);

/// A relay's libp2p node running on the test's runtime; stops when dropped.
struct TestRelay {
    handle: SwarmHandle,
    ledger: Ledger,
    bootstrap: Bootstrap,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestRelay {
    async fn start(config: SwarmConfig) -> Self {
        let ledger = Ledger::in_memory().expect("ledger");
        let (handle, event_loop) =
            swarm::start(&config, ledger.clone()).await.unwrap_or_else(|e| panic!("relay failed to start: {e}"));
        let bootstrap = event_loop.bootstrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(event_loop.run(async move {
            let _ = stopped.await;
        }));
        Self { handle, ledger, bootstrap, stop: Some(stop), task }
    }

    async fn local(dir: &Path) -> Self {
        Self::start(SwarmConfig::local(dir.to_path_buf())).await
    }

    fn addrs(&self) -> Vec<Multiaddr> {
        self.bootstrap.addrs.iter().map(|a| a.parse().expect("multiaddr")).collect()
    }

    fn tcp_addr(&self) -> Multiaddr {
        self.addrs().into_iter().find(native::can_dial).expect("a TCP address")
    }

    async fn stats(&self) -> SwarmStats {
        self.handle.stats().await.expect("relay running")
    }

    /// Waits until the relay's statistics satisfy `ok`.
    async fn wait_for(&self, what: &str, ok: impl Fn(&SwarmStats) -> bool) -> SwarmStats {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if ok(&stats) {
                return stats;
            }
            assert!(tokio::time::Instant::now() < deadline, "relay never reached {what}: {stats:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("event loop");
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A native peer node running on the test's runtime.
struct TestPeer {
    handle: NodeHandle,
    task: tokio::task::JoinHandle<()>,
    received: Vec<(PeerId, RolloutGroup)>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestPeer {
    /// A peer bound to a wallet of its own (as `tabswarm-peer run --wallet-key` binds).
    fn start(relays: Vec<Multiaddr>) -> Self {
        let key = identity::Keypair::generate_ed25519();
        let wallet = test_wallet(&key.public().to_peer_id().to_string());
        Self::start_as(key, Some(&wallet), relays)
    }

    fn start_as(key: identity::Keypair, wallet: Option<&k256::ecdsa::SigningKey>, relays: Vec<Multiaddr>) -> Self {
        let binding = wallet.map(|w| native::bind_with_key(&test_domain(), w, &key, 3600).expect("binding"));
        // A test peer without a wallet publishes anyway: a peer ignoring the relays' policy.
        let node = native::node(key, relays, "cpu").expect("node").share_unbound(wallet.is_none());
        let (mut handle, run) = node.spawn();
        if let Some(binding) = binding {
            handle.commands.try_send(NodeCommand::Bind(Box::new(binding))).expect("node running");
        }
        Self { handle, task: tokio::spawn(run), received: Vec::new() }
    }

    fn id(&self) -> String {
        self.handle.peer_id.to_string()
    }

    /// Reads events until `done` holds, keeping received rollouts; panics after [`WAIT`].
    async fn until(&mut self, what: &str, mut done: impl FnMut(&NodeEvent, &[(PeerId, RolloutGroup)]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.handle.events.next())
                .await
                .unwrap_or_else(|_| panic!("peer {} never saw {what}; received {:?}", self.id(), self.received.len()))
                .expect("node running");
            if let NodeEvent::Rollouts { from, groups } = &event {
                self.received.extend(groups.iter().map(|g| (*from, g.group.clone())));
            }
            if done(&event, &self.received) {
                return;
            }
        }
    }

    async fn connected(&mut self) {
        self.until("a connection", |e, _| matches!(e, NodeEvent::State(ConnectionState::Connected { .. }))).await;
    }

    async fn publish(&mut self, groups: Vec<RolloutGroup>) {
        self.handle.commands.send(NodeCommand::Publish(groups)).await.expect("node running");
    }

    /// Waits until rollouts from every peer in `from` have arrived.
    async fn received_from(&mut self, from: &BTreeSet<String>) {
        let from = from.clone();
        self.until("everyone's rollouts", move |_, got| {
            let seen: BTreeSet<String> = got.iter().map(|(p, _)| p.to_string()).collect();
            from.is_subset(&seen)
        })
        .await;
    }
}

/// What `SwarmConfig::local` relays accept bindings for.
fn test_domain() -> BindingDomain {
    SwarmConfig::local(std::path::PathBuf::new()).domain
}

/// A wallet key derived from `seed` (tests only).
fn test_wallet(seed: &str) -> k256::ecdsa::SigningKey {
    use sha2::Digest as _;
    k256::ecdsa::SigningKey::from_slice(&sha2::Sha256::digest(seed.as_bytes())).expect("key")
}

/// A valid group (any completions are valid; the verifier scores them) by `peer`.
fn group(peer: &str, seed: u64) -> RolloutGroup {
    RolloutGroup {
        question: QuestionId::new(Family::Add, 2, seed),
        peer: peer.to_owned(),
        policy_version: 0,
        completions: vec!["12".into(), "7".into()],
        rewards: Vec::new(),
    }
}

/// Lets gossipsub's heartbeats graft the new connections into the relay's mesh.
async fn let_meshes_form() {
    tokio::time::sleep(tabswarm_protocol::gossip::HEARTBEAT * 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_every_one_of_twenty_peers_through_one_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = TestRelay::local(dir.path()).await;
    let mut peers: Vec<TestPeer> = (0..20).map(|_| TestPeer::start(relay.addrs())).collect();
    for peer in &mut peers {
        peer.connected().await;
    }
    relay.wait_for("20 peers", |s| s.peers == 20).await;
    let_meshes_form().await;
    for (i, peer) in peers.iter_mut().enumerate() {
        let id = peer.id();
        peer.publish(vec![group(&id, i as u64)]).await;
    }
    let everyone: BTreeSet<String> = peers.iter().map(TestPeer::id).collect();
    for peer in &mut peers {
        let others: BTreeSet<String> = everyone.iter().filter(|p| **p != peer.id()).cloned().collect();
        peer.received_from(&others).await;
        // Exactly one group from each other peer: nothing lost, nothing twice, nothing of its own.
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (from, g) in &peer.received {
            assert_eq!(from.to_string(), g.peer, "a group arrived under another peer's name");
            *counts.entry(from.to_string()).or_default() += 1;
        }
        assert_eq!(counts.len(), 19);
        assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    }
    // What the page and the CLI show: every other peer online, one group out, nineteen in.
    for peer in &mut peers {
        peer.until("its counters", |e, _| {
            matches!(e, NodeEvent::Stats(s) if s.peers_online == 19 && s.sent_total == 1 && s.received_total == 19
                && s.sent_per_minute == 1 && s.received_per_minute == 19)
        })
        .await;
    }
    let stats = relay.wait_for("20 accepted groups", |s| s.rollouts_total == 20).await;
    assert_eq!((stats.rollouts_per_minute, stats.duplicates), (20, 0));
    assert!(stats.rejected.values().all(|&n| n == 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_bridge_their_peers() {
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let relay_a = TestRelay::local(dir_a.path()).await;
    let mut config_b = SwarmConfig::local(dir_b.path().to_path_buf());
    config_b.peers = vec![relay_a.tcp_addr()];
    let relay_b = TestRelay::start(config_b).await;
    relay_a.wait_for("relay B", |s| s.relays == 1).await;
    relay_b.wait_for("relay A", |s| s.relays == 1).await;
    // Each relay lists the other for failover.
    let listed = relay_b.handle.bootstrap().await.expect("bootstrap").relays;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].peer_id, relay_a.bootstrap.peer_id);

    let mut on_a = TestPeer::start(relay_a.addrs());
    let mut on_b = TestPeer::start(relay_b.addrs());
    on_a.connected().await;
    on_b.connected().await;
    let_meshes_form().await;
    let (id_a, id_b) = (on_a.id(), on_b.id());
    on_a.publish(vec![group(&id_a, 1)]).await;
    on_b.publish(vec![group(&id_b, 2)]).await;
    on_b.received_from(&BTreeSet::from([id_a.clone()])).await;
    on_a.received_from(&BTreeSet::from([id_b.clone()])).await;
    assert_eq!(on_b.received[0].1, group(&id_a, 1));
    assert_eq!(on_a.received[0].1, group(&id_b, 2));
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("free port").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_relay_keeps_its_address_and_its_peers_come_back() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SwarmConfig::local(dir.path().to_path_buf());
    (config.tcp_port, config.webrtc_port) = (free_tcp_port(), free_udp_port());
    let relay = TestRelay::start(config.clone()).await;
    let before = relay.bootstrap.clone();
    assert!(before.addrs.iter().any(|a| a.contains("/webrtc-direct/certhash/")), "{before:?}");
    let mut a = TestPeer::start(relay.addrs());
    let mut b = TestPeer::start(relay.addrs());
    a.connected().await;
    b.connected().await;

    relay.stop().await;
    a.until("the relay going away", |e, _| matches!(e, NodeEvent::State(ConnectionState::Waiting { .. }))).await;

    let relay = TestRelay::start(config).await;
    assert_eq!(relay.bootstrap, before, "the same peer id, ports and certhash after a restart");
    a.connected().await;
    b.connected().await;
    relay.wait_for("both peers back", |s| s.peers == 2).await;
    let_meshes_form().await;
    let id_b = b.id();
    b.publish(vec![group(&id_b, 3)]).await;
    a.received_from(&BTreeSet::from([id_b])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_spamming_invalid_messages_is_graylisted_while_honest_peers_keep_receiving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = TestRelay::local(dir.path()).await;
    let mut honest_a = TestPeer::start(relay.addrs());
    let mut honest_b = TestPeer::start(relay.addrs());
    honest_a.connected().await;
    honest_b.connected().await;

    // The spammer speaks the protocol (same behaviour, signed messages) but publishes garbage.
    let mut spammer = bare_peer::dial(relay.tcp_addr(), "spammer/0");
    let topic = tabswarm_protocol::gossip::topic();
    bare_peer::until_subscribed(&mut spammer, WAIT).await;
    let_meshes_form().await;

    let spam = |i: u32| format!("{{\"v\":1,\"type\":\"rollouts\",\"groups\":[],\"n\":{i}}}").into_bytes();
    let drive = |spammer: &mut libp2p::Swarm<tabswarm_net::PeerBehaviour>, i: u32| {
        // Publishing only queues; the swarm must be polled to send.
        let _ = spammer.behaviour_mut().gossipsub.publish(topic.clone(), spam(i));
    };
    for i in 0..5 {
        drive(&mut spammer, i);
        let _ = tokio::time::timeout(Duration::from_millis(50), spammer.select_next_some()).await;
    }
    let poll_spammer = async {
        loop {
            spammer.select_next_some().await;
        }
    };
    let stats = tokio::select! {
        stats = relay.wait_for("the spammer graylisted", |s| s.graylisted == 1) => stats,
        () = poll_spammer => unreachable!(),
    };
    let rejected = stats.rejected["group_count"];
    assert!(rejected >= 3, "{stats:?}");
    // Once graylisted, the relay no longer even reads the spammer's messages.
    for i in 5..15 {
        drive(&mut spammer, i);
        let _ = tokio::time::timeout(Duration::from_millis(50), spammer.select_next_some()).await;
    }
    let after = relay.stats().await;
    assert_eq!(after.rejected["group_count"], rejected, "graylisted messages were still processed");
    // The graylist lasts seconds (the invalid count decays by 10 % a second); the spammer leaves so
    // that what follows counts only the honest peers, however slowly this machine runs it.
    drop(spammer);
    relay.wait_for("the spammer gone", |s| s.peers == 2).await;

    // Honest peers were never fed the garbage and still hear each other.
    let id_a = honest_a.id();
    honest_a.publish(vec![group(&id_a, 4)]).await;
    honest_b.received_from(&BTreeSet::from([id_a.clone()])).await;
    assert!(honest_b.received.iter().all(|(from, _)| from.to_string() == id_a));

    // A re-publication of a group already seen is ignored, not forwarded, and not held against anyone.
    honest_a.publish(vec![group(&id_a, 4), group(&id_a, 5)]).await;
    relay.wait_for("the duplicate counted", |s| s.duplicates == 1).await;
    let stats = relay.stats().await;
    assert_eq!(stats.graylisted, 0, "a duplicate is held against no one: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_peer_reads_the_bootstrap_list_and_the_verified_base_from_the_relay_url() {
    use tabswarm_learn::run::{Backend, RunPlan, TrainingRun};
    use tabswarm_model::ModelSize;
    use tabswarm_relay::{Relay, RelayConfig};

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "<!doctype html>").expect("index");
    let device = burn::tensor::Device::flex();
    let run = TrainingRun::fresh(&device, Backend::Cpu, ModelSize::Tiny, RunPlan::solo(1, 1)).expect("model");
    let checkpoint = run.checkpoint().await.expect("checkpoint");
    let base_path = dir.path().join("base.tswm");
    std::fs::write(&base_path, &checkpoint).expect("write base");
    let start = |base: Option<std::path::PathBuf>, data: &Path| RelayConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        assets: dir.path().to_path_buf().into(),
        base_checkpoint: base.map(Into::into),
        model: Default::default(),
        model_from: None,
        swarm: SwarmConfig::local(data.to_path_buf()),
        chain: None,
        embedders: Default::default(),
    };
    let (data_a, data_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let with_base = Relay::bind(&start(Some(base_path), data_a.path())).await.expect("relay");
    let without = Relay::bind(&start(None, data_b.path())).await.expect("relay");
    let (url_a, url_b) = (
        format!("http://{}", with_base.local_addr().expect("addr")),
        format!("http://{}/", without.local_addr().expect("addr")),
    );
    let expected: Vec<Multiaddr> = with_base.bootstrap().addrs.iter().map(|a| a.parse().expect("addr")).collect();
    tokio::spawn(with_base.serve(std::future::pending()));
    tokio::spawn(without.serve(std::future::pending()));

    assert_eq!(native::fetch_bootstrap(&url_a).await.expect("bootstrap"), (expected, false));
    assert_eq!(native::fetch_identity(&url_a).await.expect("identity"), test_domain());
    let (info, bytes) = native::fetch_base(&url_a).await.expect("fetch").expect("a base");
    assert_eq!(bytes, checkpoint);
    assert_eq!(info.bytes, checkpoint.len());
    assert!(native::fetch_base(&url_b).await.expect("fetch").is_none(), "a relay without a base says so");
    let err = native::fetch_bootstrap("https://relay.example/").await.expect_err("https");
    assert!(err.contains("pass its TCP multiaddr"), "{err}");
    let err = native::fetch_bootstrap("not a url").await.expect_err("garbage");
    assert!(err.contains("not a URL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_fails_over_to_the_next_relay_in_its_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = TestRelay::local(dir.path()).await;
    // First in the list: a relay that is not there (nothing listens on that port).
    let gone: Multiaddr =
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", free_tcp_port(), PeerId::random()).parse().expect("addr");
    let mut peer = TestPeer::start(vec![gone.clone(), relay.tcp_addr()]);
    let mut states = Vec::new();
    peer.until("a connection through the second relay", |e, _| {
        if let NodeEvent::State(state) = e {
            states.push(state.clone());
        }
        matches!(e, NodeEvent::State(ConnectionState::Connected { .. }))
    })
    .await;
    assert!(matches!(&states[0], ConnectionState::Connecting { relay } if *relay == gone.to_string()), "{states:?}");
    assert!(
        matches!(&states[1], ConnectionState::Waiting { next, reason, .. }
            if *next == relay.tcp_addr().to_string() && reason.contains("cannot reach the relay")),
        "{states:?}"
    );
    assert!(
        matches!(states.last(), Some(ConnectionState::Connected { relay: r }) if *r == relay.tcp_addr().to_string()),
        "{states:?}"
    );
    relay.wait_for("the peer", |s| s.peers == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bound_peers_are_credited_and_only_with_the_rewards_the_relay_computes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = TestRelay::local(dir.path()).await;
    let mut bound = TestPeer::start(relay.addrs());
    let mut unbound = TestPeer::start_as(identity::Keypair::generate_ed25519(), None, relay.addrs());
    bound.connected().await;
    unbound.connected().await;
    let_meshes_form().await;
    let (bound_id, unbound_id) = (bound.id(), unbound.id());
    let wallet = alloy_primitives::Address::from_private_key(&test_wallet(&bound_id));

    // Honest: no claim, and a claim that matches the verifier. Dishonest: an inflated claim.
    let honest = group(&bound_id, 1);
    let verified = tabswarm_protocol::rollout::score_group(honest.clone()).expect("valid").rewards();
    let claimed = RolloutGroup { rewards: verified.clone(), ..group(&bound_id, 2) };
    let inflated = RolloutGroup { rewards: vec![9.0; 2], ..group(&bound_id, 3) };
    bound.publish(vec![honest]).await;
    bound.publish(vec![claimed]).await;
    bound.publish(vec![inflated]).await;
    for seed in 10..13 {
        unbound.publish(vec![group(&unbound_id, seed)]).await;
    }
    let stats = relay
        .wait_for("the bound peer credited, the rest refused and the unbound peer graylisted", |s| {
            s.rollouts_total >= 2
                && s.rejected.get("reward_mismatch") >= Some(&1)
                && s.rejected.get("unbound_peer") >= Some(&3)
                && s.graylisted >= 1
        })
        .await;
    assert_eq!(stats.rollouts_total, 2, "{stats:?}");

    let board = relay.ledger.leaderboard().expect("leaderboard");
    assert_eq!(board.len(), 1, "{board:?}");
    assert_eq!(board[0].address, wallet.to_checksum(None));
    assert_eq!((board[0].rollouts, board[0].peers), (4, 1));
    let expected: f64 = verified.iter().map(|r| 2.0 * f64::from(*r)).sum();
    assert!((board[0].reward - expected).abs() < 1e-6, "{} != {expected}", board[0].reward);

    let record = relay.ledger.peer(&unbound_id).expect("query").expect("known");
    assert_eq!(record.address, None);
    assert_eq!(record.rollouts, 0);
    assert_eq!(record.rejections[0].kind, "unbound_peer");
    assert!(record.rejections[0].reason.contains("not bound to a wallet"), "{:?}", record.rejections[0]);
    let record = relay.ledger.peer(&bound_id).expect("query").expect("known");
    assert_eq!(record.rejections[0].kind, "reward_mismatch");
    assert!(record.rejections[0].reason.contains("claims reward 9"), "{:?}", record.rejections[0]);
}

/// A relay whose machine hangs keeps its sockets open and answers nothing, so no connection ever
/// fails: the peer notices the unanswered pings and moves to the next relay within
/// `RELAY_SILENCE` (and a healthy relay is never dropped meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_relay_hangs_moves_to_the_next_one_within_the_silence_window() {
    use tabswarm_net::RELAY_SILENCE;

    // Relay A runs on a runtime of its own, on a thread the test then blocks: its event loop stops
    // being polled while the kernel keeps its connections open.
    let dir_a = tempfile::tempdir().expect("tempdir");
    let config_a = SwarmConfig::local(dir_a.path().to_path_buf());
    let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
    let (hang_tx, hang_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let relay = TestRelay::start(config_a).await;
            addrs_tx.send(relay.tcp_addr()).expect("test running");
            while hang_rx.try_recv().is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Hung: nothing on this thread runs again (the process ends with the test).
            loop {
                std::thread::park();
            }
        });
    });
    let a_addr = addrs_rx.recv_timeout(WAIT).expect("relay A started");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let b = TestRelay::local(dir_b.path()).await;
    let mut peer = TestPeer::start(vec![a_addr.clone(), b.tcp_addr()]);
    peer.until(
        "a connection to relay A",
        |e, _| matches!(e, NodeEvent::State(ConnectionState::Connected { relay }) if *relay == a_addr.to_string()),
    )
    .await;

    // Healthy: three silence windows pass without the peer leaving.
    let healthy = tokio::time::timeout(RELAY_SILENCE * 3, async {
        loop {
            match peer.handle.events.next().await {
                Some(NodeEvent::State(state)) => return state,
                Some(_) => {}
                None => panic!("node stopped"),
            }
        }
    })
    .await;
    assert!(healthy.is_err(), "the peer left a healthy relay: {healthy:?}");

    let hung_at = tokio::time::Instant::now();
    hang_tx.send(()).expect("relay A's thread");
    let b_addr = b.tcp_addr().to_string();
    peer.until(
        "a connection to relay B",
        |e, _| matches!(e, NodeEvent::State(ConnectionState::Connected { relay }) if *relay == b_addr),
    )
    .await;
    let moved = hung_at.elapsed();
    assert!(moved <= RELAY_SILENCE + Duration::from_secs(3), "moved on only after {moved:?}");
    b.wait_for("the peer on relay B", |s| s.peers == 1).await;
}

//! The swarm model end to end on loopback: a real relay (`tabswarm_relay::Relay`, as the binary
//! runs it) and native peers using the same calls `tabswarm-peer run` makes
//! (`tabswarm_net::native::{fetch_model, post_update}`, `tabswarm_learn::sync::SwarmSync`). No
//! browser: this runs in the plain `cargo test`.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use tabswarm_learn::run::{Backend, RunPlan, TrainingRun};
use tabswarm_learn::sync::SwarmSync;
use tabswarm_model::ModelSize;
use tabswarm_net::native::{self, UpdateOutcome};
use tabswarm_net::{ConnectionState, NodeEvent, NodeHandle};
use tabswarm_protocol::api::ModelInfo;
use tabswarm_protocol::tasks::Family;
use tabswarm_relay::model::ModelSettings;
use tabswarm_relay::swarm::SwarmConfig;
use tabswarm_relay::{Relay, RelayConfig};

async fn start_relay(assets: &Path, base: &Path, data: &Path) -> String {
    start_relay_from(assets, base, data, None).await
}

/// A relay; with `model_from`, one that mirrors that relay's swarm model.
async fn start_relay_from(assets: &Path, base: &Path, data: &Path, model_from: Option<String>) -> String {
    let mut swarm = SwarmConfig::local(data.to_path_buf());
    // The peers here are not bound to wallets.
    swarm.accept_unbound = true;
    let config = RelayConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        assets: assets.to_path_buf().into(),
        base_checkpoint: Some(base.to_path_buf().into()),
        model_from,
        model: ModelSettings {
            min_updates: 2,
            sync_every: 1,
            heldout: tabswarm_learn::HeldOut { levels: vec![1], per_level: 2 },
            ..ModelSettings::default()
        },
        swarm,
        chain: None,
        embedders: Default::default(),
    };
    let relay = Relay::bind(&config).await.expect("relay");
    let url = format!("http://{}", relay.local_addr().expect("addr"));
    tokio::spawn(relay.serve(std::future::pending()));
    url
}

async fn model(url: &str) -> ModelInfo {
    native::fetch_model(url, false).await.expect("fetch").expect("a swarm model").0
}

async fn wait_for_version(url: &str, number: u64) -> ModelInfo {
    for _ in 0..600 {
        let info = model(url).await;
        if info.number >= number {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("version {number} never came; the relay is at {:?}", model(url).await);
}

/// The first event of `node` that `wanted` accepts; panics after 60 s.
async fn next_event(node: &mut NodeHandle, what: &str, wanted: impl Fn(&NodeEvent) -> bool) -> NodeEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let event = tokio::time::timeout_at(deadline, node.events.next())
            .await
            .unwrap_or_else(|_| panic!("never saw {what}"))
            .expect("node running");
        if wanted(&event) {
            return event;
        }
    }
}

/// A peer: a training run, its key, and where it stands with the swarm model.
struct Peer {
    run: TrainingRun,
    key: libp2p::identity::Keypair,
    sync: SwarmSync,
    /// Whether the last round made an update due (`SwarmSync::round_done`).
    due: bool,
}

impl Peer {
    async fn join(url: &str, seed: u64) -> Self {
        let (info, bytes) = native::fetch_model(url, true).await.expect("fetch").expect("a swarm model");
        let bytes = bytes.expect("the checkpoint");
        let device = burn::tensor::Device::flex();
        let plan = RunPlan { families: vec![Family::Compare], ..RunPlan::solo(100, seed) };
        let run = TrainingRun::from_checkpoint(&bytes, &device, Backend::Cpu, plan).expect("run");
        // Refused unless the parameters are the version's: this is what proves where it starts.
        let sync = SwarmSync::new(&run, &info.hash, info.number, info.sync_every).await.expect("sync");
        Self { run, key: libp2p::identity::Keypair::generate_ed25519(), sync, due: false }
    }

    async fn round_and_update(&mut self, url: &str) -> UpdateOutcome {
        let origin = std::time::Instant::now();
        let now = move || origin.elapsed().as_secs_f64() * 1e3;
        self.run.step(&now, Vec::new()).await.expect("round");
        // Due every round here, once per version; sent regardless (the relay is what is tested).
        self.due = self.sync.round_done();
        let id = self.key.public().to_peer_id().to_string();
        let update = self.sync.update(&self.run, &id).await.expect("update");
        let signed = tabswarm_protocol::update::sign(&update, &self.key).expect("sign");
        native::post_update(url, signed).await.expect("post")
    }
}

/// A folder with a page and a base that answers in the tasks' shape after a few supervised
/// steps, so one round of RL has groups with signal and the updates are not zero.
async fn site_with_base() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "<!doctype html>").expect("index");
    let device = burn::tensor::Device::flex();
    let (_, bytes) = tabswarm_learn::pretrain::quick_base(ModelSize::Tiny, &[Family::Compare], 40, 16, &device)
        .await
        .expect("warm start");
    let base = dir.path().join("base.tswm");
    std::fs::write(&base, bytes).expect("write base");
    (dir, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_starts_from_the_latest_version_and_a_restart_keeps_it() {
    let (dir, base) = site_with_base().await;
    let data = tempfile::tempdir().expect("data");
    let url = start_relay(dir.path(), &base, data.path()).await;

    let v0 = model(&url).await;
    assert_eq!((v0.number, v0.sync_every), (0, 1));
    // A peer on the gossip topic, to hear the relay announce the version it makes.
    let (addrs, _) = native::fetch_bootstrap(&url).await.expect("bootstrap");
    let relay_id = addrs[0].iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id.to_string()),
        _ => None,
    });
    let listener = native::node(libp2p::identity::Keypair::generate_ed25519(), addrs, "cpu").expect("node");
    let (mut listener, listener_run) = listener.spawn();
    let _listener_task = tokio::spawn(listener_run);
    next_event(&mut listener, "a connection", |e| matches!(e, NodeEvent::State(ConnectionState::Connected { .. })))
        .await;

    let (mut a, mut b) = (Peer::join(&url, 1).await, Peer::join(&url, 2).await);
    for peer in [&mut a, &mut b] {
        match peer.round_and_update(&url).await {
            UpdateOutcome::Accepted(accepted) => assert_eq!(accepted.version, v0.hash),
            UpdateOutcome::Refused(e) => panic!("refused: {e:?}"),
        }
        assert!(peer.due, "an update is due every round here");
    }
    let v1 = wait_for_version(&url, 1).await;
    assert_eq!((v1.parent.as_deref(), v1.updates), (Some(v0.hash.as_str()), 2));
    // The relay announced it over gossip: its name, lineage and maker.
    let announced =
        next_event(&mut listener, "a version announcement", |e| matches!(e, NodeEvent::ModelVersion(_))).await;
    let NodeEvent::ModelVersion(announced) = announced else { unreachable!("matched above") };
    assert_eq!(
        (announced.hash.as_str(), announced.number, announced.parent.as_str(), announced.root.as_str()),
        (v1.hash.as_str(), 1, v0.hash.as_str(), v0.hash.as_str())
    );
    assert_eq!((announced.updates, announced.contributors), (2, 2));
    assert_eq!(Some(announced.relay), relay_id);

    // A newcomer starts from version 1, not the base.
    let newcomer = Peer::join(&url, 3).await;
    assert_eq!((newcomer.sync.number, newcomer.sync.version.as_str()), (1, v1.hash.as_str()));
    // A peer that sends for version 0 now is told it is too old, and moves onto version 1. (Its
    // own sync would not send a second update for version 0: one per version.)
    match a.round_and_update(&url).await {
        UpdateOutcome::Refused(e) => assert_eq!(e.error, "too_old", "{e:?}"),
        UpdateOutcome::Accepted(a) => panic!("accepted an update for an old version: {a:?}"),
    }
    assert!(!a.due, "a second update for the same version was due");
    let (info, bytes) = native::fetch_model(&url, true).await.expect("fetch").expect("model");
    let config = a.run.config().clone();
    a.sync.adopt(&mut a.run, &config, &bytes.expect("bytes"), &info.hash, info.number).await.expect("adopt");
    assert_eq!(a.sync.number, 1);
    assert_eq!(tabswarm_protocol::update::params_hash(&a.run.parameters().await.expect("params")), v1.hash);
    // A checkpoint that is not the version's is refused, not trained on.
    let err = a
        .sync
        .adopt(&mut a.run, &config, &std::fs::read(&base).expect("base"), &v1.hash, 1)
        .await
        .expect_err("the base is not version 1");
    assert!(err.to_string().contains("hashing to"), "{err}");

    // Another relay process on the same data folder continues at version 1.
    let again = start_relay(dir.path(), &base, data.path()).await;
    let info = model(&again).await;
    assert_eq!((info.number, info.hash.as_str()), (1, v1.hash.as_str()));
}

/// Two relays, one lineage: relay B mirrors relay A's swarm model (`--model-from`); a peer on
/// each feeds it, both relays name the same version, B serves its checkpoint, and a newcomer on B
/// starts from it. When A is gone, B says so (503) rather than inventing a lineage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_two_relays_feed_one_swarm_model() {
    let (dir, base) = site_with_base().await;
    let (data_a, data_b) = (tempfile::tempdir().expect("data"), tempfile::tempdir().expect("data"));
    let a = start_relay(dir.path(), &base, data_a.path()).await;
    let b = start_relay_from(dir.path(), &base, data_b.path(), Some(a.clone())).await;
    let v0 = model(&a).await;
    assert_eq!(model(&b).await, v0, "B answers with A's swarm model");
    let (mut on_a, mut on_b) = (Peer::join(&a, 1).await, Peer::join(&b, 2).await);
    for (peer, url) in [(&mut on_a, &a), (&mut on_b, &b)] {
        match peer.round_and_update(url).await {
            UpdateOutcome::Accepted(accepted) => assert_eq!(accepted.version, v0.hash),
            UpdateOutcome::Refused(e) => panic!("refused through {url}: {e:?}"),
        }
    }
    let v1 = wait_for_version(&a, 1).await;
    let mut contributors = vec![on_a.key.public().to_peer_id().to_string(), on_b.key.public().to_peer_id().to_string()];
    contributors.sort();
    assert_eq!(v1.contributors, contributors, "one version from the updates of both relays' peers");
    assert_eq!(model(&b).await.hash, v1.hash);
    let newcomer = Peer::join(&b, 3).await;
    assert_eq!((newcomer.sync.number, newcomer.sync.version.as_str()), (1, v1.hash.as_str()));
    // Junk is refused at B and never reaches A.
    match native::post_update(&b, b"junk".to_vec()).await.expect("post") {
        UpdateOutcome::Refused(e) => assert_eq!(e.error, "bad_signature"),
        other => panic!("{other:?}"),
    }
    // A mirror of a relay that is not there answers 503 with the reason.
    let data_c = tempfile::tempdir().expect("data");
    let gone = format!("http://127.0.0.1:{}", tabswarm_e2e::free_tcp_port());
    let c = start_relay_from(dir.path(), &base, data_c.path(), Some(gone)).await;
    let err = native::fetch_model(&c, false).await.expect_err("upstream down");
    assert!(err.contains("503"), "{err}");
}

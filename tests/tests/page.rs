//! The whole walking skeleton in a real browser: the relay serves the built page, headless Chromium
//! (driven through chromedriver) loads it, the worker multiplies on WebGPU (SwiftShader here) and the
//! page must report a result that agrees with the reference.
//!
//! Needs the built page (`cargo xtask build`), `chromium` and `chromedriver`. `cargo xtask test` runs
//! these inside a loopback-only network namespace; they are `#[ignore]`d for a plain `cargo test`.
//! Paths can be changed with `TABSWARM_ASSETS`, `CHROMEDRIVER` and `CHROME`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tabswarm_e2e::{ENABLE_WEBGPU, HEADLESS_CHROME_ARGS, free_tcp_port};
use tabswarm_relay::swarm::SwarmConfig;
use tabswarm_relay::{Relay, RelayConfig};

/// Kills chromedriver and the Chromium it started when a test ends, pass or fail.
///
/// chromedriver runs in a process group of its own, which the browser it launches inherits; killing
/// the group stops exactly those processes. Killing chromedriver alone would orphan Chromium when a
/// test panics before closing its session.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn assets_dir() -> PathBuf {
    std::env::var_os("TABSWARM_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/dist"))
}

/// A relay serving the built page; its data folder lives as long as this does.
struct TestRelay {
    url: String,
    bootstrap: tabswarm_protocol::api::Bootstrap,
    _data: tempfile::TempDir,
}

async fn start_relay() -> TestRelay {
    start_relay_serving(None).await
}

async fn start_relay_serving(base_checkpoint: Option<PathBuf>) -> TestRelay {
    let data = tempfile::tempdir().expect("relay data dir");
    let config = RelayConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        assets: assets_dir(),
        base_checkpoint,
        // The tab has no wallet in these tests: the relay lets unbound peers share.
        swarm: SwarmConfig { accept_unbound: true, ..SwarmConfig::local(data.path().to_path_buf()) },
        chain: None,
    };
    let relay = Relay::bind(&config).await.unwrap_or_else(|e| panic!("relay failed to start: {e}"));
    let addr = relay.local_addr().expect("relay addr");
    let bootstrap = relay.bootstrap();
    tokio::spawn(relay.serve(std::future::pending()));
    TestRelay { url: format!("http://{addr}"), bootstrap, _data: data }
}

async fn start_browser(extra_args: &[&str]) -> (Driver, Client) {
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chrome = std::env::var("CHROME").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let port = free_tcp_port();
    let child = Command::new(&chromedriver)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e} (Debian: apt-get install chromium-driver)"));
    let driver = Driver(child);

    let mut args = HEADLESS_CHROME_ARGS.to_vec();
    args.push("--window-size=900,560");
    args.extend_from_slice(extra_args);
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": chrome, "args": args }));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) if Instant::now() > deadline => panic!("chromedriver on port {port} did not start a browser: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Waits until `#status` leaves the `pending` state; returns (state, status text, adapter text).
async fn settled_status(client: &Client, timeout: Duration) -> (String, String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = client.find(Locator::Id("status")).await.expect("#status exists");
        let state = status.attr("data-state").await.expect("attr").unwrap_or_default();
        let text = status.text().await.expect("status text");
        if state != "pending" {
            let adapter = client.find(Locator::Id("adapter")).await.expect("#adapter").text().await.expect("text");
            return (state, text, adapter);
        }
        assert!(Instant::now() < deadline, "page still pending after {timeout:?}: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until element `id` leaves `data-state="pending"`: (state, text).
async fn settled(client: &Client, id: &str, timeout: Duration) -> (String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let el = client.find(Locator::Id(id)).await.expect("element");
        let state = el.attr("data-state").await.expect("attr").unwrap_or_default();
        if state != "pending" {
            return (state, el.text().await.expect("text"));
        }
        assert!(Instant::now() < deadline, "#{id} still pending after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What `#backend` says: (the chosen backend, the sentence explaining it).
async fn backend_choice(client: &Client) -> (String, String) {
    let el = client.find(Locator::Id("backend")).await.expect("#backend");
    (el.attr("data-state").await.expect("attr").unwrap_or_default(), el.text().await.expect("text"))
}

fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&dir).expect("create target/e2e");
    dir
}

/// Keeps what the user would have seen in `target/e2e/` (a person can look at it after a run).
async fn save_screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(artifacts_dir().join(name), png).expect("write screenshot");
}

/// Keeps what the page said (the in-browser timing quoted in docs/benchmarks.md).
fn save_text(name: &str, text: &str) {
    std::fs::write(artifacts_dir().join(name), text).expect("write page text");
}

#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn page_runs_the_wgsl_kernel_on_webgpu_and_checks_it() {
    let relay = start_relay().await;
    let base = &relay.url;
    let (_driver, client) = start_browser(&[ENABLE_WEBGPU]).await;
    client.goto(&format!("{base}/")).await.expect("load page");
    let (state, text, adapter) = settled_status(&client, Duration::from_secs(180)).await;
    save_screenshot(&client, "page-webgpu.png").await;
    let (backend, why) = backend_choice(&client).await;
    let (fused_state, fused) = settled(&client, "fused", Duration::from_secs(300)).await;
    save_text("page-webgpu.txt", &format!("{text}\n{adapter}\n{why}\n{fused}\n"));
    client.close().await.expect("close browser");
    // Headless Chromium's WebGPU is SwiftShader, a software renderer: the page must prefer the CPU.
    assert_eq!(backend, "cpu", "{why}");
    assert!(why.contains("draws with the CPU, not a GPU"), "{why}");
    // The fused kernels, checked against their references on Chromium's WebGPU.
    assert_eq!(fused_state, "ok", "{fused}");
    assert!(fused.contains("144 of 144 sampled tokens match"), "{fused}");
    assert_eq!(state, "ok", "status: {text}; adapter: {adapter}");
    assert!(text.starts_with("WebGPU OK — 512×512 matmul "), "{text}");
    assert!(text.ends_with(" GFLOP/s"), "{text}");
    assert!(adapter.starts_with("WebGPU adapter: "), "{adapter}");
}

#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn page_without_webgpu_says_so_and_uses_the_cpu_path() {
    let relay = start_relay().await;
    let base = &relay.url;
    let (_driver, client) = start_browser(&["--disable-features=WebGPU"]).await;
    client.goto(&format!("{base}/?n=96")).await.expect("load page");
    let (state, text, adapter) = settled_status(&client, Duration::from_secs(120)).await;
    save_screenshot(&client, "page-cpu.png").await;
    let (backend, why) = backend_choice(&client).await;
    save_text("page-cpu.txt", &format!("{text}\n{adapter}\n{why}\n"));
    client.close().await.expect("close browser");
    assert_eq!(backend, "cpu", "{why}");
    assert!(why.contains("no WebGPU adapter"), "{why}");
    assert_eq!(state, "cpu", "status: {text}; adapter: {adapter}");
    assert!(text.starts_with("CPU path OK — 96×96 matmul "), "{text}");
    assert!(adapter.contains("CPU path will be used"), "{adapter}");
}

#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn a_bad_size_is_explained_and_the_default_used() {
    let relay = start_relay().await;
    let base = &relay.url;
    let (_driver, client) = start_browser(&[ENABLE_WEBGPU]).await;
    client.goto(&format!("{base}/?n=banana")).await.expect("load page");
    let (state, text, _) = settled_status(&client, Duration::from_secs(180)).await;
    let note = client.find(Locator::Id("note")).await.expect("#note").text().await.expect("text");
    client.close().await.expect("close browser");
    assert_eq!(note, "?n=banana is not a size from 1 to 2048; using 512.");
    assert_eq!(state, "ok", "{text}");
}

/// Clicks "Save the model" and waits for the download link: (link text, href, bytes).
async fn save_model_in_page(client: &Client, timeout: Duration) -> (String, String, usize) {
    let before = client.find(Locator::Id("train-download")).await.expect("link").attr("href").await.expect("attr");
    client.find(Locator::Id("train-save")).await.expect("save button").click().await.expect("click");
    let deadline = Instant::now() + timeout;
    loop {
        let link = client.find(Locator::Id("train-download")).await.expect("#train-download");
        let href = link.attr("href").await.expect("attr");
        if href.is_some() && href != before {
            let bytes = link.attr("data-bytes").await.expect("attr").and_then(|b| b.parse().ok()).unwrap_or(0);
            return (link.text().await.expect("text"), href.unwrap_or_default(), bytes);
        }
        let status = client.find(Locator::Id("train-save-status")).await.expect("status").text().await.expect("text");
        assert!(Instant::now() < deadline, "no download link after {timeout:?}; the page says: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A small base checkpoint, pretrained here the way `tabswarm-peer pretrain` makes the real one.
fn make_base(dir: &std::path::Path) -> (PathBuf, String) {
    use tabswarm_client::learn::pretrain::{PretrainConfig, pretrain};
    use tabswarm_client::model::checkpoint;
    let config = PretrainConfig { max_steps: 150, eval_every: 50, eval_per_family: 4, ..PretrainConfig::default() };
    let model_config = tabswarm_client::training::model_config(tabswarm_client::report::ModelSize::Tiny);
    let device = burn::tensor::Device::flex();
    let (model, report) =
        pollster::block_on(pretrain(&model_config, &config, &device, &mut |_, _, _| {})).expect("pretrain");
    let bytes = checkpoint::save(&model, &model_config, report.steps).expect("save");
    let sha = checkpoint::read_header(&bytes).expect("header").0.payload_sha256;
    let path = dir.join("base.tswm");
    std::fs::write(&path, bytes).expect("write base");
    (path, sha)
}

/// What `#train-status` says when a learning run has ended.
#[derive(Debug)]
struct Learned {
    text: String,
    round: String,
    reward: String,
    policy_version: String,
}

/// Clicks a learning button and waits for the run to finish.
async fn train_in_page(client: &Client, button: &str, timeout: Duration) -> Learned {
    client.find(Locator::Id(button)).await.expect("train button").click().await.expect("click");
    let deadline = Instant::now() + timeout;
    loop {
        let status = client.find(Locator::Id("train-status")).await.expect("#train-status");
        let state = status.attr("data-state").await.expect("attr").unwrap_or_default();
        let text = status.text().await.expect("text");
        match state.as_str() {
            "done" => {
                let attr = async |name: &str| status.attr(name).await.expect("attr").unwrap_or_default();
                return Learned {
                    round: attr("data-round").await,
                    reward: attr("data-reward").await,
                    policy_version: attr("data-policy-version").await,
                    text,
                };
            }
            "error" => panic!("learning failed in the page: {text}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "learning still {state} after {timeout:?}: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn the_tab_learns_from_the_verified_base_on_webgpu_and_on_the_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (base_path, base_sha) = make_base(dir.path());
    let relay = start_relay_serving(Some(base_path)).await;
    let base = &relay.url;
    let (_driver, client) = start_browser(&[ENABLE_WEBGPU]).await;
    client.goto(&format!("{base}/?n=64&rounds=3")).await.expect("load page");
    let (state, text, _) = settled_status(&client, Duration::from_secs(120)).await;
    assert_eq!(state, "ok", "{text}");
    let mut results = Vec::new();
    for button in ["train-webgpu", "train-cpu"] {
        let learned = train_in_page(&client, button, Duration::from_secs(400)).await;
        let origin = client.find(Locator::Id("base")).await.expect("#base");
        let origin_state = origin.attr("data-state").await.expect("attr").unwrap_or_default();
        let origin_sha = origin.attr("data-sha256").await.expect("attr").unwrap_or_default();
        let origin_text = origin.text().await.expect("text");
        let rewards = client.find(Locator::Id("train-rewards")).await.expect("rewards").text().await.expect("text");
        let mut families = Vec::new();
        for row in client.find_all(Locator::Css("#train-families tr[data-family]")).await.expect("rows") {
            let family = row.attr("data-family").await.expect("attr").unwrap_or_default();
            let accuracy: f32 =
                row.attr("data-accuracy").await.expect("attr").and_then(|a| a.parse().ok()).unwrap_or(-1.0);
            families.push((family, accuracy));
        }
        // Saving reads the parameters back asynchronously: on WebGPU a blocking read would panic.
        let (link, href, bytes) = save_model_in_page(&client, Duration::from_secs(120)).await;
        save_text(
            &format!("{button}.txt"),
            &format!("{origin_text}\n{}\n{rewards}\n{families:?}\n{link}\n", learned.text),
        );
        assert!(href.starts_with("blob:"), "{button}: download link {href}");
        assert!(bytes > 10_000, "{button}: a checkpoint of {bytes} bytes");
        assert!(link.contains(&format!("step {}", learned.policy_version)), "{button}: {link}");
        results.push((button, learned, origin_state, origin_sha, rewards, families));
    }
    save_screenshot(&client, "page-learned.png").await;
    client.close().await.expect("close browser");
    for (button, learned, origin_state, origin_sha, rewards, families) in results {
        assert_eq!((origin_state.as_str(), origin_sha.as_str()), ("verified", base_sha.as_str()), "{button}");
        assert!(learned.text.contains("round 3/3"), "{button}: {}", learned.text);
        assert_eq!(learned.round, "3", "{button}");
        let reward: f32 = learned.reward.parse().expect("reward");
        assert!((0.0..=1.1).contains(&reward), "{button}: reward {reward}");
        assert!(rewards.starts_with("Reward by round (last 3"), "{button}: {rewards}");
        // Every family of the suite, with an accuracy the verifier measured.
        assert_eq!(families.len(), 8, "{button}: {families:?}");
        assert!(families.iter().all(|(_, a)| (0.0..=1.0).contains(a)), "{button}: {families:?}");
        // The pretrained base answers some questions right (the reverse family is learnt first).
        assert!(families.iter().any(|(_, a)| *a > 0.0), "{button}: the base never answers right: {families:?}");
    }
}

/// Reads an attribute of an element, empty when absent.
async fn attr_of(client: &Client, id: &str, name: &str) -> String {
    let el = client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    el.attr(name).await.expect("attr").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn a_tab_and_a_native_peer_exchange_rollouts_through_the_relay() {
    use futures::{SinkExt, StreamExt};
    use tabswarm_client::net::{ConnectionState, NodeCommand, NodeEvent, native};
    use tabswarm_protocol::rollout::RolloutGroup;
    use tabswarm_protocol::tasks::{Family, QuestionId};

    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let (base_path, _) = make_base(dir.path());
    let relay = start_relay_serving(Some(base_path)).await;
    let addrs = relay.bootstrap.addrs.iter().map(|a| a.parse().expect("multiaddr"));
    let node = native::node(libp2p::identity::Keypair::generate_ed25519(), addrs, "cpu")
        .expect("native node")
        .share_unbound(relay.bootstrap.accepts_unbound);
    let (mut native_peer, run) = node.spawn();
    tokio::spawn(run);
    let native_id = native_peer.peer_id.to_string();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), native_peer.events.next()).await;
        if let Ok(Some(NodeEvent::State(ConnectionState::Connected { .. }))) = event {
            break;
        }
        assert!(event.is_ok(), "the native peer never connected");
    }
    // The native peer keeps publishing valid groups (any completions: the receiver scores them).
    let mut commands = native_peer.commands.clone();
    let publisher = tokio::spawn(async move {
        for seed in 0.. {
            let group = RolloutGroup {
                question: QuestionId::new(Family::Compare, 1, seed),
                peer: native_id.clone(),
                policy_version: 0,
                completions: vec!["<".into(), ">".into(), "=".into(), "x".into()],
                rewards: Vec::new(),
            };
            if commands.send(NodeCommand::Publish(vec![group])).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // Loopback WebRTC in headless Chromium needs loopback candidates allowed and not hidden behind mDNS.
    let (_driver, client) =
        start_browser(&["--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]).await;
    client.goto(&format!("{}/?n=64&rounds=60", relay.url)).await.expect("load page");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = attr_of(&client, "net", "data-state").await;
        if state == "connected" {
            break;
        }
        let text = client.find(Locator::Id("net")).await.expect("#net").text().await.expect("text");
        assert!(Instant::now() < deadline, "the tab never joined the swarm: {state}: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let tab_id = attr_of(&client, "net", "data-peer-id").await;
    assert!(attr_of(&client, "net", "data-relay").await.contains("/webrtc-direct/"));
    // No WebGPU flag: the check runs on the CPU path, and so does learning.
    let (state, text, _) = settled_status(&client, Duration::from_secs(120)).await;
    assert_eq!(state, "cpu", "{text}");
    let learned = train_in_page(&client, "train-cpu", Duration::from_secs(300)).await;

    // The tab trained on groups the native peer made, after verifying them itself…
    let shared = learned.text.rsplit(" · ").next().unwrap_or_default().to_owned();
    assert!(shared.starts_with("trained on ") && shared.ends_with(" groups from other peers"), "{}", learned.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    let received_total = loop {
        let n: u64 = attr_of(&client, "net-stats", "data-received-total").await.parse().unwrap_or(0);
        let sent: u64 = attr_of(&client, "net-stats", "data-sent-total").await.parse().unwrap_or(0);
        if n > 0 && sent > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "the page's counters never moved: {n} in, {sent} out");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    save_screenshot(&client, "page-swarm.png").await;
    // …and the native peer received the tab's groups, under the tab's peer id.
    let mut from_tab = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while from_tab == 0 {
        match tokio::time::timeout_at(deadline, native_peer.events.next()).await {
            Ok(Some(NodeEvent::Rollouts { from, groups })) if from.to_string() == tab_id => {
                assert!(groups.iter().all(|g| g.group.peer == tab_id && g.group.completions.len() == 8));
                from_tab += groups.len();
            }
            Ok(Some(_)) => {}
            other => panic!("the native peer got nothing from the tab {tab_id}: {other:?}"),
        }
    }
    publisher.abort();
    client.close().await.expect("close browser");
    assert!(received_total > 0 && from_tab > 0);
}

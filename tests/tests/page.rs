//! The whole walking skeleton in a real browser: the relay serves the built page, headless Chromium
//! (driven through chromedriver) loads it, the worker multiplies on WebGPU (SwiftShader here) and the
//! page must report a result that agrees with the reference.
//!
//! Needs the built page (`cargo xtask build`), `chromium` and `chromedriver`. `cargo xtask test` runs
//! these inside a loopback-only network namespace; they are `#[ignore]`d for a plain `cargo test`.
//! Paths can be changed with `TABSWARM_ASSETS`, `CHROMEDRIVER` and `CHROME`.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tabswarm_client::ui::{data, embed, id};
use tabswarm_e2e::ENABLE_WEBGPU;
use tabswarm_protocol::tasks::MAX_DIFFICULTY;

#[path = "../browser.rs"]
mod browser;
use browser::*;

/// Waits until `#status` leaves the `pending` state; returns (state, status text, adapter text).
async fn settled_status(client: &Client, timeout: Duration) -> (String, String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = client.find(Locator::Id(id::STATUS)).await.expect("#status exists");
        let state = status.attr(data::STATE).await.expect("attr").unwrap_or_default();
        let text = status.text().await.expect("status text");
        if state != "pending" {
            let adapter = client.find(Locator::Id(id::ADAPTER)).await.expect("#adapter").text().await.expect("text");
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
        let state = el.attr(data::STATE).await.expect("attr").unwrap_or_default();
        if state != "pending" {
            return (state, el.text().await.expect("text"));
        }
        assert!(Instant::now() < deadline, "#{id} still pending after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What `#backend` says: (the chosen backend, the sentence explaining it).
async fn backend_choice(client: &Client) -> (String, String) {
    let el = client.find(Locator::Id(id::BACKEND)).await.expect("#backend");
    (el.attr(data::STATE).await.expect("attr").unwrap_or_default(), el.text().await.expect("text"))
}

#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn page_runs_the_wgsl_kernel_on_webgpu_and_checks_it() {
    let relay = start_relay().await;
    let base = &relay.url;
    let (_driver, client) = start_browser(&[ENABLE_WEBGPU]).await;
    open_page(&client, &format!("{base}/")).await;
    let (state, text, adapter) = settled_status(&client, Duration::from_secs(180)).await;
    save_screenshot(&client, "page-webgpu.png").await;
    let (backend, why) = backend_choice(&client).await;
    let (fused_state, fused) = settled(&client, id::FUSED, Duration::from_secs(300)).await;
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
    open_page(&client, &format!("{base}/?n=96")).await;
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
    open_page(&client, &format!("{base}/?n=banana")).await;
    let (state, text, _) = settled_status(&client, Duration::from_secs(180)).await;
    let note = client.find(Locator::Id(id::NOTE)).await.expect("#note").text().await.expect("text");
    client.close().await.expect("close browser");
    assert_eq!(note, "?n=banana is not a size from 1 to 2048; using 512.");
    assert_eq!(state, "ok", "{text}");
}

/// Clicks "Save the model" and waits for the download link: (link text, href, bytes).
async fn save_model_in_page(client: &Client, timeout: Duration) -> (String, String, usize) {
    let before = client.find(Locator::Id(id::TRAIN_DOWNLOAD)).await.expect("link").attr("href").await.expect("attr");
    client.find(Locator::Id(id::TRAIN_SAVE)).await.expect("save button").click().await.expect("click");
    let deadline = Instant::now() + timeout;
    loop {
        let link = client.find(Locator::Id(id::TRAIN_DOWNLOAD)).await.expect("#train-download");
        let href = link.attr("href").await.expect("attr");
        if href.is_some() && href != before {
            let bytes = link.attr(data::BYTES).await.expect("attr").and_then(|b| b.parse().ok()).unwrap_or(0);
            return (link.text().await.expect("text"), href.unwrap_or_default(), bytes);
        }
        let status = client.find(Locator::Id(id::TRAIN_SAVE_STATUS)).await.expect("status").text().await.expect("text");
        assert!(Instant::now() < deadline, "no download link after {timeout:?}; the page says: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
    learned(client, timeout).await
}

/// Waits for the page's learning run to end.
async fn learned(client: &Client, timeout: Duration) -> Learned {
    let deadline = Instant::now() + timeout;
    loop {
        let status = client.find(Locator::Id(id::TRAIN_STATUS)).await.expect("#train-status");
        let state = status.attr(data::STATE).await.expect("attr").unwrap_or_default();
        let text = status.text().await.expect("text");
        match state.as_str() {
            "done" => {
                let attr = async |name: &str| status.attr(name).await.expect("attr").unwrap_or_default();
                return Learned {
                    round: attr(data::ROUND).await,
                    reward: attr(data::REWARD).await,
                    policy_version: attr(data::POLICY_VERSION).await,
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
    open_page(&client, &format!("{base}/?n=64&rounds=3")).await;
    let (state, text, _) = settled_status(&client, Duration::from_secs(120)).await;
    assert_eq!(state, "ok", "{text}");
    let mut results = Vec::new();
    for button in [id::TRAIN_WEBGPU, id::TRAIN_CPU] {
        let learned = train_in_page(&client, button, Duration::from_secs(400)).await;
        let origin = client.find(Locator::Id(id::BASE)).await.expect("#base");
        let origin_state = origin.attr(data::STATE).await.expect("attr").unwrap_or_default();
        let origin_sha = origin.attr(data::SHA256).await.expect("attr").unwrap_or_default();
        let origin_text = origin.text().await.expect("text");
        let sized = client.find(Locator::Id(id::ROUND_SIZE)).await.expect("#round-size");
        let round_size = (
            sized.attr(data::STATE).await.expect("attr").unwrap_or_default(),
            sized.attr(data::QUESTIONS).await.expect("attr").unwrap_or_default(),
            sized.text().await.expect("text"),
        );
        let rewards = client.find(Locator::Id(id::TRAIN_REWARDS)).await.expect("rewards").text().await.expect("text");
        let mut families = Vec::new();
        for row in
            client.find_all(Locator::Css(&format!("#{} tr[{}]", id::TRAIN_FAMILIES, data::FAMILY))).await.expect("rows")
        {
            let family = row.attr(data::FAMILY).await.expect("attr").unwrap_or_default();
            let accuracy: f32 =
                row.attr(data::ACCURACY).await.expect("attr").and_then(|a| a.parse().ok()).unwrap_or(-1.0);
            let level = row.find(Locator::Css("td.level")).await.expect("level cell").text().await.expect("text");
            families.push((family, accuracy, level));
        }
        // Saving reads the parameters back asynchronously: on WebGPU a blocking read would panic.
        let (link, href, bytes) = save_model_in_page(&client, Duration::from_secs(120)).await;
        save_text(
            &format!("{button}.txt"),
            &format!("{origin_text}\n{}\n{}\n{rewards}\n{families:?}\n{link}\n", round_size.2, learned.text),
        );
        assert!(href.starts_with("blob:"), "{button}: download link {href}");
        assert!(bytes > 10_000, "{button}: a checkpoint of {bytes} bytes");
        assert!(link.contains(&format!("step {}", learned.policy_version)), "{button}: {link}");
        results.push((button, learned, origin_state, origin_sha, rewards, families, round_size));
    }
    save_screenshot(&client, "page-learned.png").await;
    client.close().await.expect("close browser");
    for (button, learned, origin_state, origin_sha, rewards, families, (size_state, questions, why)) in results {
        assert_eq!((origin_state.as_str(), origin_sha.as_str()), ("verified", base_sha.as_str()), "{button}");
        // The page says how big a round this device got, and why: the CPU keeps the swarm's round
        // unmeasured; WebGPU (SwiftShader here, a CPU underneath) is measured, and whatever its
        // timing gave lies within the bounds.
        assert_eq!(size_state, "chosen", "{button}: {why}");
        let questions: usize = questions.parse().expect("data-questions");
        assert!(why.contains(&format!("{questions} questions a round")), "{button}: {why}");
        if button == id::TRAIN_CPU {
            assert_eq!(questions, 8, "{button}: {why}");
            assert!(why.contains("on the CPU every row costs its own arithmetic"), "{button}: {why}");
        } else {
            assert!([8, 16, 32, 64].contains(&questions), "{button}: {why}");
            assert!(why.contains("ms for 64") || why.contains("ms against"), "{button}: measured: {why}");
        }
        assert!(learned.text.contains("round 3/3"), "{button}: {}", learned.text);
        assert_eq!(learned.round, "3", "{button}");
        let reward: f32 = learned.reward.parse().expect("reward");
        assert!((0.0..=1.1).contains(&reward), "{button}: reward {reward}");
        assert!(rewards.starts_with("Reward by round (last 3"), "{button}: {rewards}");
        // Every family of the suite, with an accuracy the verifier measured.
        assert_eq!(families.len(), 8, "{button}: {families:?}");
        assert!(families.iter().all(|(_, a, _)| (0.0..=1.0).contains(a)), "{button}: {families:?}");
        // The pretrained base answers some questions right (the reverse family is learnt first).
        assert!(families.iter().any(|(_, a, _)| *a > 0.0), "{button}: the base never answers right: {families:?}");
        // The tab runs the curriculum: every family shows the level it is asked at, 1-5 (none can
        // be mastered in three rounds, and a curriculum starts every family at level 1).
        assert!(
            families.iter().all(|(_, _, level)| level.parse::<u8>().is_ok_and(|l| (1..=MAX_DIFFICULTY).contains(&l))),
            "{button}: {families:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn a_tab_and_a_native_peer_exchange_rollouts_through_the_relay() {
    use futures::{SinkExt, StreamExt};
    use tabswarm_net::{ConnectionState, NodeCommand, NodeEvent, native};
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
    let opened = Instant::now();
    open_page(&client, &format!("{}/?n=64&rounds=60", relay.url)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = attr_of(&client, id::NET, data::STATE).await;
        if state == "connected" {
            break;
        }
        let text = net_text(&client).await;
        assert!(Instant::now() < deadline, "the tab never joined the swarm: {state}: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // "connected" is the relay's subscription heard over the relay's own gossip stream. Before the
    // libp2p-webrtc-websys patch (third_party/README.md) the relay opened that stream before the
    // tab listened for new channels, on every connection, and its negotiation waited out libp2p's
    // 10 s timeout: a tab joined 10 s after it could have. Page load, wasm start and the dial take
    // about 3 s here (13 s with the stall); 11 s leaves room for a slow machine, not for the stall.
    let joined_after = opened.elapsed();
    assert!(joined_after < Duration::from_secs(11), "the tab joined the swarm {joined_after:?} after the page opened");
    let tab_id = attr_of(&client, id::NET, data::PEER_ID).await;
    assert!(attr_of(&client, id::NET, data::RELAY).await.contains("/webrtc-direct/"));
    // No wallet in this browser: the page says so, and what contributing anonymously forgoes.
    let (wallet_state, wallet_text) = settled(&client, id::WALLET, Duration::from_secs(10)).await;
    assert_eq!(wallet_state, "none", "{wallet_text}");
    assert!(
        wallet_text.contains("contribute anonymously") && wallet_text.contains("nothing is credited"),
        "{wallet_text}"
    );
    let (binding_state, binding_text) = settled(&client, id::BINDING, Duration::from_secs(10)).await;
    assert_eq!(binding_state, "unbound", "{binding_text}");
    assert!(binding_text.contains("anonymously, credited to nobody"), "{binding_text}");
    // No WebGPU flag: the check runs on the CPU path, and so does learning.
    let (state, text, _) = settled_status(&client, Duration::from_secs(120)).await;
    assert_eq!(state, "cpu", "{text}");
    let learned = train_in_page(&client, id::TRAIN_CPU, Duration::from_secs(300)).await;

    // The tab trained on groups the native peer made, after verifying them itself…
    let shared = learned.text.rsplit(" · ").next().unwrap_or_default().to_owned();
    assert!(shared.starts_with("trained on ") && shared.ends_with(" groups from other peers"), "{}", learned.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    let received_total = loop {
        let n: u64 = attr_of(&client, id::NET_STATS, data::RECEIVED_TOTAL).await.parse().unwrap_or(0);
        let sent: u64 = attr_of(&client, id::NET_STATS, data::SENT_TOTAL).await.parse().unwrap_or(0);
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

/// A test wallet extension: announces itself by EIP-6963 and answers EIP-1193 requests for one
/// of anvil's unlocked accounts. Like a real extension, it does not call the chain from the page
/// (whose CSP allows only the relay): requests wait in `window.__testWallet` until
/// [`serve_test_wallet`] forwards them to anvil, whose node makes the real secp256k1 signatures
/// (`eth_signTypedData_v4`). The test can also refuse the next call of a method (as a contributor
/// clicking "Reject": code 4001), emit events and list the requests made. The script is the
/// fixture `tests/fixtures/test-wallet.js`.
fn test_wallet_script(account: &str) -> String {
    const SCRIPT: &str = include_str!("../fixtures/test-wallet.js");
    assert!(account.chars().all(|c| c.is_ascii_hexdigit() || c == 'x'), "an address, not {account:?}");
    SCRIPT.replace("__TABSWARM_TEST_ACCOUNT__", account)
}

/// The test wallet's "extension background": forwards the page's pending wallet requests to the
/// chain's JSON-RPC and hands back the answers (errors keep their code). Runs until aborted;
/// a page that is reloading simply has nothing to take.
async fn serve_test_wallet(client: Client, rpc_url: String) {
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, String>(HttpConnector::new());
    loop {
        let taken = client.execute("return window.__testWallet ? window.__testWallet.take() : []", vec![]).await;
        for request in taken.ok().and_then(|t| t.as_array().cloned()).unwrap_or_default() {
            let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": request["method"], "params": request["params"] });
            let post = http::Request::post(rpc_url.as_str())
                .header("content-type", "application/json")
                .body(body.to_string())
                .expect("request");
            let answer = match http.request(post).await {
                Ok(response) => {
                    use http_body_util::BodyExt;
                    let bytes = response.into_body().collect().await.expect("anvil answers").to_bytes();
                    serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON-RPC answer")
                }
                Err(e) => serde_json::json!({ "error": { "code": 4900, "message": e.to_string() } }),
            };
            let settled = client
                .execute(
                    "window.__testWallet.settle(arguments[0], arguments[1], arguments[2])",
                    vec![request["id"].clone(), answer["result"].clone(), answer["error"].clone()],
                )
                .await;
            if let Err(e) = settled {
                eprintln!("test wallet: cannot answer the page: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs a JSON document from the relay.
async fn get_json(url: &str) -> serde_json::Value {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, String>(HttpConnector::new());
    let response = client.get(url.parse().expect("uri")).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(response.status().is_success(), "GET {url}: HTTP {}", response.status());
    let body = response.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Waits until `#id` has `data-state="state"`; its text.
async fn wait_state(client: &Client, id: &str, state: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let el = client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
        let now = el.attr(data::STATE).await.expect("attr").unwrap_or_default();
        let text = el.text().await.expect("text");
        if now == state {
            return text;
        }
        assert!(Instant::now() < deadline, "#{id} is {now:?}, not {state:?}, after {timeout:?}: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wallet_requests(client: &Client) -> Vec<String> {
    let value = client.execute("return window.__testWallet.requests", vec![]).await.expect("requests");
    serde_json::from_value(value).expect("strings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium, chromedriver, the built page and anvil: run `cargo xtask test`"]
async fn a_tab_binds_its_wallet_and_is_credited_on_the_leaderboard_and_on_chain() {
    use tabswarm_devchain::{Anvil, DEV_KEYS};
    use tabswarm_relay::chain::Chain;

    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // A local chain with the registry; the relay submits to it, and takes no unbound rollouts.
    let anvil = Anvil::start().unwrap_or_else(|e| panic!("{e}"));
    let chain = Chain::deploy(&anvil.url, DEV_KEYS[0], "tabswarm").await.expect("deploy the registry");
    let registry = chain.registry();
    let dir = tempfile::tempdir().expect("temp dir");
    let (base_path, _) = make_base(dir.path());
    let relay = start_relay_with(
        Some(base_path),
        |swarm| {
            swarm.domain.chain_id = chain.chain_id();
            swarm.domain.verifying_contract = registry;
        },
        Some(chain.clone()),
    )
    .await;
    assert!(!relay.bootstrap.accepts_unbound);
    // anvil's second dev account is the contributor's wallet (the first one runs the registry).
    let account = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    let (_driver, client) =
        start_browser(&["--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]).await;
    client
        .issue_cmd(Cdp {
            cmd: "Page.addScriptToEvaluateOnNewDocument",
            params: serde_json::json!({ "source": test_wallet_script(account) }),
        })
        .await
        .expect("inject the test wallet");
    let wallet = tokio::spawn(serve_test_wallet(client.clone(), anvil.url.clone()));
    open_page(&client, &format!("{}/?n=64&rounds=4", relay.url)).await;

    // The wallet is listed by its EIP-6963 name and icon.
    let text = wait_state(&client, id::WALLET, "found", Duration::from_secs(60)).await;
    assert!(text.contains("Test Wallet is available"), "{text}");
    let button = client
        .find(Locator::Css(&format!("#{} button[{}='org.tabswarm.testwallet']", id::WALLETS, data::RDNS)))
        .await
        .expect("button");
    assert_eq!(button.text().await.expect("text"), "Connect Test Wallet");
    let icon = button.find(Locator::Css("img")).await.expect("icon").attr("src").await.expect("src");
    assert!(icon.is_some_and(|src| src.starts_with("data:image/svg+xml")));
    let tab_id = attr_of(&client, id::TAB_KEY, data::PEER_ID).await;
    assert_eq!(attr_of(&client, id::TAB_KEY, data::PERSISTENT).await, "true");
    wait_state(&client, id::BINDING, "unbound", Duration::from_secs(30)).await;

    // The contributor connects, then declines to sign: said plainly, nothing bound, retry offered.
    client.execute("window.__testWallet.reject.push('eth_signTypedData_v4')", vec![]).await.expect("script");
    button.click().await.expect("connect");
    let text = wait_state(&client, id::WALLET, "rejected", Duration::from_secs(30)).await;
    assert!(text.contains("you declined the request in Test Wallet"), "{text}");
    assert_eq!(attr_of(&client, id::WALLET, data::ADDRESS).await, account);
    assert_eq!(attr_of(&client, id::WALLET, data::CHAIN).await, "31337");
    assert!(relay.ledger.peer(&tab_id).expect("ledger").is_none_or(|p| p.address.is_none()), "nothing bound yet");

    // "Bind this tab": one signature, the relay verifies and stores it.
    client.find(Locator::Id(id::BIND)).await.expect("#bind").click().await.expect("bind");
    let text = wait_state(&client, id::BINDING, "bound", Duration::from_secs(30)).await;
    assert!(text.contains(account), "{text}");
    assert_eq!(attr_of(&client, id::BINDING, data::ADDRESS).await, account);
    let signs = wallet_requests(&client).await.iter().filter(|m| *m == "eth_signTypedData_v4").count();
    assert_eq!(signs, 2, "one declined signature, one given");

    // It learns; the relay credits its verified rollouts to the wallet.
    wait_state(&client, id::NET, "connected", Duration::from_secs(60)).await;
    let (state, text, _) = settled_status(&client, Duration::from_secs(120)).await;
    assert_eq!(state, "cpu", "{text}");
    train_in_page(&client, id::TRAIN_CPU, Duration::from_secs(300)).await;
    // The leaderboard's reward is the relay's own verification of what the tab sent: the sum of
    // the peer's per-round records (read until both agree: the last groups may still be in flight).
    let deadline = Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let board = get_json(&format!("{}/api/leaderboard", relay.url)).await;
        let record = get_json(&format!("{}/api/peer/{tab_id}", relay.url)).await;
        let entry = board.as_array().expect("array").iter().find(|e| e["address"] == account).cloned();
        let rounds = record["rounds"].as_array().cloned().unwrap_or_default();
        let credited: f64 = rounds.iter().map(|r| r["reward"].as_f64().expect("reward")).sum();
        let rollouts: u64 = rounds.iter().map(|r| r["rollouts"].as_u64().expect("rollouts")).sum();
        if let Some(entry) = entry
            && (entry["reward"].as_f64().expect("reward") - credited).abs() < 1e-9
            && entry["rollouts"].as_u64() == Some(rollouts)
        {
            assert_eq!(record["address"], account);
            break entry;
        }
        assert!(
            Instant::now() < deadline,
            "the leaderboard never credited {account} as its records say: {board} / {record}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(entry["rollouts"].as_u64().expect("rollouts") >= 8, "{entry}");
    assert_eq!(entry["peers"], 1);
    client
        .execute(&format!("document.getElementById('{}').scrollIntoView()", id::WALLET), vec![])
        .await
        .expect("scroll");
    save_screenshot(&client, "page-bound.png").await;

    // The relay registers the binding on chain; the registry says whose peer this is.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let owner = chain.owner_of(&tab_id).await.expect("read the registry");
        if let Some((owner, _)) = owner {
            assert_eq!(owner.to_checksum(None), account);
            break;
        }
        assert!(Instant::now() < deadline, "the binding never reached the registry");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let record = get_json(&format!("{}/api/peer/{tab_id}", relay.url)).await;
    assert_eq!(record["onChain"]["owner"], account, "{record}");
    assert_eq!(record["onChain"]["registry"], registry.to_checksum(None));

    // The wallet switches account: the page says the tab stays bound to the first one.
    let other = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    client
        .execute(&format!("window.__testWallet.emit('accountsChanged', [{:?}])", other.to_lowercase()), vec![])
        .await
        .expect("emit");
    let text = wait_state(&client, id::BINDING, "other-account", Duration::from_secs(10)).await;
    assert!(text.contains("0x3C44…93BC") && text.contains("0x7099…79C8"), "{text}");
    // …and switches chain: shown as it is.
    client.execute("window.__testWallet.emit('chainChanged', '0x1')", vec![]).await.expect("emit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while attr_of(&client, id::WALLET, data::CHAIN).await != "1" {
        assert!(Instant::now() < deadline, "chainChanged was not shown");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = client.find(Locator::Id(id::WALLET)).await.expect("#wallet").text().await.expect("text");
    assert!(text.contains("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC on Ethereum (chain 1)"), "{text}");

    // A second tab of the same browser is another peer (its own stored key), not a clone of this one.
    let first = client.window().await.expect("this tab");
    let second = client.new_window(true).await.expect("a second tab").handle;
    client.switch_to_window(second).await.expect("switch");
    open_page(&client, &format!("{}/?n=64", relay.url)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let second_id = loop {
        let id = attr_of(&client, id::TAB_KEY, data::PEER_ID).await;
        if !id.is_empty() {
            break id;
        }
        assert!(Instant::now() < deadline, "the second tab never showed its key");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_ne!(second_id, tab_id);
    assert_eq!(attr_of(&client, id::TAB_KEY, data::PERSISTENT).await, "true");
    client.close_window().await.expect("close the second tab");
    client.switch_to_window(first).await.expect("back to the first tab");

    // A reload keeps the tab key and its binding: bound again with no wallet prompt at all.
    client.refresh().await.expect("reload");
    wait_state(&client, id::BINDING, "bound", Duration::from_secs(60)).await;
    assert_eq!(attr_of(&client, id::TAB_KEY, data::PEER_ID).await, tab_id);
    assert!(wallet_requests(&client).await.is_empty(), "the stored binding needed no wallet request");

    // "New tab key" (confirmed): another peer id, unbound until the wallet signs for it. (The
    // wallet's helper stops first: a WebDriver command while the dialog is open would dismiss it.)
    wallet.abort();
    client.find(Locator::Id(id::ROTATE_KEY)).await.expect("#rotate-key").click().await.expect("rotate");
    client.accept_alert().await.expect("confirm the new key");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let id = client.find(Locator::Id(id::TAB_KEY)).await.ok();
        let id = match id {
            Some(el) => el.attr(data::PEER_ID).await.ok().flatten().unwrap_or_default(),
            None => String::new(),
        };
        if !id.is_empty() && id != tab_id {
            break;
        }
        assert!(Instant::now() < deadline, "the tab key never changed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_state(&client, id::BINDING, "unbound", Duration::from_secs(30)).await;
    client.close().await.expect("close browser");
}

/// One native peer's update to the relay's swarm model (the calls `tabswarm-peer run` makes):
/// it joins at the current version, trains one round and posts; returns the version it was for.
async fn native_update(url: &str, seed: u64) -> String {
    use tabswarm_learn::run::{Backend, RunPlan, TrainingRun};
    use tabswarm_learn::sync::SwarmSync;
    use tabswarm_net::native;
    let (info, bytes) = native::fetch_model(url, true).await.expect("fetch").expect("a swarm model");
    let device = burn::tensor::Device::flex();
    let mut run = TrainingRun::from_checkpoint(&bytes.expect("bytes"), &device, Backend::Cpu, RunPlan::solo(1, seed))
        .expect("run");
    let mut sync = SwarmSync::new(&run, &info.hash, info.number, 1).await.expect("sync");
    let origin = Instant::now();
    run.step(&move || origin.elapsed().as_secs_f64() * 1e3, Vec::new()).await.expect("round");
    let key = libp2p::identity::Keypair::generate_ed25519();
    let update = sync.update(&run, &key.public().to_peer_id().to_string()).await.expect("update");
    let signed = tabswarm_protocol::update::sign(&update, &key).expect("sign");
    let outcome = native::post_update(url, signed).await.expect("post");
    assert!(matches!(outcome, native::UpdateOutcome::Accepted(_)), "{outcome:?}");
    info.hash
}

async fn wait_for_version(url: &str, number: u64) -> tabswarm_protocol::api::ModelInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = tabswarm_net::native::fetch_model(url, false).await.expect("fetch").expect("model").0;
        if info.number >= number {
            return info;
        }
        assert!(Instant::now() < deadline, "no version {number}: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The swarm model in the tab. Two native peers make version 1; a newcomer tab shows it with its
/// download link and starts from it (its parameters checked in the worker against the version's
/// hash), not from the base; after 10 rounds the tab sends an update signed with its key, which
/// together with a third peer's makes version 2, and the tab moves onto it while it trains.
#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn a_newcomer_tab_starts_from_the_latest_swarm_model_version_and_feeds_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (base_path, base_sha) = make_base(dir.path());
    let relay = start_relay_serving(Some(base_path)).await;
    let url = relay.url.clone();
    let v0 = native_update(&url, 1).await;
    native_update(&url, 2).await;
    let v1 = wait_for_version(&url, 1).await;
    assert_eq!(v1.parent.as_deref(), Some(v0.as_str()));
    // One update for version 1 waits; the tab's will be the second.
    assert_eq!(native_update(&url, 3).await, v1.hash);

    // Loopback WebRTC in headless Chromium needs loopback candidates allowed and not hidden behind mDNS.
    let (_driver, client) =
        start_browser(&["--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]).await;
    open_page(&client, &format!("{url}/?n=32&rounds=2000")).await;
    let shown = client.find(Locator::Id(id::SWARM_MODEL)).await.expect("#swarm-model");
    let deadline = Instant::now() + Duration::from_secs(60);
    while shown.attr(data::STATE).await.expect("attr").as_deref() != Some("ready") {
        assert!(Instant::now() < deadline, "swarm model not shown: {}", shown.text().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(shown.attr(data::VERSION).await.expect("attr").as_deref(), Some("1"));
    assert_eq!(shown.attr(data::SHA256).await.expect("attr").as_deref(), Some(v1.hash.as_str()));
    let text = shown.text().await.expect("text");
    assert!(text.contains("version 1") && text.contains("made from 2 updates by 2 peers"), "{text}");
    let link = client.find(Locator::Id(id::SWARM_DOWNLOAD)).await.expect("#swarm-download");
    assert_eq!(link.attr("href").await.expect("attr"), Some(v1.url.clone()));
    assert!(link.is_displayed().await.expect("displayed"), "the download link stays hidden");
    // Wait for the swarm connection, so the run shares (and feeds the swarm model).
    let net = client.find(Locator::Id(id::NET)).await.expect("#net");
    let deadline = Instant::now() + Duration::from_secs(60);
    while net.attr(data::STATE).await.expect("attr").as_deref() != Some("connected") {
        assert!(Instant::now() < deadline, "not connected: {}", net.text().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    client.find(Locator::Id(id::TRAIN_CPU)).await.expect("train button").click().await.expect("click");
    let origin = client.find(Locator::Id(id::BASE)).await.expect("#base");
    let first = loop {
        let text = origin.text().await.expect("text");
        if text.contains("swarm model") {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first_sha = origin.attr(data::SHA256).await.expect("attr").unwrap_or_default();
    // It trains until it has moved onto version 2 (made from its update and the waiting one), then
    // is stopped.
    let deadline = Instant::now() + Duration::from_secs(240);
    while origin.attr(data::VERSION).await.expect("attr").as_deref() != Some("2") {
        let updates = client.find(Locator::Id(id::SWARM_UPDATES)).await.expect("#swarm-updates");
        assert!(
            Instant::now() < deadline,
            "the tab never moved onto version 2: {} / {}",
            origin.text().await.unwrap_or_default(),
            updates.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    client.find(Locator::Id(id::TRAIN_STOP)).await.expect("#train-stop").click().await.expect("stop");
    learned(&client, Duration::from_secs(120)).await;
    let updates = client.find(Locator::Id(id::SWARM_UPDATES)).await.expect("#swarm-updates");
    let updates_text = updates.text().await.expect("text");
    let sent: u32 = updates.attr(data::SENT).await.expect("attr").and_then(|v| v.parse().ok()).unwrap_or(0);
    let accepted: u32 = updates.attr(data::ACCEPTED).await.expect("attr").and_then(|v| v.parse().ok()).unwrap_or(0);
    let (end_version, end_text) =
        (origin.attr(data::VERSION).await.expect("attr").unwrap_or_default(), origin.text().await.expect("text"));
    save_text("newcomer.txt", &format!("{text}\n{first}\n{updates_text}\n{end_text}\n"));
    client.close().await.expect("close browser");
    assert_eq!(first_sha, v1.hash, "the tab did not start from version 1: {first}");
    assert_ne!(first_sha, base_sha);
    assert!(first.contains("swarm model, version 1"), "{first}");
    assert!(sent >= 1 && accepted >= 1, "{updates_text}");
    let v2 = wait_for_version(&url, 2).await;
    assert!(v2.contributors.len() == 2 && v2.parent.as_deref() == Some(v1.hash.as_str()), "{v2:?}");
    assert_eq!(end_version, "2", "the tab did not move onto version 2: {end_text} / {updates_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn a_site_embeds_the_widget_which_asks_first_then_learns_politely() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (base_path, _) = make_base(dir.path());
    let relay = start_relay_serving(Some(base_path)).await;
    let (site, _server) = host_site(&relay.url, 50);
    let (_driver, client) = start_browser(&[]).await;
    open_host_page(&client, &site).await;

    // The host page cannot reach into the frame (another origin: its storage, keys and wallet).
    let frame_js = "document.querySelector('tabswarm-widget').shadowRoot.querySelector('iframe')";
    let reach = client
        .execute(
            &format!(
                "try {{ return String({frame_js}.contentWindow.localStorage.length); }} catch (e) {{ return e.name; }}"
            ),
            vec![],
        )
        .await
        .expect("execute");
    assert_eq!(reach, "SecurityError", "the host page read the frame's storage");

    // Before the click: the consent card, and not one byte of wasm, model or swarm.
    enter_widget_frame(&client).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let consent = client.find(Locator::Id(embed::CONSENT)).await.expect("consent").text().await.expect("text");
        if consent.contains("Nothing runs until you click") && consent.contains("50 %") {
            break;
        }
        assert!(Instant::now() < deadline, "the consent card does not say what it will take: {consent}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(attr_of(&client, embed::STATE, data::STATE).await, "idle");
    let violations = accessibility_violations(&client).await;
    assert!(violations.is_empty(), "the widget's card fails an accessibility rule:\n{}", violations.join("\n"));
    save_screenshot(&client, "widget-consent.png").await;
    client.set_window_size(375, 700).await.expect("375 px");
    tokio::time::sleep(Duration::from_millis(500)).await;
    save_screenshot(&client, "widget-consent-375.png").await;
    let fetched = fetched(&client).await;
    assert!(
        fetched.iter().all(|url| !url.ends_with(".wasm") && !url.contains("/api/")),
        "loaded before consent: {fetched:?}"
    );
    assert!(fetched.iter().any(|url| url.ends_with("/embed.js")), "{fetched:?}");
    client.find(Locator::Id(embed::CONTRIBUTE)).await.expect("Contribute").click().await.expect("click");
    client.enter_parent_frame().await.expect("back to the host page");

    // After the click the frame learns, and the element says so.
    let started = wait_widget(&client, "learned", Duration::from_secs(240), |s, r| s == "running" && r >= 2).await;
    save_screenshot(&client, "widget-running-375.png").await;
    client.set_window_size(900, 560).await.expect("desktop width");
    tokio::time::sleep(Duration::from_millis(500)).await;
    save_screenshot(&client, "widget-running.png").await;

    // The relay's own page refuses to be framed by another site, as /embed (above) does not.
    client
        .execute(
            &format!(
                "const f = document.createElement('iframe'); f.id = 'framed-page'; f.src = '{}/'; document.body.append(f);",
                relay.url
            ),
            vec![],
        )
        .await
        .expect("frame the relay's page");

    // A third origin's forged report changes nothing: the element hears its own frame only.
    client
        .execute(
            &format!(
                "const f = document.createElement('iframe'); f.src = '{}'; document.body.append(f);",
                site.replace("127.0.0.1", "localhost") + "/foreign.html"
            ),
            vec![],
        )
        .await
        .expect("add a foreign frame");
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.find(Locator::Id("framed-page")).await.expect("the framed page").enter_frame().await.expect("into it");
    let shown = client.find_all(Locator::Id(id::CONTRIBUTE)).await.expect("find");
    let framed_url = client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
    client.enter_parent_frame().await.expect("back to the host page");
    assert!(shown.is_empty(), "another site framed the relay's page ({framed_url})");
    let (state, after_foreign) = widget_state(&client).await;
    assert_eq!(state, "running", "a foreign origin's message set the widget's state");
    assert!(after_foreign > started && after_foreign < 999_999, "rounds {after_foreign} after a forged report");

    // The host may pause and resume, and a pause loses no round.
    client.execute("document.querySelector('tabswarm-widget').pause()", vec![]).await.expect("pause");
    let paused_at = wait_widget(&client, "paused", Duration::from_secs(2), |s, _| s == "paused").await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the round under way when asked
    let (_, settled) = widget_state(&client).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (state, still) = widget_state(&client).await;
    assert_eq!((state.as_str(), still), ("paused", settled), "rounds went on while paused (paused at {paused_at})");
    client.execute("document.querySelector('tabswarm-widget').resume()", vec![]).await.expect("resume");
    wait_widget(&client, "resumed", Duration::from_secs(60), |s, r| s == "running" && r > still).await;

    // Hidden (another tab in front), the frame pauses within a second; shown again, it resumes.
    let first = client.window().await.expect("this tab");
    let second = client.new_window(true).await.expect("a second tab").handle;
    client.switch_to_window(second).await.expect("switch");
    tokio::time::sleep(Duration::from_secs(4)).await;
    client.close_window().await.expect("close the second tab");
    client.switch_to_window(first).await.expect("back");
    wait_widget(&client, "resumed after being shown", Duration::from_secs(30), |s, _| s == "running").await;
    let events: Vec<serde_json::Value> =
        serde_json::from_value(client.execute("return window.__events", vec![]).await.expect("js")).expect("events");
    save_text("widget-events.json", &serde_json::to_string_pretty(&events).expect("json"));
    let time = |e: &serde_json::Value| e["t"].as_f64().unwrap_or(f64::NAN);
    let hidden =
        events.iter().position(|e| e["kind"] == "hidden").unwrap_or_else(|| panic!("never hidden: {events:?}"));
    let paused = events[hidden..]
        .iter()
        .find(|e| e["kind"] == "state" && e["state"] == "paused")
        .unwrap_or_else(|| panic!("no pause while the tab was hidden: {events:?}"));
    let after = time(paused) - time(&events[hidden]);
    assert!(after < 1000.0, "paused {after:.0} ms after the tab was hidden");
}

/// Waits (up to 30 s) until the button `id` can be pressed: a new user presses it the moment it can.
async fn until_enabled(client: &Client, id: &str) -> fantoccini::elements::Element {
    let button = client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !button.is_enabled().await.expect("enabled?") {
        assert!(Instant::now() < deadline, "#{id} never became usable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    button
}

/// Loads the page, opens its *Diagnostics* (the GPU checks' lines, which the tests read, are
/// collapsed there for contributors) and clicks *Run the checks*, which loads the client without
/// learning: nothing heavy loads before a click.
async fn open_page(client: &Client, url: &str) {
    client.goto(url).await.expect("load page");
    client.execute("document.getElementById('diagnostics').open = true", vec![]).await.expect("open the diagnostics");
    until_enabled(client, id::RUN_CHECKS).await.click().await.expect("click Run the checks");
}

#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn a_click_on_contribute_the_moment_the_page_loads_starts_learning_and_the_model_answers_a_typed_question() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (base_path, _) = make_base(dir.path());
    let relay = start_relay_serving(Some(base_path)).await;
    let (_driver, client) = start_browser(&[]).await;
    client.goto(&format!("{}/?n=32&rounds=3", relay.url)).await.expect("load page");
    // As a new user would: the moment the button can be pressed.
    let contribute = until_enabled(&client, id::CONTRIBUTE).await;
    // Before the click: what it will take, said, and nothing heavy fetched (no wasm, no model, no
    // swarm: the client's glue, its worker, the relay's bootstrap and its models are all absent).
    let consent = client.find(Locator::Id(id::CONSENT)).await.expect("#consent").text().await.expect("text");
    assert!(consent.contains("Nothing runs until you click Contribute"), "{consent}");
    let before = fetched(&client).await;
    let heavy = [".wasm", "tabswarm_client.js", "worker.js", "/api/bootstrap", "/api/model", "/api/checkpoint"];
    assert!(before.iter().all(|url| heavy.iter().all(|h| !url.contains(h))), "loaded before consent: {before:?}");
    assert!(before.iter().any(|url| url.ends_with("/main.js")), "{before:?}");
    contribute.click().await.expect("click Contribute");
    let learned = learned(&client, Duration::from_secs(300)).await;
    assert_eq!(learned.round, "3", "the first click started the run: {}", learned.text);
    // Contribute took the backend the GPU check recommends (the CPU on this software adapter).
    let (recommended, why) = backend_choice(&client).await;
    assert!(learned.text.contains(if recommended == "webgpu" { "WebGPU" } else { "CPU" }), "{why} / {}", learned.text);
    let line = client.find(Locator::Id(id::CONSENT_STATE)).await.expect("#consent-state").text().await.expect("text");
    assert!(line.contains("Contribute again"), "{line}");
    // The choice is remembered, and taken back in one click.
    let stored = async || client.execute("return localStorage.getItem('tabswarm.consent')", vec![]).await.expect("js");
    assert_eq!(stored().await, serde_json::json!("yes"));
    client.find(Locator::Id(id::CONSENT_FORGET)).await.expect("#consent-forget").click().await.expect("forget");
    assert_eq!(stored().await, serde_json::Value::Null);
    // The charts drew the run (uPlot's canvas, from the page's own data attributes).
    for chart in ["chart-reward", "chart-families", "chart-swarm"] {
        let canvases = client.find_all(Locator::Css(&format!("#{chart} canvas"))).await.expect("find");
        assert_eq!(canvases.len(), 1, "#{chart} has its chart");
    }

    let ask = async |typed: &str| -> (String, String, String, String) {
        let input = client.find(Locator::Id(id::TRY_QUESTION)).await.expect("#try-question");
        input.clear().await.expect("clear");
        input.send_keys(typed).await.expect("type");
        client.find(Locator::Id(id::TRY_ASK)).await.expect("#try-ask").click().await.expect("ask");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = client.find(Locator::Id(id::TRY_ANSWER)).await.expect("#try-answer");
            let state = answer.attr(data::STATE).await.expect("attr").unwrap_or_default();
            if !["idle", "asking"].contains(&state.as_str()) {
                let attr = async |name: &str| answer.attr(name).await.expect("attr").unwrap_or_default();
                return (
                    state,
                    answer.text().await.expect("text"),
                    attr(data::ANSWER).await,
                    attr(data::CORRECT).await,
                );
            }
            assert!(Instant::now() < deadline, "no answer to {typed:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // A suite question, as a person types it: answered, and judged by the suite's verifier.
    let (state, text, answer, correct) = ask("r: abcd").await;
    assert!(["right", "wrong"].contains(&state.as_str()), "{state}: {text}");
    assert_eq!(correct, (answer == "dcba").to_string(), "{text}");
    assert_eq!(state == "right", answer == "dcba", "{text}");
    assert!(text.starts_with("r:abcd= ") && text.contains("the model this tab trained"), "{text}");
    let (state, text, _, _) = ask("12+7").await;
    assert!(["right", "wrong"].contains(&state.as_str()) && text.contains("(add,"), "{state}: {text}");
    // Not a question of the suite: refused at once, saying what would be.
    let (state, text, _, _) = ask("what is love").await;
    assert_eq!(state, "refused", "{text}");
    assert!(text.contains("a+b="), "{text}");
    // The button that fills in a suite question gives one the suite reads.
    client.find(Locator::Id(id::TRY_EXAMPLE)).await.expect("#try-example").click().await.expect("example");
    let filled = client.find(Locator::Id(id::TRY_QUESTION)).await.expect("input").prop("value").await.expect("value");
    let filled = filled.unwrap_or_default();
    assert!(tabswarm_protocol::tasks::pose(&filled).is_ok(), "{filled:?}");
    let (state, text, _, _) = ask(&filled).await; // and the screenshots show an answer
    assert!(["right", "wrong"].contains(&state.as_str()), "{filled:?}: {state}: {text}");

    client.set_window_size(1000, 1500).await.expect("a desktop window");
    client.execute("window.scrollTo(0, 0)", vec![]).await.expect("to the top");
    tokio::time::sleep(Duration::from_millis(500)).await;
    save_screenshot(&client, "page-desktop.png").await;
    // Accessible in both colour schemes: axe-core's WCAG 2.1 A/AA rules (names, labels, contrast).
    for dark in [false, true] {
        prefer_dark(&client, dark).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let violations = accessibility_violations(&client).await;
        assert!(
            violations.is_empty(),
            "the page (dark: {dark}) fails an accessibility rule:\n{}",
            violations.join("\n")
        );
    }
    save_screenshot(&client, "page-dark.png").await;
    prefer_dark(&client, false).await;
    client.set_window_size(375, 1400).await.expect("375 px");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let overflow: bool = client
        .execute("return document.documentElement.scrollWidth > window.innerWidth + 1", vec![])
        .await
        .expect("js")
        .as_bool()
        .unwrap_or(true);
    assert!(!overflow, "the page scrolls sideways at 375 px");
    save_screenshot(&client, "page-375.png").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn a_widget_at_budget_25_computes_a_quarter_of_the_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (base_path, _) = make_base(dir.path());
    let relay = start_relay_serving(Some(base_path)).await;
    let (site, _server) = host_site(&relay.url, 25);
    let (_driver, client) = start_browser(&[]).await;
    open_host_page(&client, &site).await;
    enter_widget_frame(&client).await;
    let budget = client.find(Locator::Id(embed::BUDGET)).await.expect("budget").text().await.expect("text");
    assert_eq!(budget, "25 %", "the frame took the element's budget");
    client.find(Locator::Id(embed::CONTRIBUTE)).await.expect("Contribute").click().await.expect("click");
    let (duty, wall_ms, rounds) = measure_duty(&client, Duration::from_secs(60)).await;
    save_text(
        "duty-25.json",
        &serde_json::json!({ "budget": 25, "duty": duty, "wall_ms": wall_ms, "rounds": rounds }).to_string(),
    );
    assert!(rounds >= 5, "too few rounds to judge the pace: {rounds} in {wall_ms:.0} ms");
    assert!((0.15..=0.35).contains(&duty), "budget 25 held a duty cycle of {:.1} % over {wall_ms:.0} ms", duty * 100.0);
}

/// Where the keyboard focus is in the document the client is in: (the element's id, or its tag and
/// text when it has none; whether a focus ring shows), or `None` when nothing has it.
async fn focused(client: &Client) -> Option<(String, bool)> {
    let js = r#"const el = document.activeElement;
if (!el || el === document.body || el === document.documentElement) return null;
const style = getComputedStyle(el);
const ring = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none';
return [el.id || `${el.localName}: ${el.textContent.trim().slice(0, 40)}`, ring];"#;
    serde_json::from_value(client.execute(js, vec![]).await.expect("read the focus")).expect("a focus stop")
}

/// Presses and releases `key` where the focus is, as a person at a keyboard would.
async fn press(client: &Client, key: fantoccini::key::Key) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let value: char = key.into();
    let keys = KeyActions::new("keyboard".into()).then(KeyAction::Down { value }).then(KeyAction::Up { value });
    client.perform_actions(keys).await.expect("press a key");
}

/// Presses Tab until `target` has the focus (at most `presses` times); returns the stops passed.
async fn tab_to(client: &Client, target: &str, presses: usize) -> Vec<String> {
    let mut passed = Vec::new();
    for _ in 0..presses {
        press(client, fantoccini::key::Key::Tab).await;
        match focused(client).await {
            Some((name, _)) if name == target => return passed,
            Some((name, _)) => passed.push(name),
            None => passed.push("(nothing)".into()),
        }
    }
    panic!("{presses} Tabs never reached #{target}; they went through {passed:?}");
}

/// Waits until the focus is on `target` (it moves there on its own, after a click).
async fn focus_moves_to(client: &Client, target: &str, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = focused(client).await;
        if now.as_ref().is_some_and(|(name, _)| name == target) {
            return;
        }
        assert!(Instant::now() < deadline, "{why}: the focus is on {now:?}, not #{target}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn the_page_and_the_widget_work_from_the_keyboard_alone() {
    use fantoccini::key::Key;
    let dir = tempfile::tempdir().expect("temp dir");
    let (base_path, _) = make_base(dir.path());
    let relay = start_relay_serving(Some(base_path)).await;
    let (_driver, client) = start_browser(&[]).await;
    client.goto(&format!("{}/?n=32&rounds=3", relay.url)).await.expect("load page");
    until_enabled(&client, id::CONTRIBUTE).await;

    // The first Tab stop is Contribute, with a visible focus ring; Enter starts learning, and the
    // focus stays there while it runs (the button says it is busy instead of dropping the focus).
    let passed = tab_to(&client, id::CONTRIBUTE, 1).await;
    assert!(passed.is_empty(), "{passed:?}");
    assert_eq!(focused(&client).await.map(|(_, ring)| ring), Some(true), "Contribute shows no focus ring");
    press(&client, Key::Enter).await;
    let run = learned(&client, Duration::from_secs(300)).await;
    assert_eq!(run.round, "3", "Enter on Contribute started the run: {}", run.text);
    assert_eq!(focused(&client).await.map(|(name, _)| name), Some(id::CONTRIBUTE.to_owned()), "the focus was dropped");

    // Every control the page shows can be reached with Tab, each showing where the focus is; the
    // collapsed Diagnostics open with Enter on their summary.
    tab_to(&client, "summary: Diagnostics: this GPU's matmul and fused", 40).await;
    press(&client, Key::Enter).await;
    let open = client.execute("return document.getElementById('diagnostics').open", vec![]).await.expect("js");
    assert_eq!(open, serde_json::json!(true), "Enter on the summary did not open the diagnostics");
    let controls: Vec<String> = serde_json::from_value(
        client
            .execute(
                r#"return [...document.querySelectorAll('button, input, select, textarea, a[href], summary')]
  .filter((el) => !el.disabled && !el.closest('[hidden]') && el.getClientRects().length > 0)
  .map((el) => el.id || `${el.localName}: ${el.textContent.trim().slice(0, 40)}`);"#,
                vec![],
            )
            .await
            .expect("js"),
    )
    .expect("names");
    assert!(controls.len() >= 8, "too few controls found to judge: {controls:?}");
    let mut stops: Vec<(String, bool)> = Vec::new();
    for _ in 0..(controls.len() * 2 + 4) {
        press(&client, Key::Tab).await;
        if let Some(stop) = focused(&client).await {
            if stops.first().is_some_and(|(first, _)| *first == stop.0) {
                break; // round the page once
            }
            stops.push(stop);
        }
    }
    for control in &controls {
        assert!(stops.iter().any(|(name, _)| name == control), "{control} cannot be reached with Tab: {stops:?}");
    }
    let ringless: Vec<&String> = stops.iter().filter(|(_, ring)| !ring).map(|(name, _)| name).collect();
    assert!(ringless.is_empty(), "no focus ring on {ringless:?}");

    // Try the model from the keyboard: type, Enter.
    tab_to(&client, id::TRY_QUESTION, stops.len() + 2).await;
    client.active_element().await.expect("the input").send_keys("r: abcd").await.expect("type");
    press(&client, Key::Enter).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = attr_of(&client, id::TRY_ANSWER, data::STATE).await;
        if ["right", "wrong"].contains(&state.as_str()) {
            break;
        }
        assert!(state != "refused" && state != "error", "the typed question was {state}");
        assert!(Instant::now() < deadline, "Enter in the question box asked nothing ({state})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Taking the choice back hides its button: the focus goes to Contribute, not to the top.
    tab_to(&client, id::CONSENT_FORGET, stops.len() + 2).await;
    press(&client, Key::Enter).await;
    focus_moves_to(&client, id::CONTRIBUTE, "after 'Ask me before contributing next time'").await;

    // A button that disables itself hands the focus on: Train on CPU to Stop, Stop to Save.
    client.goto(&format!("{}/?n=32&rounds=10000", relay.url)).await.expect("reload for a long run");
    until_enabled(&client, id::TRAIN_CPU).await;
    tab_to(&client, id::TRAIN_CPU, 6).await;
    press(&client, Key::Space).await;
    focus_moves_to(&client, id::TRAIN_STOP, "once the run started").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while attr_of(&client, id::TRAIN_STATUS, data::STATE).await != "running" {
        assert!(Instant::now() < deadline, "the run never reported a round");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    press(&client, Key::Enter).await;
    let stopped = learned(&client, Duration::from_secs(60)).await;
    assert_ne!(stopped.round, "10000", "Stop did not stop the run: {}", stopped.text);
    focus_moves_to(&client, id::TRAIN_SAVE, "once the run stopped").await;
    // Take the choice back again: the widget's frame below is on the same site (127.0.0.1, another
    // port), so it shares this storage and would start by itself.
    tab_to(&client, id::CONSENT_FORGET, stops.len() + 2).await;
    press(&client, Key::Enter).await;
    focus_moves_to(&client, id::CONTRIBUTE, "after 'Ask me before contributing next time'").await;

    // The widget: Tab from the host page into its frame, Enter contributes, Space pauses and resumes,
    // and Stop hands the focus back to Contribute.
    let (site, _server) = host_site(&relay.url, 100);
    open_host_page(&client, &site).await;
    enter_widget_frame(&client).await;
    tab_to(&client, embed::CONTRIBUTE, 4).await;
    assert_eq!(focused(&client).await.map(|(_, ring)| ring), Some(true), "the widget's Contribute shows no ring");
    press(&client, Key::Enter).await;
    focus_moves_to(&client, embed::PAUSE, "after Contribute in the widget").await;
    client.enter_parent_frame().await.expect("back to the host page");
    wait_widget(&client, "learned a round", Duration::from_secs(240), |state, rounds| state == "running" && rounds > 0)
        .await;
    enter_widget_frame(&client).await;
    press(&client, Key::Space).await;
    client.enter_parent_frame().await.expect("back to the host page");
    wait_widget(&client, "paused from the keyboard", Duration::from_secs(5), |state, _| state == "paused").await;
    enter_widget_frame(&client).await;
    let label = client.find(Locator::Id(embed::PAUSE)).await.expect("pause").text().await.expect("text");
    assert_eq!(label, "Resume");
    press(&client, Key::Space).await;
    client.enter_parent_frame().await.expect("back to the host page");
    wait_widget(&client, "resumed from the keyboard", Duration::from_secs(5), |state, _| state == "running").await;
    enter_widget_frame(&client).await;
    tab_to(&client, embed::FORGET, 2).await;
    press(&client, Key::Enter).await;
    focus_moves_to(&client, embed::CONTRIBUTE, "after Stop in the widget").await;
    client.enter_parent_frame().await.expect("back to the host page");
    wait_widget(&client, "stopped", Duration::from_secs(5), |state, _| state == "idle").await;
}

/// Peers (tabs and native peers) connected to `relay` now; 0 while it is down.
async fn tabs_on(relay: &RestartableRelay) -> usize {
    relay.stats().await.map_or(0, |s| s.peers)
}

/// What `#net` says now.
async fn net_text(client: &Client) -> String {
    client.find(Locator::Id(id::NET)).await.expect("#net").text().await.expect("text")
}

/// What `#net` says, with the time since `start`, each time it changes (the tab's own account
/// of a reconnection, for the failure message).
async fn net_log(client: &Client, start: Instant, log: &mut Vec<String>) {
    let text = net_text(client).await;
    if log.last().is_none_or(|last| !last.ends_with(&text)) {
        log.push(format!("{:>6.1} s  {text}", start.elapsed().as_secs_f64()));
    }
}

/// Waits until `done` holds, polling every 100 ms; how long it took, or `None` after `limit`.
async fn within(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Issue 19, coming back: a tab whose relay restarts is in the swarm again within 5 s of the relay
/// serving again, and a tab whose relay dies for good fails over to the other relay it was told of
/// (at page load, in `/api/bootstrap`), within the same time.
#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn a_tab_comes_back_after_its_relay_restarts_and_fails_over_when_it_dies() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut a = RestartableRelay::start(|_| {}).await;
    let a_tcp = a.tcp_addr();
    let mut b = RestartableRelay::start(|s| s.peers = vec![a_tcp]).await;
    // The page reads the relay list once, at load: A must know B by then.
    let listed = within(Duration::from_secs(20), async || {
        get_json(&format!("{}/api/bootstrap", a.url)).await["relays"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert!(listed.is_some(), "relay A never listed relay B");

    let (_driver, client) =
        start_browser(&["--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]).await;
    open_page(&client, &format!("{}/?n=64&rounds=100000", a.url)).await;
    let mut log = Vec::new();
    let t0 = Instant::now();
    let joined = within(Duration::from_secs(60), async || {
        net_log(&client, t0, &mut log).await;
        tabs_on(&a).await == 1 && attr_of(&client, id::NET, data::STATE).await == "connected"
    })
    .await;
    assert!(joined.is_some(), "the tab never joined relay A:\n{}", log.join("\n"));
    // A tab that has been in the swarm a little while (its liveness checks running), as a tab is
    // when its relay restarts.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A restarts: down (as a process that exits), up again a second later on the same ports.
    log.clear();
    let t0 = Instant::now();
    a.down().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.up().await;
    log.push(format!("{:>6.1} s  relay A serving again", t0.elapsed().as_secs_f64()));
    let back = within(Duration::from_secs(60), async || {
        net_log(&client, t0, &mut log).await;
        tabs_on(&a).await + tabs_on(&b).await >= 1
    })
    .await;
    eprintln!("{}", log.join("\n"));
    let net = net_text(&client).await;
    let relay = attr_of(&client, id::NET, data::RELAY).await;
    let came_back =
        back.unwrap_or_else(|| panic!("the tab did not come back within 60 s of the restart: {net} ({relay})"));
    eprintln!(
        "back in the swarm {came_back:?} after its relay restarted (A {}, B {})",
        tabs_on(&a).await,
        tabs_on(&b).await
    );

    // The relay the tab is on dies for good: it goes to the other one.
    let settled =
        within(Duration::from_secs(30), async || attr_of(&client, id::NET, data::STATE).await == "connected").await;
    assert!(settled.is_some(), "the tab did not settle on a relay");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let on_a = tabs_on(&a).await == 1;
    let (dead, other) = if on_a { (&mut a, &b) } else { (&mut b, &a) };
    dead.down().await;
    let moved = within(Duration::from_secs(60), async || tabs_on(other).await == 1).await;
    let net = net_text(&client).await;
    let moved = moved.unwrap_or_else(|| panic!("the tab did not fail over within 60 s: {net}"));
    eprintln!("failed over in {moved:?} (from relay {})", if on_a { "A" } else { "B" });
    save_text("reconnect.txt", &format!("restart: back in {came_back:?}\nfailover: in {moved:?}\n"));
    assert!(came_back <= Duration::from_secs(5), "back only {came_back:?} after the restart");
    assert!(moved <= Duration::from_secs(5), "failed over only after {moved:?}");
}

//! The whole walking skeleton in a real browser: the relay serves the built page, headless Chromium
//! (driven through chromedriver) loads it, the worker multiplies on WebGPU (SwiftShader here) and the
//! page must report a result that agrees with the reference.
//!
//! Needs the built page (`cargo xtask build`), `chromium` and `chromedriver`. `cargo xtask test` runs
//! these inside a loopback-only network namespace; they are `#[ignore]`d for a plain `cargo test`.
//! Paths can be changed with `TABSWARM_ASSETS`, `CHROMEDRIVER` and `CHROME`.

use std::net::TcpListener as StdListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tabswarm_e2e::{ENABLE_WEBGPU, HEADLESS_CHROME_ARGS};
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

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

async fn start_relay() -> String {
    let config =
        RelayConfig { listen: "127.0.0.1:0".parse().expect("addr"), assets: assets_dir(), base_checkpoint: None };
    let relay = Relay::bind(&config).await.unwrap_or_else(|e| panic!("relay failed to start: {e}"));
    let addr = relay.local_addr().expect("relay addr");
    tokio::spawn(relay.serve(std::future::pending()));
    format!("http://{addr}")
}

async fn start_browser(extra_args: &[&str]) -> (Driver, Client) {
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chrome = std::env::var("CHROME").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let port = free_port();
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
    let base = start_relay().await;
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
    let base = start_relay().await;
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
    let base = start_relay().await;
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

/// Clicks a training button and waits for the run to finish; returns (first loss, last loss, text).
async fn train_in_page(client: &Client, button: &str, timeout: Duration) -> (f32, f32, String) {
    client.find(Locator::Id(button)).await.expect("train button").click().await.expect("click");
    let deadline = Instant::now() + timeout;
    loop {
        let status = client.find(Locator::Id("train-status")).await.expect("#train-status");
        let state = status.attr("data-state").await.expect("attr").unwrap_or_default();
        let text = status.text().await.expect("text");
        match state.as_str() {
            "done" => {
                let number = |v: Option<String>| v.and_then(|s| s.parse::<f32>().ok()).expect("loss attribute");
                let first = number(status.attr("data-first-loss").await.expect("attr"));
                let last = number(status.attr("data-loss").await.expect("attr"));
                return (first, last, text);
            }
            "error" => panic!("training failed in the page: {text}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "training still {state} after {timeout:?}: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs chromium, chromedriver and the built page: run `cargo xtask test`"]
async fn the_tab_trains_the_model_on_webgpu_and_on_the_cpu() {
    let base = start_relay().await;
    let (_driver, client) = start_browser(&[ENABLE_WEBGPU]).await;
    client.goto(&format!("{base}/?n=64&model=tiny&steps=25")).await.expect("load page");
    let (state, text, _) = settled_status(&client, Duration::from_secs(120)).await;
    assert_eq!(state, "ok", "{text}");
    let mut results = Vec::new();
    for button in ["train-webgpu", "train-cpu"] {
        let (first, last, text) = train_in_page(&client, button, Duration::from_secs(300)).await;
        // Saving reads the parameters back asynchronously: on WebGPU a blocking read would panic.
        let (link, href, bytes) = save_model_in_page(&client, Duration::from_secs(120)).await;
        save_text(&format!("{button}.txt"), &format!("{text}\n{link}\n"));
        assert!(href.starts_with("blob:"), "{button}: download link {href}");
        assert!(bytes > 10_000, "{button}: a checkpoint of {bytes} bytes");
        assert!(link.contains("step 25"), "{button}: {link}");
        results.push((button, first, last, text));
    }
    save_screenshot(&client, "page-trained.png").await;
    client.close().await.expect("close browser");
    for (button, first, last, text) in results {
        assert!(text.contains("step 25/25"), "{button}: {text}");
        assert!(last < first * 0.7, "{button}: loss {first} → {last} should fall in 25 steps ({text})");
    }
}

//! What the browser tests (`tests/page.rs`) and the browser benchmark (`benches/widget.rs`) share:
//! a relay serving the built page, a headless Chromium driven through chromedriver, a site owner's
//! page embedding the widget, and the files they leave in `target/e2e/`. Included by `#[path]` in
//! both (they are separate crates that need the dev-dependencies this uses).

// Each includer uses a part of this module; the rest would warn as unused there.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tabswarm_e2e::{HEADLESS_CHROME_ARGS, free_tcp_port};
use tabswarm_relay::swarm::SwarmConfig;
use tabswarm_relay::{Relay, RelayConfig};

/// Kills chromedriver and the Chromium it started when a test ends, pass or fail.
///
/// chromedriver runs in a process group of its own, which the browser it launches inherits; killing
/// the group stops exactly those processes. Killing chromedriver alone would orphan Chromium when a
/// test panics before closing its session.
pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn assets_dir() -> PathBuf {
    std::env::var_os("TABSWARM_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/dist"))
}

/// A relay serving the built page; its data folder lives as long as this does.
pub struct TestRelay {
    pub url: String,
    pub bootstrap: tabswarm_protocol::api::Bootstrap,
    pub ledger: tabswarm_relay::ledger::Ledger,
    _data: tempfile::TempDir,
}

pub async fn start_relay() -> TestRelay {
    start_relay_serving(None).await
}

pub async fn start_relay_serving(base_checkpoint: Option<PathBuf>) -> TestRelay {
    // The tab has no wallet in these tests: the relay lets unbound peers share, uncredited.
    start_relay_with(base_checkpoint, |swarm| swarm.accept_unbound = true, None).await
}

pub async fn start_relay_with(
    base_checkpoint: Option<PathBuf>,
    configure: impl FnOnce(&mut SwarmConfig),
    chain: Option<tabswarm_relay::chain::Chain>,
) -> TestRelay {
    let data = tempfile::tempdir().expect("relay data dir");
    let mut swarm = SwarmConfig::local(data.path().to_path_buf());
    configure(&mut swarm);
    let config = serving_the_page("127.0.0.1:0".parse().expect("addr"), base_checkpoint, swarm, chain);
    let relay = Relay::bind(&config).await.unwrap_or_else(|e| panic!("relay failed to start: {e}"));
    let addr = relay.local_addr().expect("relay addr");
    let bootstrap = relay.bootstrap();
    let ledger = relay.ledger().expect("the relay keeps a ledger").clone();
    tokio::spawn(relay.serve(std::future::pending()));
    TestRelay { url: format!("http://{addr}"), bootstrap, ledger, _data: data }
}

/// A relay configuration serving the built page.
fn serving_the_page(
    listen: std::net::SocketAddr,
    base_checkpoint: Option<PathBuf>,
    swarm: SwarmConfig,
    chain: Option<tabswarm_relay::chain::Chain>,
) -> RelayConfig {
    RelayConfig {
        listen,
        assets: assets_dir().into(),
        base_checkpoint: base_checkpoint.map(Into::into),
        model: Default::default(),
        model_from: None,
        swarm,
        chain,
        embedders: Default::default(),
    }
}

pub async fn start_browser(extra_args: &[&str]) -> (Driver, Client) {
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

pub fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&dir).expect("create target/e2e");
    dir
}

/// Keeps what the user would have seen in `target/e2e/` (a person can look at it after a run).
pub async fn save_screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(artifacts_dir().join(name), png).expect("write screenshot");
}

/// Keeps what the page said (the in-browser timing quoted in docs/benchmarks.md).
pub fn save_text(name: &str, text: &str) {
    std::fs::write(artifacts_dir().join(name), text).expect("write page text");
}

/// A small base checkpoint, pretrained here the way `tabswarm-peer pretrain` makes the real one, or
/// the checkpoint at `TABSWARM_E2E_BASE` (to measure the page on the swarm's real base, e.g.
/// `checkpoints/base-small-seed1.tswm`; docs/benchmarks.md).
pub fn make_base(dir: &std::path::Path) -> (PathBuf, String) {
    let path = dir.join("base.tswm");
    if let Some(given) = std::env::var_os("TABSWARM_E2E_BASE") {
        std::fs::copy(&given, &path).unwrap_or_else(|e| panic!("TABSWARM_E2E_BASE={given:?}: {e}"));
        let bytes = std::fs::read(&path).expect("read base");
        let sha = tabswarm_model::checkpoint::read_header(&bytes).expect("header").0.payload_sha256;
        return (path, sha);
    }
    let families = tabswarm_protocol::tasks::Family::ALL;
    let device = burn::tensor::Device::flex();
    let (_, bytes) = pollster::block_on(tabswarm_learn::pretrain::quick_base(
        tabswarm_model::ModelSize::Tiny,
        &families,
        150,
        64,
        &device,
    ))
    .expect("pretrain");
    let sha = tabswarm_model::checkpoint::read_header(&bytes).expect("header").0.payload_sha256;
    std::fs::write(&path, bytes).expect("write base");
    (path, sha)
}

/// Reads an attribute of an element, empty when absent.
pub async fn attr_of(client: &Client, id: &str, name: &str) -> String {
    let el = client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    el.attr(name).await.expect("attr").unwrap_or_default()
}

/// A site owner's page on another origin: the widget snippet (at `budget`), an event log of what
/// the element reports, `/plain` (the same page without the widget, for the load-time benchmark)
/// and `/foreign.html` (served to a third origin) that posts the element a forged state.
pub fn host_site(relay: &str, budget: u8) -> (String, tokio::task::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the host site");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let page = |snippet: &str, element: &str| {
        format!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A site owner's blog</title>
{snippet}</head>
<body><h1>A blog post</h1><p>Some text.</p>
{element}
<script>
window.__events = [];
document.addEventListener('tabswarm:state', (e) => window.__events.push({{ t: performance.now(), kind: 'state', ...e.detail }}));
document.addEventListener('visibilitychange', () => window.__events.push({{ t: performance.now(), kind: document.visibilityState }}));
</script></body></html>"#
        )
    };
    let host = page(
        &format!(r#"<script type="module" src="{relay}/widget.js"></script>"#),
        &format!(r#"<tabswarm-widget relay="{relay}" budget="{budget}"></tabswarm-widget>"#),
    );
    let plain = page("", "");
    let foreign = r#"<!doctype html><title>Someone else</title><script>
setInterval(() => parent.postMessage({ type: 'tabswarm:state', state: 'error', rounds: 999999 }, '*'), 100);
</script>"#
        .to_owned();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let (host, plain, foreign) = (host.clone(), plain.clone(), foreign.clone());
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let n = stream.read(&mut request).await.unwrap_or(0);
                let asked = String::from_utf8_lossy(&request[..n]);
                let body = if asked.starts_with("GET /foreign.html") {
                    foreign
                } else if asked.starts_with("GET /plain") {
                    plain
                } else {
                    host
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), server)
}

/// The widget element's `state` and `rounds`, as the host page reads them.
pub async fn widget_state(client: &Client) -> (String, u64) {
    let el = client.find(Locator::Css("tabswarm-widget")).await.expect("<tabswarm-widget>");
    let state = el.attr("state").await.expect("attr").unwrap_or_default();
    let rounds = el.attr("rounds").await.expect("attr").and_then(|r| r.parse().ok()).unwrap_or(0);
    (state, rounds)
}

pub async fn wait_widget(client: &Client, what: &str, timeout: Duration, done: impl Fn(&str, u64) -> bool) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let (state, rounds) = widget_state(client).await;
        if done(&state, rounds) {
            return rounds;
        }
        assert!(Instant::now() < deadline, "the widget never {what}: state {state}, {rounds} rounds");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Loads the host site's page and waits until the widget's card shows itself (`state="idle"`).
pub async fn open_host_page(client: &Client, site: &str) {
    client.goto(&format!("{site}/")).await.expect("load the host page");
    wait_widget(client, "showed itself", Duration::from_secs(30), |state, _| state == "idle").await;
}

/// Moves the client into the widget's frame (the iframe in the element's shadow root).
pub async fn enter_widget_frame(client: &Client) {
    let widget = client.find(Locator::Css("tabswarm-widget")).await.expect("<tabswarm-widget>");
    let frame = widget.shadow_root().await.expect("its card").find(Locator::Css("iframe")).await.expect("its frame");
    frame.enter_frame().await.expect("into the widget's frame");
}

/// The URLs the page has fetched so far (the Resource Timing entries).
pub async fn fetched(client: &Client) -> Vec<String> {
    serde_json::from_value(
        client.execute("return performance.getEntriesByType('resource').map((e) => e.name)", vec![]).await.expect("js"),
    )
    .expect("names")
}

/// The duty cycle a learning run held (in the document the client is focused on: the page, or the
/// widget's frame), over at least `window` of running: the share of wall time the worker spent
/// computing rounds, from `#train-status`'s `data-busy-ms` and `data-wall-ms` (the worker's clock,
/// read at round ends). A new run resets those counters; only the spans within one run count.
/// Returns (duty cycle 0–1, the wall milliseconds it covers, rounds finished meanwhile).
pub async fn measure_duty(client: &Client, window: Duration) -> (f64, f64, u64) {
    use tabswarm_client::ui::{data, id};
    let read = async || {
        let el = client.find(Locator::Id(id::TRAIN_STATUS)).await.expect("#train-status");
        let number = async |name: &str| -> f64 {
            el.attr(name).await.expect("attr").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
        };
        (number(data::BUSY_MS).await, number(data::WALL_MS).await, number(data::ROUND).await)
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut last = loop {
        let reading = read().await;
        if reading.0.is_finite() && reading.1.is_finite() {
            break reading;
        }
        assert!(Instant::now() < deadline, "the run never reported its pacing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (mut busy, mut wall, mut rounds) = (0.0, 0.0, 0u64);
    let until = Instant::now() + window;
    while Instant::now() < until || wall < window.as_millis() as f64 * 0.9 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read().await;
        if !(now.0.is_finite() && now.1.is_finite()) {
            continue;
        }
        if now.1 >= last.1 {
            busy += now.0 - last.0;
            wall += now.1 - last.1;
            rounds += (now.2 - last.2).max(0.0) as u64;
        }
        last = now;
        assert!(Instant::now() < until + Duration::from_secs(120), "the run stopped reporting its pacing");
    }
    (busy / wall, wall, rounds)
}

/// A Chrome DevTools Protocol command, through chromedriver's bridge: `Page.addScriptToEvaluateOnNewDocument`
/// runs a script in every new document before the page's own (how a wallet extension's content
/// script arrives); `Emulation.setEmulatedMedia` switches `prefers-color-scheme`.
#[derive(Debug)]
pub struct Cdp {
    pub cmd: &'static str,
    pub params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Renders the page as a browser set to a dark (`true`) or light colour scheme would.
pub async fn prefer_dark(client: &Client, dark: bool) {
    let value = if dark { "dark" } else { "light" };
    let params = serde_json::json!({ "features": [{ "name": "prefers-color-scheme", "value": value }] });
    client.issue_cmd(Cdp { cmd: "Emulation.setEmulatedMedia", params }).await.expect("emulate the colour scheme");
}

/// Runs the axe-core accessibility audit (`web/node_modules/axe-core`, pinned in
/// `web/package.json`; `cargo xtask build` installs it) on the document the client is in, for the
/// WCAG 2.1 A and AA rules (labels, names, contrast, landmarks, …). Returns each violation as
/// "rule (impact): what — the elements".
pub async fn accessibility_violations(client: &Client) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (`cargo xtask build` installs it with npm)", path.display()));
    client.execute(&source, vec![]).await.expect("load axe-core into the page");
    let audit = r#"const done = arguments[arguments.length - 1];
axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
  .then((r) => done(r.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)))
  .catch((e) => done([`the audit failed: ${e}`]));"#;
    let found = client.execute_async(audit, vec![]).await.expect("run axe-core");
    serde_json::from_value(found).expect("a list of violations")
}

/// A relay on fixed ports with a kept data folder, stopped and started again at will: its peer
/// id, WebRTC certificate and addresses survive a restart, as a restarted process's would.
pub struct RestartableRelay {
    pub url: String,
    config: RelayConfig,
    running: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>)>,
    swarm: Option<tabswarm_relay::swarm::SwarmHandle>,
    pub bootstrap: tabswarm_protocol::api::Bootstrap,
    _data: tempfile::TempDir,
}

impl RestartableRelay {
    pub async fn start(configure: impl FnOnce(&mut SwarmConfig)) -> Self {
        let data = tempfile::tempdir().expect("relay data dir");
        let mut swarm = SwarmConfig::local(data.path().to_path_buf());
        swarm.tcp_port = free_tcp_port();
        swarm.webrtc_port =
            std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("free UDP port").port();
        swarm.accept_unbound = true;
        configure(&mut swarm);
        let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().expect("addr");
        let config = serving_the_page(listen, None, swarm, None);
        let bound = Self::bind(&config).await;
        let bootstrap = bound.bootstrap();
        let mut relay =
            Self { url: format!("http://{listen}"), config, running: None, swarm: None, bootstrap, _data: data };
        relay.serve(bound);
        relay
    }

    /// Binds, retrying while the old sockets are let go.
    async fn bind(config: &RelayConfig) -> Relay {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Relay::bind(config).await {
                Ok(relay) => return relay,
                Err(e) if Instant::now() > deadline => panic!("the relay did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn serve(&mut self, relay: Relay) {
        self.swarm = relay.swarm().cloned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(relay.serve(async move {
            let _ = stopped.await;
        }));
        self.running = Some((stop, task));
    }

    /// Starts it again on the same ports and data folder.
    pub async fn up(&mut self) {
        let relay = Self::bind(&self.config).await;
        self.serve(relay);
    }

    /// Stops serving (HTTP and the swarm), as a process that exits would.
    pub async fn down(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        self.swarm = None;
    }

    /// What the relay sees of the swarm now.
    pub async fn stats(&self) -> Option<tabswarm_protocol::api::SwarmStats> {
        self.swarm.as_ref()?.stats().await.ok()
    }

    /// Its TCP swarm address, for another relay's `--peer`.
    pub fn tcp_addr(&self) -> libp2p::Multiaddr {
        self.bootstrap.addrs.iter().find(|a| a.contains("/tcp/")).expect("a TCP address").parse().expect("multiaddr")
    }
}

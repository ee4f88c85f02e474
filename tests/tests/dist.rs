//! The one-file relay an operator installs (`cargo xtask dist`): a relay binary built with the
//! page and the base checkpoint inside it serves both from an empty folder, on a machine path with
//! no Rust toolchain (nor anything else) on `PATH`, keeps its data where it was started, and stops
//! cleanly on SIGTERM as systemd stops it.
//!
//! `cargo xtask test` builds such a binary and names it in `TABSWARM_DIST_RELAY`, with the page it
//! was built from in `TABSWARM_ASSETS`; the test is `#[ignore]`d for a plain `cargo test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use tabswarm_e2e::free_tcp_port;

/// GET `url`: (status, content type, body).
async fn get(url: &str) -> Option<(u16, String, Vec<u8>)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, String>(HttpConnector::new());
    let response = client.get(url.parse().expect("uri")).await.ok()?;
    let status = response.status().as_u16();
    let content_type =
        response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = response.into_body().collect().await.ok()?.to_bytes().to_vec();
    Some((status, content_type, body))
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() { files_under(&path, found) } else { found.push(path) }
    }
}

/// Stops the relay by its PID when the test ends, pass or fail.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "needs a relay built with the page inside: run `cargo xtask test`"]
async fn the_one_file_relay_serves_its_page_and_base_from_an_empty_folder_without_a_toolchain() {
    let binary = PathBuf::from(std::env::var_os("TABSWARM_DIST_RELAY").expect(
        "TABSWARM_DIST_RELAY names a relay built with `--features tabswarm-relay/embedded` (`cargo xtask test` builds one)",
    ));
    let page = PathBuf::from(std::env::var_os("TABSWARM_ASSETS").expect("TABSWARM_ASSETS: the page it was built from"));
    let machine = tempfile::tempdir().expect("temp dir");
    // Only the binary: no web/dist, no checkpoint, no Cargo.toml above it, nothing on PATH.
    let installed = machine.path().join("bin/tabswarm-relay");
    std::fs::create_dir_all(installed.parent().expect("bin")).expect("mkdir bin");
    std::fs::copy(&binary, &installed).unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let workdir = machine.path().join("srv");
    let nothing_on_path = machine.path().join("empty-path");
    for dir in [&workdir, &nothing_on_path] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    let port = free_tcp_port();
    let (webrtc, p2p) = (free_tcp_port(), free_tcp_port());
    let child = Command::new(&installed)
        .current_dir(&workdir)
        .env_clear()
        .env("PATH", &nothing_on_path)
        .args(["--port", &port.to_string(), "--webrtc-port", &webrtc.to_string(), "--p2p-port", &p2p.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", installed.display()));
    let mut relay = Running(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if get(&format!("{url}/healthz")).await.is_some_and(|(status, _, _)| status == 200) {
            break;
        }
        if let Some(status) = relay.0.try_wait().expect("wait") {
            panic!("the one-file relay exited at start ({status}); its error is above");
        }
        assert!(Instant::now() < deadline, "the one-file relay did not answer /healthz within 2 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every file of the page it was built from, byte for byte, with the type a browser needs.
    let mut files = Vec::new();
    files_under(&page, &mut files);
    assert!(files.len() >= 10, "too few files in {} to judge: {files:?}", page.display());
    for file in &files {
        let key = file.strip_prefix(&page).expect("under the page").to_string_lossy().replace('\\', "/");
        let path = if key == "index.html" { String::new() } else { key.clone() };
        let (status, content_type, body) = get(&format!("{url}/{path}")).await.expect("an answer");
        assert_eq!(status, 200, "/{path}");
        assert!(body == std::fs::read(file).expect("read"), "/{path} differs from {}", file.display());
        if key.ends_with(".wasm") {
            assert_eq!(content_type, "application/wasm", "/{path}");
        }
    }
    // The widget's frame too, and the base it carries: the committed one, under its payload hash.
    let (status, _, embed) = get(&format!("{url}/embed")).await.expect("an answer");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&embed).contains("embed-contribute"), "/embed is not the widget's frame");
    let committed = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../checkpoints/base-small-seed1.tswm"))
        .expect("the committed base");
    let payload_sha =
        tabswarm_protocol::checkpoint::verify(&committed).expect("the committed base").summary.payload_sha256;
    let (status, _, info) = get(&format!("{url}/api/checkpoint/base.json")).await.expect("an answer");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&info));
    let info: serde_json::Value = serde_json::from_slice(&info).expect("json");
    assert_eq!(info["sha256"], serde_json::json!(payload_sha), "{info}");
    let (status, _, base) = get(&format!("{url}/api/checkpoint/base")).await.expect("an answer");
    assert_eq!((status, base == committed), (200, true), "the base served is not the committed file");
    let (status, _, model) = get(&format!("{url}/api/model")).await.expect("an answer");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&model));

    // Its data (key, certificate, ledger) where it was started, as the README says; SIGTERM stops it.
    let data = workdir.join("tabswarm-data");
    assert!(data.is_dir(), "no data folder in the working directory");
    let pid = relay.0.id().to_string();
    let signalled = Command::new("/bin/kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = relay.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the relay within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "the relay exited with {status} on SIGTERM");
}

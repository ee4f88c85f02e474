//! Shared settings of the browser tests; the tests themselves live in `tests/`.

/// Flags every headless Chromium of ours gets (the e2e tests here and the wasm-bindgen tests that
/// xtask runs). `--no-sandbox` is needed as root; the rest stop Chromium from phoning home, which
/// matters even inside the loopback-only namespace. WebGPU needs `--enable-unsafe-webgpu` on top.
pub const HEADLESS_CHROME_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
];

/// The flag that turns on WebGPU in headless Chromium (SwiftShader where there is no GPU).
pub const ENABLE_WEBGPU: &str = "--enable-unsafe-webgpu";

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server a test starts next).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

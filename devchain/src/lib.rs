//! A local development chain: anvil (npm `@foundry-rs/anvil`, installed into
//! `contracts/node_modules` by `npm ci --prefix contracts`) on loopback, for the relay's and the
//! end-to-end tests (a free port each) and for `cargo xtask run --chain` (127.0.0.1:8545, where a
//! wallet can be pointed). Stopped (by its own PID) when dropped. Needs nothing but std.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// anvil's well-known development keys (its default mnemonic), each funded on start. Public
/// knowledge: never use them on a real chain.
pub const DEV_KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
];
/// anvil's chain id.
pub const CHAIN_ID: u64 = 31337;

/// A running anvil.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub port: u16,
}

/// Where anvil is: `TABSWARM_ANVIL`, else the npm package's binary under `contracts/`.
pub fn anvil_path() -> PathBuf {
    std::env::var_os("TABSWARM_ANVIL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
    })
}

impl Anvil {
    /// Starts anvil on a free loopback port and waits until it accepts connections. Starts in one
    /// process are one at a time, from choosing the port until anvil listens on it, so two tests
    /// starting chains at once cannot be handed the same free port.
    pub fn start() -> Result<Self, String> {
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port for anvil: {e}"))?
            .port();
        Self::start_on(port)
    }

    /// Starts anvil on `127.0.0.1:port` and waits until it accepts connections; refuses a port
    /// something already listens on (that would be another chain, not this one).
    pub fn start_on(port: u16) -> Result<Self, String> {
        let path = anvil_path();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Err(format!("something already listens on {addr}; stop it first"));
        }
        let child = Command::new(&path)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id", &CHAIN_ID.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start anvil at {} ({e}): run `npm ci --prefix contracts` (or set TABSWARM_ANVIL)",
                    path.display()
                )
            })?;
        let mut anvil = Self { child, url: format!("http://127.0.0.1:{port}"), port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = anvil.child.try_wait() {
                return Err(format!("anvil exited at start ({status})"));
            }
            if Instant::now() > deadline {
                return Err(format!("anvil did not listen on {addr} within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // What answered must be this anvil, not something that took the port meanwhile.
        if let Ok(Some(status)) = anvil.child.try_wait() {
            return Err(format!("anvil exited at start ({status}); something else listens on {addr}"));
        }
        Ok(anvil)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_refused_with_its_address() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let err = Anvil::start_on(port).expect_err("in use");
        assert_eq!(err, format!("something already listens on 127.0.0.1:{port}; stop it first"));
    }
}

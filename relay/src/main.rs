//! `tabswarm-relay`: configuration and wiring. See the crate docs of `tabswarm_relay`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tabswarm_relay::{Relay, RelayConfig, shutdown_signal};
use tracing_subscriber::EnvFilter;

/// Serves the Tabswarm page and relays the swarm.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "TABSWARM_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// TCP port for HTTP.
    #[arg(long, env = "TABSWARM_PORT", default_value_t = 8080)]
    port: u16,
    /// Folder with the built page (made by `cargo xtask build`).
    #[arg(long, env = "TABSWARM_ASSETS", default_value = "web/dist")]
    assets: PathBuf,
    /// A checkpoint to serve as the swarm's base model at /api/checkpoint/base (verified at start).
    #[arg(long, env = "TABSWARM_BASE_CHECKPOINT")]
    base_checkpoint: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = RelayConfig {
        listen: SocketAddr::new(cli.host, cli.port),
        assets: cli.assets,
        base_checkpoint: cli.base_checkpoint,
    };
    let relay = match Relay::bind(&config).await {
        Ok(relay) => relay,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = relay.local_addr().unwrap_or(config.listen);
    tracing::info!(assets = %config.assets.display(), "relay listening on http://{addr}");
    if let Some(base) = relay.base_checkpoint() {
        tracing::info!(sha256 = %base.sha256, bytes = base.bytes, step = base.step, "serving the base checkpoint");
    }
    // The one line a person running the relay looks for.
    println!("Tabswarm relay serving http://{addr}  (Ctrl-C to stop)");
    match relay.serve(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("relay stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

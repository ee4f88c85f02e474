//! `tabswarm-relay`: configuration and wiring. See the crate docs of `tabswarm_relay`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use alloy_primitives::Address;
use clap::Parser;
use tabswarm_aggregate::{OuterConfig, Rule};
use tabswarm_protocol::identity::BindingDomain;
use tabswarm_relay::chain::{Chain, redact_url};
use tabswarm_relay::http::embed::Embedders;
use tabswarm_relay::limits::Limits;
use tabswarm_relay::model::ModelSettings;
use tabswarm_relay::swarm::{DEFAULT_CHAIN_ID, SwarmConfig};
use tabswarm_relay::{Relay, RelayConfig, Source, embedded, shutdown_signal};
use tracing_subscriber::EnvFilter;

/// Serves the Tabswarm page and relays the swarm.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<RelayCommand>,
    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "TABSWARM_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// TCP port for HTTP.
    #[arg(long, env = "TABSWARM_PORT", default_value_t = 8080)]
    port: u16,
    /// Folder with the built page (made by `cargo xtask build`). Default: the page built into
    /// this binary (`cargo xtask dist`), else web/dist.
    #[arg(long, env = "TABSWARM_ASSETS")]
    assets: Option<PathBuf>,
    /// A checkpoint to serve as the swarm's base model at /api/checkpoint/base (verified at start).
    /// Default: the base built into this binary (`cargo xtask dist`), else none.
    #[arg(long, env = "TABSWARM_BASE_CHECKPOINT")]
    base_checkpoint: Option<PathBuf>,
    /// Folder for the relay's libp2p key and WebRTC certificate (kept across restarts: the
    /// certificate's hash is part of the address browsers dial).
    #[arg(long, env = "TABSWARM_DATA_DIR", default_value = "tabswarm-data")]
    data_dir: PathBuf,
    /// UDP port of the WebRTC listener browsers connect to (open it in the firewall).
    #[arg(long, env = "TABSWARM_WEBRTC_PORT", default_value_t = 9090)]
    webrtc_port: u16,
    /// TCP port other relays and native peers connect to (open it in the firewall).
    #[arg(long, env = "TABSWARM_P2P_PORT", default_value_t = 9091)]
    p2p_port: u16,
    /// Public IP to advertise to browsers and other relays (behind NAT, or when --host is 0.0.0.0).
    #[arg(long, env = "TABSWARM_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// Another relay to join, as a multiaddr ending in /p2p/<peer id> (see its /api/bootstrap).
    /// Repeat for several; lost connections are redialled.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    peers: Vec<libp2p::Multiaddr>,
    /// Most connections the relay accepts (tabs, native peers, relays).
    #[arg(long, env = "TABSWARM_MAX_PEERS", default_value_t = 4096)]
    max_peers: u32,
    /// Most incoming connections in their handshake at once; more are refused at once (each
    /// WebRTC handshake holds memory until it ends, so this bounds what a burst of dials costs).
    #[arg(long, env = "TABSWARM_MAX_HANDSHAKES", default_value_t = tabswarm_relay::swarm::DEFAULT_MAX_HANDSHAKES)]
    max_handshakes: u32,
    /// Which swarm this relay serves; wallets bind peers to it, relays of one swarm share it.
    #[arg(long, env = "TABSWARM_SWARM_ID", default_value = tabswarm_relay::swarm::DEFAULT_SWARM_ID)]
    swarm_id: String,
    /// The domain people reach this relay's page at (`host[:port]`); bindings must name it, so a
    /// binding made on another site is refused. Default: the --host:--port address.
    #[arg(long, env = "TABSWARM_RELAY_DOMAIN")]
    relay_domain: Option<String>,
    /// The chain wallets sign bindings for (EIP-712 chain id). With --rpc-url it is the RPC's
    /// chain, and naming another one is an error.
    #[arg(long, env = "TABSWARM_CHAIN_ID")]
    chain_id: Option<u64>,
    /// JSON-RPC endpoint (http or https) of the chain with the SwarmRegistry: the relay submits
    /// bindings and round totals there. Without it the relay keeps its ledger alone.
    #[arg(long, env = "TABSWARM_RPC_URL", requires_all = ["registry", "chain_key_file"])]
    rpc_url: Option<String>,
    /// Address of the SwarmRegistry contract (contracts/SwarmRegistry.sol) on that chain.
    #[arg(long, env = "TABSWARM_REGISTRY", requires = "rpc_url")]
    registry: Option<Address>,
    /// File holding the hex private key the relay sends its registry transactions from (the
    /// registry's admin must allow its address with setRelay; it pays the gas).
    #[arg(long, env = "TABSWARM_CHAIN_KEY_FILE", requires = "rpc_url")]
    chain_key_file: Option<PathBuf>,
    /// How often the relay submits pending bindings and closed rounds to the registry, in
    /// seconds (at least 1).
    #[arg(long, env = "TABSWARM_SUBMIT_EVERY_SECS", default_value_t = tabswarm_relay::chain::SUBMIT_EVERY.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    submit_every_secs: u64,
    /// Length of a contribution round in seconds (the unit of the ledger's per-round records).
    #[arg(long, env = "TABSWARM_ROUND_SECS", default_value_t = tabswarm_relay::swarm::DEFAULT_ROUND_SECS)]
    round_secs: u64,
    /// Pass on rollouts of peers not bound to a wallet, credited to nobody (default: reject them
    /// and score their senders down). Also lets unbound peers feed the swarm model.
    #[arg(long, env = "TABSWARM_ACCEPT_UNBOUND")]
    accept_unbound: bool,
    /// Sites that may show the contribution widget (frame /embed): origins such as
    /// https://blog.example or https://*.example, comma-separated; default any site. Every other
    /// page of the relay refuses to be framed.
    #[arg(long = "embed-from", env = "TABSWARM_EMBED_FROM", value_delimiter = ',', value_name = "ORIGINS")]
    embed_from: Vec<String>,
    /// Swarm model: updates for the current version that make the relay take the outer step.
    #[arg(long, env = "TABSWARM_MIN_UPDATES", default_value_t = 2)]
    min_updates: usize,
    /// Swarm model: seconds after the first waiting update when the step is taken anyway.
    #[arg(long, env = "TABSWARM_MAX_WAIT_SECS", default_value_t = 300)]
    max_wait_secs: u64,
    /// Swarm model: rounds a peer trains between two updates (H; told to peers in /api/model).
    #[arg(long, env = "TABSWARM_SYNC_EVERY", default_value_t = 10)]
    sync_every: u32,
    /// Swarm model: how updates are aggregated.
    #[arg(long, env = "TABSWARM_AGGREGATION", value_enum, default_value = "clipped-mean")]
    aggregation: Aggregation,
    /// Swarm model: outer learning rate (DiLoCo uses 0.7; 0.35 with momentum 0.5 held up better
    /// here, docs/learning.md).
    #[arg(long, env = "TABSWARM_OUTER_LR", default_value_t = OuterConfig::default().outer_lr)]
    outer_lr: f32,
    /// Swarm model: mirror this relay's swarm model instead of running one (its URL): /api/model
    /// and versions are read from it and updates posted here are passed on to it, so peers of
    /// both relays feed one lineage.
    #[arg(long, env = "TABSWARM_MODEL_FROM", value_name = "URL")]
    model_from: Option<String>,
    /// Swarm model: outer Nesterov momentum (DiLoCo uses 0.9).
    #[arg(long, env = "TABSWARM_OUTER_MOMENTUM", default_value_t = OuterConfig::default().momentum)]
    outer_momentum: f32,
    /// Swarm model: refuse an update (of a minority) whose cosine with the swarm's heading — the
    /// way the outer steps have been moving the model — is below this; -1 turns the screen off.
    #[arg(long, env = "TABSWARM_MIN_HEADING", default_value_t = OuterConfig::default().min_heading, allow_negative_numbers = true, value_parser = tabswarm_aggregate::parse_cosine)]
    min_heading: f32,
    /// Limits: `POST /api/bindings` per client IP per minute (0: no limit). Over it a client gets
    /// 429 with Retry-After. Loopback clients are never limited.
    #[arg(long, env = "TABSWARM_BINDINGS_PER_MINUTE", default_value_t = DEFAULT_LIMITS.bindings_per_minute)]
    bindings_per_minute: u32,
    /// Limits: checkpoint downloads (`/api/checkpoint/…`) per client IP per minute (0: no limit).
    #[arg(long, env = "TABSWARM_DOWNLOADS_PER_MINUTE", default_value_t = DEFAULT_LIMITS.downloads_per_minute)]
    downloads_per_minute: u32,
    /// Limits: `POST /api/model/updates` per client IP per minute (0: no limit).
    #[arg(long, env = "TABSWARM_UPDATES_PER_MINUTE", default_value_t = DEFAULT_LIMITS.updates_per_minute)]
    updates_per_minute: u32,
    /// Limits: gossip messages one peer may publish per minute (0: no limit); past it its
    /// messages are refused (`rate_limited`) and it is scored down. Other relays are not limited.
    #[arg(long, env = "TABSWARM_GOSSIP_PER_PEER_PER_MINUTE", default_value_t = DEFAULT_LIMITS.gossip_per_peer_per_minute)]
    gossip_per_peer_per_minute: u32,
    /// Limits: open HTTP connections per client IP (an IPv6 client's /64; 0: no limit).
    #[arg(long, env = "TABSWARM_MAX_HTTP_CONNECTIONS_PER_IP", default_value_t = DEFAULT_LIMITS.http_connections_per_ip)]
    max_http_connections_per_ip: u32,
    /// Limits: open HTTP connections in all (0: no limit).
    #[arg(long, env = "TABSWARM_MAX_HTTP_CONNECTIONS", default_value_t = DEFAULT_LIMITS.http_connections)]
    max_http_connections: u32,
    /// Limits: swarm connections (WebRTC and TCP, in their handshake or established) per remote
    /// IP (0: no limit).
    #[arg(long, env = "TABSWARM_MAX_SWARM_CONNECTIONS_PER_IP", default_value_t = DEFAULT_LIMITS.swarm_connections_per_ip)]
    max_swarm_connections_per_ip: u32,
    /// Limits: seconds a client has to send a request's headers (slower ones, and idle
    /// keep-alive connections, are closed).
    #[arg(long, env = "TABSWARM_HEADER_TIMEOUT_SECS", default_value_t = DEFAULT_LIMITS.header_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,
    /// Limits: seconds a response may wait for its client to read before the connection is closed.
    #[arg(long, env = "TABSWARM_WRITE_STALL_SECS", default_value_t = DEFAULT_LIMITS.write_stall.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    write_stall_secs: u64,
    /// Reverse proxies (their IPs, comma-separated) whose X-Forwarded-For header names the
    /// client the limits apply to. A proxy on this machine (loopback) is always trusted.
    #[arg(long = "trusted-proxy", env = "TABSWARM_TRUSTED_PROXY", value_delimiter = ',', value_name = "IP")]
    trusted_proxies: Vec<IpAddr>,
}

/// The limits a relay starts with unless told otherwise.
const DEFAULT_LIMITS: Limits = Limits::DEFAULT;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Aggregation {
    /// Each update clipped to 2× the median norm, then the mean.
    ClippedMean,
    /// Per coordinate, the mean without the largest and smallest value.
    TrimmedMean,
    /// Per coordinate, the median.
    Median,
    /// The plain mean (no robustness).
    Mean,
}

impl Aggregation {
    fn rule(self) -> Rule {
        match self {
            Aggregation::ClippedMean => Rule::ClippedMean { multiplier: 2.0 },
            Aggregation::TrimmedMean => Rule::TrimmedMean { trim: 1 },
            Aggregation::Median => Rule::Median,
            Aggregation::Mean => Rule::Mean,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum RelayCommand {
    /// Deploy a SwarmRegistry (contracts/SwarmRegistry.sol) for a swarm and print its address.
    /// The deploying key becomes its admin and first allowed relay.
    DeployRegistry {
        /// JSON-RPC endpoint (http or https) of the chain to deploy on.
        #[arg(long, env = "TABSWARM_RPC_URL")]
        rpc_url: String,
        /// File holding the hex private key that deploys (and pays the gas).
        #[arg(long, env = "TABSWARM_CHAIN_KEY_FILE")]
        chain_key_file: PathBuf,
        /// The swarm the registry serves (relays of the swarm run with the same --swarm-id).
        #[arg(long, env = "TABSWARM_SWARM_ID", default_value = tabswarm_relay::swarm::DEFAULT_SWARM_ID)]
        swarm_id: String,
    },
}

/// The hex private key in `--chain-key-file`.
fn read_chain_key(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the chain key file {}: {e}", path.display()))
}

/// `deploy-registry`: the address goes to stdout alone (scripts read it), the rest to stderr.
async fn deploy_registry(rpc_url: &str, key_file: &std::path::Path, swarm_id: &str) -> Result<(), String> {
    let key = read_chain_key(key_file)?;
    let chain =
        Chain::deploy(rpc_url, &key, swarm_id).await.map_err(|e| format!("--rpc-url {}: {e}", redact_url(rpc_url)))?;
    eprintln!(
        "SwarmRegistry for swarm {swarm_id:?} deployed on chain {}; admin and first relay {}. Serve with:\n  \
         tabswarm-relay --swarm-id {swarm_id} --rpc-url {} --registry {} --chain-key-file {}",
        chain.chain_id(),
        chain.sender(),
        chain.url(),
        chain.registry(),
        key_file.display()
    );
    println!("{}", chain.registry());
    Ok(())
}

/// The registry client for --rpc-url / --registry / --chain-key-file, checked before anything
/// listens: the endpoint answers, a contract is there, the chain is the one asked for.
async fn connect_chain(cli: &Cli) -> Result<Option<Chain>, String> {
    let (Some(url), Some(registry), Some(key_file)) = (&cli.rpc_url, cli.registry, &cli.chain_key_file) else {
        return Ok(None);
    };
    let key = read_chain_key(key_file)?;
    let chain = Chain::connect(url, registry, &key).await.map_err(|e| format!("--rpc-url {}: {e}", redact_url(url)))?;
    if let Some(asked) = cli.chain_id
        && asked != chain.chain_id()
    {
        return Err(format!("--chain-id {asked}, but {} serves chain {}", chain.url(), chain.chain_id()));
    }
    tracing::info!(%registry, chain = chain.chain_id(), relay = %chain.sender(), "submitting to the registry");
    Ok(Some(chain.with_submit_every(std::time::Duration::from_secs(cli.submit_every_secs))))
}

/// What the relay logs unless `RUST_LOG` says otherwise. gossipsub warns once per message it
/// cannot pass to a slow peer or that fails its signature check, with the whole message in the
/// line: under load or an attack that floods the log (the relay counts both itself, in
/// `/api/swarm`'s `undelivered` and `rejected`).
const DEFAULT_LOG: &str = "info,tower_http=info,libp2p_gossipsub=error";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Some(RelayCommand::DeployRegistry { rpc_url, chain_key_file, swarm_id }) = &cli.command {
        return match deploy_registry(rpc_url, chain_key_file, swarm_id).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let chain = match connect_chain(&cli).await {
        Ok(chain) => chain,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let embedders = match Embedders::parse(&cli.embed_from) {
        Ok(embedders) => embedders,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = RelayConfig {
        embedders,
        listen: SocketAddr::new(cli.host, cli.port),
        // A one-file relay (`cargo xtask dist`) serves what it carries unless told otherwise.
        assets: match cli.assets {
            Some(dir) => Source::Path(dir),
            None if embedded::EMBEDDED => Source::Embedded,
            None => Source::Path(PathBuf::from("web/dist")),
        },
        base_checkpoint: match cli.base_checkpoint {
            Some(file) => Some(Source::Path(file)),
            None if embedded::EMBEDDED => Some(Source::Embedded),
            None => None,
        },
        model_from: cli.model_from,
        model: ModelSettings {
            min_updates: cli.min_updates.max(1),
            max_wait: std::time::Duration::from_secs(cli.max_wait_secs),
            sync_every: cli.sync_every.max(1),
            outer: OuterConfig {
                rule: cli.aggregation.rule(),
                outer_lr: cli.outer_lr,
                momentum: cli.outer_momentum,
                min_heading: cli.min_heading,
                ..OuterConfig::default()
            },
            ..ModelSettings::default()
        },
        swarm: SwarmConfig {
            data_dir: cli.data_dir,
            listen_ip: cli.host,
            webrtc_port: cli.webrtc_port,
            tcp_port: cli.p2p_port,
            public_ip: cli.public_ip,
            peers: cli.peers,
            max_peers: cli.max_peers,
            max_handshakes: cli.max_handshakes,
            domain: BindingDomain {
                chain_id: chain.as_ref().map_or(cli.chain_id.unwrap_or(DEFAULT_CHAIN_ID), Chain::chain_id),
                verifying_contract: chain.as_ref().map_or(Address::ZERO, Chain::registry),
                swarm_id: cli.swarm_id,
                relay_domain: cli.relay_domain.unwrap_or_else(|| SocketAddr::new(cli.host, cli.port).to_string()),
            },
            round_secs: cli.round_secs,
            accept_unbound: cli.accept_unbound,
            limits: Limits {
                bindings_per_minute: cli.bindings_per_minute,
                downloads_per_minute: cli.downloads_per_minute,
                updates_per_minute: cli.updates_per_minute,
                gossip_per_peer_per_minute: cli.gossip_per_peer_per_minute,
                http_connections_per_ip: cli.max_http_connections_per_ip,
                http_connections: cli.max_http_connections,
                swarm_connections_per_ip: cli.max_swarm_connections_per_ip,
                header_timeout: std::time::Duration::from_secs(cli.header_timeout_secs),
                write_stall: std::time::Duration::from_secs(cli.write_stall_secs),
                trusted_proxies: cli.trusted_proxies.iter().map(|ip| ip.to_canonical()).collect(),
                limit_loopback: false,
            },
        },
        chain,
    };
    let relay = match Relay::bind(&config).await {
        Ok(relay) => relay,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = relay.local_addr().unwrap_or(config.listen);
    match &config.assets {
        Source::Path(dir) => tracing::info!(assets = %dir.display(), "relay listening on http://{addr}"),
        Source::Embedded => tracing::info!("relay listening on http://{addr}, serving the page built into this binary"),
    }
    if let Some(base) = relay.base_checkpoint() {
        tracing::info!(sha256 = %base.sha256, bytes = base.bytes, step = base.step, "serving the base checkpoint");
    }
    if let Some(upstream) = &config.model_from {
        tracing::info!(%upstream, "mirroring the swarm model of another relay at /api/model");
    } else if let Some(model) = relay.model() {
        let info = model.info();
        tracing::info!(version = info.number, hash = %info.hash, "serving the swarm model at /api/model");
    }
    for addr in relay.bootstrap().addrs {
        tracing::info!(%addr, "swarm address");
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, OuterConfig};

    #[test]
    fn the_heading_screen_is_on_by_default_and_a_bad_cosine_is_refused_by_name() {
        let cli = Cli::try_parse_from(["tabswarm-relay"]).expect("defaults");
        assert_eq!(cli.min_heading, OuterConfig::default().min_heading);
        assert_eq!((cli.outer_lr, cli.outer_momentum), (0.35, 0.5));
        let off = Cli::try_parse_from(["tabswarm-relay", "--min-heading", "-1"]).expect("off");
        assert_eq!(off.min_heading, -1.0);
        for bad in ["2", "-1.5", "north"] {
            let err = Cli::try_parse_from(["tabswarm-relay", "--min-heading", bad]).expect_err(bad).to_string();
            assert!(err.contains("--min-heading") && (err.contains("cosine") || err.contains("number")), "{err}");
        }
    }
}

//! `tabswarm-loadgen`: puts a relay under load and says what it cost.
//!
//! ```sh
//! cargo build --release -p tabswarm-relay -p tabswarm-loadgen
//! target/release/tabswarm-loadgen run --relay-bin target/release/tabswarm-relay \
//!     --peers 100,500,1000 --rates 50,500 --transport tcp
//! ```
//! It starts the relay on free loopback ports with an empty data folder, connects the peers
//! from several worker processes, and for each rate has them publish for a while; then it prints
//! one table row per (peers, rate). webrtc-direct needs an address ICE will use (it skips
//! loopback): run it in a namespace where `lo` also has one, see docs/benchmarks.md.
//! `handshakes --ip <addr> --counts 64,200` instead holds that many WebRTC handshakes open at once
//! (a STUN binding request each, then silence) and prints the relay's memory.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use libp2p::Multiaddr;
use serde::Serialize;
use tabswarm_loadgen::peer::{Transport, now_micros, rollout_message};
use tabswarm_loadgen::proc::{TICKS_PER_SECOND, usage};
use tabswarm_loadgen::worker::{self, Order, PhaseReport, Said};
use tabswarm_net::native::{fetch_bootstrap, fetch_swarm_stats};
use tokio::runtime::Runtime;

#[derive(Parser, Debug)]
#[command(name = "tabswarm-loadgen", version, about = "Load for a Tabswarm relay: many light peers, timed deliveries.")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start a relay, connect peers to it, publish at each rate, print what it cost.
    Run(RunArgs),
    /// Start a relay, open WebRTC handshakes that stall after their first packet (a STUN
    /// binding request from each of N addresses), and print the relay's memory as they are held
    /// and after it has given up on them.
    Handshakes(HandshakeArgs),
    /// One process of peers, driven by `run` over stdin/stdout.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        relay: Multiaddr,
        #[arg(long)]
        peers: usize,
        #[arg(long, value_enum)]
        transport: Transport,
        #[arg(long)]
        local_ip: IpAddr,
        #[arg(long, default_value_t = 3)]
        tries: usize,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The relay binary to start (one fresh relay per peer count).
    #[arg(long, default_value = "target/release/tabswarm-relay")]
    relay_bin: PathBuf,
    /// Extra arguments for the relay (repeat for each), e.g. to try its memory settings.
    #[arg(long = "relay-arg", allow_hyphen_values = true)]
    relay_args: Vec<String>,
    /// The address the relay and the peers use. webrtc-direct needs one that is not loopback
    /// (ICE skips loopback candidates).
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
    /// Peer counts to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    peers: Vec<usize>,
    /// Total publish rates (messages a second, all peers together), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    rates: Vec<f64>,
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    transport: Transport,
    /// Seconds of publishing at each rate.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds to wait after publishing for the last deliveries.
    #[arg(long, default_value_t = 3)]
    drain: u64,
    /// Worker processes the peers are spread over.
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// Completions per published rollout group (sets the message size).
    #[arg(long, default_value_t = 8)]
    completions: usize,
    /// Also write every row as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct HandshakeArgs {
    /// The relay binary to start (one fresh relay per count).
    #[arg(long, default_value = "target/release/tabswarm-relay")]
    relay_bin: PathBuf,
    /// Extra arguments for the relay (repeat for each), e.g. `--relay-arg=--max-handshakes
    /// --relay-arg=1000` to let every stalled handshake in.
    #[arg(long = "relay-arg", allow_hyphen_values = true)]
    relay_args: Vec<String>,
    /// The address the relay listens on and the handshakes come from (not loopback: ICE skips it).
    #[arg(long)]
    ip: IpAddr,
    /// Stalled handshakes to open at once, comma separated (a fresh relay for each count).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    counts: Vec<usize>,
    /// Seconds to wait, after the last request, before reading the relay's memory again.
    #[arg(long, default_value_t = 40)]
    hold: u64,
}

/// One measured (transport, peers, rate).
#[derive(Debug, Serialize)]
struct Row {
    transport: String,
    peers: usize,
    failed_peers: usize,
    connect_secs: f64,
    rate: f64,
    seconds: u64,
    message_bytes: usize,
    published: u64,
    publish_failed: u64,
    disconnects: u64,
    /// Messages the relay dropped for peers too slow to take them (its own count).
    undelivered: u64,
    deliveries: u64,
    expected: u64,
    deliveries_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    relay_cpu_percent: f64,
    workers_cpu_percent: f64,
    relay_idle_rss_kib: u64,
    relay_connected_rss_kib: u64,
    relay_rss_kib: u64,
    rss_per_peer_kib: f64,
}

impl Row {
    fn markdown_header() -> &'static str {
        "| transport | peers | rate msg/s | msg bytes | delivered / expected | deliveries/s | p50 ms | p99 ms | relay CPU | load CPU | relay RSS connected (after) | RSS per peer | connect |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|"
    }

    fn markdown(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
        let failed = if self.failed_peers > 0 { format!(" ({} failed)", self.failed_peers) } else { String::new() };
        let refused =
            if self.publish_failed > 0 { format!(", {} not published", self.publish_failed) } else { String::new() };
        let mut lost = String::new();
        if self.disconnects > 0 {
            lost += &format!(", {} disconnects", self.disconnects);
        }
        if self.undelivered > 0 {
            lost += &format!(", relay dropped {} for slow peers", self.undelivered);
        }
        format!(
            "| {} | {}{failed} | {} for {} s | {} | {} / {} ({:.1} %){refused}{lost} | {:.0} | {} | {} | {:.0} % | {:.0} % | {} MiB ({} MiB) | {:.1} KiB | {:.1} s |",
            self.transport,
            self.peers,
            self.rate,
            self.seconds,
            self.message_bytes,
            self.deliveries,
            self.expected,
            if self.expected > 0 { 100.0 * self.deliveries as f64 / self.expected as f64 } else { 0.0 },
            self.deliveries_per_sec,
            ms(self.p50_ms),
            ms(self.p99_ms),
            self.relay_cpu_percent,
            self.workers_cpu_percent,
            self.relay_connected_rss_kib / 1024,
            self.relay_rss_kib / 1024,
            self.rss_per_peer_kib,
            self.connect_secs,
        )
    }
}

/// The messages of a phase (each worker's `(first seed, count)`) that fewer than `want` peers
/// received, with how many did, in seed order.
fn short_messages(shares: &[(u64, u64)], receivers: &BTreeMap<u64, u32>, want: u32) -> Vec<(u64, u32)> {
    shares
        .iter()
        .flat_map(|&(first, count)| first..first + count)
        .map(|seed| (seed, receivers.get(&seed).copied().unwrap_or(0)))
        .filter(|&(_, got)| got < want)
        .collect()
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port(ip: IpAddr) -> Result<u16, String> {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on {ip}: {e}"))
}

/// A relay started for one peer count, and where its peers dial it.
struct Relay {
    process: Killed,
    addr: Multiaddr,
    /// Its HTTP API, `http://ip:port`.
    url: String,
    _data: tempfile::TempDir,
    _assets: tempfile::TempDir,
}

fn spawn_relay(
    relay_bin: &std::path::Path,
    relay_args: &[String],
    ip: IpAddr,
    transport: Transport,
    peers: usize,
    runtime: &Runtime,
) -> Result<Relay, String> {
    let data = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let assets = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    std::fs::write(assets.path().join("index.html"), "<!doctype html>").map_err(|e| format!("index.html: {e}"))?;
    let http = free_port(ip)?;
    let process = Command::new(relay_bin)
        .args(["--host", &ip.to_string(), "--port", &http.to_string(), "--webrtc-port", "0", "--p2p-port", "0"])
        .arg("--assets")
        .arg(assets.path())
        .arg("--data-dir")
        .arg(data.path())
        // The load is gossip, not identity: peers share unbound (credited to nobody).
        .arg("--accept-unbound")
        // A few load peers carry the whole rate (a tab publishes once a round); every peer of
        // the run comes from one address.
        .args(["--gossip-per-peer-per-minute", "0", "--max-swarm-connections-per-ip", "0"])
        .args(["--max-peers", &(peers + 64).to_string()])
        .args(relay_args)
        // gossipsub's per-message warnings would flood (the relay counts them in /api/swarm).
        .env("RUST_LOG", "warn,libp2p_gossipsub=error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!("cannot start {}: {e} (build it: cargo build --release -p tabswarm-relay)", relay_bin.display())
        })?;
    let mut process = Killed(process);
    let started = Instant::now();
    let url = format!("http://{}", std::net::SocketAddr::new(ip, http));
    let addrs = loop {
        if let Ok((addrs, _)) = runtime.block_on(fetch_bootstrap(&url)) {
            break addrs;
        }
        if let Ok(Some(status)) = process.0.try_wait() {
            return Err(format!("the relay exited at start ({status})"));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the relay did not answer /api/bootstrap within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let addr = addrs
        .iter()
        .find(|a| transport.dials(a))
        .cloned()
        .ok_or_else(|| format!("the relay advertises no {} address: {addrs:?}", transport))?;
    Ok(Relay { process, addr, url, _data: data, _assets: assets })
}

/// A worker process and the lines it says.
struct Worker {
    process: Killed,
    stdin: Option<ChildStdin>,
    said: mpsc::Receiver<Said>,
}

impl Worker {
    fn start(relay: &Multiaddr, peers: usize, args: &RunArgs) -> Result<Worker, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let mut child = Command::new(exe)
            .args(["worker", "--relay", &relay.to_string(), "--peers", &peers.to_string()])
            .args(["--transport", &format!("{:?}", args.transport).to_lowercase(), "--local-ip", &args.ip.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("worker without stdout")?;
        let (tx, said) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str(&line) {
                    Ok(s) => {
                        if tx.send(s).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("tabswarm-loadgen: a worker said something else ({e}): {line}"),
                }
            }
        });
        Ok(Worker { process: Killed(child), stdin, said })
    }

    fn order(&mut self, order: &Order) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("worker stdin closed")?;
        let line = serde_json::to_string(order).map_err(|e| e.to_string())?;
        writeln!(stdin, "{line}").and_then(|_| stdin.flush()).map_err(|e| format!("a worker stopped listening: {e}"))
    }

    fn next(&self, timeout: Duration) -> Result<Said, String> {
        self.said.recv_timeout(timeout).map_err(|_| format!("a worker said nothing for {} s", timeout.as_secs()))
    }
}

impl Relay {
    /// Messages the relay could not pass to a slow peer so far (`/api/swarm`'s `undelivered`).
    fn undelivered(&self, runtime: &Runtime) -> u64 {
        runtime.block_on(fetch_swarm_stats(&self.url)).map_or(0, |stats| stats.undelivered.values().sum())
    }
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| usage(*p)).map(|(t, _)| t).sum()
}

/// One relay, `peers` peers, every rate.
fn measure(args: &RunArgs, peers: usize, rows: &mut Vec<Row>, runtime: &Runtime) -> Result<(), String> {
    let relay = spawn_relay(&args.relay_bin, &args.relay_args, args.ip, args.transport, peers, runtime)?;
    let pid = relay.process.0.id();
    std::thread::sleep(Duration::from_millis(500));
    let (_, idle_rss) = usage(pid).ok_or("the relay is gone")?;
    let processes = args.processes.clamp(1, peers.max(1));
    let connect_started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..processes {
        let share = peers / processes + usize::from(i < peers % processes);
        workers.push(Worker::start(&relay.addr, share, args)?);
    }
    let (mut connected, mut failed) = (0, 0);
    for worker in &workers {
        match worker.next(Duration::from_secs(600))? {
            Said::Connected { peers, failed: f, failures } => {
                connected += peers;
                failed += f;
                for why in failures.iter().take(2) {
                    eprintln!("tabswarm-loadgen: a peer could not connect: {why}");
                }
            }
            other => return Err(format!("a worker said {other:?} before connecting")),
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    eprintln!(
        "tabswarm-loadgen: {connected} of {peers} peers connected over {} in {connect_secs:.1} s",
        args.transport
    );
    // Meshes form on the next heartbeats.
    std::thread::sleep(Duration::from_secs(3));
    let (_, connected_rss) = usage(pid).ok_or("the relay is gone")?;
    let worker_pids: Vec<u32> = workers.iter().map(|w| w.process.0.id()).collect();
    let message_bytes = rollout_message(&libp2p::PeerId::random().to_string(), 0, args.completions, now_micros()).len();
    for (phase, rate) in args.rates.iter().enumerate() {
        let total = (rate * args.seconds as f64).round() as u64;
        let since = now_micros();
        let (relay_before, workers_before) = (cpu_ticks(&[pid]), cpu_ticks(&worker_pids));
        let undelivered_before = relay.undelivered(runtime);
        let started = Instant::now();
        let mut shares = Vec::new();
        for (i, worker) in workers.iter_mut().enumerate() {
            let share = total / processes as u64 + u64::from((i as u64) < total % processes as u64);
            let first_seed = ((phase as u64 + 1) << 40) | ((i as u64) << 32);
            shares.push((first_seed, share));
            worker.order(&Order::Publish {
                total: share,
                rate: rate / processes as f64,
                first_seed,
                completions: args.completions,
                since,
                drain_ms: args.drain * 1000,
            })?;
        }
        let mut report = PhaseReport::default();
        for worker in &workers {
            match worker.next(Duration::from_secs(args.seconds + args.drain + 600))? {
                Said::Phase(r) => report.merge(&r),
                other => return Err(format!("a worker said {other:?} instead of its phase report")),
            }
        }
        let window = started.elapsed().as_secs_f64();
        let percent = |ticks: u64| 100.0 * ticks as f64 / TICKS_PER_SECOND / window;
        let relay_cpu = percent(cpu_ticks(&[pid]).saturating_sub(relay_before));
        let workers_cpu = percent(cpu_ticks(&worker_pids).saturating_sub(workers_before));
        let (_, relay_rss) = usage(pid).ok_or("the relay died under load")?;
        let deliveries = report.latency.count();
        let undelivered = relay.undelivered(runtime).saturating_sub(undelivered_before);
        let row = Row {
            transport: args.transport.to_string(),
            peers: connected,
            failed_peers: failed,
            connect_secs,
            rate: *rate,
            seconds: args.seconds,
            message_bytes,
            published: report.published,
            publish_failed: report.publish_failed,
            disconnects: report.disconnects,
            undelivered,
            deliveries,
            expected: report.published * connected.saturating_sub(1) as u64,
            deliveries_per_sec: deliveries as f64 / args.seconds as f64,
            p50_ms: report.latency.quantile_ms(0.5),
            p99_ms: report.latency.quantile_ms(0.99),
            relay_cpu_percent: relay_cpu,
            workers_cpu_percent: workers_cpu,
            relay_idle_rss_kib: idle_rss,
            relay_connected_rss_kib: connected_rss,
            relay_rss_kib: relay_rss,
            rss_per_peer_kib: connected_rss.saturating_sub(idle_rss) as f64 / connected.max(1) as f64,
        };
        println!("{}", row.markdown());
        let short = short_messages(&shares, &report.receivers_by_seed, connected.saturating_sub(1) as u32);
        if !short.is_empty() {
            let listed: Vec<String> =
                short.iter().take(8).map(|(seed, got)| format!("seed {seed:#x}: {got} of {}", connected - 1)).collect();
            eprintln!(
                "tabswarm-loadgen: {} message(s) reached fewer than every other peer (publishes refused included): {}",
                short.len(),
                listed.join(", ")
            );
        }
        rows.push(row);
    }
    // Closing their stdin stops the workers; dropping kills whatever is left.
    for worker in &mut workers {
        worker.stdin = None;
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<(), String> {
    if args.peers.iter().any(|p| *p < 2) {
        return Err("--peers: each count must be at least 2 (a delivery needs another peer)".into());
    }
    if args.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        return Err("--rates: each rate must be a positive number of messages a second".into());
    }
    if args.seconds == 0 {
        return Err("--seconds must be at least 1".into());
    }
    // The relay's HTTP API is read with the native peer's client (tabswarm-net), which is async.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no async runtime: {e}"))?;
    println!("{}", Row::markdown_header());
    let mut rows = Vec::new();
    for peers in &args.peers {
        measure(&args, *peers, &mut rows, &runtime)?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// RSS of `pid` in KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    usage(pid).map_or(0, |(_, rss)| rss)
}

fn handshakes(args: HandshakeArgs) -> Result<(), String> {
    use libp2p::multiaddr::Protocol;
    use tabswarm_loadgen::stall::{binding_request, random_ufrag};

    if args.ip.is_loopback() {
        return Err("--ip must not be loopback: ICE skips loopback (see docs/benchmarks.md)".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no async runtime: {e}"))?;
    println!(
        "| stalled handshakes | relay RSS idle | while held (2 s) | per handshake | after {} s | refused by the relay | a new peer then connects |",
        args.hold
    );
    println!("|---|---|---|---|---|---|---|");
    for &count in &args.counts {
        let relay = spawn_relay(&args.relay_bin, &args.relay_args, args.ip, Transport::Webrtc, count, &runtime)?;
        let port = relay
            .addr
            .iter()
            .find_map(|p| if let Protocol::Udp(port) = p { Some(port) } else { None })
            .ok_or_else(|| format!("no UDP port in {}", relay.addr))?;
        let pid = relay.process.0.id();
        std::thread::sleep(Duration::from_secs(2));
        let idle = rss_kib(pid);
        // One socket per handshake: the listener starts a connection per new address.
        let mut sockets = Vec::with_capacity(count);
        for _ in 0..count {
            let socket = std::net::UdpSocket::bind((args.ip, 0)).map_err(|e| format!("a UDP socket: {e}"))?;
            socket
                .send_to(&binding_request(&random_ufrag())?, (args.ip, port))
                .map_err(|e| format!("sending a binding request: {e}"))?;
            sockets.push(socket);
        }
        std::thread::sleep(Duration::from_secs(2));
        let held = rss_kib(pid);
        std::thread::sleep(Duration::from_secs(args.hold.saturating_sub(2)));
        let after = rss_kib(pid);
        // The relay must have let go of them: a real peer gets in.
        let fleet = runtime.block_on(tabswarm_loadgen::peer::Fleet::connect(
            relay.addr.clone(),
            1,
            Transport::Webrtc,
            args.ip,
            1,
        ));
        let gets_in = if fleet.failed == 0 { "yes".to_owned() } else { format!("no: {:?}", fleet.failures) };
        let refused = runtime
            .block_on(fetch_swarm_stats(&relay.url))
            .map(|s| s.connections_refused.values().sum::<u64>().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        println!(
            "| {count} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} MiB | {refused} | {gets_in} |",
            idle as f64 / 1024.0,
            held as f64 / 1024.0,
            held.saturating_sub(idle) as f64 / count.max(1) as f64,
            after as f64 / 1024.0,
        );
        drop(sockets);
    }
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Run(args) => {
            if let Err(e) = run(args) {
                eprintln!("tabswarm-loadgen: {e}");
                std::process::exit(1);
            }
        }
        Cmd::Handshakes(args) => {
            if let Err(e) = handshakes(args) {
                eprintln!("tabswarm-loadgen: {e}");
                std::process::exit(1);
            }
        }
        Cmd::Worker { relay, peers, transport, local_ip, tries } => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("tabswarm-loadgen worker: no runtime: {e}");
                    std::process::exit(1);
                }
            };
            runtime.block_on(worker::run(relay, peers, transport, local_ip, tries));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed each worker published is checked, the ones short of `want` listed with what
    /// they got (absent: nobody), and nothing outside the shares.
    #[test]
    fn messages_short_of_every_receiver_are_listed_with_their_count() {
        let shares = [(100, 3), (200, 2)];
        let receivers = BTreeMap::from([(100, 4), (101, 3), (102, 4), (200, 4), (999, 1)]);
        assert_eq!(short_messages(&shares, &receivers, 4), vec![(101, 3), (201, 0)]);
        assert_eq!(short_messages(&shares, &receivers, 3), vec![(201, 0)]);
        assert_eq!(short_messages(&[], &receivers, 4), vec![]);
    }
}

//! Relay load benchmark: N native peers (the real `tabswarm_net` node, over TCP) on one
//! relay process; the peers publish valid rollout groups at a fixed total rate and every peer
//! records when each arrives. Reports, per N: publisher → relay → subscriber latency p50/p99,
//! deliveries per second achieved against those expected, and the relay process's CPU and RSS
//! (read from /proc) per connected peer.
//!
//! ```sh
//! cargo build --release -p tabswarm-relay
//! cargo bench -p tabswarm-e2e --bench swarm -- --relay target/release/tabswarm-relay --peers 10,100,500 --rate 500
//! ```
//! Linux only (reads /proc). Everything binds 127.0.0.1.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tabswarm_net::{ConnectionState, NodeCommand, NodeEvent, native};
use tabswarm_protocol::api::Bootstrap;
use tabswarm_protocol::rollout::RolloutGroup;
use tabswarm_protocol::tasks::{Family, QuestionId};

struct Args {
    relay: PathBuf,
    peers: Vec<usize>,
    rate: u64,
    seconds: u64,
}

fn args() -> Args {
    let mut args = Args {
        relay: PathBuf::from("target/release/tabswarm-relay"),
        peers: vec![10, 100, 500],
        rate: 500,
        seconds: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--relay" => args.relay = value().into(),
            "--peers" => args.peers = value().split(',').map(|n| n.parse().expect("--peers 10,100")).collect(),
            "--rate" => args.rate = value().parse().expect("--rate <messages per second>"),
            "--seconds" => args.seconds = value().parse().expect("--seconds <n>"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// The relay process, killed when dropped.
struct RelayProcess(Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime of a process, in clock ticks, and its resident set in KiB.
fn proc_usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks, rss)
}

async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.ok()?;
    reply.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index] as f64 / 1e3
}

async fn one(args: &Args, peers: usize) {
    let data = tempfile::tempdir().expect("tempdir");
    let assets = tempfile::tempdir().expect("tempdir");
    std::fs::write(assets.path().join("index.html"), "<!doctype html>").expect("index");
    let http = tabswarm_e2e::free_tcp_port();
    let relay = Command::new(&args.relay)
        .args(["--port", &http.to_string(), "--webrtc-port", "0", "--p2p-port", "0"])
        .arg("--assets")
        .arg(assets.path())
        .arg("--data-dir")
        .arg(data.path())
        // The load is gossip, not identity: peers share unbound (credited to nobody).
        .arg("--accept-unbound")
        // A few peers carry the whole rate here (50 messages a second each at 10 peers): the
        // per-peer gossip limit, meant for one tab's pace, would measure itself instead.
        .args(["--gossip-per-peer-per-minute", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {}: {e} (build it: cargo build --release -p tabswarm-relay)", args.relay.display())
        });
    let relay = RelayProcess(relay);
    let pid = relay.0.id();
    let bootstrap: Bootstrap = loop {
        if let Some(body) = http_get(http, "/api/bootstrap").await
            && let Ok(b) = serde_json::from_str(&body)
        {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let addrs: Vec<libp2p::Multiaddr> = bootstrap.addrs.iter().map(|a| a.parse().expect("multiaddr")).collect();
    let (_, idle_rss) = proc_usage(pid);

    let origin = Instant::now();
    let deliveries = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let mut senders = Vec::new();
    let mut ids = Vec::new();
    let (ready_tx, mut ready_rx) = futures::channel::mpsc::channel::<()>(peers);
    let connect_started = Instant::now();
    for _ in 0..peers {
        let node = native::node(libp2p::identity::Keypair::generate_ed25519(), addrs.clone(), "bench")
            .expect("node")
            .share_unbound(true);
        let (handle, run) = node.spawn();
        tokio::spawn(run);
        ids.push(handle.peer_id.to_string());
        senders.push(handle.commands);
        let mut events = handle.events;
        let (deliveries, latencies, mut ready) = (Arc::clone(&deliveries), Arc::clone(&latencies), ready_tx.clone());
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    NodeEvent::State(ConnectionState::Connected { .. }) => {
                        let _ = ready.send(()).await;
                    }
                    NodeEvent::Rollouts { groups, .. } => {
                        let now = origin.elapsed().as_micros() as u64;
                        deliveries.fetch_add(groups.len() as u64, Ordering::Relaxed);
                        if let Ok(mut l) = latencies.lock() {
                            // The publisher stamped its send time (µs since start) as the policy version.
                            l.extend(groups.iter().map(|g| now.saturating_sub(g.group.policy_version)));
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    for _ in 0..peers {
        if tokio::time::timeout(Duration::from_secs(120), ready_rx.next()).await.is_err() {
            println!("| {peers} | only some peers connected within 120 s |");
            return;
        }
    }
    let connect_time = connect_started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await; // meshes form
    let (_, connected_rss) = proc_usage(pid);
    latencies.lock().expect("lock").clear();
    deliveries.store(0, Ordering::Relaxed);

    let (cpu_before, _) = proc_usage(pid);
    let started = Instant::now();
    let total = args.rate * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut next = tokio::time::Instant::now();
    for i in 0..total {
        let who = (i as usize) % peers;
        let group = RolloutGroup {
            question: QuestionId::new(Family::Add, 2, i),
            peer: ids[who].clone(),
            policy_version: origin.elapsed().as_micros() as u64,
            completions: vec!["12".into(), "7".into()],
            rewards: Vec::new(),
        };
        let _ = senders[who].try_send(NodeCommand::Publish(vec![group]));
        next += interval;
        tokio::time::sleep_until(next).await;
    }
    let publish_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await; // stragglers
    let (cpu_after, peak_rss) = proc_usage(pid);
    let wall = started.elapsed().as_secs_f64();
    let ticks_per_second = 100.0; // Linux USER_HZ
    let cpu = (cpu_after - cpu_before) as f64 / ticks_per_second / wall;
    let expected = total * (peers as u64 - 1);
    let delivered = deliveries.load(Ordering::Relaxed);
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort_unstable();
    let swarm = http_get(http, "/api/swarm").await.unwrap_or_default();
    let accepted = serde_json::from_str::<serde_json::Value>(&swarm).ok().and_then(|v| v["rollouts_total"].as_u64());
    println!(
        "| {peers} | {} msg/s for {:.1} s | {} / {} ({:.1} %) | {:.0} | {:.1} | {:.1} | {:.0} % | {:.0} KiB | {:.1} KiB | {:.1} s |",
        args.rate,
        publish_time.as_secs_f64(),
        delivered,
        expected,
        100.0 * delivered as f64 / expected.max(1) as f64,
        delivered as f64 / wall,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        cpu * 100.0,
        peak_rss,
        (connected_rss.saturating_sub(idle_rss)) as f64 / peers as f64,
        connect_time.as_secs_f64(),
    );
    if accepted != Some(total) {
        println!("|  | relay accepted {accepted:?} of {total} published groups |");
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = args();
    println!(
        "| peers | publish rate | deliveries (got / expected) | deliveries/s | latency p50 ms | latency p99 ms | relay CPU | relay RSS | RSS per peer | connect all |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &peers in &args.peers {
        one(&args, peers).await;
    }
}

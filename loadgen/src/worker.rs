//! A worker process: one [`Fleet`] driven by its coordinator through JSON lines on stdin and
//! stdout (`tabswarm-loadgen worker`, started by `tabswarm-loadgen run`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::histogram::Histogram;
use crate::peer::{Fleet, Transport, tally};

/// Coordinator → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Publish `total` messages at `rate` a second (this worker's share), then wait `drain_ms`
    /// and report the deliveries stamped since `since` (µs since the epoch).
    Publish { total: u64, rate: f64, first_seed: u64, completions: usize, since: u64, drain_ms: u64 },
}

/// Worker → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Said {
    /// Every peer dialled: `peers` up, `failed` not (the first few reasons why).
    Connected { peers: usize, failed: usize, failures: Vec<String> },
    /// One publishing phase done.
    Phase(PhaseReport),
}

/// What one worker saw in one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Messages gossipsub accepted for sending.
    pub published: u64,
    /// Publishes gossipsub refused, and those the worker's own peers could not take in time.
    pub publish_failed: u64,
    /// Connections to the relay lost during the phase.
    pub disconnects: u64,
    /// Send → receive latency of every delivery, in µs.
    pub latency: Histogram,
    /// How many peers received each message, by its seed (a message no peer received is absent).
    #[serde(default)]
    pub receivers_by_seed: BTreeMap<u64, u32>,
}

impl PhaseReport {
    pub fn merge(&mut self, other: &PhaseReport) {
        self.published += other.published;
        self.publish_failed += other.publish_failed;
        self.disconnects += other.disconnects;
        self.latency.merge(&other.latency);
        for (&seed, &n) in &other.receivers_by_seed {
            *self.receivers_by_seed.entry(seed).or_insert(0) += n;
        }
    }
}

async fn say(out: &mut tokio::io::Stdout, said: &Said) {
    // A coordinator that went away closes the pipe; the worker notices on stdin and stops.
    if let Ok(mut line) = serde_json::to_vec(said) {
        line.push(b'\n');
        let _ = out.write_all(&line).await;
        let _ = out.flush().await;
    }
}

/// Runs a worker until its stdin closes.
pub async fn run(relay: Multiaddr, peers: usize, transport: Transport, local_ip: IpAddr, tries: usize) {
    let mut out = tokio::io::stdout();
    let fleet = Fleet::connect(relay, peers, transport, local_ip, tries).await;
    say(&mut out, &Said::Connected { peers: fleet.len(), failed: fleet.failed, failures: fleet.failures.clone() })
        .await;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let order: Order = match serde_json::from_str(&line) {
            Ok(order) => order,
            Err(e) => {
                eprintln!("tabswarm-loadgen worker: not an order ({e}): {line}");
                continue;
            }
        };
        match order {
            Order::Publish { total, rate, first_seed, completions, since, drain_ms } => {
                let counters = &fleet.counters;
                let before = (
                    counters.published.load(Ordering::Relaxed),
                    counters.publish_failed.load(Ordering::Relaxed),
                    counters.disconnects.load(Ordering::Relaxed),
                );
                // This phase's messages are those stamped at or after `since`: deliveries from
                // earlier phases are dropped, and any of this one's that the peers asked first
                // already had (the other workers may be publishing) are kept.
                let mut deliveries = fleet.report().await;
                deliveries.retain(|d| d.stamp >= since);
                let dropped = fleet.publish(total, rate, first_seed, completions).await;
                tokio::time::sleep(Duration::from_millis(drain_ms)).await;
                deliveries.extend(fleet.report().await);
                let (latency, receivers_by_seed) = tally(&deliveries, since);
                let report = PhaseReport {
                    published: counters.published.load(Ordering::Relaxed) - before.0,
                    publish_failed: counters.publish_failed.load(Ordering::Relaxed) - before.1 + dropped,
                    disconnects: counters.disconnects.load(Ordering::Relaxed) - before.2,
                    latency,
                    receivers_by_seed,
                };
                say(&mut out, &Said::Phase(report)).await;
            }
        }
    }
}

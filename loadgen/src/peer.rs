//! One light load peer, and a fleet of them in one process.
//!
//! A load peer connects to the relay as a tab does (TCP with noise and yamux, or webrtc-direct),
//! runs gossipsub on the rollout topic, identify and ping at the tab's cadence, and publishes
//! valid, signed rollout groups the relay checks and forwards like any other. What it leaves out
//! is the tab's own work on what it receives: it does not check signatures or score the groups
//! (gossipsub's `ValidationMode::None`), it only reads the send time out of each delivery. That
//! keeps a thousand of them on two cores, so the relay is what gets measured.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use libp2p::Transport as _;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, identity, noise, ping, tcp, yamux};
use serde::{Deserialize, Serialize};
use tabswarm_protocol::gossip::{self, IDENTIFY_PROTOCOL};
use tabswarm_protocol::rollout::{MAX_COMPLETION_BYTES, MAX_GROUP_SIZE, RolloutGroup};
use tabswarm_protocol::tasks::{Family, QuestionId};
use tabswarm_protocol::wire::{self, Message};

use crate::histogram::Histogram;

/// How a load peer reaches the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TCP with noise and yamux (native peers, other relays).
    Tcp,
    /// webrtc-direct (what a browser tab speaks).
    Webrtc,
}

impl Transport {
    /// Whether the relay address `addr` is one of this transport's.
    pub fn dials(self, addr: &Multiaddr) -> bool {
        let webrtc = addr.iter().any(|p| matches!(p, Protocol::WebRTCDirect));
        match self {
            Transport::Tcp => !webrtc && addr.iter().any(|p| matches!(p, Protocol::Tcp(_))),
            Transport::Webrtc => webrtc,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Webrtc => "webrtc-direct",
        })
    }
}

/// The behaviour of a load peer: a tab's, with gossipsub that does not check what it receives.
#[allow(missing_debug_implementations)] // the derive's event enum has none either
#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// The leaf gossipsub settings of `tabswarm_protocol::gossip::config(Role::Peer)`, except that
/// received messages are taken as they come (no signature check, no application validation).
fn gossipsub_config() -> gossipsub::Config {
    let shared = gossip::config(gossip::Role::Peer);
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .heartbeat_interval(shared.heartbeat_interval())
        .validation_mode(gossipsub::ValidationMode::None)
        .message_id_fn(gossip::message_id)
        .max_transmit_size(shared.max_transmit_size())
        .duplicate_cache_time(shared.duplicate_cache_time());
    builder.build().unwrap_or_else(|e| panic!("load peer gossipsub settings: {e}"))
}

impl Behaviour {
    fn new(key: &identity::Keypair) -> Self {
        let mut gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossipsub_config())
                .unwrap_or_else(|e| panic!("load peer gossipsub: {e}"));
        // Subscribing to a topic only fails on a subscription filter, which this has none of.
        let _ = gossipsub.subscribe(&gossip::topic());
        Self {
            gossipsub,
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("tabswarm-loadgen/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new().with_interval(tabswarm_net::PING_EVERY).with_timeout(tabswarm_net::PING_TIMEOUT),
            ),
        }
    }
}

/// A libp2p swarm for one load peer over `transport`. webrtc-direct needs a local UDP listener
/// to dial from; it is opened on `local_ip`.
fn swarm(transport: Transport, local_ip: IpAddr) -> Result<Swarm<Behaviour>, String> {
    let key = identity::Keypair::generate_ed25519();
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(60));
    let mut swarm = match transport {
        Transport::Tcp => libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| e.to_string())?
            .with_behaviour(Behaviour::new)
            .map_err(|e| e.to_string())?
            .with_swarm_config(idle)
            .build(),
        Transport::Webrtc => {
            let certificate = libp2p_webrtc::tokio::Certificate::generate(&mut rand08::thread_rng())
                .map_err(|e| format!("cannot make a WebRTC certificate: {e}"))?;
            libp2p::SwarmBuilder::with_existing_identity(key)
                .with_tokio()
                .with_other_transport(|key| {
                    libp2p_webrtc::tokio::Transport::new(key.clone(), certificate)
                        .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection)))
                })
                .map_err(|e| e.to_string())?
                .with_behaviour(Behaviour::new)
                .map_err(|e| e.to_string())?
                .with_swarm_config(idle)
                .build()
        }
    };
    if transport == Transport::Webrtc {
        let local = Multiaddr::empty().with(local_ip.into()).with(Protocol::Udp(0)).with(Protocol::WebRTCDirect);
        swarm.listen_on(local.clone()).map_err(|e| format!("cannot listen on {local}: {e}"))?;
    }
    Ok(swarm)
}

/// Microseconds since the Unix epoch: the clock every process on the machine shares.
pub fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// A rollout group as a tab publishes it, stamped with its send time.
///
/// The stamp travels as the group's `policy_version` (the relay forwards any), and `seed` makes
/// each message unique (gossipsub drops a payload it has seen; the relay drops a question a peer
/// already shared).
pub fn rollout_message(peer: &str, seed: u64, completions: usize, sent_at_micros: u64) -> Vec<u8> {
    let group = RolloutGroup {
        question: QuestionId::new(Family::Add, 2, seed),
        peer: peer.to_owned(),
        policy_version: sent_at_micros,
        // Short answers like the small model's, some right and some wrong.
        completions: (0..completions.max(1)).map(|i| format!("{}", 10 + (seed as usize + i) % 90)).collect(),
        rewards: Vec::new(),
    };
    // A group of this size is far below the wire's limit.
    wire::encode(&Message::Rollouts { groups: vec![group] }).unwrap_or_else(|e| panic!("load message: {e}"))
}

/// A rollout message of at least `min_bytes` encoded, made of several groups of the most
/// completions a group may carry, each answer as long as an answer may be: the largest messages a
/// tab can send, which take more than one WebRTC frame (16 KiB). Stamped like
/// [`rollout_message`]; `None` if `min_bytes` is over what one message may carry
/// ([`wire::MAX_MESSAGE_BYTES`]).
pub fn large_rollout_message(peer: &str, seed: u64, min_bytes: usize, sent_at_micros: u64) -> Option<Vec<u8>> {
    let group = |j: u64| RolloutGroup {
        // Seeds apart from every other message's (message seeds are consecutive, far below 2^40).
        question: QuestionId::new(Family::Add, 2, seed ^ (j << 40)),
        peer: peer.to_owned(),
        policy_version: sent_at_micros,
        completions: (0..MAX_GROUP_SIZE)
            .map(|i| format!("{:0>width$}", seed + i as u64, width = MAX_COMPLETION_BYTES))
            .collect(),
        rewards: Vec::new(),
    };
    let mut groups = Vec::new();
    while groups.len() < wire::MAX_GROUPS_PER_MESSAGE {
        groups.push(group(groups.len() as u64));
        let data = wire::encode(&Message::Rollouts { groups: groups.clone() }).ok()?;
        if data.len() >= min_bytes {
            return Some(data);
        }
    }
    None
}

/// The send time written into a rollout message by [`rollout_message`].
pub fn stamp_of(data: &[u8]) -> Option<u64> {
    number_after(data, b"\"policy_version\":")
}

/// The seed of the (first) question of a rollout message: which message it is.
pub fn seed_of(data: &[u8]) -> Option<u64> {
    number_after(data, b"\"seed\":")
}

/// The decimal number right after the first `key` in `data`.
fn number_after(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(data, key)? + key.len();
    let digits = data[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&data[at..at + digits]).ok()?.parse().ok()
}

/// What one peer is asked to do.
enum Command {
    Publish(Vec<u8>),
    /// Send every delivery since the last report.
    Report {
        reply: oneshot::Sender<Vec<Delivery>>,
    },
}

/// One message received by one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// When it was published (µs since the epoch, written into it by its publisher).
    pub stamp: u64,
    /// Publish → receive.
    pub latency_us: u64,
    /// Which message it was ([`seed_of`]).
    pub seed: Option<u64>,
}

/// The latencies of the deliveries of messages published at or after `since`, and how many
/// peers received each of those messages (by seed).
pub fn tally(deliveries: &[Delivery], since: u64) -> (Histogram, BTreeMap<u64, u32>) {
    let mut latency = Histogram::default();
    let mut receivers = BTreeMap::new();
    for d in deliveries.iter().filter(|d| d.stamp >= since) {
        latency.record(d.latency_us);
        if let Some(seed) = d.seed {
            *receivers.entry(seed).or_insert(0) += 1;
        }
    }
    (latency, receivers)
}

/// Counters a fleet's peers share.
#[derive(Debug, Default)]
pub struct Counters {
    pub published: AtomicU64,
    /// Publishes gossipsub refused (no relay subscribed yet, its queue full, …).
    pub publish_failed: AtomicU64,
    /// Connections lost after the peer was up.
    pub disconnects: AtomicU64,
}

/// One running peer as its fleet sees it.
struct Handle {
    id: String,
    commands: mpsc::Sender<Command>,
}

/// How one peer's dial ended.
enum Up {
    Ready,
    Failed(String),
}

async fn run_peer(
    mut swarm: Swarm<Behaviour>,
    relay: Multiaddr,
    relay_id: PeerId,
    mut commands: mpsc::Receiver<Command>,
    mut up: Option<oneshot::Sender<Up>>,
    counters: Arc<Counters>,
) {
    if let Err(e) = swarm.dial(relay.clone()) {
        if let Some(up) = up.take() {
            let _ = up.send(Up::Failed(format!("cannot dial {relay}: {e}")));
        }
        return;
    }
    let topic = gossip::topic();
    let mut received = Vec::new();
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                    if let Some(stamp) = stamp_of(&message.data) {
                        received.push(Delivery {
                            stamp,
                            latency_us: now_micros().saturating_sub(stamp),
                            seed: seed_of(&message.data),
                        });
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, .. }))
                    if peer_id == relay_id =>
                {
                    if let Some(up) = up.take() {
                        let _ = up.send(Up::Ready);
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    if let Some(up) = up.take() {
                        let _ = up.send(Up::Failed(error.to_string()));
                    }
                    return;
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } if peer_id == relay_id => {
                    match up.take() {
                        Some(up) => {
                            let _ = up.send(Up::Failed(format!("closed before subscribing: {cause:?}")));
                        }
                        None => {
                            counters.disconnects.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    return;
                }
                _ => {}
            },
            command = commands.next() => match command {
                Some(Command::Publish(data)) => match swarm.behaviour_mut().gossipsub.publish(topic.clone(), data) {
                    Ok(_) => {
                        counters.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        counters.publish_failed.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Some(Command::Report { reply }) => {
                    let _ = reply.send(std::mem::take(&mut received));
                }
                None => return,
            },
        }
    }
}

/// Many load peers in one process, all connected to one relay.
#[allow(missing_debug_implementations)] // holds channels only
pub struct Fleet {
    peers: Vec<Handle>,
    pub counters: Arc<Counters>,
    /// Peers that could not connect, with why (the first few).
    pub failures: Vec<String>,
    pub failed: usize,
}

/// How many dials a fleet has in flight at once (the relay bounds its concurrent handshakes;
/// 64 by default, shared by every process of the run).
pub const DIALS_IN_FLIGHT: usize = 16;

impl Fleet {
    /// Starts `n` peers dialling `relay` over `transport`, at most [`DIALS_IN_FLIGHT`] at a time,
    /// and waits until each has heard the relay's subscription (or failed, after `tries` dials).
    pub async fn connect(relay: Multiaddr, n: usize, transport: Transport, local_ip: IpAddr, tries: usize) -> Fleet {
        let relay_id = gossip::peer_id_of(&relay).unwrap_or_else(|| panic!("{relay} does not end in /p2p/<id>"));
        let counters = Arc::new(Counters::default());
        let mut fleet =
            Fleet { peers: Vec::with_capacity(n), counters: Arc::clone(&counters), failures: Vec::new(), failed: 0 };
        let mut pending = futures::stream::FuturesUnordered::new();
        let start_one = |attempt: usize| {
            let (relay, counters) = (relay.clone(), Arc::clone(&counters));
            async move {
                let result: Result<Handle, String> = async {
                    let swarm = swarm(transport, local_ip)?;
                    let id = swarm.local_peer_id().to_string();
                    let (commands, inbox) = mpsc::channel(64);
                    let (up_tx, up_rx) = oneshot::channel();
                    let task = tokio::spawn(run_peer(swarm, relay, relay_id, inbox, Some(up_tx), counters));
                    let failed = match tokio::time::timeout(Duration::from_secs(30), up_rx).await {
                        Ok(Ok(Up::Ready)) => return Ok(Handle { id, commands }),
                        Ok(Ok(Up::Failed(why))) => why,
                        Ok(Err(_)) => "the peer stopped".into(),
                        Err(_) => "no subscription from the relay within 30 s".into(),
                    };
                    // A peer that is not counted must not stay connected either.
                    task.abort();
                    Err(failed)
                }
                .await;
                (attempt, result)
            }
        };
        let mut started = 0;
        while started < n.min(DIALS_IN_FLIGHT) {
            pending.push(start_one(1));
            started += 1;
        }
        while let Some((attempt, result)) = pending.next().await {
            match result {
                Ok(handle) => fleet.peers.push(handle),
                Err(why) if attempt < tries => {
                    tracing::debug!("dial {attempt} failed ({why}); again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    pending.push(start_one(attempt + 1));
                    continue;
                }
                Err(why) => {
                    fleet.failed += 1;
                    if fleet.failures.len() < 5 {
                        fleet.failures.push(why);
                    }
                }
            }
            if started < n {
                pending.push(start_one(1));
                started += 1;
            }
        }
        fleet
    }

    /// Peers connected.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Publishes `total` messages at `rate` per second, round robin over the peers; message `i`
    /// carries seed `first_seed + i`. Returns how many could not be handed to their peer (its
    /// command queue full: the peer process itself is behind).
    pub async fn publish(&self, total: u64, rate: f64, first_seed: u64, completions: usize) -> u64 {
        self.publish_with(total, rate, first_seed, |peer, seed, stamp| rollout_message(peer, seed, completions, stamp))
            .await
    }

    /// [`Fleet::publish`] with messages made by `message(peer, seed, send time)`.
    pub async fn publish_with(
        &self,
        total: u64,
        rate: f64,
        first_seed: u64,
        message: impl Fn(&str, u64, u64) -> Vec<u8>,
    ) -> u64 {
        if self.peers.is_empty() || total == 0 {
            return 0;
        }
        let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
        let mut next = tokio::time::Instant::now();
        let mut dropped = 0;
        for i in 0..total {
            let peer = &self.peers[i as usize % self.peers.len()];
            let data = message(&peer.id, first_seed + i, now_micros());
            if peer.commands.clone().try_send(Command::Publish(data)).is_err() {
                dropped += 1;
            }
            next += interval;
            tokio::time::sleep_until(next).await;
        }
        dropped
    }

    /// Every peer's deliveries since the last report. (Peers are asked one after another, so
    /// while some are asked others may already receive the next phase's first messages: which
    /// phase a delivery belongs to is for its stamp to say, not for when it was reported.)
    pub async fn report(&self) -> Vec<Delivery> {
        let mut all = Vec::new();
        for peer in &self.peers {
            let (reply, answer) = oneshot::channel();
            if peer.commands.clone().try_send(Command::Report { reply }).is_ok()
                && let Ok(deliveries) = answer.await
            {
                all.extend(deliveries);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phase counts the deliveries of its own messages, however late the peer was asked: one
    /// of the previous phase (stamped before `since`) is left out, one of this phase reported
    /// at the previous report is kept.
    #[test]
    fn a_phase_tallies_its_own_messages_by_their_stamp() {
        let d = |stamp, seed| Delivery { stamp, latency_us: 1_000, seed: Some(seed) };
        let (latency, receivers) = tally(&[d(99, 1), d(100, 2), d(150, 2), d(200, 3)], 100);
        assert_eq!(latency.count(), 3);
        assert_eq!(receivers, BTreeMap::from([(2, 2), (3, 1)]));
    }

    #[test]
    fn a_load_message_passes_the_relays_checks_and_carries_its_stamp() {
        let peer = PeerId::random().to_string();
        let data = rollout_message(&peer, 42, 8, 1_765_000_000_123_456);
        match wire::decode(&data, &peer).expect("valid") {
            wire::Verified::Rollouts(groups) => {
                assert_eq!(groups.len(), 1);
                assert_eq!(groups[0].group.completions.len(), 8);
            }
            other => panic!("not rollouts: {other:?}"),
        }
        assert_eq!(stamp_of(&data), Some(1_765_000_000_123_456));
        assert_eq!(seed_of(&data), Some(42));
        // Another peer cannot publish it as its own.
        assert!(wire::decode(&data, &PeerId::random().to_string()).is_err());
        // Different seeds make different payloads (gossipsub ids are payload hashes).
        assert_ne!(rollout_message(&peer, 43, 8, 1), rollout_message(&peer, 42, 8, 1));
    }

    #[test]
    fn a_large_load_message_passes_the_relays_checks_and_takes_more_than_one_webrtc_frame() {
        let peer = PeerId::random().to_string();
        let data = large_rollout_message(&peer, 42, 20_000, 7).expect("fits in a message");
        assert!((20_000..=wire::MAX_MESSAGE_BYTES).contains(&data.len()), "{} bytes", data.len());
        match wire::decode(&data, &peer).expect("valid") {
            wire::Verified::Rollouts(groups) => {
                assert!(groups.len() > 1, "{} groups", groups.len());
                let questions: std::collections::HashSet<_> = groups.iter().map(|g| g.group.question).collect();
                assert_eq!(questions.len(), groups.len(), "every group asks its own question");
            }
            other => panic!("not rollouts: {other:?}"),
        }
        assert_eq!(stamp_of(&data), Some(7));
        assert_ne!(large_rollout_message(&peer, 43, 20_000, 7), Some(data));
        assert_eq!(large_rollout_message(&peer, 42, wire::MAX_MESSAGE_BYTES + 1, 7), None);
    }

    #[test]
    fn a_stamp_is_not_read_from_what_has_none() {
        assert_eq!(stamp_of(b"{\"v\":1,\"type\":\"announce\"}"), None);
        assert_eq!(stamp_of(b"\"policy_version\":"), None);
    }

    #[test]
    fn each_transport_picks_its_own_relay_address() {
        let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/9091".parse().expect("addr");
        let webrtc: Multiaddr = "/ip4/127.0.0.1/udp/9090/webrtc-direct".parse().expect("addr");
        assert!(Transport::Tcp.dials(&tcp) && !Transport::Tcp.dials(&webrtc));
        assert!(Transport::Webrtc.dials(&webrtc) && !Transport::Webrtc.dials(&tcp));
    }

    #[test]
    fn the_load_peer_takes_messages_unchecked_with_the_swarms_other_settings() {
        let (ours, shared) = (gossipsub_config(), gossip::config(gossip::Role::Peer));
        assert!(!ours.validate_messages());
        assert_eq!(ours.max_transmit_size(), shared.max_transmit_size());
        assert_eq!(ours.heartbeat_interval(), shared.heartbeat_interval());
        assert_eq!(ours.duplicate_cache_time(), shared.duplicate_cache_time());
    }
}

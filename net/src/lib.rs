//! A peer's connection to the swarm: one libp2p node that keeps a relay connected, publishes this
//! peer's rollouts and hands over the verified rollouts of everyone else.
//!
//! The same [`PeerNode`] runs on the tab's page (WebRTC to a relay, `web`, built for wasm32 only:
//! browsers offer `RTCPeerConnection` to pages, not to workers) and in the native `tabswarm-peer`
//! (TCP, `native`, which also reads the relay's HTTP API and binds a peer key with a wallet key
//! file); only the transport differs. It connects to one relay at a
//! time from a list (the relay's `/api/bootstrap`): when the connection drops or a dial fails it
//! waits (1 s, doubling to 30 s, reset once connected) and tries the next relay in the list.
//! Every received message goes through [`wire::decode`] before anything else sees it, and the
//! verdict goes back to gossipsub (accept / ignore a re-publication / reject), as on relays.

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod web;

use std::collections::HashMap;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, identity, ping};
use serde::Serialize;
use tabswarm_protocol::gossip::{self, IDENTIFY_PROTOCOL, PerMinute, RELAY_AGENT_PREFIX, Role, peer_id_of};
use tabswarm_protocol::identity::SignedBinding;
use tabswarm_protocol::rollout::{RolloutGroup, ScoredGroup};
use tabswarm_protocol::tasks::Family;
use tabswarm_protocol::wire::{self, Announcement, Message, Verified};
use web_time::Instant;

/// The first wait before redialling; doubles per failure up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest wait between dials.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a connected peer re-announces itself (peers online are counted from these).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(20);
/// How often a bound peer re-announces its binding (and on every new relay connection), so
/// relays that joined since learn whom its rollouts count for.
pub const BINDING_EVERY: Duration = Duration::from_secs(300);
/// How long a binding a peer makes lasts (a tab's wallet prompt, a native peer's run): a week of
/// sessions for one signature. Relays accept up to 30 days.
pub const BINDING_VALIDITY_SECS: u64 = 7 * 24 * 3600;
/// A peer not heard from for this long no longer counts as online.
pub const ONLINE_WINDOW: Duration = Duration::from_secs(60);
/// How often a peer pings its relay. A relay that went away without closing the connection
/// (killed, restarted, its machine gone; a restarted relay even answers the old connection's ICE
/// checks, so the browser sees no failure for a long while) is noticed by the pings it no longer
/// answers ([`RELAY_SILENCE`]), and the peer moves on.
pub const PING_EVERY: Duration = Duration::from_secs(2);
/// Generous: a new WebRTC stream can take seconds to open on a busy machine, and a late answer is
/// not a dead relay ([`RELAY_SILENCE`] decides that).
pub const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// A relay connection with no answered ping for this long is taken for gone (two pings missed,
/// with slack), whatever the connection itself reports: a WebRTC stream to a relay that vanished
/// can take much longer to fail on its own.
pub const RELAY_SILENCE: Duration = Duration::from_millis(4_500);
/// How long a dial may go unanswered before the peer gives up on that relay and tries the next
/// (a WebRTC dial to a relay that is gone waits for ICE to fail, which takes far longer).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(8);

/// The behaviour of a leaf peer.
// The derive also makes an event enum; neither has a useful Debug (gossipsub's state is large).
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct PeerBehaviour {
    pub gossipsub: gossipsub::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
}

impl PeerBehaviour {
    /// gossipsub (signed, validated, subscribed to the rollout topic), identify with `agent`, ping.
    pub fn new(key: &identity::Keypair, agent: String) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mut gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip::config(Role::Peer))?;
        gossipsub.subscribe(&gossip::topic())?;
        Ok(Self {
            gossipsub,
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public()).with_agent_version(agent),
            ),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_EVERY).with_timeout(PING_TIMEOUT)),
        })
    }
}

/// Where the node stands with its relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// Dialling `relay`.
    Connecting { relay: String },
    /// Connected to `relay` and subscribed with it: publishing and receiving.
    Connected { relay: String },
    /// Lost or could not reach a relay; the next dial (to `next`) is in `wait_ms`.
    Waiting { next: String, wait_ms: u64, reason: String },
    /// No relay address this transport can dial was given.
    NoRelay,
}

/// What the node tells its owner.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    State(ConnectionState),
    /// Verified rollout groups another peer published.
    Rollouts {
        from: PeerId,
        groups: Vec<ScoredGroup>,
    },
    /// The counters changed (sent once a second at most).
    Stats(NetStats),
    /// A relay announced a new swarm-model version (its publisher is that relay). Fetch it from
    /// this peer's relay (`GET /api/model`), which names the version it serves.
    ModelVersion(tabswarm_protocol::wire::ModelVersion),
}

/// Counters for the page and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetStats {
    /// Other peers heard from (announcement or rollouts) within [`ONLINE_WINDOW`].
    pub peers_online: usize,
    /// Rollout groups published / received over the last minute.
    pub sent_per_minute: u64,
    pub received_per_minute: u64,
    pub sent_total: u64,
    pub received_total: u64,
    /// Messages refused by this node's validator.
    pub rejected_total: u64,
    /// Groups that could not be published (no relay at the time).
    pub unsent_total: u64,
    /// Whether the peer key is bound to a wallet. Unbound peers learn from the swarm but do not
    /// publish: relays refuse (and score down) rollouts nobody is accountable for.
    pub bound: bool,
    /// Groups kept to this peer because it is not bound to a wallet.
    pub unshared_total: u64,
}

impl NetStats {
    /// One line for the page and the CLI.
    pub fn describe(&self) -> String {
        format!(
            "{} other peer{} online · rollout groups out {}/min, in {}/min ({} sent, {} received{})",
            self.peers_online,
            if self.peers_online == 1 { "" } else { "s" },
            self.sent_per_minute,
            self.received_per_minute,
            self.sent_total,
            self.received_total,
            if self.rejected_total > 0 { format!(", {} refused", self.rejected_total) } else { String::new() }
        ) + &if self.unshared_total > 0 {
            format!(" · {} kept unshared: no wallet bound", self.unshared_total)
        } else {
            String::new()
        }
    }
}

/// A relay address as a person reads it: `127.0.0.1:9090 (…Xyz12345)`.
pub fn describe_relay(addr: &str) -> String {
    let Ok(addr) = addr.parse::<Multiaddr>() else { return addr.to_owned() };
    let (mut host, mut port, mut peer) = (String::new(), String::new(), String::new());
    for p in addr.iter() {
        match p {
            Protocol::Ip4(ip) => host = ip.to_string(),
            Protocol::Ip6(ip) => host = format!("[{ip}]"),
            Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => host = name.to_string(),
            Protocol::Tcp(p) | Protocol::Udp(p) => port = p.to_string(),
            Protocol::P2p(id) => {
                let id = id.to_string();
                peer = format!(" (…{})", &id[id.len().saturating_sub(8)..]);
            }
            _ => {}
        }
    }
    format!("{host}:{port}{peer}")
}

/// The page's `data-state` key and sentence for a connection state.
pub fn describe_connection(state: &ConnectionState) -> (&'static str, String) {
    match state {
        ConnectionState::Connecting { relay } => {
            ("connecting", format!("Connecting to relay {}…", describe_relay(relay)))
        }
        ConnectionState::Connected { relay } => {
            ("connected", format!("Connected to the swarm through relay {}.", describe_relay(relay)))
        }
        ConnectionState::Waiting { next, wait_ms, reason } => {
            let when = match *wait_ms {
                0 => "now".to_owned(),
                ms => format!("in {:.0} s", (ms as f64 / 1e3).ceil()),
            };
            (
                "waiting",
                format!(
                    "Not connected ({reason}); trying relay {} {when}. Learning goes on meanwhile.",
                    describe_relay(next)
                ),
            )
        }
        ConnectionState::NoRelay => {
            ("offline", "The relay offers no address this client can dial, so it learns on its own.".to_owned())
        }
    }
}

/// What the owner asks of the node.
#[derive(Debug)]
pub enum NodeCommand {
    /// Publish these groups (this peer's own; their `peer` must be this node's peer id).
    Publish(Vec<RolloutGroup>),
    /// Update what the announcements say.
    Describe { families: Vec<Family>, policy_version: u64 },
    /// The peer key is now bound to a wallet: announce the binding and start publishing.
    Bind(Box<SignedBinding>),
}

/// The channels to a running [`PeerNode`].
#[derive(Debug)]
pub struct NodeHandle {
    pub peer_id: PeerId,
    pub commands: mpsc::Sender<NodeCommand>,
    pub events: mpsc::Receiver<NodeEvent>,
}

/// Most received rollout groups held for the next round; older ones are dropped first.
pub const INBOX_LIMIT: usize = 256;

/// Rollout groups from other peers waiting for the learner's next round (the worker's and
/// `tabswarm-peer`'s), bounded by [`INBOX_LIMIT`]: a learner slower than the swarm keeps the newest.
#[derive(Debug, Default)]
pub struct Inbox {
    groups: std::collections::VecDeque<ScoredGroup>,
}

impl Inbox {
    pub fn push(&mut self, groups: impl IntoIterator<Item = ScoredGroup>) {
        self.groups.extend(groups);
        let excess = self.groups.len().saturating_sub(INBOX_LIMIT);
        self.groups.drain(..excess);
    }

    /// Everything waiting, oldest first.
    pub fn take(&mut self) -> Vec<ScoredGroup> {
        self.groups.drain(..).collect()
    }
}

/// Relay addresses this transport can dial, in the given order, deduplicated.
pub fn dialable(addrs: impl IntoIterator<Item = Multiaddr>, accept: impl Fn(&Multiaddr) -> bool) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::new();
    for addr in addrs {
        if peer_id_of(&addr).is_some() && accept(&addr) && !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// A leaf node of the swarm. Build the `Swarm` with `native::node` or `web::node` (by target), then
/// [`PeerNode::spawn`].
pub struct PeerNode {
    swarm: Swarm<PeerBehaviour>,
    relays: Vec<Multiaddr>,
    next_relay: usize,
    current: Option<Multiaddr>,
    connected_relay: Option<PeerId>,
    subscribed: bool,
    backoff: Duration,
    redial: Option<futures_timer::Delay>,
    /// When the dial of `current` began (until it connects or fails).
    dialing_since: Option<Instant>,
    /// When the connected relay last answered a ping (none before the first answer).
    relay_heard: Option<Instant>,
    client: String,
    backend: String,
    families: Vec<Family>,
    policy_version: u64,
    republications: gossip::Republications,
    heard: HashMap<PeerId, Instant>,
    sent: PerMinute,
    received: PerMinute,
    stats: NetStats,
    stats_dirty: bool,
    binding: Option<Box<SignedBinding>>,
    binding_announced: Option<Instant>,
    /// The `sent_at` of the last binding announcement.
    binding_sent_at: u64,
    share_unbound: bool,
}

impl std::fmt::Debug for PeerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerNode").field("peer_id", self.swarm.local_peer_id()).finish_non_exhaustive()
    }
}

/// How many accepted groups a peer remembers to spot re-publications.
const REMEMBERED_GROUPS: usize = 100_000;

impl PeerNode {
    /// A node over `swarm` that will dial `relays` (already filtered with [`dialable`]) in turn.
    /// `client` and `backend` describe this peer in its announcements.
    pub fn new(swarm: Swarm<PeerBehaviour>, relays: Vec<Multiaddr>, client: String, backend: String) -> Self {
        Self {
            swarm,
            relays,
            next_relay: 0,
            current: None,
            connected_relay: None,
            subscribed: false,
            backoff: BACKOFF_MIN,
            redial: None,
            dialing_since: None,
            relay_heard: None,
            client,
            backend,
            families: Vec::new(),
            policy_version: 0,
            republications: gossip::Republications::new(REMEMBERED_GROUPS),
            heard: HashMap::new(),
            sent: PerMinute::default(),
            received: PerMinute::default(),
            stats: NetStats::default(),
            stats_dirty: true,
            binding: None,
            binding_announced: None,
            binding_sent_at: 0,
            share_unbound: false,
        }
    }

    /// Publish rollouts even while unbound: only where the relays say they accept them
    /// ([`tabswarm_protocol::api::Bootstrap::accepts_unbound`]), which otherwise score us down.
    pub fn share_unbound(mut self, yes: bool) -> Self {
        self.share_unbound = yes;
        self
    }

    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs the node on the current executor's terms: returns the handle and the future to drive
    /// (spawn it with tokio or `wasm_bindgen_futures::spawn_local`). The future ends when the
    /// handle's command sender is dropped.
    pub fn spawn(self) -> (NodeHandle, impl std::future::Future<Output = ()>) {
        let (command_tx, command_rx) = mpsc::channel(16);
        let (event_tx, event_rx) = mpsc::channel(256);
        let handle = NodeHandle { peer_id: self.peer_id(), commands: command_tx, events: event_rx };
        (handle, self.run(command_rx, event_tx))
    }

    async fn run(mut self, mut commands: mpsc::Receiver<NodeCommand>, mut events: mpsc::Sender<NodeEvent>) {
        let mut out = Vec::new();
        self.dial_next(&mut out);
        let mut tick = futures_timer::Delay::new(Duration::from_secs(1));
        let mut last_announce: Option<Instant> = None;
        loop {
            let redial = async {
                match self.redial.as_mut() {
                    Some(delay) => delay.await,
                    None => futures::future::pending().await,
                }
            };
            futures::select! {
                event = self.swarm.select_next_some() => self.on_event(event, &mut out),
                command = commands.next() => match command {
                    Some(NodeCommand::Publish(groups)) => self.publish(groups),
                    Some(NodeCommand::Describe { families, policy_version }) => {
                        self.families = families;
                        self.policy_version = policy_version;
                    }
                    Some(NodeCommand::Bind(binding)) => {
                        self.binding = Some(binding);
                        self.stats.bound = true;
                        self.stats_dirty = true;
                        self.announce_binding();
                    }
                    None => break,
                },
                () = redial.fuse() => {
                    self.redial = None;
                    self.dial_next(&mut out);
                }
                () = (&mut tick).fuse() => {
                    tick.reset(Duration::from_secs(1));
                    self.check_relay(&mut out);
                    self.sent.tick();
                    self.received.tick();
                    if self.subscribed && last_announce.is_none_or(|t| t.elapsed() >= ANNOUNCE_EVERY) {
                        self.announce();
                        last_announce = Some(Instant::now());
                    }
                    if self.subscribed && self.binding_announced.is_some_and(|t| t.elapsed() >= BINDING_EVERY) {
                        self.announce_binding();
                    }
                    if self.refresh_stats() {
                        out.push(NodeEvent::Stats(self.stats.clone()));
                    }
                }
            }
            for event in out.drain(..) {
                // The owner went away: nothing left to do.
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }

    fn dial_next(&mut self, out: &mut Vec<NodeEvent>) {
        if self.relays.is_empty() {
            out.push(NodeEvent::State(ConnectionState::NoRelay));
            return;
        }
        let addr = self.relays[self.next_relay].clone();
        self.next_relay = (self.next_relay + 1) % self.relays.len();
        self.current = Some(addr.clone());
        out.push(NodeEvent::State(ConnectionState::Connecting { relay: addr.to_string() }));
        self.dialing_since = Some(Instant::now());
        if let Err(e) = self.swarm.dial(addr) {
            self.lost(format!("cannot dial: {e}"), out);
        }
    }

    /// The relay connection is gone. One that had joined the topic is a new loss, not a relay
    /// that keeps failing: the next relay is tried at once, then the peer backs off as usual.
    fn dropped(&mut self, reason: String, out: &mut Vec<NodeEvent>) {
        if self.subscribed {
            self.backoff = Duration::ZERO;
        }
        self.lost(reason, out);
    }

    /// A dial unanswered for [`DIAL_TIMEOUT`] counts as failed (a late answer is let go when it
    /// comes: see `ConnectionEstablished`); a connected relay silent for [`RELAY_SILENCE`] is gone.
    fn check_relay(&mut self, out: &mut Vec<NodeEvent>) {
        if let Some(relay) = self.connected_relay
            && self.relay_heard.is_some_and(|heard| heard.elapsed() >= RELAY_SILENCE)
        {
            tracing::info!(%relay, "no answer from the relay for {RELAY_SILENCE:?}");
            let _ = self.swarm.disconnect_peer_id(relay);
            self.dropped(format!("the relay stopped answering for {} s", RELAY_SILENCE.as_secs_f32()), out);
            return;
        }
        if self.connected_relay.is_none()
            && self.redial.is_none()
            && self.dialing_since.is_some_and(|since| since.elapsed() >= DIAL_TIMEOUT)
        {
            self.lost(format!("no answer within {} s", DIAL_TIMEOUT.as_secs()), out);
        }
    }

    /// The current relay is gone or unreachable: wait, then try the next one.
    fn lost(&mut self, reason: String, out: &mut Vec<NodeEvent>) {
        self.connected_relay = None;
        self.relay_heard = None;
        self.subscribed = false;
        self.dialing_since = None;
        if self.redial.is_some() || self.relays.is_empty() {
            return;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        let next = self.relays[self.next_relay].to_string();
        out.push(NodeEvent::State(ConnectionState::Waiting { next, wait_ms: wait.as_millis() as u64, reason }));
        self.redial = Some(futures_timer::Delay::new(wait));
    }

    fn on_event(&mut self, event: SwarmEvent<PeerBehaviourEvent>, out: &mut Vec<NodeEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, connection_id, .. } => {
                let expected = self.current.as_ref().and_then(peer_id_of);
                if expected == Some(peer_id) {
                    self.connected_relay = Some(peer_id);
                    self.dialing_since = None;
                    tracing::info!(relay = %endpoint.get_remote_address(), "connected to relay");
                } else if endpoint.is_dialer() {
                    // A dial given up on (timed out) that got through after all: the peer has
                    // moved on to another relay.
                    tracing::debug!(relay = %peer_id, "closing a late connection to a relay given up on");
                    self.swarm.close_connection(connection_id);
                }
            }
            // The silence watch is armed by the first ping answered once the relay's topic is
            // joined (`lost` disarms it): a new WebRTC connection can take seconds to open its
            // first streams, and a page is busiest while it starts.
            SwarmEvent::Behaviour(PeerBehaviourEvent::Ping(ping::Event { peer, result: Ok(_), .. }))
                if Some(peer) == self.connected_relay && self.subscribed =>
            {
                self.relay_heard = Some(Instant::now());
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, .. }))
                if Some(peer_id) == self.connected_relay =>
            {
                self.subscribed = true;
                self.backoff = BACKOFF_MIN;
                // First thing on every relay: who this peer's rollouts count for.
                self.announce_binding();
                let relay = self.current.as_ref().map(ToString::to_string).unwrap_or_default();
                out.push(NodeEvent::State(ConnectionState::Connected { relay }));
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let acceptance = self.validate(message, out);
                let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Identify(identify::Event::Received {
                peer_id, info, ..
            })) if Some(peer_id) == self.connected_relay && !info.agent_version.starts_with(RELAY_AGENT_PREFIX) => {
                tracing::warn!(agent = %info.agent_version, "the relay does not identify as a Tabswarm relay");
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. }
                if Some(peer_id) == self.connected_relay =>
            {
                let reason = cause.map_or_else(|| "connection closed".to_owned(), |c| format!("connection lost: {c}"));
                tracing::info!(relay = %peer_id, "{reason}");
                self.dropped(reason, out);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                let ours = peer_id.is_some() && peer_id == self.current.as_ref().and_then(peer_id_of);
                if ours && self.connected_relay.is_none() {
                    self.lost(format!("cannot reach the relay: {error}"), out);
                }
            }
            _ => {}
        }
    }

    fn validate(&mut self, message: gossipsub::Message, out: &mut Vec<NodeEvent>) -> gossipsub::MessageAcceptance {
        let Some(source) = message.source else {
            return gossipsub::MessageAcceptance::Reject;
        };
        match wire::decode(&message.data, &source.to_string()) {
            Err(error) => {
                tracing::debug!(%source, "rejected: {error}");
                self.stats.rejected_total += 1;
                self.stats_dirty = true;
                gossipsub::MessageAcceptance::Reject
            }
            Ok(Verified::Announce(_)) => {
                self.heard.insert(source, Instant::now());
                gossipsub::MessageAcceptance::Accept
            }
            // Relays check and keep bindings; a leaf has no use for others'.
            Ok(Verified::Binding(_)) => gossipsub::MessageAcceptance::Ignore,
            Ok(Verified::ModelVersion(version)) => {
                out.push(NodeEvent::ModelVersion(version));
                gossipsub::MessageAcceptance::Accept
            }
            Ok(Verified::Rollouts(groups)) => {
                if self.republications.seen_before(source, &groups) {
                    return gossipsub::MessageAcceptance::Ignore;
                }
                self.heard.insert(source, Instant::now());
                self.received.add(groups.len() as u64);
                self.stats.received_total += groups.len() as u64;
                self.stats_dirty = true;
                out.push(NodeEvent::Rollouts { from: source, groups });
                gossipsub::MessageAcceptance::Accept
            }
        }
    }

    fn publish(&mut self, groups: Vec<RolloutGroup>) {
        let count = groups.len() as u64;
        if self.binding.is_none() && !self.share_unbound {
            self.stats.unshared_total += count;
            self.stats_dirty = true;
            return;
        }
        let result = wire::encode(&Message::Rollouts { groups }).map_err(|e| e.to_string()).and_then(|bytes| {
            self.swarm.behaviour_mut().gossipsub.publish(gossip::topic(), bytes).map_err(|e| e.to_string())
        });
        match result {
            Ok(_) => {
                self.sent.add(count);
                self.stats.sent_total += count;
            }
            Err(e) => {
                tracing::debug!("rollouts not published: {e}");
                self.stats.unsent_total += count;
            }
        }
        self.stats_dirty = true;
    }

    /// Publishes the binding (when there is one and a relay to hear it).
    fn announce_binding(&mut self) {
        let Some(binding) = self.binding.clone() else { return };
        if !self.subscribed {
            return;
        }
        // A new `sent_at` per announcement makes each a new message: one re-announced within the
        // same second (a relay that came back at once) would otherwise be a duplicate gossipsub
        // drops, and the relay would never hear it.
        let now = web_time::SystemTime::now().duration_since(web_time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let sent_at = now.max(self.binding_sent_at + 1);
        let result =
            wire::encode(&Message::Binding { binding, sent_at }).map_err(|e| e.to_string()).and_then(|bytes| {
                self.swarm.behaviour_mut().gossipsub.publish(gossip::topic(), bytes).map_err(|e| e.to_string())
            });
        match result {
            Ok(_) => {
                self.binding_announced = Some(Instant::now());
                self.binding_sent_at = sent_at;
            }
            Err(e) => tracing::debug!("binding not announced yet: {e}"),
        }
    }

    fn announce(&mut self) {
        let announcement = Announcement {
            peer: self.peer_id().to_string(),
            client: self.client.clone(),
            backend: self.backend.clone(),
            families: self.families.clone(),
            policy_version: self.policy_version,
        };
        if let Ok(bytes) = wire::encode(&Message::Announce(announcement)) {
            // Fails only without a relay; the next tick tries again.
            let _ = self.swarm.behaviour_mut().gossipsub.publish(gossip::topic(), bytes);
        }
    }

    /// Recomputes the counters; true when they changed.
    fn refresh_stats(&mut self) -> bool {
        self.heard.retain(|_, t| t.elapsed() < ONLINE_WINDOW);
        let stats = NetStats {
            peers_online: self.heard.len(),
            sent_per_minute: self.sent.total(),
            received_per_minute: self.received.total(),
            ..self.stats.clone()
        };
        let changed = self.stats_dirty || stats != self.stats;
        self.stats = stats;
        self.stats_dirty = false;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relay_addresses_with_a_peer_id_that_the_transport_takes_are_dialled() {
        let peer = PeerId::random();
        let tcp: Multiaddr = format!("/ip4/127.0.0.1/tcp/9091/p2p/{peer}").parse().expect("addr");
        let webrtc: Multiaddr = format!("/ip4/127.0.0.1/udp/9090/webrtc-direct/p2p/{peer}").parse().expect("addr");
        let anonymous: Multiaddr = "/ip4/127.0.0.1/tcp/9092".parse().expect("addr");
        let is_tcp = |a: &Multiaddr| a.iter().any(|p| matches!(p, Protocol::Tcp(_)));
        let got = dialable([anonymous, webrtc, tcp.clone(), tcp.clone()], is_tcp);
        assert_eq!(got, vec![tcp]);
    }

    #[test]
    fn the_inbox_keeps_the_newest_groups() {
        let group = |seed: u64| {
            tabswarm_protocol::rollout::score_group(RolloutGroup {
                question: tabswarm_protocol::tasks::QuestionId::new(Family::Add, 1, seed),
                peer: "p".into(),
                policy_version: 0,
                completions: vec!["1".into(), "2".into()],
                rewards: Vec::new(),
            })
            .expect("a valid group")
        };
        let mut inbox = Inbox::default();
        inbox.push((0..INBOX_LIMIT as u64 + 3).map(group));
        let taken = inbox.take();
        assert_eq!(taken.len(), INBOX_LIMIT);
        assert_eq!(taken[0].group.question.seed, 3);
        assert!(inbox.take().is_empty());
    }

    #[test]
    fn states_and_counters_read_as_sentences() {
        let relay = "/ip4/127.0.0.1/udp/9090/webrtc-direct/p2p/12D3KooWDQ4vzZR8UZNnPgENunEmvhMg3RZEAu5rHDRRQYP1CVb8";
        assert_eq!(describe_relay(relay), "127.0.0.1:9090 (…QYP1CVb8)");
        assert_eq!(describe_relay("not an address"), "not an address");
        let (key, text) = describe_connection(&ConnectionState::Waiting {
            next: relay.into(),
            wait_ms: 1500,
            reason: "connection lost".into(),
        });
        assert_eq!(key, "waiting");
        assert_eq!(
            text,
            "Not connected (connection lost); trying relay 127.0.0.1:9090 (…QYP1CVb8) in 2 s. Learning goes on meanwhile."
        );
        let (_, text) = describe_connection(&ConnectionState::Waiting {
            next: relay.into(),
            wait_ms: 0,
            reason: "the relay stopped answering for 4.5 s".into(),
        });
        assert_eq!(
            text,
            "Not connected (the relay stopped answering for 4.5 s); trying relay 127.0.0.1:9090 (…QYP1CVb8) now. \
             Learning goes on meanwhile."
        );
        let stats = NetStats {
            peers_online: 1,
            sent_per_minute: 8,
            received_per_minute: 16,
            sent_total: 8,
            received_total: 16,
            rejected_total: 2,
            unsent_total: 0,
            bound: true,
            unshared_total: 0,
        };
        assert_eq!(
            stats.describe(),
            "1 other peer online · rollout groups out 8/min, in 16/min (8 sent, 16 received, 2 refused)"
        );
        let unbound = NetStats { bound: false, unshared_total: 5, ..stats };
        assert!(
            unbound.describe().ends_with("2 refused) · 5 kept unshared: no wallet bound"),
            "{}",
            unbound.describe()
        );
    }
}

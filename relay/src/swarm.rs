//! The relay's libp2p node: an [`EventLoop`] that owns the `Swarm`, and a clonable [`SwarmHandle`]
//! the HTTP handlers ask for the bootstrap list, statistics and metrics.
//!
//! One process serves browsers over WebRTC (webrtc-direct on UDP, certificate persisted so the
//! address survives restarts), other relays and native peers over TCP (noise + yamux), and runs
//! gossipsub in validation mode: every message is decoded by [`tabswarm_protocol::wire::decode`]
//! and accepted, ignored (a duplicate) or rejected (peer scoring then penalises the sender) before
//! it is forwarded. identify tells relays apart from peers; relays are explicit gossipsub peers of
//! one another, so everything crosses between them. A circuit-relay v2 server lets peers reach
//! each other through the relay for protocols beyond gossip.

mod identity;
mod per_ip;
mod stats;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::Transport as _;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, connection_limits, gossipsub, identify, noise, ping, relay, tcp, yamux};
use prometheus_client::registry::Registry;
use tabswarm_protocol::api::{Bootstrap, RelayAddrs, SwarmStats};
use tabswarm_protocol::gossip::{self, IDENTIFY_PROTOCOL, RELAY_AGENT_PREFIX, Role};
use tabswarm_protocol::identity::{BindingDomain, SignedBinding};
use tabswarm_protocol::update::Lineage;
use tabswarm_protocol::wire::{self, Message, Verified, WIRE_VERSION};
use tokio::sync::{mpsc, oneshot};

pub use identity::NodeIdentity;
use stats::{RelayMetrics, Tally};

use crate::error::StartError;
use crate::ledger::{Bound, Ledger, Unattributed};
use crate::limits::{Limits, RateLimiter};

/// Where and how the relay's libp2p node listens.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Folder for the node's key and WebRTC certificate (created if missing).
    pub data_dir: PathBuf,
    /// Address to listen on (both transports).
    pub listen_ip: IpAddr,
    /// UDP port of the webrtc-direct listener browsers dial (0: any free port).
    pub webrtc_port: u16,
    /// TCP port other relays and native peers dial (0: any free port).
    pub tcp_port: u16,
    /// The public address to advertise instead of the listen addresses (behind NAT, or when
    /// listening on 0.0.0.0).
    pub public_ip: Option<IpAddr>,
    /// Other relays to join (their multiaddrs, ending in `/p2p/<id>`); redialled when lost.
    pub peers: Vec<Multiaddr>,
    /// Most connections accepted from others.
    pub max_peers: u32,
    /// Most incoming connections in their handshake at once (noise over TCP; ICE, DTLS and noise
    /// over WebRTC, each of which holds memory until it ends); more are refused at once.
    pub max_handshakes: u32,
    /// What bindings must name (swarm, chain, registry; the relay domain only for bindings posted
    /// to this relay — ones arriving over gossip were checked by the relay they name).
    pub domain: BindingDomain,
    /// Length of a contribution round in seconds (rounds are `unix time / round_secs`).
    pub round_secs: u64,
    /// Pass on rollouts of peers not bound to a wallet (credited to nobody) instead of rejecting
    /// them. For private swarms and demos without wallets.
    pub accept_unbound: bool,
    /// What one client may ask: the swarm reads the connections per IP and the gossip messages
    /// per peer; the HTTP side the rest.
    pub limits: Limits,
}

impl SwarmConfig {
    /// Loopback, any free ports, no other relays: for tests and a first local run.
    pub fn local(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            webrtc_port: 0,
            tcp_port: 0,
            public_ip: None,
            peers: Vec::new(),
            max_peers: 4096,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            domain: BindingDomain {
                chain_id: DEFAULT_CHAIN_ID,
                verifying_contract: alloy_primitives::Address::ZERO,
                swarm_id: DEFAULT_SWARM_ID.into(),
                relay_domain: "127.0.0.1".into(),
            },
            round_secs: DEFAULT_ROUND_SECS,
            accept_unbound: false,
            limits: Limits::default(),
        }
    }
}

/// The swarm id relays use unless told otherwise.
pub const DEFAULT_SWARM_ID: &str = "tabswarm";
/// The chain bindings name when the relay runs with its ledger alone (Ethereum mainnet: wallets
/// sign typed data for the chain they are on, and no transaction is ever sent for it).
pub const DEFAULT_CHAIN_ID: u64 = 1;
/// Contribution round length unless told otherwise.
pub const DEFAULT_ROUND_SECS: u64 = 600;
/// Handshakes in progress at once unless told otherwise: enough for a crowd of tabs arriving
/// together (a handshake takes well under a second on loopback, a few round trips on the
/// internet), few enough that a burst of dials cannot hold a small VPS's memory.
pub const DEFAULT_MAX_HANDSHAKES: u32 = 64;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    per_ip: per_ip::Behaviour,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    relay: relay::Behaviour,
}

enum Command {
    Bootstrap(oneshot::Sender<Bootstrap>),
    Stats(oneshot::Sender<SwarmStats>),
    /// Pass a binding accepted over HTTP on to the swarm.
    Announce(Box<SignedBinding>),
    /// Announce a new version of this relay's swarm model.
    AnnounceVersion(tabswarm_protocol::wire::ModelVersion),
}

/// The HTTP side's way into the running node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SwarmHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    registry: Arc<Registry>,
}

/// The swarm's event loop has stopped (the relay is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the relay's swarm has stopped")]
pub struct SwarmStopped;

impl SwarmHandle {
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, SwarmStopped> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(command(tx)).await.map_err(|_| SwarmStopped)?;
        rx.await.map_err(|_| SwarmStopped)
    }

    /// How to join the swarm here: this relay's addresses and the other relays it knows.
    pub async fn bootstrap(&self) -> Result<Bootstrap, SwarmStopped> {
        self.ask(Command::Bootstrap).await
    }

    /// What this relay sees of the swarm.
    pub async fn stats(&self) -> Result<SwarmStats, SwarmStopped> {
        self.ask(Command::Stats).await
    }

    /// Publishes a binding this relay accepted over HTTP, so every relay credits the peer.
    pub async fn announce(&self, binding: SignedBinding) -> Result<(), SwarmStopped> {
        self.commands.send(Command::Announce(Box::new(binding))).await.map_err(|_| SwarmStopped)
    }

    /// Announces a new version of this relay's swarm model (`root`: its base's hash) over gossip.
    pub async fn announce_version(&self, root: &str, lineage: &Lineage) -> Result<(), SwarmStopped> {
        let version = tabswarm_protocol::wire::ModelVersion {
            relay: self.peer_id.to_string(),
            root: root.to_owned(),
            hash: lineage.hash.clone(),
            number: lineage.number,
            parent: lineage.parent.clone().unwrap_or_default(),
            updates: lineage.updates,
            contributors: lineage.contributors.len() as u32,
        };
        self.commands.send(Command::AnnounceVersion(version)).await.map_err(|_| SwarmStopped)
    }

    /// Prometheus text exposition of the relay's metrics (libp2p's and the swarm's own).
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Owns the `Swarm`; run it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    public_ip: Option<IpAddr>,
    /// Configured relays and when to try each again.
    redial: Vec<Redial>,
    /// Connected peers that identified as relays, with the addresses they listen on.
    relays: HashMap<PeerId, Vec<Multiaddr>>,
    tally: Tally,
    republications: gossip::Republications,
    metrics: RelayMetrics,
    libp2p_metrics: libp2p::metrics::Metrics,
    ledger: Ledger,
    domain: BindingDomain,
    round_secs: u64,
    accept_unbound: bool,
    /// Messages per minute each publisher may send (other relays aside).
    publish_limit: RateLimiter<PeerId>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop").field("peer_id", self.swarm.local_peer_id()).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Redial {
    addr: Multiaddr,
    peer: PeerId,
    next: tokio::time::Instant,
    backoff: Duration,
}

const REDIAL_MIN: Duration = Duration::from_secs(1);
const REDIAL_MAX: Duration = Duration::from_secs(60);
/// How many accepted groups a relay remembers to spot re-publications.
const REMEMBERED_GROUPS: usize = 200_000;
/// How long [`start`] waits for both listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// `net.core.rmem_max` (Linux; `None` elsewhere or when it cannot be read): the largest UDP
/// receive buffer the kernel grants an unprivileged socket.
fn linux_rmem_max() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse().ok()
}

/// What to tell the operator when the kernel caps the WebRTC listener's receive buffer (which it
/// asks to be [`libp2p_webrtc::tokio::RECV_BUFFER_BYTES`]) at `rmem_max`: every tab's datagrams
/// arrive on that one socket, and a full buffer drops them before they are read, to be resent
/// by SCTP only after its retransmission timeout (at least a second). `None` when the limit is
/// high enough or unknown.
fn udp_buffer_advice(rmem_max: Option<usize>) -> Option<String> {
    let wanted = libp2p_webrtc::tokio::RECV_BUFFER_BYTES;
    let max = rmem_max.filter(|&max| max < wanted)?;
    Some(format!(
        "net.core.rmem_max is {max} bytes, so the WebRTC listener gets a UDP receive buffer of at most that \
         (it asks for {wanted}): under load, datagrams from tabs are dropped before the relay reads them and \
         arrive a second or more late. Raise it with `sysctl -w net.core.rmem_max={wanted}` and keep it in \
         /etc/sysctl.d/ (docs/relay.md)"
    ))
}

/// Builds the node from its persisted identity, starts both listeners and waits until they are
/// up (so a port conflict is a start error, and the bootstrap list is complete from the first
/// request).
pub async fn start(config: &SwarmConfig, ledger: Ledger) -> Result<(SwarmHandle, EventLoop), StartError> {
    start_with_registry(config, ledger, Registry::with_prefix("tabswarm")).await
}

/// [`start`], with the node's metrics registered beside those already in `registry` (the HTTP
/// side's), all exported by [`SwarmHandle::metrics_text`].
pub async fn start_with_registry(
    config: &SwarmConfig,
    ledger: Ledger,
    mut registry: Registry,
) -> Result<(SwarmHandle, EventLoop), StartError> {
    if config.round_secs == 0 {
        return Err(StartError::Swarm("--round-secs must be at least 1".into()));
    }
    if config.max_handshakes == 0 {
        return Err(StartError::Swarm("--max-handshakes must be at least 1 (0 would refuse every connection)".into()));
    }
    if let Some(addr) = config.peers.iter().find(|a| gossip::peer_id_of(a).is_none()) {
        return Err(StartError::Swarm(format!(
            "--peer {addr} does not end in /p2p/<peer id>; copy the other relay's address from its /api/bootstrap"
        )));
    }
    let identity = NodeIdentity::load_or_create(&config.data_dir)?;
    let metrics = RelayMetrics::register(&mut registry);
    let libp2p_metrics = libp2p::metrics::Metrics::new(registry.sub_registry_with_prefix("libp2p"));
    let swarm_error = |e: &dyn std::fmt::Display| StartError::Swarm(e.to_string());
    let certificate = identity.certificate.clone();
    let keypair = identity.keypair.clone();
    let max_peers = config.max_peers;
    let max_handshakes = config.max_handshakes;
    let per_ip = per_ip::Behaviour::new(&config.limits);
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| swarm_error(&e))?
        .with_other_transport(|key| {
            Ok(libp2p_webrtc::tokio::Transport::new(key.clone(), certificate)
                .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection))))
        })
        .map_err(|e| swarm_error(&e))?
        .with_bandwidth_metrics(registry.sub_registry_with_prefix("libp2p"))
        .with_behaviour(|key| {
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip::config(Role::Relay),
            )?;
            let (params, thresholds) = gossip::relay_scoring();
            gossipsub.with_peer_score(params, thresholds)?;
            gossipsub.subscribe(&gossip::topic())?;
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established_incoming(Some(max_peers))
                .with_max_pending_incoming(Some(max_handshakes))
                .with_max_established_per_peer(Some(2));
            Ok(Behaviour {
                per_ip,
                limits: connection_limits::Behaviour::new(limits),
                gossipsub,
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                        .with_agent_version(format!("{RELAY_AGENT_PREFIX}{}", env!("CARGO_PKG_VERSION"))),
                ),
                ping: ping::Behaviour::default(),
                relay: relay::Behaviour::new(key.public().to_peer_id(), relay::Config::default()),
            })
        })
        .map_err(|e| swarm_error(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();

    let ip = Protocol::from(config.listen_ip);
    let webrtc =
        Multiaddr::empty().with(ip.clone()).with(Protocol::Udp(config.webrtc_port)).with(Protocol::WebRTCDirect);
    let tcp = Multiaddr::empty().with(ip).with(Protocol::Tcp(config.tcp_port));
    for addr in [&webrtc, &tcp] {
        swarm.listen_on(addr.clone()).map_err(|e| StartError::Swarm(format!("cannot listen on {addr}: {e}")))?;
    }
    // Both listeners must report an address (or fail) before the relay says it is up.
    let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
    tokio::pin!(deadline);
    let (mut have_webrtc, mut have_tcp) = (false, false);
    let mut bound = Vec::new();
    while !(have_webrtc && have_tcp) {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    have_webrtc |= address.iter().any(|p| matches!(p, Protocol::WebRTCDirect));
                    have_tcp |= address.iter().any(|p| matches!(p, Protocol::Tcp(_)));
                    bound.push(address);
                }
                SwarmEvent::ListenerClosed { addresses, reason, .. } => {
                    return Err(StartError::Swarm(format!("listener on {addresses:?} closed: {reason:?}")));
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(StartError::Swarm(format!("listener failed: {error}")));
                }
                _ => {}
            },
            () = &mut deadline => {
                return Err(StartError::Swarm(format!(
                    "listeners did not come up within {LISTEN_TIMEOUT:?} (webrtc {have_webrtc}, tcp {have_tcp})"
                )));
            }
        }
    }
    if let Some(advice) = udp_buffer_advice(linux_rmem_max()) {
        tracing::warn!("{advice}");
    }
    if let Some(public) = config.public_ip {
        for addr in public_addrs(&bound, public) {
            swarm.add_external_address(addr);
        }
    }
    let now = tokio::time::Instant::now();
    let redial = config
        .peers
        .iter()
        .filter_map(|addr| {
            // Every configured address names its peer (checked above).
            let peer = gossip::peer_id_of(addr)?;
            swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer);
            Some(Redial { addr: addr.clone(), peer, next: now, backoff: REDIAL_MIN })
        })
        .collect();
    let (tx, rx) = mpsc::channel(64);
    let handle = SwarmHandle { peer_id: *swarm.local_peer_id(), commands: tx, registry: Arc::new(registry) };
    let event_loop = EventLoop {
        swarm,
        commands: rx,
        public_ip: config.public_ip,
        redial,
        relays: HashMap::new(),
        tally: Tally::default(),
        republications: gossip::Republications::new(REMEMBERED_GROUPS),
        metrics,
        libp2p_metrics,
        ledger,
        domain: config.domain.clone(),
        round_secs: config.round_secs,
        accept_unbound: config.accept_unbound,
        publish_limit: RateLimiter::per_minute(config.limits.gossip_per_peer_per_minute),
    };
    Ok((handle, event_loop))
}

/// The addresses to advertise for a public IP: each bound listen address (actual port, certhash
/// included) with its IP replaced by the public one.
fn public_addrs(bound: &[Multiaddr], public: IpAddr) -> Vec<Multiaddr> {
    let ip = Protocol::from(public);
    let mut out = Vec::new();
    for listen in bound {
        let mut addr = Multiaddr::empty().with(ip.clone());
        for p in listen.iter().skip(1) {
            addr.push(p);
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

impl EventLoop {
    /// Runs until `shutdown` resolves (or every handle is dropped).
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(),
                () = &mut shutdown => break,
            }
        }
        tracing::info!("swarm stopped");
    }

    fn on_tick(&mut self) {
        self.tally.tick();
        let now = tokio::time::Instant::now();
        for redial in &mut self.redial {
            if self.swarm.is_connected(&redial.peer) {
                redial.backoff = REDIAL_MIN;
                continue;
            }
            if now < redial.next {
                continue;
            }
            tracing::debug!(addr = %redial.addr, "dialling configured relay");
            if let Err(e) = self.swarm.dial(redial.addr.clone()) {
                tracing::warn!(addr = %redial.addr, "cannot dial configured relay: {e}");
            }
            redial.next = now + redial.backoff;
            redial.backoff = (redial.backoff * 2).min(REDIAL_MAX);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Bootstrap(reply) => {
                let _ = reply.send(self.bootstrap());
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
            Command::Announce(binding) => {
                let peer = binding.binding.peer_id.clone();
                match wire::encode(&Message::Binding { binding, sent_at: unix_now() }) {
                    Ok(bytes) => {
                        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(gossip::topic(), bytes) {
                            // No other node subscribed yet: the peer re-announces it itself.
                            tracing::debug!(%peer, "binding not passed on: {e}");
                        }
                    }
                    Err(e) => tracing::warn!(%peer, "cannot encode a binding: {e}"),
                }
            }
            Command::AnnounceVersion(version) => {
                let number = version.number;
                match wire::encode(&Message::ModelVersion(version)) {
                    Ok(bytes) => {
                        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(gossip::topic(), bytes) {
                            // Nobody subscribed: peers that join later read `/api/model`.
                            tracing::debug!(number, "swarm model version not announced: {e}");
                        }
                    }
                    Err(e) => tracing::warn!(number, "cannot encode a version announcement: {e}"),
                }
            }
        }
    }

    /// How to join the swarm here (what `GET /api/bootstrap` answers).
    pub fn bootstrap(&self) -> Bootstrap {
        let me = *self.swarm.local_peer_id();
        let own: Vec<Multiaddr> = if self.public_ip.is_some() {
            self.swarm.external_addresses().cloned().collect()
        } else {
            self.swarm.listeners().cloned().collect()
        };
        let mut relays: Vec<RelayAddrs> = self
            .relays
            .iter()
            .map(|(peer, addrs)| RelayAddrs {
                peer_id: peer.to_string(),
                addrs: addrs.iter().map(|a| with_peer_id(a, *peer).to_string()).collect(),
            })
            .collect();
        relays.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        // Sorted: the listeners report in no fixed order, and clients dial the list in turn.
        let mut addrs: Vec<String> = own.iter().map(|a| with_peer_id(a, me).to_string()).collect();
        addrs.sort();
        Bootstrap {
            peer_id: me.to_string(),
            addrs,
            relays,
            topic: gossip::ROLLOUT_TOPIC.into(),
            wire_version: WIRE_VERSION,
            accepts_unbound: self.accept_unbound,
        }
    }

    fn stats(&self) -> SwarmStats {
        let (_, thresholds) = gossip::relay_scoring();
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let graylisted = self
            .swarm
            .connected_peers()
            .filter(|p| gossipsub.peer_score(p).is_some_and(|s| s < thresholds.graylist_threshold))
            .count();
        SwarmStats {
            peer_id: self.swarm.local_peer_id().to_string(),
            peers: self.swarm.network_info().num_peers().saturating_sub(self.relays.len()),
            relays: self.relays.len(),
            graylisted,
            ..self.tally.snapshot()
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        libp2p::metrics::Recorder::record(&self.libp2p_metrics, &event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => {
                libp2p::metrics::Recorder::record(&self.libp2p_metrics, &event);
                self.on_gossip(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => {
                libp2p::metrics::Recorder::record(&self.libp2p_metrics, &event);
                if let identify::Event::Received { peer_id, info, .. } = event
                    && info.agent_version.starts_with(RELAY_AGENT_PREFIX)
                {
                    if !self.relays.contains_key(&peer_id) {
                        tracing::info!(peer = %peer_id, agent = %info.agent_version, "joined another relay");
                    }
                    self.swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer_id);
                    let addrs = info.listen_addrs.into_iter().filter(|a| !is_unspecified(a)).collect();
                    self.relays.insert(peer_id, addrs);
                    self.metrics.relays.set(self.relays.len() as i64);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => {
                libp2p::metrics::Recorder::record(&self.libp2p_metrics, &event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => {
                libp2p::metrics::Recorder::record(&self.libp2p_metrics, &event);
            }
            SwarmEvent::ConnectionEstablished { num_established, .. } if num_established.get() == 1 => {
                self.metrics.connected.set(self.swarm.network_info().num_peers() as i64);
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                if self.relays.remove(&peer_id).is_some() {
                    tracing::info!(peer = %peer_id, "lost another relay");
                    self.metrics.relays.set(self.relays.len() as i64);
                }
                self.metrics.connected.set(self.swarm.network_info().num_peers() as i64);
            }
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "swarm listening"),
            SwarmEvent::IncomingConnectionError { error: ListenError::Denied { cause }, send_back_addr, .. } => {
                let refused = if let Some(exceeded) = cause.downcast_ref::<per_ip::PerIpExceeded>() {
                    Some(("per_ip_full", exceeded.to_string()))
                } else if let Some(exceeded) = cause.downcast_ref::<connection_limits::Exceeded>() {
                    // `Exceeded` does not expose which limit; its message names it.
                    let message = exceeded.to_string();
                    Some((if message.contains("pending") { "handshakes_full" } else { "peers_full" }, message))
                } else {
                    None
                };
                if let Some((kind, message)) = refused {
                    tracing::debug!(from = %send_back_addr, "incoming connection refused: {message}");
                    self.tally.connection_refused(kind);
                    self.metrics.connection_refused(kind);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, "dial failed: {error}");
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let (propagation_source, message_id, message) = match event {
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                (propagation_source, message_id, message)
            }
            // Once a heartbeat, per peer that could not keep up (gossipsub's own warning for each
            // such message is silenced in the default log filter: under load it floods the log).
            gossipsub::Event::SlowPeer { peer_id, failed_messages } => {
                tracing::debug!(peer = %peer_id, ?failed_messages, "a peer too slow to take every message");
                for (kind, messages) in
                    [("queue_full", failed_messages.total_queue_full()), ("timeout", failed_messages.timeout)]
                {
                    if messages > 0 {
                        self.tally.undelivered(kind, messages as u64);
                        self.metrics.undelivered(kind, messages as u64);
                    }
                }
                return;
            }
            _ => return,
        };
        let acceptance = match message.source {
            // Strict validation mode refuses unsigned messages before they get here.
            None => gossipsub::MessageAcceptance::Reject,
            Some(source) => self.validate(source, propagation_source, &message.data),
        };
        // `false` only when the message already left the cache (nothing to do then).
        let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
            &message_id,
            &propagation_source,
            acceptance,
        );
    }

    /// Decides one message: decode, then bindings are checked and stored, rollouts are credited
    /// to the publisher's wallet with this relay's own scores. What the sender itself got wrong
    /// is rejected (gossipsub scores it down); what a relay only passed on is ignored, so relays
    /// do not penalise each other for a publisher's fault.
    fn validate(&mut self, source: PeerId, via: PeerId, data: &[u8]) -> gossipsub::MessageAcceptance {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        let now = unix_now();
        let publisher = source.to_string();
        let fault = if via == source { Reject } else { Ignore };
        // Before anything costly. Another relay publishes the bindings posted to it and its
        // versions, so relays are not limited. Over the limit the message is refused like a
        // faulty one (its publisher scored down, soon graylisted), but not written to the ledger
        // one row per message: a flood is what this stops.
        if !self.relays.contains_key(&source) && self.publish_limit.check(&source, std::time::Instant::now()).is_err() {
            tracing::debug!(%publisher, %via, limit = self.publish_limit.limit(), "over the gossip rate");
            self.count_rejected(stats::RATE_LIMITED);
            return fault;
        }
        let verified = match wire::decode(data, &publisher) {
            Ok(verified) => verified,
            Err(error) => {
                self.refuse(&publisher, via, error.kind(), &error.to_string(), now);
                return Reject;
            }
        };
        match verified {
            Verified::Rollouts(groups) => {
                if self.republications.seen_before(source, &groups) {
                    self.count_duplicate();
                    return Ignore;
                }
                match self.ledger.record(crate::ledger::round_of(now, self.round_secs), &publisher, &groups, now) {
                    // Every group was credited before this relay last started: a re-publication.
                    Ok(credited) if credited.groups == 0 => {
                        self.count_duplicate();
                        Ignore
                    }
                    Ok(_) => {
                        self.count_accepted(groups.len());
                        Accept
                    }
                    // Passed on by another relay, which knows the binding (it rejects unbound
                    // publishers itself); this relay has not heard it yet (joined later; the
                    // peer re-announces it every few minutes). Forward, but credit nobody.
                    // Or the operator lets unbound peers share (credited to nobody).
                    Err(Unattributed::Unbound(_) | Unattributed::Expired { .. })
                        if self.accept_unbound || self.relays.contains_key(&via) =>
                    {
                        tracing::debug!(%publisher, %via, "rollouts of a peer whose binding this relay has not seen");
                        self.count_accepted(groups.len());
                        Accept
                    }
                    // This relay's own disk failed, not the publisher: the message is valid, so it
                    // is passed on (other relays credit it) and its sender is not scored down; the
                    // operator sees the count by reason (the ledger cannot take a row for it).
                    Err(failure @ (Unattributed::Storage(_) | Unattributed::DiskFull | Unattributed::ReadOnly)) => {
                        tracing::warn!(%publisher, "rollouts not credited: {failure}");
                        self.count_rejected(failure.kind());
                        Accept
                    }
                    Err(refusal) => {
                        self.refuse(&publisher, via, refusal.kind(), &refusal.to_string(), now);
                        fault
                    }
                }
            }
            Verified::Announce(_) => Accept,
            // Versions are for relays to announce: passed on when a relay published it or passed
            // it here; one a leaf peer publishes goes no further (peers check any version against
            // their own relay's `/api/model` anyway).
            Verified::ModelVersion(version) => {
                if self.relays.contains_key(&source) || self.relays.contains_key(&via) {
                    tracing::debug!(relay = %source, number = version.number, hash = %version.hash, "swarm model version announced");
                    Accept
                } else {
                    Ignore
                }
            }
            Verified::Binding(signed) => {
                // The relay domain was checked by the relay the binding names.
                let domain = BindingDomain { relay_domain: signed.binding.relay_domain.clone(), ..self.domain.clone() };
                match self.ledger.bind(&signed, &domain, now) {
                    Ok(bound) => {
                        if let Bound::New(address) = bound {
                            tracing::info!(peer = %signed.binding.peer_id, %address, "peer bound");
                        }
                        Accept
                    }
                    Err(refusal) => {
                        let about = signed.binding.peer_id.clone();
                        self.refuse(&about, via, refusal.kind(), &refusal.to_string(), now);
                        fault
                    }
                }
            }
        }
    }

    /// Counts accepted rollout groups (statistics and metrics).
    fn count_accepted(&mut self, groups: usize) {
        self.tally.accepted(groups as u64);
        self.metrics.accepted.inc_by(groups as u64);
    }

    /// Counts an ignored re-publication (statistics and metrics).
    fn count_duplicate(&mut self) {
        self.tally.duplicate();
        self.metrics.duplicates.inc();
    }

    /// Counts a refused message by reason (statistics and metrics).
    fn count_rejected(&mut self, kind: &str) {
        self.tally.rejected(kind);
        self.metrics.rejected(kind);
    }

    /// Counts a refusal and logs it in the ledger.
    fn refuse(&mut self, peer: &str, via: PeerId, kind: &'static str, reason: &str, now: u64) {
        tracing::debug!(%peer, %via, "refused: {reason}");
        self.count_rejected(kind);
        self.ledger.reject(Some(peer), kind, reason, now);
    }
}

/// `addr` ending in `/p2p/<peer>` (unchanged if it already names a peer).
fn with_peer_id(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    addr.clone().with_p2p(peer).unwrap_or_else(|named| named)
}

fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_ip_replaces_the_listen_ip_and_keeps_ports_and_certhash() {
        let bound: Vec<Multiaddr> = [
            "/ip4/10.0.0.5/tcp/9091",
            "/ip4/127.0.0.1/tcp/9091",
            "/ip4/10.0.0.5/udp/9090/webrtc-direct/certhash/uEiAifWnoRmXUz23y4MxBYlwUBQxFXPyQYGckyEhoo3xlQA",
        ]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
        let public: Vec<String> =
            public_addrs(&bound, IpAddr::from([203, 0, 113, 7])).iter().map(ToString::to_string).collect();
        assert_eq!(
            public,
            [
                "/ip4/203.0.113.7/tcp/9091",
                "/ip4/203.0.113.7/udp/9090/webrtc-direct/certhash/uEiAifWnoRmXUz23y4MxBYlwUBQxFXPyQYGckyEhoo3xlQA"
            ]
        );
    }

    /// What `start` says when the local config, changed by `change`, is refused.
    async fn refused_at_start(change: impl FnOnce(&mut SwarmConfig)) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SwarmConfig::local(dir.path().to_path_buf());
        change(&mut config);
        start(&config, Ledger::in_memory().expect("ledger")).await.expect_err("refused").to_string()
    }

    #[tokio::test]
    async fn a_peer_address_without_its_peer_id_is_refused_at_start() {
        let err = refused_at_start(|c| c.peers = vec!["/ip4/127.0.0.1/tcp/9091".parse().expect("addr")]).await;
        assert!(err.contains("--peer /ip4/127.0.0.1/tcp/9091 does not end in /p2p/<peer id>"), "{err}");
    }

    #[tokio::test]
    async fn no_handshake_limit_is_refused_at_start() {
        let err = refused_at_start(|c| c.max_handshakes = 0).await;
        assert!(err.contains("--max-handshakes must be at least 1"), "{err}");
    }

    /// A node of the local config changed by `change`, running; its handle, TCP port and stop.
    struct Running {
        handle: SwarmHandle,
        port: u16,
        stop: oneshot::Sender<()>,
        node: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    async fn running(change: impl FnOnce(&mut SwarmConfig)) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SwarmConfig::local(dir.path().to_path_buf());
        change(&mut config);
        let (handle, event_loop) = start(&config, Ledger::in_memory().expect("ledger")).await.expect("start");
        let (stop, stopped) = oneshot::channel::<()>();
        let node = tokio::spawn(event_loop.run(async move {
            let _ = stopped.await;
        }));
        let bootstrap = handle.bootstrap().await.expect("bootstrap");
        let tcp: Multiaddr =
            bootstrap.addrs.iter().find(|a| a.contains("/tcp/")).expect("a TCP address").parse().expect("addr");
        let port = tcp.iter().find_map(|p| if let Protocol::Tcp(port) = p { Some(port) } else { None }).expect("port");
        Running { handle, port, stop, node, _dir: dir }
    }

    impl Running {
        async fn refused(&self, kind: &str) -> u64 {
            self.handle.stats().await.expect("stats").connections_refused[kind]
        }

        async fn stop(self) {
            let _ = self.stop.send(());
            self.node.await.expect("the node stops");
        }
    }

    /// Whether the relay closed the socket (EOF or reset) within `wait`; a dial left to its
    /// handshake stays silent.
    async fn closed(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(wait, s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }

    /// Silent dials against a limit of two: whichever arrives last is refused, whatever order a
    /// loaded machine gives them. Returns the dials and which were closed.
    async fn three_silent_dials(port: u16) -> (Vec<tokio::net::TcpStream>, Vec<bool>) {
        let mut dials = Vec::new();
        for _ in 0..3 {
            dials.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("dial"));
        }
        let mut closed_now = Vec::new();
        for d in &mut dials {
            closed_now.push(closed(d, Duration::from_secs(2)).await);
        }
        assert_eq!(closed_now.iter().filter(|c| **c).count(), 1, "exactly one is refused: {closed_now:?}");
        (dials, closed_now)
    }

    /// Dials that never finish their handshake hold a slot each; past `max_handshakes` the relay
    /// closes new ones at once and counts them, and a freed slot is usable again.
    #[tokio::test]
    async fn handshakes_beyond_the_limit_are_refused_at_once_and_counted() {
        use tokio::net::TcpStream;

        let node = running(|c| c.max_handshakes = 2).await;
        let dial = || TcpStream::connect(("127.0.0.1", node.port));
        let (dials, closed_now) = three_silent_dials(node.port).await;
        assert_eq!(node.refused("handshakes_full").await, 1);
        assert_eq!(node.refused("peers_full").await, 0);
        assert_eq!(node.refused("per_ip_full").await, 0, "loopback is not held to the per-IP limit");

        // Freeing a slot lets a later dial in (the relay notices the hang-up on its own time, so
        // a dial may be refused until it has).
        let mut open: Vec<TcpStream> = dials.into_iter().zip(closed_now).filter(|(_, c)| !c).map(|(d, _)| d).collect();
        drop(open.pop());
        let mut let_in = false;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let before = node.refused("handshakes_full").await;
            let mut next = dial().await.expect("dial");
            if !closed(&mut next, Duration::from_millis(500)).await && node.refused("handshakes_full").await == before {
                let_in = true;
                break;
            }
        }
        assert!(let_in, "a dial after a slot was freed is let in");
        drop(open);
        node.stop().await;
    }

    /// A kernel that caps UDP receive buffers below what the WebRTC listener asks is named, with
    /// the setting to raise and the value; one at or above it, or an unknown one, says nothing.
    #[test]
    fn a_low_udp_receive_buffer_limit_is_explained_with_the_fix() {
        let wanted = libp2p_webrtc::tokio::RECV_BUFFER_BYTES;
        let advice = udp_buffer_advice(Some(212_992)).expect("Linux's default limit is too low");
        assert!(advice.contains("net.core.rmem_max is 212992 bytes"), "{advice}");
        assert!(advice.contains(&format!("sysctl -w net.core.rmem_max={wanted}")), "{advice}");
        assert_eq!(udp_buffer_advice(Some(wanted)), None);
        assert_eq!(udp_buffer_advice(Some(wanted * 2)), None);
        assert_eq!(udp_buffer_advice(None), None);
    }

    /// One address gets `--max-swarm-connections-per-ip` connections, handshakes included.
    #[tokio::test]
    async fn connections_beyond_the_per_ip_limit_are_refused_at_once_and_counted() {
        let node = running(|c| {
            c.limits.swarm_connections_per_ip = 2;
            c.limits.limit_loopback = true;
        })
        .await;
        let (dials, _) = three_silent_dials(node.port).await;
        assert_eq!(node.refused("per_ip_full").await, 1);
        assert_eq!(node.refused("handshakes_full").await, 0);
        let metrics = node.handle.metrics_text();
        assert!(metrics.contains("tabswarm_connections_refused_total{reason=\"per_ip_full\"} 1"), "{metrics}");
        drop(dials);
        node.stop().await;
    }

    /// A peer publishing more than its share a minute has the rest refused as `rate_limited`
    /// (scored down when it sent them itself, ignored when a relay passed them on), without
    /// touching other peers' allowance.
    #[tokio::test]
    async fn a_peer_over_the_gossip_rate_is_refused_and_others_are_not() {
        // `MessageAcceptance` has no `PartialEq`.
        fn verdict(acceptance: gossipsub::MessageAcceptance) -> &'static str {
            match acceptance {
                gossipsub::MessageAcceptance::Accept => "accept",
                gossipsub::MessageAcceptance::Ignore => "ignore",
                gossipsub::MessageAcceptance::Reject => "reject",
            }
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SwarmConfig::local(dir.path().to_path_buf());
        config.limits.gossip_per_peer_per_minute = 3;
        let (handle, mut event_loop) = start(&config, Ledger::in_memory().expect("ledger")).await.expect("start");
        let announce = |peer: PeerId| {
            wire::encode(&Message::Announce(wire::Announcement {
                peer: peer.to_string(),
                client: "test".into(),
                backend: "cpu".into(),
                families: Vec::new(),
                policy_version: 0,
            }))
            .expect("encode")
        };
        let (noisy, quiet, relay) = (PeerId::random(), PeerId::random(), PeerId::random());
        for i in 0..3 {
            assert_eq!(verdict(event_loop.validate(noisy, noisy, &announce(noisy))), "accept", "message {i}");
        }
        assert_eq!(verdict(event_loop.validate(noisy, noisy, &announce(noisy))), "reject", "the fourth, sent itself");
        assert_eq!(
            verdict(event_loop.validate(noisy, relay, &announce(noisy))),
            "ignore",
            "the fifth, passed on by a relay"
        );
        assert_eq!(verdict(event_loop.validate(quiet, quiet, &announce(quiet))), "accept", "another peer has its own");
        let stats = event_loop.stats();
        assert_eq!(stats.rejected["rate_limited"], 2, "{stats:?}");
        assert_eq!(stats.rejected["malformed"], 0);
        assert!(handle.metrics_text().contains("tabswarm_messages_rejected_total{reason=\"rate_limited\"} 2"));
    }
}

//! The native transport: TCP with noise and yamux on tokio (a relay's `--p2p-port`).

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, identity, noise, tcp, yamux};

use super::{PeerBehaviour, PeerNode, dialable};

/// Whether a native peer can dial this address (TCP).
pub fn can_dial(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Tcp(_)))
}

/// A native peer node for `key`, dialling the TCP addresses among `relays`. Call from within a
/// tokio runtime.
pub fn node(
    key: identity::Keypair,
    relays: impl IntoIterator<Item = Multiaddr>,
    backend: &str,
) -> Result<PeerNode, String> {
    let agent = format!("tabswarm-peer/{} (native)", env!("CARGO_PKG_VERSION"));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| PeerBehaviour::new(key, agent.clone()))
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(PeerNode::new(swarm, dialable(relays, can_dial), agent, backend.to_owned()))
}

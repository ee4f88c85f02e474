//! The browser transport: WebRTC (webrtc-direct) to a relay, from the page (browsers offer
//! `RTCPeerConnection` to pages, not to workers).

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, identity};

use super::{PeerBehaviour, PeerNode, dialable};

/// Whether a browser can dial this address (webrtc-direct with the relay's certhash).
pub fn can_dial(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::WebRTCDirect)) && addr.iter().any(|p| matches!(p, Protocol::Certhash(_)))
}

/// A browser peer node for `key`, dialling the webrtc-direct addresses among `relays`.
pub fn node(
    key: identity::Keypair,
    relays: impl IntoIterator<Item = Multiaddr>,
    backend: &str,
) -> Result<PeerNode, String> {
    let agent = format!("tabswarm-client/{} (browser)", env!("CARGO_PKG_VERSION"));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_wasm_bindgen()
        .with_other_transport(|key| libp2p::webrtc_websys::Transport::new(libp2p::webrtc_websys::Config::new(key)))
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| PeerBehaviour::new(key, agent.clone()))
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(std::time::Duration::from_secs(60)))
        .build();
    Ok(PeerNode::new(swarm, dialable(relays, can_dial), agent, backend.to_owned()))
}

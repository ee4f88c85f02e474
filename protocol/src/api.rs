//! JSON bodies of the relay's swarm endpoints, read by clients, operators' monitors and tests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /api/bootstrap`: how to join the swarm through this relay, and where else to go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// The relay's libp2p peer id.
    pub peer_id: String,
    /// Its dialable addresses, each ending in `/p2p/<peer_id>`; webrtc-direct ones carry the
    /// `/certhash` a browser needs.
    pub addrs: Vec<String>,
    /// Other relays of the swarm this relay knows (to fail over to).
    pub relays: Vec<RelayAddrs>,
    /// The gossipsub topic.
    pub topic: String,
    /// The relay's wire version ([`crate::wire::WIRE_VERSION`]).
    pub wire_version: u16,
}

/// Another relay and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayAddrs {
    pub peer_id: String,
    pub addrs: Vec<String>,
}

/// `GET /api/swarm`: what this relay sees of the swarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwarmStats {
    pub peer_id: String,
    /// Peers (tabs and native peers) connected to this relay.
    pub peers: usize,
    /// Other relays connected to this relay.
    pub relays: usize,
    /// Rollout groups accepted over the last minute (from anyone, through any relay).
    pub rollouts_per_minute: u64,
    /// Rollout groups accepted since start.
    pub rollouts_total: u64,
    /// Messages rejected since start, by reason ([`crate::wire::WireError::kind`]).
    pub rejected: BTreeMap<String, u64>,
    /// Duplicate messages ignored since start.
    pub duplicates: u64,
    /// Peers currently graylisted (their score under the graylist threshold).
    pub graylisted: usize,
}

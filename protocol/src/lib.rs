//! What the browser client, native peers and relays must agree on, byte for byte.
//!
//! This crate owns the shared vocabulary of the swarm: the protocol version and `/healthz` body,
//! the endpoints' JSON ([`api`]), checkpoint framing ([`checkpoint`]), the verifiable task suite
//! ([`tasks`]), rollout groups and the receiver's checks ([`rollout`]), the gossip wire format
//! ([`wire`]) and gossipsub settings (`gossip`, feature `gossip`), the swarm model's 8-bit updates
//! and version names ([`update`]), and the EIP-712 peer binding ([`identity`]). It holds data
//! types and pure functions only: no I/O, no async, no GPU, so it builds everywhere the client and
//! the relay do, and depends on no other crate of the workspace.

pub mod api;
pub mod checkpoint;
#[cfg(feature = "gossip")]
pub mod gossip;
pub mod identity;
pub mod rollout;
pub mod tasks;
pub mod update;
pub mod wire;

use serde::{Deserialize, Serialize};

/// Version of the swarm protocol this build speaks. A relay and a client with different versions
/// refuse each other's messages rather than misread them.
pub const PROTOCOL_VERSION: u32 = 1;

/// Body of the relay's `GET /healthz`: enough for a client, an operator's monitor or a test to
/// check that it reached a Tabswarm relay and which build answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the relay answers at all.
    pub status: String,
    /// Name of the service (`tabswarm-relay`).
    pub service: String,
    /// The crate version of the relay build.
    pub version: String,
    /// The relay's [`PROTOCOL_VERSION`].
    pub protocol: u32,
}

impl Health {
    /// The health report of a running service.
    pub fn ok(service: &str, version: &str) -> Self {
        Self { status: "ok".into(), service: service.into(), version: version.into(), protocol: PROTOCOL_VERSION }
    }

    /// Whether a peer reporting this health speaks our protocol.
    pub fn is_compatible(&self) -> bool {
        self.status == "ok" && self.protocol == PROTOCOL_VERSION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_json_shape_is_stable() {
        let json = serde_json::to_value(Health::ok("tabswarm-relay", "0.1.0")).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"status": "ok", "service": "tabswarm-relay", "version": "0.1.0", "protocol": PROTOCOL_VERSION})
        );
    }

    #[test]
    fn other_protocol_versions_are_incompatible() {
        let mut health = Health::ok("tabswarm-relay", "0.1.0");
        assert!(health.is_compatible());
        health.protocol = PROTOCOL_VERSION + 1;
        assert!(!health.is_compatible());
        let err = serde_json::from_str::<Health>(r#"{"status":"ok"}"#).expect_err("missing fields");
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}

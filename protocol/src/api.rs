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
    /// Whether the relay passes on rollouts of peers not bound to a wallet (credited to nobody).
    /// Off by default: then only bound peers should publish.
    #[serde(default)]
    pub accepts_unbound: bool,
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
    /// Swarm-model updates refused since start, by reason (`tabswarm_aggregate::Refusal::kind`).
    #[serde(default)]
    pub updates_refused: BTreeMap<String, u64>,
    /// Incoming connections refused since start, by reason: `handshakes_full` (more handshakes
    /// in progress than the relay's `--max-handshakes`), `peers_full` (`--max-peers` connected)
    /// or `per_ip_full` (`--max-swarm-connections-per-ip` from the same address).
    #[serde(default)]
    pub connections_refused: BTreeMap<String, u64>,
    /// HTTP requests and connections refused since start, by limit: `bindings`, `downloads`,
    /// `updates` (over the per-IP rate of that route), `connections_per_ip`, `connections` (open
    /// connections over a bound), `slow_headers`, `slow_reader` (a client too slow to send its
    /// request or to read the answer).
    #[serde(default)]
    pub http_refused: BTreeMap<String, u64>,
    /// Messages this relay could not pass on to a peer too slow to take them, since start, by
    /// why: `queue_full` (the peer's send queue was full) or `timeout` (queued longer than
    /// gossipsub waits). The peer misses them; everyone else still gets them.
    #[serde(default)]
    pub undelivered: BTreeMap<String, u64>,
}

/// One row of `GET /api/leaderboard`: a wallet and what its peers contributed, as the relay's
/// own verifier scored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderboardEntry {
    /// Checksummed wallet address.
    pub address: String,
    /// Sum of verified rewards.
    pub reward: f64,
    /// Rollouts (completions) credited.
    pub rollouts: u64,
    /// Distinct peer ids (tabs, rotations, native peers) bound to the address that contributed.
    pub peers: u64,
    /// Unix seconds of the latest credited contribution.
    pub last_seen: u64,
}

/// One round of one peer's contributions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundRecord {
    pub round: u64,
    pub groups: u64,
    pub rollouts: u64,
    pub reward: f64,
    pub last_seen: u64,
}

/// Something the relay refused from a peer, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectionRecord {
    pub at: u64,
    /// Stable reason name (`wrong_chain`, `unbound_peer`, …).
    pub kind: String,
    /// The reason in words.
    pub reason: String,
}

/// `GET /api/peer/<id>`: a peer's binding, contributions (latest rounds first) and refusals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRecord {
    pub peer_id: String,
    /// The wallet it is bound to (none: unbound).
    pub address: Option<String>,
    pub issued_at: Option<u64>,
    pub expires_at: Option<u64>,
    /// The registry transaction that recorded the binding on chain, once submitted
    /// (`refused:<reason>` when the registry would not take it).
    pub chain_tx: Option<String>,
    /// What the registry says now, read from the chain (only on a relay with `--rpc-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_chain: Option<Registration>,
    /// Verified reward over every round the peer was credited in.
    pub reward: f64,
    /// Rollouts credited over every round.
    pub rollouts: u64,
    /// The newest rounds (at most 50), newest first.
    pub rounds: Vec<RoundRecord>,
    pub rejections: Vec<RejectionRecord>,
    /// Swarm-model updates of this peer the relay accepted (credited to its wallet).
    #[serde(default)]
    pub model_updates: u64,
}

/// A peer's registration as the `SwarmRegistry` contract reports it (`ownerOf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The registry's address.
    pub registry: String,
    /// The wallet the peer is registered to; none when unregistered, expired or revoked.
    pub owner: Option<String>,
    pub expires_at: Option<u64>,
}

/// `POST /api/bindings` answer: the binding is stored (201) or was already (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingAccepted {
    pub peer_id: String,
    pub address: String,
    pub expires_at: u64,
}

/// The body of every refusal of the relay's JSON API: a stable reason name and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub message: String,
}

/// `GET /api/model`: the swarm model as this relay has it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// The current version's name (SHA-256 of its parameters as little-endian f32).
    pub hash: String,
    /// 0 for the base, one more per outer step.
    pub number: u64,
    pub parent: Option<String>,
    /// Peers whose updates made it.
    pub contributors: Vec<String>,
    pub updates: u32,
    /// Where the checkpoint of this version lives (immutable).
    pub url: String,
    /// Size of that checkpoint file.
    pub bytes: usize,
    /// Greedy accuracy per family on the relay's held-out questions (which no peer trains on);
    /// absent until the relay has evaluated this version. Each a fraction in 0..=1: anything else
    /// (`1e39`, which f32 reads as infinity) is refused when read.
    #[serde(deserialize_with = "fractions")]
    pub accuracy: BTreeMap<crate::tasks::Family, f32>,
    /// The held-out set, in words.
    pub heldout: String,
    /// Rounds a peer trains between two updates (H).
    pub sync_every: u32,
    /// Updates the relay waits for before it takes an outer step.
    pub min_updates: usize,
    /// Updates waiting for the next step.
    pub pending: usize,
    /// Recent versions the relay still serves (newest first), for peers catching up.
    pub recent: Vec<String>,
}

/// `POST /api/model/updates` answer: the update is kept for the next outer step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAccepted {
    /// The version the update is for.
    pub version: String,
    /// Updates now waiting for the step.
    pub pending: usize,
}

/// Reads a map of fractions, refusing any value outside 0..=1 (found by fuzzing: `1e39` read as
/// an f32 infinity, which JSON cannot write back).
fn fractions<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<crate::tasks::Family, f32>, D::Error> {
    let map = BTreeMap::<crate::tasks::Family, f32>::deserialize(deserializer)?;
    if let Some((family, value)) = map.iter().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
        return Err(serde::de::Error::custom(format!("accuracy of {family} is {value}, not a fraction from 0 to 1")));
    }
    Ok(map)
}

#[cfg(test)]
mod fraction_tests {
    use super::*;

    #[test]
    fn a_model_info_with_an_accuracy_outside_0_to_1_is_refused_naming_it() {
        let info = |accuracy: &str| {
            format!(
                r#"{{"hash":"{h}","number":1,"parent":null,"contributors":[],"updates":2,"url":"/x","bytes":3,
                "accuracy":{{"add":{accuracy}}},"heldout":"h","syncEvery":10,"minUpdates":2,"pending":0,"recent":[]}}"#,
                h = "a".repeat(64)
            )
        };
        let fine: ModelInfo = serde_json::from_str(&info("0.25")).expect("a fraction");
        assert_eq!(fine.accuracy.values().copied().collect::<Vec<_>>(), [0.25]);
        for bad in ["1e39", "-0.5", "1.5"] {
            let err = serde_json::from_str::<ModelInfo>(&info(bad)).expect_err(bad).to_string();
            assert!(err.contains("accuracy of add") && err.contains("not a fraction"), "{bad}: {err}");
        }
    }
}

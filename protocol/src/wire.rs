//! The messages peers and relays gossip, and the one codec every node decodes them with.
//!
//! A message on the wire is a JSON [`Envelope`]: the [`WIRE_VERSION`] plus one [`Message`]. JSON
//! because what travels is text (questions ids and completions) and a relay operator can read a
//! captured message; the size limit keeps it cheap. [`decode`] is what a relay's gossipsub
//! validator and every client run on each message before anything else sees it: it refuses, with
//! a [`WireError`] naming what was wrong, anything oversized, malformed, of another version, or
//! carrying a rollout group that [`score_group`] drops — so the sender is penalised for exactly
//! what the receiver could check.

use serde::{Deserialize, Serialize};

use crate::identity::SignedBinding;
use crate::rollout::{DropReason, MAX_PEER_BYTES, RolloutGroup, ScoredGroup, score_group};
use crate::tasks::Family;

/// Version of the gossip messages. Bumped when a message changes shape; nodes refuse others'.
pub const WIRE_VERSION: u16 = 1;
/// Largest encoded message accepted, in bytes (also gossipsub's `max_transmit_size`).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Most rollout groups in one message.
pub const MAX_GROUPS_PER_MESSAGE: usize = 32;
/// Longest free-text field of an announcement (client name, backend), in bytes.
pub const MAX_LABEL_BYTES: usize = 64;

/// What travels: the version and one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender's [`WIRE_VERSION`].
    pub v: u16,
    #[serde(flatten)]
    pub message: Message,
}

/// One gossip message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Rollout groups one peer generated in one round. Every group's `peer` is the publisher's
    /// libp2p peer id, so a receiver can tell who made it from the signed message's source.
    Rollouts { groups: Vec<RolloutGroup> },
    /// A peer says who it is and what it works on (sent when it joins, then now and then).
    Announce(Announcement),
    /// A peer's key bound to a wallet (see [`crate::identity`]), published by that peer (or by the
    /// relay it was posted to) so every relay learns who its rollouts count for. Relays check it
    /// with [`crate::identity::verify`]. `sent_at` (unix seconds) makes each re-announcement a new
    /// message, so relays that joined later still hear it.
    Binding { binding: Box<SignedBinding>, sent_at: u64 },
    /// A relay's word that its swarm model has a new version (sent after each outer step), so
    /// peers fetch it from their relay's `GET /api/model` when it appears instead of asking every
    /// round. Only the relay that made the version signs it as the publisher.
    ModelVersion(ModelVersion),
}

/// A new swarm-model version, as its relay announces it. What a peer needs to decide whether to
/// fetch it: which lineage (`root`, the base's hash), how far along (`number`), and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelVersion {
    /// The publishing relay's libp2p peer id.
    pub relay: String,
    /// The lineage's base: the parameter hash of version 0.
    pub root: String,
    /// The version's parameter hash (its name in `GET /api/checkpoint/<hash>`).
    pub hash: String,
    /// 1 for the first version after the base, then one more per outer step.
    pub number: u64,
    /// The version it was made from.
    pub parent: String,
    /// Updates aggregated into it.
    pub updates: u32,
    /// Peers whose updates made it.
    pub contributors: u32,
}

/// A peer's self-description, shown on relays' swarm pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    /// The publisher's libp2p peer id.
    pub peer: String,
    /// `tabswarm-client/0.1.0 (browser)` or similar.
    pub client: String,
    /// Where it computes: `webgpu`, `cpu`, `vulkan`…
    pub backend: String,
    /// The families it asks questions from.
    pub families: Vec<Family>,
    /// Training steps its policy has taken.
    pub policy_version: u64,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("message of {bytes} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge { bytes: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message version {got} is not this node's version {WIRE_VERSION}")]
    WrongVersion { got: u16 },
    #[error("a rollout message must carry 1..={MAX_GROUPS_PER_MESSAGE} groups, not {count}")]
    GroupCount { count: usize },
    #[error("group {index} was made by {claimed:?}, not by the publisher {publisher:?}")]
    NotThePublisher { index: usize, claimed: String, publisher: String },
    #[error("group {index}: {reason}")]
    BadGroup { index: usize, reason: DropReason },
    #[error("announcement field {field} is {bytes} bytes, over the limit of {limit}")]
    LabelTooLong { field: &'static str, bytes: usize, limit: usize },
    #[error("model version announcement: {0}")]
    BadModelVersion(String),
}

impl WireError {
    /// A short, stable name for counting refusals by reason (metrics labels, `/api/swarm`).
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::TooLarge { .. } => "too_large",
            WireError::Malformed(_) => "malformed",
            WireError::WrongVersion { .. } => "wrong_version",
            WireError::GroupCount { .. } => "group_count",
            WireError::NotThePublisher { .. } => "not_the_publisher",
            WireError::BadGroup { reason: DropReason::UnknownQuestion { .. }, .. } => "unknown_question",
            WireError::BadGroup {
                reason: DropReason::RewardMismatch { .. } | DropReason::RewardCount { .. }, ..
            } => "reward_mismatch",
            WireError::BadGroup { .. } => "bad_group",
            WireError::LabelTooLong { .. } => "label_too_long",
            WireError::BadModelVersion(_) => "bad_model_version",
        }
    }
}

/// Every reason [`WireError::kind`] can give, for metrics that list zero counts too.
pub const REFUSAL_KINDS: [&str; 10] = [
    "too_large",
    "malformed",
    "wrong_version",
    "group_count",
    "not_the_publisher",
    "unknown_question",
    "reward_mismatch",
    "bad_group",
    "label_too_long",
    "bad_model_version",
];

/// A message that passed [`decode`]: announcements as sent, rollout groups scored by this node.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    Rollouts(Vec<ScoredGroup>),
    Announce(Announcement),
    /// A binding; its signatures are still to be checked (that needs the relay's domain).
    Binding(Box<SignedBinding>),
    /// A new swarm-model version, announced by the relay that made it (the publisher).
    ModelVersion(ModelVersion),
}

/// Encodes a message of this build's version. Errors when the result would be refused by
/// [`decode`] for its size, so a sender learns before publishing.
pub fn encode(message: &Message) -> Result<Vec<u8>, WireError> {
    let bytes = serde_json::to_vec(&Envelope { v: WIRE_VERSION, message: message.clone() })
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge { bytes: bytes.len() });
    }
    Ok(bytes)
}

/// Decodes and checks a message published by `publisher` (its libp2p peer id as a string):
/// size, shape, version, then every group's limits, question id and authorship, scoring each
/// completion with the shared verifier.
pub fn decode(bytes: &[u8], publisher: &str) -> Result<Verified, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge { bytes: bytes.len() });
    }
    // One parse on the path every valid message takes. Only when the shape does not parse is the
    // version read on its own, so a newer node's message is called what it is rather than
    // "malformed" when its shape changed.
    let envelope: Envelope = match serde_json::from_slice(bytes) {
        Ok(envelope) => envelope,
        Err(error) => {
            #[derive(Deserialize)]
            struct VersionOnly {
                v: u16,
            }
            return Err(match serde_json::from_slice::<VersionOnly>(bytes) {
                Ok(VersionOnly { v }) if v != WIRE_VERSION => WireError::WrongVersion { got: v },
                _ => WireError::Malformed(error.to_string()),
            });
        }
    };
    if envelope.v != WIRE_VERSION {
        return Err(WireError::WrongVersion { got: envelope.v });
    }
    match envelope.message {
        Message::Rollouts { groups } => {
            if groups.is_empty() || groups.len() > MAX_GROUPS_PER_MESSAGE {
                return Err(WireError::GroupCount { count: groups.len() });
            }
            let mut scored = Vec::with_capacity(groups.len());
            for (index, group) in groups.into_iter().enumerate() {
                if group.peer != publisher {
                    return Err(WireError::NotThePublisher {
                        index,
                        claimed: group.peer,
                        publisher: publisher.to_owned(),
                    });
                }
                scored.push(score_group(group).map_err(|reason| WireError::BadGroup { index, reason })?);
            }
            Ok(Verified::Rollouts(scored))
        }
        Message::Announce(announcement) => {
            for (field, value, limit) in [
                ("peer", &announcement.peer, MAX_PEER_BYTES),
                ("client", &announcement.client, MAX_LABEL_BYTES),
                ("backend", &announcement.backend, MAX_LABEL_BYTES),
            ] {
                if value.len() > limit {
                    return Err(WireError::LabelTooLong { field, bytes: value.len(), limit });
                }
            }
            if announcement.peer != publisher {
                return Err(WireError::NotThePublisher {
                    index: 0,
                    claimed: announcement.peer,
                    publisher: publisher.to_owned(),
                });
            }
            Ok(Verified::Announce(announcement))
        }
        // Self-authenticating (wallet and peer-key signatures), so anyone may pass one on: a relay
        // publishes the bindings posted to it over HTTP.
        Message::Binding { binding, .. } => Ok(Verified::Binding(binding)),
        Message::ModelVersion(version) => {
            if version.relay != publisher {
                return Err(WireError::NotThePublisher {
                    index: 0,
                    claimed: version.relay,
                    publisher: publisher.to_owned(),
                });
            }
            for (field, value) in [("root", &version.root), ("hash", &version.hash), ("parent", &version.parent)] {
                if !crate::update::is_version_hash(value) {
                    return Err(WireError::BadModelVersion(format!("{field} is not 64 lowercase hex digits")));
                }
            }
            if version.number == 0 || version.hash == version.parent {
                return Err(WireError::BadModelVersion(format!(
                    "version {} named {} cannot follow {}",
                    version.number, version.hash, version.parent
                )));
            }
            Ok(Verified::ModelVersion(version))
        }
    }
}

#[cfg(test)]
mod tests;

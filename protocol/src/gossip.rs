//! The gossipsub settings every node of the swarm shares (feature `gossip`).
//!
//! Two roles, one topic. A *peer* (a tab or a native `tabswarm-peer`) is a leaf: it connects to
//! one relay at a time and publishes its rollouts there. A *relay* is a hub: every subscribed peer
//! it serves is in its mesh, so a message is pushed to all of them at once rather than trickling
//! out through gossip, and relays that know each other (`--peer`) are explicit peers that forward
//! everything to one another. Why each number is what it is: `docs/architecture.md` ("Gossip").

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use libp2p::gossipsub::{
    self, ConfigBuilder, IdentTopic, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams, ValidationMode,
};
use sha2::{Digest, Sha256};

use crate::rollout::ScoredGroup;
use crate::tasks::QuestionId;
use crate::wire::MAX_MESSAGE_BYTES;

/// The topic rollouts and announcements are published on (its last part is the wire version).
pub const ROLLOUT_TOPIC: &str = "tabswarm/rollouts/1";
/// How often gossipsub maintains its mesh and emits gossip.
pub const HEARTBEAT: Duration = Duration::from_millis(700);
/// Most peers a relay keeps in its mesh: every peer it serves, up to its connection limit.
pub const RELAY_MESH_MAX: usize = 4096;
/// gossipsub's per-peer send queue on a relay (`connection_handler_queue_len`): half of it holds
/// messages being forwarded to that peer (256 of them: half a second of the swarm at 500
/// messages a second; gossipsub drops a forward still queued after a second anyway), the other
/// half bounds its control messages and the relay's own publications. gossipsub allocates the
/// forward half in full for every connected peer, about 230 bytes a slot: its default (5,000)
/// made ~570 KiB of the ~650 KiB a connected peer cost the relay (docs/benchmarks.md, "Relay under
/// load").
pub const RELAY_PEER_QUEUE: usize = 512;

/// identify's protocol version string: nodes of other swarms are told apart by it.
pub const IDENTIFY_PROTOCOL: &str = "/tabswarm/id/1.0.0";
/// Prefix of a relay's identify agent version (`tabswarm-relay/0.1.0`): how relays recognise
/// each other among the peers that connect.
pub const RELAY_AGENT_PREFIX: &str = "tabswarm-relay/";

/// Which side of the hub a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Relay,
    Peer,
}

/// The topic.
pub fn topic() -> IdentTopic {
    IdentTopic::new(ROLLOUT_TOPIC)
}

/// Message ids are the SHA-256 of the payload: the same rollouts published twice, by anyone, are
/// one message (dropped as duplicates before the application sees them).
pub fn message_id(message: &gossipsub::Message) -> MessageId {
    MessageId::from(Sha256::digest(&message.data).to_vec())
}

/// gossipsub's configuration for a node of this role.
pub fn config(role: Role) -> gossipsub::Config {
    let mut builder = ConfigBuilder::default();
    builder
        .heartbeat_interval(HEARTBEAT)
        // Every message is signed by its publisher's peer key and checked by every receiver.
        .validation_mode(ValidationMode::Strict)
        // The application accepts, ignores or rejects each message before it is forwarded.
        .validate_messages()
        .message_id_fn(message_id)
        // A gossipsub RPC may bundle a few messages plus control data.
        .max_transmit_size(2 * MAX_MESSAGE_BYTES + 4096)
        // Long enough to cover a round's worth of re-publications through other relays.
        .duplicate_cache_time(Duration::from_secs(120));
    if role == Role::Relay {
        // A relay is the hub of its peers: all of them in its mesh, so a message reaches each
        // in one push. (Leaves keep gossipsub's defaults: they only ever have a relay or two.)
        builder
            .mesh_n_low(RELAY_MESH_MAX)
            .mesh_n(RELAY_MESH_MAX)
            .mesh_n_high(RELAY_MESH_MAX)
            .mesh_outbound_min(0)
            .connection_handler_queue_len(RELAY_PEER_QUEUE);
    }
    // Unreachable: the values above satisfy every constraint `build` checks (tested).
    builder.build().unwrap_or_else(|e| panic!("the swarm's gossipsub settings are invalid: {e}"))
}

/// Peer scoring for relays: invalid messages are what gets a peer graylisted.
///
/// Each message the application rejects adds one to the sender's invalid count `c` (decaying by
/// 10 % a second); the score is `-10·c²`, so three invalid messages in quick succession (-90) pass
/// the graylist threshold (-80) and the relay ignores everything from that peer until it decays.
/// Peers behind one address are not penalised (a school or office shares one NAT), nor are quiet
/// peers (a tab publishes once a round).
pub fn relay_scoring() -> (PeerScoreParams, PeerScoreThresholds) {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..TopicScoreParams::default()
    };
    let mut params = PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        decay_interval: Duration::from_secs(1),
        ..PeerScoreParams::default()
    };
    params.topics.insert(topic_hash(), topic);
    (params, PeerScoreThresholds::default())
}

/// The peer id at the end of a relay address (`…/p2p/<id>`), if it names one.
pub fn peer_id_of(addr: &libp2p::Multiaddr) -> Option<libp2p::PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// A count over the last minute, in one-second buckets advanced by [`PerMinute::tick`] (relays
/// and peers both run a one-second tick).
#[derive(Debug, Clone)]
pub struct PerMinute {
    buckets: VecDeque<u64>,
}

impl Default for PerMinute {
    fn default() -> Self {
        Self { buckets: VecDeque::from(vec![0; 60]) }
    }
}

impl PerMinute {
    /// Counts `n` in the current second.
    pub fn add(&mut self, n: u64) {
        if let Some(now) = self.buckets.back_mut() {
            *now += n;
        }
    }

    /// Starts a new second, forgetting the one a minute ago.
    pub fn tick(&mut self) {
        self.buckets.pop_front();
        self.buckets.push_back(0);
    }

    /// The count over the last 60 seconds.
    pub fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Remembers which (publisher, question, policy version) groups a node has accepted, to tell a
/// re-publication (answered `Ignore`) from new work. Bounded: the oldest keys are forgotten first.
#[derive(Debug)]
pub struct Republications {
    seen: HashSet<(libp2p::PeerId, QuestionId, u64)>,
    order: VecDeque<(libp2p::PeerId, QuestionId, u64)>,
    capacity: usize,
}

impl Republications {
    pub fn new(capacity: usize) -> Self {
        Self { seen: HashSet::new(), order: VecDeque::new(), capacity }
    }

    /// Remembers the groups `publisher` sent; true when any of them was seen before.
    pub fn seen_before(&mut self, publisher: libp2p::PeerId, groups: &[ScoredGroup]) -> bool {
        let mut again = false;
        for g in groups {
            let key = (publisher, g.group.question, g.group.policy_version);
            if self.seen.insert(key) {
                self.order.push_back(key);
            } else {
                again = true;
            }
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        again
    }
}

fn topic_hash() -> gossipsub::TopicHash {
    topic().hash()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_window_forgets_after_sixty_ticks() {
        let mut minute = PerMinute::default();
        minute.add(5);
        for _ in 0..30 {
            minute.tick();
        }
        minute.add(2);
        assert_eq!(minute.total(), 7);
        for _ in 0..30 {
            minute.tick();
        }
        assert_eq!(minute.total(), 2);
    }

    #[test]
    fn the_peer_id_is_read_from_the_end_of_an_address() {
        let peer = libp2p::PeerId::random();
        let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/9091/p2p/{peer}").parse().expect("addr");
        assert_eq!(peer_id_of(&addr), Some(peer));
        assert_eq!(peer_id_of(&"/ip4/127.0.0.1/tcp/9091".parse().expect("addr")), None);
    }

    #[test]
    fn republications_are_spotted_and_old_keys_forgotten() {
        use crate::rollout::{RolloutGroup, score_group};
        use crate::tasks::Family;
        let group = |seed: u64, version: u64| {
            score_group(RolloutGroup {
                question: QuestionId::new(Family::Add, 1, seed),
                peer: "p".into(),
                policy_version: version,
                completions: vec!["1".into(), "2".into()],
                rewards: Vec::new(),
            })
            .expect("valid")
        };
        let (a, b) = (libp2p::PeerId::random(), libp2p::PeerId::random());
        let mut seen = Republications::new(2);
        assert!(!seen.seen_before(a, &[group(1, 0)]));
        assert!(seen.seen_before(a, &[group(2, 0), group(1, 0)]), "one known group makes it a re-publication");
        assert!(!seen.seen_before(b, &[group(1, 0)]), "another publisher's group is new work");
        assert!(!seen.seen_before(a, &[group(1, 1)]), "a new policy version is new work");
        // Capacity 2: (a,1,0) was forgotten.
        assert!(!seen.seen_before(a, &[group(1, 0)]));
    }

    #[test]
    fn the_settings_are_valid_for_both_roles() {
        for role in [Role::Relay, Role::Peer] {
            let config = config(role);
            assert!(config.validate_messages());
            assert!(config.max_transmit_size() > MAX_MESSAGE_BYTES);
        }
        assert_eq!(config(Role::Relay).mesh_n(), RELAY_MESH_MAX);
        assert_eq!(config(Role::Relay).connection_handler_queue_len(), RELAY_PEER_QUEUE);
        let (params, thresholds) = relay_scoring();
        params.validate().expect("score params");
        thresholds.validate().expect("thresholds");
        // Three invalid messages in a row pass the graylist threshold; two do not.
        let weight = params.topics[&topic_hash()].invalid_message_deliveries_weight;
        assert!(weight * 9.0 < thresholds.graylist_threshold);
        assert!(weight * 4.0 > thresholds.graylist_threshold);
    }
}

//! Counting what the relay's gossip validator decided, for `/api/swarm` and `/metrics`.

use std::collections::BTreeMap;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tabswarm_protocol::api::SwarmStats;
use tabswarm_protocol::gossip::PerMinute;
use tabswarm_protocol::wire::REFUSAL_KINDS;

/// Running counts, plus accepted groups per second over the last minute.
#[derive(Debug)]
pub struct Tally {
    total: u64,
    last_minute: PerMinute,
    rejected: BTreeMap<String, u64>,
    duplicates: u64,
    connections_refused: BTreeMap<String, u64>,
    undelivered: BTreeMap<String, u64>,
}

/// Why a message was not passed on to a slow peer (`/api/swarm`'s `undelivered`).
pub const UNDELIVERED_KINDS: [&str; 2] = ["queue_full", "timeout"];

/// Why an incoming connection was refused (`/api/swarm`'s `connections_refused`).
pub const CONNECTION_REFUSAL_KINDS: [&str; 3] = ["handshakes_full", "peers_full", "per_ip_full"];

/// Why a gossip message was refused when its publisher sent more than its share
/// (`--gossip-per-peer-per-minute`); listed in `rejected` beside the wire's refusal kinds.
pub const RATE_LIMITED: &str = "rate_limited";

impl Default for Tally {
    fn default() -> Self {
        Self {
            total: 0,
            last_minute: PerMinute::default(),
            rejected: REFUSAL_KINDS.iter().chain([&RATE_LIMITED]).map(|k| ((*k).to_owned(), 0)).collect(),
            duplicates: 0,
            connections_refused: CONNECTION_REFUSAL_KINDS.iter().map(|k| ((*k).to_owned(), 0)).collect(),
            undelivered: UNDELIVERED_KINDS.iter().map(|k| ((*k).to_owned(), 0)).collect(),
        }
    }
}

impl Tally {
    /// Called once a second: starts a new one-second bucket.
    pub fn tick(&mut self) {
        self.last_minute.tick();
    }

    pub fn accepted(&mut self, groups: u64) {
        self.total += groups;
        self.last_minute.add(groups);
    }

    pub fn rejected(&mut self, kind: &str) {
        *self.rejected.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn duplicate(&mut self) {
        self.duplicates += 1;
    }

    pub fn connection_refused(&mut self, kind: &str) {
        *self.connections_refused.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn undelivered(&mut self, kind: &str, messages: u64) {
        *self.undelivered.entry(kind.to_owned()).or_default() += messages;
    }

    pub fn snapshot(&self) -> SwarmStats {
        SwarmStats {
            rollouts_per_minute: self.last_minute.total(),
            rollouts_total: self.total,
            rejected: self.rejected.clone(),
            duplicates: self.duplicates,
            connections_refused: self.connections_refused.clone(),
            undelivered: self.undelivered.clone(),
            ..SwarmStats::default()
        }
    }
}

/// The relay's own Prometheus metrics (libp2p's are registered beside them).
#[derive(Debug)]
pub struct RelayMetrics {
    pub accepted: Counter,
    pub duplicates: Counter,
    rejected: ByReason,
    connections_refused: ByReason,
    undelivered: ByReason,
    pub connected: Gauge,
    pub relays: Gauge,
}

impl RelayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            accepted: Counter::default(),
            duplicates: Counter::default(),
            rejected: Family::default(),
            connections_refused: Family::default(),
            undelivered: Family::default(),
            connected: Gauge::default(),
            relays: Gauge::default(),
        };
        registry.register(
            "rollout_groups_accepted",
            "Rollout groups accepted by the gossip validator",
            metrics.accepted.clone(),
        );
        registry.register("messages_duplicate", "Re-published messages ignored", metrics.duplicates.clone());
        // Each count by reason lists its reasons from the start, so a dashboard shows 0 rather
        // than nothing.
        register_by_reason(
            registry,
            "messages_rejected",
            "Messages rejected by the gossip validator, by reason",
            &metrics.rejected,
            REFUSAL_KINDS.into_iter().chain([RATE_LIMITED]),
        );
        register_by_reason(
            registry,
            "connections_refused",
            "Incoming swarm connections refused, by reason",
            &metrics.connections_refused,
            CONNECTION_REFUSAL_KINDS,
        );
        register_by_reason(
            registry,
            "messages_undelivered",
            "Messages not passed on to a peer too slow to take them, by reason",
            &metrics.undelivered,
            UNDELIVERED_KINDS,
        );
        registry.register("connected_peers", "Peers and relays connected", metrics.connected.clone());
        registry.register("connected_relays", "Other relays connected", metrics.relays.clone());
        metrics
    }

    pub fn rejected(&self, kind: &str) {
        by_reason(&self.rejected, kind).inc();
    }

    pub fn connection_refused(&self, kind: &str) {
        by_reason(&self.connections_refused, kind).inc();
    }

    pub fn undelivered(&self, kind: &str, messages: u64) {
        by_reason(&self.undelivered, kind).inc_by(messages);
    }
}

type ByReason = Family<Vec<(String, String)>, Counter>;

/// The counter of one `reason` label in a count by reason.
fn by_reason(family: &ByReason, kind: &str) -> Counter {
    family.get_or_create(&vec![("reason".to_owned(), kind.to_owned())]).clone()
}

/// Registers a count by reason with every reason it knows at 0.
fn register_by_reason<'a>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    family: &ByReason,
    kinds: impl IntoIterator<Item = &'a str>,
) {
    registry.register(name, help, family.clone());
    for kind in kinds {
        by_reason(family, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_window_forgets_and_refusals_are_counted_by_reason() {
        let mut tally = Tally::default();
        tally.accepted(5);
        for _ in 0..30 {
            tally.tick();
        }
        tally.accepted(2);
        assert_eq!(tally.snapshot().rollouts_per_minute, 7);
        for _ in 0..30 {
            tally.tick();
        }
        let stats = tally.snapshot();
        assert_eq!((stats.rollouts_per_minute, stats.rollouts_total), (2, 7));

        tally.undelivered("queue_full", 3);
        tally.undelivered("queue_full", 2);
        assert_eq!(tally.snapshot().undelivered["queue_full"], 5);
        assert_eq!(tally.snapshot().undelivered["timeout"], 0, "listed from the start");

        tally.rejected("malformed");
        assert_eq!(tally.snapshot().rejected["malformed"], 1);
        assert_eq!(tally.snapshot().rejected["too_large"], 0);
    }
}

//! The SAPO sharing experiment: N simulated peers in one process exchanging rollout groups through
//! an in-memory bus (not the swarm: no network, no relay), each running the very [`Peer`] round a
//! tab runs. Every peer starts from the same base model; configurations differ only in how many of
//! the groups trained on per round are the peer's own (I) and how many come from the others (J), at
//! equal compute: every peer samples the same number of questions and trains on at most I + J
//! groups per round in every configuration.

use std::collections::BTreeMap;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use tabswarm_model::{Model, ModelError};
use tabswarm_protocol::rollout::{DropCounts, RolloutGroup, ScoredGroup, score_group};
use tabswarm_protocol::tasks::{Family, MID_DIFFICULTY};

use crate::{Peer, RlConfig, evaluate};

pub mod summary;

/// Delivers every group published in a round to every peer (each ignores its own). Groups go in
/// as text and are checked and scored as the wire's receivers do (`score_group`), once for all
/// subscribers, since every subscriber would compute the same.
#[derive(Debug, Default)]
pub struct MemoryBus {
    round: Vec<ScoredGroup>,
    /// Published groups that failed the checks, by reason.
    pub drops: DropCounts,
}

impl MemoryBus {
    pub fn publish(&mut self, groups: impl IntoIterator<Item = RolloutGroup>) {
        for group in groups {
            match score_group(group) {
                Ok(scored) => self.round.push(scored),
                Err(reason) => self.drops.count(&reason),
            }
        }
    }

    /// What a subscriber receives this round.
    pub fn deliver(&self) -> Vec<ScoredGroup> {
        self.round.clone()
    }

    pub fn next_round(&mut self) {
        self.round.clear();
    }
}

/// One configuration of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub peers: usize,
    pub rounds: u64,
    /// Seeds the peers' question and sampling streams (the same across configurations).
    pub seed: u64,
    /// Local / external split and everything else about learning.
    pub rl: RlConfig,
    /// Greedy evaluation questions per family at the end.
    pub eval_per_family: usize,
}

/// What a configuration achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    pub local: usize,
    pub external: usize,
    pub seed: u64,
    /// Σ over rounds and peers of the peer's mean reward on its own completions that round.
    pub cumulative_reward: f32,
    /// Mean over peers of the round's mean reward, per round.
    pub reward_per_round: Vec<f32>,
    /// Mean over peers of the final greedy accuracy at the middle difficulty, per family.
    pub final_accuracy: BTreeMap<Family, f32>,
    /// External groups trained on per peer per round, on average (the rest of J had no signal).
    pub external_used: f32,
    pub local_used: f32,
    /// Published groups refused by the checks, plus received groups no peer could tokenize.
    pub dropped: u64,
}

/// Runs one configuration from `base` to the end; `progress` sees (round, mean reward) each round.
pub async fn run_arm(
    base: &Model,
    arm: &Arm,
    device: &Device,
    progress: &mut dyn FnMut(u64, f32),
) -> Result<ArmResult, ModelError> {
    let mut peers = (0..arm.peers)
        .map(|i| Peer::new(&format!("peer-{i}"), base.clone(), arm.rl.clone(), device, arm.seed * 1_000 + i as u64))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bus = MemoryBus::default();
    let mut reward_per_round = Vec::with_capacity(arm.rounds as usize);
    let (mut cumulative, mut used_local, mut used_external) = (0.0, 0usize, 0usize);
    for round in 0..arm.rounds {
        let mut own = Vec::with_capacity(peers.len());
        for peer in &mut peers {
            let groups = peer.generate_round().await?;
            bus.publish(groups.iter().map(|g| g.group.clone()));
            own.push(groups);
        }
        let mut total = 0.0;
        for (peer, groups) in peers.iter_mut().zip(&own) {
            let stats = peer.train_round(groups, bus.deliver()).await?;
            total += stats.mean_reward;
            used_local += stats.trained_local;
            used_external += stats.trained_external;
        }
        bus.next_round();
        cumulative += total;
        let mean = total / peers.len() as f32;
        reward_per_round.push(mean);
        progress(round, mean);
    }
    let mut final_accuracy: BTreeMap<Family, f32> = BTreeMap::new();
    for peer in &peers {
        let accuracy = evaluate(&peer.model(), &arm.rl.families, MID_DIFFICULTY, arm.eval_per_family, device).await?;
        for (family, a) in accuracy {
            *final_accuracy.entry(family).or_default() += a / peers.len() as f32;
        }
    }
    let peer_rounds = (arm.rounds as usize * peers.len()).max(1) as f32;
    Ok(ArmResult {
        local: arm.rl.local,
        external: arm.rl.external,
        seed: arm.seed,
        cumulative_reward: cumulative,
        reward_per_round,
        final_accuracy,
        external_used: used_external as f32 / peer_rounds,
        local_used: used_local as f32 / peer_rounds,
        dropped: bus.drops.total() + peers.iter().map(|p| p.untrainable).sum::<u64>(),
    })
}

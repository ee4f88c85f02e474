//! The SAPO sharing experiment: N simulated peers in one process exchanging rollout groups through
//! an in-memory bus (not the swarm: no network, no relay), each running the very [`Peer`] round a
//! tab runs. Every peer starts from the same base model; configurations differ only in how many of
//! the groups trained on per round are the peer's own (I) and how many come from the others (J), at
//! equal compute: every peer samples the same number of questions and trains on at most I + J
//! groups per round in every configuration.
//!
//! With [`SwarmSync`] the peers also feed a swarm model (the real outer loop of
//! `tabswarm-aggregate`, as a relay runs it): every H rounds each peer compresses its update against
//! the version it started from, the [`SwarmModel`] screens and aggregates them and takes the outer
//! step, and every peer continues from the new version. A [`HeldOut`] set, the same for every
//! configuration, is evaluated every few rounds: the peers' models without a swarm model, the swarm
//! version with one.

use std::collections::BTreeMap;

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tabswarm_aggregate::{Compressor, Lineage, OuterConfig, SwarmModel, UpdateHeader};
use tabswarm_model::{Model, ModelError, params};
use tabswarm_protocol::rollout::{DropCounts, RolloutGroup, ScoredGroup, score_group};
use tabswarm_protocol::tasks::{Family, MID_DIFFICULTY};
use tabswarm_protocol::wire::{self, Message};

use crate::{HeldOut, Peer, RlConfig, evaluate, heldout_accuracy, mean_accuracy};

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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// What the configuration is called in tables (`solo`, `sapo`, `meta`, `sapo+meta`, or `I/J`).
    #[serde(default)]
    pub name: String,
    pub peers: usize,
    pub rounds: u64,
    /// Seeds the peers' question and sampling streams (the same across configurations).
    pub seed: u64,
    /// Local / external split and everything else about learning.
    pub rl: RlConfig,
    /// Greedy evaluation questions per family at the end (at the middle level).
    pub eval_per_family: usize,
    /// A swarm model fed every H rounds.
    #[serde(default)]
    pub swarm: Option<SwarmSync>,
    /// The held-out set, and every how many rounds it is evaluated.
    #[serde(default)]
    pub heldout: Option<(HeldOut, u64)>,
    /// Peer 0 sends this instead of its honest update at every sync.
    #[serde(default)]
    pub attack: Option<Attack>,
    /// A peer that joins the running swarm at round `.0` (from the swarm model's version then) and
    /// leaves after `.1` rounds with its model ("join for an hour").
    #[serde(default)]
    pub join: Option<(u64, u64)>,
    /// Each peer asks only this many of the families (a block of `rl.families`, rotating from
    /// peer to peer: [`families_of_peer`]) with the same question budget, so each family it asks
    /// gets more questions per round; evaluation stays on every family.
    #[serde(default)]
    pub families_per_peer: Option<usize>,
}

/// The families peer `i` asks when every peer asks `k` of `all`: consecutive blocks that rotate
/// from peer to peer, so with `peers × k` a multiple of `all.len()` every family is asked by the
/// same number of peers.
pub fn families_of_peer(all: &[Family], i: usize, k: usize) -> Vec<Family> {
    let k = k.clamp(1, all.len().max(1));
    (0..k).filter_map(|j| all.get((i * k + j) % all.len().max(1)).copied()).collect()
}

/// What the peer that joined for a while left with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinResult {
    /// Round it joined at, and rounds it stayed.
    pub at: u64,
    pub rounds: u64,
    /// Mean held-out accuracy of the model it left with, and per family.
    pub accuracy: f32,
    pub per_family: BTreeMap<Family, f32>,
    /// The swarm versions its updates went into.
    pub versions_fed: Vec<String>,
}

/// The swarm model's side of a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmSync {
    /// Rounds between syncs (H).
    pub every: u64,
    pub outer: OuterConfig,
}

/// What an attacking peer sends in place of its update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// Its honest update times this (e.g. 100).
    Scale(f32),
    /// Its honest update negated.
    SignFlip,
    /// Gaussian noise with its honest update's norm.
    Random,
}

impl Attack {
    fn apply(self, delta: &mut [f32], rng: &mut impl Rng) {
        match self {
            Attack::Scale(k) => delta.iter_mut().for_each(|d| *d *= k),
            Attack::SignFlip => delta.iter_mut().for_each(|d| *d = -*d),
            Attack::Random => {
                let target = tabswarm_aggregate::norm(delta);
                // Box–Muller: no distribution crate needed for a test attacker.
                let noise: Vec<f32> = (0..delta.len())
                    .map(|_| {
                        let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
                    })
                    .collect();
                let scale = target / tabswarm_aggregate::norm(&noise).max(f32::MIN_POSITIVE);
                delta.iter_mut().zip(noise).for_each(|(d, n)| *d = n * scale);
            }
        }
    }
}

/// What a configuration achieved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    #[serde(default)]
    pub name: String,
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
    /// The base's mean held-out accuracy.
    #[serde(default)]
    pub heldout_base: Option<f32>,
    /// (round, mean held-out accuracy) at every evaluation point: of the swarm version with a
    /// swarm model, else the mean over peers.
    #[serde(default)]
    pub heldout: Vec<(u64, f32)>,
    /// Held-out accuracy per family at the end (the same model as `heldout`).
    #[serde(default)]
    pub heldout_final: BTreeMap<Family, f32>,
    /// Σ over evaluation points of (held-out accuracy − the base's).
    #[serde(default)]
    pub gain_over_base: Option<f32>,
    /// Bytes each peer sent, on average: rollout messages when it shares, updates when it syncs.
    #[serde(default)]
    pub bytes_per_peer: f64,
    /// Bytes of one update (8-bit) and of the model as f32, when there is a swarm model.
    #[serde(default)]
    pub update_bytes: Option<(usize, usize)>,
    /// The swarm versions published, in order.
    #[serde(default)]
    pub versions: Vec<Lineage>,
    /// Updates refused, by reason.
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// Mean over peers of each family's curriculum level at the end (with a curriculum).
    #[serde(default)]
    pub final_levels: BTreeMap<Family, f32>,
    /// The peer that joined for a while ([`Arm::join`]).
    #[serde(default)]
    pub join: Option<JoinResult>,
    /// How every update agreed with the others and with the swarm's momentum, sync by sync: what a
    /// screen on agreement could tell apart (the attacker's rows are marked).
    #[serde(default)]
    pub agreement: Vec<UpdateAgreement>,
}

/// One update at one sync, as the relay would receive it (after the 8-bit round trip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateAgreement {
    /// The round after which it was sent.
    pub round: u64,
    pub peer: usize,
    /// Sent by the [`Arm::attack`]er (peer 0).
    pub attacker: bool,
    /// Cosine with the coordinate-wise median of the sync's updates (the relay's `opposes_swarm`
    /// screen compares with it).
    pub with_median: Option<f32>,
    /// Cosine with the coordinate-wise median of the *other* updates of the sync (the median
    /// above contains the update itself, which pulls it towards every update, a flipped one too).
    #[serde(default)]
    pub with_others_median: Option<f32>,
    /// Cosine with the direction the outer optimiser moves the swarm model (−velocity, before
    /// this sync's step); `None` at the first sync, before any step.
    pub with_momentum: Option<f32>,
}

/// A cosine, `None` where it is undefined (a zero vector: NaN would not survive JSON).
fn defined(cosine: f32) -> Option<f32> {
    cosine.is_finite().then_some(cosine)
}

/// The [`UpdateAgreement`]s of one sync's updates (`(peer, attacker, values)`).
pub(crate) fn agreement_of(round: u64, updates: &[(usize, bool, Vec<f32>)], velocity: &[f32]) -> Vec<UpdateAgreement> {
    if updates.is_empty() {
        return Vec::new();
    }
    let views: Vec<&[f32]> = updates.iter().map(|(_, _, u)| u.as_slice()).collect();
    let median = tabswarm_aggregate::aggregate(&views, tabswarm_aggregate::Rule::Median);
    let heading = tabswarm_aggregate::heading(velocity);
    updates
        .iter()
        .enumerate()
        .map(|(i, (peer, attacker, u))| UpdateAgreement {
            round,
            peer: *peer,
            attacker: *attacker,
            with_median: defined(tabswarm_aggregate::cosine(u, &median)),
            with_others_median: {
                let others: Vec<&[f32]> = views.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, v)| *v).collect();
                let others_median = (!others.is_empty())
                    .then(|| tabswarm_aggregate::aggregate(&others, tabswarm_aggregate::Rule::Median));
                others_median.and_then(|m| defined(tabswarm_aggregate::cosine(u, &m)))
            },
            with_momentum: heading.as_ref().and_then(|h| defined(tabswarm_aggregate::cosine(u, h))),
        })
        .collect()
}

/// Runs one configuration from `base` to the end; `progress` sees (round, mean reward) each round.
pub async fn run_arm(
    base: &Model,
    arm: &Arm,
    device: &Device,
    progress: &mut dyn FnMut(u64, f32),
) -> Result<ArmResult, ModelError> {
    let mut peers = (0..arm.peers)
        .map(|i| {
            let mut rl = arm.rl.clone();
            if let Some(k) = arm.families_per_peer {
                rl.families = families_of_peer(&arm.rl.families, i, k);
            }
            Peer::new(&format!("peer-{i}"), base.clone(), rl, device, arm.seed * 1_000 + i as u64)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut bus = MemoryBus::default();
    let sharing = arm.rl.external > 0;
    let mut swarm = match &arm.swarm {
        Some(sync) => Some(SwarmModel::new(params::flatten(base).await?, sync.outer.clone())),
        None => None,
    };
    let mut compressors = vec![Compressor::default(); arm.peers];
    let mut attack_rng = ChaCha8Rng::seed_from_u64(arm.seed ^ 0xa77ac);
    let mut update_bytes = None;
    let (mut versions, mut agreement) = (Vec::new(), Vec::new());
    let (mut bytes_sent, mut heldout, mut heldout_final) = (0usize, Vec::new(), BTreeMap::new());
    let heldout_base = match &arm.heldout {
        Some((set, _)) => Some(mean_accuracy(&heldout_accuracy(base, &arm.rl.families, set, device).await?)),
        None => None,
    };
    let mut reward_per_round = Vec::with_capacity(arm.rounds as usize);
    let (mut cumulative, mut used_local, mut used_external) = (0.0, 0usize, 0usize);
    let (mut joiner, mut joiner_compressor, mut join_result): (Option<Peer>, Compressor, Option<JoinResult>) =
        (None, Compressor::default(), None);
    for round in 0..arm.rounds {
        if let Some((at, rounds)) = arm.join
            && round == at
        {
            let mut peer = Peer::new("joiner", base.clone(), arm.rl.clone(), device, arm.seed * 1_000 + 999)?;
            if let Some(model) = &swarm {
                peer.load_flat(model.params())?;
            }
            joiner = Some(peer);
            join_result = Some(JoinResult { at, rounds, ..JoinResult::default() });
        }
        let mut own = Vec::with_capacity(peers.len());
        for peer in &mut peers {
            let groups = peer.generate_round().await?;
            if sharing {
                let groups: Vec<_> = groups.iter().map(|g| g.group.clone()).collect();
                bytes_sent += wire::encode(&Message::Rollouts { groups: groups.clone() }).map_or(0, |b| b.len());
                bus.publish(groups);
            }
            own.push(groups);
        }
        let joiner_own = match joiner.as_mut() {
            Some(peer) => {
                let groups = peer.generate_round().await?;
                if sharing {
                    bus.publish(groups.iter().map(|g| g.group.clone()));
                }
                Some(groups)
            }
            None => None,
        };
        let mut total = 0.0;
        for (peer, groups) in peers.iter_mut().zip(&own) {
            let stats = peer.train_round(groups, bus.deliver()).await?;
            total += stats.mean_reward;
            used_local += stats.trained_local;
            used_external += stats.trained_external;
        }
        if let (Some(peer), Some(groups)) = (joiner.as_mut(), &joiner_own) {
            peer.train_round(groups, bus.deliver()).await?;
        }
        bus.next_round();
        if let (Some(sync), Some(model)) = (&arm.swarm, swarm.as_mut())
            && (round + 1) % sync.every == 0
        {
            let start = model.params().to_vec();
            let hash = model.lineage().hash.clone();
            let mut received = Vec::with_capacity(peers.len());
            for (i, peer) in peers.iter().enumerate() {
                let mut delta = params::flatten(&peer.model()).await?;
                delta.iter_mut().zip(&start).for_each(|(d, s)| *d -= s);
                if let (0, Some(attack)) = (i, arm.attack) {
                    attack.apply(&mut delta, &mut attack_rng);
                }
                let header =
                    UpdateHeader { base: hash.clone(), peer: peer.name.clone(), rounds: sync.every as u32, params: 0 };
                // A peer whose update holds NaN (a diverged policy) sends nothing this time.
                let Ok(update) = compressors[i].compress(header, &delta) else { continue };
                let len = update.encoded_len();
                update_bytes = Some((len, start.len() * 4));
                bytes_sent += len;
                received.push((i, i == 0 && arm.attack.is_some(), update.decompress()));
                let _ = model.submit(&update, true);
            }
            agreement.extend(agreement_of(round + 1, &received, model.velocity()));
            if let Some(peer) = &joiner {
                let mut delta = params::flatten(&peer.model()).await?;
                delta.iter_mut().zip(&start).for_each(|(d, s)| *d -= s);
                let header =
                    UpdateHeader { base: hash.clone(), peer: peer.name.clone(), rounds: sync.every as u32, params: 0 };
                if let Ok(update) = joiner_compressor.compress(header, &delta) {
                    let _ = model.submit(&update, true);
                }
            }
            if let Some(version) = model.step().version {
                if let Some(result) =
                    join_result.as_mut().filter(|_| version.contributors.iter().any(|c| c == "joiner"))
                {
                    result.versions_fed.push(version.hash.clone());
                }
                versions.push(version);
            }
            for peer in peers.iter_mut().chain(joiner.as_mut()) {
                peer.load_flat(model.params())?;
            }
        }
        if let (Some((at, rounds)), Some(peer), Some(result), Some((set, _))) =
            (arm.join, &joiner, join_result.as_mut(), &arm.heldout)
            && round + 1 == at + rounds
        {
            result.per_family = heldout_accuracy(&peer.model(), &arm.rl.families, set, device).await?;
            result.accuracy = mean_accuracy(&result.per_family);
            joiner = None;
        }
        if let Some((set, every)) = &arm.heldout
            && ((round + 1) % every == 0 || round + 1 == arm.rounds)
        {
            let accuracy = match &swarm {
                Some(model) => {
                    let version = params::load_flat(base.clone(), model.params())?;
                    heldout_accuracy(&version, &arm.rl.families, set, device).await?
                }
                None => {
                    let mut mean: BTreeMap<Family, f32> = BTreeMap::new();
                    for peer in &peers {
                        for (family, a) in heldout_accuracy(&peer.model(), &arm.rl.families, set, device).await? {
                            *mean.entry(family).or_default() += a / peers.len() as f32;
                        }
                    }
                    mean
                }
            };
            heldout.push((round + 1, mean_accuracy(&accuracy)));
            heldout_final = accuracy;
        }
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
    let mut final_levels: BTreeMap<Family, f32> = BTreeMap::new();
    if arm.rl.curriculum.is_some() {
        for peer in &peers {
            for &family in &arm.rl.families {
                *final_levels.entry(family).or_default() += f32::from(peer.level(family)) / peers.len() as f32;
            }
        }
    }
    let peer_rounds = (arm.rounds as usize * peers.len()).max(1) as f32;
    Ok(ArmResult {
        name: arm.name.clone(),
        local: arm.rl.local,
        external: arm.rl.external,
        seed: arm.seed,
        cumulative_reward: cumulative,
        reward_per_round,
        final_accuracy,
        external_used: used_external as f32 / peer_rounds,
        local_used: used_local as f32 / peer_rounds,
        dropped: bus.drops.total() + peers.iter().map(|p| p.untrainable).sum::<u64>(),
        gain_over_base: heldout_base.map(|b| heldout.iter().map(|(_, a)| a - b).sum()),
        heldout_base,
        heldout,
        heldout_final,
        bytes_per_peer: bytes_sent as f64 / peers.len().max(1) as f64,
        update_bytes,
        versions,
        refused: swarm.map(|m| m.refused().clone()).unwrap_or_default(),
        final_levels,
        join: join_result,
        agreement,
    })
}

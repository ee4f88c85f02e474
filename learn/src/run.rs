//! A training run: reinforcement learning on the task suite (the same [`Peer`] round the swarm
//! runs) for a number of rounds, from the relay's base checkpoint when it serves one, with the
//! progress it reports after every round ([`RunProgress`]). A tab's worker and the native peer both
//! drive one. The clock is injected so the same code runs in the worker (`performance.now`) and
//! natively.
//!
//! A tab on its own trains on its own rollout groups (I = 8, J = 0); connected to the swarm it
//! trains on four of its own and four of others' each round (I = 4, J = 4, the SAPO split), and
//! every round hands back its own groups for the page to publish.

use std::collections::{BTreeMap, VecDeque};

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use tabswarm_model::checkpoint;
use tabswarm_model::generate::SamplingConfig;
use tabswarm_model::{Model, ModelConfig, ModelError, ModelSize};
use tabswarm_protocol::rollout::{RolloutGroup, ScoredGroup};
use tabswarm_protocol::tasks::{Family, MAX_DIFFICULTY, Posed};

use crate::sizing::RoundSize;
use crate::{Curriculum, Peer, RlConfig, RoundStats};

/// Rounds the per-family accuracy is averaged over.
pub const ACCURACY_WINDOW: usize = 10;

/// Own groups shared per round, at most: the swarm's round, whatever size the device chose.
pub const SHARED_PER_ROUND: usize = crate::sizing::BASE_QUESTIONS;

/// Which burn backend a run trains on. The caller makes the matching [`Device`]; the run reports
/// this, so what a peer says it trains on is what it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// burn's wgpu backend on the browser's WebGPU.
    WebGpu,
    /// burn's wgpu backend on a native adapter (Vulkan, Metal, DX12).
    Wgpu,
    /// burn's pure-Rust CPU backend (`flex`), natively or compiled to wasm.
    Cpu,
}

impl Backend {
    /// What to call it in a log line.
    pub fn label(self) -> &'static str {
        match self {
            Self::WebGpu => "WebGPU",
            Self::Wgpu => "wgpu (native GPU)",
            Self::Cpu => "CPU",
        }
    }
}

/// How one family went over the last few rounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyAccuracy {
    pub family: Family,
    /// Completions the verifier found correct…
    pub correct: u32,
    /// …out of this many sampled.
    pub asked: u32,
    /// The level it is asked at now, with a curriculum (`None`: levels are drawn at random).
    #[serde(default)]
    pub level: Option<u8>,
    /// Mastered at the top level, so asked only now and then ([`crate::Curriculum::revisit`]).
    #[serde(default)]
    pub mastered: bool,
}

impl FamilyAccuracy {
    pub fn fraction(&self) -> f32 {
        if self.asked == 0 { 0.0 } else { self.correct as f32 / self.asked as f32 }
    }

    /// Its level as the page and the native peer show it: `3`, `5 (mastered)`, or `-` when
    /// levels are drawn at random.
    pub fn level_label(&self) -> String {
        match (self.level, self.mastered) {
            (Some(level), true) => format!("{level} (mastered)"),
            (Some(level), false) => level.to_string(),
            (None, _) => "-".into(),
        }
    }
}

/// Each family's level, `add 1, compare 5 (mastered), …`; `None` without a curriculum.
pub fn describe_levels(accuracy: &[FamilyAccuracy]) -> Option<String> {
    let each: Vec<String> =
        accuracy.iter().filter(|a| a.level.is_some()).map(|a| format!("{} {}", a.family, a.level_label())).collect();
    (!each.is_empty()).then(|| each.join(", "))
}

/// Progress of a run, after every round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    pub backend: Backend,
    pub parameters: usize,
    pub round: u32,
    pub rounds: u32,
    /// Mean verified reward of this round's completions.
    pub reward: f32,
    /// Mean reward of the first round, for "it learns" at a glance.
    pub first_reward: f32,
    /// Per family, over the last [`ACCURACY_WINDOW`] rounds.
    pub accuracy: Vec<FamilyAccuracy>,
    /// GRPO loss of this round's step (none when no group had a reward spread).
    pub loss: Option<f32>,
    /// GRPO steps taken: the version stamped on this peer's rollouts and checkpoint.
    pub policy_version: u64,
    pub rounds_per_second: f64,
    pub completions_per_second: f64,
    /// Rollout groups from other peers handed to the run so far, and how many of them it trained on.
    #[serde(default)]
    pub received: u64,
    #[serde(default)]
    pub external_trained: u64,
    /// Whether this is the last report of the run.
    pub done: bool,
}

/// How a tab learns on its own: every family, eight questions a round, all its own, each family
/// at the level the curriculum keeps it at ([`peer_curriculum`]).
pub fn tab_rl_config() -> RlConfig {
    RlConfig { local: 8, external: 0, ..swarm_rl_config() }
}

/// How a tab learns in the swarm: the same rounds, half its own groups and half others'.
pub fn swarm_rl_config() -> RlConfig {
    RlConfig {
        local: 4,
        external: 4,
        max_difficulty: MAX_DIFFICULTY,
        curriculum: Some(peer_curriculum()),
        ..RlConfig::default()
    }
}

/// The curriculum every tab and native peer runs: each family's level kept where 20–80 % of its
/// completions are right, from level 1 up to the suite's top level, and a family mastered at the
/// top asked on one turn in four (docs/learning.md, "Where the question budget goes").
pub fn peer_curriculum() -> Curriculum {
    Curriculum { revisit: 4, ..Curriculum::default() }
}

/// How long a run lasts, its seed, and under which peer id it shares (none: on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    pub rounds: u32,
    pub seed: u64,
    /// The libp2p peer id its groups are published under; `None` trains alone (I = 8, J = 0).
    pub peer: Option<String>,
    /// The task families to ask (empty: all of them).
    pub families: Vec<Family>,
}

impl RunPlan {
    pub fn solo(rounds: u32, seed: u64) -> Self {
        Self { rounds, seed, peer: None, families: Vec::new() }
    }
}

/// What one round produced: the progress to show and this peer's groups to publish.
#[derive(Debug, Clone)]
pub struct RoundOutput {
    pub progress: RunProgress,
    pub share: Vec<RolloutGroup>,
}

/// A policy learning in rounds, with the numbers the page shows.
#[derive(Debug)]
pub struct TrainingRun {
    peer: Peer,
    config: ModelConfig,
    backend: Backend,
    parameters: usize,
    rounds: u32,
    round: u32,
    first_reward: Option<f32>,
    started_ms: f64,
    completions: usize,
    recent: VecDeque<RoundStats>,
    received: u64,
    external_trained: u64,
}

impl TrainingRun {
    /// Learns from `model` (of `config`) on `device` for `rounds` rounds.
    pub fn new(
        model: Model,
        config: ModelConfig,
        device: &Device,
        backend: Backend,
        plan: RunPlan,
    ) -> Result<Self, ModelError> {
        let parameters = model.num_params();
        let (name, mut rl) = match &plan.peer {
            Some(id) => (id.as_str(), swarm_rl_config()),
            None => ("this-tab", tab_rl_config()),
        };
        if !plan.families.is_empty() {
            rl.families = plan.families.clone();
        }
        let peer = Peer::new(name, model, rl, device, plan.seed)?;
        Ok(Self {
            peer,
            config,
            backend,
            parameters,
            rounds: plan.rounds,
            round: 0,
            first_reward: None,
            started_ms: 0.0,
            completions: 0,
            recent: VecDeque::with_capacity(ACCURACY_WINDOW),
            received: 0,
            external_trained: 0,
        })
    }

    /// From a checkpoint (the relay's base): refused with the reason if damaged or not for this
    /// build's tokenizer.
    pub fn from_checkpoint(bytes: &[u8], device: &Device, backend: Backend, plan: RunPlan) -> Result<Self, ModelError> {
        let (model, header) = checkpoint::load(bytes, None, device)?;
        Self::new(model, header.config, device, backend, plan)
    }

    /// From a freshly initialised model of `size` (when no base checkpoint is served).
    pub fn fresh(device: &Device, backend: Backend, size: ModelSize, plan: RunPlan) -> Result<Self, ModelError> {
        device.seed(plan.seed);
        let config = size.config();
        let model = config.init(device)?;
        Self::new(model, config, device, backend, plan)
    }

    /// The policy as trained so far, as a checkpoint, without blocking (works on WebGPU).
    pub async fn checkpoint(&self) -> Result<Vec<u8>, ModelError> {
        checkpoint::save_async(&self.peer.model(), &self.config, self.peer.policy_version()).await
    }

    /// The policy's greedy answer to a typed question (`tabswarm_protocol::tasks::pose`), as the
    /// held-out evaluation answers: the most likely token each step, at most 16 of them.
    pub async fn answer(&self, posed: &Posed) -> Result<String, ModelError> {
        let greedy = SamplingConfig { temperature: 0.0, max_new_tokens: 16, ..SamplingConfig::default() };
        let mut answers =
            crate::complete_prompts(&self.peer.model(), &[posed.prompt.as_str()], 1, &greedy, self.peer.device())
                .await?;
        Ok(answers.pop().and_then(|mut a| a.pop()).unwrap_or_default())
    }

    pub fn is_done(&self) -> bool {
        self.round >= self.rounds
    }

    /// The policy's parameters as one flat vector (`tabswarm_model::params`), without blocking.
    pub async fn parameters(&self) -> Result<Vec<f32>, ModelError> {
        tabswarm_model::params::flatten(&self.peer.model()).await
    }

    /// Continues from `flat` parameters (a new swarm version), keeping the optimiser's state.
    pub fn load_flat(&mut self, flat: &[f32]) -> Result<(), ModelError> {
        self.peer.load_flat(flat)
    }

    /// The model's config (what a checkpoint of it must match).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The backend it trains on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Sizes the run's rounds to its device ([`crate::sizing`]): on the CPU backend the swarm's
    /// round without measuring (every row costs its own arithmetic there), on a GPU the round its
    /// measurement gives. Call before the first round; `now_ms` is a monotonic clock in ms.
    pub async fn size_rounds(&mut self, now_ms: &dyn Fn() -> f64) -> Result<RoundSize, ModelError> {
        let size = match self.backend {
            Backend::Cpu => RoundSize {
                questions: crate::sizing::BASE_QUESTIONS,
                probe: Vec::new(),
                reason: format!(
                    "{} questions a round (the swarm's default): on the CPU every row costs its own arithmetic, \
                     so a bigger round would only take longer.",
                    crate::sizing::BASE_QUESTIONS
                ),
            },
            Backend::WebGpu | Backend::Wgpu => {
                let group = self.peer.group_size();
                crate::sizing::measure(&self.peer.model(), self.peer.device(), group, now_ms).await?
            }
        };
        self.peer.set_questions_per_round(size.questions)?;
        Ok(size)
    }

    /// One round (generate, verify, GRPO step on its own groups and on `received`, the groups
    /// other peers published since the last round, as the node verified them); `now_ms` is a
    /// monotonic clock in milliseconds.
    pub async fn step(
        &mut self,
        now_ms: &dyn Fn() -> f64,
        received: Vec<ScoredGroup>,
    ) -> Result<RoundOutput, ModelError> {
        if self.round == 0 {
            self.started_ms = now_ms();
        }
        let own = self.peer.generate_round().await?;
        self.completions += own.iter().map(|g| g.group.completions.len()).sum::<usize>();
        self.received += received.len() as u64;
        let stats = self.peer.train_round(&own, received).await?;
        self.external_trained += stats.trained_external as u64;
        self.round += 1;
        let reward = stats.mean_reward;
        let first_reward = *self.first_reward.get_or_insert(reward);
        if self.recent.len() == ACCURACY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(stats);
        let mut tally: BTreeMap<Family, (u32, u32)> = BTreeMap::new();
        for round in &self.recent {
            for (family, (correct, asked)) in &round.correct {
                let entry = tally.entry(*family).or_default();
                entry.0 += correct;
                entry.1 += asked;
            }
        }
        let seconds = ((now_ms() - self.started_ms) / 1e3).max(1e-9);
        let progress = RunProgress {
            backend: self.backend,
            parameters: self.parameters,
            round: self.round,
            rounds: self.rounds,
            reward,
            first_reward,
            accuracy: tally
                .into_iter()
                .map(|(family, (correct, asked))| FamilyAccuracy {
                    family,
                    correct,
                    asked,
                    level: self.peer.curriculum_level(family),
                    mastered: self.peer.is_mastered(family),
                })
                .collect(),
            loss: self.recent.back().and_then(|r| r.loss),
            policy_version: self.peer.policy_version(),
            rounds_per_second: f64::from(self.round) / seconds,
            completions_per_second: self.completions as f64 / seconds,
            received: self.received,
            external_trained: self.external_trained,
            done: self.is_done(),
        };
        // A bigger round on a GPU shares no more than the swarm's round: the groups with a reward
        // spread first (what others can learn from), so one message stays within the wire's and
        // the relay's limits whatever the device.
        let mut share: Vec<&ScoredGroup> = own.iter().collect();
        share.sort_by_key(|g| !g.has_signal());
        share.truncate(SHARED_PER_ROUND);
        Ok(RoundOutput {
            progress,
            share: share.into_iter().map(|g| RolloutGroup { rewards: g.rewards(), ..g.group.clone() }).collect(),
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A run on the CPU keeps the swarm's round; a bigger round (as a GPU may choose) asks more
    /// questions, trains on proportionally more, and still shares at most the swarm's round.
    #[test]
    fn a_bigger_round_asks_more_and_shares_no_more_than_the_swarm_s() {
        let device = Device::flex();
        let plan = RunPlan { peer: Some("12D3KooWpeer".into()), ..RunPlan::solo(1, 2) };
        let mut run = TrainingRun::fresh(&device, Backend::Cpu, ModelSize::Tiny, plan).expect("run");
        let origin = Instant::now();
        let now = move || origin.elapsed().as_secs_f64() * 1e3;
        let size = pollster::block_on(run.size_rounds(&now)).expect("size");
        assert_eq!((size.questions, size.probe.len()), (8, 0), "the CPU is not measured: {size:?}");
        assert!(size.reason.contains("on the CPU"), "{}", size.reason);
        // The swarm's 4 own + 4 received, doubled with the round.
        run.peer.set_questions_per_round(16).expect("16 questions");
        assert_eq!((run.peer.config.local, run.peer.config.external), (8, 8));
        let round = pollster::block_on(run.step(&now, Vec::new())).expect("round");
        assert!(round.progress.completions_per_second > 0.0);
        assert_eq!(run.completions, 16 * 8, "16 questions of 8 completions");
        assert_eq!(round.share.len(), SHARED_PER_ROUND);
        // Those with a reward spread go first.
        let spread = |g: &RolloutGroup| g.rewards.iter().any(|r| *r != g.rewards[0]);
        let shared_spread = round.share.iter().filter(|g| spread(g)).count();
        assert!(round.share.iter().take(shared_spread).all(spread), "signal first");
        assert!(run.peer.set_questions_per_round(0).is_err(), "no questions is refused");
        assert_eq!(run.peer.questions_per_round(), 16, "a refused size changes nothing");
    }

    #[test]
    fn a_tiny_run_reports_rounds_rewards_and_accuracy_per_family() {
        let device = Device::flex();
        let mut run = TrainingRun::fresh(&device, Backend::Cpu, ModelSize::Tiny, RunPlan::solo(3, 1)).expect("run");
        let origin = Instant::now();
        let now = move || origin.elapsed().as_secs_f64() * 1e3;
        let mut last = None;
        while !run.is_done() {
            last = Some(pollster::block_on(run.step(&now, Vec::new())).expect("round").progress);
        }
        let last = last.expect("at least one round");
        assert!(last.done && last.round == 3 && last.rounds == 3);
        assert!((0.0..=tabswarm_protocol::tasks::MAX_REWARD).contains(&last.reward));
        // Every family was asked once a round: 8 completions each, over the 3 rounds.
        assert_eq!(last.accuracy.len(), 8);
        assert!(last.accuracy.iter().all(|a| a.asked == 24 && a.correct <= a.asked), "{:?}", last.accuracy);
        assert!(last.rounds_per_second > 0.0 && last.completions_per_second > last.rounds_per_second);
        // A checkpoint that loads back, stamped with the policy version (GRPO steps taken); the
        // name the page gives it is tested with the page's messages.
        let bytes = pollster::block_on(run.checkpoint()).expect("checkpoint");
        let (header, _) = checkpoint::read_header(&bytes).expect("header");
        assert_eq!(header.step, last.policy_version);
        assert_eq!((header.config.d_model, header.config.n_layers), (32, 2));
        let again = TrainingRun::from_checkpoint(&bytes, &device, Backend::Cpu, RunPlan::solo(1, 2)).expect("reload");
        assert_eq!(again.parameters, run.parameters);
    }

    #[test]
    fn a_damaged_base_is_refused_with_the_reason() {
        let device = Device::flex();
        let run = TrainingRun::fresh(&device, Backend::Cpu, ModelSize::Tiny, RunPlan::solo(1, 1)).expect("run");
        let mut bytes = pollster::block_on(run.checkpoint()).expect("checkpoint");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let err =
            TrainingRun::from_checkpoint(&bytes, &device, Backend::Cpu, RunPlan::solo(1, 1)).expect_err("corrupt");
        assert!(err.to_string().starts_with("checkpoint is corrupt"), "{err}");
    }
}

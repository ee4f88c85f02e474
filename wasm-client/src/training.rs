//! The run the worker drives: reinforcement learning on the task suite (the same [`Peer`] round the
//! swarm runs), from the relay's base checkpoint when it serves one. The clock is injected so the
//! same code runs in the worker (`performance.now`) and in native tests.
//!
//! Until gossip lands (issue 5) the tab trains on its own rollout groups only (I = 8, J = 0).

use std::collections::{BTreeMap, VecDeque};

use burn::module::Module;
use burn::tensor::Device;
use tabswarm_protocol::tasks::Family;

use crate::learn::{Peer, RlConfig, RoundStats};
use crate::model::checkpoint;
use crate::model::{Model, ModelConfig, ModelError, Tokenizer};
use crate::report::{FamilyAccuracy, ModelSize, TrainBackend, TrainProgress};

/// Rounds the per-family accuracy on the page is averaged over.
pub const ACCURACY_WINDOW: usize = 10;

/// The model config for a size.
pub fn model_config(size: ModelSize) -> ModelConfig {
    let base = ModelConfig::new(Tokenizer::new().vocab_size());
    match size {
        ModelSize::Default => base,
        ModelSize::Tiny => base.with_d_model(32).with_n_layers(2).with_n_heads(4).with_d_ff(64).with_max_seq_len(24),
    }
}

/// How a tab learns until it can share: every family, eight questions a round, all its own.
pub fn tab_rl_config() -> RlConfig {
    RlConfig { local: 8, external: 0, ..RlConfig::default() }
}

/// A policy learning in rounds, with the numbers the page shows.
#[derive(Debug)]
pub struct TrainingRun {
    peer: Peer,
    config: ModelConfig,
    backend: TrainBackend,
    parameters: usize,
    rounds: u32,
    round: u32,
    first_reward: Option<f32>,
    started_ms: f64,
    completions: usize,
    recent: VecDeque<RoundStats>,
}

impl TrainingRun {
    /// Learns from `model` (of `config`) on `device` for `rounds` rounds.
    pub fn new(
        model: Model,
        config: ModelConfig,
        device: &Device,
        backend: TrainBackend,
        rounds: u32,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let parameters = model.num_params();
        Ok(Self {
            peer: Peer::new("this-tab", model, tab_rl_config(), device, seed)?,
            config,
            backend,
            parameters,
            rounds,
            round: 0,
            first_reward: None,
            started_ms: 0.0,
            completions: 0,
            recent: VecDeque::with_capacity(ACCURACY_WINDOW),
        })
    }

    /// From a checkpoint (the relay's base): refused with the reason if damaged or not for this
    /// build's tokenizer.
    pub fn from_checkpoint(
        bytes: &[u8],
        device: &Device,
        backend: TrainBackend,
        rounds: u32,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let (model, header) = checkpoint::load(bytes, None, device)?;
        Self::new(model, header.config, device, backend, rounds, seed)
    }

    /// From a freshly initialised model of `size` (when no base checkpoint is served).
    pub fn fresh(
        device: &Device,
        backend: TrainBackend,
        size: ModelSize,
        rounds: u32,
        seed: u64,
    ) -> Result<Self, ModelError> {
        device.seed(seed);
        let config = model_config(size);
        let model = config.init(device)?;
        Self::new(model, config, device, backend, rounds, seed)
    }

    /// The policy as trained so far, as a checkpoint, without blocking (works on WebGPU).
    pub async fn checkpoint(&self) -> Result<Vec<u8>, ModelError> {
        checkpoint::save_async(&self.peer.model(), &self.config, self.peer.policy_version()).await
    }

    /// Rounds run so far.
    pub fn steps_taken(&self) -> u32 {
        self.round
    }

    pub fn is_done(&self) -> bool {
        self.round >= self.rounds
    }

    /// One round (generate, verify, GRPO step); `now_ms` is a monotonic clock in milliseconds.
    pub async fn step(&mut self, now_ms: &dyn Fn() -> f64) -> Result<TrainProgress, ModelError> {
        if self.round == 0 {
            self.started_ms = now_ms();
        }
        let own = self.peer.generate_round().await?;
        self.completions += own.iter().map(|g| g.group.completions.len()).sum::<usize>();
        let stats = self.peer.train_round(&own, Vec::new()).await?;
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
        Ok(TrainProgress {
            backend: self.backend,
            parameters: self.parameters,
            round: self.round,
            rounds: self.rounds,
            reward,
            first_reward,
            accuracy: tally
                .into_iter()
                .map(|(family, (correct, asked))| FamilyAccuracy { family, correct, asked })
                .collect(),
            loss: self.recent.back().and_then(|r| r.loss),
            policy_version: self.peer.policy_version(),
            rounds_per_second: f64::from(self.round) / seconds,
            completions_per_second: self.completions as f64 / seconds,
            done: self.is_done(),
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_tiny_run_reports_rounds_rewards_and_accuracy_per_family() {
        let device = Device::flex();
        let mut run = TrainingRun::fresh(&device, TrainBackend::Cpu, ModelSize::Tiny, 3, 1).expect("run");
        let origin = Instant::now();
        let now = move || origin.elapsed().as_secs_f64() * 1e3;
        let mut last = None;
        while !run.is_done() {
            last = Some(pollster::block_on(run.step(&now)).expect("round"));
        }
        let last = last.expect("at least one round");
        assert!(last.done && last.round == 3 && last.rounds == 3);
        assert!((0.0..=tabswarm_protocol::tasks::MAX_REWARD).contains(&last.reward));
        // Every family was asked once a round: 8 completions each, over the 3 rounds.
        assert_eq!(last.accuracy.len(), 8);
        assert!(last.accuracy.iter().all(|a| a.asked == 24 && a.correct <= a.asked), "{:?}", last.accuracy);
        assert!(last.rounds_per_second > 0.0 && last.completions_per_second > last.rounds_per_second);
        assert!(last.describe().contains("round 3/3"), "{}", last.describe());

        // What the page offers for download: a checkpoint that loads back, named after its content,
        // stamped with the policy version (GRPO steps taken).
        let bytes = pollster::block_on(run.checkpoint()).expect("checkpoint");
        let saved = crate::report::SavedModel::describe(&bytes).expect("describe");
        assert_eq!((saved.step, saved.bytes), (last.policy_version, bytes.len()));
        assert!(saved.file_name.starts_with("tabswarm-d32-l2-step"), "{}", saved.file_name);
        let again = TrainingRun::from_checkpoint(&bytes, &device, TrainBackend::Cpu, 1, 2).expect("reload");
        assert_eq!(again.parameters, run.parameters);
    }

    #[test]
    fn a_damaged_base_is_refused_with_the_reason() {
        let device = Device::flex();
        let run = TrainingRun::fresh(&device, TrainBackend::Cpu, ModelSize::Tiny, 1, 1).expect("run");
        let mut bytes = pollster::block_on(run.checkpoint()).expect("checkpoint");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let err = TrainingRun::from_checkpoint(&bytes, &device, TrainBackend::Cpu, 1, 1).expect_err("corrupt");
        assert!(err.to_string().starts_with("checkpoint is corrupt"), "{err}");
    }
}

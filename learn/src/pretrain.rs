//! The warm start: supervised training on generated questions and their answers, stopped as soon
//! as greedy accuracy at the middle difficulty reaches a modest target, so reinforcement learning
//! starts from a policy that knows the answer format but still has most of the way to go.
//!
//! Deterministic from its seed on a given backend: the same seed gives the same parameters (and,
//! since checkpoints number parameters by position, the same checkpoint bytes).

use std::collections::BTreeMap;

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tabswarm_model::{Model, ModelConfig, ModelError, TokenBatch, Tokenizer, TrainConfig, Trainer};
use tabswarm_protocol::tasks::{Family, MAX_DIFFICULTY, MID_DIFFICULTY, MIN_DIFFICULTY, generate};

use crate::{EVAL_SEED_BASE, evaluate};

/// How the base checkpoint is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    pub seed: u64,
    pub families: Vec<Family>,
    /// Sequences per step (questions of every level, `MIN_DIFFICULTY..=MAX_DIFFICULTY`).
    pub batch: usize,
    /// The peak learning rate (AdamW).
    pub learning_rate: f64,
    /// Steps over which the learning rate rises linearly to its peak (0: from the first step).
    #[serde(default)]
    pub warmup_steps: u64,
    /// After the warm-up, decay the learning rate along a cosine to a tenth of its peak at
    /// `max_steps` (otherwise it stays at the peak).
    #[serde(default)]
    pub cosine_decay: bool,
    /// Stop when the mean greedy accuracy over families at [`MID_DIFFICULTY`] reaches this…
    pub target_accuracy: f32,
    /// …or after this many steps.
    pub max_steps: u64,
    pub eval_every: u64,
    /// Evaluation questions per family.
    pub eval_per_family: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            families: Family::ALL.to_vec(),
            batch: 64,
            learning_rate: 3e-3,
            warmup_steps: 0,
            cosine_decay: false,
            target_accuracy: 0.3,
            max_steps: 4000,
            eval_every: 100,
            eval_per_family: 32,
        }
    }
}

impl PretrainConfig {
    /// The learning rate of step `step` (counted from 1).
    pub fn learning_rate_at(&self, step: u64) -> f64 {
        let peak = self.learning_rate;
        if step <= self.warmup_steps {
            return peak * step as f64 / self.warmup_steps as f64;
        }
        if !self.cosine_decay || self.max_steps <= self.warmup_steps {
            return peak;
        }
        let progress = ((step - self.warmup_steps) as f64 / (self.max_steps - self.warmup_steps) as f64).min(1.0);
        let floor = peak / 10.0;
        floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Where pretraining stopped and how it got there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pretrained {
    pub steps: u64,
    /// Greedy accuracy per family at the middle difficulty, at the end.
    pub accuracy: BTreeMap<Family, f32>,
    pub mean_accuracy: f32,
    /// (step, loss, mean accuracy) at every evaluation.
    pub history: Vec<(u64, f32, f32)>,
    pub reached_target: bool,
}

/// A supervised batch of `n` questions with their answers, drawn from `rng`.
pub fn answer_batch(families: &[Family], n: usize, rng: &mut impl Rng) -> Result<TokenBatch, ModelError> {
    let tokenizer = Tokenizer::new();
    let (mut sequences, mut prompt_lens) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let family = families[rng.random_range(0..families.len())];
        let difficulty = rng.random_range(MIN_DIFFICULTY..=MAX_DIFFICULTY);
        let question = generate(family, difficulty, rng.random_range(0..EVAL_SEED_BASE))
            .map_err(|e| ModelError::InvalidBatch(e.to_string()))?;
        let (seq, prompt_len) = tokenizer.example(&question.prompt, &question.answer)?;
        sequences.push(seq);
        prompt_lens.push(prompt_len);
    }
    TokenBatch::supervised(sequences, &prompt_lens)
}

/// Called at every evaluation with (step, loss, accuracy per family).
pub type OnEvaluation<'a> = dyn FnMut(u64, f32, &BTreeMap<Family, f32>) + 'a;

/// Trains a fresh `model_config` model to the target; `progress` sees every evaluation.
pub async fn pretrain(
    model_config: &ModelConfig,
    config: &PretrainConfig,
    device: &Device,
    progress: &mut OnEvaluation<'_>,
) -> Result<(Model, Pretrained), ModelError> {
    if config.families.is_empty() || config.batch == 0 || config.eval_every == 0 || config.eval_per_family == 0 {
        return Err(ModelError::InvalidBatch(
            "pretraining needs at least one family, a batch, an evaluation interval and evaluation questions".into(),
        ));
    }
    if !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
        return Err(ModelError::InvalidBatch(format!(
            "the pretraining learning rate must be a positive number, not {}",
            config.learning_rate
        )));
    }
    device.seed(config.seed);
    let model = model_config.init(device)?;
    let train = TrainConfig { learning_rate: config.learning_rate, weight_decay: 0.01, max_grad_norm: 1.0 };
    let mut trainer = Trainer::new(model, train, device);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut history = Vec::new();
    let mut step = 0;
    loop {
        let batch = answer_batch(&config.families, config.batch, &mut rng)?;
        step += 1;
        trainer.set_learning_rate(config.learning_rate_at(step));
        let loss = trainer.step(&batch).await?.loss;
        if step % config.eval_every == 0 || step == config.max_steps {
            let model = trainer.inference_model();
            let accuracy = evaluate(&model, &config.families, MID_DIFFICULTY, config.eval_per_family, device).await?;
            let mean = accuracy.values().sum::<f32>() / accuracy.len().max(1) as f32;
            history.push((step, loss, mean));
            progress(step, loss, &accuracy);
            let reached_target = mean >= config.target_accuracy;
            if reached_target || step >= config.max_steps {
                let report = Pretrained { steps: step, accuracy, mean_accuracy: mean, history, reached_target };
                return Ok((model, report));
            }
        }
    }
}

/// A base of exactly `steps` supervised steps of `batch` questions from `families` (evaluated only
/// at the end, with no accuracy target), and its checkpoint file: for tests and quick demos, where
/// a random model would give RL nothing to work on.
pub async fn quick_base(
    size: tabswarm_model::ModelSize,
    families: &[Family],
    steps: u64,
    batch: usize,
    device: &Device,
) -> Result<(Model, Vec<u8>), ModelError> {
    let config = PretrainConfig {
        families: families.to_vec(),
        batch,
        max_steps: steps,
        eval_every: steps.max(1),
        eval_per_family: 2,
        target_accuracy: f32::INFINITY,
        ..PretrainConfig::default()
    };
    let model_config = size.config();
    let (model, report) = pretrain(&model_config, &config, device, &mut |_, _, _| {}).await?;
    let bytes = tabswarm_model::checkpoint::save(&model, &model_config, report.steps)?;
    Ok((model, bytes))
}

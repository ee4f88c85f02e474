//! The training run the worker drives: a model on the chosen backend learning a fixed batch.
//!
//! Until the verifiable task suite lands (issue 4) the batch is a seeded set of additions
//! (`"12+7="` → `"19"`), learned with the supervised step; the RL loop replaces it then. The clock
//! is injected so the same code runs in the worker (`performance.now`) and in native tests.

use burn::module::Module;
use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::checkpoint;
use crate::model::tokenizer::{BOS, EOS};
use crate::model::{Model, ModelConfig, ModelError, TokenBatch, Tokenizer, TrainConfig, Trainer};
use crate::report::{ModelSize, TrainBackend, TrainProgress};

/// Sequences in the warm-up batch.
const BATCH: usize = 16;

/// The model config for a size.
pub fn model_config(size: ModelSize) -> ModelConfig {
    let base = ModelConfig::new(Tokenizer::new().vocab_size());
    match size {
        ModelSize::Default => base,
        ModelSize::Tiny => base.with_d_model(32).with_n_layers(2).with_n_heads(4).with_d_ff(64).with_max_seq_len(24),
    }
}

/// A seeded batch of `a+b=` → `a+b` with one- and two-digit operands.
pub fn addition_batch(seed: u64) -> Result<TokenBatch, ModelError> {
    let tokenizer = Tokenizer::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sequences = Vec::with_capacity(BATCH);
    let mut prompt_lens = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let (a, b) = (rng.random_range(0..100u32), rng.random_range(0..100u32));
        let mut seq = vec![BOS];
        seq.extend(tokenizer.encode(&format!("{a}+{b}="))?);
        prompt_lens.push(seq.len());
        seq.extend(tokenizer.encode(&(a + b).to_string())?);
        seq.push(EOS);
        sequences.push(seq);
    }
    TokenBatch::supervised(sequences, &prompt_lens)
}

/// A model being trained, with the numbers the page shows.
#[derive(Debug)]
pub struct TrainingRun {
    trainer: Trainer,
    config: ModelConfig,
    batch: TokenBatch,
    backend: TrainBackend,
    parameters: usize,
    steps: u32,
    step: u32,
    first_loss: Option<f32>,
    started_ms: f64,
    tokens: usize,
}

impl TrainingRun {
    /// A fresh model of `size` on `device` (already initialised for `backend`).
    pub fn new(
        device: &Device,
        backend: TrainBackend,
        size: ModelSize,
        steps: u32,
        seed: u64,
    ) -> Result<Self, ModelError> {
        device.seed(seed);
        let model_config = model_config(size);
        let model: Model = model_config.init(device)?;
        let parameters = model.num_params();
        let config = TrainConfig { learning_rate: 3e-3, ..TrainConfig::default() };
        Ok(Self {
            trainer: Trainer::new(model, config, device),
            config: model_config,
            batch: addition_batch(seed)?,
            backend,
            parameters,
            steps,
            step: 0,
            first_loss: None,
            started_ms: 0.0,
            tokens: 0,
        })
    }

    /// The model as trained so far, as a checkpoint, without blocking (works on WebGPU).
    pub async fn checkpoint(&self) -> Result<Vec<u8>, ModelError> {
        checkpoint::save_async(&self.trainer.inference_model(), &self.config, u64::from(self.step)).await
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u32 {
        self.step
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.steps
    }

    /// One step; `now_ms` is a monotonic clock in milliseconds.
    pub async fn step(&mut self, now_ms: &dyn Fn() -> f64) -> Result<TrainProgress, ModelError> {
        if self.step == 0 {
            self.started_ms = now_ms();
        }
        let stats = self.trainer.step(&self.batch).await?;
        self.step += 1;
        self.tokens += self.batch.sequences.iter().map(Vec::len).sum::<usize>();
        let first_loss = *self.first_loss.get_or_insert(stats.loss);
        let seconds = ((now_ms() - self.started_ms) / 1e3).max(1e-9);
        Ok(TrainProgress {
            backend: self.backend,
            parameters: self.parameters,
            step: self.step,
            steps: self.steps,
            loss: stats.loss,
            first_loss,
            steps_per_second: f64::from(self.step) / seconds,
            tokens_per_second: self.tokens as f64 / seconds,
            done: self.is_done(),
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn addition_batch_is_seeded_and_correct() {
        let batch = addition_batch(3).expect("batch");
        assert_eq!(batch, addition_batch(3).expect("batch"));
        assert_ne!(batch, addition_batch(4).expect("batch"));
        let tokenizer = Tokenizer::new();
        for seq in &batch.sequences {
            let text = tokenizer.decode(seq).expect("decodes");
            let (question, answer) = text.split_once('=').expect("has =");
            let (a, b) = question.split_once('+').expect("has +");
            let sum: u32 = a.parse::<u32>().expect("a") + b.parse::<u32>().expect("b");
            assert_eq!(answer, sum.to_string(), "{text}");
        }
    }

    #[test]
    fn a_tiny_run_reports_falling_loss_and_rates() {
        let device = Device::flex();
        let mut run = TrainingRun::new(&device, TrainBackend::Cpu, ModelSize::Tiny, 12, 1).expect("run");
        let origin = Instant::now();
        let now = move || origin.elapsed().as_secs_f64() * 1e3;
        let mut last = None;
        while !run.is_done() {
            last = Some(pollster::block_on(run.step(&now)).expect("step"));
        }
        let last = last.expect("at least one step");
        assert!(last.done && last.step == 12);
        assert!(last.loss < last.first_loss * 0.8, "loss {} → {}", last.first_loss, last.loss);
        assert!(last.steps_per_second > 0.0 && last.tokens_per_second > last.steps_per_second);

        // What the page offers for download: a checkpoint that loads back, named after its content.
        let bytes = pollster::block_on(run.checkpoint()).expect("checkpoint");
        let saved = crate::report::SavedModel::describe(&bytes).expect("describe");
        assert_eq!((saved.step, saved.bytes), (12, bytes.len()));
        assert!(saved.file_name.starts_with("tabswarm-d32-l2-step12-"), "{}", saved.file_name);
        assert!(saved.file_name.ends_with(".tswm") && saved.sha256.len() == 64);
        assert!(saved.link_text().contains("step 12, sha256 "), "{}", saved.link_text());
        let (_, header) = checkpoint::load(&bytes, Some(&model_config(ModelSize::Tiny)), &device).expect("loads");
        assert_eq!(header.payload_sha256, saved.sha256);
    }
}

//! Batched autoregressive sampling with temperature and top-k, from a seeded RNG.
//!
//! The draw happens on the device (`tabswarm_kernels::fused::sample_tokens`: the fused WGSL kernel
//! on WebGPU/wgpu, its burn-op reference on the CPU), so each step reads back one token id per row
//! instead of a row of logits. Its uniform numbers come from a counter-based generator keyed by
//! (seed, row, position), so the same seed gives the same tokens on the same backend.

use burn::module::Module;
use burn::tensor::Device;
use tabswarm_kernels::fused::{SampleSettings, sample_tokens};

use super::tokenizer::{EOS, PAD};
use super::{KvCache, Model, ModelError, read_ints, token_tensor};

/// How to draw completions.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens before drawing; 0 keeps all.
    pub top_k: usize,
    /// Stop after this many new tokens (fewer if EOS comes first or the context is full).
    pub max_new_tokens: usize,
    /// Seed of the draw; row `i`'s token at position `p` is drawn from (seed, i, p).
    pub seed: u64,
    /// Reuse keys/values of earlier positions (on by default; off only to measure its worth).
    pub use_kv_cache: bool,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self { temperature: 1.0, top_k: 0, max_new_tokens: 32, seed: 0, use_kv_cache: true }
    }
}

impl SamplingConfig {
    fn validate(&self) -> Result<(), ModelError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(ModelError::InvalidSampling(format!(
                "temperature must be a finite number ≥ 0, got {}",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// Continues every prompt (all of the same length) and returns the new tokens of each, ending
/// with EOS where the model produced one.
pub async fn generate(
    model: &Model,
    prompts: &[Vec<u32>],
    config: &SamplingConfig,
    device: &Device,
) -> Result<Vec<Vec<u32>>, ModelError> {
    config.validate()?;
    let model = model.valid(); // no autodiff graph while sampling
    let batch = prompts.len();
    let mut input = token_tensor(prompts, device)?;
    let prompt_len = prompts[0].len();
    if prompt_len == 0 {
        return Err(ModelError::EmptySequence);
    }
    if prompt_len > model.max_seq_len() {
        return Err(ModelError::TooLong { len: prompt_len, max: model.max_seq_len() });
    }
    let top_k = u32::try_from(config.top_k).unwrap_or(u32::MAX);
    let mut completions = vec![Vec::new(); batch];
    let mut finished = vec![false; batch];
    // Room for the prompt and every new token (the last drawn is never fed back).
    let mut cache = KvCache::with_capacity(prompt_len + config.max_new_tokens);
    let mut sequences: Vec<Vec<u32>> = prompts.to_vec();
    let vocab = model.vocab_size();

    for step in 0..config.max_new_tokens {
        let logits =
            if config.use_kv_cache { model.forward_cached(input, &mut cache)? } else { model.forward(input)? };
        let [_, seq, _] = logits.dims();
        let last = logits.slice([0..batch, seq - 1..seq, 0..vocab]).reshape([batch, vocab]);
        let settings = SampleSettings { temperature: config.temperature, top_k, seed: config.seed, step: step as u32 };
        let drawn = read_ints(sample_tokens(last, settings)).await?;
        let mut next = Vec::with_capacity(batch);
        for row in 0..batch {
            let token = if finished[row] {
                PAD
            } else {
                let token = drawn[row];
                completions[row].push(token);
                finished[row] = token == EOS;
                token
            };
            next.push(token);
            sequences[row].push(token);
        }
        if finished.iter().all(|&f| f) || sequences[0].len() >= model.max_seq_len() {
            break;
        }
        input = if config.use_kv_cache {
            token_tensor(&next.iter().map(|&t| vec![t]).collect::<Vec<_>>(), device)?
        } else {
            token_tensor(&sequences, device)?
        };
    }
    Ok(completions)
}

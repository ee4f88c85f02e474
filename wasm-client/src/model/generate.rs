//! Batched autoregressive sampling with temperature and top-k, from a seeded RNG.
//!
//! The logits of the last position are read back (asynchronously) and sampled on the host with a
//! ChaCha8 stream per row, so the same seed gives the same tokens on the same backend.

use burn::module::Module;
use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::tokenizer::{EOS, PAD};
use super::{KvCache, Model, ModelError, read_floats, token_tensor};

/// How to draw completions.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens before drawing; 0 keeps all.
    pub top_k: usize,
    /// Stop after this many new tokens (fewer if EOS comes first or the context is full).
    pub max_new_tokens: usize,
    /// Seed of the draw; row `i` uses stream `i` of it.
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

/// Draws one token from `logits` (the reference the GPU sampling kernel will be checked against).
pub fn sample_token(logits: &[f32], temperature: f32, top_k: usize, rng: &mut impl Rng) -> u32 {
    let argmax = || {
        logits.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
            as u32
    };
    if temperature == 0.0 || top_k == 1 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = if top_k == 0 { logits.len() } else { top_k.min(logits.len()) };
    if k < logits.len() {
        order.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        order.truncate(k);
    }
    let max = order.iter().map(|&i| logits[i]).fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f32> = order.iter().map(|&i| ((logits[i] - max) / temperature).exp()).collect();
    let total: f32 = weights.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return argmax();
    }
    let mut draw = rng.random::<f32>() * total;
    for (&i, &w) in order.iter().zip(&weights) {
        if draw < w {
            return i as u32;
        }
        draw -= w;
    }
    order[order.len() - 1] as u32
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
    let mut rngs: Vec<ChaCha8Rng> = (0..batch)
        .map(|row| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(row as u64);
            rng
        })
        .collect();
    let mut completions = vec![Vec::new(); batch];
    let mut finished = vec![false; batch];
    let mut cache = KvCache::default();
    let mut sequences: Vec<Vec<u32>> = prompts.to_vec();
    let vocab = model.vocab_size();

    for _ in 0..config.max_new_tokens {
        let logits =
            if config.use_kv_cache { model.forward_cached(input, &mut cache)? } else { model.forward(input)? };
        let [_, seq, _] = logits.dims();
        let last = logits.slice([0..batch, seq - 1..seq, 0..vocab]).reshape([batch, vocab]);
        let values = read_floats(last).await?;
        let mut next = Vec::with_capacity(batch);
        for row in 0..batch {
            let token = if finished[row] {
                PAD
            } else {
                let token = sample_token(
                    &values[row * vocab..(row + 1) * vocab],
                    config.temperature,
                    config.top_k,
                    &mut rngs[row],
                );
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

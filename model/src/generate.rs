//! Batched autoregressive sampling with temperature and top-k, from a seeded RNG.
//!
//! The draw happens on the device (`tabswarm_kernels::fused::sample_tokens`: the fused WGSL kernel
//! on WebGPU/wgpu, its burn-op reference on the CPU), so each step reads back one token id per row
//! instead of a row of logits. Its uniform numbers come from a counter-based generator keyed by
//! (seed, row, position), so the same seed gives the same tokens on the same backend.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use tabswarm_kernels::fused::{SampleSettings, sample_tokens};

use super::tokenizer::EOS;
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
    /// Tokens drawn between two readbacks of the drawn ids (which is when generation can notice
    /// that every row has finished). 0: chosen for the device — every token on the CPU backend,
    /// where a readback costs nothing and a step past the end costs a step;
    /// [`GPU_TOKENS_PER_READBACK`] on a GPU, where each readback makes the host wait.
    pub read_every: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self { temperature: 1.0, top_k: 0, max_new_tokens: 32, seed: 0, use_kv_cache: true, read_every: 0 }
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

/// Tokens drawn between two readbacks on a GPU (wgpu, WebGPU) when [`SamplingConfig::read_every`]
/// is 0. Each readback makes the host wait for the device; between them the drawn ids stay on the
/// device and are fed straight back. Reading every 8 tokens costs at most 7 steps past the moment
/// every row has drawn EOS; task answers are a few tokens long, so most generations end within
/// one or two windows.
pub const GPU_TOKENS_PER_READBACK: usize = 8;

/// Continues every prompt and returns the new tokens of each, ending with EOS where the model
/// produced one.
///
/// Prompts of different lengths run as one batch, left-padded to the longest with each
/// sequence's padding masked and its positions counted from its own first token
/// ([`KvCache::with_padding`]): one launch per layer and step for the whole batch, and each row
/// gets the tokens it would get alone (up to float rounding; row `i`'s draws stay keyed by
/// (seed, i, step)). Each row draws at most `max_new_tokens`, and no more than its own prompt
/// leaves room for in the context. Different lengths need the KV cache.
///
/// The drawn ids stay on the device and are fed back from there; they are read back every
/// [`SamplingConfig::read_every`] tokens (and at the end) to see whether every row has finished.
/// A row that has drawn EOS keeps being computed until then, and what it draws after EOS is
/// dropped: rows do not see each other, so the tokens returned do not depend on how often the
/// host reads.
pub async fn generate(
    model: &Model,
    prompts: &[Vec<u32>],
    config: &SamplingConfig,
    device: &Device,
) -> Result<Vec<Vec<u32>>, ModelError> {
    config.validate()?;
    let model = model.valid(); // no autodiff graph while sampling
    let batch = prompts.len();
    if batch == 0 {
        return Err(ModelError::InvalidBatch("no prompts to continue".into()));
    }
    let shortest = prompts.iter().map(Vec::len).min().unwrap_or(0);
    let prompt_len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if shortest == 0 {
        return Err(ModelError::EmptySequence);
    }
    if prompt_len > model.max_seq_len() {
        return Err(ModelError::TooLong { len: prompt_len, max: model.max_seq_len() });
    }
    let pads: Vec<usize> = prompts.iter().map(|p| prompt_len - p.len()).collect();
    let padded = shortest < prompt_len;
    if padded && !config.use_kv_cache {
        return Err(ModelError::InvalidBatch(format!(
            "prompts of different lengths ({shortest} to {prompt_len} tokens) are generated with the KV cache only"
        )));
    }
    // Padding is never attended to: any id does; EOS is in every vocabulary.
    let rows: Vec<Vec<u32>> = prompts.iter().zip(&pads).map(|(p, &pad)| [vec![EOS; pad], p.clone()].concat()).collect();
    let mut input = token_tensor(&rows, device)?;
    let read_every = match config.read_every {
        0 if tabswarm_kernels::fused::runs_fused(device) => GPU_TOKENS_PER_READBACK,
        0 => 1,
        n => n,
    };
    let top_k = u32::try_from(config.top_k).unwrap_or(u32::MAX);
    let mut completions = vec![Vec::new(); batch];
    let mut finished = vec![false; batch];
    // The most new tokens of each row: the last one drawn fills the context (and a prompt that
    // fills it alone still gets one, which is never fed back).
    let limits: Vec<usize> =
        prompts.iter().map(|p| config.max_new_tokens.min((model.max_seq_len() - p.len()).max(1))).collect();
    let steps = limits.iter().copied().max().unwrap_or(0);
    // Room for the prompt and every new token (the last drawn is never fed back); without
    // padding (every pad 0) this is a plain cache.
    let mut cache = KvCache::with_padding(prompt_len + steps, pads);
    let vocab = model.vocab_size();
    // Drawn on the device and not read yet: one `[batch]` tensor per step.
    let mut unread: Vec<Tensor<1, Int>> = Vec::with_capacity(read_every);

    for step in 0..steps {
        let logits = if config.use_kv_cache {
            model.forward_cached(input.clone(), &mut cache)?
        } else {
            model.forward(input.clone())?
        };
        let [_, seq, _] = logits.dims();
        let last = logits.slice([0..batch, seq - 1..seq, 0..vocab]).reshape([batch, vocab]);
        let settings = SampleSettings { temperature: config.temperature, top_k, seed: config.seed, step: step as u32 };
        let drawn = sample_tokens(last, settings);
        unread.push(drawn.clone());
        let last_step = step + 1 == steps;
        if unread.len() == read_every || last_step {
            let ids = read_ints(Tensor::cat(std::mem::take(&mut unread), 0)).await?;
            for drawn in ids.chunks(batch) {
                for (row, &token) in drawn.iter().enumerate() {
                    if !finished[row] {
                        completions[row].push(token);
                        finished[row] = token == EOS || completions[row].len() == limits[row];
                    }
                }
            }
            if finished.iter().all(|&f| f) {
                break;
            }
        }
        if last_step {
            break;
        }
        let next = drawn.reshape([batch, 1]);
        input = if config.use_kv_cache { next } else { Tensor::cat(vec![input, next], 1) };
    }
    Ok(completions)
}

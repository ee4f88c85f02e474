//! Token batches and what every training objective computes from them: the per-token
//! log-probabilities of the targets (fused on the GPU) and the weighted token-level loss. Both the
//! supervised step and GRPO ([`crate::grpo`]) build on this module; it builds on neither.

use burn::tensor::{Device, Int, Tensor, TensorData};
use tabswarm_kernels::fused;

use crate::tokenizer::PAD;
use crate::{Model, ModelError, token_tensor};

/// Token sequences with what to learn from each position.
///
/// `sequences[r]` is a whole sequence (BOS, prompt, completion, EOS). `weights[r][t]` is the weight
/// of predicting token `t` from the tokens before it; 0 where the token is not trained on (the
/// prompt, padding). Rows may differ in length: they are padded with PAD at weight 0.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub sequences: Vec<Vec<u32>>,
    pub weights: Vec<Vec<f32>>,
}

impl TokenBatch {
    /// Policy-gradient batch: every completion token of row `r` weighted by `advantages[r]`; the
    /// first `prompt_lens[r]` tokens are the prompt and are not trained on.
    pub fn policy(sequences: Vec<Vec<u32>>, prompt_lens: &[usize], advantages: &[f32]) -> Result<Self, ModelError> {
        if prompt_lens.len() != sequences.len() || advantages.len() != sequences.len() {
            return Err(ModelError::InvalidBatch(format!(
                "{} sequences need as many prompt lengths and advantages, got {} and {}",
                sequences.len(),
                prompt_lens.len(),
                advantages.len()
            )));
        }
        let mut weights = Vec::with_capacity(sequences.len());
        for ((seq, &prompt), &advantage) in sequences.iter().zip(prompt_lens).zip(advantages) {
            if prompt == 0 || prompt >= seq.len() {
                return Err(ModelError::InvalidBatch(format!(
                    "prompt length {prompt} must be at least 1 and shorter than its sequence ({})",
                    seq.len()
                )));
            }
            weights.push((0..seq.len()).map(|t| if t >= prompt { advantage } else { 0.0 }).collect());
        }
        Ok(Self { sequences, weights })
    }

    /// Supervised batch: cross-entropy on every completion token (weight 1).
    pub fn supervised(sequences: Vec<Vec<u32>>, prompt_lens: &[usize]) -> Result<Self, ModelError> {
        let ones = vec![1.0; sequences.len()];
        Self::policy(sequences, prompt_lens, &ones)
    }

    /// Padded inputs (`[rows, len-1]`), targets (`[rows, len-1]`) and target weights.
    pub(crate) fn tensors(
        &self,
        device: &Device,
    ) -> Result<(Tensor<2, Int>, Tensor<2, Int>, Tensor<2>, f32), ModelError> {
        let len = self.sequences.iter().map(Vec::len).max().unwrap_or(0);
        if len < 2 {
            return Err(ModelError::InvalidBatch("every batch needs a sequence of at least 2 tokens".into()));
        }
        if self.weights.len() != self.sequences.len()
            || self.weights.iter().zip(&self.sequences).any(|(w, s)| w.len() != s.len())
        {
            return Err(ModelError::InvalidBatch("weights must have the shape of the sequences".into()));
        }
        let rows = self.sequences.len();
        let (mut inputs, mut targets) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        let mut weights = Vec::with_capacity(rows * (len - 1));
        let mut trained = 0usize;
        for (seq, w) in self.sequences.iter().zip(&self.weights) {
            let mut padded = seq.clone();
            padded.resize(len, PAD);
            inputs.push(padded[..len - 1].to_vec());
            targets.push(padded[1..].to_vec());
            for t in 1..len {
                let weight = w.get(t).copied().unwrap_or(0.0);
                trained += usize::from(weight != 0.0);
                weights.push(weight);
            }
        }
        if !weights.iter().all(|w| w.is_finite()) {
            return Err(ModelError::InvalidBatch("weights must be finite".into()));
        }
        tabswarm_kernels::work::note_upload();
        let weights = Tensor::from_data(TensorData::new(weights, [rows, len - 1]), device);
        // Token-level normalisation: the mean over trained tokens (at least one, to stay finite).
        Ok((token_tensor(&inputs, device)?, token_tensor(&targets, device)?, weights, trained.max(1) as f32))
    }
}

/// Log-probability of each target token under `model`: `[rows, len]` → `[rows, len]`.
pub fn token_log_probs(
    model: &Model,
    inputs: Tensor<2, Int>,
    targets: Tensor<2, Int>,
) -> Result<Tensor<2>, ModelError> {
    // Fused log-softmax + gather on WebGPU/wgpu (no [rows, len, vocab] log-softmax in memory);
    // the same burn-op composition on the CPU.
    let logits = model.forward(inputs)?;
    let [rows, len, vocab] = logits.dims();
    let log_probs = fused::token_log_probs(logits.reshape([rows * len, vocab]), targets.reshape([rows * len]));
    Ok(log_probs.reshape([rows, len]))
}

/// The loss of a batch: `-Σ weight · log p(token) / (number of trained tokens)`.
pub fn batch_loss(model: &Model, batch: &TokenBatch, device: &Device) -> Result<Tensor<1>, ModelError> {
    let (inputs, targets, weights, count) = batch.tensors(device)?;
    let log_probs = token_log_probs(model, inputs, targets)?;
    Ok(log_probs.mul(weights).sum().neg().div_scalar(count))
}

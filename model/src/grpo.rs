//! GRPO (Shao et al. 2024) as RL Swarm and SAPO run it: G completions per question, advantages
//! normalised within the group, the PPO-clipped objective with the asymmetric clip of DAPO
//! (low 0.2, high 0.28), no KL term by default (optional k3 KL to a frozen base), and a token-level
//! loss: the sum over every completion token in the batch divided by their number.

use burn::tensor::{Device, Tensor, TensorData};

use crate::batch::{TokenBatch, token_log_probs};
use crate::{Model, ModelError};

/// GRPO's knobs. The defaults are DAPO's / GenRL's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpoConfig {
    /// The ratio may fall to `1 - clip_low` before a negative-advantage token stops pushing.
    pub clip_low: f32,
    /// The ratio may rise to `1 + clip_high` before a positive-advantage token stops pulling.
    pub clip_high: f32,
    /// Weight of the k3 KL estimate to the base policy; 0 (the default) needs no base model.
    pub kl_coef: f32,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self { clip_low: 0.2, clip_high: 0.28, kl_coef: 0.0 }
    }
}

/// Group-normalised advantages `(r - mean) / std`, or `None` when every reward is the same (the
/// group carries no signal and is skipped).
pub fn group_advantages(rewards: &[f32]) -> Option<Vec<f32>> {
    if rewards.len() < 2 {
        return None;
    }
    let n = rewards.len() as f32;
    let mean = rewards.iter().sum::<f32>() / n;
    let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / n).sqrt();
    (std > 1e-6).then(|| rewards.iter().map(|r| (r - mean) / std).collect())
}

/// The token-level clipped objective as a loss (to minimise), from per-token tensors of equal shape:
/// `-Σ mask · min(ρ·A, clip(ρ, 1-low, 1+high)·A) / count` with `ρ = exp(logp - old)`, plus
/// `kl_coef · Σ mask · (exp(ref - logp) - (ref - logp) - 1) / count` when a reference is given.
pub fn clipped_loss<const D: usize>(
    log_probs: Tensor<D>,
    old_log_probs: Tensor<D>,
    advantages: Tensor<D>,
    mask: Tensor<D>,
    count: f32,
    reference_log_probs: Option<Tensor<D>>,
    config: &GrpoConfig,
) -> Tensor<1> {
    let ratio = log_probs.clone().sub(old_log_probs).exp();
    let unclipped = ratio.clone().mul(advantages.clone());
    let clipped = ratio.clamp(1.0 - config.clip_low, 1.0 + config.clip_high).mul(advantages);
    let objective = unclipped.min_pair(clipped).mul(mask.clone()).sum().div_scalar(count);
    let mut loss = objective.neg();
    if let Some(reference) = reference_log_probs.filter(|_| config.kl_coef != 0.0) {
        let diff = reference.sub(log_probs);
        let k3 = diff.clone().exp().sub(diff).sub_scalar(1.0).mul(mask).sum().div_scalar(count);
        loss = loss.add(k3.mul_scalar(config.kl_coef));
    }
    loss
}

/// The same objective on plain numbers, one entry per token: the reference the tensor version is
/// tested against.
pub fn clipped_loss_reference(
    log_probs: &[f32],
    old: &[f32],
    advantages: &[f32],
    mask: &[bool],
    config: &GrpoConfig,
) -> f32 {
    let count = mask.iter().filter(|m| **m).count().max(1) as f32;
    let mut sum = 0.0;
    for i in 0..log_probs.len() {
        if mask[i] {
            let ratio = (log_probs[i] - old[i]).exp();
            let clipped = ratio.clamp(1.0 - config.clip_low, 1.0 + config.clip_high);
            sum += (ratio * advantages[i]).min(clipped * advantages[i]);
        }
    }
    -sum / count
}

/// Completions with their prompts and one advantage per completion.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpoBatch {
    /// BOS, prompt, completion, (EOS) per row.
    pub sequences: Vec<Vec<u32>>,
    /// Tokens of each row that are the prompt (BOS included): not trained on.
    pub prompt_lens: Vec<usize>,
    pub advantages: Vec<f32>,
}

impl GrpoBatch {
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }

    /// Completion tokens the loss averages over.
    pub fn completion_tokens(&self) -> usize {
        self.sequences.iter().zip(&self.prompt_lens).map(|(s, &p)| s.len().saturating_sub(p)).sum()
    }
}

/// The GRPO loss of `batch` under `model`. With one update per batch (what the swarm does) the old
/// policy is the current one, so `old` is the detached log-probs and the ratio is 1 in value with
/// the policy gradient as its gradient. `reference` is the frozen base for the KL term.
pub fn grpo_loss(
    model: &Model,
    batch: &GrpoBatch,
    reference: Option<&Model>,
    config: &GrpoConfig,
    device: &Device,
) -> Result<Tensor<1>, ModelError> {
    // The positions trained on (completion tokens) have weight 1 in a supervised TokenBatch.
    let tokens = TokenBatch::supervised(batch.sequences.clone(), &batch.prompt_lens)?;
    let (inputs, targets, mask, count) = tokens.tensors(device)?;
    let [rows, len] = mask.dims();
    if batch.advantages.len() != rows || !batch.advantages.iter().all(|a| a.is_finite()) {
        return Err(ModelError::InvalidBatch(format!(
            "{rows} sequences need as many finite advantages, got {:?}",
            batch.advantages
        )));
    }
    let advantages: Vec<f32> = batch.advantages.iter().flat_map(|&a| std::iter::repeat_n(a, len)).collect();
    tabswarm_kernels::work::note_upload();
    let advantages = Tensor::from_data(TensorData::new(advantages, [rows, len]), device);
    let log_probs = token_log_probs(model, inputs.clone(), targets.clone())?;
    let old = log_probs.clone().detach();
    let reference = match reference.filter(|_| config.kl_coef != 0.0) {
        Some(base) => Some(token_log_probs(base, inputs, targets)?.detach()),
        None => None,
    };
    Ok(clipped_loss(log_probs, old, advantages, mask, count, reference, config))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

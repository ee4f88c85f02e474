//! Training steps written as a custom loop (burn-train does not build for wasm): a policy-gradient
//! step on per-token weights (advantages) and a supervised cross-entropy step for warm starts. Both
//! end in AdamW with gradient clipping.

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;

use crate::batch::{TokenBatch, batch_loss};
use crate::grpo::{GrpoBatch, GrpoConfig, grpo_loss};
use crate::{Model, ModelError, read_floats};

/// Optimiser settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub learning_rate: f64,
    pub weight_decay: f32,
    /// Gradients are rescaled so their norm is at most this.
    pub max_grad_norm: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { learning_rate: 3e-4, weight_decay: 0.01, max_grad_norm: 1.0 }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    /// Tokens with a non-zero weight.
    pub trained_tokens: usize,
}

/// A model on an autodiff device and its AdamW state.
pub struct Trainer {
    model: Model,
    optimizer: ModuleOptimizer,
    config: TrainConfig,
    device: Device,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("config", &self.config).field("device", &self.device).finish_non_exhaustive()
    }
}

impl Trainer {
    /// Takes `model` (moved to the autodiff version of `device`) for training.
    pub fn new(model: Model, config: TrainConfig, device: &Device) -> Self {
        let device = device.clone().autodiff();
        let optimizer = AdamWConfig::new()
            .with_weight_decay(config.weight_decay)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(config.max_grad_norm)))
            .init();
        Self { model: model.fork(&device).train(), optimizer, config, device }
    }

    /// The model as it is now (for generation, evaluation or a checkpoint).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The model without its autodiff state.
    pub fn inference_model(&self) -> Model {
        self.model.valid()
    }

    /// The learning rate of the next steps (a schedule sets it before each step).
    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        self.config.learning_rate = learning_rate;
    }

    /// One gradient step on `batch` (policy gradient with its weights, or supervised).
    pub async fn step(&mut self, batch: &TokenBatch) -> Result<StepStats, ModelError> {
        let trained_tokens = batch.weights.iter().flatten().filter(|w| **w != 0.0).count();
        let loss = batch_loss(&self.model, batch, &self.device)?;
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(self.config.learning_rate, self.model.clone(), grads);
        let loss = read_floats(loss).await?.first().copied().unwrap_or(f32::NAN);
        Ok(StepStats { loss, trained_tokens })
    }

    /// One GRPO step on `batch`; `reference` (the frozen base, on this trainer's device) is only
    /// read when `config.kl_coef` is non-zero.
    pub async fn grpo_step(
        &mut self,
        batch: &GrpoBatch,
        reference: Option<&Model>,
        config: &GrpoConfig,
    ) -> Result<StepStats, ModelError> {
        let loss = grpo_loss(&self.model, batch, reference, config, &self.device)?;
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(self.config.learning_rate, self.model.clone(), grads);
        let loss = read_floats(loss).await?.first().copied().unwrap_or(f32::NAN);
        Ok(StepStats { loss, trained_tokens: batch.completion_tokens() })
    }

    /// Replaces the parameters with `flat` ([`crate::params`] order), keeping the optimiser's
    /// state: how a peer moves onto a new swarm version and trains on (DiLoCo's inner optimiser
    /// persists across outer steps). A vector of the wrong length is refused and nothing changes.
    pub fn load_flat(&mut self, flat: &[f32]) -> Result<(), ModelError> {
        self.model = crate::params::load_flat(self.model.clone(), flat)?;
        Ok(())
    }

    /// The autodiff device this trainer runs on (where a KL reference model must live).
    pub fn device(&self) -> &Device {
        &self.device
    }
}

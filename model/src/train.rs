//! Training steps written as a custom loop (burn-train does not build for wasm): a policy-gradient
//! step on per-token weights (advantages) and a supervised cross-entropy step for warm starts. Both
//! end in AdamW with gradient clipping.

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{
    AdamWConfig, AdamWState, AdaptiveMomentumState, GradientsParams, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor};
use tabswarm_kernels::fused::{AdamWStep, adamw_step, runs_fused};

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

/// burn's AdamW with each parameter's gradient clipped by its norm (`GradientClippingConfig::Norm`),
/// as one fused kernel per parameter tensor on a GPU (`adamw.wgsl`) instead of about 25 — the
/// optimiser was 1,350 of a training step's 2,118 dispatches (docs/benchmarks.md). Same state
/// ([`AdamWState`]), same arithmetic in the same order; on the CPU backend the [`Trainer`] keeps
/// burn's own AdamW.
#[derive(Debug, Clone)]
pub struct FusedAdamW {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    max_norm: f32,
}

impl FusedAdamW {
    /// burn's `AdamWConfig` defaults (β1 0.9, β2 0.999, ε 1e-5) with this weight decay, clipping
    /// each gradient to `max_norm` (0: no clipping).
    pub fn new(weight_decay: f32, max_norm: f32) -> Self {
        Self { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-5, weight_decay, max_norm }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let dims = tensor.dims();
        let (time, m, v) = match state {
            Some(AdamWState { momentum }) => {
                (momentum.time + 1, momentum.moment_1.reshape([-1]), momentum.moment_2.reshape([-1]))
            }
            None => {
                let zeros = || Tensor::<1>::zeros([tensor.shape().num_elements()], &tensor.device());
                (1, zeros(), zeros())
            }
        };
        let t = i32::try_from(time).unwrap_or(i32::MAX);
        let step = AdamWStep::new(lr, self.weight_decay, self.beta_1, self.beta_2, self.epsilon, self.max_norm, t);
        let (param, m, v) = adamw_step(tensor.reshape([-1]), grad.reshape([-1]), m, v, &step);
        let momentum =
            AdaptiveMomentumState { time, moment_1: m.reshape(dims), moment_2: v.reshape(dims), max_moment_2: None };
        (param.reshape(dims), Some(AdamWState { momentum }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamWState { momentum: state.momentum.to_device(device) }
    }
}

/// The optimiser a [`Trainer`] on `device` steps with: [`FusedAdamW`] on a GPU, burn's AdamW
/// with the same norm clipping on the CPU backend.
pub fn optimizer_for(config: &TrainConfig, device: &Device) -> ModuleOptimizer {
    if runs_fused(device) {
        ModuleOptimizer::from(FusedAdamW::new(config.weight_decay, config.max_grad_norm))
    } else {
        AdamWConfig::new()
            .with_weight_decay(config.weight_decay)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(config.max_grad_norm)))
            .init()
    }
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
        let optimizer = optimizer_for(&config, &device);
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

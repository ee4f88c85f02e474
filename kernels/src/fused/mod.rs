//! Fused kernels for the RL hot spots, wired into burn as a backend extension.
//!
//! - [`token_log_probs`]: log-softmax over the vocabulary fused with the gather of the chosen
//!   token (`token_logprob.wgsl`, or `token_logprob_rows.wgsl` for short rows), with its own backward (`token_logprob_backward.wgsl`), so the
//!   policy-gradient loss never materialises a `[rows, vocab]` log-softmax.
//! - [`sample_tokens`]: temperature + top-k softmax + a categorical draw from a counter-based RNG
//!   (`sample.wgsl`, or `sample_rows.wgsl` for short rows), so generation reads back one token id per row instead of a row of logits.
//!
//! - [`decode_attention`]: one new token's attention over its KV cache (`decode_attention.wgsl`),
//!   the third kernel, chosen from the decode profile in docs/benchmarks.md.
//! - [`layer_norm`]: layer normalisation over the last dimension with its scale and shift
//!   (`layer_norm.wgsl`), and its backward (`layer_norm_backward.wgsl`: the input's, the scale's and
//!   the shift's gradients in one dispatch), where burn's composition launches 9 kernels forward and
//!   about 20 backward, for each of a model's 2 · layers + 1 norms (issue 20, docs/benchmarks.md).
//! - [`adamw_step`]: one AdamW step of one parameter tensor with its gradient clipped by its norm
//!   (`adamw.wgsl`), one dispatch where burn's optimiser launches about 25; chosen from the
//!   dispatch counts of a training step (issue 20, docs/benchmarks.md).
//!
//! Each has a `*_reference` composed of plain burn ops; on a cubecl (wgpu/WebGPU) device the
//! fused kernel runs, on any other device (the `flex` CPU fallback) the reference does — same
//! semantics, checked against each other by the tests on random inputs of awkward sizes.
//!
//! The extension trait is [`FusedBackend`]: implemented for burn's cube backend (the WGSL
//! launches, in `cube.rs`) and for `Autodiff<B>` (the backward pass, in `autodiff.rs`).

mod autodiff;
mod cube;
mod rng;

use burn::backend::backend_extension;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::{Device, Int, Tensor, TensorData, activation};

pub use rng::{counter_uniform, counter_uniforms, pcg_hash};

/// `token_logprob.wgsl` (+ `token_logprob_common.wgsl`): the fused forward pass.
pub const TOKEN_LOGPROB_SHADER: &str = crate::shaders::TOKEN_LOGPROB.source;
/// `token_logprob_rows.wgsl` (+ `token_logprob_common.wgsl`): the forward pass for short rows, one
/// thread per row.
pub const TOKEN_LOGPROB_ROWS_SHADER: &str = crate::shaders::TOKEN_LOGPROB_ROWS.source;
/// `token_logprob_backward.wgsl`: its gradient.
pub const TOKEN_LOGPROB_BACKWARD_SHADER: &str = crate::shaders::TOKEN_LOGPROB_BACKWARD.source;
/// `sample.wgsl` (+ `sample_common.wgsl`): temperature + top-k + categorical draw.
pub const SAMPLE_SHADER: &str = crate::shaders::SAMPLE.source;
/// `sample_rows.wgsl` (+ `sample_common.wgsl`): the same draw for short rows, one thread per row.
pub const SAMPLE_ROWS_SHADER: &str = crate::shaders::SAMPLE_ROWS.source;
/// `adamw.wgsl`: one clipped AdamW step of one parameter tensor.
pub const ADAMW_SHADER: &str = crate::shaders::ADAMW.source;
/// `decode_attention.wgsl`: one new token's attention over its KV cache.
pub const DECODE_ATTENTION_SHADER: &str = crate::shaders::DECODE_ATTENTION.source;
/// `layer_norm.wgsl`: layer normalisation forward, one thread per row.
pub const LAYER_NORM_SHADER: &str = crate::shaders::LAYER_NORM.source;
/// `layer_norm_backward.wgsl`: its gradients for the input, the scale and the shift.
pub const LAYER_NORM_BACKWARD_SHADER: &str = crate::shaders::LAYER_NORM_BACKWARD.source;
/// The longest cache and the widest head [`decode_attention`] fuses (its workgroup arrays).
pub const DECODE_ATTENTION_MAX_LEN: usize = 2048;
pub const DECODE_ATTENTION_MAX_HEAD_DIM: usize = 256;

/// Rows up to this many logits run one thread per row; longer rows one 256-thread workgroup per
/// row. For the task vocabulary (97) a whole workgroup would idle most threads and pay a barrier
/// per reduction round — measured 4× slower than the reference on lavapipe before this split.
pub const SHORT_ROW: usize = 256;

/// How [`sample_tokens`] draws: the same settings give the same token on the kernel and the
/// reference (up to float rounding at a boundary between two tokens).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleSettings {
    /// Softmax temperature; 0 means greedy (the lowest index among the largest logits).
    pub temperature: f32,
    /// Keep the logits ≥ the `top_k`-th largest (ties at the boundary are all kept); 0 keeps all.
    pub top_k: u32,
    /// Seed of the run; with `step` and the row it fixes every draw.
    pub seed: u64,
    /// Which draw of the run this is (the position being generated).
    pub step: u32,
}

/// The fused operations, as a burn backend extension (see the module docs).
#[backend_extension(Cube, Autodiff)]
pub trait FusedBackend: burn::backend::Backend {
    /// `log softmax(logits)[r, targets[r]]` for each row of `[rows, vocab]` logits.
    fn token_logprob(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;
    /// The forward pass with the per-row log-sum-exp kept for the backward pass.
    fn token_logprob_with_lse(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// `grad[r] · (onehot(targets[r]) − softmax(logits[r]))`.
    fn token_logprob_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// `softmax(q·Kᵀ·scale)·V` for one query per head: `[B, H, 1, D]` over the first `len`
    /// positions of `[B, H, capacity, D]` keys and values. Generation only: not differentiated.
    /// `first`: each sequence's first position to attend to (left padding before it), one per
    /// batch row, or empty for none.
    fn decode_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        len: usize,
        scale: f32,
        first: Vec<u32>,
    ) -> FloatTensor<Self>;
    /// One token id per row of `[rows, vocab]` logits.
    fn sample(logits: FloatTensor<Self>, temperature: f32, top_k: u32, seed: u64, step: u32) -> IntTensor<Self>;
    /// Layer normalisation of `[.., width]` over its last dimension, scaled by `gamma` and shifted by
    /// `beta` (both `[width]`). Differentiable in all three.
    fn layer_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self>;
    /// The forward pass with each row's `(mean, 1 / sqrt(var + epsilon))` kept for the backward
    /// pass: `[rows, 2]`.
    fn layer_norm_with_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// The gradients of the input, `gamma` and `beta` given the upstream gradient `grad`.
    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// One clipped AdamW step of a flat parameter: (parameter, first moment, second moment) after
    /// it. `scalars`: [`AdamWStep::words`]. Training only, on values without autodiff.
    fn adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scalars: [u32; 8],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The numbers of one AdamW step (burn's `AdamW` with `GradientClippingConfig::Norm`), as the host
/// computes them from the optimiser's settings and the step count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Clip the gradient to this L2 norm first; 0: no clipping.
    pub max_norm: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// `1 − lr · weight_decay`.
    pub decay: f32,
    pub lr: f32,
    /// `1 − β1ᵗ` and `1 − β2ᵗ` for step `t` (from 1).
    pub correction_1: f32,
    pub correction_2: f32,
}

impl AdamWStep {
    /// The step `time` (1 for the first) with learning rate `lr`, computed as burn's AdamW does.
    pub fn new(lr: f64, weight_decay: f32, beta_1: f32, beta_2: f32, epsilon: f32, max_norm: f32, time: i32) -> Self {
        Self {
            max_norm,
            beta_1,
            beta_2,
            epsilon,
            decay: (1.0 - lr * f64::from(weight_decay)) as f32,
            lr: lr as f32,
            correction_1: 1.0 - beta_1.powi(time),
            correction_2: 1.0 - beta_2.powi(time),
        }
    }

    /// The scalars as the kernel reads them (f32 bits, after the element count).
    pub fn words(&self) -> [u32; 8] {
        [
            self.max_norm.to_bits(),
            self.beta_1.to_bits(),
            self.beta_2.to_bits(),
            self.epsilon.to_bits(),
            self.decay.to_bits(),
            self.lr.to_bits(),
            self.correction_1.to_bits(),
            self.correction_2.to_bits(),
        ]
    }
}

/// One AdamW step of a flat parameter with its gradient clipped by its own norm: returns the
/// parameter and the two moments after it. Fused (one dispatch) on a cubecl device,
/// [`adamw_step_reference`] elsewhere. The moments of a first step are zeros.
pub fn adamw_step(
    param: Tensor<1>,
    grad: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    step: &AdamWStep,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    if !runs_fused(&param.device()) {
        return adamw_step_reference(param, grad, m, v, step);
    }
    let (p, m, v) = <Dispatch as FusedBackend>::adamw(
        param.into_dispatch(),
        grad.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        step.words(),
    );
    (Tensor::from_dispatch(p), Tensor::from_dispatch(m), Tensor::from_dispatch(v))
}

/// The reference composition of [`adamw_step`]: the operations burn's gradient clipping and AdamW
/// run, in their order.
pub fn adamw_step_reference(
    param: Tensor<1>,
    grad: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    step: &AdamWStep,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let grad = if step.max_norm > 0.0 {
        let norm = grad.clone().square().sum().sqrt();
        let coef = norm.add_scalar(f32::MIN_POSITIVE).recip().mul_scalar(step.max_norm).clamp_max(1.0);
        grad.mul(coef)
    } else {
        grad
    };
    let m = m.mul_scalar(step.beta_1).add(grad.clone().mul_scalar(1.0 - step.beta_1));
    let v = v.mul_scalar(step.beta_2).add(grad.square().mul_scalar(1.0 - step.beta_2));
    let delta = m
        .clone()
        .div_scalar(step.correction_1)
        .div(v.clone().div_scalar(step.correction_2).sqrt().add_scalar(step.epsilon));
    let param = param.mul_scalar(step.decay).sub(delta.mul_scalar(step.lr));
    (param, m, v)
}

/// Whether `device` runs the fused WGSL kernels (a cubecl device: wgpu natively or WebGPU).
pub fn runs_fused(device: &Device) -> bool {
    let mut dispatch = device.as_dispatch().clone();
    loop {
        match dispatch {
            DispatchDevice::Autodiff(inner) => dispatch = inner.inner(),
            DispatchDevice::Cube(_) => return true,
            #[allow(unreachable_patterns)]
            _ => return false,
        }
    }
}

/// Layer normalisation of `x` (`[.., width]`) over its last dimension: `(x − mean) / sqrt(var +
/// epsilon) · gamma + beta`, with the biased variance — what burn's `LayerNorm` module computes
/// with these parameters. Differentiable in `x`, `gamma` and `beta`.
///
/// Fused on a cubecl device (one dispatch forward, one backward), [`layer_norm_reference`]
/// elsewhere.
///
/// # Panics
/// If `gamma` or `beta` is not `[width]`.
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f64) -> Tensor<D> {
    let width = x.dims()[D - 1];
    assert_eq!(gamma.dims(), [width], "layer norm: the scale must be [{width}], the input's last dimension");
    assert_eq!(beta.dims(), [width], "layer norm: the shift must be [{width}], the input's last dimension");
    if !runs_fused(&x.device()) {
        return layer_norm_reference(x, gamma, beta, epsilon);
    }
    Tensor::from_dispatch(<Dispatch as FusedBackend>::layer_norm_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon as f32,
    ))
}

/// The reference: burn's own `layer_norm` module op (a composition of reductions and elementwise
/// kernels on cubecl, a native kernel on the `flex` CPU backend).
pub fn layer_norm_reference<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    burn::tensor::module::layer_norm(x, gamma, Some(beta), epsilon)
}

/// Log-probability of each row's target: `[rows, vocab]`, `[rows]` → `[rows]`. Differentiable.
///
/// Fused on a cubecl device, [`token_log_probs_reference`] elsewhere. A target outside
/// `[0, vocab)` gives NaN on the fused path.
pub fn token_log_probs(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    if !runs_fused(&logits.device()) {
        return token_log_probs_reference(logits, targets);
    }
    Tensor::from_dispatch(<Dispatch as FusedBackend>::token_logprob(logits.into_dispatch(), targets.into_dispatch()))
}

/// The reference composition: `log_softmax` over the vocabulary, then `gather` of the target.
pub fn token_log_probs_reference(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    activation::log_softmax(logits, 1).gather(1, targets.unsqueeze_dim(1)).squeeze_dim(1)
}

/// Draws one token per row of `[rows, vocab]` logits (see [`SampleSettings`]): `[rows]` ids.
pub fn sample_tokens(logits: Tensor<2>, settings: SampleSettings) -> Tensor<1, Int> {
    if !runs_fused(&logits.device()) {
        return sample_tokens_reference(logits, settings);
    }
    let SampleSettings { temperature, top_k, seed, step } = settings;
    Tensor::from_dispatch(<Dispatch as FusedBackend>::sample(logits.into_dispatch(), temperature, top_k, seed, step))
}

/// The reference composition of [`sample_tokens`] from plain burn ops: scale, keep logits ≥ the
/// k-th largest (`sort_descending`), exponentiate, `cumsum`, and count the running sums ≤ `u · total`.
pub fn sample_tokens_reference(logits: Tensor<2>, settings: SampleSettings) -> Tensor<1, Int> {
    let [rows, vocab] = logits.dims();
    let device = logits.device();
    let k = match settings.top_k as usize {
        0 => vocab,
        k => k.min(vocab),
    };
    if settings.temperature == 0.0 || k == 1 {
        return logits.argmax(1).squeeze_dim(1);
    }
    let max = logits.clone().max_dim(1);
    let kept = if k < vocab {
        // `sort_descending`, not `topk`: on burn 0.22.1's wgpu backend (lavapipe) `topk(k)` of a
        // 1000-wide row returns -3.4e38 as its k-th value for every k ≥ 128 tried (k ≤ 100 is right).
        let kth = logits.clone().sort_descending(1).narrow(1, k - 1, 1);
        logits.clone().greater_equal(kth)
    } else {
        logits.clone().greater_equal(max.clone().sub_scalar(f32::INFINITY))
    };
    let weights = logits.sub(max).div_scalar(settings.temperature).exp().mask_fill(kept.clone().bool_not(), 0.0);
    let cdf = weights.cumsum(1);
    let total = cdf.clone().narrow(1, vocab - 1, 1);
    let uniforms = counter_uniforms(settings.seed, settings.step, rows);
    let uniforms = Tensor::<2>::from_data(TensorData::new(uniforms, [rows, 1]), &device);
    let target = total.mul(uniforms);
    let below = cdf.lower_equal(target).int().sum_dim(1);
    // Rounding can leave the target at or past the total: then the last kept index.
    let positions = Tensor::<1, Int>::arange(0..vocab as i64, &device).unsqueeze_dim::<2>(0).repeat_dim(0, rows);
    let last_kept = positions.mask_fill(kept.bool_not(), -1).max_dim(1);
    below.min_pair(last_kept).squeeze_dim(1)
}

/// The draw of [`sample_tokens`] for one row, in pure Rust with f64 sums: the token, and how far
/// `u · total` lies from the nearest boundary of the running sum (as a fraction of the total). Two
/// implementations may disagree only on a draw whose margin is within their float rounding.
pub fn sample_reference_host(row: &[f32], settings: SampleSettings, row_index: u32) -> (usize, f64) {
    let argmax = row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
    let k = if settings.top_k == 0 { row.len() } else { (settings.top_k as usize).min(row.len()) };
    if settings.temperature == 0.0 || k <= 1 || row.is_empty() {
        return (argmax, 1.0);
    }
    let mut sorted = row.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    let max = f64::from(row[argmax]);
    let weights: Vec<f64> = row
        .iter()
        .map(|&x| if x >= kth { ((f64::from(x) - max) / f64::from(settings.temperature)).exp() } else { 0.0 })
        .collect();
    let total: f64 = weights.iter().sum();
    let goal = f64::from(counter_uniform(settings.seed, row_index, settings.step)) * total;
    let (mut acc, mut margin) = (0.0, f64::INFINITY);
    let mut picked = None;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if *w > 0.0 {
            margin = margin.min((acc - goal).abs() / total);
        }
        if picked.is_none() && acc > goal {
            picked = Some(i);
        }
    }
    (picked.unwrap_or_else(|| weights.iter().rposition(|w| *w > 0.0).unwrap_or(argmax)), margin)
}

/// Attention of one new token over its cache: `q` `[B, H, 1, D]` over the first `len` positions
/// of `k`/`v` `[B, H, capacity, D]` → `[B, H, 1, D]`, i.e. `softmax(q·K[..len]ᵀ / √D)·V[..len]`
/// with no mask (the newest token sees everything before it).
///
/// The cache may be longer than `len` (a preallocated cache written in place): the kernel reads
/// only the `len` positions it needs, so nothing is copied to trim it.
///
/// Fused on a cubecl device when `len ≤ 2048` and `D ≤ 256`, [`decode_attention_reference`]
/// otherwise. Not differentiable on the fused path: it serves generation, which runs without
/// autodiff.
///
/// # Panics
/// If `len` is 0 or larger than the cache, or the shapes disagree.
pub fn decode_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, len: usize) -> Tensor<4> {
    decode_attention_padded(q, k, v, len, &[])
}

/// [`decode_attention`] for a batch of left-padded sequences: row `b` attends only to positions
/// `first[b]..len` (what comes before is its padding). `first` is empty (no padding) or has one
/// entry per batch row, each below `len`.
///
/// # Panics
/// As [`decode_attention`], and if `first` has the wrong length or an entry at or past `len`.
pub fn decode_attention_padded(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, len: usize, first: &[usize]) -> Tensor<4> {
    let [batch, _, capacity, dim] = k.dims();
    assert!(len >= 1 && len <= capacity, "decode attention over {len} positions of a cache of {capacity}");
    assert!(
        first.is_empty() || first.len() == batch,
        "decode attention: {} first positions for a batch of {batch}",
        first.len()
    );
    assert!(first.iter().all(|&f| f < len), "decode attention: a first position at or past {len}: {first:?}");
    let fused = runs_fused(&q.device())
        && q.dims()[2] == 1
        && len <= DECODE_ATTENTION_MAX_LEN
        && dim <= DECODE_ATTENTION_MAX_HEAD_DIM;
    if !fused {
        return decode_attention_reference(q, k, v, len, first);
    }
    let scale = 1.0 / (dim as f32).sqrt();
    Tensor::from_dispatch(<Dispatch as FusedBackend>::decode_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        len,
        scale,
        first.iter().map(|&f| f as u32).collect(),
    ))
}

/// The reference composition: the first `len` positions, scores by matmul, scale, each row's
/// padding (positions before `first[b]`, if given) masked by −1e9 as the model's prefill mask does,
/// softmax over the keys, matmul with V.
pub fn decode_attention_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, len: usize, first: &[usize]) -> Tensor<4> {
    let [batch, _, _, dim] = k.dims();
    let device = q.device();
    let (k, v) = if len == k.dims()[2] { (k, v) } else { (k.narrow(2, 0, len), v.narrow(2, 0, len)) };
    let mut scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dim as f32).sqrt());
    if first.iter().any(|&f| f > 0) {
        let mask: Vec<f32> =
            first.iter().flat_map(|&f| (0..len).map(move |j| if j < f { -1e9 } else { 0.0 })).collect();
        crate::work::note_upload();
        scores = scores + Tensor::<4>::from_data(TensorData::new(mask, [batch, 1, 1, len]), &device);
    }
    activation::softmax(scores, 3).matmul(v)
}

#[cfg(test)]
mod tests;

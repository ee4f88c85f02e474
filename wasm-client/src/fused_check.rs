//! The fused-kernel check the worker runs on the browser's WebGPU device: each fused kernel against
//! its reference composition of burn ops on the same device (and the sampler against the pure-Rust
//! draw), so the page can tell its user that the kernels training will use compute correctly on
//! their GPU — and the end-to-end tests can check them in Chromium.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tabswarm_kernels::fused::{
    SampleSettings, decode_attention, decode_attention_reference, sample_reference_host, sample_tokens,
    token_log_probs, token_log_probs_reference,
};
use tabswarm_kernels::testing::{max_abs_diff, random_values};

use tabswarm_model::ModelError;

/// Largest difference the float kernels may show against their reference.
pub const TOLERANCE: f32 = 1e-4;
/// A draw this close to a boundary (fraction of the total weight) may go either way.
const SAMPLING_MARGIN: f64 = 1e-4;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedCheck {
    /// Token log-prob forward, largest difference (short and long rows).
    pub logprob_error: f32,
    /// Its gradient, largest difference.
    pub gradient_error: f32,
    /// Decode attention, largest difference.
    pub attention_error: f32,
    /// Draws that differ from the pure-Rust draw away from a rounding boundary.
    pub sampling_mismatches: usize,
    pub sampled_rows: usize,
}

impl FusedCheck {
    pub fn passed(&self) -> bool {
        [self.logprob_error, self.gradient_error, self.attention_error].iter().all(|e| *e < TOLERANCE)
            && self.sampling_mismatches == 0
    }

    /// One sentence for the page.
    pub fn describe(&self) -> String {
        let errors = format!(
            "log-prob {:.1e}, its gradient {:.1e}, decode attention {:.1e}; {} of {} sampled tokens match the reference draw",
            self.logprob_error,
            self.gradient_error,
            self.attention_error,
            self.sampled_rows - self.sampling_mismatches,
            self.sampled_rows
        );
        if self.passed() {
            format!("Fused training kernels OK on this GPU (largest differences from the reference: {errors}).")
        } else {
            format!(
                "Fused training kernels DISAGREE with the reference on this GPU ({errors}); train on the CPU instead."
            )
        }
    }
}

fn floats<const D: usize>(values: Vec<f32>, dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, dims), device)
}

async fn read(tensor: Tensor<1>) -> Result<Vec<f32>, ModelError> {
    let data = tensor.into_data_async().await.map_err(|e| ModelError::Readback(format!("{e:?}")))?;
    Ok(data.iter::<f32>().collect())
}

/// Runs every fused kernel and its reference on `device` (seeded inputs of awkward sizes).
pub async fn run_fused_check(device: &Device, seed: u64) -> Result<FusedCheck, ModelError> {
    let mut logprob_error = 0.0f32;
    let mut gradient_error = 0.0f32;
    // Short rows (one thread per row) and long ones (one workgroup per row).
    for (i, (rows, vocab)) in [(37usize, 97usize), (5, 300)].into_iter().enumerate() {
        let seed = seed + 10 * i as u64;
        let logits: Vec<f32> = random_values(rows * vocab, seed).iter().map(|v| v * 4.0).collect();
        let targets: Vec<i64> = (0..rows).map(|r| ((r * 31 + 7) % vocab) as i64).collect();
        let targets = |device: &Device| Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [rows]), device);
        let fused = read(token_log_probs(floats(logits.clone(), [rows, vocab], device), targets(device))).await?;
        let reference =
            read(token_log_probs_reference(floats(logits.clone(), [rows, vocab], device), targets(device))).await?;
        logprob_error = logprob_error.max(max_abs_diff(&fused, &reference));

        let autodiff = device.clone().autodiff();
        let weights = random_values(rows, seed + 1);
        let mut grads = Vec::new();
        for use_fused in [true, false] {
            let x = floats(logits.clone(), [rows, vocab], &autodiff).require_grad();
            let t = targets(&autodiff);
            let lp = if use_fused { token_log_probs(x.clone(), t) } else { token_log_probs_reference(x.clone(), t) };
            let mut g = lp.mul(floats(weights.clone(), [rows], &autodiff)).sum().backward();
            let grad =
                x.grad_remove(&mut g).ok_or_else(|| ModelError::Readback("no gradient for the logits".into()))?;
            grads.push(read(grad.reshape([rows * vocab])).await?);
        }
        gradient_error = gradient_error.max(max_abs_diff(&grads[0], &grads[1]));
    }

    // A cache of capacity 48 holding 40 positions, as generation leaves it mid-sequence.
    let (b, h, capacity, len, dim) = (2, 3, 48, 40, 32);
    let q = random_values(b * h * dim, seed + 20);
    let k = random_values(b * h * capacity * dim, seed + 21);
    let v = random_values(b * h * capacity * dim, seed + 22);
    let attend = |fused: bool| {
        let (q, k, v) = (
            floats(q.clone(), [b, h, 1, dim], device),
            floats(k.clone(), [b, h, capacity, dim], device),
            floats(v.clone(), [b, h, capacity, dim], device),
        );
        let out = if fused { decode_attention(q, k, v, len) } else { decode_attention_reference(q, k, v, len, &[]) };
        out.reshape([b * h * dim])
    };
    let attention_error = max_abs_diff(&read(attend(true)).await?, &read(attend(false)).await?);

    let mut sampling_mismatches = 0;
    let mut sampled_rows = 0;
    // Short rows (thread per row: all kept, small top-k) and long ones (workgroup per row, radix select).
    for (step, rows, vocab, top_k) in [(0u32, 64usize, 97usize, 0u32), (1, 64, 97, 8), (2, 16, 300, 20)] {
        let logits: Vec<f32> =
            random_values(rows * vocab, seed + 30 + u64::from(step)).iter().map(|v| v * 4.0).collect();
        let settings = SampleSettings { temperature: 1.0, top_k, seed, step };
        sampled_rows += rows;
        let drawn = sample_tokens(floats(logits.clone(), [rows, vocab], device), settings);
        let drawn = drawn.into_data_async().await.map_err(|e| ModelError::Readback(format!("{e:?}")))?;
        let drawn: Vec<i64> = drawn.convert::<i64>().iter::<i64>().collect();
        for (r, (row, &token)) in logits.chunks(vocab).zip(&drawn).enumerate() {
            let (expected, margin) = sample_reference_host(row, settings, r as u32);
            if margin > SAMPLING_MARGIN && usize::try_from(token).ok() != Some(expected) {
                sampling_mismatches += 1;
            }
        }
    }
    Ok(FusedCheck { logprob_error, gradient_error, attention_error, sampling_mismatches, sampled_rows })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn the_check_passes_on_the_cpu_and_on_wgpu() {
        let mut devices = vec![Device::flex()];
        if std::env::var_os("TABSWARM_SKIP_GPU").is_none() {
            devices.push(Device::wgpu(Default::default()));
        }
        for device in devices {
            let report = pollster::block_on(run_fused_check(&device, 3)).expect("check runs");
            assert!(report.passed(), "{device:?}: {}", report.describe());
            assert_eq!(report.sampled_rows, 144);
            assert!(report.describe().starts_with("Fused training kernels OK on this GPU"), "{}", report.describe());
        }
    }

    #[test]
    fn a_failing_check_says_to_use_the_cpu() {
        let report = FusedCheck {
            logprob_error: 0.5,
            gradient_error: 0.0,
            attention_error: 0.0,
            sampling_mismatches: 3,
            sampled_rows: 128,
        };
        assert!(!report.passed());
        assert!(report.describe().contains("DISAGREE"), "{}", report.describe());
        assert!(report.describe().contains("125 of 128 sampled tokens"), "{}", report.describe());
    }
}

//! The fused kernels against their reference compositions, on wgpu (Vulkan lavapipe in CI; set
//! `TABSWARM_SKIP_GPU=1` to skip the GPU half on a machine without an adapter) and on the CPU.
//! Shapes are chosen to be awkward: one row, vocabularies that are not a multiple of the 256-wide
//! workgroup, rows longer than a workgroup many times over.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::*;
use crate::testing::{max_abs_diff, random_values};

fn gpu() -> Option<Device> {
    if std::env::var_os("TABSWARM_SKIP_GPU").is_some() {
        eprintln!("TABSWARM_SKIP_GPU is set: skipping the GPU half");
        return None;
    }
    Some(Device::wgpu(Default::default()))
}

/// Logits spread like a model's (about ±4), seeded.
fn logits(rows: usize, vocab: usize, seed: u64, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = random_values(rows * vocab, seed).iter().map(|v| v * 4.0).collect();
    Tensor::from_data(TensorData::new(values, [rows, vocab]), device)
}

fn targets(rows: usize, vocab: usize, seed: u64, device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = random_values(rows, seed).iter().map(|v| ((v + 1.0) / 2.0 * vocab as f32) as i64).collect();
    let ids: Vec<i64> = ids.into_iter().map(|t| t.clamp(0, vocab as i64 - 1)).collect();
    Tensor::from_data(TensorData::new(ids, [rows]), device)
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().expect("f32 data")
}

fn ints(t: Tensor<1, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().try_to_vec().expect("int data")
}

// Both sides of `SHORT_ROW` (256): the row-per-thread and the row-per-workgroup kernels.
const SHAPES: &[(usize, usize)] = &[(1, 1), (1, 97), (70, 256), (5, 257), (33, 1000), (3, 4099), (300, 97)];

#[test]
fn runs_fused_only_on_cube_devices() {
    assert!(!runs_fused(&Device::flex()));
    assert!(!runs_fused(&Device::flex().autodiff()));
    if let Some(device) = gpu() {
        assert!(runs_fused(&device));
        assert!(runs_fused(&device.autodiff()));
    }
}

#[test]
fn token_logprob_forward_matches_the_reference() {
    let Some(device) = gpu() else { return };
    for (i, &(rows, vocab)) in SHAPES.iter().enumerate() {
        let seed = 100 + i as u64;
        let fused = floats(token_log_probs(logits(rows, vocab, seed, &device), targets(rows, vocab, seed, &device)));
        // The same composition on the same adapter, and on the CPU.
        let same_adapter =
            floats(token_log_probs_reference(logits(rows, vocab, seed, &device), targets(rows, vocab, seed, &device)));
        let cpu = Device::flex();
        let on_cpu = floats(token_log_probs(logits(rows, vocab, seed, &cpu), targets(rows, vocab, seed, &cpu)));
        assert_eq!(fused.len(), rows);
        assert!(fused.iter().all(|v| v.is_finite() && *v <= 0.0), "{rows}×{vocab}: {fused:?}");
        let tol = 1e-4 * (vocab as f32).ln().max(1.0);
        assert!(max_abs_diff(&fused, &same_adapter) < tol, "{rows}×{vocab}: {fused:?} vs {same_adapter:?}");
        assert!(max_abs_diff(&fused, &on_cpu) < tol, "{rows}×{vocab} vs CPU");
    }
}

#[test]
fn token_logprob_gradient_matches_the_reference() {
    let Some(device) = gpu() else { return };
    let device = device.autodiff();
    for (i, &(rows, vocab)) in SHAPES.iter().enumerate() {
        let seed = 200 + i as u64;
        // A weighted sum, like the policy-gradient loss, so each row's upstream gradient differs.
        let weights: Vec<f32> = random_values(rows, seed + 7);
        let grad_of = |fused: bool| {
            let x = logits(rows, vocab, seed, &device).require_grad();
            let t = targets(rows, vocab, seed, &device);
            let w = Tensor::<1>::from_data(TensorData::new(weights.clone(), [rows]), &device);
            let lp = if fused { token_log_probs(x.clone(), t) } else { token_log_probs_reference(x.clone(), t) };
            let mut grads = lp.mul(w).sum().backward();
            floats(x.grad_remove(&mut grads).expect("logits gradient"))
        };
        let (fused, reference) = (grad_of(true), grad_of(false));
        assert_eq!(fused.len(), rows * vocab);
        assert!(max_abs_diff(&fused, &reference) < 1e-5, "{rows}×{vocab}: {}", max_abs_diff(&fused, &reference));
        // Each row's gradient sums to zero (onehot minus a distribution).
        for row in fused.chunks(vocab) {
            assert!(row.iter().sum::<f32>().abs() < 1e-4);
        }
    }
}

#[test]
fn a_target_outside_the_vocabulary_gives_nan_not_a_number_that_looks_right() {
    let Some(device) = gpu() else { return };
    let t = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 97, -1], [3]), &device);
    let out = floats(token_log_probs(logits(3, 97, 1, &device), t));
    assert!(out[0].is_finite());
    assert!(out[1].is_nan() && out[2].is_nan(), "{out:?}");
}

fn check_draws(device: &Device, rows: usize, vocab: usize, settings: SampleSettings, seed: u64) {
    let values = floats(logits(rows, vocab, seed, device));
    let drawn = ints(sample_tokens(logits(rows, vocab, seed, device), settings));
    let reference = ints(sample_tokens_reference(logits(rows, vocab, seed, device), settings));
    assert_eq!(drawn.len(), rows);
    for (r, (row, (&got, &want))) in values.chunks(vocab).zip(drawn.iter().zip(&reference)).enumerate() {
        let (host, margin) = sample_reference_host(row, settings, r as u32);
        // Only a draw within float rounding of a boundary may differ between the three: an f32
        // running sum over thousands of weights drifts by ~1e-5 of the total.
        if margin > 1e-4 {
            assert_eq!(got as usize, host, "{rows}×{vocab} {settings:?} row {r}: kernel");
            assert_eq!(want as usize, host, "{rows}×{vocab} {settings:?} row {r}: reference");
        }
        assert!((got as usize) < vocab);
    }
}

// top-k 5 and 16 take the small-k path of `sample_rows.wgsl`, 17 and up its radix select.
const SAMPLINGS: &[(f32, u32)] =
    &[(1.0, 0), (0.7, 5), (1.0, 16), (0.9, 17), (1.3, 40), (0.0, 0), (1.0, 1), (2.0, 300), (0.5, 5000)];

#[test]
fn sampling_kernel_matches_the_reference_and_the_host_draw() {
    let Some(device) = gpu() else { return };
    for (i, &(rows, vocab)) in SHAPES.iter().enumerate() {
        for (j, &(temperature, top_k)) in SAMPLINGS.iter().enumerate() {
            let settings = SampleSettings { temperature, top_k, seed: 9 + i as u64, step: j as u32 };
            check_draws(&device, rows, vocab, settings, 300 + i as u64);
        }
    }
}

#[test]
fn sampling_reference_matches_the_host_draw_on_the_cpu() {
    let device = Device::flex();
    for (i, &(rows, vocab)) in SHAPES.iter().enumerate() {
        for (j, &(temperature, top_k)) in SAMPLINGS.iter().enumerate() {
            let settings = SampleSettings { temperature, top_k, seed: 9 + i as u64, step: j as u32 };
            check_draws(&device, rows, vocab, settings, 300 + i as u64);
        }
    }
}

#[test]
fn draws_follow_the_top_k_distribution() {
    // 4000 rows of the same logits: each row is an independent draw. Only the top 3 of
    // [2, 1, 0, -1, 3] may appear, with frequencies ∝ exp(logit).
    let rows = 4000;
    let row = [2.0f32, 1.0, 0.0, -1.0, 3.0];
    let settings = SampleSettings { temperature: 1.0, top_k: 3, seed: 5, step: 0 };
    let check = |device: &Device| {
        let data: Vec<f32> = row.iter().copied().cycle().take(rows * row.len()).collect();
        let t = Tensor::<2>::from_data(TensorData::new(data, [rows, row.len()]), device);
        let mut counts = [0usize; 5];
        for id in ints(sample_tokens(t, settings)) {
            counts[id as usize] += 1;
        }
        assert_eq!((counts[2], counts[3]), (0, 0), "outside the top 3: {counts:?}");
        let z: f32 = [3.0f32, 2.0, 1.0].iter().map(|v| v.exp()).sum();
        for (index, logit) in [(4, 3.0f32), (0, 2.0), (1, 1.0)] {
            let expected = logit.exp() / z * rows as f32;
            let sd = (expected * (1.0 - expected / rows as f32)).sqrt();
            let got = counts[index] as f32;
            assert!((got - expected).abs() < 4.0 * sd, "token {index}: {got} draws, expected {expected:.0}");
        }
    };
    check(&Device::flex());
    if let Some(device) = gpu() {
        check(&device);
    }
}

#[test]
fn draws_are_reproducible_from_seed_and_step() {
    let Some(device) = gpu() else { return };
    let draw = |seed, step| {
        ints(sample_tokens(logits(64, 97, 3, &device), SampleSettings { temperature: 1.0, top_k: 0, seed, step }))
    };
    assert_eq!(draw(1, 0), draw(1, 0));
    assert_ne!(draw(1, 0), draw(2, 0));
    assert_ne!(draw(1, 0), draw(1, 1));
}

#[test]
fn greedy_takes_the_lowest_index_among_ties() {
    let settings = SampleSettings { temperature: 0.0, top_k: 0, seed: 0, step: 0 };
    let mut devices = vec![Device::flex()];
    devices.extend(gpu());
    for device in devices {
        let t =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 5.0, 5.0, 2.0, 7.0, 0.0, 7.0, 7.0], [2, 4]), &device);
        assert_eq!(ints(sample_tokens(t, settings)), vec![1, 0], "{device:?}");
    }
}

fn random4(dims: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    let values = random_values(dims.iter().product(), seed);
    Tensor::from_data(TensorData::new(values, dims), device)
}

#[test]
fn decode_attention_matches_the_reference() {
    let Some(device) = gpu() else { return };
    // (batch, heads, cache length, head dim): one head, lengths not a multiple of the 64-wide
    // workgroup, a head dim above 64, the longest cache the kernel fuses.
    for (i, &(b, h, len, dim)) in
        [(1, 1, 1, 1), (8, 6, 17, 32), (2, 3, 130, 96), (1, 2, 2048, 32), (3, 1, 65, 256)].iter().enumerate()
    {
        let seed = 500 + 3 * i as u64;
        let (q, k, v) = (
            random4([b, h, 1, dim], seed, &device),
            random4([b, h, len, dim], seed + 1, &device),
            random4([b, h, len, dim], seed + 2, &device),
        );
        let fused = floats(decode_attention(q.clone(), k.clone(), v.clone(), len));
        let reference = floats(decode_attention_reference(q, k, v, len, &[]));
        assert_eq!(fused.len(), b * h * dim);
        assert!(max_abs_diff(&fused, &reference) < 1e-4, "{b}×{h}×{len}×{dim}: {}", max_abs_diff(&fused, &reference));
    }
}

#[test]
fn decode_attention_reads_only_the_filled_part_of_a_longer_cache() {
    // A preallocated cache of capacity 50 holding 1, 17 or 50 positions; the unused tail is filled
    // with huge values that would dominate the softmax if the kernel read them.
    let mut devices = vec![Device::flex()];
    devices.extend(gpu());
    for device in devices {
        let (b, h, capacity, dim) = (2, 3, 50, 24);
        for (i, len) in [1usize, 17, 50].into_iter().enumerate() {
            let seed = 700 + 5 * i as u64;
            let q = random4([b, h, 1, dim], seed, &device);
            let filled = |s: u64| {
                let tail = Tensor::<4>::full([b, h, capacity - len, dim], 1e4, &device);
                let head = random4([b, h, len, dim], s, &device);
                if len == capacity { head.clone() } else { Tensor::cat(vec![head.clone(), tail], 2) }
            };
            let (k, v) = (filled(seed + 1), filled(seed + 2));
            let out = floats(decode_attention(q.clone(), k.clone(), v.clone(), len));
            // Against the reference on exactly the filled positions, as separate tensors.
            let expected = floats(decode_attention_reference(q, k.narrow(2, 0, len), v.narrow(2, 0, len), len, &[]));
            let err = max_abs_diff(&out, &expected);
            assert!(err < 1e-4, "{device:?} len {len} of {capacity}: {err}");
        }
    }
}

/// Left-padded sequences: each row attends from its own first position; its padding, filled with
/// huge values that would dominate the softmax, is skipped. Checked per row against the unpadded
/// reference over exactly that row's positions, on the CPU (the masked composition) and the GPU
/// (the kernel), with a longer cache than is filled.
#[test]
fn decode_attention_skips_each_row_s_left_padding() {
    let devices: Vec<Device> = std::iter::once(Device::flex()).chain(gpu()).collect();
    for device in devices {
        let (b, h, capacity, dim, len) = (4, 3, 40, 24, 29);
        let first = [0usize, 5, 28, 13];
        let q = random4([b, h, 1, dim], 900, &device);
        let padded = |seed: u64| {
            let values = random_values(b * h * capacity * dim, seed);
            let values: Vec<f32> = values
                .iter()
                .enumerate()
                .map(|(i, &x)| if (i / dim) % capacity < first[i / (h * capacity * dim)] { 1e4 } else { x })
                .collect();
            Tensor::<4>::from_data(TensorData::new(values, [b, h, capacity, dim]), &device)
        };
        let (k, v) = (padded(901), padded(902));
        let out = floats(decode_attention_padded(q.clone(), k.clone(), v.clone(), len, &first));
        for (row, &f) in first.iter().enumerate() {
            let pick = |t: &Tensor<4>| t.clone().narrow(0, row, 1).narrow(2, f, len - f);
            let expected =
                floats(decode_attention_reference(q.clone().narrow(0, row, 1), pick(&k), pick(&v), len - f, &[]));
            let got = &out[row * h * dim..(row + 1) * h * dim];
            let err = max_abs_diff(got, &expected);
            assert!(err < 1e-4, "{device:?} row {row} from {f}: {err}");
        }
        // No padding given: the same as the unpadded call.
        let plain = floats(decode_attention(q.clone(), k.clone(), v.clone(), len));
        assert_eq!(plain, floats(decode_attention_padded(q, k, v, len, &[0; 4])));
    }
}

#[test]
#[should_panic(expected = "decode attention: 3 first positions for a batch of 4")]
fn decode_attention_refuses_padding_for_the_wrong_batch() {
    let device = Device::flex();
    let (q, k) = (random4([4, 1, 1, 4], 1, &device), random4([4, 1, 10, 4], 2, &device));
    let _ = decode_attention_padded(q, k.clone(), k, 10, &[0, 1, 2]);
}

#[test]
#[should_panic(expected = "decode attention over 51 positions of a cache of 50")]
fn decode_attention_refuses_more_positions_than_the_cache_holds() {
    let device = Device::flex();
    let (q, k) = (random4([1, 1, 1, 4], 1, &device), random4([1, 1, 50, 4], 2, &device));
    let _ = decode_attention(q, k.clone(), k, 51);
}

#[test]
fn decode_attention_falls_back_beyond_what_it_fuses() {
    // A cache longer than the kernel's workgroup array takes the reference path (same answer).
    let device = Device::flex();
    let (q, k, v) =
        (random4([1, 1, 1, 8], 1, &device), random4([1, 1, 3000, 8], 2, &device), random4([1, 1, 3000, 8], 3, &device));
    let out = floats(decode_attention(q.clone(), k.clone(), v.clone(), 3000));
    assert!(max_abs_diff(&out, &floats(decode_attention_reference(q, k, v, 3000, &[]))) == 0.0);
    if let Some(gpu) = gpu() {
        let (q, k, v) =
            (random4([1, 1, 1, 8], 1, &gpu), random4([1, 1, 3000, 8], 2, &gpu), random4([1, 1, 3000, 8], 3, &gpu));
        assert_eq!(floats(decode_attention(q.clone(), k.clone(), v.clone(), 3000)).len(), 8);
    }
}

#[test]
fn ties_at_the_kth_logit_are_all_kept() {
    // 4 × 5.0, 18 × 2.0, 18 × 1.0 (interleaved). k = 2 keeps all four 5s; k = 20 keeps the 5s and all
    // eighteen 2s (the small-k and the radix-select paths). Every kept index must be drawn, no other.
    let row: Vec<f32> = (0..40)
        .map(|i| {
            if i % 13 == 0 {
                5.0
            } else if i % 2 == 0 {
                2.0
            } else {
                1.0
            }
        })
        .collect();
    let fives = row.iter().filter(|&&x| x == 5.0).count();
    let twos = row.iter().filter(|&&x| x == 2.0).count();
    assert_eq!((fives, twos), (4, 18));
    let mut devices = vec![Device::flex()];
    devices.extend(gpu());
    for device in devices {
        for (top_k, allowed) in [(2u32, 5.0f32), (20, 2.0)] {
            let rows = 3000;
            let data: Vec<f32> = row.iter().copied().cycle().take(rows * row.len()).collect();
            let t = Tensor::<2>::from_data(TensorData::new(data, [rows, row.len()]), &device);
            // A high temperature spreads the draws over everything that is kept.
            let drawn = ints(sample_tokens(t, SampleSettings { temperature: 50.0, top_k, seed: 3, step: 1 }));
            let mut seen = vec![false; row.len()];
            for id in drawn {
                assert!(row[id as usize] >= allowed, "{device:?} k={top_k}: drew index {id} ({})", row[id as usize]);
                seen[id as usize] = true;
            }
            let kept = row.iter().filter(|&&x| x >= allowed).count();
            assert_eq!(seen.iter().filter(|&&s| s).count(), kept, "{device:?} k={top_k}: every kept index is drawn");
        }
    }
}

/// burn's clipped AdamW written out as a host loop over `f32`, in its order of operations: the
/// plain-Rust twin of `adamw.wgsl`.
fn adamw_host(param: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], step: &AdamWStep) {
    let scale = if step.max_norm > 0.0 {
        let norm = grad.iter().map(|g| g * g).sum::<f32>().sqrt();
        (step.max_norm / (norm + f32::MIN_POSITIVE)).min(1.0)
    } else {
        1.0
    };
    for i in 0..param.len() {
        let g = grad[i] * scale;
        m[i] = m[i] * step.beta_1 + g * (1.0 - step.beta_1);
        v[i] = v[i] * step.beta_2 + g * g * (1.0 - step.beta_2);
        param[i] = param[i] * step.decay
            - (m[i] / step.correction_1) / ((v[i] / step.correction_2).sqrt() + step.epsilon) * step.lr;
    }
}

/// Three clipped AdamW steps on parameters of awkward lengths (one value, either side of the
/// 256-wide workgroup, many times wider), clipping off, acting and not acting: the kernel against
/// the reference composition (on the same adapter and on the CPU) and against the host loop.
#[test]
fn adamw_kernel_matches_the_reference_and_a_host_loop() {
    let devices: Vec<Device> = std::iter::once(Device::flex()).chain(gpu()).collect();
    for (i, &n) in [1usize, 7, 255, 256, 257, 1000, 70_001].iter().enumerate() {
        // Gradients here have a norm of about sqrt(n / 3): 0.5 clips them (unless n = 1 draws
        // small), 1e6 never does, 0 turns clipping off.
        for max_norm in [0.0, 0.5, 1e6] {
            let seed = 300 + 10 * i as u64;
            let start = random_values(n, seed);
            let grads: Vec<Vec<f32>> = (1..=3).map(|t| random_values(n, seed + t)).collect();
            let mut host = (start.clone(), vec![0.0; n], vec![0.0; n]);
            let steps: Vec<AdamWStep> =
                (1..=3).map(|t| AdamWStep::new(1e-2, 0.01, 0.9, 0.999, 1e-5, max_norm, t)).collect();
            for (grad, step) in grads.iter().zip(&steps) {
                adamw_host(&mut host.0, &mut host.1, &mut host.2, grad, step);
            }
            for device in &devices {
                let tensor = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [n]), device);
                let (mut fused, mut reference) =
                    ((tensor(&start), tensor(&host.1).zeros_like(), tensor(&host.2).zeros_like()), None);
                for (grad, step) in grads.iter().zip(&steps) {
                    let (p, m, v) = reference.take().unwrap_or_else(|| fused.clone());
                    reference = Some(adamw_step_reference(p, tensor(grad), m, v, step));
                    fused = adamw_step(fused.0, tensor(grad), fused.1, fused.2, step);
                }
                let reference = reference.expect("three steps");
                let what = format!("n = {n}, max_norm = {max_norm}, {device:?}");
                for (name, fused, reference, host) in [
                    ("parameter", fused.0, reference.0, &host.0),
                    ("first moment", fused.1, reference.1, &host.1),
                    ("second moment", fused.2, reference.2, &host.2),
                ] {
                    let (fused, reference) = (floats(fused), floats(reference));
                    assert!(max_abs_diff(&fused, &reference) < 1e-5, "{name}, {what}: kernel vs reference");
                    assert!(max_abs_diff(&fused, host) < 1e-5, "{name}, {what}: kernel vs host loop");
                }
            }
        }
    }
}

/// Layer normalisation written out over `f64` on the host: the plain-Rust twin of
/// `layer_norm.wgsl`. Returns `y` and each row's `(mean, 1 / sqrt(var + epsilon))`.
fn layer_norm_host(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64) -> (Vec<f32>, Vec<(f64, f64)>) {
    let width = gamma.len();
    let mut y = Vec::with_capacity(x.len());
    let mut stats = Vec::new();
    for row in x.chunks(width) {
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / width as f64;
        let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / width as f64;
        let rstd = 1.0 / (var + epsilon).sqrt();
        y.extend(
            row.iter()
                .zip(gamma.iter().zip(beta))
                .map(|(&v, (&g, &b))| ((f64::from(v) - mean) * rstd * f64::from(g) + f64::from(b)) as f32),
        );
        stats.push((mean, rstd));
    }
    (y, stats)
}

/// The gradients of `Σ dy · layer_norm(x)` for the input, the scale and the shift, on the host in
/// `f64`: the twin of `layer_norm_backward.wgsl`.
fn layer_norm_backward_host(x: &[f32], gamma: &[f32], dy: &[f32], epsilon: f64) -> [Vec<f32>; 3] {
    let width = gamma.len();
    let (_, stats) = layer_norm_host(x, gamma, &vec![0.0; width], epsilon);
    let (mut dx, mut dgamma, mut dbeta) = (Vec::with_capacity(x.len()), vec![0.0f64; width], vec![0.0f64; width]);
    for ((row, dy), &(mean, rstd)) in x.chunks(width).zip(dy.chunks(width)).zip(&stats) {
        let xhat: Vec<f64> = row.iter().map(|&v| (f64::from(v) - mean) * rstd).collect();
        let g: Vec<f64> = dy.iter().zip(gamma).map(|(&d, &g)| f64::from(d) * f64::from(g)).collect();
        let mean_g = g.iter().sum::<f64>() / width as f64;
        let mean_gx = g.iter().zip(&xhat).map(|(g, x)| g * x).sum::<f64>() / width as f64;
        dx.extend(g.iter().zip(&xhat).map(|(g, x)| (rstd * (g - mean_g - x * mean_gx)) as f32));
        for j in 0..width {
            dgamma[j] += f64::from(dy[j]) * xhat[j];
            dbeta[j] += f64::from(dy[j]);
        }
    }
    [dx, dgamma.into_iter().map(|v| v as f32).collect(), dbeta.into_iter().map(|v| v as f32).collect()]
}

/// Awkward layer-norm inputs: one value, rows narrower and wider than a row-per-thread kernel's
/// workgroup, the model's widths (64, 192), a row count just past a workgroup, and a 3-D input.
const NORM_SHAPES: &[&[usize]] = &[&[1, 1], &[1, 3], &[7, 64], &[65, 97], &[130, 192], &[3, 300], &[2, 33, 64]];

/// The input (spread over about ±3 around an offset, as activations are), the scale and the shift.
fn norm_inputs(shape: &[usize], seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let width = shape[shape.len() - 1];
    let x = random_values(shape.iter().product(), seed).iter().map(|v| 3.0 * v + 0.5).collect();
    let gamma = random_values(width, seed + 1).iter().map(|v| 1.0 + 0.5 * v).collect();
    (x, gamma, random_values(width, seed + 2))
}

fn tensor_of<const D: usize>(values: &[f32], shape: &[usize], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape.to_vec()), device)
}

fn norm_of(x: &[f32], gamma: &[f32], beta: &[f32], shape: &[usize], device: &Device, fused: bool) -> Vec<f32> {
    let width = gamma.len();
    let (g, b) = (tensor_of::<1>(gamma, &[width], device), tensor_of::<1>(beta, &[width], device));
    let eps = 1e-5;
    match shape.len() {
        2 if fused => floats(layer_norm(tensor_of::<2>(x, shape, device), g, b, eps)),
        2 => floats(layer_norm_reference(tensor_of::<2>(x, shape, device), g, b, eps)),
        3 if fused => floats(layer_norm(tensor_of::<3>(x, shape, device), g, b, eps)),
        3 => floats(layer_norm_reference(tensor_of::<3>(x, shape, device), g, b, eps)),
        n => panic!("no {n}-D case in this test"),
    }
}

#[test]
fn layer_norm_matches_the_reference_and_a_host_loop() {
    let devices: Vec<Device> = std::iter::once(Device::flex()).chain(gpu()).collect();
    for (i, shape) in NORM_SHAPES.iter().enumerate() {
        let (x, gamma, beta) = norm_inputs(shape, 400 + 10 * i as u64);
        let (host, _) = layer_norm_host(&x, &gamma, &beta, 1e-5);
        for device in &devices {
            let fused = norm_of(&x, &gamma, &beta, shape, device, true);
            let reference = norm_of(&x, &gamma, &beta, shape, device, false);
            assert_eq!(fused.len(), x.len());
            assert!(max_abs_diff(&fused, &host) < 1e-4, "{shape:?} {device:?}: {}", max_abs_diff(&fused, &host));
            assert!(max_abs_diff(&fused, &reference) < 1e-4, "{shape:?} {device:?}: kernel vs composition");
        }
    }
    // A row of one value normalises to its shift: nothing is left after the mean.
    let (x, gamma, beta) = norm_inputs(&[1, 1], 400);
    assert_eq!(layer_norm_host(&x, &gamma, &beta, 1e-5).0, beta);
}

#[test]
fn layer_norm_gradients_match_the_reference_and_a_host_loop() {
    let devices: Vec<Device> = std::iter::once(Device::flex()).chain(gpu()).map(|d| d.autodiff()).collect();
    for (i, shape) in NORM_SHAPES.iter().enumerate() {
        let seed = 500 + 10 * i as u64;
        let (x, gamma, beta) = norm_inputs(shape, seed);
        let width = gamma.len();
        // A different upstream gradient for every output value.
        let dy = random_values(x.len(), seed + 3);
        let host = layer_norm_backward_host(&x, &gamma, &dy, 1e-5);
        let rows = x.len() / width;
        for device in &devices {
            let grads_of = |fused: bool| {
                let flat = [rows, width];
                let tx = tensor_of::<2>(&x, &flat, device).require_grad();
                let tg = tensor_of::<1>(&gamma, &[width], device).require_grad();
                let tb = tensor_of::<1>(&beta, &[width], device).require_grad();
                let y = if fused {
                    layer_norm(tx.clone(), tg.clone(), tb.clone(), 1e-5)
                } else {
                    layer_norm_reference(tx.clone(), tg.clone(), tb.clone(), 1e-5)
                };
                let mut grads = y.mul(tensor_of::<2>(&dy, &flat, device)).sum().backward();
                [
                    floats(tx.grad_remove(&mut grads).expect("input gradient")),
                    floats(tg.grad_remove(&mut grads).expect("scale gradient")),
                    floats(tb.grad_remove(&mut grads).expect("shift gradient")),
                ]
            };
            let (fused, reference) = (grads_of(true), grads_of(false));
            for (k, name) in ["input", "scale", "shift"].iter().enumerate() {
                // The scale's and shift's gradients sum over every row: allow for f32 sums that long.
                let tol = if k == 0 { 2e-4 } else { 1e-5 * rows.max(10) as f32 };
                let what = format!("{name} gradient, {shape:?}, {device:?}");
                assert!(max_abs_diff(&fused[k], &host[k]) < tol, "{what}: {}", max_abs_diff(&fused[k], &host[k]));
                assert!(max_abs_diff(&fused[k], &reference[k]) < tol, "{what}: kernel vs composition");
            }
        }
    }
}

#[test]
fn layer_norm_gradient_flows_to_the_input_alone_when_the_scale_is_a_constant() {
    let Some(device) = gpu() else { return };
    let device = device.autodiff();
    let shape = [9, 64];
    let (x, gamma, beta) = norm_inputs(&shape, 600);
    let dy = random_values(x.len(), 601);
    let tx = tensor_of::<2>(&x, &shape, &device).require_grad();
    let y = layer_norm(tx.clone(), tensor_of::<1>(&gamma, &[64], &device), tensor_of::<1>(&beta, &[64], &device), 1e-5);
    let mut grads = y.mul(tensor_of::<2>(&dy, &shape, &device)).sum().backward();
    let dx = floats(tx.grad_remove(&mut grads).expect("input gradient"));
    let [host, _, _] = layer_norm_backward_host(&x, &gamma, &dy, 1e-5);
    assert!(max_abs_diff(&dx, &host) < 2e-4);
}

#[test]
#[should_panic(expected = "the scale must be [64]")]
fn layer_norm_refuses_a_scale_of_the_wrong_width() {
    let device = Device::flex();
    let x = Tensor::<2>::zeros([3, 64], &device);
    let _ = layer_norm(x, Tensor::ones([63], &device), Tensor::zeros([64], &device), 1e-5);
}

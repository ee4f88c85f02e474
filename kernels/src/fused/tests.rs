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
        let reference = floats(decode_attention_reference(q, k, v, len));
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
            let expected = floats(decode_attention_reference(q, k.narrow(2, 0, len), v.narrow(2, 0, len), len));
            let err = max_abs_diff(&out, &expected);
            assert!(err < 1e-4, "{device:?} len {len} of {capacity}: {err}");
        }
    }
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
    assert!(max_abs_diff(&out, &floats(decode_attention_reference(q, k, v, 3000))) == 0.0);
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

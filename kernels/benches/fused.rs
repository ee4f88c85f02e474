//! Fused kernels against their reference compositions on the same burn device.
//!
//! `WGPU_BACKEND=vulkan cargo bench -p tabswarm-kernels --bench fused` prints a Markdown table for
//! docs/benchmarks.md; the ratio (reference time / fused time) is the figure. Each timing includes
//! reading the (small) result back, which is what waits for the device.

use std::time::{Duration, Instant};

use burn::tensor::Distribution;
use burn::tensor::{Device, Int, Tensor, TensorData};
use tabswarm_kernels::fused::{
    SampleSettings, decode_attention, decode_attention_reference, sample_tokens, sample_tokens_reference,
    token_log_probs, token_log_probs_reference,
};
use tabswarm_kernels::testing::random_values;

fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm-up: pipeline compilation (lavapipe compiles a pipeline on first dispatch), first allocation.
    f();
    f();
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 3 || start.elapsed() < budget {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

fn inputs(rows: usize, vocab: usize, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let logits: Vec<f32> = random_values(rows * vocab, 1).iter().map(|v| v * 4.0).collect();
    let targets: Vec<i64> = (0..rows).map(|r| ((r * 7919) % vocab) as i64).collect();
    (
        Tensor::from_data(TensorData::new(logits, [rows, vocab]), device),
        Tensor::from_data(TensorData::new(targets, [rows]), device),
    )
}

fn main() {
    let device = Device::wgpu(Default::default());
    let budget = Duration::from_millis(1500);
    println!("Device: {device:?}\n");
    println!("| operation | rows × vocab | fused ms | reference ms | reference / fused |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, rows: usize, vocab: usize, fused: f64, reference: f64| {
        println!(
            "| {name} | {rows} × {vocab} | {:.2} | {:.2} | {:.1}× |",
            fused * 1e3,
            reference * 1e3,
            reference / fused
        );
    };

    let only_attention = std::env::var_os("TABSWARM_BENCH_CACHE_LENS").is_some();
    // Training shapes: batch 16 × ~23 positions of the default model (vocab 97), and a batch of
    // 32 × 48 positions; a 4099-wide vocabulary for a larger tokenizer.
    for (rows, vocab) in [(368, 97), (1536, 97), (1536, 4099)].into_iter().filter(|_| !only_attention) {
        let (logits, targets) = inputs(rows, vocab, &device);
        let forward = |fused: bool| {
            time_per_call(budget, || {
                let (l, t) = (logits.clone(), targets.clone());
                let out = if fused { token_log_probs(l, t) } else { token_log_probs_reference(l, t) };
                out.into_data();
            })
        };
        row("token log-prob, forward", rows, vocab, forward(true), forward(false));

        let ad = device.clone().autodiff();
        let (logits_ad, targets_ad) = inputs(rows, vocab, &ad);
        let backward = |fused: bool| {
            time_per_call(budget, || {
                let x = logits_ad.clone().require_grad();
                let t = targets_ad.clone();
                let out = if fused { token_log_probs(x.clone(), t) } else { token_log_probs_reference(x.clone(), t) };
                let mut grads = out.sum().backward();
                x.grad_remove(&mut grads).expect("gradient").sum().into_data();
            })
        };
        row("token log-prob, forward + backward", rows, vocab, backward(true), backward(false));
    }

    // Generation shapes: one draw for a batch of rows.
    for (rows, vocab, top_k) in [(8, 97, 0), (64, 97, 8), (64, 4099, 40)].into_iter().filter(|_| !only_attention) {
        let (logits, _) = inputs(rows, vocab, &device);
        let settings = SampleSettings { temperature: 1.0, top_k, seed: 1, step: 0 };
        let draw = |fused: bool| {
            time_per_call(budget, || {
                let l = logits.clone();
                let out = if fused { sample_tokens(l, settings) } else { sample_tokens_reference(l, settings) };
                out.into_data();
            })
        };
        row(&format!("sampling, top-k {top_k}"), rows, vocab, draw(true), draw(false));
    }

    // Decode attention at the default model's shapes: batch 8, 6 heads of 32, one new token.
    let lens: Vec<usize> = std::env::var("TABSWARM_BENCH_CACHE_LENS")
        .ok()
        .and_then(|v| v.split(',').map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![16, 64, 128, 256]);
    // The first launch of a kernel in the process pays lavapipe's shader compile (~0.6 s here).
    let warm = Tensor::<4>::random([1, 1, 64, 32], Distribution::Default, &device);
    decode_attention(Tensor::random([1, 1, 1, 32], Distribution::Default, &device), warm.clone(), warm, 64).into_data();
    for len in lens {
        let q = Tensor::<4>::random([8, 6, 1, 32], Distribution::Default, &device);
        let k = Tensor::<4>::random([8, 6, len, 32], Distribution::Default, &device);
        let v = Tensor::<4>::random([8, 6, len, 32], Distribution::Default, &device);
        let attend = |fused: bool| {
            time_per_call(budget, || {
                let (q, k, v) = (q.clone(), k.clone(), v.clone());
                let out =
                    if fused { decode_attention(q, k, v, len) } else { decode_attention_reference(q, k, v, len, &[]) };
                out.into_data();
            })
        };
        let (fused, reference) = (attend(true), attend(false));
        println!(
            "| decode attention, 8×6 heads of 32 | cache {len} | {:.2} | {:.2} | {:.1}× |",
            fused * 1e3,
            reference * 1e3,
            reference / fused
        );
    }
}

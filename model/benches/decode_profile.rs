//! Where one decode step's time goes: the operations of one transformer block of the default model
//! (d_model 192, 6 heads, d_ff 768) at generation shapes (batch 8, one new token, a KV cache of
//! `prefix` positions), timed group by group on wgpu with plain burn ops, as the model runs them.
//!
//! `WGPU_BACKEND=vulkan cargo bench -p tabswarm-model --bench decode_profile` prints a Markdown table.
//! This is the profile that chose the third fused kernel (see docs/benchmarks.md).

use std::time::{Duration, Instant};

use burn::nn::{LayerNormConfig, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor, activation};

const BATCH: usize = 8;
const D_MODEL: usize = 192;
const HEADS: usize = 6;
const D_FF: usize = 768;

fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 5 || start.elapsed() < budget {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

fn main() {
    let device = Device::wgpu(Default::default());
    let budget = Duration::from_millis(1200);
    let head_dim = D_MODEL / HEADS;
    let norm = LayerNormConfig::new(D_MODEL).init(&device);
    let qkv = LinearConfig::new(D_MODEL, 3 * D_MODEL).init(&device);
    let out = LinearConfig::new(D_MODEL, D_MODEL).init(&device);
    let mlp_in = LinearConfig::new(D_MODEL, D_FF).init(&device);
    let mlp_out = LinearConfig::new(D_FF, D_MODEL).init(&device);
    let x = Tensor::<3>::random([BATCH, 1, D_MODEL], Distribution::Default, &device);
    // Reading one value back waits for the queued work without copying much.
    let sync = |t: Tensor<3>| {
        t.slice([0..1, 0..1, 0..1]).into_data();
    };

    println!("Device: {device:?}; batch {BATCH}, d_model {D_MODEL}, {HEADS} heads, d_ff {D_FF}, one new token\n");
    println!(
        "| prefix | layernorm ms | qkv projection ms | attention over the cache ms | out projection ms | MLP ms | attention share |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for prefix in [16usize, 64, 128, 256] {
        let k_cache = Tensor::<4>::random([BATCH, HEADS, prefix, head_dim], Distribution::Default, &device);
        let v_cache = Tensor::<4>::random([BATCH, HEADS, prefix, head_dim], Distribution::Default, &device);
        let ln = time_per_call(budget, || sync(norm.forward(x.clone())));
        let proj = time_per_call(budget, || sync(qkv.forward(x.clone())));
        let qkv_out = qkv.forward(x.clone());
        let attention = time_per_call(budget, || {
            // As `Attention::forward` does it with a cache: split heads, append to the cache,
            // scores, mask, softmax, weighted sum.
            let heads = |part: usize| {
                qkv_out
                    .clone()
                    .slice([0..BATCH, 0..1, part * D_MODEL..(part + 1) * D_MODEL])
                    .reshape([BATCH, 1, HEADS, head_dim])
                    .swap_dims(1, 2)
            };
            let (q, k, v) = (heads(0), heads(1), heads(2));
            let k = Tensor::cat(vec![k_cache.clone(), k], 2);
            let v = Tensor::cat(vec![v_cache.clone(), v], 2);
            let mask = Tensor::<4>::zeros([1, 1, 1, prefix + 1], &device);
            let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head_dim as f32).sqrt()) + mask;
            let weights = activation::softmax(scores, 3);
            sync(weights.matmul(v).swap_dims(1, 2).reshape([BATCH, 1, D_MODEL]));
        });
        let out_proj = time_per_call(budget, || sync(out.forward(x.clone())));
        let mlp = time_per_call(budget, || {
            sync(mlp_out.forward(activation::gelu(mlp_in.forward(norm.forward(x.clone())))));
        });
        let total = ln + proj + attention + out_proj + mlp;
        println!(
            "| {prefix} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% |",
            ln * 1e3,
            proj * 1e3,
            attention * 1e3,
            out_proj * 1e3,
            mlp * 1e3,
            attention / total * 100.0
        );
    }
}

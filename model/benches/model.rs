//! Model benchmarks: generation cost per token against prefix length (with and without the KV
//! cache) and training-step time, on the CPU backend (`flex`) and on wgpu.
//!
//! `WGPU_BACKEND=vulkan cargo bench -p tabswarm-model --bench model` prints Markdown tables for
//! docs/benchmarks.md. `TABSWARM_BENCH_BACKENDS=flex` limits the backends (`flex,wgpu` default);
//! `TABSWARM_BENCH_UNCACHED=0` skips the runs without the KV cache (minutes per row on a software
//! adapter, where each new token recomputes the whole prefix).
//!
//! Each backend's section starts with the device work counted per prefill, per generated token
//! and per training step (kernel dispatches, readbacks, uploads; `tabswarm_kernels::work`): counts
//! do not depend on the machine, so they are the figure to compare before and after a change to
//! the GPU path, wherever it was measured. `TABSWARM_BENCH_COUNTS_ONLY=1` prints only those (they
//! are the same in any build profile: `cargo bench --profile dev …` gives them in seconds).

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use pollster::block_on;
use tabswarm_kernels::testing::bench_devices;
use tabswarm_kernels::work::{DeviceWork, WorkMeter};
use tabswarm_model::tokenizer::BOS;
use tabswarm_model::{ModelConfig, ModelSize, SamplingConfig, Tokenizer, TrainConfig, Trainer, generate};

const NEW_TOKENS: usize = 32;
const BATCH: usize = 8;
const PREFIXES: [usize; 5] = [16, 32, 64, 128, 256];

/// The batch the training-step figures in docs/benchmarks.md were measured on: 16 seeded
/// `a+b=` → `a+b` sequences with one- and two-digit operands (161 tokens for seed 1).
fn addition_batch(seed: u64) -> Result<tabswarm_model::TokenBatch, tabswarm_model::ModelError> {
    use rand::{Rng, SeedableRng};
    let tokenizer = Tokenizer::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut sequences, mut prompt_lens) = (Vec::new(), Vec::new());
    for _ in 0..16 {
        let (a, b) = (rng.random_range(0..100u32), rng.random_range(0..100u32));
        let (seq, prompt_len) = tokenizer.example(&format!("{a}+{b}="), &(a + b).to_string())?;
        sequences.push(seq);
        prompt_lens.push(prompt_len);
    }
    tabswarm_model::TokenBatch::supervised(sequences, &prompt_lens)
}

/// Greedy generation of `max_new_tokens`, the reads chosen for the device.
fn greedy(max_new_tokens: usize, use_kv_cache: bool) -> SamplingConfig {
    SamplingConfig { temperature: 0.0, top_k: 0, max_new_tokens, use_kv_cache, ..SamplingConfig::default() }
}

/// `BATCH` identical prompts of `len` tokens: BOS, then task-alphabet tokens.
fn prompt_batch(len: usize) -> Vec<Vec<u32>> {
    let prompt: Vec<u32> = std::iter::once(BOS).chain((1..len).map(|i| 3 + (i % 60) as u32)).collect();
    vec![prompt; BATCH]
}

fn main() {
    let vocab = Tokenizer::new().vocab_size();
    // The default model with a context long enough for the longest prefix plus the new tokens.
    let config = ModelConfig::new(vocab).with_max_seq_len(PREFIXES[PREFIXES.len() - 1] + NEW_TOKENS + 1);
    println!(
        "Model: default config ({} layers, d_model {}), context {}; batch {BATCH}, {NEW_TOKENS} new tokens, greedy",
        config.n_layers, config.d_model, config.max_seq_len
    );
    for (name, device) in bench_devices() {
        device.seed(1);
        let model = config.init(&device).expect("config");
        count_work(name, &model, &device);
        if std::env::var("TABSWARM_BENCH_COUNTS_ONLY").is_ok_and(|v| v == "1") {
            continue;
        }
        println!("\n### Generation on {name} ({:.2}M parameters)\n", model.num_params() as f64 / 1e6);
        println!("| prefix | ms/token with KV cache | ms/token without | speed-up |");
        println!("|---:|---:|---:|---:|");
        // One whole generation first: the decode-step kernels (cached attention, sampling) compile
        // on first use, which would otherwise land in the first row.
        let sampling = greedy(NEW_TOKENS, true);
        block_on(generate(&model, &prompt_batch(PREFIXES[0]), &sampling, &device)).expect("warm-up");
        for prefix in PREFIXES {
            let prompts = prompt_batch(prefix);
            let uncached = std::env::var("TABSWARM_BENCH_UNCACHED").map_or(true, |v| v != "0");
            let mut per_token = [0.0f64, f64::NAN];
            for (slot, use_kv_cache) in [(0, true), (1, false)] {
                if !use_kv_cache && !uncached {
                    continue;
                }
                let sampling = greedy(NEW_TOKENS, use_kv_cache);
                // Prefill alone (one new token), to subtract it from the full run.
                let one = SamplingConfig { max_new_tokens: 1, ..sampling.clone() };
                block_on(generate(&model, &prompts, &one, &device)).expect("warm-up");
                // The fastest of a few runs each: single runs of a few milliseconds are noisy.
                let runs = if use_kv_cache { 5 } else { 1 };
                let fastest = |config: &SamplingConfig| {
                    (0..runs)
                        .map(|_| {
                            let start = Instant::now();
                            let out = block_on(generate(&model, &prompts, config, &device)).expect("generate");
                            (start.elapsed().as_secs_f64(), out[0].len())
                        })
                        .fold((f64::INFINITY, 0), |best, run| if run.0 < best.0 { run } else { best })
                };
                let (prefill, _) = fastest(&one);
                let (total, new) = fastest(&sampling);
                let new = new.max(2);
                per_token[slot] = (total - prefill).max(0.0) / (new - 1) as f64 * 1e3;
            }
            if per_token[1].is_nan() {
                println!("| {prefix} | {:.2} | — | — |", per_token[0]);
            } else {
                println!(
                    "| {prefix} | {:.2} | {:.2} | {:.1}× |",
                    per_token[0],
                    per_token[1],
                    per_token[1] / per_token[0]
                );
            }
        }

        let train_model = ModelSize::Default.config().init(&device).expect("config");
        let batch = addition_batch(1).expect("batch");
        let tokens: usize = batch.sequences.iter().map(Vec::len).sum();
        let mut trainer = Trainer::new(train_model, TrainConfig::default(), &device);
        block_on(trainer.step(&batch)).expect("warm-up step");
        let steps = 5;
        let start = Instant::now();
        for _ in 0..steps {
            block_on(trainer.step(&batch)).expect("step");
        }
        let seconds = start.elapsed().as_secs_f64() / f64::from(steps);
        println!(
            "\nTraining step on {name}, default model, batch of {} additions ({tokens} tokens): {:.1} ms/step, {:.0} tokens/s",
            batch.sequences.len(),
            seconds * 1e3,
            tokens as f64 / seconds
        );
    }
}

/// `D dispatches · R readbacks · U uploads` (per unit, to one decimal where it is not whole).
fn work_cell(work: DeviceWork, per: u64) -> String {
    let [d, r, u] = work.per(per);
    let fmt = |x: f64| if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.1}") };
    format!("{} · {} · {}", fmt(d), fmt(r), fmt(u))
}

/// Counts what a prefill, a generated token and a training step cost the device (steady state:
/// after a warm-up, a generated token as the difference between runs of `NEW_TOKENS` and one new
/// token, a step as the mean of five after the optimiser's state exists).
fn count_work(name: &str, model: &tabswarm_model::Model, device: &Device) {
    // Greedy; the loop stops early only once every row has drawn EOS, so a generated token's
    // cost is divided by the steps the loop really ran.
    let prompts = prompt_batch(PREFIXES[0]);
    let run = |n: usize| {
        let config = greedy(n, true);
        let meter = WorkMeter::start();
        let out = block_on(generate(model, &prompts, &config, device)).expect("generate");
        (meter.read(), out.iter().map(Vec::len).max().unwrap_or(0) as u64)
    };
    run(2);
    let (one, _) = run(1);
    let (all, steps) = run(NEW_TOKENS);
    let train_model = ModelSize::Default.config().init(device).expect("config");
    let batch = addition_batch(1).expect("batch");
    let mut trainer = Trainer::new(train_model, TrainConfig::default(), device);
    block_on(trainer.step(&batch)).expect("warm-up step");
    let meter = WorkMeter::start();
    for _ in 0..5 {
        block_on(trainer.step(&batch)).expect("step");
    }
    let step = meter.read();
    let [forward, backward, optimizer] = step_parts(device, &batch);
    println!("\n### Device work on {name} (dispatches · readbacks · uploads)\n");
    println!(
        "| prefill ({} tokens × {BATCH} rows) + first draw | per generated token | per training step (16 additions) |",
        PREFIXES[0]
    );
    println!("|---|---|---|");
    println!("| {} | {} | {} |", work_cell(one, 1), work_cell(all - one, steps.saturating_sub(1)), work_cell(step, 5));
    println!(
        "\nA training step's parts: loss (forward) {}, backward {}, optimiser (clipping + AdamW, as the trainer runs it) {}",
        work_cell(forward, 1),
        work_cell(backward, 1),
        work_cell(optimizer, 1)
    );
}

/// A training step taken apart as [`Trainer::step`] runs it (the trainer's default settings and
/// optimiser: fused on a GPU, burn's on the CPU), counted on its third step, once the optimiser's
/// state exists.
fn step_parts(device: &Device, batch: &tabswarm_model::TokenBatch) -> [DeviceWork; 3] {
    use burn::optim::GradientsParams;
    let device = device.clone().autodiff();
    let mut model = ModelSize::Default.config().init(&device).expect("config").train();
    let mut optimizer = tabswarm_model::train::optimizer_for(&TrainConfig::default(), &device);
    let mut parts = [DeviceWork::default(); 3];
    for _ in 0..3 {
        let meter = WorkMeter::start();
        let loss = tabswarm_model::batch::batch_loss(&model, batch, &device).expect("loss");
        let forward = meter.read();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let backward = meter.read();
        model = optimizer.step(TrainConfig::default().learning_rate, model, grads);
        parts = [forward, backward - forward, meter.read() - backward];
    }
    parts
}

//! A whole training round of the default model at the swarm's default batch (8 questions of 8
//! families × 8 completions, temperature 1, up to 32 new tokens): the questions' completions
//! ([`complete`]: one left-padded batch on a GPU, one batch per prompt length on the CPU), their
//! verification, and one GRPO step on all 64 sequences — ms and device work (dispatches ·
//! readbacks · uploads) per part, on the CPU backend and on wgpu (issue 20, docs/benchmarks.md).
//!
//! ```sh
//! WGPU_BACKEND=vulkan cargo bench -p tabswarm-learn --bench round
//! # counts only (they do not depend on the build or the machine), one round per device:
//! TABSWARM_BENCH_COUNTS_ONLY=1 WGPU_BACKEND=vulkan cargo bench --profile dev -p tabswarm-learn --bench round
//! ```
//! `TABSWARM_BENCH_BACKENDS=flex` or `=wgpu` picks one; `TABSWARM_BENCH_ROUNDS` (default 3) sets
//! how many timed rounds follow the warm-up round. The model is freshly initialised: it rarely
//! draws EOS, so every completion runs to 32 tokens — the slowest round of this size.

use std::time::Instant;

use burn::tensor::Device;
use pollster::block_on;
use tabswarm_kernels::testing::bench_devices;
use tabswarm_kernels::work::{DeviceWork, WorkMeter};
use tabswarm_learn::sizing::measure;
use tabswarm_learn::{RlConfig, complete};
use tabswarm_model::tokenizer::EOS;
use tabswarm_model::{GrpoBatch, ModelSize, SamplingConfig, Tokenizer, TrainConfig, Trainer};
use tabswarm_protocol::rollout::{RolloutGroup, score_group};
use tabswarm_protocol::tasks::{Family, MID_DIFFICULTY, generate};

const COMPLETIONS: usize = 8;

fn cell(w: DeviceWork) -> String {
    format!("{} · {} · {}", w.dispatches, w.readbacks, w.uploads)
}

/// One round from question seeds `round * 8 ..`: (generate ms, its work, score ms, step ms, its
/// work, new tokens drawn).
fn round(trainer: &mut Trainer, device: &Device, round: u64) -> (f64, DeviceWork, f64, f64, DeviceWork, usize) {
    let questions: Vec<_> = Family::ALL
        .iter()
        .enumerate()
        .map(|(i, &family)| generate(family, MID_DIFFICULTY, round * 8 + i as u64).expect("question"))
        .collect();
    let sampling = SamplingConfig { temperature: 1.0, seed: round, ..SamplingConfig::default() };
    let model = trainer.inference_model();
    let meter = WorkMeter::start();
    let start = Instant::now();
    let texts = block_on(complete(&model, &questions, COMPLETIONS, &sampling, device)).expect("complete");
    let (generate_ms, generate_work) = (start.elapsed().as_secs_f64() * 1e3, meter.read());

    let start = Instant::now();
    let tokenizer = Tokenizer::new();
    let mut batch = GrpoBatch { sequences: vec![], prompt_lens: vec![], advantages: vec![] };
    let mut drawn = 0;
    for (question, completions) in questions.iter().zip(texts) {
        let group = RolloutGroup {
            question: question.id,
            peer: "bench".into(),
            policy_version: 0,
            completions,
            rewards: Vec::new(),
        };
        let scored = score_group(group).expect("score");
        let prompt = tokenizer.prompt(&question.prompt).expect("prompt");
        for (k, text) in scored.group.completions.iter().enumerate() {
            let mut seq = prompt.clone();
            seq.extend(tokenizer.encode(text).expect("a drawn completion encodes"));
            drawn += seq.len() - prompt.len();
            seq.push(EOS);
            batch.sequences.push(seq);
            batch.prompt_lens.push(prompt.len());
            // An untrained model scores zero everywhere: alternate signs so the step trains.
            batch.advantages.push(if k % 2 == 0 { 1.0 } else { -1.0 });
        }
    }
    let score_ms = start.elapsed().as_secs_f64() * 1e3;

    let meter = WorkMeter::start();
    let start = Instant::now();
    block_on(trainer.grpo_step(&batch, None, &RlConfig::default().grpo())).expect("GRPO step");
    (generate_ms, generate_work, score_ms, start.elapsed().as_secs_f64() * 1e3, meter.read(), drawn)
}

fn main() {
    let counts_only = std::env::var("TABSWARM_BENCH_COUNTS_ONLY").is_ok_and(|v| v == "1");
    let rounds: u64 = std::env::var("TABSWARM_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let config = ModelSize::Default.config();
    println!(
        "Round: default model ({} layers, d_model {}), 8 questions × {COMPLETIONS} completions, up to 32 new tokens\n",
        config.n_layers, config.d_model
    );
    println!(
        "| device | round | generate ms | generate work | score ms | GRPO step ms | step work | round ms | new tokens | tokens/s |"
    );
    println!("|---|---:|---:|---|---:|---:|---|---:|---:|---:|");
    for (name, device) in bench_devices() {
        device.seed(1);
        let model = config.init(&device).expect("config");
        // What the run would choose here (`tabswarm_learn::sizing`: measured on any device here,
        // the CPU included, though a run on the CPU keeps the swarm's round without measuring).
        let started = Instant::now();
        let now_ms = move || started.elapsed().as_secs_f64() * 1e3;
        let size = block_on(measure(&model, &device, COMPLETIONS, &now_ms)).expect("measure");
        eprintln!("{name}: {}", size.reason);
        let mut trainer = Trainer::new(model, TrainConfig::default(), &device);
        // Round 0 compiles the kernels (and is the whole run when only counting).
        let last = if counts_only { 0 } else { rounds };
        for r in 0..=last {
            let (g, gw, s, t, tw, drawn) = round(&mut trainer, &device, r);
            let total = g + s + t;
            let label = if r == 0 && !counts_only { "0 (warm-up)".to_string() } else { r.to_string() };
            println!(
                "| {name} | {label} | {g:.0} | {} | {s:.1} | {t:.0} | {} | {total:.0} | {drawn} | {:.0} |",
                cell(gw),
                cell(tw),
                drawn as f64 / total * 1e3
            );
        }
    }
}

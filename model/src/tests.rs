//! Native tests of the model on the pure-Rust CPU backend (`flex`), and on wgpu where an adapter
//! exists (Vulkan lavapipe in CI; set `TABSWARM_SKIP_GPU=1` to skip on a machine without one).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use pollster::block_on;

use super::batch::{batch_loss, token_log_probs};
use super::tokenizer::{BOS, EOS};
use super::*;

fn tiny_config() -> ModelConfig {
    ModelSize::Tiny.config()
}

fn cpu() -> Device {
    Device::flex()
}

pub(crate) fn model_on(device: &Device, seed: u64) -> Model {
    device.seed(seed);
    tiny_config().init(device).expect("valid config")
}

/// `BOS prompt completion EOS` as token ids, with the prompt length (BOS included).
pub(crate) fn example(prompt: &str, completion: &str) -> (Vec<u32>, usize) {
    Tokenizer::new().example(prompt, completion).expect("text of the task alphabet")
}

fn logits_of(model: &Model, rows: &[Vec<u32>], device: &Device) -> Vec<f32> {
    block_on(read_floats(model.forward(token_tensor(rows, device).expect("tokens")).expect("forward"))).expect("read")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn default_config_is_about_two_million_parameters() {
    let config = ModelConfig::new(Tokenizer::new().vocab_size());
    let params = config.init(&cpu()).expect("default config").num_params();
    assert!((1_000_000..=3_000_000).contains(&params), "{params} parameters");
}

#[test]
fn each_size_has_the_parameters_its_docs_say() {
    // Counted by hand: embeddings + blocks (two norms, qkv, out, the MLP) + final norm + head.
    let count = |d: usize, layers: usize, ff: usize, ctx: usize| {
        let v = Tokenizer::new().vocab_size();
        let block = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d);
        v * d + ctx * d + layers * block + 2 * d + (d * v + v)
    };
    for (size, expected) in [
        (ModelSize::Tiny, count(32, 2, 64, 24)),
        (ModelSize::Small, count(64, 4, 256, 32)),
        (ModelSize::Default, count(192, 4, 768, 128)),
    ] {
        let params = size.config().init(&cpu()).expect("config").num_params();
        assert_eq!(params, expected, "{size:?}");
    }
    assert!((20_000..30_000).contains(&count(32, 2, 64, 24)));
    assert!((150_000..250_000).contains(&count(64, 4, 256, 32)));
}

#[test]
fn bad_configs_are_named() {
    let err = tiny_config().with_n_heads(5).validate().expect_err("32 % 5");
    assert_eq!(err.to_string(), "invalid model config: d_model 32 is not divisible by n_heads 5");
    let err = tiny_config().with_n_layers(0).validate().expect_err("no layers");
    assert_eq!(err.to_string(), "invalid model config: n_layers must be at least 1");
}

#[test]
fn forward_shapes_and_context_limit() {
    let device = cpu();
    let model = model_on(&device, 1);
    let logits = model.forward(token_tensor(&[vec![1, 5, 6], vec![1, 7, 8]], &device).expect("tokens")).expect("fwd");
    assert_eq!(logits.dims(), [2, 3, Tokenizer::new().vocab_size()]);
    let too_long = vec![vec![5u32; 25]];
    let err = model.forward(token_tensor(&too_long, &device).expect("tokens")).expect_err("25 > 24");
    assert_eq!(err.to_string(), "a sequence of 25 tokens exceeds the model's context of 24");
    let ragged = token_tensor(&[vec![1, 2], vec![1]], &device).expect_err("ragged");
    assert!(ragged.to_string().contains("same length; got 2 and 1"), "{ragged}");
}

#[test]
fn cached_forward_equals_full_forward() {
    let device = cpu();
    let model = model_on(&device, 2);
    let seq: Vec<u32> = vec![BOS, 10, 11, 12, 13, 14, 15, 16];
    let full = logits_of(&model, std::slice::from_ref(&seq), &device);
    let vocab = model.vocab_size();
    // Prefill three tokens, then one at a time.
    let mut cache = KvCache::default();
    let mut pieces = Vec::new();
    let prefill = model.forward_cached(token_tensor(&[seq[..3].to_vec()], &device).expect("t"), &mut cache).expect("f");
    pieces.extend(block_on(read_floats(prefill)).expect("read"));
    for &token in &seq[3..] {
        let step = model.forward_cached(token_tensor(&[vec![token]], &device).expect("t"), &mut cache).expect("f");
        pieces.extend(block_on(read_floats(step)).expect("read"));
    }
    assert_eq!(cache.len(), seq.len());
    assert_eq!(pieces.len(), seq.len() * vocab);
    assert!(max_diff(&full, &pieces) < 1e-4, "cached logits differ by {}", max_diff(&full, &pieces));
}

#[test]
fn a_preallocated_cache_refuses_what_does_not_fit_and_keeps_what_it_holds() {
    let device = cpu();
    let model = model_on(&device, 2);
    let seq: Vec<u32> = vec![BOS, 10, 11, 12, 13];
    let full = logits_of(&model, std::slice::from_ref(&seq), &device);
    let mut cache = KvCache::with_capacity(5);
    let mut pieces = Vec::new();
    let prefill = model.forward_cached(token_tensor(&[seq[..4].to_vec()], &device).expect("t"), &mut cache).expect("f");
    pieces.extend(block_on(read_floats(prefill)).expect("read"));
    // Two more positions do not fit a cache made for five; the four it holds are untouched.
    let err =
        model.forward_cached(token_tensor(&[vec![13, 14]], &device).expect("t"), &mut cache).expect_err("4 + 2 > 5");
    assert_eq!(err.to_string(), "6 positions do not fit a KV cache made for 5");
    // Nor does a different number of sequences.
    let err = model
        .forward_cached(token_tensor(&[vec![13], vec![13]], &device).expect("t"), &mut cache)
        .expect_err("batch 2 after batch 1");
    assert_eq!(err.to_string(), "invalid batch: the KV cache holds 1 sequences, but 2 were given to continue them");
    assert_eq!(cache.len(), 4);
    let last = model.forward_cached(token_tensor(&[vec![13]], &device).expect("t"), &mut cache).expect("fits");
    pieces.extend(block_on(read_floats(last)).expect("read"));
    assert_eq!(cache.len(), 5);
    assert!(max_diff(&full, &pieces) < 1e-4, "cached logits differ by {}", max_diff(&full, &pieces));
}

#[test]
fn generation_is_reproducible_and_respects_limits() {
    let device = cpu();
    let model = model_on(&device, 4);
    let prompts = vec![vec![BOS, 10, 11]; 3];
    let config =
        SamplingConfig { temperature: 1.0, top_k: 8, max_new_tokens: 10, seed: 42, use_kv_cache: true, read_every: 0 };
    let first = block_on(generate(&model, &prompts, &config, &device)).expect("generate");
    let second = block_on(generate(&model, &prompts, &config, &device)).expect("generate");
    assert_eq!(first, second, "same seed, same tokens");
    assert_eq!(first.len(), 3);
    for completion in &first {
        assert!(!completion.is_empty() && completion.len() <= 10);
        let eos = completion.iter().position(|&t| t == EOS);
        assert!(eos.is_none_or(|i| i == completion.len() - 1), "tokens after EOS: {completion:?}");
    }
    let other = SamplingConfig { seed: 43, ..config.clone() };
    let third = block_on(generate(&model, &prompts, &other, &device)).expect("generate");
    assert_ne!(first, third, "another seed draws other tokens");
    // The context bounds the length: 3 prompt tokens + at most 21 new ones.
    let long = SamplingConfig { max_new_tokens: 100, ..config.clone() };
    let out = block_on(generate(&model, &[vec![BOS, 10, 11]], &long, &device)).expect("generate");
    assert!(out[0].len() <= 21, "{} tokens", out[0].len());
    let bad = SamplingConfig { temperature: f32::NAN, ..config };
    assert!(block_on(generate(&model, &prompts, &bad, &device)).is_err());
}

#[test]
fn greedy_generation_is_the_same_with_and_without_the_cache() {
    let device = cpu();
    let model = model_on(&device, 5);
    let prompts = vec![vec![BOS, 20, 21, 22], vec![BOS, 30, 31, 32]];
    let cached =
        SamplingConfig { temperature: 0.0, top_k: 0, max_new_tokens: 12, seed: 0, use_kv_cache: true, read_every: 0 };
    let uncached = SamplingConfig { use_kv_cache: false, ..cached.clone() };
    let a = block_on(generate(&model, &prompts, &cached, &device)).expect("cached");
    let b = block_on(generate(&model, &prompts, &uncached, &device)).expect("uncached");
    assert_eq!(a, b);
}

/// Prompts of different lengths in one batch (left-padded, masked, each counting its own
/// positions) continue exactly as each does alone: greedy, with the context binding the longest
/// one (20 tokens of the tiny model's 24 leave it 4 new ones while the others draw 12), on the CPU
/// and on wgpu (the padded decode-attention kernel).
#[test]
fn prompts_of_different_lengths_in_one_batch_continue_as_each_does_alone() {
    let prompts: Vec<Vec<u32>> = vec![
        vec![BOS, 20],
        vec![BOS, 30, 31, 32, 33],
        (0..20).map(|i| if i == 0 { BOS } else { 10 + i }).collect(),
        vec![BOS, 5, 6, 7, 8, 9, 10, 11, 12],
    ];
    let greedy =
        SamplingConfig { temperature: 0.0, top_k: 0, max_new_tokens: 12, seed: 0, use_kv_cache: true, read_every: 0 };
    let devices = match same_model_on_gpu_and_cpu(14) {
        Some((on_cpu, on_gpu, gpu)) => vec![(on_cpu, cpu()), (on_gpu, gpu)],
        None => vec![(model_on(&cpu(), 14), cpu())],
    };
    let mut outputs = Vec::new();
    for (model, device) in &devices {
        let together = block_on(generate(model, &prompts, &greedy, device)).expect("one batch");
        for (prompt, got) in prompts.iter().zip(&together) {
            let alone = block_on(generate(model, std::slice::from_ref(prompt), &greedy, device)).expect("alone");
            assert_eq!(got, &alone[0], "{device:?}, a prompt of {} tokens", prompt.len());
        }
        assert!(together[2].len() <= 4, "the 20-token prompt has room for 4: {:?}", together[2]);
        assert!(together.iter().any(|c| c.len() > 4), "the others draw on: {together:?}");
        outputs.push(together);
    }
    if outputs.len() == 2 {
        assert_eq!(outputs[0], outputs[1], "wgpu and the CPU agree");
    }
    // A padded cache is for the batch it pads.
    let (model, device) = &devices[0];
    let mut cache = KvCache::with_padding(10, vec![0, 2, 1]);
    let tokens = Tensor::<2, Int>::from_ints(TensorData::new(vec![BOS as i64; 8], [4, 2]), device);
    let err = model.forward_cached(tokens, &mut cache).expect_err("4 sequences for a cache padding 3");
    assert!(err.to_string().contains("the KV cache pads 3 sequences, but 4 were given"), "{err}");
    assert!(cache.is_empty(), "nothing was stored");
    // Without the KV cache only prompts of one length are batched.
    let uncached = SamplingConfig { use_kv_cache: false, ..greedy };
    let err = block_on(generate(&devices[0].0, &prompts, &uncached, &cpu())).expect_err("mixed lengths, no cache");
    assert!(err.to_string().contains("prompts of different lengths (2 to 20 tokens)"), "{err}");
}

#[test]
fn loss_matches_a_host_computed_cross_entropy() {
    let device = cpu();
    let model = model_on(&device, 6);
    let (seq, prompt_len) = example("3+4=", "7");
    let batch = TokenBatch::supervised(vec![seq.clone()], &[prompt_len]).expect("batch");
    let loss = block_on(read_floats(batch_loss(&model, &batch, &device).expect("loss"))).expect("read")[0];
    // Reference: log-softmax on the host over the logits of the positions that predict the
    // completion ("7" and EOS).
    let vocab = model.vocab_size();
    let logits = logits_of(&model, &[seq[..seq.len() - 1].to_vec()], &device);
    let mut total = 0.0f64;
    for t in prompt_len..seq.len() {
        let row = &logits[(t - 1) * vocab..t * vocab];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let log_sum = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
        total += log_sum - row[seq[t] as usize] as f64;
    }
    let expected = (total / (seq.len() - prompt_len) as f64) as f32;
    assert!((loss - expected).abs() < 1e-4, "loss {loss}, reference {expected}");
}

#[test]
fn bad_batches_are_refused() {
    let (seq, _) = example("1+1=", "2");
    let err = TokenBatch::policy(vec![seq.clone()], &[seq.len()], &[1.0]).expect_err("no completion");
    assert!(err.to_string().contains("shorter than its sequence"), "{err}");
    let err = TokenBatch::policy(vec![seq.clone(), seq], &[2], &[1.0]).expect_err("counts");
    assert!(err.to_string().contains("2 sequences need as many"), "{err}");
}

fn sequence_log_prob(model: &Model, seq: &[u32], prompt_len: usize, device: &Device) -> f32 {
    let inputs = token_tensor(&[seq[..seq.len() - 1].to_vec()], device).expect("t");
    let targets = token_tensor(&[seq[1..].to_vec()], device).expect("t");
    let lp = block_on(read_floats(token_log_probs(model, inputs, targets).expect("lp"))).expect("read");
    lp[prompt_len - 1..].iter().sum()
}

#[test]
fn policy_step_moves_probability_with_the_sign_of_the_advantage() {
    let device = cpu();
    let (seq, prompt_len) = example("9-2=", "7");
    for (advantage, should_rise) in [(1.0, true), (-1.0, false)] {
        let model = model_on(&device, 7);
        let before = sequence_log_prob(&model, &seq, prompt_len, &device);
        let mut trainer = Trainer::new(model, TrainConfig { learning_rate: 1e-2, ..TrainConfig::default() }, &device);
        let batch = TokenBatch::policy(vec![seq.clone()], &[prompt_len], &[advantage]).expect("batch");
        let stats = block_on(trainer.step(&batch)).expect("step");
        assert_eq!(stats.trained_tokens, 2);
        let after = sequence_log_prob(&trainer.inference_model(), &seq, prompt_len, &device);
        assert_eq!(after > before, should_rise, "advantage {advantage}: log p {before} → {after}");
    }
}

fn overfit(device: &Device, steps: usize) -> (f32, f32) {
    let examples = [("12+7=", "19"), ("3*4=", "12"), ("rev ab=", "ba"), ("9>2?", "yes")];
    let (sequences, prompt_lens): (Vec<_>, Vec<_>) = examples.iter().map(|(p, c)| example(p, c)).unzip();
    let batch = TokenBatch::supervised(sequences, &prompt_lens).expect("batch");
    let model = model_on(device, 8);
    let mut trainer =
        Trainer::new(model, TrainConfig { learning_rate: 1e-2, weight_decay: 0.0, max_grad_norm: 1.0 }, device);
    let first = block_on(trainer.step(&batch)).expect("step").loss;
    let mut last = first;
    for _ in 1..steps {
        last = block_on(trainer.step(&batch)).expect("step").loss;
    }
    eprintln!("overfit on {device:?}: loss {first} → {last} in {steps} steps");
    (first, last)
}

#[test]
fn overfits_a_tiny_batch_on_the_cpu_backend() {
    let (first, last) = overfit(&cpu(), 60);
    // First honest run: 4.51 → 0.0013 after 60 steps (wgpu on lavapipe: 4.54 → 0.0012). The bound
    // leaves two orders of magnitude for backend and seed noise.
    assert!(first > 3.0, "initial loss {first} should be near ln(vocab) = 4.6");
    assert!(last < 0.1, "loss {first} → {last} after 60 steps");
}

#[test]
fn overfits_a_tiny_batch_on_wgpu() {
    if std::env::var_os("TABSWARM_SKIP_GPU").is_some() {
        return;
    }
    let (first, last) = overfit(&Device::wgpu(Default::default()), 60);
    assert!(first > 3.0, "initial loss {first}");
    assert!(last < 0.1, "loss {first} → {last} after 60 steps");
}

#[test]
fn flat_parameters_round_trip_into_another_model() {
    let device = cpu();
    let a = model_on(&device, 21);
    let b = model_on(&device, 22);
    let flat = block_on(params::flatten(&a)).expect("flatten");
    assert_eq!(flat.len(), a.num_params());
    assert_ne!(flat, block_on(params::flatten(&b)).expect("flatten"));
    let loaded = params::load_flat(b, &flat).expect("load");
    assert_eq!(block_on(params::flatten(&loaded)).expect("flatten"), flat);
    let rows = [vec![BOS, 4, 5, 6, 7]];
    assert_eq!(logits_of(&a, &rows, &device), logits_of(&loaded, &rows, &device));
    let err = params::load_flat(loaded, &flat[1..]).expect_err("one value short");
    assert!(err.to_string().contains(&format!("{} values", flat.len() - 1)), "{err}");
}

#[test]
fn a_trainer_moved_onto_new_parameters_keeps_its_optimiser_state() {
    // After a step on batch A and load_flat, a step on batch B differs from a fresh optimiser's
    // step on B: Adam's moments still hold A's gradient (they stayed attached to the parameter
    // ids). (With the same batch twice the two would agree: Adam's bias-corrected step on a
    // repeated gradient equals its first.)
    let device = cpu();
    let (seq, prompt_len) = example("9-2=", "7");
    let (other, other_len) = example("r:abc=", "cba");
    let first = TokenBatch::policy(vec![other], &[other_len], &[-1.0]).expect("batch");
    let batch = TokenBatch::policy(vec![seq.clone()], &[prompt_len], &[1.0]).expect("batch");
    let config = TrainConfig { learning_rate: 1e-2, ..TrainConfig::default() };
    // One model for both trainers: the CPU backend's seed is process-wide, so two inits with the
    // same seed can differ while other tests run.
    let model = model_on(&device, 23);
    let start = block_on(params::flatten(&model)).expect("flatten");
    let mut trained = Trainer::new(model.clone(), config.clone(), &device);
    block_on(trained.step(&first)).expect("step");
    trained.load_flat(&start).expect("load");
    assert_eq!(block_on(params::flatten(&trained.inference_model())).expect("flatten"), start);
    block_on(trained.step(&batch)).expect("step");
    let mut fresh = Trainer::new(model, config, &device);
    block_on(fresh.step(&batch)).expect("step");
    let with_history = block_on(params::flatten(&trained.inference_model())).expect("flatten");
    let without = block_on(params::flatten(&fresh.inference_model())).expect("flatten");
    assert!(max_diff(&with_history, &without) > 1e-4, "the optimiser state was lost");
    assert!(trained.load_flat(&start[..10]).is_err());
}

#[test]
fn checkpoint_round_trip_gives_identical_logits() {
    let device = cpu();
    let config = tiny_config();
    let model = model_on(&device, 9);
    let bytes = checkpoint::save(&model, &config, 17).expect("save");
    let (loaded, header) = checkpoint::load(&bytes, Some(&config), &device).expect("load");
    assert_eq!(header.step, 17);
    assert_eq!(header.config, config);
    let rows = [vec![BOS, 4, 5, 6, 7]];
    assert_eq!(logits_of(&model, &rows, &device), logits_of(&loaded, &rows, &device));
}

#[test]
fn async_save_of_a_model_on_wgpu_loads_with_identical_logits_on_the_cpu() {
    let Some((on_cpu, on_gpu, _)) = same_model_on_gpu_and_cpu(13) else { return };
    let config = tiny_config();
    let bytes = block_on(checkpoint::save_async(&on_gpu, &config, 5)).expect("save from wgpu");
    assert_eq!(bytes, checkpoint::save(&on_cpu, &config, 5).expect("save"), "byte-identical to the CPU save");
    let (loaded, header) = checkpoint::load(&bytes, Some(&config), &cpu()).expect("load");
    assert_eq!(header.step, 5);
    let rows = [vec![BOS, 4, 5, 6, 7]];
    assert_eq!(logits_of(&on_cpu, &rows, &cpu()), logits_of(&loaded, &rows, &cpu()));
}

#[test]
fn corrupt_or_mismatched_checkpoints_are_refused() {
    let device = cpu();
    let config = tiny_config();
    let bytes = checkpoint::save(&model_on(&device, 10), &config, 0).expect("save");

    let err = checkpoint::load(b"PK\x03\x04 not ours", None, &device).expect_err("magic");
    assert!(
        matches!(
            err,
            ModelError::Checkpoint(CheckpointError::Frame(tabswarm_protocol::checkpoint::FrameError::NotACheckpoint))
        ),
        "{err}"
    );

    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    let err = checkpoint::load(&flipped, None, &device).expect_err("flipped byte");
    assert!(err.to_string().starts_with("checkpoint is corrupt: its payload hashes to"), "{err}");

    let err = checkpoint::load(&bytes[..bytes.len() - 10], None, &device).expect_err("truncated");
    assert!(err.to_string().starts_with("checkpoint is truncated"), "{err}");

    let mut future = bytes.clone();
    future[8] = 9;
    let err = checkpoint::load(&future, None, &device).expect_err("format");
    assert_eq!(err.to_string(), "checkpoint format 9 is not supported (this build reads format 1)");

    let other = config.clone().with_d_model(48).with_n_heads(4);
    let err = checkpoint::load(&bytes, Some(&other), &device).expect_err("config");
    assert!(err.to_string().contains("it has vocab 97 · d_model 32"), "{err}");
    assert!(err.to_string().contains("expected vocab 97 · d_model 48"), "{err}");
}

/// The same weights on wgpu (fused kernels) and on the CPU (reference compositions).
fn same_model_on_gpu_and_cpu(seed: u64) -> Option<(Model, Model, Device)> {
    if std::env::var_os("TABSWARM_SKIP_GPU").is_some() {
        return None;
    }
    let config = tiny_config();
    let on_cpu = model_on(&cpu(), seed);
    let bytes = checkpoint::save(&on_cpu, &config, 0).expect("save");
    let gpu = Device::wgpu(Default::default());
    let (on_gpu, _) = checkpoint::load(&bytes, Some(&config), &gpu).expect("load on wgpu");
    Some((on_cpu, on_gpu, gpu))
}

#[test]
fn fused_loss_and_gradients_on_wgpu_match_the_cpu_reference() {
    let Some((on_cpu, on_gpu, gpu)) = same_model_on_gpu_and_cpu(11) else { return };
    let (a, pa) = example("12+34=", "46");
    let (b, pb) = example("7+8=", "15");
    let batch = TokenBatch::policy(vec![a, b], &[pa, pb], &[0.5, -1.5]).expect("batch");
    let loss = |model: &Model, device: &Device| {
        let mut trainer = Trainer::new(model.clone(), TrainConfig::default(), device);
        let before = block_on(read_floats(batch_loss(&trainer.inference_model(), &batch, device).expect("loss")))
            .expect("read")[0];
        let step = block_on(trainer.step(&batch)).expect("step");
        let after = block_on(read_floats(batch_loss(&trainer.inference_model(), &batch, device).expect("loss")))
            .expect("read")[0];
        (before, step.loss, after)
    };
    let (cpu_before, cpu_step, cpu_after) = loss(&on_cpu, &cpu());
    let (gpu_before, gpu_step, gpu_after) = loss(&on_gpu, &gpu);
    assert!((cpu_before - gpu_before).abs() < 1e-4, "{cpu_before} vs {gpu_before}");
    assert!((cpu_step - gpu_step).abs() < 1e-4, "{cpu_step} vs {gpu_step}");
    // One AdamW step from the same weights with the same gradients lands on the same loss.
    assert!((cpu_after - gpu_after).abs() < 1e-3, "after one step: {cpu_after} vs {gpu_after}");
    assert!((cpu_after - cpu_before).abs() > 1e-3, "the step changed nothing");
}

#[test]
fn generation_on_wgpu_matches_the_cpu_and_is_reproducible() {
    let Some((on_cpu, on_gpu, gpu)) = same_model_on_gpu_and_cpu(12) else { return };
    let prompts = vec![vec![BOS, 20, 21, 22], vec![BOS, 30, 31, 32], vec![BOS, 5, 6, 7]];
    let greedy =
        SamplingConfig { temperature: 0.0, top_k: 0, max_new_tokens: 12, seed: 0, use_kv_cache: true, read_every: 0 };
    let on_cpu_tokens = block_on(generate(&on_cpu, &prompts, &greedy, &cpu())).expect("cpu");
    let on_gpu_tokens = block_on(generate(&on_gpu, &prompts, &greedy, &gpu)).expect("gpu");
    assert_eq!(on_cpu_tokens, on_gpu_tokens, "greedy: the fused argmax picks what the CPU picks");
    let sampled =
        SamplingConfig { temperature: 1.0, top_k: 10, max_new_tokens: 12, seed: 77, use_kv_cache: true, read_every: 0 };
    let first = block_on(generate(&on_gpu, &prompts, &sampled, &gpu)).expect("gpu");
    assert_eq!(first, block_on(generate(&on_gpu, &prompts, &sampled, &gpu)).expect("gpu"));
    let other = SamplingConfig { seed: 78, ..sampled };
    assert_ne!(first, block_on(generate(&on_gpu, &prompts, &other, &gpu)).expect("gpu"));
}

/// What [`generate`] costs the device, counted (issue 20): the drawn ids read back once per
/// window of `read_every` tokens (once per generation on a GPU by default, here), the same
/// launches for every decode step, none at all on the CPU backend, and only the calling thread's
/// work in its meter.
#[test]
fn generation_reads_back_once_per_window_with_the_same_dispatches_every_decode_step() {
    use tabswarm_kernels::work::WorkMeter;
    let Some((on_cpu, on_gpu, gpu)) = same_model_on_gpu_and_cpu(13) else { return };
    let prompts = vec![vec![BOS, 20, 21, 22]; 4];
    let counted = |model: &Model, device: &Device, n: usize, read_every: usize| {
        let greedy =
            SamplingConfig { temperature: 0.0, top_k: 0, max_new_tokens: n, seed: 0, use_kv_cache: true, read_every };
        let meter = WorkMeter::start();
        let out = block_on(generate(model, &prompts, &greedy, device)).expect("generate");
        assert!(
            out.iter().all(|row| row.len() == n && !row[..n - 1].contains(&EOS)),
            "{out:?}: pick a seed without EOS"
        );
        meter.read()
    };
    let steps: Vec<_> = (1..=4).map(|n| counted(&on_gpu, &gpu, n, 1)).collect();
    for (n, work) in steps.iter().enumerate() {
        assert_eq!(work.readbacks, n as u64 + 1, "read every token: {work:?}");
        // The prompt, the prefill's mask and the fused kernels' small argument buffers.
        assert!(work.uploads > 1, "{work:?}");
    }
    let per_step: Vec<u64> = steps.windows(2).map(|w| w[1].dispatches - w[0].dispatches).collect();
    assert!(per_step[0] > 0 && per_step.iter().all(|&d| d == per_step[0]), "decode steps launch alike: {per_step:?}");
    assert!(steps[0].dispatches > per_step[0], "the prefill and the first draw: {:?}", steps[0]);
    // A decode step uploads no mask and no token: the drawn ids are fed back on the device.
    // What is left: the argument buffers of the draw, of each layer's fused attention and of every
    // fused layer norm (two a layer and the final one).
    let uploads: Vec<u64> = steps.windows(2).map(|w| w[1].uploads - w[0].uploads).collect();
    let layers = tiny_config().n_layers as u64;
    let arguments = 1 + layers + (2 * layers + 1);
    assert!(uploads.iter().all(|&u| u == arguments), "{uploads:?}, expected {arguments} per step");

    assert_eq!(counted(&on_gpu, &gpu, 4, 0).readbacks, 1, "a GPU reads once per {GPU_TOKENS_PER_READBACK} by default");
    assert_eq!(counted(&on_gpu, &gpu, 4, 3).readbacks, 2, "tokens 1–3, then 4");
    let default_cpu = counted(&on_cpu, &cpu(), 3, 0);
    assert_eq!((default_cpu.dispatches, default_cpu.readbacks), (0, 3), "flex launches nothing, reads every token");

    let meter = WorkMeter::start();
    std::thread::scope(|s| {
        s.spawn(|| counted(&on_gpu, &gpu, 3, 1));
    });
    assert_eq!(meter.read(), Default::default(), "another thread's generation is its own");
}

/// `model` with the EOS logit raised by `bias`, so sampled rows end at different steps.
fn eos_prone(mut model: Model, bias: f32) -> Model {
    use burn::module::Param;
    use burn::tensor::{Tensor, TensorData};
    let vocab = model.vocab_size();
    let device = model.head.weight.val().device();
    let values: Vec<f32> = (0..vocab).map(|t| if t == EOS as usize { bias } else { 0.0 }).collect();
    model.head.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(values, [vocab]), &device)));
    model
}

/// Reading the drawn ids every token, every few or once at the end gives the same completions:
/// a row that drew EOS is computed on until the next readback, and what it draws then is dropped.
#[test]
fn completions_do_not_depend_on_how_often_the_drawn_ids_are_read_back() {
    let prompts = vec![vec![BOS, 20, 21, 22]; 8];
    let run = |model: &Model, device: &Device, use_kv_cache: bool| {
        let outs = [1, 3, 8, 64].map(|read_every| {
            let config =
                SamplingConfig { temperature: 1.0, top_k: 0, max_new_tokens: 14, seed: 5, use_kv_cache, read_every };
            block_on(generate(model, &prompts, &config, device)).expect("generate")
        });
        for (read_every, out) in [3, 8, 64].iter().zip(&outs[1..]) {
            assert_eq!(out, &outs[0], "read every {read_every} against every token");
        }
        outs[0].clone()
    };
    let model = eos_prone(model_on(&cpu(), 15), 2.0);
    let tokens = run(&model, &cpu(), true);
    assert_eq!(tokens, run(&model, &cpu(), false), "with and without the KV cache");
    let ended: Vec<usize> = tokens.iter().filter(|row| row.last() == Some(&EOS)).map(Vec::len).collect();
    assert!(
        ended.iter().collect::<std::collections::BTreeSet<_>>().len() >= 3 && ended.len() < tokens.len(),
        "rows should end at different steps, some not at all: {tokens:?}"
    );
    for row in &tokens {
        assert!(!row[..row.len() - 1].contains(&EOS), "nothing after EOS: {row:?}");
    }
    if let Some((_, on_gpu, gpu)) = same_model_on_gpu_and_cpu(15) {
        run(&eos_prone(on_gpu, 2.0), &gpu, true);
    }
}

/// A GRPO step on wgpu reads back one value (the loss) and launches the same kernels every time
/// once the optimiser's state exists.
#[test]
fn a_training_step_reads_back_only_its_loss_and_launches_alike_each_time() {
    use tabswarm_kernels::work::WorkMeter;
    let Some((_, on_gpu, gpu)) = same_model_on_gpu_and_cpu(14) else { return };
    let (a, pa) = example("12+34=", "46");
    let (b, pb) = example("7+8=", "16");
    let batch = GrpoBatch { sequences: vec![a, b], prompt_lens: vec![pa, pb], advantages: vec![1.0, -1.0] };
    let mut trainer = Trainer::new(on_gpu, TrainConfig::default(), &gpu);
    let steps: Vec<_> = (0..3)
        .map(|_| {
            let meter = WorkMeter::start();
            block_on(trainer.grpo_step(&batch, None, &GrpoConfig::default())).expect("step");
            meter.read()
        })
        .collect();
    for work in &steps {
        assert_eq!(work.readbacks, 1, "the loss only: {work:?}");
        assert!(work.dispatches > 0, "{work:?}");
    }
    assert_eq!(steps[1], steps[2], "the second and third steps");
}

/// The fused AdamW (one kernel per parameter on wgpu, the reference composition on the CPU) moves
/// a model exactly as burn's AdamW with norm clipping does, step after step, its state included.
#[test]
fn the_fused_adamw_steps_like_burns_clipped_adamw() {
    use burn::optim::grad_clipping::GradientClippingConfig;
    use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
    let (a, pa) = example("12+34=", "46");
    let (b, pb) = example("7+8=", "16");
    let batch = TokenBatch::policy(vec![a, b], &[pa, pb], &[1.0, -1.0]).expect("batch");
    let gpu = (std::env::var_os("TABSWARM_SKIP_GPU").is_none()).then(|| Device::wgpu(Default::default()));
    for device in std::iter::once(cpu()).chain(gpu) {
        let device = device.autodiff();
        let start = model_on(&device, 16).train();
        let mut ours = ModuleOptimizer::from(train::FusedAdamW::new(0.01, 1.0));
        let mut burns = AdamWConfig::new()
            .with_weight_decay(0.01)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
            .init();
        let (mut with_ours, mut with_burns) = (start.clone(), start.clone());
        for _ in 0..3 {
            let loss = batch_loss(&with_ours, &batch, &device).expect("loss");
            with_ours = ours.step(1e-2, with_ours.clone(), GradientsParams::from_grads(loss.backward(), &with_ours));
            let loss = batch_loss(&with_burns, &batch, &device).expect("loss");
            with_burns =
                burns.step(1e-2, with_burns.clone(), GradientsParams::from_grads(loss.backward(), &with_burns));
        }
        let flat = |model: &Model| block_on(params::flatten(&model.valid())).expect("flatten");
        let (ours, burns, before) = (flat(&with_ours), flat(&with_burns), flat(&start));
        assert!(max_diff(&ours, &burns) < 1e-5, "{device:?}: {} apart", max_diff(&ours, &burns));
        assert!(max_diff(&ours, &before) > 1e-3, "{device:?}: the steps moved nothing");
    }
}

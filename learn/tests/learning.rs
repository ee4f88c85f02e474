//! Learning end to end on the CPU: pretraining's reproducibility and a short RL run that must beat
//! its warm start. In their own test binary, one at a time: burn's CPU backend seeds one
//! process-wide generator, so a model initialised by a test running alongside would draw from it.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Mutex;

use burn::tensor::Device;
use pollster::block_on;
use tabswarm_learn::experiment::{Arm, SwarmSync, run_arm};
use tabswarm_learn::pretrain::{PretrainConfig, pretrain};
use tabswarm_learn::{Curriculum, HeldOut, RlConfig, Selection};
use tabswarm_model::{ModelSize, checkpoint};
use tabswarm_protocol::tasks::Family;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The same seed gives the same checkpoint bytes; another seed does not.
#[test]
fn pretraining_is_deterministic_from_its_seed() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let config = PretrainConfig {
        batch: 8,
        max_steps: 4,
        eval_every: 2,
        eval_per_family: 2,
        target_accuracy: 2.0, // unreachable: run every step
        ..PretrainConfig::default()
    };
    let run = |seed| {
        let config = PretrainConfig { seed, ..config.clone() };
        let (model, report) =
            block_on(pretrain(&ModelSize::Tiny.config(), &config, &device, &mut |_, _, _| {})).expect("pretrain");
        assert_eq!((report.steps, report.history.len(), report.reached_target), (4, 2, false));
        checkpoint::save(&model, &ModelSize::Tiny.config(), report.steps).expect("save")
    };
    let first = run(11);
    assert!(first == run(11), "same seed, different checkpoint bytes");
    let header = |bytes: &[u8]| checkpoint::read_header(bytes).expect("header").0.payload_sha256;
    assert_ne!(header(&first), header(&run(12)), "different seeds, same parameters");
}

#[test]
fn pretraining_refuses_an_empty_setup() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let config = PretrainConfig { families: vec![], ..PretrainConfig::default() };
    let err = block_on(pretrain(&ModelSize::Tiny.config(), &config, &Device::flex(), &mut |_, _, _| {}))
        .expect_err("no families");
    assert!(err.to_string().contains("at least one family"), "{err}");
}

/// The schedule against hand-computed values: linear warm-up to the peak, then a cosine to a
/// tenth of it at `max_steps`; without decay it holds the peak.
#[test]
fn the_pretraining_learning_rate_warms_up_then_decays() {
    let config = PretrainConfig {
        learning_rate: 1e-3,
        warmup_steps: 100,
        cosine_decay: true,
        max_steps: 1100,
        ..PretrainConfig::default()
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(config.learning_rate_at(1), 1e-5));
    assert!(close(config.learning_rate_at(50), 5e-4));
    assert!(close(config.learning_rate_at(100), 1e-3));
    // Half-way through the decay: (peak + floor) / 2.
    assert!(close(config.learning_rate_at(600), 5.5e-4), "{}", config.learning_rate_at(600));
    assert!(close(config.learning_rate_at(1100), 1e-4));
    assert!(close(config.learning_rate_at(5000), 1e-4), "past max_steps it stays at the floor");
    let flat = PretrainConfig { cosine_decay: false, ..config.clone() };
    assert!(close(flat.learning_rate_at(600), 1e-3));
    let none = PretrainConfig { warmup_steps: 0, cosine_decay: false, ..config };
    assert!(close(none.learning_rate_at(1), 1e-3), "no warm-up: the peak from the first step");
}

#[test]
fn pretraining_refuses_a_learning_rate_that_is_not_positive() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for lr in [0.0, -1e-3, f64::NAN] {
        let config = PretrainConfig { learning_rate: lr, ..PretrainConfig::default() };
        let err = block_on(pretrain(&ModelSize::Tiny.config(), &config, &Device::flex(), &mut |_, _, _| {}))
            .expect_err("bad learning rate");
        assert!(err.to_string().contains("learning rate must be a positive number"), "{lr}: {err}");
    }
}

/// Warm start on one easy family (comparing numbers) to about half right, then GRPO on it alone:
/// the share of sampled answers the verifier accepts must rise clearly above the warm start's.
#[test]
fn a_short_rl_run_beats_its_warm_start() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let config = PretrainConfig {
        families: vec![Family::Compare],
        target_accuracy: 0.5,
        eval_every: 50,
        max_steps: 1000,
        ..PretrainConfig::default()
    };
    let model_config = ModelSize::Tiny.config();
    let (base, report) = block_on(pretrain(&model_config, &config, &device, &mut |_, _, _| {})).expect("pretrain");
    assert!(report.reached_target, "{report:?}");
    let arm = Arm {
        peers: 1,
        rounds: 200,
        seed: 1,
        rl: RlConfig {
            families: vec![Family::Compare],
            local: 8,
            external: 0,
            learning_rate: 1e-3,
            selection: Selection::PreferSignal,
            ..RlConfig::default()
        },
        eval_per_family: 8,
        ..Arm::default()
    };
    let result = block_on(run_arm(&base, &arm, &device, &mut |_, _| {})).expect("RL run");
    let mean = |rounds: &[f32]| rounds.iter().sum::<f32>() / rounds.len() as f32;
    let (start, end) = (mean(&result.reward_per_round[..40]), mean(&result.reward_per_round[160..]));
    eprintln!("mean reward: first 40 rounds {start:.3}, last 40 rounds {end:.3}");
    assert!(end > start + 0.05, "RL did not beat its warm start: reward {start:.3} → {end:.3}");
}

/// The small base of docs/learning.md ("Room to learn"), committed because making it takes about
/// four minutes of this CPU: `tabswarm-peer pretrain --size small --seed 1 --lr 3e-3 --warmup 200
/// --cosine --max-steps 3000 --target 0.4 --out base-small-seed1.tswm` (deterministic from the seed).
const SMALL_BASE: &[u8] = include_bytes!("../../checkpoints/base-small-seed1.tswm");
const SMALL_BASE_PAYLOAD_SHA256: &str = "606680a981d8b1ebb470f1843c468f93f724e95e5eac6054c6398235e8549a7a";

/// Equal compute per peer (8 peers, the same questions, completions and steps each round), the
/// first 25 rounds of docs/learning.md's small-model experiment: with the swarm model (a sync
/// every 10 rounds) the peers end above the peers that train alone on the held-out set. The first
/// honest run gave 60.7 % against 56.8 % for this seed (+3.9 points; seeds 2 and 3: +2.2, +3.3);
/// the threshold is +1 point.
#[test]
fn the_swarm_model_beats_training_alone_on_held_out_questions() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (header, _) = checkpoint::read_header(SMALL_BASE).expect("header");
    assert_eq!(header.payload_sha256, SMALL_BASE_PAYLOAD_SHA256, "the committed base changed");
    let device = Device::flex();
    let (base, _) = checkpoint::load(SMALL_BASE, None, &device).expect("the small base");
    let arm = |name: &str, swarm: Option<SwarmSync>| Arm {
        name: name.into(),
        peers: 8,
        rounds: 25,
        seed: 1,
        rl: RlConfig {
            max_difficulty: 5,
            local: 8,
            external: 0,
            curriculum: Some(Curriculum::default()),
            ..RlConfig::default()
        },
        eval_per_family: 2,
        swarm,
        heldout: Some((HeldOut { levels: vec![1, 2, 3], per_level: 16 }, 25)),
        ..Arm::default()
    };
    let held_out = |arm: &Arm| {
        let result = block_on(run_arm(&base, arm, &device, &mut |_, _| {})).expect("run");
        let (round, accuracy) = *result.heldout.last().expect("an evaluation");
        assert_eq!(round, 25);
        (accuracy, result.versions.len())
    };
    let (solo, solo_versions) = held_out(&arm("solo", None));
    let (meta, versions) = held_out(&arm("meta", Some(SwarmSync { every: 10, outer: Default::default() })));
    eprintln!("held-out after 25 rounds: solo {:.1} %, meta {:.1} % ({versions} versions)", solo * 100.0, meta * 100.0);
    assert_eq!((solo_versions, versions), (0, 2), "meta syncs at rounds 10 and 20");
    assert!(meta >= solo + 0.01, "the swarm model did not beat training alone: meta {meta:.3}, solo {solo:.3}");
}

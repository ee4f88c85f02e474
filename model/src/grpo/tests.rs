use burn::tensor::{Device, Tensor, TensorData};
use pollster::block_on;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::batch::token_log_probs;
use crate::tests::{example, model_on};
use crate::{TrainConfig, Trainer, read_floats};

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn advantages_are_normalised_within_the_group() {
    assert_eq!(group_advantages(&[1.0, 0.0, 0.0, 1.0]), Some(vec![1.0, -1.0, -1.0, 1.0]));
    // mean 0.4333…, population std 0.4714…
    let a = group_advantages(&[1.1, 0.1, 0.1]).expect("signal");
    assert!(
        close(
            &a,
            &[std::f32::consts::SQRT_2, -std::f32::consts::FRAC_1_SQRT_2, -std::f32::consts::FRAC_1_SQRT_2],
            1e-5
        ),
        "{a:?}"
    );
    assert_eq!(group_advantages(&[0.1, 0.1, 0.1]), None, "zero variance is skipped");
    assert_eq!(group_advantages(&[1.0]), None);
    assert_eq!(group_advantages(&[]), None);
}

#[test]
fn clipped_loss_and_its_gradient_match_hand_computed_values() {
    let device = Device::flex().autodiff();
    // (log p, old log p, advantage, mask):
    //   ρ = 1,   A =  2 → min(2, 2)              = 2      grad −A·ρ/4 = −0.5
    //   ρ = 1.5, A =  1 → min(1.5, 1.28)         = 1.28   clipped: grad 0
    //   ρ = 0.5, A = −1 → min(−0.5, −0.8)        = −0.8   clipped: grad 0
    //   ρ = 0.5, A =  1 → min(0.5, 0.8)          = 0.5    grad −A·ρ/4 = −0.125
    //   masked out                                        grad 0
    // loss = −(2 + 1.28 − 0.8 + 0.5) / 4 = −0.745
    let logp = [0.0, 1.5f32.ln(), 0.5f32.ln(), 0.5f32.ln(), 3.0];
    let tensor = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device);
    let log_probs = tensor(&logp).require_grad();
    let loss = clipped_loss(
        log_probs.clone(),
        tensor(&[0.0; 5]),
        tensor(&[2.0, 1.0, -1.0, 1.0, 5.0]),
        tensor(&[1.0, 1.0, 1.0, 1.0, 0.0]),
        4.0,
        None,
        &GrpoConfig::default(),
    );
    let grads = loss.backward();
    let value = block_on(read_floats(loss)).expect("loss");
    assert!((value[0] + 0.745).abs() < 1e-6, "loss {value:?}");
    let grad = block_on(read_floats(log_probs.grad(&grads).expect("gradient"))).expect("grad");
    assert!(close(&grad, &[-0.5, 0.0, 0.0, -0.125, 0.0], 1e-6), "{grad:?}");

    let reference = clipped_loss_reference(
        &logp,
        &[0.0; 5],
        &[2.0, 1.0, -1.0, 1.0, 5.0],
        &[true, true, true, true, false],
        &GrpoConfig::default(),
    );
    assert!((reference + 0.745).abs() < 1e-6, "{reference}");
}

#[test]
fn kl_term_is_zero_at_the_reference_and_positive_away_from_it() {
    let device = Device::flex();
    let tensor = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device);
    let config = GrpoConfig { kl_coef: 0.5, ..GrpoConfig::default() };
    let at = |logp: &[f32], reference: &[f32]| {
        let loss = clipped_loss(
            tensor(logp),
            tensor(logp),
            tensor(&[0.0; 2]),
            tensor(&[1.0; 2]),
            2.0,
            Some(tensor(reference)),
            &config,
        );
        block_on(read_floats(loss)).expect("loss")[0]
    };
    assert!(at(&[-1.0, -2.0], &[-1.0, -2.0]).abs() < 1e-7);
    // k3 = e^{d} − d − 1 with d = ref − logp = ±0.5: (0.1487 + 0.1065) / 2 · 0.5
    let expected = 0.5 * ((0.5f32.exp() - 1.5) + ((-0.5f32).exp() - 0.5)) / 2.0;
    assert!((at(&[-1.0, -2.0], &[-0.5, -2.5]) - expected).abs() < 1e-6);
}

#[test]
fn clipped_loss_matches_its_reference_on_random_tokens() {
    let device = Device::flex();
    let mut rng = SmallRng::seed_from_u64(17);
    for n in [1usize, 7, 33, 250] {
        let logp: Vec<f32> = (0..n).map(|_| -rng.random_range(0.0..4.0f32)).collect();
        let old: Vec<f32> = logp.iter().map(|l| l + rng.random_range(-0.6..0.6f32)).collect();
        let adv: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect();
        let mask: Vec<bool> = (0..n).map(|_| rng.random_range(0..4) != 0).collect();
        let count = mask.iter().filter(|m| **m).count().max(1) as f32;
        let tensor = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device);
        let mask_f: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
        let loss = clipped_loss(
            tensor(&logp),
            tensor(&old),
            tensor(&adv),
            tensor(&mask_f),
            count,
            None,
            &GrpoConfig::default(),
        );
        let got = block_on(read_floats(loss)).expect("loss")[0];
        let want = clipped_loss_reference(&logp, &old, &adv, &mask, &GrpoConfig::default());
        assert!((got - want).abs() < 1e-5 * want.abs().max(1.0), "n {n}: {got} vs {want}");
    }
}

#[test]
fn a_grpo_step_raises_the_better_completion_and_lowers_the_worse() {
    let device = Device::flex();
    let (good, p) = example("2+2=", "4");
    let (bad, _) = example("2+2=", "5");
    let batch = GrpoBatch {
        sequences: vec![good.clone(), bad.clone()],
        prompt_lens: vec![p, p],
        advantages: group_advantages(&[1.1, 0.1]).expect("signal"),
    };
    assert_eq!(batch.completion_tokens(), 4);
    // Log-probability of the completion (and EOS) under a model.
    let score = |model: &Model, seq: &[u32]| {
        let inputs = crate::token_tensor(&[seq[..seq.len() - 1].to_vec()], &device).expect("inputs");
        let targets = crate::token_tensor(&[seq[1..].to_vec()], &device).expect("targets");
        let lp = block_on(read_floats(token_log_probs(model, inputs, targets).expect("lp"))).expect("read");
        lp[p - 1..].iter().sum::<f32>()
    };
    let model = model_on(&device, 3);
    let (good_before, bad_before) = (score(&model, &good), score(&model, &bad));
    let mut trainer = Trainer::new(model, TrainConfig { learning_rate: 1e-2, ..TrainConfig::default() }, &device);
    let stats = block_on(trainer.grpo_step(&batch, None, &GrpoConfig::default())).expect("step");
    assert_eq!(stats.trained_tokens, 4);
    // Advantages ±1 over 4 tokens: the value of the loss is −mean(A·1) = 0.
    assert!(stats.loss.abs() < 1e-6, "{}", stats.loss);
    let after = trainer.inference_model();
    assert!(score(&after, &good) > good_before, "good completion did not rise");
    assert!(score(&after, &bad) < bad_before, "bad completion did not fall");

    let wrong = GrpoBatch { advantages: vec![1.0], ..batch };
    let err = block_on(trainer.grpo_step(&wrong, None, &GrpoConfig::default())).expect_err("mismatch");
    assert!(err.to_string().contains("2 sequences need as many finite advantages"), "{err}");
}

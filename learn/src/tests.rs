use burn::tensor::Device;
use pollster::block_on;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tabswarm_model::ModelSize;
use tabswarm_protocol::rollout::{DropCounts, DropReason, RolloutGroup, ScoredGroup, score_group};
use tabswarm_protocol::tasks::{Family, QuestionId, SUITE_VERSION, generate};

use super::experiment::{Arm, MemoryBus, run_arm};
use super::*;

fn scored(seed: u64, completions: &[&str]) -> ScoredGroup {
    score_group(RolloutGroup {
        question: QuestionId::new(Family::Compare, 1, seed),
        peer: "other".into(),
        policy_version: 0,
        completions: completions.iter().map(|c| c.to_string()).collect(),
        rewards: Vec::new(),
    })
    .expect("valid group")
}

#[test]
fn selection_prefers_groups_with_signal() {
    let answer = |seed| generate(Family::Compare, 1, seed).expect("q").answer;
    let (a0, a1) = (answer(0), answer(1));
    let groups = vec![scored(0, &["x", "x"]), scored(1, &[&a1, "x"]), scored(2, &["y", "y"]), scored(0, &[&a0, "<>"])];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..20 {
        let picked = select(&groups, 2, Selection::PreferSignal, &mut rng);
        assert_eq!(picked.len(), 2);
        assert!(picked.iter().all(|g| g.has_signal()), "picked a group without signal");
    }
    // Asking for more than there is returns what there is; uniform picks the silent ones too.
    assert_eq!(select(&groups, 9, Selection::PreferSignal, &mut rng).len(), 4);
    let silent =
        (0..50).filter(|_| select(&groups, 1, Selection::Uniform, &mut rng).iter().any(|g| !g.has_signal())).count();
    assert!(silent > 0);
}

fn tiny_rl(local: usize, external: usize) -> RlConfig {
    RlConfig {
        families: vec![Family::Compare, Family::Add],
        max_difficulty: 1,
        questions_per_round: local.max(2),
        group_size: 4,
        local,
        external,
        ..RlConfig::default()
    }
}

/// What a receiver's node makes of groups off the wire: the ones that pass the checks, scored,
/// and the refusals counted by reason (`wire::decode` does the same per message).
fn receive(groups: Vec<RolloutGroup>) -> (Vec<ScoredGroup>, DropCounts) {
    let (mut passed, mut drops) = (Vec::new(), DropCounts::default());
    for group in groups {
        match score_group(group) {
            Ok(scored) => passed.push(scored),
            Err(reason) => drops.count(&reason),
        }
    }
    (passed, drops)
}

#[test]
fn a_peer_trains_on_verified_received_groups_and_skips_what_it_cannot_use() {
    let device = Device::flex();
    device.seed(5);
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    let mut peer = Peer::new("me", model, tiny_rl(2, 2), &device, 9).expect("peer");
    let own = block_on(peer.generate_round()).expect("round");
    assert_eq!(own.len(), 2);
    assert!(own.iter().all(|g| g.group.completions.len() == 4 && g.group.peer == "me"));

    let good = generate(Family::Compare, 1, 3).expect("q");
    let group = |question: QuestionId, completions: Vec<String>| RolloutGroup {
        question,
        peer: "them".into(),
        policy_version: 7,
        completions,
        rewards: Vec::new(),
    };
    let mut future = good.id;
    future.suite = SUITE_VERSION + 1;
    let received = vec![
        // Claims nothing about reward: the receiver finds one right and one wrong answer.
        group(good.id, vec![good.answer.clone(), "x".into()]),
        group(future, vec!["<".into(), ">".into()]),
        group(good.id, vec!["<".into(), "9".repeat(500)]),
        // Scores fine (non-ASCII earns 0) but cannot be tokenized for training.
        group(good.id, vec![good.answer.clone(), "é".into()]),
        // Our own groups coming back are ignored.
        RolloutGroup { peer: "me".into(), ..group(good.id, vec!["<".into(), ">".into()]) },
    ];
    let (received, drops) = receive(received);
    assert_eq!(drops.unknown_question, 1);
    assert_eq!(drops.too_long, 1);
    // Checked once, before the peer: what reaches it carries the receiver's own rewards.
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].rewards(), vec![tabswarm_protocol::tasks::MAX_REWARD, 0.0]);
    let stats = block_on(peer.train_round(&own, received)).expect("train");
    assert_eq!(peer.untrainable, 1);
    assert_eq!(stats.untrainable, 1);
    assert_eq!(stats.trained_external, 1, "{stats:?}");
    assert_eq!(peer.policy_version(), 1);
    assert!(stats.loss.is_some());
    let asked: u32 = stats.correct.values().map(|(_, n)| n).sum();
    assert_eq!(asked, 8);
}

#[test]
fn bad_rl_settings_are_refused() {
    let device = Device::flex();
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    for (config, message) in [
        (RlConfig { families: vec![], ..tiny_rl(2, 2) }, "at least one task family"),
        (RlConfig { group_size: 1, ..tiny_rl(2, 2) }, "group size 1 is outside 2..=32"),
        (RlConfig { local: 3, ..tiny_rl(2, 2) }, "3 local groups cannot come from 2 questions"),
        (RlConfig { max_difficulty: 0, ..tiny_rl(2, 2) }, "difficulty 0 is outside 1..=5"),
    ] {
        let err = Peer::new("p", model.clone(), config, &device, 1).expect_err("refused");
        assert!(err.to_string().contains(message), "{err}");
    }
}

/// The experiment harness end to end on a tiny configuration: two peers, three rounds, with and
/// without sharing.
#[test]
fn the_harness_runs_a_tiny_experiment() {
    let device = Device::flex();
    device.seed(2);
    let base = ModelSize::Tiny.config().init(&device).expect("model");
    let arm = |local, external| Arm { peers: 2, rounds: 3, seed: 1, rl: tiny_rl(local, external), eval_per_family: 2 };
    let alone = block_on(run_arm(&base, &arm(2, 0), &device, &mut |_, _| {})).expect("alone");
    let shared = block_on(run_arm(&base, &arm(1, 1), &device, &mut |_, _| {})).expect("shared");
    for result in [&alone, &shared] {
        assert_eq!(result.reward_per_round.len(), 3);
        let sum: f32 = result.reward_per_round.iter().map(|r| r * 2.0).sum();
        assert!((sum - result.cumulative_reward).abs() < 1e-4, "{result:?}");
        assert_eq!(result.final_accuracy.len(), 2);
        assert_eq!(result.dropped, 0);
        assert!(result.local_used <= result.local as f32 && result.external_used <= result.external as f32);
    }
    assert_eq!(alone.external_used, 0.0);
}

#[test]
fn groups_per_step_splits_a_round_into_steps() {
    let device = Device::flex();
    device.seed(6);
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    let config = RlConfig { groups_per_step: 1, ..tiny_rl(0, 3) };
    let mut peer = Peer::new("me", model, config, &device, 4).expect("peer");
    let informative = |seed| {
        let q = generate(Family::Compare, 1, seed).expect("q");
        RolloutGroup {
            question: q.id,
            peer: "them".into(),
            policy_version: 0,
            completions: vec![q.answer, "x".into()],
            rewards: Vec::new(),
        }
    };
    let silent = RolloutGroup { completions: vec!["x".into(), "y".into()], ..informative(9) };
    let (received, _) = receive(vec![informative(1), silent, informative(2)]);
    let stats = block_on(peer.train_round(&[], received)).expect("round");
    // Two groups with a reward spread, one per step; the silent one is not trained on.
    assert_eq!((stats.trained_local, stats.trained_external), (0, 2));
    assert_eq!(peer.policy_version(), 2);
}

#[test]
fn the_bus_scores_what_is_published_once_and_counts_refusals() {
    let good = generate(Family::Compare, 1, 3).expect("q");
    let mut future = good.id;
    future.suite = SUITE_VERSION + 1;
    let group = |question: QuestionId| RolloutGroup {
        question,
        peer: "p".into(),
        policy_version: 0,
        completions: vec![good.answer.clone(), "x".into()],
        rewards: Vec::new(),
    };
    let mut bus = MemoryBus::default();
    bus.publish([group(good.id), group(future), RolloutGroup { rewards: vec![0.0, 0.0], ..group(good.id) }]);
    let delivered = bus.deliver();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].rewards(), vec![tabswarm_protocol::tasks::MAX_REWARD, 0.0]);
    assert_eq!((bus.drops.unknown_question, bus.drops.reward_mismatch), (1, 1));
    assert!(matches!(score_group(group(future)), Err(DropReason::UnknownQuestion { .. })));
    bus.next_round();
    assert!(bus.deliver().is_empty());
}

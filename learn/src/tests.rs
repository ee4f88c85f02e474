use burn::tensor::Device;
use pollster::block_on;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tabswarm_model::ModelSize;
use tabswarm_protocol::rollout::{DropCounts, DropReason, RolloutGroup, ScoredGroup, score_group};
use tabswarm_protocol::tasks::{FORMAT_REWARD, Family, QuestionId, SUITE_VERSION, generate};

use tabswarm_aggregate::OuterConfig;

use super::experiment::{Arm, Attack, MemoryBus, SwarmSync, agreement_of, run_arm};
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
        (RlConfig { partial_credit: 1.5, ..tiny_rl(2, 2) }, "partial-credit weight is from 0 (off) to 1, not 1.5"),
        (RlConfig { partial_credit: f32::NAN, ..tiny_rl(2, 2) }, "partial-credit weight is from 0 (off) to 1, not NaN"),
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
    let arm = |local, external| Arm {
        peers: 2,
        rounds: 3,
        seed: 1,
        rl: tiny_rl(local, external),
        eval_per_family: 2,
        ..Arm::default()
    };
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

#[test]
fn the_curriculum_moves_a_familys_level_with_its_success_rate() {
    let device = Device::flex();
    device.seed(7);
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    let curriculum = Curriculum { low: 0.2, high: 0.8, window: 4, revisit: 1 };
    let config =
        RlConfig { families: vec![Family::Compare], max_difficulty: 3, curriculum: Some(curriculum), ..tiny_rl(1, 0) };
    let mut peer = Peer::new("me", model, config, &device, 4).expect("peer");
    assert_eq!(peer.level(Family::Compare), 1);
    // Own groups of four completions, `right` of them correct, at the peer's current level.
    let own = |peer: &Peer, seed, right: usize| {
        let q = generate(Family::Compare, peer.level(Family::Compare), seed).expect("q");
        let completions = (0..4).map(|i| if i < right { q.answer.clone() } else { "?".into() }).collect();
        let (groups, _) = receive(vec![RolloutGroup {
            question: q.id,
            peer: "me".into(),
            policy_version: 0,
            completions,
            rewards: vec![],
        }]);
        groups
    };
    // All right: one window (4 completions) later the level is up one, then up to the cap of 3.
    for (seed, expected) in [(1, 2), (2, 3), (3, 3)] {
        let groups = own(&peer, seed, 4);
        block_on(peer.train_round(&groups, vec![])).expect("round");
        assert_eq!(peer.level(Family::Compare), expected);
    }
    // Inside the band (2 of 4): it stays.
    let groups = own(&peer, 4, 2);
    block_on(peer.train_round(&groups, vec![])).expect("round");
    assert_eq!(peer.level(Family::Compare), 3);
    // All wrong: down one per window.
    let groups = own(&peer, 5, 0);
    block_on(peer.train_round(&groups, vec![])).expect("round");
    assert_eq!(peer.level(Family::Compare), 2);
    // The next round asks at that level, and the level is in every question id.
    let asked = block_on(peer.generate_round()).expect("round");
    assert!(asked.iter().all(|g| g.question.id.difficulty == 2), "{:?}", asked[0].question.id);
    let bad = RlConfig { curriculum: Some(Curriculum { low: 0.9, high: 0.1, window: 4, revisit: 1 }), ..tiny_rl(1, 0) };
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    let err = Peer::new("p", model, bad, &device, 1).expect_err("refused");
    assert!(err.to_string().contains("curriculum band"), "{err}");
}

#[test]
fn a_mastered_family_is_asked_one_turn_in_revisit_and_its_other_turns_go_to_the_rest() {
    let device = Device::flex();
    device.seed(7);
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    // Three families in turn, one question a round, levels 1..=2; a window of 4 completions.
    let families = vec![Family::Compare, Family::Add, Family::Reverse];
    let curriculum = Curriculum { low: 0.2, high: 0.8, window: 4, revisit: 3 };
    let config = RlConfig {
        families: families.clone(),
        max_difficulty: 2,
        questions_per_round: 1,
        curriculum: Some(curriculum),
        ..tiny_rl(1, 0)
    };
    let mut peer = Peer::new("me", model, config, &device, 4).expect("peer");
    // A group of four of `family` at its level, `right` of them correct.
    let own = |peer: &Peer, family, seed, right: usize| {
        let q = generate(family, peer.level(family), seed).expect("q");
        let completions = (0..4).map(|i| if i < right { q.answer.clone() } else { "?".into() }).collect();
        receive(vec![RolloutGroup {
            question: q.id,
            peer: "me".into(),
            policy_version: 0,
            completions,
            rewards: vec![],
        }])
        .0
    };
    // The family a round asks (the round then ends without training).
    let asked = |peer: &mut Peer| {
        let groups = block_on(peer.generate_round()).expect("round");
        block_on(peer.train_round(&[], vec![])).expect("round");
        assert_eq!(groups.len(), 1);
        groups[0].question.id.family
    };
    // compare all right at level 1 moves it to the top (2); all right there masters it; all right
    // below the top never does.
    block_on(peer.train_round(&own(&peer, Family::Compare, 1, 4), vec![])).expect("round");
    assert_eq!((peer.level(Family::Compare), peer.is_mastered(Family::Compare)), (2, false));
    block_on(peer.train_round(&own(&peer, Family::Compare, 2, 4), vec![])).expect("round");
    assert_eq!((peer.level(Family::Compare), peer.is_mastered(Family::Compare)), (2, true));
    assert_eq!(peer.curriculum_level(Family::Compare), Some(2));
    // Rounds so far: 2, so the turns run add, reverse, compare, add, …; compare's turns go compare
    // (one in three), add, add, compare (…), i.e. its skipped turns go to the next family, add.
    let seen: Vec<Family> = (0..9).map(|_| asked(&mut peer)).collect();
    use Family::{Add, Compare, Reverse};
    assert_eq!(seen, [Reverse, Compare, Add, Reverse, Add, Add, Reverse, Add, Add]);
    // Below the band at the top it is no longer mastered and is asked on every turn again.
    block_on(peer.train_round(&own(&peer, Family::Compare, 3, 0), vec![])).expect("round");
    assert!(!peer.is_mastered(Family::Compare));
    assert_eq!(peer.level(Family::Compare), 1);
    // 12 rounds now: the turns are compare, add, reverse.
    let seen: Vec<Family> = (0..3).map(|_| asked(&mut peer)).collect();
    assert_eq!(seen, [Compare, Add, Reverse]);
    // Without a curriculum there is no level to report; revisit 0 is refused with the reason.
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    let plain = Peer::new("p", model, tiny_rl(1, 0), &device, 1).expect("peer");
    assert_eq!(plain.curriculum_level(Family::Compare), None);
    let bad = RlConfig { curriculum: Some(Curriculum { revisit: 0, ..Curriculum::default() }), ..tiny_rl(1, 0) };
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    let err = Peer::new("p", model, bad, &device, 1).expect_err("refused");
    assert!(err.to_string().contains("revisit must be at least 1"), "{err}");
}

fn swarm_arm(peers: usize, rounds: u64, every: u64, attack: Option<Attack>) -> Arm {
    Arm {
        name: "meta".into(),
        peers,
        rounds,
        seed: 3,
        rl: tiny_rl(2, 0),
        eval_per_family: 2,
        swarm: Some(SwarmSync { every, outer: OuterConfig::default() }),
        heldout: Some((HeldOut { levels: vec![1], per_level: 4 }, every)),
        attack,
        join: None,
        families_per_peer: None,
    }
}

/// A base that answers `compare` in its shape after a few supervised steps, so RL groups carry
/// signal and peers' updates are not zero.
fn warm_base(device: &Device) -> tabswarm_model::Model {
    let families = [Family::Compare, Family::Add];
    block_on(crate::pretrain::quick_base(ModelSize::Tiny, &families, 40, 16, device)).expect("warm").0
}

/// The swarm model in the harness: every `every` rounds the peers' updates make one version, with
/// its lineage, and every peer continues from it.
#[test]
fn the_harness_feeds_a_swarm_model_and_peers_follow_its_versions() {
    let device = Device::flex();
    let base = warm_base(&device);
    let result = block_on(run_arm(&base, &swarm_arm(3, 4, 2, None), &device, &mut |_, _| {})).expect("run");
    assert_eq!(result.versions.len(), 2, "{:?}", result.versions);
    let base_hash = tabswarm_aggregate::params_hash(&block_on(tabswarm_model::params::flatten(&base)).expect("flat"));
    assert_eq!(result.versions[0].parent.as_deref(), Some(base_hash.as_str()));
    assert_eq!(result.versions[1].parent.as_deref(), Some(result.versions[0].hash.as_str()));
    assert_eq!(result.versions.iter().map(|v| v.number).collect::<Vec<_>>(), [1, 2]);
    for v in &result.versions {
        assert_eq!(v.contributors, ["peer-0", "peer-1", "peer-2"]);
    }
    // Evaluated at rounds 2 and 4 (the syncs), against the base first.
    assert_eq!(result.heldout.iter().map(|p| p.0).collect::<Vec<_>>(), [2, 4]);
    assert!(result.heldout_base.is_some() && result.gain_over_base.is_some());
    // 8-bit updates: a byte per parameter plus a 4-byte scale per 64 (≈ 1.07 of the model's f32
    // size / 4), every sync, from every peer.
    let (update, model) = result.update_bytes.expect("sizes");
    let quarter = model as f64 / 4.0;
    assert!(
        update as f64 >= quarter && (update as f64) <= quarter * 1.07 + 512.0,
        "update {update} B, model {model} B"
    );
    assert!((result.bytes_per_peer - 2.0 * update as f64).abs() < 1.0, "{}", result.bytes_per_peer);
    assert!(result.refused.is_empty(), "{:?}", result.refused);
}

/// One attacker in eight, at every sync: a scaled update is refused as an outlier, a sign-flipped
/// one as pulling against the swarm or its heading, so the swarm model ends exactly where it ends
/// without it (the attacker's own honest work is lost, so its seven partners' average decides).
#[test]
fn an_attacker_among_eight_is_refused_at_every_sync() {
    let device = Device::flex();
    let base = warm_base(&device);
    let clean = block_on(run_arm(&base, &swarm_arm(8, 4, 2, None), &device, &mut |_, _| {})).expect("clean");
    // A flip at the first sync, before the swarm has a heading, is refused against the median;
    // at the second, against the heading (the screen that comes first).
    for (attack, reasons) in [
        (Attack::Scale(100.0), vec![("norm_outlier", 2)]),
        (Attack::SignFlip, vec![("against_heading", 1), ("opposes_swarm", 1)]),
    ] {
        let attacked =
            block_on(run_arm(&base, &swarm_arm(8, 4, 2, Some(attack)), &device, &mut |_, _| {})).expect("attacked");
        let refused: Vec<(&str, u64)> = attacked.refused.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(refused, reasons, "{attack:?} (an honest update refused?)");
        for v in &attacked.versions {
            assert!(!v.contributors.contains(&"peer-0".to_string()) && v.updates == 7, "{v:?}");
        }
        let (a, c) = (attacked.heldout.last().expect("ok").1, clean.heldout.last().expect("ok").1);
        assert!((a - c).abs() <= 0.1, "{attack:?}: held-out {a} against {c} without the attacker");
        // Every update of both syncs is on record, the attacker's marked; the momentum is known
        // from the second sync on.
        let rows = &attacked.agreement;
        assert_eq!(rows.len(), 16, "{rows:?}");
        assert_eq!(rows.iter().filter(|r| r.attacker).map(|r| (r.round, r.peer)).collect::<Vec<_>>(), [(2, 0), (4, 0)]);
        assert!(rows.iter().all(|r| r.with_momentum.is_some() == (r.round == 4)), "{rows:?}");
        if attack == Attack::SignFlip {
            // What the relay refused it for: it points against the median update.
            assert!(rows.iter().filter(|r| r.attacker).all(|r| r.with_median.is_some_and(|c| c < 0.0)), "{rows:?}");
        }
    }
}

/// The agreement record against hand-computed cosines: the median of (1,1,0), (1,0,1), (−1,−1,0)
/// is (1,0,0); the swarm heads along −velocity = (0,1,0); no heading before the first step.
#[test]
fn agreement_is_the_cosine_with_the_median_update_and_with_the_heading() {
    let updates =
        vec![(0, true, vec![-1.0, -1.0, 0.0]), (1, false, vec![1.0, 1.0, 0.0]), (2, false, vec![1.0, 0.0, 1.0])];
    let rows = agreement_of(10, &updates, &[0.0, -1.0, 0.0]);
    let half = std::f32::consts::FRAC_1_SQRT_2;
    let got: Vec<(usize, bool, f32, f32)> = rows
        .iter()
        .map(|r| (r.peer, r.attacker, r.with_median.expect("defined"), r.with_momentum.expect("a heading")))
        .collect();
    for ((peer, attacker, median, heading), want) in
        got.iter().zip([(0, true, -half, -half), (1, false, half, half), (2, false, half, 0.0)])
    {
        assert_eq!((*peer, *attacker), (want.0, want.1));
        assert!((median - want.2).abs() < 1e-6 && (heading - want.3).abs() < 1e-6, "{got:?}");
    }
    assert!(rows.iter().all(|r| r.round == 10));
    // Against the others' median alone, the flip's own pull is gone: the median of (1,1,0) and
    // (1,0,1) is their mean (1, ½, ½), and (−1,−1,0) has cosine −1.5 / (√2 · √1.5) with it.
    let others = rows[0].with_others_median.expect("defined");
    assert!((others + 1.5 / (2.0f32.sqrt() * 1.5f32.sqrt())).abs() < 1e-6, "{others}");
    let first = agreement_of(10, &updates, &[0.0; 3]);
    assert!(first.iter().all(|r| r.with_momentum.is_none()), "{first:?}");
    assert!(agreement_of(10, &[], &[0.0; 3]).is_empty());
}

/// "Join for an hour": a peer joins the running swarm at round 2 from the swarm model's version
/// then, feeds the next two versions, and leaves after 4 rounds with its model, evaluated.
#[test]
fn a_peer_joins_a_running_swarm_feeds_its_versions_and_leaves_with_a_model() {
    let device = Device::flex();
    let base = warm_base(&device);
    let arm = Arm { join: Some((2, 4)), ..swarm_arm(3, 6, 2, None) };
    let result = block_on(run_arm(&base, &arm, &device, &mut |_, _| {})).expect("run");
    let join = result.join.expect("the joiner's result");
    assert_eq!((join.at, join.rounds), (2, 4));
    // Syncs after rounds 2, 4 and 6; it joined after the first: it fed the last two.
    assert_eq!(result.versions.len(), 3);
    let fed: Vec<&str> = result.versions[1..].iter().map(|v| v.hash.as_str()).collect();
    assert_eq!(join.versions_fed.iter().map(String::as_str).collect::<Vec<_>>(), fed);
    assert!(result.versions[1..].iter().all(|v| v.updates == 4), "{:?}", result.versions);
    assert_eq!(result.versions[0].updates, 3);
    // It left with the last version (it synced at its last round), whose accuracy the arm's last
    // evaluation also measured.
    assert_eq!(join.per_family.len(), 2);
    assert!((join.accuracy - result.heldout.last().expect("evaluated").1).abs() < 1e-6);
}

#[test]
fn a_run_answers_a_typed_question_as_the_greedy_evaluation_answers_it() {
    use crate::run::{Backend, RunPlan, TrainingRun};
    let bytes =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../checkpoints/base-small-seed1.tswm")).expect("base");
    let device = Device::flex();
    let run = TrainingRun::from_checkpoint(&bytes, &device, Backend::Cpu, RunPlan::solo(1, 1)).expect("run");
    let greedy = tabswarm_model::SamplingConfig { temperature: 0.0, max_new_tokens: 16, ..Default::default() };
    let mut right = 0;
    for family in [Family::Reverse, Family::Add, Family::Compare] {
        for seed in 0..4 {
            let question = generate(family, 2, EVAL_SEED_BASE + seed).expect("q");
            let posed = tabswarm_protocol::tasks::pose(&question.prompt).expect("a suite question");
            let answer = block_on(run.answer(&posed)).expect("answer");
            let reference =
                block_on(complete(&run_model(&run), std::slice::from_ref(&question), 1, &greedy, &device)).expect("c");
            assert_eq!(answer, reference[0][0], "{}", question.prompt);
            right += usize::from(tabswarm_protocol::tasks::verify_posed(&posed, &answer).correct);
        }
    }
    // The base reverses letters (100 % held-out): the answers are the model's, not noise.
    assert!(right >= 4, "{right} of 12 right");
}

fn run_model(run: &crate::run::TrainingRun) -> tabswarm_model::Model {
    let bytes = block_on(run.checkpoint()).expect("checkpoint");
    tabswarm_model::checkpoint::load(&bytes, None, &Device::flex()).expect("load").0
}

/// Specialised peers: with 8 peers asking 2 of 8 families each, every family is asked by exactly
/// two peers, and each peer asks its own two, four questions each per round.
#[test]
fn specialised_peers_split_the_families_evenly_and_ask_only_their_own() {
    use super::experiment::families_of_peer;
    let all = Family::ALL;
    let mut askers = std::collections::BTreeMap::<Family, usize>::new();
    for i in 0..8 {
        let own = families_of_peer(&all, i, 2);
        assert_eq!(own.len(), 2, "peer {i}: {own:?}");
        assert_ne!(own[0], own[1]);
        for family in own {
            *askers.entry(family).or_default() += 1;
        }
    }
    assert!(askers.len() == all.len() && askers.values().all(|&n| n == 2), "{askers:?}");
    assert_eq!(families_of_peer(&all, 3, 0).len(), 1, "at least one family");
    assert_eq!(families_of_peer(&all, 3, 99), families_of_peer(&all, 0, 8), "at most all, each once");

    let device = Device::flex();
    let base = warm_base(&device);
    let families = vec![Family::Reverse, Family::Compare];
    let arm = Arm {
        families_per_peer: Some(1),
        rl: RlConfig { families, ..swarm_arm(2, 2, 2, None).rl },
        ..swarm_arm(2, 2, 2, None)
    };
    let result = block_on(run_arm(&base, &arm, &device, &mut |_, _| {})).expect("run");
    // Evaluated on both families although each peer trained on one.
    assert_eq!(result.heldout_final.len(), 2, "{:?}", result.heldout_final);
}

/// On a GPU a round's questions, whatever their prompt lengths, are sampled in one left-padded
/// batch (issue 20): the same greedy completions as the CPU's one batch per length, read back
/// once (six new tokens fit one window of eight) where one batch per length reads once each.
#[test]
fn a_round_is_sampled_in_one_batch_on_the_gpu_with_the_cpu_s_completions() {
    if std::env::var_os("TABSWARM_SKIP_GPU").is_some() {
        return;
    }
    let cpu = Device::flex();
    cpu.seed(3);
    let config = ModelSize::Tiny.config();
    let model = config.init(&cpu).expect("model");
    let bytes = tabswarm_model::checkpoint::save(&model, &config, 0).expect("save");
    let gpu = Device::wgpu(Default::default());
    let (on_gpu, _) = tabswarm_model::checkpoint::load(&bytes, Some(&config), &gpu).expect("load on wgpu");
    let questions: Vec<Question> =
        [Family::Add, Family::Compare, Family::Reverse, Family::SortDigits, Family::MulDigit]
            .iter()
            .enumerate()
            .map(|(i, &family)| generate(family, 1 + (i % 2) as u8, i as u64).expect("question"))
            .collect();
    let lengths: std::collections::BTreeSet<usize> = questions.iter().map(|q| q.prompt.len()).collect();
    assert!(lengths.len() >= 3, "prompts of several lengths: {lengths:?}");
    let greedy = SamplingConfig { temperature: 0.0, max_new_tokens: 6, ..SamplingConfig::default() };
    let on_cpu = block_on(complete(&model, &questions, 2, &greedy, &cpu)).expect("cpu");
    let meter = tabswarm_kernels::work::WorkMeter::start();
    let together = block_on(complete(&on_gpu, &questions, 2, &greedy, &gpu)).expect("gpu");
    let work = meter.read();
    assert_eq!(together, on_cpu, "the GPU's one batch gives the CPU's completions");
    assert_eq!(work.readbacks, 1, "one generation for {} prompt lengths: {work:?}", lengths.len());
}

/// Partial credit reaches the advantages only: a group of wrong sums, one closer than the other,
/// carries no signal on the verified reward and some with the weight set; the verified rewards,
/// which are what is shared and credited, are the same either way.
#[test]
fn partial_credit_shapes_the_training_reward_and_nothing_else() {
    let device = Device::flex();
    let model = ModelSize::Tiny.config().init(&device).expect("model");
    let id = QuestionId::new(Family::Add, 1, 7);
    let answer = generate(Family::Add, 1, 7).expect("q").answer;
    // Wrong by the leading digit (all but one character right), and wrong in every position.
    let close = format!("9{answer}");
    let far: String = answer.chars().map(|c| if c == '1' { '2' } else { '1' }).collect();
    let group = score_group(RolloutGroup {
        question: id,
        peer: "p".into(),
        policy_version: 0,
        completions: vec![close.clone(), far.clone()],
        rewards: Vec::new(),
    })
    .expect("valid group");
    assert_eq!(group.rewards(), vec![FORMAT_REWARD, FORMAT_REWARD]);
    assert!(!group.has_signal());

    let plain = Peer::new("p", model.clone(), tiny_rl(2, 0), &device, 1).expect("peer");
    assert_eq!(plain.training_rewards(&group), group.rewards());
    assert_eq!(tabswarm_model::group_advantages(&plain.training_rewards(&group)), None);

    let shaped = Peer::new("p", model, RlConfig { partial_credit: 0.5, ..tiny_rl(2, 0) }, &device, 1).expect("peer");
    let n = answer.len() as f32;
    let expected = [FORMAT_REWARD + 0.5 * n / (n + 1.0), FORMAT_REWARD];
    let got = shaped.training_rewards(&group);
    assert!((got[0] - expected[0]).abs() < 1e-6 && got[1] == expected[1], "{got:?} against {expected:?}");
    let advantages = tabswarm_model::group_advantages(&got).expect("signal now");
    assert!(advantages[0] > 0.0 && advantages[1] < 0.0, "{advantages:?}");
    assert_eq!(group.rewards(), vec![FORMAT_REWARD, FORMAT_REWARD], "the verified rewards are untouched");
}

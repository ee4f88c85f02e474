use super::*;

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < 1e-5, "index {i}: {x} vs {y} (all: {a:?} vs {b:?})");
    }
}

fn update(base: &str, peer: &str, delta: &[f32]) -> ModelUpdate {
    ModelUpdate::compress(UpdateHeader { base: base.into(), peer: peer.into(), rounds: 1, params: 0 }, delta)
        .expect("ok")
}

/// Deltas that 8-bit compression keeps exactly: the block's largest magnitude is 1.27, so the
/// step is 0.01 and every multiple of it comes back as sent.
fn exact(values: &[f32]) -> Vec<f32> {
    assert!(values.iter().any(|v| v.abs() == 1.27));
    values.to_vec()
}

#[test]
fn rules_match_hand_computed_aggregates() {
    let a = [1.0, 2.0, -3.0];
    let b = [3.0, 0.0, -1.0];
    let c = [2.0, 10.0, 100.0];
    let all: [&[f32]; 3] = [&a, &b, &c];
    close(&aggregate(&all, Rule::Mean), &[2.0, 4.0, 32.0]);
    close(&aggregate(&all, Rule::Median), &[2.0, 2.0, -1.0]);
    // Trimming one from each side of three leaves the median.
    close(&aggregate(&all, Rule::TrimmedMean { trim: 1 }), &[2.0, 2.0, -1.0]);
    close(&aggregate(&all, Rule::TrimmedMean { trim: 0 }), &[2.0, 4.0, 32.0]);
    // Even count: the median is the mean of the middle two.
    let d = [0.0, 4.0, 0.0];
    close(&aggregate(&[&a, &b, &c, &d], Rule::Median), &[1.5, 3.0, -0.5]);
    close(&aggregate(&[&a, &b, &c, &d], Rule::TrimmedMean { trim: 1 }), &[1.5, 3.0, -0.5]);
    // Too few to trim two per side: the median.
    close(&aggregate(&all, Rule::TrimmedMean { trim: 2 }), &[2.0, 2.0, -1.0]);
}

#[test]
fn clipped_mean_scales_long_updates_down_to_the_limit() {
    // Norms 5, 1, 100: median 5, limit 2 × 5 = 10, so the third is scaled by 10 / 100.
    let a = [3.0, 4.0];
    let b = [0.0, 1.0];
    let c = [60.0, 80.0];
    let got = aggregate(&[&a, &b, &c], Rule::ClippedMean { multiplier: 2.0 });
    close(&got, &[(3.0 + 0.0 + 6.0) / 3.0, (4.0 + 1.0 + 8.0) / 3.0]);
}

#[test]
fn nesterov_outer_step_matches_hand_computation() {
    let config = OuterConfig { outer_lr: 0.7, momentum: 0.9, nesterov: true, ..OuterConfig::default() };
    let mut params = vec![1.0, 2.0];
    let mut velocity = vec![0.0, 0.0];
    let agg = [0.1, -0.2];
    // g = −agg = (−0.1, 0.2); v = g; step = g + 0.9·v = 1.9·g; θ = θ − 0.7·1.9·g.
    outer_step(&mut params, &mut velocity, &agg, &config);
    close(&velocity, &[-0.1, 0.2]);
    close(&params, &[1.0 + 0.133, 2.0 - 0.266]);
    // Again: v = 0.9·g + g = 1.9·g; step = g + 0.9·1.9·g = 2.71·g.
    outer_step(&mut params, &mut velocity, &agg, &config);
    close(&velocity, &[-0.19, 0.38]);
    close(&params, &[1.133 + 0.7 * 0.271, 1.734 - 0.7 * 0.542]);
    // Heavy-ball: θ − lr·v.
    let heavy = OuterConfig { nesterov: false, ..config };
    let (mut p, mut v) = (vec![0.0], vec![1.0]);
    outer_step(&mut p, &mut v, &[0.5], &heavy);
    close(&v, &[0.9 - 0.5]);
    close(&p, &[-0.7 * 0.4]);
    // lr 1, no momentum: the version becomes the average of the peers' models (FedAvg).
    let fedavg = OuterConfig { outer_lr: 1.0, momentum: 0.0, ..OuterConfig::default() };
    let (mut p, mut v) = (vec![1.0, 1.0], vec![0.0, 0.0]);
    outer_step(&mut p, &mut v, &[0.25, -0.5], &fedavg);
    close(&p, &[1.25, 0.5]);
}

fn swarm(base: Vec<f32>) -> SwarmModel {
    SwarmModel::new(base, OuterConfig { rule: Rule::Mean, outer_lr: 1.0, momentum: 0.0, ..OuterConfig::default() })
}

#[test]
fn a_step_publishes_a_version_with_its_lineage() {
    let base = vec![0.5, -0.5, 1.0];
    let mut model = swarm(base.clone());
    let v0 = model.lineage().clone();
    assert_eq!(v0, Lineage { hash: params_hash(&base), number: 0, parent: None, contributors: vec![], updates: 0 });
    model.submit(&update(&v0.hash, "peer-b", &exact(&[0.1, 0.2, 1.27])), true).expect("ok");
    model.submit(&update(&v0.hash, "peer-a", &exact(&[0.3, 0.0, -1.27])), true).expect("ok");
    assert_eq!(model.pending(), 2);
    let outcome = model.step();
    let v1 = outcome.version.expect("a new version");
    close(model.params(), &[0.7, -0.4, 1.0]);
    assert_eq!(v1.hash, params_hash(model.params()));
    assert_eq!(v1.number, 1);
    assert_eq!(v1.parent.as_deref(), Some(v0.hash.as_str()));
    assert_eq!(v1.contributors, ["peer-a", "peer-b"]);
    assert_eq!(v1.updates, 2);
    assert_eq!(model.pending(), 0);
    // No updates: no new version.
    assert_eq!(model.step().version, None);
    assert_eq!(model.lineage(), &v1);
    // Only zero updates (peers that learned nothing), no momentum: nothing moves, so no version
    // (it would have the same name as this one).
    model.submit(&update(&v1.hash, "peer-a", &[0.0; 3]), true).expect("ok");
    let outcome = model.step();
    assert_eq!((outcome.version, outcome.accepted.len()), (None, 1));
    assert_eq!(model.lineage(), &v1);
}

#[test]
fn the_same_updates_give_the_same_version_whatever_their_order() {
    let base = vec![0.0; 70];
    let deltas: Vec<Vec<f32>> =
        (0..5).map(|k| (0..70).map(|i| ((i * 7 + k * 13) % 11) as f32 * 0.01).collect()).collect();
    let mut one = SwarmModel::new(base.clone(), OuterConfig::default());
    let mut two = SwarmModel::new(base, OuterConfig::default());
    let hash = one.lineage().hash.clone();
    for (k, d) in deltas.iter().enumerate() {
        one.submit(&update(&hash, &format!("p{k}"), d), true).expect("ok");
    }
    for (k, d) in deltas.iter().enumerate().rev() {
        two.submit(&update(&hash, &format!("p{k}"), d), true).expect("ok");
    }
    assert_eq!(one.step().version, two.step().version);
    assert_eq!(one.params(), two.params());
}

#[test]
fn bad_updates_are_refused_with_their_reason_and_counted() {
    let mut model = swarm(vec![0.0; 4]);
    let v0 = model.lineage().hash.clone();
    let delta = [0.1, 0.1, 0.1, 0.1];
    assert!(matches!(model.submit(&update(&"00".repeat(32), "p", &delta), true), Err(Refusal::UnknownVersion { .. })));
    assert!(matches!(
        model.submit(&update(&v0, "p", &[0.1; 5]), true),
        Err(Refusal::WrongShape { expected: 4, found: 5 })
    ));
    assert!(matches!(model.submit(&update(&v0, "p", &delta), false), Err(Refusal::Unbound { .. })));
    model.submit(&update(&v0, "p", &delta), true).expect("ok");
    assert!(matches!(model.submit(&update(&v0, "p", &delta), true), Err(Refusal::Duplicate { .. })));
    // NaN in the bytes (a scale), and bytes that are no update at all.
    let mut bytes = update(&v0, "q", &delta).encode();
    let at = bytes.len() - 4 - 4;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(model.submit_bytes(&bytes, true).expect_err("refused").kind(), "non_finite");
    assert_eq!(model.submit_bytes(b"hello", true).expect_err("refused").kind(), "not_an_update");
    // A decoded update whose values and header disagree.
    let mut lying = update(&v0, "r", &delta);
    lying.header.params = 3;
    assert!(matches!(model.submit(&lying, true), Err(Refusal::WrongShape { .. })));
    model.step().version.expect("p's update went in");
    // An update for the version before the current one is too old.
    assert!(matches!(
        model.submit(&update(&v0, "s", &delta), true),
        Err(Refusal::TooOld { number: 0, current: 1, .. })
    ));
    let counts: Vec<(&str, u64)> = model.refused().iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        counts,
        [
            ("duplicate", 1),
            ("non_finite", 1),
            ("not_an_update", 1),
            ("too_old", 1),
            ("unbound", 1),
            ("unknown_version", 1),
            ("wrong_shape", 2)
        ]
    );
    // Unbound peers are accepted when the relay says so.
    let mut open = SwarmModel::new(vec![0.0; 4], OuterConfig { accept_unbound: true, ..OuterConfig::default() });
    let hash = open.lineage().hash.clone();
    open.submit(&update(&hash, "anon", &delta), false).expect("ok");
}

/// Seven honest updates around a common direction, with noise.
fn honest(n: usize, len: usize) -> Vec<Vec<f32>> {
    let mut state = 12345u64;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    (0..n).map(|_| (0..len).map(|i| 0.01 * ((i % 5) as f32 - 1.0) + 0.01 * noise()).collect()).collect()
}

#[test]
fn a_huge_or_sign_flipped_update_is_refused_at_the_step_and_the_rest_go_in() {
    let len = 300;
    for (attack, kind) in [(100.0f32, "norm_outlier"), (-1.0, "opposes_swarm")] {
        let mut model = SwarmModel::new(vec![0.0; len], OuterConfig::default());
        let hash = model.lineage().hash.clone();
        let updates = honest(7, len);
        for (k, u) in updates.iter().enumerate() {
            model.submit(&update(&hash, &format!("honest-{k}"), u), true).expect("ok");
        }
        let bad: Vec<f32> = updates[0].iter().map(|x| x * attack).collect();
        model.submit(&update(&hash, "attacker", &bad), true).expect("ok");
        let outcome = model.step();
        assert_eq!(outcome.refused.len(), 1, "{attack}: {:?}", outcome.refused);
        assert_eq!(outcome.refused[0].0, "attacker");
        assert_eq!(outcome.refused[0].1.kind(), kind);
        assert_eq!(outcome.accepted.len(), 7);
        assert_eq!(model.refused().get(kind), Some(&1));
        assert_eq!(outcome.version.expect("ok").contributors.len(), 7);
    }
}

#[test]
fn robust_rules_bound_what_one_attacker_can_do() {
    // With screening off, one update of 8 scaled by 1000 moves the mean far away, but a median,
    // a trimmed mean or a clipped mean stay near the honest mean.
    let len = 200;
    let updates = honest(7, len);
    let refs: Vec<&[f32]> = updates.iter().map(|u| u.as_slice()).collect();
    let honest_mean = aggregate(&refs, Rule::Mean);
    let attack: Vec<f32> = updates[0].iter().map(|x| x * -1000.0).collect();
    let mut all = refs.clone();
    all.push(&attack);
    let distance = |a: &[f32]| norm(&a.iter().zip(&honest_mean).map(|(x, y)| x - y).collect::<Vec<_>>());
    let scale = norm(&honest_mean);
    assert!(distance(&aggregate(&all, Rule::Mean)) > 10.0 * scale);
    for rule in [Rule::Median, Rule::TrimmedMean { trim: 1 }, Rule::ClippedMean { multiplier: 2.0 }] {
        let d = distance(&aggregate(&all, rule));
        assert!(d < 0.6 * scale, "{rule:?}: {d} against the honest mean's norm {scale}");
    }
}

#[test]
fn error_feedback_carries_what_rounding_left_out() {
    // A small value next to a large one rounds to zero every time alone, but error feedback sends
    // it eventually: after n updates the sum sent is within one step of the sum of the deltas.
    let delta = [1.0f32, 0.003];
    let mut compressor = Compressor::default();
    let header = UpdateHeader { base: "x".into(), peer: "p".into(), rounds: 1, params: 0 };
    let mut sent = [0.0f32; 2];
    for _ in 0..100 {
        let u = compressor.compress(header.clone(), &delta).expect("ok");
        for (s, v) in sent.iter_mut().zip(u.decompress()) {
            *s += v;
        }
    }
    assert!((sent[1] - 0.3).abs() < 1.0 / 127.0, "{sent:?}");
    assert!((sent[0] - 100.0).abs() < 1.0 / 127.0, "{sent:?}");
    let plain = ModelUpdate::compress(header, &delta).expect("ok").decompress();
    assert_eq!(plain[1], 0.0, "without feedback the small value is lost every time");
    for (r, (d, s)) in compressor.residual().iter().zip(delta.iter().map(|d| d * 100.0).zip(sent)) {
        assert!((r - (d - s)).abs() < 1e-3);
    }
}

#[test]
fn resume_continues_a_stored_version() {
    let mut model = swarm(vec![1.0, 2.0]);
    let hash = model.lineage().hash.clone();
    model.submit(&update(&hash, "p", &exact(&[0.5, 1.27])), true).expect("ok");
    let v1 = model.step().version.expect("ok");
    let config = OuterConfig { rule: Rule::Mean, outer_lr: 1.0, momentum: 0.0, ..OuterConfig::default() };
    let mut again = SwarmModel::resume(model.params().to_vec(), model.velocity().to_vec(), v1.clone(), config);
    assert_eq!(again.lineage(), &v1);
    again.submit(&update(&v1.hash, "p", &exact(&[0.5, 1.27])), true).expect("ok");
    assert_eq!(again.step().version.expect("ok").parent.as_deref(), Some(v1.hash.as_str()));
}

/// Each refusal's name is listed, and every listed name is some refusal's.
#[test]
fn every_refusal_kind_is_listed_once() {
    let s = String::new;
    let refusals = [
        Refusal::Malformed(UpdateError::NotAnUpdate),
        Refusal::Malformed(UpdateError::UnsupportedFormat { found: 9 }),
        Refusal::Malformed(UpdateError::Truncated(s())),
        Refusal::Malformed(UpdateError::BadHeader(s())),
        Refusal::Malformed(UpdateError::TooLarge { found: 1 }),
        Refusal::Malformed(UpdateError::WrongLength { expected: 1, found: 2 }),
        Refusal::Malformed(UpdateError::BadScale { block: 0 }),
        Refusal::Malformed(UpdateError::NonFinite { index: 0 }),
        Refusal::Malformed(UpdateError::BadEnvelope(s())),
        Refusal::Malformed(UpdateError::PeerMismatch { key_peer: s(), peer: s() }),
        Refusal::Malformed(UpdateError::BadSignature { peer: s() }),
        Refusal::UnknownVersion { base: s() },
        Refusal::TooOld { base: s(), number: 1, current: 2 },
        Refusal::WrongShape { expected: 1, found: 2 },
        Refusal::Unbound { peer: s() },
        Refusal::Duplicate { peer: s() },
        Refusal::NormOutlier { norm: 1.0, median: 0.1, ratio: 10.0 },
        Refusal::Opposes { cosine: -0.5 },
        Refusal::AgainstHeading { cosine: -0.5 },
    ];
    let given: std::collections::BTreeSet<&str> = refusals.iter().map(Refusal::kind).collect();
    let listed: std::collections::BTreeSet<&str> = REFUSAL_KINDS.into_iter().collect();
    assert_eq!(listed.len(), REFUSAL_KINDS.len(), "a name is listed twice");
    assert_eq!(given, listed);
}

/// Four updates of six parameters that agree with each other (each has cosine ≥ 0.1 with their
/// median), in hundredths; found by a search for the case below.
const FOUR: [[f32; 6]; 4] = [
    [-2.0, 2.0, 0.0, -2.0, -3.0, -2.0],
    [0.0, 1.0, 2.0, 0.0, 1.0, -3.0],
    [-3.0, 3.0, 0.0, 2.0, 2.0, 1.0],
    [0.0, 1.0, 1.0, 3.0, -1.0, 0.0],
];

fn four(sign: f32) -> Vec<Vec<f32>> {
    FOUR.iter().map(|u| u.iter().map(|x| sign * 0.01 * x).collect()).collect()
}

/// A model that has taken one step on [`FOUR`]: its heading is their mean.
fn moved_by_four(min_heading: f32) -> SwarmModel {
    let mut model = SwarmModel::new(vec![0.0; 6], OuterConfig { min_heading, ..OuterConfig::default() });
    let hash = model.lineage().hash.clone();
    for (k, u) in four(1.0).iter().enumerate() {
        model.submit(&update(&hash, &format!("p{k}"), u), true).expect("ok");
    }
    let first = model.step();
    assert!(first.refused.is_empty() && first.version.is_some(), "{first:?}");
    model
}

/// A sign flip the median screen misses: the median of a step's updates contains the flipped one,
/// which drags it along (here its cosine with the median is +0.54), while the swarm's heading,
/// made by earlier steps, points away from it (−0.56; the honest three: +0.55 to +0.66). With the
/// heading screen off, the flip goes in; with it (the default), it is refused as `against_heading`,
/// and nothing honest is.
#[test]
fn a_sign_flip_the_median_misses_is_refused_against_the_heading() {
    for (min_heading, refused_kind) in [(-1.0f32, None), (OuterConfig::default().min_heading, Some("against_heading"))]
    {
        let mut model = moved_by_four(min_heading);
        let hash = model.lineage().hash.clone();
        let updates = four(1.0);
        for (k, u) in updates.iter().enumerate().skip(1) {
            model.submit(&update(&hash, &format!("p{k}"), u), true).expect("ok");
        }
        let flipped: Vec<f32> = updates[0].iter().map(|x| -x).collect();
        model.submit(&update(&hash, "p0", &flipped), true).expect("ok");
        let outcome = model.step();
        let refused: Vec<(&str, &str)> = outcome.refused.iter().map(|(p, r)| (p.as_str(), r.kind())).collect();
        match refused_kind {
            None => {
                assert!(refused.is_empty(), "the median screen misses it: {refused:?}");
                assert_eq!(outcome.accepted.len(), 4);
            }
            Some(kind) => {
                assert_eq!(refused, [("p0", kind)]);
                assert_eq!(model.refused().get(kind), Some(&1));
                let Refusal::AgainstHeading { cosine } = outcome.refused[0].1 else { panic!("{:?}", outcome.refused) };
                assert!((cosine + 0.556).abs() < 0.01, "{cosine}");
                assert_eq!(outcome.accepted, ["p1", "p2", "p3"]);
            }
        }
    }
}

/// When most updates turn against the heading (the last step should be undone), none is refused
/// for it: the swarm follows them instead of stalling.
#[test]
fn the_heading_screen_never_refuses_a_majority() {
    let mut model = moved_by_four(OuterConfig::default().min_heading);
    let hash = model.lineage().hash.clone();
    for (k, u) in four(-1.0).iter().enumerate() {
        model.submit(&update(&hash, &format!("p{k}"), u), true).expect("ok");
    }
    let outcome = model.step();
    assert!(outcome.refused.is_empty(), "{:?}", outcome.refused);
    assert_eq!(outcome.accepted.len(), 4);
}

#[test]
fn a_cosine_flag_takes_minus_one_to_one_and_names_what_else_it_got() {
    assert_eq!(crate::parse_cosine("-1"), Ok(-1.0));
    assert_eq!(crate::parse_cosine(" 0.25 "), Ok(0.25));
    assert_eq!(crate::parse_cosine("1"), Ok(1.0));
    assert_eq!(crate::parse_cosine("1.5"), Err("a cosine is from -1 (off) to 1, not 1.5".into()));
    assert_eq!(crate::parse_cosine("-2"), Err("a cosine is from -1 (off) to 1, not -2".into()));
    let err = crate::parse_cosine("north").expect_err("not a number");
    assert!(err.starts_with("not a number (") && err.ends_with("a cosine is from -1 (off) to 1"), "{err}");
    assert!(crate::parse_cosine("NaN").is_err(), "NaN is no cosine");
}

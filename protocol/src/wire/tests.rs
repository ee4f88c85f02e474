use proptest::prelude::*;

use super::*;
use crate::tasks::{Family, MAX_DIFFICULTY, MIN_DIFFICULTY, QuestionId, generate};

const PEER: &str = "12D3KooWPeerUnderTest";

fn valid_group(family: Family, difficulty: u8, seed: u64, completions: Vec<String>) -> RolloutGroup {
    RolloutGroup {
        question: QuestionId::new(family, difficulty, seed),
        peer: PEER.into(),
        policy_version: 7,
        completions,
        rewards: Vec::new(),
    }
}

fn family() -> impl Strategy<Value = Family> {
    prop::sample::select(Family::ALL.to_vec())
}

fn group() -> impl Strategy<Value = RolloutGroup> {
    (family(), MIN_DIFFICULTY..=MAX_DIFFICULTY, any::<u64>(), prop::collection::vec("[ -~]{0,64}", 2..=8), any::<u64>())
        .prop_map(|(family, difficulty, seed, completions, version)| RolloutGroup {
            policy_version: version,
            ..valid_group(family, difficulty, seed, completions)
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        prop::collection::vec(group(), 1..=4).prop_map(|groups| Message::Rollouts { groups }),
        (prop::collection::vec(family(), 0..=8), "[ -~]{0,64}", any::<u64>()).prop_map(
            |(families, client, policy_version)| Message::Announce(Announcement {
                peer: PEER.into(),
                client,
                backend: "webgpu".into(),
                families,
                policy_version,
            })
        ),
    ]
}

proptest! {
    #[test]
    fn every_valid_message_round_trips(message in message()) {
        let bytes = encode(&message).expect("encodes");
        prop_assert!(bytes.len() <= MAX_MESSAGE_BYTES);
        let verified = decode(&bytes, PEER).expect("decodes");
        match (&message, verified) {
            (Message::Rollouts { groups }, Verified::Rollouts(scored)) => {
                let back: Vec<&RolloutGroup> = scored.iter().map(|s| &s.group).collect();
                prop_assert_eq!(back, groups.iter().collect::<Vec<_>>());
                // The receiver's scores are the verifier's, recomputed.
                for s in &scored {
                    let question = generate(s.group.question.family, s.group.question.difficulty, s.group.question.seed)
                        .expect("question");
                    let expected: Vec<_> = s.group.completions.iter().map(|c| crate::tasks::verify(&question, c)).collect();
                    prop_assert_eq!(&s.scores, &expected);
                }
            }
            (Message::Announce(sent), Verified::Announce(got)) => prop_assert_eq!(sent, &got),
            (sent, got) => prop_assert!(false, "sent {sent:?}, got {got:?}"),
        }
    }

    #[test]
    fn random_bytes_are_refused_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(decode(&bytes, PEER).is_err());
    }

    #[test]
    fn damaged_messages_never_panic_and_never_change_a_group_unnoticed(
        message in message(), position in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let mut bytes = encode(&message).expect("encodes");
        let at = position.index(bytes.len());
        bytes[at] = byte;
        // Any outcome but a panic is allowed; a message that still decodes decodes to a valid one.
        if let Ok(Verified::Rollouts(scored)) = decode(&bytes, PEER) {
            for s in scored {
                prop_assert!(crate::rollout::score_group(s.group).is_ok());
            }
        }
    }
}

fn refusal(bytes: &[u8]) -> WireError {
    decode(bytes, PEER).expect_err("refused")
}

#[test]
fn bad_messages_are_refused_with_the_reason() {
    let answer = generate(Family::Add, 2, 5).expect("question").answer;
    let good = valid_group(Family::Add, 2, 5, vec![answer, "0".into()]);
    let rollouts = |groups: Vec<RolloutGroup>| {
        serde_json::to_vec(&Envelope { v: WIRE_VERSION, message: Message::Rollouts { groups } }).expect("json")
    };

    assert_eq!(refusal(&vec![b' '; MAX_MESSAGE_BYTES + 1]), WireError::TooLarge { bytes: MAX_MESSAGE_BYTES + 1 });
    assert_eq!(refusal(br#"{"v":2,"type":"rollouts","groups":[],"new_field":1}"#), WireError::WrongVersion { got: 2 });
    assert!(matches!(refusal(b"not json"), WireError::Malformed(_)));
    assert!(
        matches!(refusal(br#"{"v":1,"type":"shout","text":"hi"}"#), WireError::Malformed(m) if m.contains("unknown variant"))
    );
    assert_eq!(refusal(&rollouts(vec![])), WireError::GroupCount { count: 0 });
    assert_eq!(
        refusal(&rollouts(vec![good.clone(); MAX_GROUPS_PER_MESSAGE + 1])),
        WireError::GroupCount { count: MAX_GROUPS_PER_MESSAGE + 1 }
    );

    let mut forged = good.clone();
    forged.peer = "12D3KooWSomeoneElse".into();
    let err = refusal(&rollouts(vec![good.clone(), forged]));
    assert_eq!(err.kind(), "not_the_publisher");
    assert!(err.to_string().contains("group 1 was made by \"12D3KooWSomeoneElse\""), "{err}");

    let mut unknown = good.clone();
    unknown.question.difficulty = 9;
    let err = refusal(&rollouts(vec![unknown]));
    assert_eq!(err.kind(), "unknown_question");
    assert!(err.to_string().contains("group 0: question"), "{err}");

    let err = refusal(&rollouts(vec![valid_group(Family::Add, 2, 5, vec!["1".into()])]));
    assert_eq!(err.kind(), "bad_group");

    let inflated = RolloutGroup { rewards: vec![5.0; good.completions.len()], ..good.clone() };
    let err = refusal(&rollouts(vec![inflated]));
    assert_eq!(err.kind(), "reward_mismatch");
    assert!(err.to_string().contains("claims reward 5, the verifier gives"), "{err}");

    let announce = |client: String, peer: &str| {
        encode(&Message::Announce(Announcement {
            peer: peer.into(),
            client,
            backend: "cpu".into(),
            families: vec![],
            policy_version: 0,
        }))
        .expect("encodes")
    };
    assert_eq!(
        refusal(&announce("x".repeat(MAX_LABEL_BYTES + 1), PEER)),
        WireError::LabelTooLong { field: "client", bytes: MAX_LABEL_BYTES + 1, limit: MAX_LABEL_BYTES }
    );
    assert_eq!(refusal(&announce("ok".into(), "other")).kind(), "not_the_publisher");
    for kind in REFUSAL_KINDS {
        assert_eq!(REFUSAL_KINDS.iter().filter(|k| **k == kind).count(), 1);
    }
}

#[test]
fn encode_refuses_what_decode_would() {
    let huge = valid_group(Family::Add, 2, 5, vec!["1".repeat(60); 32]);
    let err = encode(&Message::Rollouts { groups: vec![huge; 32] }).expect_err("too large");
    assert!(matches!(err, WireError::TooLarge { bytes } if bytes > MAX_MESSAGE_BYTES));
}

#[test]
fn the_wire_shape_is_stable() {
    let message = Message::Rollouts { groups: vec![valid_group(Family::Compare, 1, 3, vec!["<".into(), ">".into()])] };
    let json: serde_json::Value = serde_json::from_slice(&encode(&message).expect("encodes")).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"v": 1, "type": "rollouts", "groups": [{
            "question": {"family": "compare", "difficulty": 1, "seed": 3, "suite": 1},
            "peer": PEER, "policy_version": 7, "completions": ["<", ">"]
        }]})
    );
}

fn model_version() -> ModelVersion {
    ModelVersion {
        relay: PEER.into(),
        root: "a".repeat(64),
        hash: "b".repeat(64),
        number: 3,
        parent: "c".repeat(64),
        updates: 8,
        contributors: 7,
    }
}

/// A relay's announcement of a new swarm-model version round-trips in a fixed shape, and is
/// refused when someone else claims to be the relay or the names are not version hashes.
#[test]
fn a_model_version_announcement_is_checked() {
    let message = Message::ModelVersion(model_version());
    let bytes = encode(&message).expect("encodes");
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"v": 1, "type": "model_version", "relay": PEER, "root": "a".repeat(64),
            "hash": "b".repeat(64), "number": 3, "parent": "c".repeat(64), "updates": 8, "contributors": 7})
    );
    assert_eq!(decode(&bytes, PEER).expect("decodes"), Verified::ModelVersion(model_version()));

    let refusal = |version: ModelVersion| {
        decode(&encode(&Message::ModelVersion(version)).expect("encodes"), PEER).expect_err("refused")
    };
    assert_eq!(refusal(ModelVersion { relay: "someone-else".into(), ..model_version() }).kind(), "not_the_publisher");
    for bad in ["B".repeat(64), "b".repeat(63), "g".repeat(64), String::new()] {
        let err = refusal(ModelVersion { hash: bad.clone(), ..model_version() });
        assert_eq!(err, WireError::BadModelVersion("hash is not 64 lowercase hex digits".into()), "{bad:?}");
    }
    assert_eq!(refusal(ModelVersion { root: "x".into(), ..model_version() }).kind(), "bad_model_version");
    assert_eq!(refusal(ModelVersion { parent: "x".into(), ..model_version() }).kind(), "bad_model_version");
    let err = refusal(ModelVersion { number: 0, ..model_version() });
    assert!(err.to_string().contains("version 0 named"), "{err}");
    assert_eq!(refusal(ModelVersion { parent: "b".repeat(64), ..model_version() }).kind(), "bad_model_version");
    // An unknown field is a malformed message, not a silently dropped one.
    let mut extra = json.clone();
    extra["secret"] = serde_json::json!(1);
    let err = decode(&serde_json::to_vec(&extra).expect("json"), PEER).expect_err("extra field");
    assert_eq!(err.kind(), "malformed");
}

//! The fuzz targets (`fuzz/`, run by `cargo xtask fuzz` on nightly) in the normal test run, on
//! stable: every committed seed (`fuzz/corpus/<target>/`) and every input a fuzzer once crashed
//! on (`fuzz/regressions/<target>/`, each fixed since) goes through the same target body, and the
//! seeds are checked to be what the seed writer below makes and to be inputs the parsers accept
//! (a seed the parser refuses would start the fuzzer nowhere).
//!
//! `TABSWARM_WRITE_FUZZ_SEEDS=1 cargo test -p tabswarm-e2e --test fuzz_corpus` rewrites the seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_primitives::B256;
use tabswarm_protocol::api::{Bootstrap, ModelInfo, RelayAddrs, SwarmStats};
use tabswarm_protocol::checkpoint::{BaseInfo, frame, sha256_hex};
use tabswarm_protocol::identity::sign_with_key;
use tabswarm_protocol::rollout::RolloutGroup;
use tabswarm_protocol::tasks::{Family, QuestionId, generate};
use tabswarm_protocol::update::{ModelUpdate, UpdateHeader, sign};
use tabswarm_protocol::wire::{self, Announcement, Message, ModelVersion};

#[path = "../../fuzz/targets.rs"]
mod targets;

const TARGETS: [&str; 5] = ["wire_decode", "binding", "checkpoint_frame", "api_json", "model_update"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn run_target(target: &str, data: &[u8]) {
    match target {
        "wire_decode" => targets::wire_decode(data),
        "binding" => targets::binding(data),
        "checkpoint_frame" => targets::checkpoint_frame(data),
        "api_json" => targets::api_json(data),
        "model_update" => targets::model_update(data),
        other => panic!("fuzz/{other}: no such target (the targets are {TARGETS:?})"),
    }
}

fn peer_key() -> libp2p::identity::Keypair {
    libp2p::identity::Keypair::ed25519_from_bytes([7u8; 32]).expect("a fixed ed25519 key")
}

fn group(family: Family, difficulty: u8, seed: u64, peer: &str) -> RolloutGroup {
    let question = generate(family, difficulty, seed).expect("a question");
    let answer = question.answer;
    RolloutGroup {
        question: QuestionId::new(family, difficulty, seed),
        peer: peer.into(),
        policy_version: 12,
        completions: vec![answer, "7".into(), String::new(), "wrong".into()],
        rewards: Vec::new(),
    }
}

/// The seeds, by target and file name: small, valid inputs of every shape each parser takes.
fn seeds() -> BTreeMap<&'static str, Vec<(String, Vec<u8>)>> {
    let mut seeds: BTreeMap<&'static str, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let publisher = targets::PUBLISHER;
    let domain = targets::domain();
    let wallet = k256::ecdsa::SigningKey::from_slice(&[1u8; 32]).expect("a fixed wallet key");
    let peer = peer_key();
    let binding =
        domain.binding(&peer.public().to_peer_id().to_string(), B256::repeat_byte(9), targets::NOW - 60, 3600);
    let signed = sign_with_key(binding, &domain, &wallet, &peer).expect("signs");

    let hash = |n: u8| format!("{n:02x}").repeat(32);
    let messages = [
        (
            "rollouts-arithmetic",
            Message::Rollouts {
                groups: vec![group(Family::Add, 2, 41, publisher), group(Family::Linear, 1, 5, publisher)],
            },
        ),
        (
            "rollouts-strings",
            Message::Rollouts {
                groups: vec![group(Family::Reverse, 3, 7, publisher), group(Family::ToBinary, 2, 8, publisher)],
            },
        ),
        (
            "announce",
            Message::Announce(Announcement {
                peer: publisher.into(),
                client: "tabswarm-client/0.1.0 (browser)".into(),
                backend: "webgpu".into(),
                families: vec![Family::Compare, Family::SortDigits],
                policy_version: 3,
            }),
        ),
        ("binding", Message::Binding { binding: Box::new(signed.clone()), sent_at: targets::NOW }),
        (
            "model-version",
            Message::ModelVersion(ModelVersion {
                relay: publisher.into(),
                root: hash(1),
                hash: hash(3),
                number: 2,
                parent: hash(2),
                updates: 4,
                contributors: 3,
            }),
        ),
    ];
    for (name, message) in messages {
        let bytes = wire::encode(&message).expect("encodes");
        seeds.entry("wire_decode").or_default().push((format!("{name}.json"), bytes));
    }

    seeds.entry("binding").or_default().push(("signed.json".into(), serde_json::to_vec(&signed).expect("json")));

    let payload: Vec<u8> = (0..200u8).collect();
    let header =
        serde_json::json!({ "step": 40, "payload_len": payload.len(), "payload_sha256": sha256_hex(&payload) });
    let checkpoint = frame(&serde_json::to_vec(&header).expect("json"), &payload);
    seeds.entry("checkpoint_frame").or_default().push(("small.tswm".into(), checkpoint.clone()));
    let empty = serde_json::json!({ "step": 0, "payload_len": 0, "payload_sha256": sha256_hex(&[]) });
    let empty = frame(&serde_json::to_vec(&empty).expect("json"), &[]);
    seeds.entry("checkpoint_frame").or_default().push(("empty-payload.tswm".into(), empty));

    let info = BaseInfo {
        sha256: sha256_hex(&payload),
        bytes: checkpoint.len(),
        step: 40,
        url: format!("/api/checkpoint/{}", sha256_hex(&payload)),
    };
    let model = ModelInfo {
        hash: hash(3),
        number: 2,
        parent: Some(hash(2)),
        contributors: vec!["12D3KooWA".into(), "12D3KooWB".into()],
        updates: 4,
        url: format!("/api/checkpoint/{}", hash(3)),
        bytes: 863_144,
        accuracy: [(Family::Add, 0.25), (Family::Reverse, 1.0)].into_iter().collect(),
        heldout: "16 questions per family at levels 1-3".into(),
        sync_every: 10,
        min_updates: 2,
        pending: 1,
        recent: vec![hash(3), hash(2)],
    };
    let bootstrap = Bootstrap {
        peer_id: publisher.into(),
        addrs: vec![format!("/ip4/127.0.0.1/tcp/9091/p2p/{publisher}")],
        relays: vec![RelayAddrs { peer_id: "12D3KooWOther".into(), addrs: vec!["/ip4/10.0.0.2/tcp/9091".into()] }],
        topic: "tabswarm/rollouts/1".into(),
        wire_version: wire::WIRE_VERSION,
        accepts_unbound: false,
    };
    let api = seeds.entry("api_json").or_default();
    api.push(("base-info.json".into(), serde_json::to_vec(&info).expect("json")));
    api.push(("model-info.json".into(), serde_json::to_vec(&model).expect("json")));
    api.push(("bootstrap.json".into(), serde_json::to_vec(&bootstrap).expect("json")));
    api.push(("swarm-stats.json".into(), serde_json::to_vec(&SwarmStats::default()).expect("json")));

    let swarm = targets::swarm();
    let header = UpdateHeader {
        base: swarm.lineage().hash.clone(),
        peer: peer.public().to_peer_id().to_string(),
        rounds: 10,
        params: targets::SWARM_PARAMS as u64,
    };
    let delta: Vec<f32> = (0..targets::SWARM_PARAMS).map(|i| ((i * 7 % 13) as f32 - 6.0) * 1e-3).collect();
    let update = ModelUpdate::compress(header, &delta).expect("compresses");
    let updates = seeds.entry("model_update").or_default();
    updates.push(("unsigned.bin".into(), update.encode()));
    updates.push(("signed.bin".into(), sign(&update, &peer).expect("signs")));
    seeds
}

/// Each seed is accepted by the parser it seeds (so fuzzing starts from inputs that reach deep).
fn assert_accepted(target: &str, name: &str, data: &[u8]) {
    let accepted = match target {
        "wire_decode" => wire::decode(data, targets::PUBLISHER).map(|_| ()).map_err(|e| e.to_string()),
        "binding" => serde_json::from_slice(data)
            .map_err(|e| e.to_string())
            .and_then(|signed| {
                tabswarm_protocol::identity::verify(&signed, &targets::domain(), targets::NOW)
                    .map_err(|e| e.to_string())
            })
            .map(|_| ()),
        "checkpoint_frame" => tabswarm_protocol::checkpoint::verify(data).map(|_| ()).map_err(|e| e.to_string()),
        "api_json" => {
            let parsed = serde_json::from_slice::<BaseInfo>(data).is_ok()
                || serde_json::from_slice::<ModelInfo>(data).is_ok()
                || serde_json::from_slice::<Bootstrap>(data).is_ok()
                || serde_json::from_slice::<SwarmStats>(data).is_ok();
            if parsed { Ok(()) } else { Err("no API type parses it".into()) }
        }
        "model_update" if name.starts_with("signed") => {
            tabswarm_protocol::update::verify_signed(data).map(|_| ()).map_err(|e| e.to_string())
        }
        "model_update" => ModelUpdate::decode(data)
            .map_err(|e| e.to_string())
            .and_then(|update| targets::swarm().submit(&update, true).map_err(|e| e.to_string())),
        other => Err(format!("no such target {other}")),
    };
    if let Err(why) = accepted {
        panic!("fuzz/corpus/{target}/{name} is refused by the parser it seeds: {why}");
    }
}

#[test]
fn the_committed_seeds_are_the_seed_writers_and_each_parser_accepts_its_own() {
    let write = std::env::var_os("TABSWARM_WRITE_FUZZ_SEEDS").is_some();
    let seeds = seeds();
    let mut every = TARGETS.to_vec();
    every.sort();
    assert_eq!(seeds.keys().copied().collect::<Vec<_>>(), every, "a seed for every target");
    for (target, files) in &seeds {
        let dir = fuzz_dir().join("corpus").join(target);
        if write {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        for (name, bytes) in files {
            assert_accepted(target, name, bytes);
            let path = dir.join(name);
            if write {
                std::fs::write(&path, bytes).expect("write a seed");
            }
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (TABSWARM_WRITE_FUZZ_SEEDS=1 writes the seeds)", path.display()));
            assert!(committed == *bytes, "{} is not what the seed writer makes now", path.display());
        }
    }
}

#[test]
fn every_seed_and_every_fixed_crash_replays_through_its_target() {
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        for target in TARGETS {
            let dir = fuzz_dir().join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.expect("entry").path();
                let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let outcome = std::panic::catch_unwind(|| run_target(target, &data));
                assert!(outcome.is_ok(), "{} panics its target again", path.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 14, "only {replayed} committed inputs found under fuzz/");
}

#![allow(dead_code)] // each fuzz binary calls one target; the corpus test calls them all
//! The fuzz targets' bodies, shared by the libFuzzer binaries (`fuzz_targets/*.rs`, run by
//! `cargo xtask fuzz`) and by the corpus test of the normal test run
//! (`tests/tests/fuzz_corpus.rs`), which replays every committed seed and every input a fuzzer
//! once crashed on. Each body feeds untrusted bytes to a parser the swarm exposes to anyone (the
//! gossip wire, the relay's HTTP bodies, what a peer downloads from a relay) and checks what
//! must hold whatever the input: no panic, and a value that parses re-encodes to one that parses
//! the same.

use tabswarm_aggregate::{OuterConfig, SwarmModel};
use tabswarm_protocol::api::{Bootstrap, ModelInfo, SwarmStats};
use tabswarm_protocol::checkpoint::{BaseInfo, frame, verify};
use tabswarm_protocol::identity::{BindingDomain, SignedBinding};
use tabswarm_protocol::update::{ModelUpdate, verify_signed};
use tabswarm_protocol::wire::{self, Verified};

/// The publisher every wire seed claims to come from.
pub const PUBLISHER: &str = "12D3KooWFuzzPublisher";

/// Parameters of the swarm model the update target submits to (the seeds are updates of it).
pub const SWARM_PARAMS: usize = 130;

/// The swarm model of the update target: version 0 of `SWARM_PARAMS` parameters.
pub fn swarm() -> SwarmModel {
    SwarmModel::new((0..SWARM_PARAMS).map(|i| (i as f32 * 0.37).sin()).collect(), OuterConfig::default())
}

/// The relay the binding target verifies for (the binding seeds are made for it).
pub fn domain() -> BindingDomain {
    BindingDomain {
        chain_id: 31337,
        verifying_contract: Default::default(),
        swarm_id: "tabswarm-fuzz".into(),
        relay_domain: "relay.example".into(),
    }
}

/// When the binding target verifies (inside the seeds' validity window).
pub const NOW: u64 = 1_800_000_000;

/// A gossip message, as every node decodes what anyone publishes.
pub fn wire_decode(data: &[u8]) {
    let Ok(verified) = wire::decode(data, PUBLISHER) else { return };
    // What passed the checks passes them again once re-encoded, unchanged.
    let message = match &verified {
        Verified::Rollouts(scored) => {
            wire::Message::Rollouts { groups: scored.iter().map(|s| s.group.clone()).collect() }
        }
        Verified::Announce(announcement) => wire::Message::Announce(announcement.clone()),
        Verified::Binding(binding) => wire::Message::Binding { binding: binding.clone(), sent_at: 0 },
        Verified::ModelVersion(version) => wire::Message::ModelVersion(version.clone()),
    };
    let bytes = wire::encode(&message).expect("a message that decoded encodes within the size limit");
    let again = wire::decode(&bytes, PUBLISHER).expect("a re-encoded message decodes");
    assert_eq!(again, verified, "a message changed on a round trip");
}

/// `POST /api/bindings`: a signed binding as JSON, verified against a relay's domain.
pub fn binding(data: &[u8]) {
    let Ok(signed) = serde_json::from_slice::<SignedBinding>(data) else { return };
    let domain = domain();
    let first = tabswarm_protocol::identity::verify(&signed, &domain, NOW);
    // Verification depends on nothing but the binding: a re-parsed copy gets the same answer.
    let bytes = serde_json::to_vec(&signed).expect("a parsed binding serialises");
    let copy: SignedBinding = serde_json::from_slice(&bytes).expect("a serialised binding parses");
    let second = tabswarm_protocol::identity::verify(&copy, &domain, NOW);
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
}

/// A checkpoint file's frame (the base a tab downloads, a swarm version, a relay's disk).
pub fn checkpoint_frame(data: &[u8]) {
    let Ok(verified) = verify(data) else { return };
    // A frame that verifies is exactly its header and payload, framed.
    assert_eq!(frame(verified.header_json, verified.payload), data, "a verified frame is not canonical");
    let info = BaseInfo {
        sha256: verified.summary.payload_sha256.clone(),
        bytes: data.len(),
        step: verified.summary.step,
        url: String::new(),
    };
    info.check(data).expect("a frame checks against its own hash");
}

/// What a peer reads from a relay it does not trust: `/api/checkpoint/base.json`, `/api/model`,
/// `/api/bootstrap`, `/api/swarm`.
pub fn api_json(data: &[u8]) {
    if let Ok(info) = serde_json::from_slice::<BaseInfo>(data) {
        let _ = info.check(data);
    }
    if let Ok(info) = serde_json::from_slice::<ModelInfo>(data) {
        let _ = tabswarm_protocol::update::is_version_hash(&info.hash);
        let bytes = serde_json::to_vec(&info).expect("serialises");
        assert_eq!(serde_json::from_slice::<ModelInfo>(&bytes).expect("parses again"), info);
    }
    let _ = serde_json::from_slice::<Bootstrap>(data);
    let _ = serde_json::from_slice::<SwarmStats>(data);
}

/// `POST /api/model/updates`: a signed update, then (unsigned) the checks and the aggregation a
/// relay runs on it: screening, the robust mean and the outer step must refuse or absorb any
/// numbers without a panic or a non-finite parameter.
pub fn model_update(data: &[u8]) {
    let mut model = swarm();
    let _ = verify_signed(data);
    let _ = model.submit_bytes(data, true);
    let Ok(update) = ModelUpdate::decode(data) else { return };
    assert_eq!(ModelUpdate::decode(&update.encode()).expect("re-encoded update decodes"), update);
    if model.submit(&update, true).is_ok() {
        // A second, honest-looking update so the robust rules have something to compare with.
        let mut other = update.clone();
        other.header.peer.push_str("-twin");
        other.values.iter_mut().for_each(|v| *v = v.saturating_neg() / 2);
        let _ = model.submit(&other, true);
        let step = model.step();
        assert!(model.params().iter().all(|p| p.is_finite()), "the outer step made a parameter non-finite");
        assert!(step.version.is_none_or(|v| v.number == 1));
    }
}

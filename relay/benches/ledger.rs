//! Ledger write throughput with WAL: contributions recorded one message at a time (as the swarm
//! records them) into a ledger file, and bindings accepted (verification + nonce + insert).
//! Results go into docs/benchmarks.md.
//!
//! cargo bench -p tabswarm-relay --bench ledger

use std::time::Instant;

use alloy_primitives::B256;
use libp2p::identity::Keypair;
use tabswarm_protocol::identity::{BindingDomain, sign_with_key};
use tabswarm_protocol::rollout::{RolloutGroup, score_group};
use tabswarm_protocol::tasks::{Family, QuestionId};
use tabswarm_relay::ledger::{LEDGER_FILE, Ledger};

fn main() {
    let dir = tempfile::tempdir().expect("dir");
    let ledger = Ledger::open(&dir.path().join(LEDGER_FILE)).expect("ledger");
    let domain = BindingDomain {
        chain_id: 1,
        verifying_contract: alloy_primitives::Address::ZERO,
        swarm_id: "tabswarm".into(),
        relay_domain: "relay.example.org".into(),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let peers: Vec<Keypair> = (0..200).map(|_| Keypair::generate_ed25519()).collect();
    let signed: Vec<_> = peers
        .iter()
        .enumerate()
        .map(|(i, peer)| {
            let wallet = k256::ecdsa::SigningKey::from_slice(&[(i % 250 + 1) as u8; 32]).expect("key");
            let b = domain.binding(&peer.public().to_peer_id().to_string(), B256::repeat_byte(i as u8), now, 3600);
            sign_with_key(b, &domain, &wallet, peer).expect("sign")
        })
        .collect();
    let start = Instant::now();
    for s in &signed {
        ledger.bind(s, &domain, now).expect("bind");
    }
    let per_second = signed.len() as f64 / start.elapsed().as_secs_f64();
    println!("bindings accepted (verify + nonce + insert, WAL file): {per_second:.0}/s");

    let ids: Vec<String> = peers.iter().map(|p| p.public().to_peer_id().to_string()).collect();
    let n = 20_000;
    // Every message new work (a group is credited once: one already credited is not counted).
    let groups: Vec<_> = (0..n)
        .map(|i| {
            let id = &ids[i % ids.len()];
            let group = RolloutGroup {
                question: QuestionId::new(Family::Add, 2, 1),
                peer: id.clone(),
                policy_version: i as u64,
                completions: vec!["12".into(), "7".into(), "3".into(), "x".into()],
                rewards: Vec::new(),
            };
            vec![score_group(group).expect("valid")]
        })
        .collect();
    let start = Instant::now();
    for (i, group) in groups.iter().enumerate() {
        ledger.record((i / 2000) as u64, &ids[i % ids.len()], group, now).expect("record");
    }
    let per_second = n as f64 / start.elapsed().as_secs_f64();
    println!("contributions recorded (one message of 1 group × 4 rollouts each, WAL file): {per_second:.0}/s");
}

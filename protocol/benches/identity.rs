//! Verification throughput on one core: bindings (EIP-712 hash + secp256k1 recovery + the peer
//! key's ed25519 signature) and rollout-message signatures (ed25519, as gossipsub's strict signing
//! checks every message a relay receives). Results go into docs/benchmarks.md.
//!
//! cargo bench -p tabswarm-protocol --bench identity

use std::hint::black_box;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use tabswarm_protocol::identity::{BindingDomain, sign_with_key, verify};

/// Runs `f` for about `budget` and returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut(u64)) -> f64 {
    for i in 0..100 {
        f(i);
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_secs(3);
    let domain = BindingDomain {
        chain_id: 31337,
        verifying_contract: Address::repeat_byte(0x5f),
        swarm_id: "tabswarm".into(),
        relay_domain: "relay.example.org".into(),
    };
    let now = 1_800_000_000;
    let bindings: Vec<_> = (0..64u8)
        .map(|i| {
            let peer = libp2p_identity::Keypair::generate_ed25519();
            let wallet = k256::ecdsa::SigningKey::from_slice(&[i + 1; 32]).expect("key");
            let binding = domain.binding(&peer.public().to_peer_id().to_string(), B256::repeat_byte(i), now, 3600);
            sign_with_key(binding, &domain, &wallet, &peer).expect("sign")
        })
        .collect();
    let per_second = rate(budget, |i| {
        black_box(verify(black_box(&bindings[i as usize % bindings.len()]), &domain, now).expect("valid"));
    });
    println!("binding verification (EIP-712 + ecrecover + ed25519): {per_second:.0}/s on one core");

    // A gossipsub-signed rollout message: ed25519 over the protobuf of ~4 KiB of payload.
    let key = libp2p_identity::Keypair::generate_ed25519();
    let message = vec![7u8; 4096];
    let signature = key.sign(&message).expect("sign");
    let public = key.public();
    let per_second = rate(budget, |_| {
        assert!(black_box(&public).verify(black_box(&message), black_box(&signature)));
    });
    println!("rollout message signature (ed25519, 4 KiB): {per_second:.0}/s on one core");
}

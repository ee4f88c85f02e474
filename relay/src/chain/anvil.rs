//! The registry on a real chain: a local anvil (started and stopped here), the artifact deployed,
//! bindings registered and read back, and every refusal reverted with its reason and nothing
//! changed on chain.

use alloy_primitives::B256;
use libp2p::identity::Keypair;
use tabswarm_protocol::identity::{BindingDomain, sign_with_key};

use super::*;
use crate::ledger::tests::{scored, wallet};
use crate::swarm::unix_now;
use tabswarm_devchain::{Anvil, CHAIN_ID, DEV_KEYS};

const SWARM: &str = "tabswarm-test";

fn domain_of(chain: &Chain) -> BindingDomain {
    BindingDomain {
        chain_id: chain.chain_id(),
        verifying_contract: chain.registry(),
        swarm_id: SWARM.into(),
        relay_domain: "relay.test:443".into(),
    }
}

fn bind(domain: &BindingDomain, wallet_seed: u8, peer: &Keypair, nonce: u8, issued_at: u64) -> SignedBinding {
    let binding = domain.binding(&peer.public().to_peer_id().to_string(), B256::repeat_byte(nonce), issued_at, 3600);
    sign_with_key(binding, domain, &wallet(wallet_seed), peer).expect("sign")
}

fn address(seed: u8) -> Address {
    Address::from_private_key(&wallet(seed))
}

fn peer_of(key: &Keypair) -> String {
    key.public().to_peer_id().to_string()
}

async fn deployed() -> (Anvil, Chain) {
    let anvil = Anvil::start().unwrap_or_else(|e| panic!("{e}"));
    let chain = Chain::deploy(&anvil.url, DEV_KEYS[0], SWARM).await.unwrap_or_else(|e| panic!("deploy: {e}"));
    assert_eq!(chain.chain_id(), CHAIN_ID);
    (anvil, chain)
}

#[tokio::test]
async fn bindings_are_registered_and_read_back_and_bad_ones_revert_with_their_reason() {
    let (anvil, admin) = deployed().await;
    let domain = domain_of(&admin);
    let now = unix_now();
    let (p1, p2) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let signed = bind(&domain, 1, &p1, 1, now);
    assert_eq!(admin.owner_of(&peer_of(&p1)).await.expect("read"), None);
    admin.register(&signed).await.expect("a verified binding registers");
    let registered = Some((address(1), signed.binding.expires_at));
    assert_eq!(admin.owner_of(&peer_of(&p1)).await.expect("read"), registered);

    let revert = |r: Result<TxHash, ChainError>| r.expect_err("must revert").revert().map(str::to_owned);
    // Replayed: the same binding again.
    assert_eq!(revert(admin.register(&signed).await).as_deref(), Some("NonceUsed"));
    // Another wallet claiming the same peer id while the first binding holds.
    assert_eq!(revert(admin.register(&bind(&domain, 2, &p1, 2, now)).await).as_deref(), Some("PeerTaken"));
    // Signed for another chain, or for a window already over.
    let mainnet = BindingDomain { chain_id: 1, ..domain.clone() };
    assert_eq!(revert(admin.register(&bind(&mainnet, 1, &p2, 3, now)).await).as_deref(), Some("WrongChain"));
    assert_eq!(revert(admin.register(&bind(&domain, 1, &p2, 4, now - 7200)).await).as_deref(), Some("Expired"));
    // Nothing of that changed the chain.
    assert_eq!(admin.owner_of(&peer_of(&p1)).await.expect("read"), registered);
    assert_eq!(admin.owner_of(&peer_of(&p2)).await.expect("read"), None);

    // A relay the admin has not allowed can neither register for others nor record rounds…
    let stranger = Chain::connect(&anvil.url, admin.registry(), DEV_KEYS[1]).await.expect("connect");
    assert!(!stranger.is_authorised().await.expect("read"));
    let for_p2 = bind(&domain, 1, &p2, 5, now);
    assert_eq!(revert(stranger.register(&for_p2).await).as_deref(), Some("NotSubmitter"));
    let totals = [RoundTotal { address: address(1), reward: 2.2, rollouts: 4 }];
    assert_eq!(revert(stranger.record_round(7, &totals).await).as_deref(), Some("NotRelay"));
    assert_eq!(admin.owner_of(&peer_of(&p2)).await.expect("read"), None);
    // …until the admin allows it; a round is recorded once per relay.
    admin.set_relay(stranger.sender(), true).await.expect("setRelay");
    stranger.register(&for_p2).await.expect("an allowed relay registers");
    assert_eq!(admin.owner_of(&peer_of(&p2)).await.expect("read").map(|o| o.0), Some(address(1)));
    stranger.record_round(7, &totals).await.expect("record");
    assert_eq!(revert(stranger.record_round(7, &totals).await).as_deref(), Some("RoundAlreadyRecorded"));
}

#[tokio::test]
async fn a_wallet_registers_its_own_binding_and_revokes_it() {
    let (anvil, admin) = deployed().await;
    let domain = domain_of(&admin);
    let now = unix_now();
    // A funded wallet of its own (anvil's third dev account), not an allowed relay.
    let key = alloy_primitives::hex::decode(DEV_KEYS[2]).expect("hex");
    let wallet_key = k256::ecdsa::SigningKey::from_slice(&key).expect("key");
    let owner = Address::from_private_key(&wallet_key);
    let wallet = Chain::connect(&anvil.url, admin.registry(), DEV_KEYS[2]).await.expect("connect");
    assert!(!wallet.is_authorised().await.expect("read"));
    let peer = Keypair::generate_ed25519();
    let binding = domain.binding(&peer_of(&peer), B256::repeat_byte(1), now, 3600);
    let signed = sign_with_key(binding, &domain, &wallet_key, &peer).expect("sign");
    wallet.register(&signed).await.expect("the signer submits its own binding");
    assert_eq!(admin.owner_of(&peer_of(&peer)).await.expect("read").map(|o| o.0), Some(owner));

    // Only the owner revokes; then the peer id is free for another wallet.
    let e = admin.revoke(&peer_of(&peer)).await.expect_err("not the owner");
    assert_eq!(e.revert(), Some("NotOwner"), "{e}");
    assert_eq!(admin.owner_of(&peer_of(&peer)).await.expect("read").map(|o| o.0), Some(owner));
    wallet.revoke(&peer_of(&peer)).await.expect("the owner revokes");
    assert_eq!(admin.owner_of(&peer_of(&peer)).await.expect("read"), None);
    admin.register(&bind(&domain, 1, &peer, 2, now)).await.expect("free again");
    assert_eq!(admin.owner_of(&peer_of(&peer)).await.expect("read").map(|o| o.0), Some(address(1)));
}

#[tokio::test]
async fn the_relay_submits_pending_bindings_and_closed_rounds_once() {
    let (_anvil, chain) = deployed().await;
    let domain = domain_of(&chain);
    let ledger = Ledger::in_memory().expect("ledger");
    let now = unix_now();
    let round_secs = 600;
    let (p1, p2, p3) = (Keypair::generate_ed25519(), Keypair::generate_ed25519(), Keypair::generate_ed25519());
    for (seed, peer, nonce) in [(1, &p1, 1), (2, &p2, 2), (3, &p3, 3)] {
        ledger.bind(&bind(&domain, seed, peer, nonce, now), &domain, now).expect("ledger binds");
    }
    // p4's binding was verified under another registry (the relay ran with another --registry).
    let p4 = Keypair::generate_ed25519();
    let old = BindingDomain { verifying_contract: Address::repeat_byte(0x99), ..domain.clone() };
    ledger.bind(&bind(&old, 4, &p4, 4, now), &old, now).expect("ledger binds");
    // p3's binding reached the chain another way (another relay submitted it).
    let p3_binding =
        ledger.unsubmitted_bindings(now).expect("read").into_iter().find(|b| b.binding.peer_id == peer_of(&p3));
    chain.register(&p3_binding.expect("stored")).await.expect("register");

    let closed = now / round_secs - 1;
    let open = now / round_secs;
    ledger.record(closed, &peer_of(&p1), &[scored(&peer_of(&p1), 1)], now).expect("credited");
    ledger.record(closed, &peer_of(&p2), &[scored(&peer_of(&p2), 2)], now).expect("credited");
    ledger.record(open, &peer_of(&p1), &[scored(&peer_of(&p1), 3)], now).expect("credited");

    let done = chain.submit_pending(&ledger, &domain, round_secs, now).await.expect("submit");
    assert_eq!(
        done,
        Submitted { bindings: 2, rounds: 1, refused: 1, skipped: 1 },
        "p3's duplicate is refused, not retried; p4's binding for the old registry is kept off chain"
    );
    assert_eq!(chain.owner_of(&peer_of(&p4)).await.expect("read"), None);
    for (peer, seed) in [(&p1, 1), (&p2, 2), (&p3, 3)] {
        assert_eq!(chain.owner_of(&peer_of(peer)).await.expect("read").map(|o| o.0), Some(address(seed)));
    }
    assert!(ledger.unsubmitted_bindings(now).expect("read").is_empty());
    assert_eq!(ledger.unsubmitted_rounds(open).expect("read"), Vec::<u64>::new());
    // The open round waits for its end; a second pass has nothing to do.
    assert_eq!(ledger.unsubmitted_rounds(open + 1).expect("read"), vec![open]);
    assert_eq!(chain.submit_pending(&ledger, &domain, round_secs, now).await.expect("submit"), Submitted::default());
}

/// A relay killed after the chain took its transactions but before its ledger noted them (the
/// `kill -9` window of the submitter) resubmits them on restart; the registry refuses each as
/// already recorded, so nothing is on chain twice, and the ledger marks them and moves on.
#[tokio::test]
async fn a_submitter_killed_before_noting_its_transactions_resumes_without_a_double_submission() {
    let (_anvil, chain) = deployed().await;
    let domain = domain_of(&chain);
    let ledger = Ledger::in_memory().expect("ledger");
    let now = unix_now();
    let round_secs = 600;
    let peer = Keypair::generate_ed25519();
    ledger.bind(&bind(&domain, 1, &peer, 1, now), &domain, now).expect("ledger binds");
    let closed = now / round_secs - 1;
    ledger.record(closed, &peer_of(&peer), &[scored(&peer_of(&peer), 1)], now).expect("credited");

    // What the killed relay had sent: on chain, not in its ledger.
    let signed = ledger.unsubmitted_bindings(now).expect("read").pop().expect("stored");
    chain.register(&signed).await.expect("registered");
    chain.record_round(closed, &ledger.round_totals(closed).expect("totals")).await.expect("recorded");

    // The restarted relay's submitter: both refused by the registry, neither on chain twice.
    let done = chain.submit_pending(&ledger, &domain, round_secs, now).await.expect("submit");
    assert_eq!(done, Submitted { bindings: 0, rounds: 0, refused: 2, skipped: 0 });
    let again = chain.record_round(closed, &ledger.round_totals(closed).expect("totals")).await;
    assert_eq!(again.expect_err("once per round").revert(), Some("RoundAlreadyRecorded"));
    assert_eq!(chain.owner_of(&peer_of(&peer)).await.expect("read").map(|o| o.0), Some(address(1)));
    // Marked: the next pass has nothing to do.
    assert!(ledger.unsubmitted_bindings(now).expect("read").is_empty());
    assert!(ledger.unsubmitted_rounds(closed + 1).expect("read").is_empty());
    assert_eq!(chain.submit_pending(&ledger, &domain, round_secs, now).await.expect("submit"), Submitted::default());
}

#[tokio::test]
async fn a_wrong_endpoint_or_registry_is_named_at_start() {
    let anvil = Anvil::start().unwrap_or_else(|e| panic!("{e}"));
    let nowhere = Address::repeat_byte(0x42);
    let e = Chain::connect(&anvil.url, nowhere, DEV_KEYS[0]).await.expect_err("no contract there");
    assert!(matches!(e, ChainError::NoContract { registry, chain: CHAIN_ID } if registry == nowhere), "{e}");
    let e = Chain::connect(&anvil.url, nowhere, "0x1234").await.expect_err("short key");
    assert!(matches!(e, ChainError::BadKey(_)), "{e}");
    let e = Chain::connect("ws://127.0.0.1:1", nowhere, DEV_KEYS[0]).await.expect_err("not http");
    assert!(matches!(e, ChainError::BadUrl(_)), "{e}");
    drop(anvil);
    let closed = format!("http://127.0.0.1:{}", Anvil::start().map(|a| a.port).expect("port"));
    let e = Chain::connect(&closed, nowhere, DEV_KEYS[0]).await.expect_err("nothing listens");
    assert!(matches!(e, ChainError::Unreachable { .. }), "{e}");
}

#[tokio::test]
async fn a_relay_whose_domain_names_another_registry_does_not_start() {
    let (_anvil, chain) = deployed().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut swarm = crate::swarm::SwarmConfig::local(data.path().to_path_buf());
    swarm.domain.verifying_contract = chain.registry();
    swarm.domain.chain_id = 1;
    let config = crate::RelayConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        assets: data.path().to_path_buf().into(),
        base_checkpoint: None,
        model: Default::default(),
        model_from: None,
        swarm,
        chain: Some(chain),
        embedders: Default::default(),
    };
    let e = crate::Relay::bind(&config).await.expect_err("chain 1 is not anvil's");
    assert!(e.to_string().contains("bindings would name chain 1"), "{e}");
    assert!(!data.path().join(crate::ledger::LEDGER_FILE).exists(), "nothing was created");
}

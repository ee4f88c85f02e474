use alloy_dyn_abi::TypedData;
use alloy_primitives::{U256, address};

use super::*;

const NOW: u64 = 1_800_000_000;

fn domain() -> BindingDomain {
    BindingDomain {
        chain_id: 31337,
        verifying_contract: address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        swarm_id: "tabswarm-test".into(),
        relay_domain: "relay.example:8080".into(),
    }
}

fn wallet(seed: u8) -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("key")
}

fn peer() -> libp2p_identity::Keypair {
    libp2p_identity::Keypair::generate_ed25519()
}

fn signed_by(
    wallet: &k256::ecdsa::SigningKey,
    peer: &libp2p_identity::Keypair,
    edit: impl FnOnce(&mut Binding),
) -> SignedBinding {
    let domain = domain();
    let mut binding = domain.binding(&peer.public().to_peer_id().to_string(), B256::repeat_byte(7), NOW, 3600);
    edit(&mut binding);
    sign_with_key(binding, &domain, wallet, peer).expect("sign")
}

fn refusal(signed: &SignedBinding) -> BindingError {
    verify(signed, &domain(), NOW).expect_err("refused")
}

#[test]
fn a_binding_signed_by_wallet_and_peer_key_verifies_to_the_wallet_address() {
    let wallet = wallet(1);
    let signed = signed_by(&wallet, &peer(), |_| {});
    assert_eq!(verify(&signed, &domain(), NOW), Ok(Address::from_private_key(&wallet)));
    // Valid through its window, with clock skew allowed at the start.
    assert!(verify(&signed, &domain(), NOW + 3599).is_ok());
    assert!(verify(&signed, &domain(), NOW - CLOCK_SKEW_SECS).is_ok());
}

#[test]
fn the_typed_data_given_to_wallets_hashes_like_the_sol_struct() {
    let domain = domain();
    let binding = domain.binding("12D3KooWPeer", B256::repeat_byte(0xab), NOW, 600);
    let typed: TypedData = serde_json::from_value(domain.typed_data(&binding)).expect("typed data");
    assert_eq!(typed.eip712_signing_hash().expect("hash"), binding.signing_hash(&domain));
    // The domain separator is the standard one: a different contract gives a different hash.
    let other = BindingDomain { verifying_contract: Address::repeat_byte(1), ..domain.clone() };
    assert_ne!(binding.signing_hash(&other), binding.signing_hash(&domain));
}

#[test]
fn the_json_shape_is_stable() {
    let binding = domain().binding("12D3KooWPeer", B256::ZERO, 10, 20);
    let json = serde_json::to_value(&binding).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "peerId": "12D3KooWPeer", "swarmId": "tabswarm-test", "relayDomain": "relay.example:8080",
            "chainId": 31337, "nonce": format!("0x{}", "00".repeat(32)), "issuedAt": 10, "expiresAt": 30
        })
    );
    let err = serde_json::from_value::<Binding>(serde_json::json!({"peerId": "x"})).expect_err("incomplete");
    assert!(err.to_string().contains("missing field"), "{err}");
}

#[test]
fn a_forged_signature_names_the_real_signer() {
    let (claimed, forger) = (wallet(1), wallet(2));
    let mut signed = signed_by(&forger, &peer(), |_| {});
    signed.address = Address::from_private_key(&claimed);
    let err = refusal(&signed);
    assert_eq!(
        err,
        BindingError::WrongSigner { recovered: Address::from_private_key(&forger), claimed: signed.address }
    );
    assert_eq!(err.kind(), "wrong_signer");
}

#[test]
fn a_signature_over_another_field_value_does_not_transfer() {
    // Sign one window, then stretch it: the signature no longer matches.
    let wallet = wallet(3);
    let mut signed = signed_by(&wallet, &peer(), |_| {});
    signed.binding.expires_at += 60;
    assert!(matches!(refusal(&signed), BindingError::WrongSigner { .. }));
}

#[test]
fn wrong_chain_domain_and_swarm_are_refused_by_name() {
    let wallet = wallet(4);
    let peer = peer();
    let err = refusal(&signed_by(&wallet, &peer, |b| b.chain_id = 1));
    assert_eq!(err, BindingError::WrongChain { got: 1, expected: 31337 });
    assert!(err.to_string().contains("chain 1"), "{err}");
    let err = refusal(&signed_by(&wallet, &peer, |b| b.relay_domain = "evil.example".into()));
    assert_eq!(err.kind(), "wrong_domain");
    assert!(err.to_string().contains("evil.example"), "{err}");
    let err = refusal(&signed_by(&wallet, &peer, |b| b.swarm_id = "other".into()));
    assert_eq!(err.kind(), "wrong_swarm");
}

#[test]
fn a_binding_signed_for_another_contract_is_refused() {
    let wallet = wallet(5);
    let peer = peer();
    let other = BindingDomain { verifying_contract: Address::repeat_byte(9), ..domain() };
    let binding = other.binding(&peer.public().to_peer_id().to_string(), B256::ZERO, NOW, 60);
    let signed = sign_with_key(binding, &other, &wallet, &peer).expect("sign");
    assert!(matches!(refusal(&signed), BindingError::WrongSigner { .. }));
}

#[test]
fn expired_not_yet_valid_and_overlong_windows_are_refused() {
    let wallet = wallet(6);
    let peer = peer();
    let expired = signed_by(&wallet, &peer, |b| {
        b.issued_at = NOW - 100;
        b.expires_at = NOW;
    });
    assert_eq!(refusal(&expired), BindingError::Expired { expires_at: NOW, now: NOW });
    let early = signed_by(&wallet, &peer, |b| {
        b.issued_at = NOW + CLOCK_SKEW_SECS + 1;
        b.expires_at = NOW + 7200;
    });
    assert_eq!(refusal(&early).kind(), "not_yet_valid");
    let long = signed_by(&wallet, &peer, |b| b.expires_at = b.issued_at + MAX_VALIDITY_SECS + 1);
    assert_eq!(refusal(&long).kind(), "bad_window");
    let empty = signed_by(&wallet, &peer, |b| b.expires_at = b.issued_at);
    assert_eq!(refusal(&empty).kind(), "bad_window");
}

#[test]
fn a_binding_for_another_peer_id_is_refused() {
    // The wallet signs for a peer id whose key the binder does not hold.
    let wallet = wallet(7);
    let (mine, victim) = (peer(), peer());
    let victim_id = victim.public().to_peer_id().to_string();
    let signed = signed_by(&wallet, &mine, |b| b.peer_id = victim_id.clone());
    assert_eq!(
        refusal(&signed),
        BindingError::PeerKeyMismatch { key_peer: mine.public().to_peer_id().to_string(), peer_id: victim_id.clone() }
    );
    // Presenting the victim's public key without its signature fails too.
    let mut stolen = signed;
    stolen.peer_key = victim.public().encode_protobuf().into();
    assert_eq!(refusal(&stolen), BindingError::BadPeerSignature { peer_id: victim_id });
}

#[test]
fn malformed_and_malleable_signatures_are_refused() {
    let wallet = wallet(8);
    let mut signed = signed_by(&wallet, &peer(), |_| {});
    let good = signed.signature.clone();
    signed.signature = Bytes::from(vec![1, 2, 3]);
    assert_eq!(refusal(&signed).kind(), "malformed_signature");
    // The same signature with s replaced by n - s (and the parity flipped) recovers the same key:
    // refused, as the contract refuses it, so relay and chain agree.
    let sig = Signature::try_from(good.as_ref()).expect("sig");
    let n = U256::from_str_radix("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16).expect("n");
    let high = Signature::new(sig.r(), n - sig.s(), !sig.v());
    signed.signature = high.as_bytes().to_vec().into();
    assert_eq!(refusal(&signed), BindingError::MalleableSignature);
    signed.signature = good;
    signed.peer_key = Bytes::from(vec![0xff; 8]);
    assert_eq!(refusal(&signed).kind(), "malformed_peer_key");
}

#[test]
fn oversized_fields_are_refused_before_any_hashing() {
    let signed = signed_by(&wallet(9), &peer(), |b| b.relay_domain = "d".repeat(MAX_NAME_BYTES + 1));
    assert_eq!(
        refusal(&signed),
        BindingError::FieldTooLong { field: "relayDomain", bytes: MAX_NAME_BYTES + 1, limit: MAX_NAME_BYTES }
    );
}

//! Who made a contribution: a tab's libp2p peer key bound to the user's wallet by one EIP-712
//! signature.
//!
//! A [`Binding`] names a peer id, the swarm, the relay's domain, the chain, a random nonce and a
//! validity window. The wallet signs it with `eth_signTypedData_v4` under the [`BindingDomain`]'s
//! EIP-712 domain (name [`EIP712_NAME`], version [`EIP712_VERSION`], chain id, the registry
//! contract as verifying contract) — the same typed-data hash `SwarmRegistry.registerPeer`
//! recomputes on chain. The peer key signs the same hash too ([`PEER_SIGNATURE_CONTEXT`]), so
//! nobody can bind a peer id whose key they do not hold. [`verify`] is the one check every relay
//! runs on a [`SignedBinding`], whether it arrived over HTTP or gossip; only the nonce (no replay)
//! needs state and is checked by the relay's ledger.
//!
//! After binding, every message the peer publishes is signed by its peer key (gossipsub strict
//! signing), so each rollout traces to the wallet's address.

use alloy_primitives::{Address, B256, Bytes, Signature};
use alloy_sol_types::{Eip712Domain, SolStruct, sol};
use serde::{Deserialize, Serialize};

use crate::rollout::MAX_PEER_BYTES;

/// EIP-712 domain name (shown by wallets next to the request).
pub const EIP712_NAME: &str = "Tabswarm";
/// EIP-712 domain version; bumped when [`Binding`] changes shape.
pub const EIP712_VERSION: &str = "1";
/// Longest a binding may be valid for.
pub const MAX_VALIDITY_SECS: u64 = 30 * 24 * 3600;
/// How far in the future `issuedAt` may lie (clocks of tabs and relays disagree a little).
pub const CLOCK_SKEW_SECS: u64 = 300;
/// Longest swarm id or relay domain, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// What the peer key signs, followed by the binding's EIP-712 signing hash (a context string so
/// the signature cannot be replayed as anything else the key signs).
pub const PEER_SIGNATURE_CONTEXT: &[u8] = b"tabswarm-binding-v1:";

sol! {
    /// The EIP-712 struct a wallet signs (field names as wallets display them). Keep in step with
    /// `contracts/SwarmRegistry.sol`'s `PEER_BINDING_TYPEHASH`.
    #[derive(Debug, PartialEq, Eq)]
    struct PeerBinding {
        string peerId;
        string swarmId;
        string relayDomain;
        uint256 chainId;
        bytes32 nonce;
        uint64 issuedAt;
        uint64 expiresAt;
    }
}

/// What a wallet binds: this peer id, in this swarm, via this relay domain, on this chain, once
/// (nonce), for this window (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binding {
    pub peer_id: String,
    pub swarm_id: String,
    pub relay_domain: String,
    pub chain_id: u64,
    pub nonce: B256,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// A binding with both signatures: the wallet's (EIP-712) and the peer key's (possession).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedBinding {
    pub binding: Binding,
    /// The wallet address that claims to have signed.
    pub address: Address,
    /// The wallet's 65-byte `eth_signTypedData_v4` signature.
    pub signature: Bytes,
    /// The peer's public key, libp2p protobuf encoding.
    pub peer_key: Bytes,
    /// The peer key's signature over [`PEER_SIGNATURE_CONTEXT`] + the EIP-712 signing hash.
    pub peer_signature: Bytes,
}

/// What a relay accepts bindings for, and what the page must sign: `GET /api/identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingDomain {
    /// The chain whose registry records bindings (also the EIP-712 domain's chain id).
    pub chain_id: u64,
    /// The `SwarmRegistry` contract (zero when the relay runs with its ledger alone).
    pub verifying_contract: Address,
    /// Which swarm (relays of one swarm share it).
    pub swarm_id: String,
    /// The relay's public domain (`host[:port]`), like an EIP-4361 domain: a binding made on a
    /// phishing page names that page's domain and is refused.
    pub relay_domain: String,
}

/// Why a binding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("binding field {field} is {bytes} bytes, over the limit of {limit}")]
    FieldTooLong { field: &'static str, bytes: usize, limit: usize },
    #[error("binding is for swarm {got:?}, this relay serves {expected:?}")]
    WrongSwarm { got: String, expected: String },
    #[error("binding names relay domain {got:?}, this relay is {expected:?}")]
    WrongDomain { got: String, expected: String },
    #[error("binding is for chain {got}, this relay uses chain {expected}")]
    WrongChain { got: u64, expected: u64 },
    #[error("binding is not valid before {issued_at} (now {now})")]
    NotYetValid { issued_at: u64, now: u64 },
    #[error("binding expired at {expires_at} (now {now})")]
    Expired { expires_at: u64, now: u64 },
    #[error("binding window {issued_at}..{expires_at} is empty or longer than {MAX_VALIDITY_SECS} s")]
    BadWindow { issued_at: u64, expires_at: u64 },
    #[error("wallet signature is malformed: {0}")]
    MalformedSignature(String),
    #[error("wallet signature has a high s value (malleable); wallets produce low-s signatures")]
    MalleableSignature,
    #[error(
        "wallet signature was made by {recovered}, not by the claimed {claimed} (forged, or signed for another domain or contract)"
    )]
    WrongSigner { recovered: Address, claimed: Address },
    #[error("peer key is malformed: {0}")]
    MalformedPeerKey(String),
    #[error("peer key belongs to {key_peer}, but the binding is for {peer_id}")]
    PeerKeyMismatch { key_peer: String, peer_id: String },
    #[error("peer signature does not verify: the binder does not hold the key of {peer_id}")]
    BadPeerSignature { peer_id: String },
}

impl BindingError {
    /// A short, stable name for counting refusals by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            BindingError::FieldTooLong { .. } => "field_too_long",
            BindingError::WrongSwarm { .. } => "wrong_swarm",
            BindingError::WrongDomain { .. } => "wrong_domain",
            BindingError::WrongChain { .. } => "wrong_chain",
            BindingError::NotYetValid { .. } => "not_yet_valid",
            BindingError::Expired { .. } => "expired",
            BindingError::BadWindow { .. } => "bad_window",
            BindingError::MalformedSignature(_) => "malformed_signature",
            BindingError::MalleableSignature => "malleable_signature",
            BindingError::WrongSigner { .. } => "wrong_signer",
            BindingError::MalformedPeerKey(_) => "malformed_peer_key",
            BindingError::PeerKeyMismatch { .. } => "peer_key_mismatch",
            BindingError::BadPeerSignature { .. } => "bad_peer_signature",
        }
    }
}

impl BindingDomain {
    /// The EIP-712 domain the wallet signs under.
    pub fn eip712(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(EIP712_NAME.into()),
            Some(EIP712_VERSION.into()),
            Some(alloy_primitives::U256::from(self.chain_id)),
            Some(self.verifying_contract),
            None,
        )
    }

    /// A binding of `peer_id` under this domain, valid from `now` for `validity_secs`.
    pub fn binding(&self, peer_id: &str, nonce: B256, now: u64, validity_secs: u64) -> Binding {
        Binding {
            peer_id: peer_id.to_owned(),
            swarm_id: self.swarm_id.clone(),
            relay_domain: self.relay_domain.clone(),
            chain_id: self.chain_id,
            nonce,
            issued_at: now,
            expires_at: now.saturating_add(validity_secs),
        }
    }

    /// The JSON `eth_signTypedData_v4` takes (types, primaryType, domain, message), with 256-bit
    /// numbers as decimal strings as wallets expect.
    pub fn typed_data(&self, binding: &Binding) -> serde_json::Value {
        serde_json::json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "PeerBinding": [
                    {"name": "peerId", "type": "string"},
                    {"name": "swarmId", "type": "string"},
                    {"name": "relayDomain", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "nonce", "type": "bytes32"},
                    {"name": "issuedAt", "type": "uint64"},
                    {"name": "expiresAt", "type": "uint64"},
                ],
            },
            "primaryType": "PeerBinding",
            "domain": {
                "name": EIP712_NAME,
                "version": EIP712_VERSION,
                "chainId": self.chain_id,
                "verifyingContract": self.verifying_contract.to_checksum(None),
            },
            "message": {
                "peerId": binding.peer_id,
                "swarmId": binding.swarm_id,
                "relayDomain": binding.relay_domain,
                "chainId": binding.chain_id.to_string(),
                "nonce": binding.nonce.to_string(),
                "issuedAt": binding.issued_at,
                "expiresAt": binding.expires_at,
            },
        })
    }
}

impl Binding {
    /// The struct as the EIP-712 encoder (and the contract) sees it.
    pub fn to_sol(&self) -> PeerBinding {
        PeerBinding {
            peerId: self.peer_id.clone(),
            swarmId: self.swarm_id.clone(),
            relayDomain: self.relay_domain.clone(),
            chainId: alloy_primitives::U256::from(self.chain_id),
            nonce: self.nonce,
            issuedAt: self.issued_at,
            expiresAt: self.expires_at,
        }
    }

    /// The hash the wallet signs: `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(binding))`.
    pub fn signing_hash(&self, domain: &BindingDomain) -> B256 {
        self.to_sol().eip712_signing_hash(&domain.eip712())
    }

    /// The message the peer key signs.
    pub fn peer_message(&self, domain: &BindingDomain) -> Vec<u8> {
        peer_message(&self.signing_hash(domain))
    }
}

fn peer_message(hash: &B256) -> Vec<u8> {
    [PEER_SIGNATURE_CONTEXT, hash.as_slice()].concat()
}

/// Checks everything about a binding that needs no state, at unix time `now`; returns the wallet
/// address it binds the peer to. Cheap checks first, the two signatures last.
pub fn verify(signed: &SignedBinding, domain: &BindingDomain, now: u64) -> Result<Address, BindingError> {
    let b = &signed.binding;
    for (field, value, limit) in [
        ("peerId", &b.peer_id, MAX_PEER_BYTES),
        ("swarmId", &b.swarm_id, MAX_NAME_BYTES),
        ("relayDomain", &b.relay_domain, MAX_NAME_BYTES),
    ] {
        if value.len() > limit {
            return Err(BindingError::FieldTooLong { field, bytes: value.len(), limit });
        }
    }
    if b.swarm_id != domain.swarm_id {
        return Err(BindingError::WrongSwarm { got: b.swarm_id.clone(), expected: domain.swarm_id.clone() });
    }
    if b.relay_domain != domain.relay_domain {
        return Err(BindingError::WrongDomain { got: b.relay_domain.clone(), expected: domain.relay_domain.clone() });
    }
    if b.chain_id != domain.chain_id {
        return Err(BindingError::WrongChain { got: b.chain_id, expected: domain.chain_id });
    }
    if b.expires_at <= b.issued_at || b.expires_at - b.issued_at > MAX_VALIDITY_SECS {
        return Err(BindingError::BadWindow { issued_at: b.issued_at, expires_at: b.expires_at });
    }
    if b.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(BindingError::NotYetValid { issued_at: b.issued_at, now });
    }
    if b.expires_at <= now {
        return Err(BindingError::Expired { expires_at: b.expires_at, now });
    }
    let hash = b.signing_hash(domain);
    let signature =
        Signature::try_from(signed.signature.as_ref()).map_err(|e| BindingError::MalformedSignature(e.to_string()))?;
    if signature.normalize_s().is_some() {
        return Err(BindingError::MalleableSignature);
    }
    let recovered =
        signature.recover_address_from_prehash(&hash).map_err(|e| BindingError::MalformedSignature(e.to_string()))?;
    if recovered != signed.address {
        return Err(BindingError::WrongSigner { recovered, claimed: signed.address });
    }
    let key = libp2p_identity::PublicKey::try_decode_protobuf(&signed.peer_key)
        .map_err(|e| BindingError::MalformedPeerKey(e.to_string()))?;
    let key_peer = key.to_peer_id().to_string();
    if key_peer != b.peer_id {
        return Err(BindingError::PeerKeyMismatch { key_peer, peer_id: b.peer_id.clone() });
    }
    if !key.verify(&peer_message(&hash), &signed.peer_signature) {
        return Err(BindingError::BadPeerSignature { peer_id: b.peer_id.clone() });
    }
    Ok(recovered)
}

/// Signs a binding with a wallet key held in memory (a native peer's key file, tests) and the
/// peer key. In the tab the wallet extension makes the first signature instead.
pub fn sign_with_key(
    binding: Binding,
    domain: &BindingDomain,
    wallet: &k256::ecdsa::SigningKey,
    peer: &libp2p_identity::Keypair,
) -> Result<SignedBinding, String> {
    let hash = binding.signing_hash(domain);
    let (signature, recovery) =
        wallet.sign_prehash_recoverable(hash.as_slice()).map_err(|e| format!("wallet key cannot sign: {e}"))?;
    let signature = Signature::from((signature, recovery));
    with_wallet_signature(binding, domain, Address::from_private_key(wallet), signature.as_bytes().to_vec(), peer)
}

/// Completes a binding the wallet signed (`signature`, 65 bytes) with the peer key's signature.
pub fn with_wallet_signature(
    binding: Binding,
    domain: &BindingDomain,
    address: Address,
    signature: Vec<u8>,
    peer: &libp2p_identity::Keypair,
) -> Result<SignedBinding, String> {
    let peer_signature = peer.sign(&binding.peer_message(domain)).map_err(|e| format!("peer key cannot sign: {e}"))?;
    Ok(SignedBinding {
        binding,
        address,
        signature: signature.into(),
        peer_key: peer.public().encode_protobuf().into(),
        peer_signature: peer_signature.into(),
    })
}

#[cfg(test)]
mod tests;

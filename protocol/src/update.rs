//! The swarm model's exchange: what a peer sends after H rounds (its update, the difference between
//! its parameters and the swarm version it started from) and how versions are named.
//!
//! An update is compressed to 8 bits: values are cut into blocks of [`BLOCK`], each block keeps
//! one `f32` scale (its largest magnitude) and an `i8` per value, `value ≈ q · scale / 127`, so an
//! update costs about 1.06 bytes per parameter against 4 for plain `f32`. The sender carries the
//! rounding error into its next update (error feedback, in `tabswarm-aggregate`).
//!
//! Layout of [`ModelUpdate::encode`]: magic `TSWMUPDT`, format (u32 LE), header length (u32 LE),
//! the header as JSON, then one `f32` LE scale per block, then one `i8` per parameter.
//! [`ModelUpdate::decode`] refuses anything else, naming what was wrong.
//!
//! A version is content-addressed: [`params_hash`] is the SHA-256 of its parameters as
//! little-endian `f32` in the model's parameter order.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First bytes of every encoded update.
pub const UPDATE_MAGIC: &[u8; 8] = b"TSWMUPDT";
/// Version of the layout.
pub const UPDATE_FORMAT: u32 = 1;
/// Values per quantisation block (one scale each).
pub const BLOCK: usize = 64;
/// The most parameters an update may carry (a relay refuses bigger ones before reading them).
pub const MAX_UPDATE_PARAMS: usize = 64 * 1024 * 1024;
const MAX_HEADER_LEN: usize = 4096;

/// Hex SHA-256 of `params` as little-endian `f32`: a swarm version's name.
pub fn params_hash(params: &[f32]) -> String {
    let mut hasher = Sha256::new();
    for chunk in params.chunks(4096) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        hasher.update(&bytes);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` could name a swarm version: 64 lowercase hex digits, as [`params_hash`] writes
/// them. Every place that takes a version hash from outside (gossip, URLs, the relay's disk) checks
/// it with this before looking anything up.
pub fn is_version_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Who sent an update and what it is relative to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateHeader {
    /// Hash of the swarm version the sender started from ([`params_hash`]).
    pub base: String,
    /// The sender's peer id.
    pub peer: String,
    /// Rounds of training the update holds.
    pub rounds: u32,
    /// Number of parameters.
    pub params: u64,
}

/// A peer's update, 8-bit compressed.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelUpdate {
    pub header: UpdateHeader,
    /// One per block of [`BLOCK`] values: the block's largest magnitude.
    pub scales: Vec<f32>,
    pub values: Vec<i8>,
}

/// Why bytes are not a usable update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("not a Tabswarm model update (it does not start with {UPDATE_MAGIC:?})")]
    NotAnUpdate,
    #[error("model update format {found} is not supported (this build reads format {UPDATE_FORMAT})")]
    UnsupportedFormat { found: u32 },
    #[error("model update is truncated: {0}")]
    Truncated(String),
    #[error("model update header is unreadable: {0}")]
    BadHeader(String),
    #[error("model update of {found} parameters is over the limit of {MAX_UPDATE_PARAMS}")]
    TooLarge { found: u64 },
    #[error("model update has {found} bytes of values and scales, its header needs {expected}")]
    WrongLength { expected: usize, found: usize },
    #[error("model update has a scale that is negative, NaN or infinite (block {block})")]
    BadScale { block: usize },
    #[error("a value to compress is NaN or infinite (index {index})")]
    NonFinite { index: usize },
    #[error("signed model update is malformed: {0}")]
    BadEnvelope(String),
    #[error("the update's signing key belongs to {key_peer}, but the update names {peer}")]
    PeerMismatch { key_peer: String, peer: String },
    #[error("the signature of peer {peer} over the update does not verify")]
    BadSignature { peer: String },
}

/// Every name [`UpdateError::kind`] can give.
pub const UPDATE_ERROR_KINDS: [&str; 5] = ["not_an_update", "malformed", "over_size", "non_finite", "bad_signature"];

impl UpdateError {
    /// A short name for counting refusals (one of [`UPDATE_ERROR_KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            UpdateError::NotAnUpdate | UpdateError::UnsupportedFormat { .. } => "not_an_update",
            UpdateError::Truncated(_) | UpdateError::BadHeader(_) | UpdateError::WrongLength { .. } => "malformed",
            UpdateError::TooLarge { .. } => "over_size",
            UpdateError::BadScale { .. } | UpdateError::NonFinite { .. } => "non_finite",
            UpdateError::BadEnvelope(_) | UpdateError::PeerMismatch { .. } | UpdateError::BadSignature { .. } => {
                "bad_signature"
            }
        }
    }
}

impl ModelUpdate {
    /// Compresses `delta` (NaN or Inf is refused: it would poison the swarm model).
    pub fn compress(header: UpdateHeader, delta: &[f32]) -> Result<Self, UpdateError> {
        if let Some(index) = delta.iter().position(|v| !v.is_finite()) {
            return Err(UpdateError::NonFinite { index });
        }
        if delta.len() > MAX_UPDATE_PARAMS {
            return Err(UpdateError::TooLarge { found: delta.len() as u64 });
        }
        let mut scales = Vec::with_capacity(delta.len().div_ceil(BLOCK));
        let mut values = Vec::with_capacity(delta.len());
        for block in delta.chunks(BLOCK) {
            let scale = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            scales.push(scale);
            for v in block {
                let q = if scale == 0.0 { 0.0 } else { (v / scale * 127.0).round() };
                values.push(q.clamp(-127.0, 127.0) as i8);
            }
        }
        Ok(Self { header: UpdateHeader { params: delta.len() as u64, ..header }, scales, values })
    }

    /// The update as `f32` values again (each within half a step, `scale / 254`, of what was sent).
    pub fn decompress(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.values.len());
        for (block, scale) in self.values.chunks(BLOCK).zip(&self.scales) {
            out.extend(block.iter().map(|&q| f32::from(q) * scale / 127.0));
        }
        out
    }

    /// Bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("the header serialises");
        let mut out = Vec::with_capacity(16 + header.len() + self.scales.len() * 4 + self.values.len());
        out.extend_from_slice(UPDATE_MAGIC);
        out.extend_from_slice(&UPDATE_FORMAT.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for s in &self.scales {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend(self.values.iter().map(|&q| q as u8));
        out
    }

    /// Reads bytes from [`encode`](Self::encode); every length is checked before it is used.
    pub fn decode(bytes: &[u8]) -> Result<Self, UpdateError> {
        if bytes.len() < UPDATE_MAGIC.len() || &bytes[..UPDATE_MAGIC.len()] != UPDATE_MAGIC {
            return Err(UpdateError::NotAnUpdate);
        }
        let word = |at: usize, what: &str| -> Result<u32, UpdateError> {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| UpdateError::Truncated(format!("it ends before its {what}")))
        };
        let format = word(8, "format")?;
        if format != UPDATE_FORMAT {
            return Err(UpdateError::UnsupportedFormat { found: format });
        }
        let header_len = word(12, "header length")? as usize;
        if header_len > MAX_HEADER_LEN {
            return Err(UpdateError::BadHeader(format!("{header_len} bytes is over the {MAX_HEADER_LEN}-byte limit")));
        }
        let header_bytes =
            bytes.get(16..16 + header_len).ok_or_else(|| UpdateError::Truncated("it ends inside its header".into()))?;
        let header: UpdateHeader =
            serde_json::from_slice(header_bytes).map_err(|e| UpdateError::BadHeader(e.to_string()))?;
        if header.params > MAX_UPDATE_PARAMS as u64 {
            return Err(UpdateError::TooLarge { found: header.params });
        }
        let n = header.params as usize;
        let blocks = n.div_ceil(BLOCK);
        let body = &bytes[16 + header_len..];
        let expected = blocks * 4 + n;
        if body.len() != expected {
            return Err(UpdateError::WrongLength { expected, found: body.len() });
        }
        let (scale_bytes, value_bytes) = body.split_at(blocks * 4);
        let scales: Vec<f32> =
            scale_bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        if let Some(block) = scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
            return Err(UpdateError::BadScale { block });
        }
        Ok(Self { header, scales, values: value_bytes.iter().map(|&b| b as i8).collect() })
    }

    /// Size of [`encode`](Self::encode)'s output.
    pub fn encoded_len(&self) -> usize {
        16 + serde_json::to_vec(&self.header).map_or(0, |h| h.len()) + self.scales.len() * 4 + self.values.len()
    }
}

/// First bytes of a signed update (what a peer posts to its relay).
pub const SIGNED_MAGIC: &[u8; 8] = b"TSWMSUPD";
/// What the peer key signs: this context, then the SHA-256 of the encoded update.
pub const UPDATE_SIGNATURE_CONTEXT: &[u8] = b"tabswarm model update v1\n";

fn signing_message(encoded: &[u8]) -> Vec<u8> {
    [UPDATE_SIGNATURE_CONTEXT, Sha256::digest(encoded).as_slice()].concat()
}

/// `update` signed with the peer's key: magic, key length (u32 LE), the protobuf public key,
/// signature length (u32 LE), the signature, then the encoded update. The update must name the
/// key's peer id.
pub fn sign(update: &ModelUpdate, key: &libp2p_identity::Keypair) -> Result<Vec<u8>, UpdateError> {
    let key_peer = key.public().to_peer_id().to_string();
    if key_peer != update.header.peer {
        return Err(UpdateError::PeerMismatch { key_peer, peer: update.header.peer.clone() });
    }
    let encoded = update.encode();
    let signature = key.sign(&signing_message(&encoded)).map_err(|e| UpdateError::BadEnvelope(e.to_string()))?;
    let public = key.public().encode_protobuf();
    let mut out = Vec::with_capacity(16 + public.len() + signature.len() + encoded.len());
    out.extend_from_slice(SIGNED_MAGIC);
    out.extend_from_slice(&(public.len() as u32).to_le_bytes());
    out.extend_from_slice(&public);
    out.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    out.extend_from_slice(&signature);
    out.extend_from_slice(&encoded);
    Ok(out)
}

/// Checks a [`sign`]ed update: the envelope, that the key is the named peer's, the signature, then
/// the update itself ([`ModelUpdate::decode`]).
pub fn verify_signed(bytes: &[u8]) -> Result<ModelUpdate, UpdateError> {
    if bytes.len() < SIGNED_MAGIC.len() || &bytes[..SIGNED_MAGIC.len()] != SIGNED_MAGIC {
        return Err(UpdateError::BadEnvelope(format!("it does not start with {SIGNED_MAGIC:?}")));
    }
    let mut at = SIGNED_MAGIC.len();
    let mut field = |what: &str| -> Result<&[u8], UpdateError> {
        let len = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| UpdateError::BadEnvelope(format!("it ends before the {what}'s length")))?;
        if len > 1024 {
            return Err(UpdateError::BadEnvelope(format!("a {what} of {len} bytes is too long")));
        }
        let value = bytes
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| UpdateError::BadEnvelope(format!("it ends inside the {what}")))?;
        at += 4 + len;
        Ok(value)
    };
    let public = field("key")?;
    let signature = field("signature")?.to_vec();
    let encoded = &bytes[at..];
    let key = libp2p_identity::PublicKey::try_decode_protobuf(public)
        .map_err(|e| UpdateError::BadEnvelope(format!("the key is not a libp2p public key: {e}")))?;
    let update = ModelUpdate::decode(encoded)?;
    let key_peer = key.to_peer_id().to_string();
    if key_peer != update.header.peer {
        return Err(UpdateError::PeerMismatch { key_peer, peer: update.header.peer });
    }
    if !key.verify(&signing_message(encoded), &signature) {
        return Err(UpdateError::BadSignature { peer: update.header.peer });
    }
    Ok(update)
}

/// Where a swarm version comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// [`params_hash`] of the version.
    pub hash: String,
    /// 0 for the base, then one more per outer step.
    pub number: u64,
    /// The version it was made from (none for the base).
    pub parent: Option<String>,
    /// Peers whose updates made it, sorted.
    pub contributors: Vec<String>,
    /// Updates aggregated into it.
    pub updates: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> UpdateHeader {
        UpdateHeader { base: "ab".repeat(32), peer: "peer-1".into(), rounds: 4, params: 0 }
    }

    #[test]
    fn compression_keeps_each_value_within_half_a_step() {
        // 131 values: two whole blocks and a ragged one, magnitudes over four decades.
        let delta: Vec<f32> = (0..131).map(|i| ((i * 37 % 101) as f32 - 50.0) * 10f32.powi(i % 4 - 3)).collect();
        let update = ModelUpdate::compress(header(), &delta).expect("ok");
        assert_eq!(update.header.params, 131);
        assert_eq!(update.scales.len(), 3);
        let back = update.decompress();
        for (block, (orig, back)) in delta.chunks(BLOCK).zip(back.chunks(BLOCK)).enumerate() {
            let scale = update.scales[block];
            assert_eq!(scale, orig.iter().fold(0.0f32, |m, v| m.max(v.abs())));
            for (a, b) in orig.iter().zip(back) {
                assert!((a - b).abs() <= scale / 254.0 * 1.0001, "{a} came back as {b} (scale {scale})");
            }
        }
    }

    #[test]
    fn an_update_survives_encoding_and_its_length_is_known() {
        let delta: Vec<f32> = (0..200).map(|i| (i as f32).sin()).collect();
        let update = ModelUpdate::compress(header(), &delta).expect("ok");
        let bytes = update.encode();
        assert_eq!(bytes.len(), update.encoded_len());
        assert_eq!(ModelUpdate::decode(&bytes).expect("ok"), update);
        // 200 values: 200 bytes of values + 4 scales of 4 bytes, plus the framing.
        assert!(bytes.len() < 200 + 16 + 16 + 200, "{}", bytes.len());
    }

    #[test]
    fn version_hashes_are_what_params_hash_writes() {
        let hash = params_hash(&[1.0, -2.5, 0.0]);
        assert!(is_version_hash(&hash), "{hash}");
        assert!(!is_version_hash(&hash.to_uppercase()), "uppercase is another string, never a stored name");
        assert!(!is_version_hash(&hash[1..]), "63 digits");
        assert!(!is_version_hash(&format!("{hash}0")), "65 digits");
        assert!(!is_version_hash(&format!("g{}", &hash[1..])), "not hex");
        assert!(!is_version_hash(&format!("../{}", &hash[3..])), "a path");
    }

    #[test]
    fn zero_blocks_compress_to_zero() {
        let update = ModelUpdate::compress(header(), &[0.0; 70]).expect("ok");
        assert_eq!(update.decompress(), vec![0.0; 70]);
    }

    #[test]
    fn non_finite_values_are_refused_before_compression() {
        let mut delta = vec![0.5; 10];
        delta[7] = f32::NAN;
        assert_eq!(ModelUpdate::compress(header(), &delta), Err(UpdateError::NonFinite { index: 7 }));
        delta[7] = f32::INFINITY;
        assert_eq!(ModelUpdate::compress(header(), &delta).expect_err("refused").kind(), "non_finite");
    }

    #[test]
    fn bad_bytes_are_refused_with_a_reason() {
        let good = ModelUpdate::compress(header(), &[1.0, -2.0, 3.0]).expect("ok").encode();
        assert_eq!(ModelUpdate::decode(b"TSWMCKPT...."), Err(UpdateError::NotAnUpdate));
        assert_eq!(ModelUpdate::decode(&good[..10]).expect_err("refused").kind(), "malformed");
        let mut format = good.clone();
        format[8] = 9;
        assert_eq!(ModelUpdate::decode(&format), Err(UpdateError::UnsupportedFormat { found: 9 }));
        assert!(matches!(ModelUpdate::decode(&good[..good.len() - 1]), Err(UpdateError::WrongLength { .. })));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(ModelUpdate::decode(&longer), Err(UpdateError::WrongLength { .. })));
        // A NaN scale (the scale sits right after the header).
        let header_len = u32::from_le_bytes(good[12..16].try_into().expect("ok")) as usize;
        let mut nan = good.clone();
        nan[16 + header_len..20 + header_len].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(ModelUpdate::decode(&nan), Err(UpdateError::BadScale { block: 0 }));
        // A header claiming more parameters than the limit is refused before any allocation.
        let huge = UpdateHeader { params: MAX_UPDATE_PARAMS as u64 + 1, ..header() };
        let json = serde_json::to_vec(&huge).expect("ok");
        let mut bytes = UPDATE_MAGIC.to_vec();
        bytes.extend(UPDATE_FORMAT.to_le_bytes());
        bytes.extend((json.len() as u32).to_le_bytes());
        bytes.extend(json);
        assert_eq!(ModelUpdate::decode(&bytes).expect_err("refused").kind(), "over_size");
        let mut garbled = good;
        garbled[16] = b'#';
        assert!(matches!(ModelUpdate::decode(&garbled), Err(UpdateError::BadHeader(_))));
    }

    #[test]
    fn a_signed_update_verifies_and_tampering_is_refused() {
        let key = libp2p_identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id().to_string();
        let update =
            ModelUpdate::compress(UpdateHeader { peer: peer.clone(), ..header() }, &[0.5, -0.25, 1.0]).expect("ok");
        let signed = sign(&update, &key).expect("signed");
        assert_eq!(verify_signed(&signed).expect("verifies"), update);
        // A flipped value byte (the last byte of the update).
        let mut tampered = signed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(verify_signed(&tampered), Err(UpdateError::BadSignature { peer: peer.clone() }));
        // Someone else's key cannot sign for this peer, nor this key for another peer.
        let other = libp2p_identity::Keypair::generate_ed25519();
        assert!(matches!(sign(&update, &other), Err(UpdateError::PeerMismatch { .. })));
        let mut forged = SIGNED_MAGIC.to_vec();
        let public = other.public().encode_protobuf();
        let encoded = update.encode();
        let signature = other.sign(&signing_message(&encoded)).expect("sign");
        forged.extend((public.len() as u32).to_le_bytes());
        forged.extend(public);
        forged.extend((signature.len() as u32).to_le_bytes());
        forged.extend(signature);
        forged.extend(encoded);
        assert!(matches!(verify_signed(&forged), Err(UpdateError::PeerMismatch { .. })));
        assert_eq!(verify_signed(&signed[..20]).expect_err("short").kind(), "bad_signature");
        assert_eq!(verify_signed(&update.encode()).expect_err("unsigned").kind(), "bad_signature");
    }

    #[test]
    fn the_version_hash_is_the_sha256_of_the_parameters() {
        // SHA-256 of the 8 bytes 00 00 80 3f 00 00 00 c0 (1.0f32, -2.0f32 little-endian).
        let bytes: Vec<u8> = [1.0f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let expected: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(params_hash(&[1.0, -2.0]), expected);
        assert_ne!(params_hash(&[1.0, -2.0]), params_hash(&[1.0, 2.0]));
        // Chunking does not change the hash.
        let long: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let all: Vec<u8> = long.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(params_hash(&long), Sha256::digest(&all).iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
}

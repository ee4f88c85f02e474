//! The checkpoint file framing every party reads: the tab that saves a model, the relay that serves
//! the swarm's base checkpoint, a native peer that loads it.
//!
//! Layout: `TSWMCKPT` magic, format version (u32 LE), header length (u32 LE), the header as JSON,
//! then the payload (a burn record). The header always carries `step`, `payload_len` and
//! `payload_sha256`; the client adds the model config and tokenizer. [`verify`] checks the framing,
//! the length and the hash — everything a relay can check without knowing the model.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First bytes of every checkpoint.
pub const MAGIC: &[u8; 8] = b"TSWMCKPT";
/// Version of this layout.
pub const FORMAT_VERSION: u32 = 1;
/// A header larger than this is refused as corrupt.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Why bytes are not a usable checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a Tabswarm checkpoint (the file does not start with {MAGIC:?})")]
    NotACheckpoint,
    #[error("checkpoint format {found} is not supported (this build reads format {FORMAT_VERSION})")]
    UnsupportedFormat { found: u32 },
    #[error("checkpoint is truncated: {0}")]
    Truncated(String),
    #[error("checkpoint header is unreadable: {0}")]
    BadHeader(String),
    #[error("checkpoint is corrupt: its payload hashes to {actual}, the header says {expected}")]
    HashMismatch { expected: String, actual: String },
}

/// The part of the header every party understands (the client's header has more fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Training steps the parameters have seen.
    pub step: u64,
    pub payload_len: u64,
    /// Hex SHA-256 of the payload: the checkpoint's content hash.
    pub payload_sha256: String,
}

/// A checked checkpoint: its summary, the raw header JSON and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    pub summary: Summary,
    pub header_json: &'a [u8],
    pub payload: &'a [u8],
}

/// Body of the relay's `GET /api/checkpoint/base.json`: what the swarm's base checkpoint is now.
/// A tab fetches the bytes from `url` and checks them against `sha256` before training on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseInfo {
    /// Hex SHA-256 of the parameters (the checkpoint header's content hash).
    pub sha256: String,
    /// Size of the whole file.
    pub bytes: usize,
    /// Training steps of the base model.
    pub step: u64,
    /// Where the bytes live under their hash (immutable).
    pub url: String,
}

impl BaseInfo {
    /// Checks downloaded `bytes` against this description: the framing and payload hash, then that
    /// the hash is the one advertised (so a swapped or stale file is refused).
    pub fn check<'a>(&self, bytes: &'a [u8]) -> Result<Verified<'a>, FrameError> {
        let verified = verify(bytes)?;
        if verified.summary.payload_sha256 != self.sha256 {
            return Err(FrameError::HashMismatch {
                expected: self.sha256.clone(),
                actual: verified.summary.payload_sha256.clone(),
            });
        }
        Ok(verified)
    }
}

/// Frames `header_json` and `payload` as a checkpoint.
pub fn frame(header_json: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + header_json.len() + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(header_json);
    bytes.extend_from_slice(payload);
    bytes
}

/// Checks magic, format, header, payload length and hash; nothing of the model itself.
pub fn verify(bytes: &[u8]) -> Result<Verified<'_>, FrameError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(FrameError::NotACheckpoint);
    }
    let word = |at: usize| -> Result<u32, FrameError> {
        let raw = bytes.get(at..at + 4).ok_or_else(|| FrameError::Truncated(format!("{} bytes", bytes.len())))?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    };
    let format = word(8)?;
    if format != FORMAT_VERSION {
        return Err(FrameError::UnsupportedFormat { found: format });
    }
    let header_len = word(12)? as usize;
    if header_len > MAX_HEADER_LEN {
        return Err(FrameError::BadHeader(format!("header claims {header_len} bytes")));
    }
    let header_json = bytes
        .get(16..16 + header_len)
        .ok_or_else(|| FrameError::Truncated(format!("header needs {header_len} bytes")))?;
    let summary: Summary = serde_json::from_slice(header_json).map_err(|e| FrameError::BadHeader(e.to_string()))?;
    let payload = &bytes[16 + header_len..];
    if payload.len() as u64 != summary.payload_len {
        return Err(FrameError::Truncated(format!(
            "payload has {} bytes, the header says {}",
            payload.len(),
            summary.payload_len
        )));
    }
    let actual = sha256_hex(payload);
    if actual != summary.payload_sha256 {
        return Err(FrameError::HashMismatch { expected: summary.payload_sha256, actual });
    }
    Ok(Verified { summary, header_json, payload })
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(payload: &[u8]) -> Vec<u8> {
        let header = serde_json::json!({
            "step": 7, "payload_len": payload.len(), "payload_sha256": sha256_hex(payload), "config": {"d_model": 32}
        });
        frame(&serde_json::to_vec(&header).expect("json"), payload)
    }

    #[test]
    fn a_framed_checkpoint_verifies_and_keeps_unknown_header_fields() {
        let bytes = example(b"parameters");
        let verified = verify(&bytes).expect("valid");
        assert_eq!(verified.summary.step, 7);
        assert_eq!(verified.payload, b"parameters");
        assert!(std::str::from_utf8(verified.header_json).expect("utf8").contains("\"d_model\":32"));
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn every_kind_of_damage_is_named() {
        let bytes = example(b"parameters");
        assert_eq!(verify(b"PK\x03\x04"), Err(FrameError::NotACheckpoint));
        assert_eq!(verify(&bytes[..10]).expect_err("short").to_string(), "checkpoint is truncated: 10 bytes");
        let mut future = bytes.clone();
        future[8] = 2;
        assert_eq!(verify(&future), Err(FrameError::UnsupportedFormat { found: 2 }));
        let mut huge = bytes.clone();
        huge[12..16].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert!(matches!(verify(&huge), Err(FrameError::BadHeader(_))));
        assert!(matches!(verify(&bytes[..bytes.len() - 1]), Err(FrameError::Truncated(_))));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(verify(&flipped).expect_err("flipped").to_string().starts_with("checkpoint is corrupt"));
        let no_hash = frame(br#"{"step": 1}"#, b"x");
        assert!(matches!(verify(&no_hash), Err(FrameError::BadHeader(_))));
    }

    #[test]
    fn a_download_must_be_the_advertised_base() {
        let bytes = example(b"parameters");
        let info = BaseInfo { sha256: sha256_hex(b"parameters"), bytes: bytes.len(), step: 7, url: "/x".into() };
        assert_eq!(info.check(&bytes).expect("the advertised file").payload, b"parameters");
        let other = example(b"other parameters");
        let err = info.check(&other).expect_err("a different, intact checkpoint");
        assert_eq!(
            err,
            FrameError::HashMismatch { expected: info.sha256.clone(), actual: sha256_hex(b"other parameters") }
        );
        assert_eq!(info.check(b"<html>"), Err(FrameError::NotACheckpoint));
    }
}

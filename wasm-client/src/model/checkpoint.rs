//! Checkpoints: a model's parameters (a burn record) behind a header that says what they are.
//!
//! Layout: `TSWMCKPT` magic, format version (u32 LE), header length (u32 LE), the header as JSON,
//! then the burnpack payload. The header records the model config, the tokenizer version and
//! fingerprint, the training step, and the payload's length and SHA-256, so a truncated, corrupt
//! or mismatched file is refused with a reason before any parameter is touched.

use std::collections::VecDeque;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tokenizer::{TOKENIZER_VERSION, Tokenizer};
use super::{Model, ModelConfig, ModelError};

/// First bytes of every checkpoint.
pub const MAGIC: &[u8; 8] = b"TSWMCKPT";
/// Version of this layout.
pub const FORMAT_VERSION: u32 = 1;
/// A header larger than this is refused as corrupt.
const MAX_HEADER_LEN: usize = 64 * 1024;

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub config: ModelConfig,
    pub tokenizer_version: u32,
    pub tokenizer_fingerprint: String,
    /// Training steps the parameters have seen.
    pub step: u64,
    pub payload_len: u64,
    /// Hex SHA-256 of the payload: the checkpoint's content hash.
    pub payload_sha256: String,
}

/// Why a checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
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
    #[error(
        "checkpoint was trained with tokenizer v{found} ({found_fingerprint}); this build has v{TOKENIZER_VERSION} ({expected_fingerprint})"
    )]
    TokenizerMismatch { found: u32, found_fingerprint: String, expected_fingerprint: String },
    #[error("checkpoint is for a different model: it has {found}, expected {expected}")]
    ConfigMismatch { found: String, expected: String },
    #[error("checkpoint parameters do not fit the model: {0}")]
    Record(String),
}

/// Serialises `model` (trained for `step` steps) with its header.
pub fn save(model: &Model, config: &ModelConfig, step: u64) -> Result<Vec<u8>, ModelError> {
    let payload = model.clone().into_record().into_bytes().map_err(|e| CheckpointError::Record(format!("{e:?}")))?;
    let tokenizer = Tokenizer::new();
    let header = CheckpointHeader {
        config: config.clone(),
        tokenizer_version: TOKENIZER_VERSION,
        tokenizer_fingerprint: tokenizer.fingerprint(),
        step,
        payload_len: payload.len() as u64,
        payload_sha256: sha256_hex(&payload),
    };
    let header = serde_json::to_vec(&header).map_err(|e| CheckpointError::BadHeader(e.to_string()))?;
    let mut bytes = Vec::with_capacity(16 + header.len() + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Checks everything but the parameters themselves: magic, format, header, length, hash, tokenizer.
pub fn read_header(bytes: &[u8]) -> Result<(CheckpointHeader, &[u8]), CheckpointError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(CheckpointError::NotACheckpoint);
    }
    let word = |at: usize| -> Result<u32, CheckpointError> {
        let raw = bytes.get(at..at + 4).ok_or_else(|| CheckpointError::Truncated(format!("{} bytes", bytes.len())))?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    };
    let format = word(8)?;
    if format != FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedFormat { found: format });
    }
    let header_len = word(12)? as usize;
    if header_len > MAX_HEADER_LEN {
        return Err(CheckpointError::BadHeader(format!("header claims {header_len} bytes")));
    }
    let header_bytes = bytes
        .get(16..16 + header_len)
        .ok_or_else(|| CheckpointError::Truncated(format!("header needs {header_len} bytes")))?;
    let header: CheckpointHeader =
        serde_json::from_slice(header_bytes).map_err(|e| CheckpointError::BadHeader(e.to_string()))?;
    let payload = &bytes[16 + header_len..];
    if payload.len() as u64 != header.payload_len {
        return Err(CheckpointError::Truncated(format!(
            "payload has {} bytes, the header says {}",
            payload.len(),
            header.payload_len
        )));
    }
    let actual = sha256_hex(payload);
    if actual != header.payload_sha256 {
        return Err(CheckpointError::HashMismatch { expected: header.payload_sha256, actual });
    }
    let expected_fingerprint = Tokenizer::new().fingerprint();
    if header.tokenizer_version != TOKENIZER_VERSION || header.tokenizer_fingerprint != expected_fingerprint {
        return Err(CheckpointError::TokenizerMismatch {
            found: header.tokenizer_version,
            found_fingerprint: header.tokenizer_fingerprint,
            expected_fingerprint,
        });
    }
    Ok((header, payload))
}

/// [`save`] for a model on any device without blocking: every parameter is read back with
/// `into_data_async` into a copy of the model on the CPU, which is then serialised. This is the
/// path a browser worker must take for a model on WebGPU, where a synchronous read panics.
pub async fn save_async(model: &Model, config: &ModelConfig, step: u64) -> Result<Vec<u8>, ModelError> {
    // Parameters in visiting order, with their ids (kept, so the checkpoint is byte-identical to
    // one saved from the CPU).
    struct Collect(Vec<(ParamId, Tensor<1>)>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push((param.id, param.val().reshape([-1])));
        }
    }
    struct Fill {
        values: VecDeque<(ParamId, TensorData)>,
        device: Device,
        missing: bool,
    }
    impl ModuleMapper for Fill {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some((id, data)) = self.values.pop_front() else {
                self.missing = true;
                return param;
            };
            let dims = param.val().dims();
            Param::initialized(id, Tensor::<1>::from_data(data, &self.device).reshape(dims))
        }
    }

    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    let mut values = VecDeque::with_capacity(collect.0.len());
    for (id, tensor) in collect.0 {
        let data = tensor.into_data_async().await.map_err(|e| ModelError::Readback(format!("{e:?}")))?;
        values.push_back((id, data));
    }
    let cpu = Device::flex();
    let mut fill = Fill { values, device: cpu.clone(), missing: false };
    let copy = config.init(&cpu)?.map(&mut fill);
    if fill.missing || !fill.values.is_empty() {
        return Err(CheckpointError::Record("the model's parameters do not match its config".into()).into());
    }
    save(&copy, config, step)
}

/// Loads a checkpoint onto `device`. With `expected`, a checkpoint of any other config is refused.
pub fn load(
    bytes: &[u8],
    expected: Option<&ModelConfig>,
    device: &Device,
) -> Result<(Model, CheckpointHeader), ModelError> {
    let (header, payload) = read_header(bytes)?;
    if let Some(expected) = expected.filter(|e| **e != header.config) {
        return Err(
            CheckpointError::ConfigMismatch { found: describe(&header.config), expected: describe(expected) }.into()
        );
    }
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(payload.to_vec()))
        .map_err(|e| CheckpointError::Record(format!("{e:?}")))?;
    let model =
        header.config.init(device)?.try_load_record(record).map_err(|e| CheckpointError::Record(format!("{e:?}")))?;
    Ok((model, header))
}

fn describe(config: &ModelConfig) -> String {
    format!(
        "vocab {} · d_model {} · {} layers · {} heads · d_ff {} · context {}",
        config.vocab_size, config.d_model, config.n_layers, config.n_heads, config.d_ff, config.max_seq_len
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

//! Checkpoints: a model's parameters (a burn record) behind a header that says what they are.
//!
//! The framing (magic, format, header length, payload length and hash) is shared with the relay in
//! `tabswarm_protocol::checkpoint`; the payload is a burnpack record. The header records the model config, the tokenizer version and
//! fingerprint, the training step, and the payload's length and SHA-256, so a truncated, corrupt
//! or mismatched file is refused with a reason before any parameter is touched.

use std::collections::VecDeque;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tabswarm_protocol::checkpoint::{FrameError, frame, sha256_hex, verify};

use super::tokenizer::{TOKENIZER_VERSION, Tokenizer};
use super::{Model, ModelConfig, ModelError};

pub use tabswarm_protocol::checkpoint::{FORMAT_VERSION, MAGIC};

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
    /// Magic, format, length or hash are wrong (the checks the relay makes too).
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("checkpoint header is unreadable: {0}")]
    BadHeader(String),
    #[error(
        "checkpoint was trained with tokenizer v{found} ({found_fingerprint}); this build has v{TOKENIZER_VERSION} ({expected_fingerprint})"
    )]
    TokenizerMismatch { found: u32, found_fingerprint: String, expected_fingerprint: String },
    #[error("checkpoint is for a different model: it has {found}, expected {expected}")]
    ConfigMismatch { found: String, expected: String },
    #[error("checkpoint parameters do not fit the model: {0}")]
    Record(String),
}

/// `model` with its parameter ids numbered by position (0, 1, …) instead of burn's random ids, so
/// a checkpoint depends only on the parameter values (pretraining's output is then byte-for-byte
/// reproducible from its seed). Loading matches parameters by their path, not their id.
fn with_positional_ids(model: Model) -> Model {
    struct Renumber(u64);
    impl ModuleMapper for Renumber {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let id = ParamId::from(self.0);
            self.0 += 1;
            Param::initialized(id, param.val())
        }
    }
    model.map(&mut Renumber(0))
}

/// Serialises `model` (trained for `step` steps) with its header.
pub fn save(model: &Model, config: &ModelConfig, step: u64) -> Result<Vec<u8>, ModelError> {
    let payload = with_positional_ids(model.clone())
        .into_record()
        .into_bytes()
        .map_err(|e| CheckpointError::Record(format!("{e:?}")))?;
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
    Ok(frame(&header, &payload))
}

/// Checks everything but the parameters themselves: magic, format, header, length, hash, tokenizer.
pub fn read_header(bytes: &[u8]) -> Result<(CheckpointHeader, &[u8]), CheckpointError> {
    let verified = verify(bytes)?;
    let header: CheckpointHeader =
        serde_json::from_slice(verified.header_json).map_err(|e| CheckpointError::BadHeader(e.to_string()))?;
    let payload = verified.payload;
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
        tabswarm_kernels::work::note_readback();
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

//! The policy model every Tabswarm peer trains, and everything it does: tokenize, generate
//! rollouts, compute per-token log-probabilities, take supervised and GRPO steps, and save or load
//! checkpoints (framed by `tabswarm_protocol::checkpoint`, so a relay can verify them). It knows
//! nothing of rounds, peers or the network (`tabswarm-learn` and `tabswarm-net` do).
//!
//! Written once against burn's device-generic API, so the same code runs on WebGPU in a tab, on
//! Vulkan/Metal/DX12 natively, and on the pure-Rust CPU backend (`flex`) where there is no GPU.
//! Every readback is `into_data_async`, so nothing here blocks a browser worker.

pub mod batch;
pub mod checkpoint;
pub mod generate;
pub mod grpo;
pub mod params;
pub mod tokenizer;
pub mod train;
pub mod transformer;

use burn::tensor::{Device, Int, Tensor, TensorData};
use tabswarm_kernels::work::{note_readback, note_upload};

pub use batch::TokenBatch;
pub use checkpoint::{CheckpointError, CheckpointHeader};
pub use generate::{GPU_TOKENS_PER_READBACK, SamplingConfig, generate};
pub use grpo::{GrpoBatch, GrpoConfig, group_advantages};
pub use tokenizer::{TOKENIZER_VERSION, TokenizeError, Tokenizer};
pub use train::{StepStats, TrainConfig, Trainer};
pub use transformer::{KvCache, Model, ModelConfig, ModelSize};

/// Everything that can go wrong using the model. Each message names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    #[error("a sequence must have at least one token")]
    EmptySequence,
    #[error("a sequence of {len} tokens exceeds the model's context of {max}")]
    TooLong { len: usize, max: usize },
    #[error("{len} positions do not fit a KV cache made for {capacity}")]
    CacheFull { len: usize, capacity: usize },
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    #[error("invalid sampling settings: {0}")]
    InvalidSampling(String),
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    #[error("reading a tensor back from the device failed: {0}")]
    Readback(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// `[rows, len]` token ids as an Int tensor; every row must have the same length.
pub(crate) fn token_tensor(rows: &[Vec<u32>], device: &Device) -> Result<Tensor<2, Int>, ModelError> {
    let len = rows.first().map(Vec::len).ok_or_else(|| ModelError::InvalidBatch("no sequences".into()))?;
    if let Some(other) = rows.iter().find(|r| r.len() != len) {
        return Err(ModelError::InvalidBatch(format!(
            "sequences in one batch must have the same length; got {len} and {}",
            other.len()
        )));
    }
    let values: Vec<i64> = rows.iter().flatten().map(|&t| i64::from(t)).collect();
    note_upload();
    Ok(Tensor::from_ints(TensorData::new(values, [rows.len(), len]), device))
}

/// Reads token ids back to the host without blocking.
pub(crate) async fn read_ints(tensor: Tensor<1, Int>) -> Result<Vec<u32>, ModelError> {
    note_readback();
    let data = tensor.into_data_async().await.map_err(|e| ModelError::Readback(format!("{e:?}")))?;
    let ids: Vec<i64> = data.convert::<i64>().iter::<i64>().collect();
    ids.into_iter()
        .map(|id| u32::try_from(id).map_err(|_| ModelError::Readback(format!("the device drew token id {id}"))))
        .collect()
}

/// Reads a float tensor back to the host without blocking.
pub(crate) async fn read_floats<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    note_readback();
    let data = tensor.into_data_async().await.map_err(|e| ModelError::Readback(format!("{e:?}")))?;
    Ok(data.iter::<f32>().collect())
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

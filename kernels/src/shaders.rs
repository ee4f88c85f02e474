//! The registry of every WGSL source in this crate, so tests can validate all of them with naga and
//! compile them in Chromium.
//!
//! WGSL has no `#include`: a kernel that shares code with another is its own file followed by a
//! common part (`fused/sample_common.wgsl`, `fused/token_logprob_common.wgsl`), joined at compile
//! time with `concat!(include_str!(…))`. Each entry lists its parts; the tests check the parts
//! against the files on disk.

/// A WGSL shader compiled into the crate.
#[derive(Debug, Clone, Copy)]
pub struct ShaderSource {
    /// The kernel's own file, relative to `kernels/src/`, e.g. `matmul/matmul.wgsl`.
    pub path: &'static str,
    /// The files it is made of, in order (the kernel's own first).
    pub parts: &'static [&'static str],
    /// The WGSL text: its parts, concatenated.
    pub source: &'static str,
}

macro_rules! shader {
    ($path:literal $(, $part:literal)*) => {
        ShaderSource { path: $path, parts: &[$path $(, $part)*], source: concat!(include_str!($path) $(, include_str!($part))*) }
    };
}

pub const MATMUL: ShaderSource = shader!("matmul/matmul.wgsl");
pub const TOKEN_LOGPROB: ShaderSource = shader!("fused/token_logprob.wgsl", "fused/token_logprob_common.wgsl");
pub const TOKEN_LOGPROB_ROWS: ShaderSource =
    shader!("fused/token_logprob_rows.wgsl", "fused/token_logprob_common.wgsl");
pub const TOKEN_LOGPROB_BACKWARD: ShaderSource = shader!("fused/token_logprob_backward.wgsl");
pub const DECODE_ATTENTION: ShaderSource = shader!("fused/decode_attention.wgsl");
pub const SAMPLE: ShaderSource = shader!("fused/sample.wgsl", "fused/sample_common.wgsl");
pub const SAMPLE_ROWS: ShaderSource = shader!("fused/sample_rows.wgsl", "fused/sample_common.wgsl");
pub const ADAMW: ShaderSource = shader!("fused/adamw.wgsl");
pub const LAYER_NORM: ShaderSource = shader!("fused/layer_norm.wgsl");
pub const LAYER_NORM_BACKWARD: ShaderSource = shader!("fused/layer_norm_backward.wgsl");

/// Every shader. A test fails if a `.wgsl` file on disk is part of none of them.
pub const ALL: &[ShaderSource] = &[
    MATMUL,
    TOKEN_LOGPROB,
    TOKEN_LOGPROB_BACKWARD,
    TOKEN_LOGPROB_ROWS,
    DECODE_ATTENTION,
    SAMPLE,
    SAMPLE_ROWS,
    ADAMW,
    LAYER_NORM,
    LAYER_NORM_BACKWARD,
];

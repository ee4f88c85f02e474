//! The registry of every WGSL source in this crate, so tests can validate all of them with naga.

/// A WGSL source compiled into the crate.
#[derive(Debug, Clone, Copy)]
pub struct ShaderSource {
    /// File name relative to `kernels/src/`, e.g. `matmul/matmul.wgsl`.
    pub path: &'static str,
    /// The WGSL text.
    pub source: &'static str,
}

/// Every `.wgsl` file in the crate. A test fails if a file on disk is missing here.
pub const ALL: &[ShaderSource] = &[
    ShaderSource { path: "matmul/matmul.wgsl", source: crate::matmul::SHADER },
    ShaderSource { path: "fused/token_logprob.wgsl", source: include_str!("fused/token_logprob.wgsl") },
    ShaderSource {
        path: "fused/token_logprob_backward.wgsl",
        source: include_str!("fused/token_logprob_backward.wgsl"),
    },
    ShaderSource { path: "fused/token_logprob_rows.wgsl", source: include_str!("fused/token_logprob_rows.wgsl") },
    ShaderSource { path: "fused/decode_attention.wgsl", source: include_str!("fused/decode_attention.wgsl") },
    ShaderSource { path: "fused/sample.wgsl", source: include_str!("fused/sample.wgsl") },
    ShaderSource { path: "fused/sample_rows.wgsl", source: include_str!("fused/sample_rows.wgsl") },
];

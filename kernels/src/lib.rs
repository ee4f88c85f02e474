//! WGSL compute kernels for Tabswarm, each with a pure-Rust reference twin.
//!
//! This crate owns the GPU side of the project: the `.wgsl` sources, the wgpu pipelines that run them
//! (natively through Vulkan/Metal/DX12, in the browser through WebGPU) and the CPU references the
//! tests and the page check them against. It knows nothing of the page, the network or the model.
//!
//! Every readback is asynchronous (`map_async` awaited through a channel), so the same code runs in
//! a browser worker, where blocking on the GPU is impossible, and natively, where [`GpuContext`]
//! drives the device's poll loop.

#[cfg(feature = "fused")]
pub mod fused;
pub mod gpu;
pub mod matmul;
pub mod shaders;
pub mod testing;
#[cfg(feature = "fused")]
pub mod work;

pub use gpu::{GpuContext, KernelError};
pub use matmul::{MatmulKernel, MatmulShape, PreparedMatmul, matmul_reference};
/// The wgpu this crate is built on, so users name its types at the same version.
pub use wgpu;

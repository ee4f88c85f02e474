//! The fused kernels on burn's cubecl backend: hand-written WGSL launched through burn's template
//! API (the `custom-wgpu-kernel` pattern of burn's examples). Inputs are made contiguous; scalars
//! travel in a small `u32` buffer; rows beyond 65535 spill into the y dimension of the grid.

use burn::backend::Cube;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::wgpu::{CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous};
use burn::backend::{IntDType, ops::IntTensorOps};
use burn::tensor::{DType, Shape};
use cubecl::prelude::KernelId;
use cubecl::server::KernelArguments;
use cubecl::{CubeCount, CubeDim};

use super::{
    ADAMW_SHADER, DECODE_ATTENTION_SHADER, FusedBackend, LAYER_NORM_BACKWARD_SHADER, LAYER_NORM_SHADER,
    SAMPLE_ROWS_SHADER, SAMPLE_SHADER, SHORT_ROW, TOKEN_LOGPROB_BACKWARD_SHADER, TOKEN_LOGPROB_ROWS_SHADER,
    TOKEN_LOGPROB_SHADER,
};

/// Threads per workgroup of the row-per-workgroup shaders and the backward (`const WG` there).
const WORKGROUP: u32 = 256;
/// Threads (= rows) per workgroup of the row-per-thread shaders (`*_rows.wgsl`).
const ROWS_PER_GROUP: u32 = 64;
/// WebGPU's guaranteed limit on workgroups per grid dimension.
const MAX_GRID: u32 = 65_535;

/// A WGSL source with no template parameters, identified by its type for pipeline caching.
struct Wgsl<K: 'static + Send + Sync> {
    source: &'static str,
    _kind: std::marker::PhantomData<K>,
}

impl<K: 'static + Send + Sync> KernelSource for Wgsl<K> {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(self.source)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

struct LogprobForward;
struct LogprobForwardRows;
struct LogprobBackward;
struct Sample;
struct SampleRows;
struct DecodeAttention;
struct AdamW;
struct LayerNorm;
struct LayerNormBackward;

/// Threads per workgroup of `decode_attention.wgsl`.
const ATTENTION_THREADS: u32 = 64;

fn kernel<K: 'static + Send + Sync>(source: &'static str, threads: u32) -> Box<SourceKernel<Wgsl<K>>> {
    Box::new(SourceKernel::new(Wgsl { source, _kind: std::marker::PhantomData }, CubeDim::new_1d(threads)))
}

/// The forward or sampling kernel for rows of `vocab` logits, with its grid: one thread per row
/// for short rows, one workgroup per row for long ones.
fn pick<Rows: 'static + Send + Sync, Wide: 'static + Send + Sync>(
    rows: usize,
    vocab: usize,
    short: &'static str,
    long: &'static str,
) -> (Box<dyn cubecl::CubeKernel>, CubeCount) {
    if vocab <= SHORT_ROW {
        (kernel::<Rows>(short, ROWS_PER_GROUP), grid(rows.div_ceil(ROWS_PER_GROUP as usize)))
    } else {
        (kernel::<Wide>(long, WORKGROUP), grid(rows))
    }
}

/// A grid of at least `groups` workgroups (x ≤ 65535; the shaders index `y · nx + x`).
fn grid(groups: usize) -> CubeCount {
    let groups = u32::try_from(groups).expect("grid larger than u32::MAX workgroups").max(1);
    let x = groups.min(MAX_GRID);
    CubeCount::Static(x, groups.div_ceil(x), 1)
}

fn rows_and_vocab(logits: &CubeTensor) -> (usize, usize) {
    let shape = logits.meta.shape();
    assert_eq!(shape.num_dims(), 2, "fused kernels take [rows, vocab] logits, got {shape:?}");
    assert_eq!(logits.dtype, DType::F32, "fused kernels take f32 logits, got {:?}", logits.dtype);
    (shape[0], shape[1])
}

fn targets_i32(targets: IntTensor<Cube>, rows: usize) -> CubeTensor {
    let targets = if targets.dtype == DType::I32 { targets } else { Cube::int_cast(targets, IntDType::I32) };
    let targets = into_contiguous(targets);
    assert_eq!(targets.meta.shape().num_elements(), rows, "one target per row of logits");
    targets
}

fn new_tensor(like: &CubeTensor, shape: Shape, dtype: DType) -> CubeTensor {
    let handle = like.client.empty(shape.num_elements() * dtype.size());
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape, handle, dtype)
}

/// The tensors' buffers as the kernel's bindings 0, 1, 2… in order.
fn bindings(tensors: &[&CubeTensor]) -> KernelArguments {
    tensors.iter().fold(KernelArguments::new(), |args, t| args.with_buffer(t.handle.clone().binding()))
}

fn info(like: &CubeTensor, words: &[u32]) -> CubeTensor {
    crate::work::note_upload();
    let handle = like.client.create_from_slice(bytemuck::cast_slice(words));
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), Shape::new([words.len()]), handle, DType::U32)
}

/// A layer norm's input as `rows` rows of `width`, checked against its scale (and shift).
fn norm_rows(x: &CubeTensor, params: &[(&str, &CubeTensor)]) -> (usize, usize) {
    let shape = x.meta.shape();
    assert!(shape.num_dims() >= 1, "layer norm of a scalar");
    assert_eq!(x.dtype, DType::F32, "the fused layer norm takes f32, got {:?}", x.dtype);
    let width = shape[shape.num_dims() - 1];
    for (name, p) in params {
        assert_eq!(p.meta.shape().num_elements(), width, "layer norm: the {name} has one value per column");
    }
    let rows = shape.num_elements().checked_div(width).unwrap_or(0);
    (rows, width)
}

impl FusedBackend for Cube {
    fn token_logprob(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        Self::token_logprob_with_lse(logits, targets).0
    }

    fn token_logprob_with_lse(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let logits = into_contiguous(logits);
        let (rows, vocab) = rows_and_vocab(&logits);
        let targets = targets_i32(targets, rows);
        let out = new_tensor(&logits, Shape::new([rows]), DType::F32);
        let lse = new_tensor(&logits, Shape::new([rows]), DType::F32);
        let info = info(&logits, &[rows as u32, vocab as u32]);
        let (kernel, count) =
            pick::<LogprobForwardRows, LogprobForward>(rows, vocab, TOKEN_LOGPROB_ROWS_SHADER, TOKEN_LOGPROB_SHADER);
        logits.client.launch(kernel, count, bindings(&[&logits, &targets, &out, &lse, &info]));
        (out, lse)
    }

    fn token_logprob_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let logits = into_contiguous(logits);
        let (rows, vocab) = rows_and_vocab(&logits);
        let targets = targets_i32(targets, rows);
        let lse = into_contiguous(lse);
        let grad = into_contiguous(grad);
        let out = new_tensor(&logits, Shape::new([rows, vocab]), DType::F32);
        let info = info(&logits, &[rows as u32, vocab as u32]);
        logits.client.launch(
            kernel::<LogprobBackward>(TOKEN_LOGPROB_BACKWARD_SHADER, WORKGROUP),
            grid((rows * vocab).div_ceil(WORKGROUP as usize)),
            bindings(&[&logits, &targets, &lse, &grad, &out, &info]),
        );
        out
    }

    fn decode_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        len: usize,
        scale: f32,
        first: Vec<u32>,
    ) -> FloatTensor<Self> {
        let (q, k, v) = (into_contiguous(q), into_contiguous(k), into_contiguous(v));
        let shape = k.meta.shape().clone();
        assert_eq!(shape.num_dims(), 4, "decode attention takes [B, H, capacity, D] keys, got {shape:?}");
        let (heads, capacity, dim) = (shape[0] * shape[1], shape[2], shape[3]);
        assert!(len <= capacity, "attention over {len} positions of a cache of {capacity}");
        assert_eq!(q.meta.shape().num_elements(), heads * dim, "one query per head");
        assert_eq!(v.meta.shape(), k.meta.shape(), "values shaped like keys");
        let out = new_tensor(&q, Shape::new([shape[0], shape[1], 1, dim]), DType::F32);
        // Heads per sequence and each sequence's first position; one entry of 0 without padding.
        let (per_sequence, first) = match first.len() {
            0 => (heads, vec![0]),
            n => {
                assert_eq!(n, shape[0], "one first position per sequence");
                (shape[1], first)
            }
        };
        let words = [heads as u32, len as u32, dim as u32, scale.to_bits(), capacity as u32, per_sequence as u32];
        let info = info(&q, &[&words[..], &first].concat());
        q.client.launch(
            kernel::<DecodeAttention>(DECODE_ATTENTION_SHADER, ATTENTION_THREADS),
            grid(heads),
            bindings(&[&q, &k, &v, &out, &info]),
        );
        out
    }

    fn sample(logits: FloatTensor<Self>, temperature: f32, top_k: u32, seed: u64, step: u32) -> IntTensor<Self> {
        let logits = into_contiguous(logits);
        let (rows, vocab) = rows_and_vocab(&logits);
        let tokens = new_tensor(&logits, Shape::new([rows]), DType::I32);
        let params = info(
            &logits,
            &[rows as u32, vocab as u32, top_k, temperature.to_bits(), seed as u32, (seed >> 32) as u32, step],
        );
        let (kernel, count) = pick::<SampleRows, Sample>(rows, vocab, SAMPLE_ROWS_SHADER, SAMPLE_SHADER);
        logits.client.launch(kernel, count, bindings(&[&logits, &tokens, &params]));
        tokens
    }

    fn layer_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        Self::layer_norm_with_stats(x, gamma, beta, epsilon).0
    }

    fn layer_norm_with_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [x, gamma, beta] = [x, gamma, beta].map(into_contiguous);
        let (rows, width) = norm_rows(&x, &[("scale", &gamma), ("shift", &beta)]);
        let y = new_tensor(&x, x.meta.shape().clone(), DType::F32);
        let stats = new_tensor(&x, Shape::new([rows, 2]), DType::F32);
        let info = info(&x, &[rows as u32, width as u32, epsilon.to_bits()]);
        x.client.launch(
            kernel::<LayerNorm>(LAYER_NORM_SHADER, ROWS_PER_GROUP),
            grid(rows.div_ceil(ROWS_PER_GROUP as usize)),
            bindings(&[&x, &gamma, &beta, &y, &stats, &info]),
        );
        (y, stats)
    }

    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [x, gamma, stats, grad] = [x, gamma, stats, grad].map(into_contiguous);
        let (rows, width) = norm_rows(&x, &[("scale", &gamma)]);
        assert_eq!(grad.meta.shape(), x.meta.shape(), "layer norm: the gradient is shaped like the input");
        assert_eq!(stats.meta.shape().num_elements(), rows * 2, "layer norm: two stats per row");
        let dx = new_tensor(&x, x.meta.shape().clone(), DType::F32);
        let [dgamma, dbeta] = [(); 2].map(|()| new_tensor(&x, Shape::new([width]), DType::F32));
        let info = info(&x, &[rows as u32, width as u32]);
        x.client.launch(
            kernel::<LayerNormBackward>(LAYER_NORM_BACKWARD_SHADER, ROWS_PER_GROUP),
            grid((rows + width).div_ceil(ROWS_PER_GROUP as usize)),
            bindings(&[&x, &gamma, &stats, &grad, &dx, &dgamma, &dbeta, &info]),
        );
        (dx, dgamma, dbeta)
    }

    fn adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scalars: [u32; 8],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [param, grad, m, v] = [param, grad, m, v].map(into_contiguous);
        let shape = param.meta.shape().clone();
        for (name, t) in [("gradient", &grad), ("first moment", &m), ("second moment", &v)] {
            assert_eq!(t.meta.shape(), &shape, "the {name} is shaped like the parameter");
        }
        assert_eq!(param.dtype, DType::F32, "the fused AdamW takes f32 parameters, got {:?}", param.dtype);
        let n = u32::try_from(shape.num_elements()).expect("a parameter of more than u32::MAX values");
        let [out_p, out_m, out_v] = [(); 3].map(|()| new_tensor(&param, shape.clone(), DType::F32));
        let words: Vec<u32> = std::iter::once(n).chain(scalars).collect();
        let info = info(&param, &words);
        param.client.launch(
            kernel::<AdamW>(ADAMW_SHADER, WORKGROUP),
            CubeCount::Static(1, 1, 1),
            bindings(&[&param, &grad, &m, &v, &out_p, &out_m, &out_v, &info]),
        );
        (out_p, out_m, out_v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_spill_past_65535_workgroups_into_y_and_cover_every_row() {
        for groups in [0usize, 1, 255, 65_535, 65_536, 200_000] {
            let CubeCount::Static(x, y, z) = grid(groups) else { panic!("static grid") };
            assert!(x <= MAX_GRID && z == 1);
            assert!((x as usize) * (y as usize) >= groups.max(1), "{groups}: {x}×{y}");
            // No whole row of workgroups is wasted.
            assert!(((x as usize) * (y as usize - 1)) < groups.max(1), "{groups}: {x}×{y}");
        }
    }
}

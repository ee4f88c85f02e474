// Layer normalisation over the last dimension, forward, one thread per row (no workgroup memory,
// no barriers: our rows are 64–192 wide, where a workgroup per row would idle most of its threads):
//   y[r, j] = (x[r, j] − mean_r) · rstd_r · gamma[j] + beta[j],   rstd_r = 1 / sqrt(var_r + epsilon)
// with the biased variance over the row (burn's `layer_norm`), and stats[r] = (mean_r, rstd_r)
// kept for the backward pass (`layer_norm_backward.wgsl`). Nine elementwise and reduction kernels
// of burn's composition become this one.

// Every binding is read_write although most are only read: burn's allocator sub-allocates one wgpu
// buffer for many tensors, and WebGPU forbids one buffer bound both read-only and writable in a dispatch.
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
// info[0] = rows, info[1] = width of a row, info[2] = epsilon (f32 bits).
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let rows = info[0];
    let width = info[1];
    let epsilon = bitcast<f32>(info[2]);
    let row = (wid.y * nwg.x + wid.x) * WG + lid;
    if (row >= rows) {
        return;
    }
    let base = row * width;
    let n = f32(width);
    var sum = 0.0;
    for (var j = 0u; j < width; j = j + 1u) {
        sum = sum + x[base + j];
    }
    let mean = sum / n;
    // Two passes, as the composition does: no cancellation from E[x²] − E[x]².
    var squares = 0.0;
    for (var j = 0u; j < width; j = j + 1u) {
        let c = x[base + j] - mean;
        squares = squares + c * c;
    }
    let rstd = 1.0 / sqrt(squares / n + epsilon);
    for (var j = 0u; j < width; j = j + 1u) {
        y[base + j] = (x[base + j] - mean) * rstd * gamma[j] + beta[j];
    }
    stats[2u * row] = mean;
    stats[2u * row + 1u] = rstd;
}

// Attention of one new token over its KV cache (generation), fused:
//   out[b, h, :] = softmax(q[b, h, :] · K[b, h, :, :]ᵀ · scale) · V[b, h, :, :]
// with q: [B, H, D], K and V: [B, H, C, D], all contiguous, of which the first L ≤ C positions are
// used (C is the capacity of a preallocated cache). The new token sees every cached position
// (itself included) from its sequence's first real one: a batch of left-padded prompts starts row
// b at position F_b (its padding before it is skipped, as a mask would hide it), else F_b = 0. One workgroup per (b, h): scores for the L positions stay in
// workgroup memory; max and sum are reduced there; each thread then owns output dimensions, reading V
// along D (adjacent threads, adjacent addresses). Replaces the matmul, scale, mask, softmax (max,
// subtract, exp, sum, divide) and matmul that the reference composition launches one by one.

// Every binding is read_write although most are only read: burn's allocator sub-allocates one wgpu
// buffer for many tensors, and WebGPU forbids one buffer bound both read-only and writable in a dispatch.
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// info[0] = B·H, [1] = L (≤ MAX_LEN), [2] = D (≤ MAX_DIM), [3] = scale as f32 bits, [4] = C (≥ L),
// [5] = heads per sequence (H; B·H with one F for all), [6 + b] = F_b (< L).
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

const WG: u32 = 64u;
const MAX_LEN: u32 = 2048u;
const MAX_DIM: u32 = 256u;
// The lowest finite f32, written exactly: Tint (Chromium's WebGPU) refuses the usual -3.4028235e38
// as "cannot be represented as 'f32'", naga rounds it; the shader then never compiles in the browser.
const LOWEST: f32 = -0x1.fffffep+127f;

var<workgroup> query: array<f32, MAX_DIM>;
var<workgroup> scores: array<f32, MAX_LEN>;
var<workgroup> red: array<f32, WG>;
// The launch parameters, shared with workgroupUniformLoad so the early return below is uniform
// control flow for WebGPU's uniformity analysis (a read_write storage load is not; Tint refuses the
// barriers after it, naga does not check).
var<workgroup> shared_info: array<u32, 6>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if (lid == 0u) {
        let head = wid.y * nwg.x + wid.x;
        let per_sequence = max(info[5], 1u);
        var first = 0u;
        if (head < info[0]) {
            first = info[6u + head / per_sequence];
        }
        shared_info = array<u32, 6>(info[0], info[1], info[2], info[3], info[4], first);
    }
    let params = workgroupUniformLoad(&shared_info);
    let heads = params[0];
    let len = params[1];
    let dim = params[2];
    let scale = bitcast<f32>(params[3]);
    let capacity = params[4];
    // A padded row always has its newest position to attend to.
    let first = min(params[5], max(len, 1u) - 1u);
    let head = wid.y * nwg.x + wid.x;
    // Uniform per workgroup: barriers below stay in uniform control flow.
    if (head >= heads || len > MAX_LEN || dim > MAX_DIM || len > capacity) {
        return;
    }
    let kv = head * capacity * dim;

    for (var d = lid; d < dim; d = d + WG) {
        query[d] = q[head * dim + d];
    }
    workgroupBarrier();

    var local_max = LOWEST;
    for (var j = first + lid; j < len; j = j + WG) {
        var s = 0.0;
        let row = kv + j * dim;
        for (var d = 0u; d < dim; d = d + 1u) {
            s = s + query[d] * k[row + d];
        }
        s = s * scale;
        scores[j] = s;
        local_max = max(local_max, s);
    }
    red[lid] = local_max;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            red[lid] = max(red[lid], red[lid + stride]);
        }
        workgroupBarrier();
    }
    let m = red[0];
    workgroupBarrier();

    var local_sum = 0.0;
    for (var j = first + lid; j < len; j = j + WG) {
        let p = exp(scores[j] - m);
        scores[j] = p;
        local_sum = local_sum + p;
    }
    red[lid] = local_sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            red[lid] = red[lid] + red[lid + stride];
        }
        workgroupBarrier();
    }
    let total = red[0];

    for (var d = lid; d < dim; d = d + WG) {
        var acc = 0.0;
        for (var j = first; j < len; j = j + 1u) {
            acc = acc + scores[j] * v[kv + j * dim + d];
        }
        out[head * dim + d] = acc / total;
    }
}

// Token log-probability, forward, for short rows (vocab ≤ 256): one thread per row, no workgroup
// memory and no barriers. Same contract as `token_logprob.wgsl`:
//   out[r] = logits[r, t_r] - logsumexp(logits[r, :]),  lse[r] = logsumexp(logits[r, :]),
// NaN for a target outside [0, vocab). With a vocabulary this small a whole workgroup per row would
// leave most threads idle and pay eight barrier rounds for ~100 values.

// Every binding is read_write although most are only read: burn's allocator sub-allocates one wgpu
// buffer for many tensors, and WebGPU forbids one buffer bound both read-only and writable in a dispatch.
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
// info[0] = rows, info[1] = vocab.
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

const WG: u32 = 64u;
// The lowest finite f32, written exactly: Tint (Chromium's WebGPU) refuses the usual -3.4028235e38
// as "cannot be represented as 'f32'", naga rounds it; the shader then never compiles in the browser.
const LOWEST: f32 = -0x1.fffffep+127f;
// A quiet NaN, read at run time: `bitcast<f32>(0x7fc00000u)` is a constant expression and Tint
// refuses a NaN constant.
var<private> NAN_BITS: u32 = 0x7fc00000u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let rows = info[0];
    let vocab = info[1];
    let row = (wid.y * nwg.x + wid.x) * WG + lid;
    if (row >= rows) {
        return;
    }
    let base = row * vocab;
    var m = LOWEST;
    for (var v = 0u; v < vocab; v = v + 1u) {
        m = max(m, logits[base + v]);
    }
    var s = 0.0;
    for (var v = 0u; v < vocab; v = v + 1u) {
        s = s + exp(logits[base + v] - m);
    }
    let log_sum_exp = m + log(s);
    lse[row] = log_sum_exp;
    let t = targets[row];
    if (t >= 0 && u32(t) < vocab) {
        out[row] = logits[base + u32(t)] - log_sum_exp;
    } else {
        out[row] = bitcast<f32>(NAN_BITS);
    }
}

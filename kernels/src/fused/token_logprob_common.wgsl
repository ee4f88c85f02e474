// What both forward token log-prob kernels (token_logprob.wgsl, token_logprob_rows.wgsl) share:
// their bindings, two constants and the write of a row's result. WGSL has no include:
// kernels/src/fused/mod.rs appends this file to each with concat!(include_str!(…)).

// Every binding is read_write although most are only read: burn's allocator sub-allocates one wgpu
// buffer for many tensors, and WebGPU forbids one buffer bound both read-only and writable in a dispatch.
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
// info[0] = rows, info[1] = vocab.
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

// The lowest finite f32, written exactly: Tint (Chromium's WebGPU) refuses the usual -3.4028235e38
// as "cannot be represented as 'f32'", naga rounds it; the shader then never compiles in the browser.
const LOWEST: f32 = -0x1.fffffep+127f;
// A quiet NaN, read at run time: `bitcast<f32>(0x7fc00000u)` is a constant expression and Tint
// refuses a NaN constant.
var<private> NAN_BITS: u32 = 0x7fc00000u;

// lse[row] = log_sum_exp; out[row] = logits[row, t] - log_sum_exp for the row's target t, NaN for a
// target outside [0, vocab), so a bad id cannot pass as a plausible probability.
fn write_row(row: u32, base: u32, vocab: u32, log_sum_exp: f32) {
    lse[row] = log_sum_exp;
    let t = targets[row];
    if (t >= 0 && u32(t) < vocab) {
        out[row] = logits[base + u32(t)] - log_sum_exp;
    } else {
        out[row] = bitcast<f32>(NAN_BITS);
    }
}

// Token log-probability, forward: for each row r of `logits` ([rows, vocab], row-major),
//   out[r] = logits[r, t_r] - logsumexp(logits[r, :])      with t_r = targets[r]
// and the log-sum-exp itself (kept for the backward pass).
//
// One workgroup per row. Every thread walks a strided slice of the row once with an online
// (running max, running sum) pair, then the pairs are merged in workgroup memory. One read of the
// row, no [rows, vocab] intermediate — the reference composition (log_softmax, then gather) writes
// and reads the whole log-softmax.
//
// A target outside [0, vocab) yields NaN, so a bad id cannot pass as a plausible probability.

// Bindings, LOWEST, NAN_BITS and write_row: token_logprob_common.wgsl, appended to this file when
// it is compiled.

const WG: u32 = 256u;

var<workgroup> run_max: array<f32, WG>;
// The launch parameters, read once and shared with workgroupUniformLoad: a value loaded from a
// read_write storage buffer is not uniform to WebGPU's uniformity analysis (Tint refuses a barrier
// after a return that depends on it; naga does not check this), a workgroupUniformLoad result is.
var<workgroup> shared_info: vec2<u32>;
var<workgroup> run_sum: array<f32, WG>;

// Merges two (max, sum-of-exp-relative-to-max) pairs.
fn merge(m1: f32, s1: f32, m2: f32, s2: f32) -> vec2<f32> {
    let m = max(m1, m2);
    if (m == LOWEST) {
        return vec2<f32>(m, 0.0);
    }
    return vec2<f32>(m, s1 * exp(m1 - m) + s2 * exp(m2 - m));
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if (lid == 0u) {
        shared_info = vec2<u32>(info[0], info[1]);
    }
    let params = workgroupUniformLoad(&shared_info);
    let rows = params.x;
    let vocab = params.y;
    // Rows beyond 65535 spill into the y dimension of the grid.
    let row = wid.y * nwg.x + wid.x;
    // `row` is the same for the whole workgroup, so this return keeps barriers uniform.
    if (row >= rows) {
        return;
    }
    let base = row * vocab;

    var m = LOWEST;
    var s = 0.0;
    for (var v = lid; v < vocab; v = v + WG) {
        let x = logits[base + v];
        if (x > m) {
            s = s * exp(m - x) + 1.0;
            m = x;
        } else {
            s = s + exp(x - m);
        }
    }
    run_max[lid] = m;
    run_sum[lid] = s;
    workgroupBarrier();

    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            let merged = merge(run_max[lid], run_sum[lid], run_max[lid + stride], run_sum[lid + stride]);
            run_max[lid] = merged.x;
            run_sum[lid] = merged.y;
        }
        workgroupBarrier();
    }

    if (lid == 0u) {
        write_row(row, base, vocab, run_max[0] + log(run_sum[0]));
    }
}

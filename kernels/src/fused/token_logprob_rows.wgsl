// Token log-probability, forward, for short rows (vocab ≤ 256): one thread per row, no workgroup
// memory and no barriers. Same contract as `token_logprob.wgsl`:
//   out[r] = logits[r, t_r] - logsumexp(logits[r, :]),  lse[r] = logsumexp(logits[r, :]),
// NaN for a target outside [0, vocab). With a vocabulary this small a whole workgroup per row would
// leave most threads idle and pay eight barrier rounds for ~100 values.

// Bindings, LOWEST, NAN_BITS and write_row: token_logprob_common.wgsl, appended to this file when
// it is compiled.

const WG: u32 = 64u;

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
    write_row(row, base, vocab, m + log(s));
}

// Sampling: for each row of `logits` ([rows, vocab]) draw one token from
//   softmax(logits / temperature) restricted to the top-k logits,
// with the uniform number u = counter_uniform(seed, row, step) — a counter-based generator, so
// any party can reproduce a draw from (seed, row, step) alone, with no state carried between steps.
//
// One workgroup per row:
//   1. max (and argmax: temperature 0 or k = 1 is greedy; ties go to the lowest index);
//   2. the k-th largest logit by radix select over order-preserving u32 keys (32 counting passes);
//      every logit >= that value is kept, so ties at the boundary are all kept;
//   3. w_v = exp((x_v - max) / temperature) for kept v; each thread sums a contiguous chunk;
//   4. the first index whose inclusive running sum exceeds u * total is drawn (a serial walk over
//      256 chunk sums, then inside one chunk). If rounding leaves none, the last kept index.

// Every binding is read_write although most are only read: burn's allocator sub-allocates one wgpu
// buffer for many tensors, and WebGPU forbids one buffer bound both read-only and writable in a dispatch.
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> tokens: array<i32>;
// params[0] = rows, [1] = vocab, [2] = top_k (0 = all), [3] = temperature as f32 bits,
// [4] = seed low word, [5] = seed high word, [6] = step.
@group(0) @binding(2) var<storage, read_write> params: array<u32>;

const WG: u32 = 256u;
// The lowest finite f32, written exactly: Tint (Chromium's WebGPU) refuses the usual -3.4028235e38
// as "cannot be represented as 'f32'", naga rounds it; the shader then never compiles in the browser.
const LOWEST: f32 = -0x1.fffffep+127f;

var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;
// The launch parameters, shared with workgroupUniformLoad: branches that precede barriers must be
// uniform to WebGPU's uniformity analysis, and a read_write storage load is not (Tint refuses it;
// naga does not check). Reductions read back the same way.
var<workgroup> shared_params: array<u32, 4>;
var<workgroup> shared_count: u32;

// pcg, counter_uniform and order_key: sample_common.wgsl, appended to this file when it is compiled.

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if (lid == 0u) {
        shared_params = array<u32, 4>(params[0], params[1], params[2], params[3]);
    }
    let launch = workgroupUniformLoad(&shared_params);
    let rows = launch[0];
    let vocab = launch[1];
    let row = wid.y * nwg.x + wid.x;
    // Uniform for the whole workgroup, so barriers below stay in uniform control flow.
    if (row >= rows) {
        return;
    }
    let base = row * vocab;
    let temperature = bitcast<f32>(launch[3]);
    var k = launch[2];
    if (k == 0u || k > vocab) {
        k = vocab;
    }

    // 1. max and argmax (lowest index among equals).
    var best = LOWEST;
    var best_i = 0xffffffffu;
    for (var v = lid; v < vocab; v = v + WG) {
        let x = logits[base + v];
        if (x > best || best_i == 0xffffffffu) {
            best = x;
            best_i = v;
        }
    }
    red_f[lid] = best;
    red_u[lid] = best_i;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            let other = red_f[lid + stride];
            let other_i = red_u[lid + stride];
            if (other_i != 0xffffffffu && (red_u[lid] == 0xffffffffu || other > red_f[lid]
                || (other == red_f[lid] && other_i < red_u[lid]))) {
                red_f[lid] = other;
                red_u[lid] = other_i;
            }
        }
        workgroupBarrier();
    }
    let max_logit = red_f[0];
    let argmax = red_u[0];
    workgroupBarrier();
    if (temperature == 0.0 || k == 1u) {
        if (lid == 0u) {
            tokens[row] = i32(argmax);
        }
        return;
    }

    // 2. radix select: the largest key T with #{key >= T} >= k is the k-th largest key.
    var threshold = 0u;
    if (k < vocab) {
        for (var bit = 31i; bit >= 0i; bit = bit - 1i) {
            let candidate = threshold | (1u << u32(bit));
            var count = 0u;
            for (var v = lid; v < vocab; v = v + WG) {
                count = count + select(0u, 1u, order_key(logits[base + v]) >= candidate);
            }
            red_u[lid] = count;
            workgroupBarrier();
            for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
                if (lid < stride) {
                    red_u[lid] = red_u[lid] + red_u[lid + stride];
                }
                workgroupBarrier();
            }
            if (lid == 0u) {
                shared_count = red_u[0];
            }
            let total_count = workgroupUniformLoad(&shared_count);
            if (total_count >= k) {
                threshold = candidate;
            }
        }
    }

    // 3. weights, summed per contiguous chunk.
    let chunk = (vocab + WG - 1u) / WG;
    let start = min(lid * chunk, vocab);
    let end = min(start + chunk, vocab);
    var sum = 0.0;
    for (var v = start; v < end; v = v + 1u) {
        let x = logits[base + v];
        if (order_key(x) >= threshold) {
            sum = sum + exp((x - max_logit) / temperature);
        }
    }
    red_f[lid] = sum;
    workgroupBarrier();

    // 4. the draw, by one thread: find the chunk, then the index inside it.
    if (lid == 0u) {
        var total = 0.0;
        for (var i = 0u; i < WG; i = i + 1u) {
            total = total + red_f[i];
        }
        let goal = counter_uniform(params[4], params[5], row, params[6]) * total;
        var acc = 0.0;
        var picked = 0xffffffffu;
        for (var i = 0u; i < WG && picked == 0xffffffffu; i = i + 1u) {
            if (acc + red_f[i] > goal) {
                let s = min(i * chunk, vocab);
                let e = min(s + chunk, vocab);
                for (var v = s; v < e; v = v + 1u) {
                    let x = logits[base + v];
                    if (order_key(x) >= threshold) {
                        acc = acc + exp((x - max_logit) / temperature);
                        if (acc > goal) {
                            picked = v;
                            break;
                        }
                    }
                }
            } else {
                acc = acc + red_f[i];
            }
        }
        // Rounding left the goal past the last weight: take the last kept index.
        for (var v = vocab; v > 0u && picked == 0xffffffffu; v = v - 1u) {
            if (order_key(logits[base + v - 1u]) >= threshold) {
                picked = v - 1u;
            }
        }
        tokens[row] = i32(picked);
    }
}

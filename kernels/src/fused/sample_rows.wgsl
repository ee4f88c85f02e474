// Sampling for short rows (vocab ≤ 256): one thread per row, no workgroup memory, no barriers.
// Same contract as `sample.wgsl` (read it for the semantics): greedy at temperature 0 or k = 1
// (lowest index among equals), keep logits ≥ the k-th largest, draw the first index whose running
// sum of exp((x - max) / temperature) exceeds u · total with u = counter_uniform(seed, row, step),
// else the last kept index.

// Every binding is read_write although most are only read: burn's allocator sub-allocates one wgpu
// buffer for many tensors, and WebGPU forbids one buffer bound both read-only and writable in a dispatch.
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> tokens: array<i32>;
// params[0] = rows, [1] = vocab, [2] = top_k (0 = all), [3] = temperature as f32 bits,
// [4] = seed low word, [5] = seed high word, [6] = step.
@group(0) @binding(2) var<storage, read_write> params: array<u32>;

const WG: u32 = 64u;
// Up to this k the threshold is found by repeated maxima instead of radix select.
const SMALL_K: u32 = 16u;

// pcg, counter_uniform and order_key: sample_common.wgsl, appended to this file when it is compiled.

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let rows = params[0];
    let vocab = params[1];
    let row = (wid.y * nwg.x + wid.x) * WG + lid;
    if (row >= rows || vocab == 0u) {
        return;
    }
    let base = row * vocab;
    let temperature = bitcast<f32>(params[3]);
    var k = params[2];
    if (k == 0u || k > vocab) {
        k = vocab;
    }

    var max_logit = logits[base];
    var argmax = 0u;
    for (var v = 1u; v < vocab; v = v + 1u) {
        let x = logits[base + v];
        if (x > max_logit) {
            max_logit = x;
            argmax = v;
        }
    }
    if (temperature == 0.0 || k == 1u) {
        tokens[row] = i32(argmax);
        return;
    }

    // The k-th largest key: for small k by repeated maxima (k scans at most), otherwise bit by bit
    // from the top (radix select, 32 scans).
    var threshold = 0u;
    if (k < vocab && k <= SMALL_K) {
        var remaining = k;
        var below = 0xffffffffu;
        var first = true;
        for (var round = 0u; round < k; round = round + 1u) {
            var best = 0u;
            var count = 0u;
            for (var v = 0u; v < vocab; v = v + 1u) {
                let key = order_key(logits[base + v]);
                if (first || key < below) {
                    if (count == 0u || key > best) {
                        best = key;
                        count = 1u;
                    } else if (key == best) {
                        count = count + 1u;
                    }
                }
            }
            if (count >= remaining || count == 0u) {
                threshold = best;
                break;
            }
            remaining = remaining - count;
            below = best;
            first = false;
        }
    } else if (k < vocab) {
        for (var bit = 31i; bit >= 0i; bit = bit - 1i) {
            let candidate = threshold | (1u << u32(bit));
            var count = 0u;
            for (var v = 0u; v < vocab && count < k; v = v + 1u) {
                count = count + select(0u, 1u, order_key(logits[base + v]) >= candidate);
            }
            if (count >= k) {
                threshold = candidate;
            }
        }
    }

    var total = 0.0;
    var last_kept = argmax;
    for (var v = 0u; v < vocab; v = v + 1u) {
        let x = logits[base + v];
        if (order_key(x) >= threshold) {
            total = total + exp((x - max_logit) / temperature);
            last_kept = v;
        }
    }
    let goal = counter_uniform(params[4], params[5], row, params[6]) * total;
    var acc = 0.0;
    var picked = last_kept;
    for (var v = 0u; v < vocab; v = v + 1u) {
        let x = logits[base + v];
        if (order_key(x) >= threshold) {
            acc = acc + exp((x - max_logit) / temperature);
            if (acc > goal) {
                picked = v;
                break;
            }
        }
    }
    tokens[row] = i32(picked);
}

// Token log-probability, backward: the gradient of out[r] = logits[r, t_r] - lse[r] is
//   d logits[r, v] = grad[r] * ([v == t_r] - exp(logits[r, v] - lse[r]))
// One thread per element of `logits`, reusing the forward pass's log-sum-exp.

// Every binding is read_write although most are only read: burn's allocator sub-allocates one wgpu
// buffer for many tensors, and WebGPU forbids one buffer bound both read-only and writable in a dispatch.
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_logits: array<f32>;
// info[0] = rows, info[1] = vocab.
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let rows = info[0];
    let vocab = info[1];
    let index = (wid.y * nwg.x + wid.x) * WG + lid;
    if (index >= rows * vocab) {
        return;
    }
    let row = index / vocab;
    let v = index - row * vocab;
    let p = exp(logits[index] - lse[row]);
    let hit = select(0.0, 1.0, targets[row] == i32(v));
    grad_logits[index] = grad[row] * (hit - p);
}

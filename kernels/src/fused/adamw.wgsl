// One AdamW step of one parameter tensor, with its gradient first clipped by its own L2 norm (what
// burn's AdamW does with `GradientClippingConfig::Norm`, which clips each parameter's gradient
// separately), fused into one dispatch:
//   g  = grad · min(1, max_norm / (‖grad‖ + MIN_POSITIVE))        (no clipping when max_norm = 0)
//   m' = β1·m + (1 − β1)·g ;  v' = β2·v + (1 − β2)·g²
//   p' = p·decay − lr · (m' / c1) / (sqrt(v' / c2) + ε)          (decay = 1 − lr·wd, c = 1 − βᵗ)
// burn launches about 25 kernels per parameter tensor for this (10 for the norm and the scaling, 15
// for the moments, bias corrections and update). One workgroup does a whole tensor: the norm is a
// workgroup reduction, then every thread updates a strided share of the elements. A parameter of
// our models is at most a few hundred thousand values, so one workgroup per tensor keeps the
// dispatch count at one per tensor without a second pass for the norm.

// Every binding is read_write although most are only read: burn's allocator sub-allocates one wgpu
// buffer for many tensors, and WebGPU forbids one buffer bound both read-only and writable in a dispatch.
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_param: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_m: array<f32>;
@group(0) @binding(6) var<storage, read_write> out_v: array<f32>;
// info[0] = n; then as f32 bits: [1] max_norm (0: no clipping), [2] β1, [3] β2, [4] ε, [5] decay,
// [6] lr, [7] c1 = 1 − β1ᵗ, [8] c2 = 1 − β2ᵗ.
@group(0) @binding(7) var<storage, read_write> info: array<u32>;

const WG: u32 = 256u;
// The smallest positive normal f32 (burn adds it to the norm before dividing).
const MIN_POSITIVE: f32 = 0x1p-126f;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    let max_norm = bitcast<f32>(info[1]);

    var sum = 0.0;
    for (var i = lid; i < n; i += WG) {
        let g = grad[i];
        sum += g * g;
    }
    red[lid] = sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    var scale = 1.0;
    if (max_norm > 0.0) {
        scale = min(max_norm / (sqrt(red[0]) + MIN_POSITIVE), 1.0);
    }

    let beta1 = bitcast<f32>(info[2]);
    let beta2 = bitcast<f32>(info[3]);
    let eps = bitcast<f32>(info[4]);
    let decay = bitcast<f32>(info[5]);
    let lr = bitcast<f32>(info[6]);
    let c1 = bitcast<f32>(info[7]);
    let c2 = bitcast<f32>(info[8]);
    for (var i = lid; i < n; i += WG) {
        let g = grad[i] * scale;
        let m1 = m[i] * beta1 + g * (1.0 - beta1);
        let v1 = v[i] * beta2 + (g * g) * (1.0 - beta2);
        out_m[i] = m1;
        out_v[i] = v1;
        out_param[i] = param[i] * decay - (m1 / c1) / (sqrt(v1 / c2) + eps) * lr;
    }
}

// Tiled matrix multiply: C[m×n] = A[m×k] · B[k×n], all row-major f32.
//
// One workgroup of 16×16 threads computes a 64×64 tile of C. Each step along k it stages a 64×16
// slice of A and a 16×64 slice of B in workgroup memory (loads out of range read as zero), then every
// thread accumulates a 4×4 block of C in four vec4 registers from those tiles. Thread (x, y) owns rows
// y + 16·i and columns x + 16·j (i, j in 0..4), so neighbouring threads read neighbouring words of
// the B tile and write neighbouring words of C. Sizes need not be multiples of the tile.

struct Dims {
    m: u32,
    k: u32,
    n: u32,
    _pad: u32,
}

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;
const THREADS: u32 = 256u; // 16 × 16
// Each tile holds 1024 values; each of the 256 threads stages 4 of A and 4 of B per step.
const LOADS_PER_THREAD: u32 = 4u;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> a_tile: array<f32, 1024>; // [TILE_M][TILE_K]
var<workgroup> b_tile: array<f32, 1024>; // [TILE_K][TILE_N]

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) flat: u32,
) {
    let row0 = group.y * TILE_M;
    let col0 = group.x * TILE_N;
    // Four rows of four columns each, as vectors: no dynamically indexed private arrays, which
    // software rasterisers (lavapipe, SwiftShader) spill to memory.
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();

    let steps = (dims.k + TILE_K - 1u) / TILE_K;
    for (var step = 0u; step < steps; step++) {
        let k0 = step * TILE_K;
        for (var l = 0u; l < LOADS_PER_THREAD; l++) {
            let e = flat + l * THREADS;

            let a_row = row0 + e / TILE_K;
            let a_col = k0 + e % TILE_K;
            var av = 0.0;
            if (a_row < dims.m && a_col < dims.k) {
                av = a[a_row * dims.k + a_col];
            }
            a_tile[e] = av;

            let b_row = k0 + e / TILE_N;
            let b_col = col0 + e % TILE_N;
            var bv = 0.0;
            if (b_row < dims.k && b_col < dims.n) {
                bv = b[b_row * dims.n + b_col];
            }
            b_tile[e] = bv;
        }
        workgroupBarrier();

        let a_base = local.y * TILE_K;
        let b_base = local.x;
        for (var kk = 0u; kk < TILE_K; kk++) {
            let bk = kk * TILE_N + b_base;
            let b_vec = vec4<f32>(b_tile[bk], b_tile[bk + 16u], b_tile[bk + 32u], b_tile[bk + 48u]);
            acc0 = fma(vec4<f32>(a_tile[a_base + kk]), b_vec, acc0);
            acc1 = fma(vec4<f32>(a_tile[a_base + 16u * TILE_K + kk]), b_vec, acc1);
            acc2 = fma(vec4<f32>(a_tile[a_base + 32u * TILE_K + kk]), b_vec, acc2);
            acc3 = fma(vec4<f32>(a_tile[a_base + 48u * TILE_K + kk]), b_vec, acc3);
        }
        workgroupBarrier();
    }

    store_row(row0 + local.y, col0 + local.x, acc0);
    store_row(row0 + local.y + 16u, col0 + local.x, acc1);
    store_row(row0 + local.y + 32u, col0 + local.x, acc2);
    store_row(row0 + local.y + 48u, col0 + local.x, acc3);
}

/// Writes the four columns `col + 16·j` of one row of this thread's block, skipping the edges.
fn store_row(row: u32, col: u32, values: vec4<f32>) {
    if (row >= dims.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let c_col = col + 16u * j;
        if (c_col < dims.n) {
            c[row * dims.n + c_col] = values[j];
        }
    }
}

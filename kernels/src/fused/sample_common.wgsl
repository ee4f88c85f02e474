// What both sampling kernels (sample.wgsl, sample_rows.wgsl) share: the counter-based generator
// and the float order key. WGSL has no include: kernels/src/fused/mod.rs appends this file to each
// with concat!(include_str!(…)), so there is one copy of the draw every party must reproduce.

// PCG hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020).
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Uniform in [0, 1) with 24 random bits; the twin of `counter_uniform` in Rust.
fn counter_uniform(seed_lo: u32, seed_hi: u32, row: u32, step: u32) -> f32 {
    let h = pcg(step + pcg(row + pcg(seed_hi + pcg(seed_lo))));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

// Maps a float to a u32 whose unsigned order is the float's order.
fn order_key(x: f32) -> u32 {
    let bits = bitcast<u32>(x);
    if ((bits & 0x80000000u) != 0u) {
        return ~bits;
    }
    return bits | 0x80000000u;
}

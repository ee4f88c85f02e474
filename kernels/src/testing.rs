//! Seeded random inputs for tests and benchmarks (identical natively and in wasm), and the devices
//! a benchmark runs on.

use rand::{Rng, SeedableRng, rngs::SmallRng};

/// `len` values drawn uniformly from [-1, 1) by a generator seeded with `seed`.
pub fn random_values(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The devices a benchmark runs on, each with the name its tables print: `TABSWARM_BENCH_BACKENDS`
/// (comma-separated `flex`, `wgpu`; both by default). Other names are skipped. Only with the
/// `fused` feature, which brings burn (the crate's wasm-bindgen tests build without it).
#[cfg(feature = "fused")]
pub fn bench_devices() -> Vec<(&'static str, burn::tensor::Device)> {
    let wanted = std::env::var("TABSWARM_BENCH_BACKENDS").unwrap_or_else(|_| "flex,wgpu".into());
    wanted
        .split(',')
        .filter_map(|name| match name.trim() {
            "flex" => Some(("flex (CPU)", burn::tensor::Device::flex())),
            "wgpu" => Some(("wgpu", burn::tensor::Device::wgpu(Default::default()))),
            _ => None,
        })
        .collect()
}

/// The largest absolute difference between two equally long slices (`f32::INFINITY` if they differ
/// in length, so a length bug can never pass as a small error).
pub fn max_abs_diff(left: &[f32], right: &[f32]) -> f32 {
    if left.len() != right.len() {
        return f32::INFINITY;
    }
    left.iter()
        .zip(right)
        .map(|(l, r)| {
            let d = (l - r).abs();
            if d.is_nan() { f32::INFINITY } else { d }
        })
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_are_seeded_and_in_range() {
        let a = random_values(1000, 7);
        assert_eq!(a, random_values(1000, 7));
        assert_ne!(a, random_values(1000, 8));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
    }

    #[test]
    fn max_abs_diff_flags_length_and_nan() {
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.0, 2.5]), 0.5);
        assert_eq!(max_abs_diff(&[1.0], &[1.0, 2.0]), f32::INFINITY);
        assert_eq!(max_abs_diff(&[f32::NAN], &[1.0]), f32::INFINITY);
    }
}

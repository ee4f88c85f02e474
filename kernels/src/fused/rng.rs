//! The counter-based generator shared by `sample.wgsl` and the reference: a uniform number is a
//! pure function of (seed, row, step), so a draw is reproducible from those three alone.

/// PCG hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", JCGT 2020), as in the shader.
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Uniform in [0, 1) with 24 random bits for draw `step` of row `row` under `seed`.
pub fn counter_uniform(seed: u64, row: u32, step: u32) -> f32 {
    let (lo, hi) = (seed as u32, (seed >> 32) as u32);
    let h = pcg_hash(step.wrapping_add(pcg_hash(row.wrapping_add(pcg_hash(hi.wrapping_add(pcg_hash(lo)))))));
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// [`counter_uniform`] for rows `0..rows`.
pub fn counter_uniforms(seed: u64, step: u32, rows: usize) -> Vec<f32> {
    (0..rows as u32).map(|row| counter_uniform(seed, row, step)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcg_hash_matches_an_independent_computation() {
        // Computed independently with the same formula in Python (arbitrary-precision ints, masked).
        assert_eq!(pcg_hash(0), 129_708_002);
        assert_eq!(pcg_hash(1), 2_831_084_092);
    }

    #[test]
    fn uniforms_are_in_range_and_spread() {
        let draws: Vec<f32> = (0..10_000).map(|i| counter_uniform(42, i % 97, i / 97)).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f32>() / draws.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        // Every decile is hit about as often as the others.
        let mut deciles = [0usize; 10];
        for u in &draws {
            deciles[(u * 10.0) as usize] += 1;
        }
        assert!(deciles.iter().all(|&c| (850..1150).contains(&c)), "{deciles:?}");
    }

    #[test]
    fn every_input_word_changes_the_draw() {
        let base = counter_uniform(7, 3, 5);
        assert_ne!(base, counter_uniform(8, 3, 5));
        assert_ne!(base, counter_uniform(7 | (1 << 40), 3, 5));
        assert_ne!(base, counter_uniform(7, 4, 5));
        assert_ne!(base, counter_uniform(7, 3, 6));
        assert_eq!(base, counter_uniform(7, 3, 5));
    }
}

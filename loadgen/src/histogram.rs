//! Latencies in logarithmic buckets (each 2 % wider than the last): a few hundred counters
//! whatever the number of deliveries, mergeable across peers and processes, and percentiles
//! within 2 % of the exact ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Width ratio of consecutive buckets.
const GROWTH: f64 = 1.02;

/// Counts of latencies in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bucket index → count. Bucket `i` holds values in `[GROWTH^(i-1), GROWTH^i)` µs, bucket 0
    /// holds 0 µs.
    buckets: BTreeMap<u32, u64>,
    count: u64,
}

fn bucket_of(micros: u64) -> u32 {
    if micros == 0 { 0 } else { ((micros as f64).ln() / GROWTH.ln()).floor() as u32 + 1 }
}

/// The upper bound of bucket `index`, in microseconds.
fn upper_of(index: u32) -> f64 {
    if index == 0 { 0.0 } else { GROWTH.powi(index as i32) }
}

impl Histogram {
    /// Counts one latency.
    pub fn record(&mut self, micros: u64) {
        *self.buckets.entry(bucket_of(micros)).or_insert(0) += 1;
        self.count += 1;
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in &other.buckets {
            *self.buckets.entry(*bucket).or_insert(0) += count;
        }
        self.count += other.count;
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `p`-quantile (0..=1) in milliseconds: the upper bound of the bucket holding the value
    /// at that rank, so at most 2 % above the exact value. `None` when empty.
    pub fn quantile_ms(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // The same rank a sorted list would give: index round((n - 1) · p).
        let rank = ((self.count - 1) as f64 * p.clamp(0.0, 1.0)).round() as u64;
        let mut seen = 0;
        for (bucket, count) in &self.buckets {
            seen += count;
            if seen > rank {
                return Some(upper_of(*bucket) / 1e3);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact quantile of a sorted list, as the old bench computed it, in ms.
    fn exact(sorted: &[u64], p: f64) -> f64 {
        sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
    }

    #[test]
    fn quantiles_are_within_two_percent_above_the_exact_ones() {
        // A skewed spread like real latencies: most around a millisecond, a tail in seconds.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut values = Vec::new();
        for _ in 0..20_011 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let base = 200 + state % 3_000;
            values.push(if state.is_multiple_of(100) { base * 1_000 } else { base });
        }
        let mut histogram = Histogram::default();
        for v in &values {
            histogram.record(*v);
        }
        values.sort_unstable();
        assert_eq!(histogram.count(), values.len() as u64);
        for p in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let (got, want) = (histogram.quantile_ms(p).expect("not empty"), exact(&values, p));
            assert!(got >= want && got <= want * GROWTH + 1e-9, "p{p}: {got} ms, exact {want} ms");
        }
    }

    #[test]
    fn merged_histograms_equal_one_that_saw_everything() {
        let (mut a, mut b, mut all) = (Histogram::default(), Histogram::default(), Histogram::default());
        for v in 0..5_000u64 {
            let micros = v * v % 90_001;
            if v.is_multiple_of(3) {
                a.record(micros)
            } else {
                b.record(micros)
            }
            all.record(micros);
        }
        a.merge(&b);
        assert_eq!(a, all);
        // And through JSON, as workers send them.
        let back: Histogram = serde_json::from_str(&serde_json::to_string(&a).expect("json")).expect("parse");
        assert_eq!(back, all);
    }

    #[test]
    fn zero_and_empty_are_handled() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        h.record(0);
        assert_eq!(h.quantile_ms(0.99), Some(0.0));
    }
}

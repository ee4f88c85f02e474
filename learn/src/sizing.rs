//! How many questions a round asks, chosen from the device (issue 20, item 3).
//!
//! On a GPU a step of our small models is bound by kernel launches, not arithmetic: a forward pass
//! over 512 rows can cost little more than one over 64, so a bigger round buys more completions
//! (and more signal per GRPO step) for almost nothing. On the CPU backend, or on a software adapter
//! (lavapipe, SwiftShader), time grows with the rows: a bigger round only takes longer, and a tab's
//! rounds should stay short (progress, pausing, the duty cycle). So the device is measured: one
//! forward pass of prompt-length rows at 64, 128, 256 and 512 rows (the swarm's round is 8 questions
//! × 8 completions = 64 rows), stopping as soon as doubling the rows costs more than
//! [`SLACK`] × the 64-row pass; the round takes the most rows that stayed within it.

use std::time::Duration;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use tabswarm_model::{Model, ModelError};

/// The swarm's round: 8 questions (one per family) of 8 completions. Every device asks at least
/// this many.
pub const BASE_QUESTIONS: usize = 8;
/// The most questions a round asks (8 × this many rows): the GRPO step's memory and a round's time
/// on a slow GPU stay bounded.
pub const MAX_QUESTIONS: usize = 64;
/// A bigger round is taken while its forward pass costs at most this many times the base round's.
pub const SLACK: f64 = 1.5;
/// Tokens per probed row: about a prompt and its first answer tokens.
const PROBE_TOKENS: usize = 16;

/// What the device was given, and why, in words the page and the CLI show.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundSize {
    /// Questions per round (each with the run's group of completions).
    pub questions: usize,
    /// Rows probed and the time of one forward pass over them, in the order measured.
    pub probe: Vec<(usize, Duration)>,
    /// One sentence: the choice and the measurement behind it.
    pub reason: String,
}

/// The round for a device whose forward pass over `rows` took the times in `probe` (rows ascending,
/// the first the base round's `8 · group` rows): the most questions whose pass stayed within
/// [`SLACK`] × the base pass, at least [`BASE_QUESTIONS`], at most [`MAX_QUESTIONS`].
pub fn choose(probe: &[(usize, Duration)], group: usize) -> RoundSize {
    let base_rows = BASE_QUESTIONS * group;
    let Some(&(first_rows, base)) = probe.first() else {
        return RoundSize {
            questions: BASE_QUESTIONS,
            probe: Vec::new(),
            reason: format!("{BASE_QUESTIONS} questions a round (the swarm's default): the device was not measured."),
        };
    };
    let fits = |t: Duration| t.as_secs_f64() <= SLACK * base.as_secs_f64();
    // The largest pass within the slack, before the first that was not (the probe ascends).
    let (rows, t) = probe.iter().take_while(|(_, t)| fits(*t)).last().copied().unwrap_or((first_rows, base));
    let questions = (rows.max(base_rows) / group.max(1)).clamp(BASE_QUESTIONS, MAX_QUESTIONS);
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    let reason = if questions > BASE_QUESTIONS {
        format!(
            "{questions} questions a round: this device ran {rows} rows in {:.1} ms against {:.1} ms for \
             {first_rows}, so it had room for {}× the swarm's round at little extra time.",
            ms(t),
            ms(base),
            questions / BASE_QUESTIONS
        )
    } else if let Some(&(rows, t)) = probe.iter().find(|(_, t)| !fits(*t)) {
        format!(
            "{questions} questions a round (the swarm's default): this device took {:.1} ms for {rows} rows \
             against {:.1} ms for {first_rows}, so a bigger round would only take longer.",
            ms(t),
            ms(base)
        )
    } else {
        format!("{questions} questions a round (the swarm's default).")
    };
    RoundSize { questions, probe: probe.to_vec(), reason }
}

/// Measures `model` on `device` (see the module docs) and chooses the round; `now_ms` is a monotonic
/// clock in milliseconds (the worker's in a tab). Each pass is read back before the clock stops, so
/// it is timed to completion; a warm-up pass first compiles the kernels.
pub async fn measure(
    model: &Model,
    device: &Device,
    group: usize,
    now_ms: &dyn Fn() -> f64,
) -> Result<RoundSize, ModelError> {
    let model = model.valid();
    let len = PROBE_TOKENS.min(model.max_seq_len());
    let pass = |rows: usize| {
        let ids: Vec<i64> = (0..rows * len).map(|i| 3 + (i % 60) as i64).collect();
        let tokens = Tensor::<2, Int>::from_ints(TensorData::new(ids, [rows, len]), device);
        let model = &model;
        async move {
            let start = now_ms();
            let logits = model.forward(tokens)?;
            let [r, s, v] = logits.dims();
            // One value back: the host waits for the whole pass.
            let last = logits.slice([r - 1..r, s - 1..s, v - 1..v]).reshape([1]);
            last.into_data_async().await.map_err(|e| ModelError::Readback(format!("{e:?}")))?;
            Ok::<Duration, ModelError>(Duration::from_secs_f64(((now_ms() - start) / 1e3).max(0.0)))
        }
    };
    let base_rows = BASE_QUESTIONS * group;
    pass(base_rows).await?; // warm-up: kernel compilation
    let base = pass(base_rows).await?;
    let mut probe = vec![(base_rows, base)];
    let mut rows = base_rows;
    while rows * 2 <= MAX_QUESTIONS * group {
        rows *= 2;
        let t = pass(rows).await?;
        probe.push((rows, t));
        if t.as_secs_f64() > SLACK * base.as_secs_f64() {
            break;
        }
    }
    Ok(choose(&probe, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_device_whose_time_grows_with_the_rows_keeps_the_swarm_s_round() {
        let cpu = choose(&[(64, ms(100)), (128, ms(190))], 8);
        assert_eq!(cpu.questions, 8);
        assert!(cpu.reason.contains("took 190.0 ms for 128 rows against 100.0 ms for 64"), "{}", cpu.reason);
        assert!(cpu.reason.contains("would only take longer"), "{}", cpu.reason);
    }

    #[test]
    fn a_launch_bound_device_gets_the_most_rows_within_the_slack() {
        let gpu = choose(&[(64, ms(10)), (128, ms(10)), (256, ms(11)), (512, ms(12))], 8);
        assert_eq!(gpu.questions, 64);
        assert!(gpu.reason.contains("ran 512 rows in 12.0 ms against 10.0 ms for 64"), "{}", gpu.reason);
        assert!(gpu.reason.contains("8× the swarm's round"), "{}", gpu.reason);
        // Room for 256 rows but not 512: 32 questions.
        let mid = choose(&[(64, ms(10)), (128, ms(11)), (256, ms(15)), (512, ms(30))], 8);
        assert_eq!(mid.questions, 32);
        // A pass past the slack ends the search: a faster one after it does not count.
        let stopped = choose(&[(64, ms(10)), (128, ms(11)), (256, ms(20)), (512, ms(12))], 8);
        assert_eq!(stopped.questions, 16);
        assert!(stopped.reason.contains("ran 128 rows in 11.0 ms"), "{}", stopped.reason);
        // Exactly at the slack is within it; just past it is not.
        assert_eq!(choose(&[(64, ms(100)), (128, ms(150))], 8).questions, 16);
        assert_eq!(choose(&[(64, ms(100)), (128, ms(151))], 8).questions, 8);
    }

    #[test]
    fn no_measurement_or_other_groups_stay_within_bounds() {
        assert_eq!(choose(&[], 8).questions, BASE_QUESTIONS);
        assert!(choose(&[], 8).reason.contains("not measured"));
        // Groups of 4: 512 rows are 128 questions, capped at 64.
        assert_eq!(choose(&[(32, ms(10)), (512, ms(10))], 4).questions, MAX_QUESTIONS);
    }

    /// The measurement itself, on the CPU backend (what it chooses there depends on the machine's
    /// timing, so only its shape is asserted: the choice from timings is tested above).
    #[test]
    fn measuring_probes_from_the_swarm_s_round_upwards() {
        let device = Device::flex();
        device.seed(1);
        let model = tabswarm_model::ModelSize::Tiny.config().init(&device).expect("model");
        let start = std::time::Instant::now();
        let now_ms = move || start.elapsed().as_secs_f64() * 1e3;
        let size = pollster::block_on(measure(&model, &device, 8, &now_ms)).expect("measure");
        assert_eq!(size.probe[0].0, 64, "{size:?}");
        assert!(size.probe.windows(2).all(|w| w[1].0 == 2 * w[0].0), "{size:?}");
        assert!(size.probe.last().is_some_and(|p| p.0 <= 512), "{size:?}");
        assert!((BASE_QUESTIONS..=MAX_QUESTIONS).contains(&size.questions), "{size:?}");
        assert_eq!(size, choose(&size.probe, 8), "the choice is the one its probe gives");
    }
}

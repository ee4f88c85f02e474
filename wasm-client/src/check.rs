//! The matmul check the worker runs: the WGSL kernel against the Rust reference, both computed
//! here, so the page can prove to its user that their GPU computes correctly and say how fast.
//!
//! Platform-neutral: the worker passes `performance.now`, native tests pass a monotonic clock.

use tabswarm_kernels::{GpuContext, KernelError, MatmulKernel, MatmulShape, matmul_reference, testing};

use crate::messages::{CheckRequest, Engine, MatmulCheck};

/// Timed GPU repetitions; the median is reported.
const GPU_RUNS: usize = 5;

/// The error bound for an n-term f32 dot product of values in [-1, 1).
pub fn tolerance(n: usize) -> f32 {
    1e-5 * n.max(1) as f32 + 1e-5
}

/// Multiplies two seeded random n×n matrices on `gpu` (or, with `None`, on the CPU path) and
/// checks the result against [`matmul_reference`]. `now` returns milliseconds.
pub async fn run_check(
    request: &CheckRequest,
    gpu: Option<&GpuContext>,
    now: &dyn Fn() -> f64,
) -> Result<MatmulCheck, KernelError> {
    let n = request.n;
    let shape = MatmulShape::new(n, n, n);
    let a = testing::random_values(n * n, request.seed);
    let b = testing::random_values(n * n, request.seed.wrapping_add(1));

    let start = now();
    let reference = matmul_reference(&a, &b, shape)?;
    let reference_millis = now() - start;

    let Some(ctx) = gpu else {
        return Ok(MatmulCheck {
            engine: Engine::Cpu,
            n,
            millis: reference_millis,
            reference_millis,
            max_error: 0.0,
            tolerance: tolerance(n),
        });
    };
    let kernel = MatmulKernel::new(ctx);
    let prepared = kernel.prepare(ctx, &a, &b, shape).await?;
    prepared.dispatch(ctx, 1).await?; // warm-up: shader compilation and first touch of the buffers
    let mut times = Vec::with_capacity(GPU_RUNS);
    for _ in 0..GPU_RUNS {
        let start = now();
        prepared.dispatch(ctx, 1).await?;
        times.push(now() - start);
    }
    times.sort_by(f64::total_cmp);
    let result = prepared.read(ctx).await?;
    Ok(MatmulCheck {
        engine: Engine::WebGpu,
        n,
        millis: times[GPU_RUNS / 2],
        reference_millis,
        max_error: testing::max_abs_diff(&result, &reference),
        tolerance: tolerance(n),
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::time::Instant;

    use super::*;

    fn clock() -> impl Fn() -> f64 {
        let origin = Instant::now();
        move || origin.elapsed().as_secs_f64() * 1e3
    }

    #[test]
    fn cpu_path_reports_the_reference() {
        let report =
            pollster::block_on(run_check(&CheckRequest { n: 33, seed: 5 }, None, &clock())).expect("cpu check");
        assert_eq!(report.engine, Engine::Cpu);
        assert_eq!(report.n, 33);
        assert!(report.passed());
        assert!(report.millis >= 0.0 && report.millis == report.reference_millis);
    }

    #[test]
    fn gpu_path_agrees_with_the_reference_natively() {
        if std::env::var_os("TABSWARM_SKIP_GPU").is_some() {
            return;
        }
        let ctx = pollster::block_on(GpuContext::new())
            .expect("GPU adapter (apt-get install mesa-vulkan-drivers, or set TABSWARM_SKIP_GPU=1)");
        let report =
            pollster::block_on(run_check(&CheckRequest { n: 67, seed: 9 }, Some(&ctx), &clock())).expect("gpu check");
        assert_eq!(report.engine, Engine::WebGpu);
        assert!(report.passed(), "{report:?}");
        assert!(report.max_error.is_finite());
        assert!(report.millis > 0.0);
    }
}

//! Matmul throughput: the WGSL kernel on the local adapter next to the CPU reference.
//!
//! `cargo bench -p tabswarm-kernels --bench matmul` (add `WGPU_BACKEND=vulkan` to pick lavapipe).
//! Prints a Markdown table for docs/benchmarks.md. Sizes: `TABSWARM_BENCH_SIZES=128,256` overrides.

use std::time::{Duration, Instant};

use tabswarm_kernels::{GpuContext, MatmulKernel, MatmulShape, matmul_reference, testing};

/// Repeats `f` until at least `budget` has passed (and at least once); returns seconds per call.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls == 0 || start.elapsed() < budget {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = match std::env::var("TABSWARM_BENCH_SIZES") {
        Ok(list) => list.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?,
        Err(_) => vec![128, 256, 512, 768, 1024],
    };
    let ctx = pollster::block_on(GpuContext::new())?;
    let info = ctx.adapter_info();
    let kernel = MatmulKernel::new(&ctx);
    let budget = Duration::from_millis(700);

    println!(
        "Adapter: {} ({:?}, driver {} {}); {} CPU threads",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!(
        "| n (n×n · n×n) | GPU kernel ms | GPU GFLOP/s | GPU incl. upload+readback ms | CPU reference ms | CPU GFLOP/s | GPU/CPU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let shape = MatmulShape::new(n, n, n);
        let a = testing::random_values(n * n, 1);
        let b = testing::random_values(n * n, 2);
        let prepared = pollster::block_on(kernel.prepare(&ctx, &a, &b, shape))?;
        pollster::block_on(prepared.dispatch(&ctx, 1))?; // warm-up: pipeline compile, first touch
        // Kernel time: batches of 4 dispatches in one submission, amortising submit/wait.
        let kernel_s =
            time_per_call(budget, || pollster::block_on(prepared.dispatch(&ctx, 4)).expect("dispatch")) / 4.0;
        let end_to_end_s = time_per_call(budget, || {
            pollster::block_on(kernel.run(&ctx, &a, &b, shape)).expect("run");
        });
        let gpu = pollster::block_on(prepared.read(&ctx))?;
        let mut cpu = Vec::new();
        let cpu_s = time_per_call(budget, || cpu = matmul_reference(&a, &b, shape).expect("reference"));
        let err = testing::max_abs_diff(&gpu, &cpu);
        assert!(err < 1e-5 * n as f32 + 1e-5, "n={n}: GPU result differs from reference by {err}");
        let gflops = |s: f64| shape.flops() / s / 1e9;
        println!(
            "| {n} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {:.3}× |",
            kernel_s * 1e3,
            gflops(kernel_s),
            end_to_end_s * 1e3,
            cpu_s * 1e3,
            gflops(cpu_s),
            cpu_s / kernel_s
        );
    }
    Ok(())
}

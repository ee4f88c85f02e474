//! The WGSL matmul against the CPU reference on a real adapter (Vulkan lavapipe in CI).
//!
//! Set `TABSWARM_SKIP_GPU=1` to skip on a machine with no adapter at all; CI never sets it.
#![cfg(not(target_arch = "wasm32"))]

use tabswarm_kernels::{GpuContext, KernelError, MatmulKernel, MatmulShape, matmul_reference, testing};

fn context() -> Option<GpuContext> {
    if std::env::var_os("TABSWARM_SKIP_GPU").is_some() {
        eprintln!("TABSWARM_SKIP_GPU is set: skipping GPU test");
        return None;
    }
    match pollster::block_on(GpuContext::new()) {
        Ok(ctx) => Some(ctx),
        Err(e) => panic!(
            "{e}. Install a Vulkan driver (Debian: apt-get install mesa-vulkan-drivers) or set TABSWARM_SKIP_GPU=1"
        ),
    }
}

/// Tolerance for f32 sums of `k` products of values in [-1, 1), accumulated in a different order.
fn tolerance(k: usize) -> f32 {
    1e-5 * (k.max(1) as f32) + 1e-5
}

fn check(ctx: &GpuContext, kernel: &MatmulKernel, shape: MatmulShape, seed: u64) {
    let a = testing::random_values(shape.m * shape.k, seed);
    let b = testing::random_values(shape.k * shape.n, seed ^ 0x9e37_79b9);
    let expected = matmul_reference(&a, &b, shape).expect("reference");
    let actual = pollster::block_on(kernel.run(ctx, &a, &b, shape)).expect("gpu matmul");
    let err = testing::max_abs_diff(&actual, &expected);
    assert!(err <= tolerance(shape.k), "{shape} (seed {seed}): max abs error {err} > {}", tolerance(shape.k));
}

#[test]
fn matches_reference_on_awkward_shapes() {
    let Some(ctx) = context() else { return };
    eprintln!("adapter: {:?}", ctx.adapter_info());
    let kernel = MatmulKernel::new(&ctx);
    let shapes = [
        (1, 1, 1),
        (1, 17, 1),
        (3, 1, 5),
        (63, 65, 67),
        (64, 64, 64),
        (65, 16, 129),
        (127, 300, 5),
        (200, 31, 257),
        (1, 1000, 3),
        (130, 129, 1),
    ];
    for (i, (m, k, n)) in shapes.into_iter().enumerate() {
        check(&ctx, &kernel, MatmulShape::new(m, k, n), 100 + i as u64);
    }
}

#[test]
fn matches_reference_on_seeded_random_shapes() {
    let Some(ctx) = context() else { return };
    let kernel = MatmulKernel::new(&ctx);
    let dims = testing::random_values(30, 42);
    for (i, d) in dims.chunks_exact(3).enumerate() {
        // Map [-1, 1) to sizes 1..=300, almost never multiples of the 64 tile.
        let size = |v: f32| 1 + ((v + 1.0) * 149.5) as usize;
        check(&ctx, &kernel, MatmulShape::new(size(d[0]), size(d[1]), size(d[2])), i as u64);
    }
}

#[test]
fn repeated_dispatch_gives_the_same_result() {
    let Some(ctx) = context() else { return };
    let kernel = MatmulKernel::new(&ctx);
    let shape = MatmulShape::new(70, 90, 33);
    let a = testing::random_values(shape.m * shape.k, 1);
    let b = testing::random_values(shape.k * shape.n, 2);
    let prepared = pollster::block_on(kernel.prepare(&ctx, &a, &b, shape)).expect("prepare");
    pollster::block_on(prepared.dispatch(&ctx, 5)).expect("dispatch");
    let first = pollster::block_on(prepared.read(&ctx)).expect("read");
    pollster::block_on(prepared.dispatch(&ctx, 1)).expect("dispatch");
    assert_eq!(first, pollster::block_on(prepared.read(&ctx)).expect("read"));
    let expected = matmul_reference(&a, &b, shape).expect("reference");
    assert!(testing::max_abs_diff(&first, &expected) <= tolerance(shape.k));
}

#[test]
fn bad_input_is_refused_before_touching_the_gpu() {
    let Some(ctx) = context() else { return };
    let kernel = MatmulKernel::new(&ctx);
    let err =
        pollster::block_on(kernel.run(&ctx, &[1.0; 3], &[1.0; 4], MatmulShape::new(2, 2, 2))).expect_err("A short");
    assert_eq!(err.to_string(), "matrix A has 3 values, but a 2×2 matrix needs 4");
    // Empty dimensions are answered without a dispatch.
    let zeros = pollster::block_on(kernel.run(&ctx, &[], &[], MatmulShape::new(2, 0, 3))).expect("k = 0");
    assert_eq!(zeros, vec![0.0; 6]);
    // Larger than any device binds: a clear error, not a wgpu panic.
    let limit = ctx.device.limits().max_storage_buffer_binding_size as usize / 4;
    let big = MatmulShape::new(limit + 1, 1, 1);
    let a = vec![0.0; big.m];
    let err = pollster::block_on(kernel.prepare(&ctx, &a, &[0.0], big)).expect_err("too large");
    assert!(matches!(err, KernelError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("A needs"), "{err}");
}

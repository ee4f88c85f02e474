//! The same matmul check inside a real browser on WebGPU (`cargo xtask test` runs it in headless
//! Chromium through wasm-bindgen-test-runner).
#![cfg(target_arch = "wasm32")]

use tabswarm_kernels::{GpuContext, MatmulKernel, MatmulShape, matmul_reference, testing};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn webgpu_matmul_matches_reference_on_awkward_shapes() {
    let ctx = GpuContext::new().await.expect("WebGPU adapter (Chromium needs --enable-unsafe-webgpu headless)");
    let kernel = MatmulKernel::new(&ctx);
    for (i, (m, k, n)) in
        [(1, 1, 1), (63, 65, 67), (64, 64, 64), (127, 300, 5), (1, 700, 3), (130, 17, 129)].into_iter().enumerate()
    {
        let shape = MatmulShape::new(m, k, n);
        let a = testing::random_values(m * k, i as u64);
        let b = testing::random_values(k * n, 1000 + i as u64);
        let expected = matmul_reference(&a, &b, shape).expect("reference");
        let actual = kernel.run(&ctx, &a, &b, shape).await.expect("webgpu matmul");
        let err = testing::max_abs_diff(&actual, &expected);
        assert!(err <= 1e-5 * k as f32 + 1e-5, "{shape}: max abs error {err}");
    }
}

#[wasm_bindgen_test]
async fn webgpu_refuses_mismatched_input() {
    let ctx = GpuContext::new().await.expect("WebGPU adapter");
    let kernel = MatmulKernel::new(&ctx);
    let err = kernel.run(&ctx, &[1.0; 4], &[1.0; 5], MatmulShape::new(2, 2, 2)).await.expect_err("B long");
    assert_eq!(err.to_string(), "matrix B has 5 values, but a 2×2 matrix needs 4");
}

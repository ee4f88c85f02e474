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

/// What Chromium's shader compiler (Tint) says of `source`: its error messages, and any error from
/// building a compute pipeline (auto layout) for `main`. naga, which the native tests use, is laxer
/// than Tint (it rounds an unrepresentable float literal, it accepts a NaN constant), and wgpu on
/// WebGPU reports a refused module only asynchronously: a kernel that never compiles leaves its
/// output buffers as they were, so only a check in the browser itself catches it.
async fn tint_errors(ctx: &tabswarm_kernels::GpuContext, source: &str) -> Vec<String> {
    let scope = ctx.device.push_error_scope(tabswarm_kernels::wgpu::ErrorFilter::Validation);
    let module = ctx.device.create_shader_module(tabswarm_kernels::wgpu::ShaderModuleDescriptor {
        label: None,
        source: tabswarm_kernels::wgpu::ShaderSource::Wgsl(source.into()),
    });
    let mut errors: Vec<String> = module
        .get_compilation_info()
        .await
        .messages
        .into_iter()
        .filter(|m| m.message_type == tabswarm_kernels::wgpu::CompilationMessageType::Error)
        .map(|m| m.message)
        .collect();
    let _pipeline = ctx.device.create_compute_pipeline(&tabswarm_kernels::wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    if let Some(error) = scope.pop().await {
        errors.push(error.to_string());
    }
    errors
}

#[wasm_bindgen_test]
async fn every_wgsl_kernel_compiles_in_chromium() {
    let ctx = GpuContext::new().await.expect("WebGPU adapter");
    for shader in tabswarm_kernels::shaders::ALL {
        let errors = tint_errors(&ctx, shader.source).await;
        assert!(errors.is_empty(), "{} does not compile on WebGPU:\n{}", shader.path, errors.join("\n"));
    }
}

#[wasm_bindgen_test]
async fn the_compile_check_catches_what_naga_lets_through() {
    // Both parse and validate with naga; Tint refuses both (the cause of wrong fused-kernel values in
    // Chromium before the shaders spelled the lowest f32 exactly and read NaN at run time).
    let ctx = GpuContext::new().await.expect("WebGPU adapter");
    let header =
        "@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() ";
    for body in ["{ o[0] = -3.4028235e38; }", "{ o[0] = bitcast<f32>(0x7fc00000u); }"] {
        let errors = tint_errors(&ctx, &format!("{header}{body}")).await;
        assert!(errors.iter().any(|e| e.contains("cannot be represented as 'f32'")), "{body}: {errors:?}");
    }
}

//! CPU-only tests of the reference and the shape checks; GPU comparisons live in `tests/`.

use super::*;

#[test]
fn reference_matches_hand_computed_product() {
    // [1 2 3]   [ 7  8]   [ 58  64]
    // [4 5 6] · [ 9 10] = [139 154]
    //           [11 12]
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
    let c = matmul_reference(&a, &b, MatmulShape::new(2, 3, 2)).expect("valid shapes");
    assert_eq!(c, vec![58.0, 64.0, 139.0, 154.0]);
}

#[test]
fn reference_handles_vectors_and_empty_dimensions() {
    // Row vector times column vector, and column times row (outer product).
    let dot = matmul_reference(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], MatmulShape::new(1, 3, 1)).expect("dot");
    assert_eq!(dot, vec![32.0]);
    let outer = matmul_reference(&[1.0, 2.0], &[3.0, 4.0], MatmulShape::new(2, 1, 2)).expect("outer");
    assert_eq!(outer, vec![3.0, 4.0, 6.0, 8.0]);
    assert_eq!(matmul_reference(&[], &[], MatmulShape::new(2, 0, 3)).expect("k = 0"), vec![0.0; 6]);
    assert!(matmul_reference(&[], &[1.0, 2.0], MatmulShape::new(0, 1, 2)).expect("m = 0").is_empty());
}

#[test]
fn reference_rejects_wrong_lengths_naming_the_matrix() {
    let err = matmul_reference(&[1.0; 5], &[1.0; 6], MatmulShape::new(2, 3, 2)).expect_err("A is short");
    assert!(matches!(err, KernelError::ShapeMismatch { name: "A", expected: 6, actual: 5, .. }), "{err:?}");
    let message = matmul_reference(&[1.0; 6], &[1.0; 7], MatmulShape::new(2, 3, 2)).expect_err("B is long").to_string();
    assert_eq!(message, "matrix B has 7 values, but a 3×2 matrix needs 6");
}

#[test]
fn shape_reports_flops_and_display() {
    let shape = MatmulShape::new(512, 256, 128);
    assert_eq!(shape.flops(), 2.0 * 512.0 * 256.0 * 128.0);
    assert_eq!(shape.to_string(), "512×256 · 256×128");
}

#[test]
fn shader_tile_constants_match_rust() {
    assert!(SHADER.contains(&format!("const TILE_M: u32 = {TILE}u;")));
    assert!(SHADER.contains(&format!("const TILE_N: u32 = {TILE}u;")));
}

//! The blur kernels against basicsr's formulas (fixtures from tools/reference/make_degradation_fixtures.py,
//! checked there against basicsr/data/degradations.py itself).

mod common;

use sana_sr_data::degradations::kernels::{blur_kernel, circular_lowpass_kernel, BlurParams, KernelKind};

/// Both sides compute in f64; what is left is summation order and libm vs. cephes J1.
const TOLERANCE: f64 = 1e-12;

#[test]
fn every_kernel_kind_matches_the_reference_formula() {
    let fixture = common::Fixture::open("kernels.safetensors");
    let cases = fixture.cases();
    assert_eq!(cases.len(), 16);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let kind = case["kind"].as_str().unwrap();
        let size = case["size"].as_u64().unwrap() as usize;
        let ours = if kind == "sinc" {
            let kernel = circular_lowpass_kernel(case["cutoff"].as_f64().unwrap(), size);
            kernel.padded_to(case["pad_to"].as_u64().unwrap() as usize)
        } else {
            let kind: KernelKind = serde_json::from_value(case["kind"].clone()).unwrap();
            blur_kernel(&BlurParams {
                kind,
                size,
                sigma_x: case["sigma_x"].as_f64().unwrap(),
                sigma_y: case["sigma_y"].as_f64().unwrap(),
                theta: case["theta"].as_f64().unwrap(),
                beta: case["beta"].as_f64().unwrap(),
            })
        };
        let reference = fixture.array(name);
        assert_eq!(reference.shape, vec![ours.size, ours.size], "{name}");
        let worst = ours.weights.iter().zip(&reference.values).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst <= TOLERANCE, "{name}: max |difference| {worst:e}");
    }
}

#[test]
fn anisotropic_kernels_are_rotated_not_mirrored() {
    // σx along the direction θ: at θ = π/2 the long axis is vertical, so the kernel is taller than wide.
    let params = BlurParams {
        kind: KernelKind::Aniso,
        size: 11,
        sigma_x: 3.0,
        sigma_y: 0.5,
        theta: std::f64::consts::FRAC_PI_2,
        beta: 1.0,
    };
    let k = blur_kernel(&params);
    let at = |x: usize, y: usize| k.weights[y * 11 + x];
    assert!(at(5, 8) > 100.0 * at(8, 5));
    // Isotropic kinds ignore σy and θ.
    let iso = BlurParams { kind: KernelKind::Iso, ..params };
    let k = blur_kernel(&iso);
    assert!((k.weights[5 * 11 + 8] - k.weights[8 * 11 + 5]).abs() < 1e-15);
}

//! PSNR, SSIM and NIQE against basicsr 1.4.2 (`calculate_psnr`, `calculate_ssim`, `calculate_niqe`) on 8-bit
//! images: crops of Set5 with their bicubic x4 reconstructions, real-size Set5 images for NIQE, synthetic RGB and
//! gray pairs. Fixtures: tools/reference/make_metric_fixtures.py.

use sana_sr_data::io::read_image;
use sana_sr_data::Image;
use sana_sr_metrics::{niqe, psnr, ssim};
use serde_json::Value;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
// Our metrics are plain Rust in float64, the same bits on any CPU and thread count (no BLAS or oneDNN); what
// separates them from the reference is basicsr's own float32 steps, fixed in the fixtures.
/// basicsr rounds Y to float32 (relative u = 2^-24, ~1.4e-5 of a code value) before its float64 MSE, which moves
/// the MSE by a relative ~1e-7 at these errors, 4.3e-7 dB. Measured: 8.5e-8 dB.
const PSNR_TOLERANCE_DB: f64 = 1e-6;
/// The same float32 Y through SSIM's 11x11 Gaussian windows: relative changes of order u. Measured: 8.5e-9.
const SSIM_TOLERANCE: f64 = 1e-7;
/// basicsr's float32 `imresize` (the half-scale pass of NIQE) differs from ours in the last bits, and NIQE's
/// inverse covariance amplifies feature changes (see crates/metrics/src/niqe/mod.rs). Measured: 2.9e-5.
const NIQE_TOLERANCE: f64 = 1e-4;

/// An 8-bit fixture PNG (gray or RGB), samples `value / 255`.
fn load(name: &str) -> Image {
    read_image(Path::new(FIXTURES).join(name)).unwrap()
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURES).join("reference.json")).unwrap()).unwrap()
}

#[test]
fn psnr_and_ssim_match_basicsr() {
    let reference = reference();
    let cases = reference["psnr_ssim"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    let (mut worst_psnr, mut worst_ssim) = (0.0f64, 0.0f64);
    for case in cases {
        let (a, b) = (load(case["a"].as_str().unwrap()), load(case["b"].as_str().unwrap()));
        let crop_border = case["crop_border"].as_u64().unwrap() as usize;
        let y = case["test_y_channel"].as_bool().unwrap();
        let psnr_err = (psnr(&a, &b, crop_border, y).unwrap() - case["psnr"].as_f64().unwrap()).abs();
        let ssim_err = (ssim(&a, &b, crop_border, y).unwrap() - case["ssim"].as_f64().unwrap()).abs();
        println!(
            "{} vs {} crop {crop_border} y {y}: |dPSNR| {psnr_err:.2e} dB, |dSSIM| {ssim_err:.2e}",
            case["a"], case["b"]
        );
        assert!(psnr_err <= PSNR_TOLERANCE_DB && ssim_err <= SSIM_TOLERANCE, "{case}");
        worst_psnr = worst_psnr.max(psnr_err);
        worst_ssim = worst_ssim.max(ssim_err);
    }
    println!("max |dPSNR| {worst_psnr:.3e} dB, max |dSSIM| {worst_ssim:.3e}");
}

#[test]
fn niqe_matches_basicsr() {
    let reference = reference();
    let cases = reference["niqe"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    let mut worst = 0.0f64;
    for case in cases {
        let image = load(case["image"].as_str().unwrap());
        let crop_border = case["crop_border"].as_u64().unwrap() as usize;
        let got = niqe(&image, crop_border).unwrap();
        let err = (got - case["niqe"].as_f64().unwrap()).abs();
        println!("{} crop {crop_border}: NIQE {got:.6} |err| {err:.2e}", case["image"]);
        assert!(err <= NIQE_TOLERANCE, "{case}: got {got}");
        worst = worst.max(err);
    }
    println!("max |dNIQE| {worst:.3e}");
}

#[test]
fn y_channel_reads_rgb_not_bgr() {
    // Swapping red and blue changes the luma, so a BGR mix-up would score a pair as different.
    let a = load("baby_hr.png");
    let mut swapped = a.clone();
    swapped.data.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
    assert!(psnr(&a, &swapped, 0, true).unwrap() < 60.0);
    assert_eq!(psnr(&a, &a, 0, true).unwrap(), f64::INFINITY);
}

//! `interpolate` against `torch.nn.functional.interpolate` (fixtures from
//! tools/reference/make_degradation_fixtures.py).

mod common;

use sana_sr_core::compare::UNIT_ROUNDOFF;
use sana_sr_core::{Device, Kind, Tensor};
use sana_sr_data::resize::interpolate::{interpolate, InterpolateError, Mode, Target};

/// Largest absolute difference (the values are in [0, 1], so it is also the normalised error). What this
/// pins is our size and scale-factor handling; the arithmetic is libtorch's on both sides, but its vectorised
/// paths differ by CPU (FMA or not, lane order), so an output may be rounded differently: a weighted sum of at
/// most 49 taps (area at x0.15; bicubic has 16 with weights summing to at most 1.3 in magnitude) is within
/// K·u of the values summed, 49·2^-24 ≈ 2.9e-6, at worst.
const TOLERANCE: f64 = 64.0 * UNIT_ROUNDOFF;

fn tensor(array: &common::Array) -> Tensor {
    let values: Vec<f32> = array.values.iter().map(|&v| v as f32).collect();
    let shape: Vec<i64> = array.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&values).view(shape.as_slice())
}

#[test]
fn every_mode_matches_pytorch_for_sizes_and_scale_factors() {
    let fixture = common::Fixture::open("interpolate.safetensors");
    let input = tensor(&fixture.array("input"));
    let cases = fixture.cases();
    assert_eq!(cases.len(), 28);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mode: Mode = serde_json::from_value(case["mode"].clone()).unwrap();
        let target = match case["scale"].as_f64() {
            Some(scale) => Target::Scale(scale),
            None => Target::Size { height: case["height"].as_i64().unwrap(), width: case["width"].as_i64().unwrap() },
        };
        let ours = interpolate(&input, target, mode).unwrap();
        let reference = tensor(&fixture.array(name));
        assert_eq!(ours.size(), reference.size(), "{name}");
        let worst = (ours - reference).abs().max().double_value(&[]);
        assert!(worst <= TOLERANCE, "{name}: max |difference| {worst:e}");
    }
}

#[test]
fn bad_inputs_are_errors() {
    let image = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    assert_eq!(interpolate(&image, Target::Scale(0.0), Mode::Area).unwrap_err(), InterpolateError::Scale(0.0));
    assert!(matches!(
        interpolate(&image, Target::Scale(0.1), Mode::Bilinear),
        Err(InterpolateError::EmptyOutput { .. })
    ));
    let flat = Tensor::zeros([8, 8], (Kind::Float, Device::Cpu));
    assert!(matches!(interpolate(&flat, Target::Scale(2.0), Mode::Nearest), Err(InterpolateError::Shape(_))));
}

//! `imresize` against basicsr 1.4.2's `imresize` (`basicsr/utils/matlab_functions.py`) on float inputs.
//! Fixtures: tools/reference/make_metric_fixtures.py. basicsr computes in f32: agreement is ~1e-7 on integer
//! scales and up to 1.7e-6 on x0.75.

use safetensors::SafeTensors;
use sana_sr_core::compare::UNIT_ROUNDOFF;
use sana_sr_data::resize::matlab::{imresize, imresize_hwc, imresize_to, output_size, Target};
use sana_sr_data::Image;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/imresize/imresize.safetensors");
/// Largest absolute difference on values in [0, 1]. Ours is plain Rust (the same bits on any CPU); basicsr's
/// f32 rounds its kernel weights and sums at most 7 taps per pass (x0.75), |weights| summing to at most 1.2,
/// over two passes: within about 2·(7 + 7)·1.2 roundings of u = 2^-24, ~34u ≈ 2e-6 at worst.
const TOLERANCE: f64 = 64.0 * UNIT_ROUNDOFF;

struct Case {
    name: String,
    target: Target,
    input: Image,
    expected: Image,
}

fn image(tensors: &SafeTensors, name: &str) -> Image {
    let view = tensors.tensor(name).unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    let shape = view.shape();
    let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    Image::new(shape[1], shape[0], shape[2], data)
}

fn cases() -> Vec<Case> {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut cases: Vec<Case> = metadata
        .metadata()
        .as_ref()
        .unwrap()
        .iter()
        .map(|(name, target)| {
            let target: serde_json::Value = serde_json::from_str(target).unwrap();
            let target = match target.get("scale") {
                Some(scale) => Target::Scale(scale.as_f64().unwrap()),
                None => Target::Size {
                    height: target["height"].as_u64().unwrap() as usize,
                    width: target["width"].as_u64().unwrap() as usize,
                },
            };
            Case {
                name: name.clone(),
                target,
                input: image(&tensors, &format!("{name}.input")),
                expected: image(&tensors, &format!("{name}.output")),
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(cases.len(), 8, "fixture cases");
    cases
}

fn max_error(got: impl Iterator<Item = f64>, expected: &Image) -> f64 {
    let mut count = 0;
    let max =
        got.zip(&expected.data).map(|(g, &e)| (g - f64::from(e)).abs()).inspect(|_| count += 1).fold(0.0, f64::max);
    assert_eq!(count, expected.data.len(), "output length");
    max
}

#[test]
fn matches_basicsr_on_f32_images() {
    for case in cases() {
        let out = match case.target {
            Target::Scale(scale) => imresize(&case.input, scale).unwrap(),
            Target::Size { height, width } => imresize_to(&case.input, height, width).unwrap(),
        };
        assert_eq!(
            (out.height, out.width, out.channels),
            (case.expected.height, case.expected.width, case.expected.channels),
            "{}",
            case.name
        );
        let err = max_error(out.data.iter().map(|&v| f64::from(v)), &case.expected);
        println!("{:<20} f32 max |err| = {err:.3e}", case.name);
        assert!(err <= TOLERANCE, "{}: max |err| {err:e}", case.name);
    }
}

#[test]
fn matches_basicsr_on_f64_buffers() {
    for case in cases() {
        let input: Vec<f64> = case.input.data.iter().map(|&v| f64::from(v)).collect();
        let (h, w, c) = (case.input.height, case.input.width, case.input.channels);
        let out = imresize_hwc(&input, h, w, c, case.target).unwrap();
        assert_eq!(output_size(h, w, case.target).unwrap(), (case.expected.height, case.expected.width));
        let err = max_error(out.into_iter(), &case.expected);
        println!("{:<20} f64 max |err| = {err:.3e}", case.name);
        assert!(err <= TOLERANCE, "{}: max |err| {err:e}", case.name);
    }
}

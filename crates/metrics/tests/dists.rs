//! DISTS: loading, errors and invariants on random weights written here, and parity against the PyPI
//! `DISTS_pytorch` 0.1 package when its fixtures are supplied.
//!
//! The parity fixtures (tools/reference/make_dists_fixtures.py: a random, seeded VGG16 trunk in f16 with the
//! wheel's `alpha`/`beta`) are ~29 MB, too big to commit, so `matches_the_reference_package` runs only when
//! `SANA_SR_DISTS_FIXTURE` names the folder the script wrote, and otherwise says that it skipped. Neither weight
//! set is the ImageNet trunk: no distance here is a DISTS score of anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::{manual_seed, Device, Kind, Tensor};
use sana_sr_data::{tensor::to_image, Image};
use sana_sr_metrics::dists::checkpoint_layout;
use sana_sr_metrics::{Dists, DistsError, MetricError};
use sana_sr_model::checkpoint::{read_tensors, CheckpointError};

/// Absolute difference of the distance. Features pass thirteen f32 convolutions (sums of K <= 512·9 products,
/// ~sqrt(K)·u = 4e-6 relative each, u = 2^-24, in whatever order the CPU's kernels sum); the distance is one
/// minus a weighted mean of SSIM-like ratios of those features' statistics, each in [-1, 1], so its rounding is
/// relative to 1: ~1e-6 if the thirteen layers' errors do not cancel, which they mostly do.
const TOLERANCE: f64 = 1e-6;
/// Identical images: the texture term's variance and covariance are computed by different formulas (as in the
/// reference), so the distance is 0 only up to f32 rounding.
const SELF_DISTANCE: f64 = 1e-6;
/// The entries of `DISTS().state_dict()` that are constants, not weights; the loader must accept them.
const BUFFERS: [(&str, [i64; 4]); 6] = [
    ("mean", [1, 3, 1, 1]),
    ("std", [1, 3, 1, 1]),
    ("stage2.4.filter", [64, 1, 3, 3]),
    ("stage3.9.filter", [128, 1, 3, 3]),
    ("stage4.16.filter", [256, 1, 3, 3]),
    ("stage5.23.filter", [512, 1, 3, 3]),
];

/// A seeded random weights file of the documented layout plus the reference's buffers (garbage values: they
/// must be ignored), in f16, optionally without one key.
fn random_weights(dir: &Path, without: Option<&str>) -> PathBuf {
    manual_seed(7);
    let mut tensors: Vec<(String, Tensor)> = checkpoint_layout()
        .into_iter()
        .map(|(key, shape)| {
            let value = match shape.len() {
                // He-scaled convolution kernels keep the activations from vanishing through the thirteen layers.
                4 if key.ends_with(".weight") => {
                    Tensor::randn(&shape, (Kind::Float, Device::Cpu)) * (2.0 / (shape[1] * 9) as f64).sqrt()
                }
                1 => Tensor::randn(&shape, (Kind::Float, Device::Cpu)) * 0.05,
                _ => Tensor::rand(&shape, (Kind::Float, Device::Cpu)) + 0.5, // alpha, beta: positive
            };
            (key, value)
        })
        .collect();
    tensors.extend(
        BUFFERS.iter().map(|(key, shape)| (key.to_string(), Tensor::full(shape, -3.0, (Kind::Float, Device::Cpu)))),
    );
    tensors.retain(|(key, _)| Some(key.as_str()) != without);
    let tensors: Vec<_> = tensors.into_iter().map(|(key, t)| (key, t.to_kind(Kind::Half))).collect();
    let path = dir.join("random_dists.safetensors");
    Tensor::write_safetensors(&tensors, &path).unwrap();
    path
}

/// A smooth deterministic RGB pattern, and a second one differing from it by a finer pattern.
fn image_pair(width: usize, height: usize) -> (Image, Image) {
    let pattern = |detail: f32| {
        let mut data = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                for c in 0..3 {
                    let (x, y, c) = (x as f32, y as f32, c as f32);
                    let base = 0.5 + 0.3 * (0.21 * x + 0.13 * y + c).sin() * (0.07 * y - 0.4 * c).cos();
                    data.push((base + detail * (1.7 * x * (c + 1.0) + 2.3 * y + 1.0).sin()).clamp(0.0, 1.0));
                }
            }
        }
        Image::new(width, height, 3, data)
    };
    (pattern(0.0), pattern(0.1))
}

#[test]
fn matches_the_reference_package() {
    let Some(dir) = std::env::var_os("SANA_SR_DISTS_FIXTURE").map(PathBuf::from) else {
        println!("skipped: set SANA_SR_DISTS_FIXTURE to the folder of tools/reference/make_dists_fixtures.py");
        return;
    };
    let dists = Dists::load(&dir.join("weights.safetensors"), Device::Cpu).unwrap();
    let reference: HashMap<String, f64> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let images = read_tensors(&[dir.join("images.safetensors")]).unwrap();
    let image = |key: String| to_image(&images[&key]).unwrap();
    assert_eq!(images.len(), 2 * reference.len());
    let mut max_error = 0.0f64;
    for (name, expected) in &reference {
        let got = dists.distance(&image(format!("{name}.a")), &image(format!("{name}.b"))).unwrap();
        let error = (got - expected).abs();
        println!("{name}: rust {got:.9} reference {expected:.9} |error| {error:.2e}");
        assert!(error <= TOLERANCE, "{name}: {got} vs {expected}");
        max_error = max_error.max(error);
    }
    println!("max |error| {max_error:.2e}");
}

#[test]
fn the_layout_is_vgg16_features_with_alpha_and_beta() {
    let layout = checkpoint_layout();
    assert_eq!(layout.len(), 13 * 2 + 2);
    let count: i64 = layout.iter().map(|(_, shape)| shape.iter().product::<i64>()).sum();
    // torchvision's VGG16 `features` has 14,714,688 parameters; alpha and beta 1475 each.
    assert_eq!(count, 14_714_688 + 2 * 1475);
    assert!(layout.contains(&("stage5.28.weight".to_string(), vec![512, 512, 3, 3])));
    assert!(layout.contains(&("alpha".to_string(), vec![1, 1475, 1, 1])));
}

#[test]
fn identical_images_are_at_distance_zero_and_different_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let dists = Dists::load(&random_weights(dir.path(), None), Device::Cpu).unwrap();
    for (width, height) in [(48, 40), (37, 29), (1, 1)] {
        let (a, b) = image_pair(width, height);
        let same = dists.distance(&a, &a).unwrap();
        let different = dists.distance(&a, &b).unwrap();
        println!("{width}x{height}: d(a, a) {same:.3e}, d(a, b) {different:.6}");
        assert!(same.abs() <= SELF_DISTANCE, "{width}x{height}: d(a, a) = {same}");
        assert!(different > 100.0 * SELF_DISTANCE, "{width}x{height}: d(a, b) = {different}");
    }
}

#[test]
fn the_distance_is_symmetric() {
    let dir = tempfile::tempdir().unwrap();
    let dists = Dists::load(&random_weights(dir.path(), None), Device::Cpu).unwrap();
    let (a, b) = image_pair(45, 33);
    assert_eq!(dists.distance(&a, &b).unwrap(), dists.distance(&b, &a).unwrap());
}

#[test]
fn rejects_images_it_cannot_score() {
    let dir = tempfile::tempdir().unwrap();
    let dists = Dists::load(&random_weights(dir.path(), None), Device::Cpu).unwrap();
    let gray = Image::new(8, 8, 1, vec![0.5; 64]);
    assert!(matches!(dists.distance(&gray, &gray), Err(DistsError::NotRgb(1))));
    let (a, _) = image_pair(8, 6);
    let (b, _) = image_pair(6, 8);
    assert!(matches!(dists.distance(&a, &b), Err(DistsError::Images(MetricError::ShapeMismatch { .. }))));
    let empty = Image::new(0, 4, 3, Vec::new());
    assert!(matches!(dists.distance(&empty, &empty), Err(DistsError::Images(MetricError::TooSmall { .. }))));
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/no_such_dists.safetensors");
    let error = Dists::load(&path, Device::Cpu).err().unwrap();
    assert!(matches!(error, DistsError::Checkpoint(CheckpointError::Io { .. })));
    assert!(error.to_string().contains("no_such_dists.safetensors"), "{error}");
}

#[test]
fn a_missing_weight_is_the_checkpoint_key_error() {
    let dir = tempfile::tempdir().unwrap();
    match Dists::load(&random_weights(dir.path(), Some("beta")), Device::Cpu).err().unwrap() {
        DistsError::Checkpoint(CheckpointError::Keys { missing, unexpected }) => {
            assert_eq!(missing, ["beta"]);
            assert!(unexpected.is_empty());
        }
        other => panic!("expected the key error, got {other}"),
    }
}

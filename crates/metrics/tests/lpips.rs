//! LPIPS against the PyPI `lpips` 0.1.4 package (fixtures from tools/reference/make_lpips_fixtures.py).
//!
//! The fixture weights are a *random, seeded* AlexNet trunk (the ImageNet weights cannot be downloaded here) with
//! the calibrated `lin` layers of the lpips wheel, stored in f16. The reference distances were computed with the
//! same f16-rounded weights in f32, so they only prove that the computation matches the reference; they are not
//! LPIPS scores of anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::Device;
use sana_sr_data::{tensor::to_image, Image};
use sana_sr_metrics::{Lpips, LpipsError};
use sana_sr_model::checkpoint::{read_tensors, CheckpointError};

/// Absolute difference of the distance. Features pass five f32 convolutions (sums of K <= 64·25 products,
/// ~sqrt(K)·u = 2.4e-6 relative each, u = 2^-24, whatever order the CPU's kernels sum in), then are normalised
/// to unit length; the distance averages `lin`-weighted squared differences of those unit vectors, so its
/// rounding is relative to their scale (~0.1 here), ~1e-6 · 0.1 at worst. Measured at most 2e-8 on every
/// kernel setting (scripts/kernel_matrix.sh).
const TOLERANCE: f64 = 1e-6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lpips")
}

fn weights() -> PathBuf {
    fixtures().join("random_backbone.safetensors")
}

fn image_pairs() -> HashMap<String, (Image, Image)> {
    let images = read_tensors(&[fixtures().join("images.safetensors")]).unwrap();
    let image = |key: String| to_image(&images[&key]).unwrap();
    let names: Vec<String> = images.keys().filter_map(|k| k.strip_suffix(".a")).map(String::from).collect();
    names.into_iter().map(|n| (n.clone(), (image(format!("{n}.a")), image(format!("{n}.b"))))).collect()
}

#[test]
fn matches_the_reference_package() {
    let lpips = Lpips::load(&weights(), Device::Cpu).unwrap();
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    let reference: HashMap<String, f64> = serde_json::from_str(&text).unwrap();
    let pairs = image_pairs();
    assert_eq!(pairs.len(), reference.len());
    let mut max_error = 0.0f64;
    for (name, expected) in &reference {
        let (a, b) = &pairs[name];
        let got = lpips.distance(a, b).unwrap();
        let error = (got - expected).abs();
        println!("{name}: rust {got:.9} reference {expected:.9} |error| {error:.2e}");
        assert!(error <= TOLERANCE, "{name}: {got} vs {expected}");
        max_error = max_error.max(error);
    }
    println!("max |error| {max_error:.2e}");
}

#[test]
fn identical_images_are_at_distance_zero() {
    let lpips = Lpips::load(&weights(), Device::Cpu).unwrap();
    for (a, b) in image_pairs().values() {
        assert_eq!(lpips.distance(a, a).unwrap(), 0.0);
        assert!(lpips.distance(a, b).unwrap() > 0.0);
    }
}

#[test]
fn rejects_images_it_cannot_score() {
    let lpips = Lpips::load(&weights(), Device::Cpu).unwrap();
    let gray = Image::new(40, 40, 1, vec![0.5; 1600]);
    assert!(matches!(lpips.distance(&gray, &gray), Err(LpipsError::NotRgb(1))));
    let small = Image::new(30, 40, 3, vec![0.5; 3600]);
    assert!(matches!(lpips.distance(&small, &small), Err(LpipsError::TooSmall { width: 30, height: 40 })));
    let other = Image::new(40, 30, 3, vec![0.5; 3600]);
    assert!(matches!(lpips.distance(&small, &other), Err(LpipsError::Images(_))));
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let path = fixtures().join("no_such_weights.safetensors");
    let error = Lpips::load(&path, Device::Cpu).err().unwrap();
    assert!(matches!(error, LpipsError::Checkpoint(CheckpointError::Io { .. })));
    assert!(error.to_string().contains("no_such_weights.safetensors"), "{error}");
}

#[test]
fn a_missing_weight_is_the_checkpoint_key_error() {
    let bytes = std::fs::read(weights()).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = file.tensors().into_iter().filter(|(key, _)| key != "lin2.model.1.weight").collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incomplete.safetensors");
    safetensors::serialize_to_file(kept, &None, &path).unwrap();
    match Lpips::load(&path, Device::Cpu).err().unwrap() {
        LpipsError::Checkpoint(CheckpointError::Keys { missing, unexpected }) => {
            assert_eq!(missing, ["lin2.model.1.weight"]);
            assert!(unexpected.is_empty());
        }
        other => panic!("expected the key error, got {other}"),
    }
}

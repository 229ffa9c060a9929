//! Additive noise of the Real-ESRGAN pipeline (basicsr `basicsr/data/degradations.py`,
//! `random_add_gaussian_noise_pt` and `random_add_poisson_noise_pt`, both with `clip=True, rounds=False`).
//!
//! The noise is drawn on the CPU from a ChaCha stream seeded by [`Noise::seed`] (never from torch's global
//! generator), so a pair is the same on every device, thread and run; it is then added on the image's device.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};
use sana_sr_core::Tensor;

use super::DegradeError;

/// Luma weights of torchvision's `rgb_to_grayscale`, which the gray Poisson noise uses.
const GRAY_WEIGHTS: [f32; 3] = [0.2989, 0.587, 0.114];

/// One draw of noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    pub kind: NoiseKind,
    /// One noise field for all channels (`gray_noise`) instead of one per channel.
    pub gray: bool,
    /// Seed of the noise field.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoiseKind {
    /// Gaussian noise of standard deviation `sigma` 8-bit code values.
    Gaussian { sigma: f64 },
    /// Shot noise, `scale` times the Poisson noise of the image at its own number of grey levels.
    Poisson { scale: f64 },
}

/// `clamp(image + noise, 0, 1)` for a `[1, C, H, W]` image in `[0, 1]`.
pub fn add_noise(image: &Tensor, noise: &Noise) -> Result<Tensor, DegradeError> {
    let (n, c, h, w) = image.size4().map_err(|_| DegradeError::Shape(image.size()))?;
    if n != 1 || (noise.gray && c != 3) {
        return Err(DegradeError::Shape(image.size()));
    }
    let (c, plane) = (c as usize, (h * w) as usize);
    let mut rng = ChaCha8Rng::seed_from_u64(noise.seed);
    let field: Vec<f32> = match noise.kind {
        NoiseKind::Gaussian { sigma } => {
            let count = if noise.gray { plane } else { c * plane };
            let sigma = (sigma / 255.0) as f32;
            (0..count)
                .map(|_| {
                    let z: f32 = StandardNormal.sample(&mut rng);
                    sigma * z
                })
                .collect()
        }
        NoiseKind::Poisson { scale } => {
            let samples = to_vec(image)?;
            let source = if noise.gray { gray(&samples, plane) } else { samples };
            poisson_noise(&source, &mut rng).into_iter().map(|x| x * scale as f32).collect()
        }
    };
    let planes = if noise.gray { 1 } else { c as i64 };
    let field = Tensor::from_slice(&field).view([1, planes, h, w]).to_device(image.device()).to_kind(image.kind());
    Ok((image + field).clamp(0.0, 1.0))
}

fn to_vec(image: &Tensor) -> Result<Vec<f32>, DegradeError> {
    crate::tensor::flat_samples(image).map_err(|e| DegradeError::Torch(e.to_string()))
}

/// torchvision `rgb_to_grayscale` of CHW RGB samples.
fn gray(rgb: &[f32], plane: usize) -> Vec<f32> {
    (0..plane).map(|i| (0..3).map(|ch| GRAY_WEIGHTS[ch] * rgb[ch * plane + i]).sum()).collect()
}

/// basicsr `generate_poisson_noise_pt` for one image: the samples are rounded to 8-bit levels, the number
/// of distinct levels rounded up to a power of two `v` sets the photon count, and the noise is
/// `Poisson(x v) / v - x` of the rounded `x`.
fn poisson_noise(samples: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let codes = crate::io::to_u8(samples);
    let mut present = [false; 256];
    codes.iter().for_each(|&code| present[code as usize] = true);
    let distinct = present.iter().filter(|&&p| p).count().max(1);
    let levels = distinct.next_power_of_two() as f64;
    // Only 256 rates occur, one per code value: build each distribution once.
    let rates: Vec<Option<Poisson<f64>>> =
        (0..256).map(|code| Poisson::new(code as f64 / 255.0 * levels).ok()).collect();
    codes
        .iter()
        .map(|&code| {
            let photons = rates[code as usize].as_ref().map_or(0.0, |d| d.sample(rng));
            (photons / levels - code as f64 / 255.0) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::{Device, Kind};

    fn flat(level: f64) -> Tensor {
        Tensor::full([1, 3, 64, 64], level, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn gaussian_noise_has_its_sigma_and_gray_noise_is_shared() {
        let image = flat(0.5);
        let color = Noise { kind: NoiseKind::Gaussian { sigma: 20.0 }, gray: false, seed: 3 };
        let residual = add_noise(&image, &color).unwrap() - &image;
        let std = residual.std(true).double_value(&[]) * 255.0;
        assert!((std - 20.0).abs() < 0.5, "std {std}");
        assert!(residual.mean(Kind::Float).double_value(&[]).abs() < 1e-3);
        let channels_differ = (residual.get(0).get(0) - residual.get(0).get(1)).abs().max().double_value(&[]);
        assert!(channels_differ > 0.01);

        let gray = Noise { gray: true, ..color };
        let residual = add_noise(&image, &gray).unwrap() - &image;
        let channels_differ = (residual.get(0).get(0) - residual.get(0).get(2)).abs().max().double_value(&[]);
        assert_eq!(channels_differ, 0.0);
    }

    #[test]
    fn poisson_noise_variance_follows_the_level_count() {
        // One level (0.5) -> one distinct value -> v = 1: Poisson(0.5) / 1 - 0.5, variance 0.5 (times scale²).
        let image = flat(128.0 / 255.0);
        let noise = Noise { kind: NoiseKind::Poisson { scale: 0.1 }, gray: false, seed: 5 };
        let residual = add_noise(&image, &noise).unwrap() - &image;
        let variance = residual.var(true).double_value(&[]);
        // Clipping at 0 and 1 is never hit: 0.502 + 0.1 * (k - 0.502) stays in [0, 1] for k <= 5.
        let expected = 0.01 * 128.0 / 255.0;
        assert!((variance - expected).abs() / expected < 0.05, "variance {variance} vs {expected}");
    }

    #[test]
    fn poisson_noise_is_zero_on_black_and_output_is_clipped() {
        let black = flat(0.0);
        let noise = Noise { kind: NoiseKind::Poisson { scale: 3.0 }, gray: true, seed: 1 };
        assert_eq!(add_noise(&black, &noise).unwrap().abs().max().double_value(&[]), 0.0);
        let loud = Noise { kind: NoiseKind::Gaussian { sigma: 200.0 }, gray: false, seed: 1 };
        let out = add_noise(&flat(0.9), &loud).unwrap();
        assert!(out.min().double_value(&[]) >= 0.0 && out.max().double_value(&[]) <= 1.0);
    }
}

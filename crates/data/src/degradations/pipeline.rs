//! The order of the Real-ESRGAN degradation (`realesrgan/models/realesrgan_model.py`, `feed_data`), with
//! every random choice drawn up front into [`DegradationParams`] from a caller's seeded RNG.
//!
//! Differences from the reference, on purpose:
//! - every sample draws its own resize scales and modes (the reference draws them once per batch of 12 and
//!   mixes batches through a 180-pair queue to recover diversity); the distribution of a pair is the same;
//! - the degradation acts on the HR crop itself, as OSEDiff does (`dataloaders/realesrgan.py`, where the
//!   USM sharpening of the input is commented out); Real-ESRGAN degrades a USM-sharpened copy of the HR;
//! - JPEG goes through a real encoder, see [`super::jpeg`];
//! - a config may leave some pairs clean (`clean_prob`, 0 in the reference's settings): the HR image's MATLAB
//!   bicubic downscale, the classic benchmarks' LR.

use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sana_sr_core::Tensor;

use super::config::{ConfigError, RealEsrganConfig};
use super::filter::filter2d;
use super::jpeg::jpeg_round_trip;
use super::kernels::{random_blur_kernel, random_final_sinc, uniform, Kernel};
use super::noise::{add_noise, Noise, NoiseKind};
use super::DegradeError;
use crate::resize::interpolate::{interpolate, Mode, Target};
use crate::resize::matlab::imresize_uint8_to;
use crate::tensor::{to_image, to_tensor};

/// The random choices of one degradation stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageParams {
    /// The blur kernel (the second stage blurs only with `second_blur_prob`).
    pub blur: Option<Kernel>,
    /// Resize factor: of the input size in the first stage, of the LR size in the second.
    pub resize_scale: f64,
    pub resize_mode: Mode,
    pub noise: Noise,
    pub jpeg_quality: f64,
}

/// Every random choice of one (HR, LR) pair; [`Degradation::apply`] is a pure function of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DegradationParams {
    pub first: StageParams,
    pub second: StageParams,
    /// Whether the second stage (blur, resize, noise) happens; `second.jpeg_quality` is used either way.
    pub second_order: bool,
    /// The final sinc filter, or none (the reference's identity pulse).
    pub final_sinc: Option<Kernel>,
    /// The mode of the resize to the LR size.
    pub final_mode: Mode,
    /// JPEG after [resize + sinc] (else before); even odds in the reference.
    pub jpeg_last: bool,
    /// The pair is clean: the HR image's MATLAB bicubic downscale, none of the choices above applied.
    pub clean: bool,
}

/// The Real-ESRGAN degradation model of one config.
#[derive(Debug, Clone)]
pub struct Degradation {
    config: RealEsrganConfig,
}

impl Degradation {
    pub fn new(config: RealEsrganConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    pub fn config(&self) -> &RealEsrganConfig {
        &self.config
    }

    /// Draws every random choice, in the reference's order: the dataset's three kernels, then the first
    /// stage, the second stage and the final step of `feed_data`.
    pub fn sample(&self, rng: &mut impl Rng) -> DegradationParams {
        let c = &self.config;
        let kernel1 = random_blur_kernel(rng, &c.kernel_ranges());
        let kernel2 = random_blur_kernel(rng, &c.kernel_ranges2());
        let final_sinc = random_final_sinc(rng, c.final_sinc_prob, c.blur_kernel_size.max(c.blur_kernel_size2));

        let first = StageParams {
            blur: Some(kernel1),
            resize_scale: random_scale(rng, c.resize_prob, c.resize_range),
            resize_mode: random_mode(rng),
            noise: random_noise(rng, c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range, c.gray_noise_prob),
            jpeg_quality: uniform(rng, c.jpeg_range),
        };
        let second_blur = rng.gen::<f64>() < c.second_blur_prob;
        let second = StageParams {
            blur: second_blur.then_some(kernel2),
            resize_scale: random_scale(rng, c.resize_prob2, c.resize_range2),
            resize_mode: random_mode(rng),
            noise: random_noise(
                rng,
                c.gaussian_noise_prob2,
                c.noise_range2,
                c.poisson_scale_range2,
                c.gray_noise_prob2,
            ),
            jpeg_quality: uniform(rng, c.jpeg_range2),
        };
        let jpeg_last = rng.gen::<f64>() < 0.5;
        let final_mode = random_mode(rng);
        // Drawn last, so configs without a second-order choice keep the streams they always had.
        let second_order = rng.gen::<f64>() < c.second_order_prob;
        // Drawn only where a config asks for clean pairs, so the others keep their streams too.
        let clean = c.clean_prob > 0.0 && rng.gen::<f64>() < c.clean_prob;
        DegradationParams { first, second, second_order, final_sinc, final_mode, jpeg_last, clean }
    }

    /// Degrades a `[1, 3, H, W]` HR image in `[0, 1]` (on any device) into its `[1, 3, H/s, W/s]` LR image,
    /// quantised to 8-bit levels as the reference's last step does.
    pub fn apply(&self, hr: &Tensor, p: &DegradationParams) -> Result<Tensor, DegradeError> {
        let (n, c, h, w) = hr.size4().map_err(|_| DegradeError::Shape(hr.size()))?;
        if n != 1 || c != 3 {
            return Err(DegradeError::Shape(hr.size()));
        }
        let min = self.min_hr_size();
        if h < min || w < min {
            let what = format!("this degradation config (at least {min}x{min} pixels)");
            return Err(DegradeError::TooSmall { height: h, width: w, what });
        }
        let scale = self.config.scale as f64;
        let lr_height = h / self.config.scale as i64;
        let lr_width = w / self.config.scale as i64;
        if p.clean {
            // MATLAB's `uint8` path, rounded between the passes: the benchmarks' LR images bit for bit.
            let image = to_image(hr).map_err(|e| DegradeError::Torch(e.to_string()))?;
            let lr = imresize_uint8_to(&image, lr_height as usize, lr_width as usize)?;
            return Ok(to_tensor(&lr, hr.device()));
        }

        // The first degradation.
        let mut out = match &p.first.blur {
            Some(kernel) => filter2d(hr, kernel)?,
            None => hr.shallow_clone(),
        };
        out = interpolate(&out, Target::Scale(p.first.resize_scale), p.first.resize_mode)?;
        out = add_noise(&out, &p.first.noise)?;
        out = jpeg_round_trip(&out.clamp(0.0, 1.0), p.first.jpeg_quality)?;

        // The second degradation; its resize is relative to the LR size (`int(ori_h / scale * factor)`).
        if p.second_order {
            if let Some(kernel) = &p.second.blur {
                out = filter2d(&out, kernel)?;
            }
            let size = |length: i64| ((length as f64 / scale * p.second.resize_scale) as i64).max(1);
            out = interpolate(&out, Target::Size { height: size(h), width: size(w) }, p.second.resize_mode)?;
            out = add_noise(&out, &p.second.noise)?;
        }

        // [resize to the LR size + sinc] and JPEG, in either order.
        let lr_size = Target::Size { height: lr_height, width: lr_width };
        let resize_and_sinc = |x: &Tensor| -> Result<Tensor, DegradeError> {
            let resized = interpolate(x, lr_size, p.final_mode)?;
            match &p.final_sinc {
                Some(kernel) => filter2d(&resized, kernel),
                None => Ok(resized),
            }
        };
        out = if p.jpeg_last {
            jpeg_round_trip(&resize_and_sinc(&out)?.clamp(0.0, 1.0), p.second.jpeg_quality)?
        } else {
            resize_and_sinc(&jpeg_round_trip(&out.clamp(0.0, 1.0), p.second.jpeg_quality)?)?
        };
        Ok((out * 255.0).round().clamp(0.0, 255.0) / 255.0)
    }

    /// Draws a degradation and applies it.
    pub fn degrade(&self, hr: &Tensor, rng: &mut impl Rng) -> Result<Tensor, DegradeError> {
        self.apply(hr, &self.sample(rng))
    }

    /// The smallest HR side every draw of this config can degrade: the blur kernels and the final sinc
    /// reflect-pad by half their size, which needs a larger image, and the smallest second-stage resize
    /// must keep a pixel (74 for the x4plus config, set by the second blur after a 0.15x first resize).
    pub fn min_hr_size(&self) -> i64 {
        let c = &self.config;
        let scale = c.scale as f64;
        let fits = |side: i64| {
            let half = |size: usize| (size / 2) as i64;
            let smallest_first = (side as f64 * c.resize_range[0]).floor() as i64;
            side > half(c.blur_kernel_size)
                && smallest_first > half(c.blur_kernel_size2)
                && (side as f64 / scale * c.resize_range2[0]) as i64 >= 1
                && (c.final_sinc_prob == 0.0
                    || side / c.scale as i64 > half(c.blur_kernel_size.max(c.blur_kernel_size2)))
        };
        (1..).find(|&side| fits(side)).expect("a large enough side exists for a validated config")
    }
}

/// `random.choices(['up', 'down', 'keep'], odds)`, then the scale: up in [1, max), down in [min, 1).
fn random_scale(rng: &mut impl Rng, odds: [f64; 3], [low, high]: [f64; 2]) -> f64 {
    match WeightedIndex::new(odds).expect("validated resize odds").sample(rng) {
        0 => uniform(rng, [1.0, high]),
        1 => uniform(rng, [low, 1.0]),
        _ => 1.0,
    }
}

/// `random.choice(['area', 'bilinear', 'bicubic'])`.
fn random_mode(rng: &mut impl Rng) -> Mode {
    Mode::REAL_ESRGAN[rng.gen_range(0..Mode::REAL_ESRGAN.len())]
}

/// Gaussian noise with `gaussian_prob` (σ uniform in `sigma_range`), else Poisson (scale uniform in
/// `poisson_range`); gray with `gray_prob`.
fn random_noise(
    rng: &mut impl Rng,
    gaussian_prob: f64,
    sigma_range: [f64; 2],
    poisson_range: [f64; 2],
    gray_prob: f64,
) -> Noise {
    let kind = if rng.gen::<f64>() < gaussian_prob {
        NoiseKind::Gaussian { sigma: uniform(rng, sigma_range) }
    } else {
        NoiseKind::Poisson { scale: uniform(rng, poisson_range) }
    };
    Noise { kind, gray: rng.gen::<f64>() < gray_prob, seed: rng.gen() }
}

/// The RNG of pair `index` under `seed`: one ChaCha8 stream per index, so a pair depends on nothing else
/// (not on thread count, timing or the pairs drawn before it).
pub fn pair_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

//! Every probability and range of the Real-ESRGAN degradation model, under the names of
//! `options/train_realesrgan_x4plus.yml` (model options and the `datasets.train` kernel options, flattened;
//! OSEDiff's `dataloaders/params_realesrgan.yml` holds the same values). `Default` is that file;
//! `configs/realesrgan_x4plus.toml` spells it out.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::kernels::{KernelKind, KernelRanges, MIN_KERNEL_SIZE};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealEsrganConfig {
    /// HR size / LR size.
    pub scale: u32,

    // ---- the first degradation ----
    /// Odds of [up, down, keep] for the first random resize.
    pub resize_prob: [f64; 3],
    /// Scale factor range of the first resize: down in [min, 1), up in [1, max).
    pub resize_range: [f64; 2],
    /// Odds of Gaussian (else Poisson) noise.
    pub gaussian_noise_prob: f64,
    /// Gaussian noise σ, in 8-bit code values.
    pub noise_range: [f64; 2],
    /// Poisson noise scale.
    pub poisson_scale_range: [f64; 2],
    /// Odds that the noise is the same in every channel.
    pub gray_noise_prob: f64,
    /// JPEG quality range.
    pub jpeg_range: [f64; 2],

    // ---- the second degradation ----
    /// Odds that the second stage (blur, resize, noise) happens at all: 1 in Real-ESRGAN x4plus, 0.5 in
    /// ResShift's and SinSR's configs. The last step (resize to LR + sinc, JPEG) always happens.
    pub second_order_prob: f64,
    /// Odds that the second stage blurs at all.
    pub second_blur_prob: f64,
    pub resize_prob2: [f64; 3],
    /// Second resize, relative to the LR size (`size / scale * factor`).
    pub resize_range2: [f64; 2],
    pub gaussian_noise_prob2: f64,
    pub noise_range2: [f64; 2],
    pub poisson_scale_range2: [f64; 2],
    pub gray_noise_prob2: f64,
    pub jpeg_range2: [f64; 2],

    // ---- blur kernels of the first stage ----
    /// Largest kernel size: sizes are drawn from the odd numbers 7..=this (the reference hard-codes 7..=21).
    pub blur_kernel_size: usize,
    pub kernel_list: Vec<KernelKind>,
    pub kernel_prob: Vec<f64>,
    /// Odds that the blur is a circular low-pass (sinc) instead.
    pub sinc_prob: f64,
    /// σ range of the Gaussian-family kernels, in pixels.
    pub blur_sigma: [f64; 2],
    /// β range of the generalized Gaussian kernels.
    pub betag_range: [f64; 2],
    /// β range of the plateau kernels.
    pub betap_range: [f64; 2],

    // ---- blur kernels of the second stage ----
    pub blur_kernel_size2: usize,
    pub kernel_list2: Vec<KernelKind>,
    pub kernel_prob2: Vec<f64>,
    pub sinc_prob2: f64,
    pub blur_sigma2: [f64; 2],
    pub betag_range2: [f64; 2],
    pub betap_range2: [f64; 2],

    /// Odds of the final sinc filter (applied with the last resize, at LR size).
    pub final_sinc_prob: f64,

    /// Odds that a pair skips every step above: its LR image is the HR image's MATLAB bicubic downscale,
    /// the classic benchmarks' clean input (0 in Real-ESRGAN's configs, whose model then smooths clean
    /// photos as if they were degraded).
    pub clean_prob: f64,
}

impl Default for RealEsrganConfig {
    fn default() -> Self {
        use KernelKind::*;
        let kinds = vec![Iso, Aniso, GeneralizedIso, GeneralizedAniso, PlateauIso, PlateauAniso];
        let kind_prob = vec![0.45, 0.25, 0.12, 0.03, 0.12, 0.03];
        Self {
            scale: 4,
            resize_prob: [0.2, 0.7, 0.1],
            resize_range: [0.15, 1.5],
            gaussian_noise_prob: 0.5,
            noise_range: [1.0, 30.0],
            poisson_scale_range: [0.05, 3.0],
            gray_noise_prob: 0.4,
            jpeg_range: [30.0, 95.0],
            second_order_prob: 1.0,
            second_blur_prob: 0.8,
            resize_prob2: [0.3, 0.4, 0.3],
            resize_range2: [0.3, 1.2],
            gaussian_noise_prob2: 0.5,
            noise_range2: [1.0, 25.0],
            poisson_scale_range2: [0.05, 2.5],
            gray_noise_prob2: 0.4,
            jpeg_range2: [30.0, 95.0],
            blur_kernel_size: 21,
            kernel_list: kinds.clone(),
            kernel_prob: kind_prob.clone(),
            sinc_prob: 0.1,
            blur_sigma: [0.2, 3.0],
            betag_range: [0.5, 4.0],
            betap_range: [1.0, 2.0],
            blur_kernel_size2: 21,
            kernel_list2: kinds,
            kernel_prob2: kind_prob,
            sinc_prob2: 0.1,
            blur_sigma2: [0.2, 1.5],
            betag_range2: [0.5, 4.0],
            betap_range2: [1.0, 2.0],
            final_sinc_prob: 0.8,
            clean_prob: 0.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read degradation config `{path}`: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("degradation config `{path}` is not valid TOML for this struct: {source}")]
    Parse { path: std::path::PathBuf, source: toml::de::Error },
    #[error("degradation config: {0}")]
    Invalid(String),
}

impl RealEsrganConfig {
    /// Reads and validates a TOML config; absent fields take the x4plus defaults.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text =
            sana_sr_core::fs::read_text(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that probabilities are probabilities and ranges are ordered, so sampling cannot fail later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(what));
        if self.scale == 0 {
            return invalid("scale must be at least 1".into());
        }
        let probabilities = [
            ("gaussian_noise_prob", self.gaussian_noise_prob),
            ("gray_noise_prob", self.gray_noise_prob),
            ("second_order_prob", self.second_order_prob),
            ("second_blur_prob", self.second_blur_prob),
            ("gaussian_noise_prob2", self.gaussian_noise_prob2),
            ("gray_noise_prob2", self.gray_noise_prob2),
            ("sinc_prob", self.sinc_prob),
            ("sinc_prob2", self.sinc_prob2),
            ("final_sinc_prob", self.final_sinc_prob),
            ("clean_prob", self.clean_prob),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return invalid(format!("{name} = {p} is not a probability"));
            }
        }
        for (name, odds) in [("resize_prob", &self.resize_prob[..]), ("resize_prob2", &self.resize_prob2[..])] {
            check_odds(name, odds)?;
        }
        let ranges = [
            ("resize_range", self.resize_range),
            ("noise_range", self.noise_range),
            ("poisson_scale_range", self.poisson_scale_range),
            ("jpeg_range", self.jpeg_range),
            ("resize_range2", self.resize_range2),
            ("noise_range2", self.noise_range2),
            ("poisson_scale_range2", self.poisson_scale_range2),
            ("jpeg_range2", self.jpeg_range2),
            ("blur_sigma", self.blur_sigma),
            ("blur_sigma2", self.blur_sigma2),
            ("betag_range", self.betag_range),
            ("betag_range2", self.betag_range2),
            ("betap_range", self.betap_range),
            ("betap_range2", self.betap_range2),
        ];
        for (name, [low, high]) in ranges {
            if !(low.is_finite() && high.is_finite() && low <= high && low >= 0.0) {
                return invalid(format!("{name} = [{low}, {high}] is not an ordered non-negative range"));
            }
        }
        for (name, [low, high]) in [("resize_range", self.resize_range), ("resize_range2", self.resize_range2)] {
            if low <= 0.0 || low > 1.0 || high < 1.0 {
                return invalid(format!("{name} = [{low}, {high}] must straddle 1 and stay positive"));
            }
        }
        for (name, [low, high]) in [("jpeg_range", self.jpeg_range), ("jpeg_range2", self.jpeg_range2)] {
            if low < 1.0 || high > 100.0 {
                return invalid(format!("{name} = [{low}, {high}] is not within JPEG quality 1..=100"));
            }
        }
        for (name, [low, _]) in [("blur_sigma", self.blur_sigma), ("blur_sigma2", self.blur_sigma2)] {
            if low <= 0.0 {
                return invalid(format!("{name} must be positive"));
            }
        }
        let kernels = [
            ("kernel_list", self.blur_kernel_size, &self.kernel_list, &self.kernel_prob),
            ("kernel_list2", self.blur_kernel_size2, &self.kernel_list2, &self.kernel_prob2),
        ];
        for (name, size, kinds, odds) in kernels {
            if size < MIN_KERNEL_SIZE || size % 2 == 0 {
                return invalid(format!(
                    "the kernel size of {name} must be odd and at least {MIN_KERNEL_SIZE}, got {size}"
                ));
            }
            if kinds.len() != odds.len() {
                return invalid(format!("{name} has {} kinds but {} probabilities", kinds.len(), odds.len()));
            }
            check_odds(name, odds)?;
        }
        Ok(())
    }

    /// The first stage's kernel ranges.
    pub fn kernel_ranges(&self) -> KernelRanges<'_> {
        KernelRanges {
            max_size: self.blur_kernel_size,
            kinds: &self.kernel_list,
            kind_prob: &self.kernel_prob,
            sinc_prob: self.sinc_prob,
            sigma: self.blur_sigma,
            betag_range: self.betag_range,
            betap_range: self.betap_range,
        }
    }

    /// The second stage's kernel ranges.
    pub fn kernel_ranges2(&self) -> KernelRanges<'_> {
        KernelRanges {
            max_size: self.blur_kernel_size2,
            kinds: &self.kernel_list2,
            kind_prob: &self.kernel_prob2,
            sinc_prob: self.sinc_prob2,
            sigma: self.blur_sigma2,
            betag_range: self.betag_range2,
            betap_range: self.betap_range2,
        }
    }
}

/// Relative odds: non-negative, finite, not all zero (they need not sum to 1, as in `random.choices`).
fn check_odds(name: &str, odds: &[f64]) -> Result<(), ConfigError> {
    if odds.is_empty() || odds.iter().any(|p| !p.is_finite() || *p < 0.0) || odds.iter().sum::<f64>() <= 0.0 {
        return Err(ConfigError::Invalid(format!("{name} odds {odds:?} must be non-negative and not all zero")));
    }
    Ok(())
}

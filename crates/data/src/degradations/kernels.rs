//! The blur kernels of Real-ESRGAN (basicsr `basicsr/data/degradations.py`) and their random draw
//! (`realesrgan/data/realesrgan_dataset.py`, `__getitem__`).
//!
//! Every kernel lives on a `size x size` grid centred on 0 (odd sizes), is computed in `f64` and normalised
//! to sum 1. The Gaussian-family kernels are functions of the quadratic form `q = x^T Σ^-1 x`, with
//! `Σ = R(θ) diag(σx², σy²) R(θ)^T` (isotropic: `σy = σx`, `θ = 0`):
//! - Gaussian: `exp(-q / 2)`;
//! - generalized Gaussian: `exp(-q^β / 2)` (β = 1 is the Gaussian; β < 1 heavy tails, β > 1 flatter top);
//! - plateau: `1 / (1 + q^β)`;
//! - circular low-pass ("sinc"): `ωc J1(ωc r) / (2π r)`, `ωc² / (4π)` at `r = 0`, the ideal low-pass of cut-off
//!   `ωc` radians a sample, cut to the grid (hence its ringing: it mimics over-sharpened, ringing images).

use std::f64::consts::PI;

use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A square, odd-sized filter kernel, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub size: usize,
    pub weights: Vec<f64>,
}

impl Kernel {
    fn from_fn(size: usize, f: impl Fn(f64, f64) -> f64) -> Self {
        assert!(size % 2 == 1, "kernel size must be odd, got {size}");
        let centre = (size / 2) as f64;
        let mut weights = Vec::with_capacity(size * size);
        for row in 0..size {
            for col in 0..size {
                weights.push(f(col as f64 - centre, row as f64 - centre));
            }
        }
        let mut kernel = Self { size, weights };
        kernel.normalise();
        kernel
    }

    fn normalise(&mut self) {
        let sum: f64 = self.weights.iter().sum();
        self.weights.iter_mut().for_each(|w| *w /= sum);
    }

    /// The kernel zero-padded to `size x size` (Real-ESRGAN pads every kernel to 21 so a batch stacks).
    pub fn padded_to(&self, size: usize) -> Self {
        if size <= self.size {
            return self.clone();
        }
        let pad = (size - self.size) / 2;
        let mut weights = vec![0.0; size * size];
        for row in 0..self.size {
            let start = (row + pad) * size + pad;
            weights[start..start + self.size].copy_from_slice(&self.weights[row * self.size..(row + 1) * self.size]);
        }
        Self { size, weights }
    }

    /// The identity filter (basicsr's "pulse tensor": convolving with it changes nothing). The pipeline skips
    /// a filter instead of convolving with this; tests use it as a known kernel.
    #[cfg(test)]
    pub fn pulse(size: usize) -> Self {
        let mut weights = vec![0.0; size * size];
        weights[size * size / 2] = 1.0;
        Self { size, weights }
    }
}

/// The shape of a blur kernel, named as in basicsr's `kernel_list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelKind {
    Iso,
    Aniso,
    GeneralizedIso,
    GeneralizedAniso,
    PlateauIso,
    PlateauAniso,
}

impl KernelKind {
    pub fn is_isotropic(self) -> bool {
        matches!(self, Self::Iso | Self::GeneralizedIso | Self::PlateauIso)
    }
}

/// The parameters of one Gaussian-family kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlurParams {
    pub kind: KernelKind,
    pub size: usize,
    pub sigma_x: f64,
    /// Ignored by the isotropic kinds.
    pub sigma_y: f64,
    /// Rotation in radians; ignored by the isotropic kinds.
    pub theta: f64,
    /// Shape of the generalized Gaussian and plateau kernels; ignored by the Gaussian.
    pub beta: f64,
}

/// A Gaussian-family kernel: basicsr `bivariate_Gaussian`, `bivariate_generalized_Gaussian`,
/// `bivariate_plateau`.
pub fn blur_kernel(p: &BlurParams) -> Kernel {
    let (sigma_y, theta) = if p.kind.is_isotropic() { (p.sigma_x, 0.0) } else { (p.sigma_y, p.theta) };
    let (sin, cos) = theta.sin_cos();
    // x^T Σ^-1 x with Σ = R diag(σx², σy²) R^T is |diag(1/σx, 1/σy) R^T x|².
    let quadratic = |x: f64, y: f64| {
        let u = (cos * x + sin * y) / p.sigma_x;
        let v = (-sin * x + cos * y) / sigma_y;
        u * u + v * v
    };
    let beta = p.beta;
    match p.kind {
        KernelKind::Iso | KernelKind::Aniso => Kernel::from_fn(p.size, |x, y| (-0.5 * quadratic(x, y)).exp()),
        KernelKind::GeneralizedIso | KernelKind::GeneralizedAniso => {
            Kernel::from_fn(p.size, |x, y| (-0.5 * quadratic(x, y).powf(beta)).exp())
        }
        KernelKind::PlateauIso | KernelKind::PlateauAniso => {
            Kernel::from_fn(p.size, |x, y| 1.0 / (quadratic(x, y).powf(beta) + 1.0))
        }
    }
}

/// basicsr `circular_lowpass_kernel(cutoff, kernel_size)`: the 2-D sinc of cut-off `cutoff` radians.
pub fn circular_lowpass_kernel(cutoff: f64, size: usize) -> Kernel {
    Kernel::from_fn(size, |x, y| {
        let r = x.hypot(y);
        if r == 0.0 {
            cutoff * cutoff / (4.0 * PI)
        } else {
            cutoff * libm::j1(cutoff * r) / (2.0 * PI * r)
        }
    })
}

/// The ranges one blur kernel is drawn from (one degradation stage's share of the config).
#[derive(Debug, Clone, Copy)]
pub struct KernelRanges<'a> {
    /// Largest kernel size; sizes are drawn from the odd numbers 7..=`max_size` and padded to `max_size`.
    pub max_size: usize,
    pub kinds: &'a [KernelKind],
    pub kind_prob: &'a [f64],
    pub sinc_prob: f64,
    pub sigma: [f64; 2],
    pub betag_range: [f64; 2],
    pub betap_range: [f64; 2],
}

/// The smallest kernel size Real-ESRGAN draws (`kernel_range = [2 * v + 1 for v in range(3, 11)]`).
pub const MIN_KERNEL_SIZE: usize = 7;

/// An odd size in `7..=max_size`, uniformly.
fn random_size(rng: &mut impl Rng, max_size: usize) -> usize {
    2 * rng.gen_range(MIN_KERNEL_SIZE / 2..=max_size / 2) + 1
}

/// `np.random.uniform(low, high)`.
pub(crate) fn uniform(rng: &mut impl Rng, [low, high]: [f64; 2]) -> f64 {
    low + (high - low) * rng.gen::<f64>()
}

/// One stage's blur kernel, drawn as `RealESRGANDataset.__getitem__` does: with `sinc_prob` a circular
/// low-pass (cut-off in [π/3, π] below size 13, else [π/5, π], so small kernels do not ring too hard),
/// otherwise a Gaussian-family kernel of a kind drawn by `kind_prob` (`random_mixed_kernels`); padded to
/// `max_size`.
pub fn random_blur_kernel(rng: &mut impl Rng, ranges: &KernelRanges) -> Kernel {
    let size = random_size(rng, ranges.max_size);
    let kernel = if rng.gen::<f64>() < ranges.sinc_prob {
        let low = if size < 13 { PI / 3.0 } else { PI / 5.0 };
        circular_lowpass_kernel(uniform(rng, [low, PI]), size)
    } else {
        let kind = ranges.kinds[WeightedIndex::new(ranges.kind_prob).expect("validated kernel_prob").sample(rng)];
        blur_kernel(&random_blur_params(rng, kind, size, ranges))
    };
    kernel.padded_to(ranges.max_size)
}

/// basicsr `random_bivariate_*`: σx (and for anisotropic kinds σy, θ ∈ [-π, π]) uniform; β for the
/// generalized and plateau kinds uniform below or above 1 with equal odds (basicsr's own split, which
/// assumes the range straddles 1).
fn random_blur_params(rng: &mut impl Rng, kind: KernelKind, size: usize, ranges: &KernelRanges) -> BlurParams {
    let sigma_x = uniform(rng, ranges.sigma);
    let (sigma_y, theta) =
        if kind.is_isotropic() { (sigma_x, 0.0) } else { (uniform(rng, ranges.sigma), uniform(rng, [-PI, PI])) };
    let beta_range = match kind {
        KernelKind::Iso | KernelKind::Aniso => None,
        KernelKind::GeneralizedIso | KernelKind::GeneralizedAniso => Some(ranges.betag_range),
        KernelKind::PlateauIso | KernelKind::PlateauAniso => Some(ranges.betap_range),
    };
    let beta = match beta_range {
        None => 1.0,
        Some([low, _]) if rng.gen::<f64>() < 0.5 => uniform(rng, [low, 1.0]),
        Some([_, high]) => uniform(rng, [1.0, high]),
    };
    BlurParams { kind, size, sigma_x, sigma_y, theta, beta }
}

/// The final sinc filter: with `prob` a circular low-pass of size 7..=`max_size` and cut-off in [π/3, π],
/// padded to `max_size`; otherwise none (the reference's pulse, which is the identity).
pub fn random_final_sinc(rng: &mut impl Rng, prob: f64, max_size: usize) -> Option<Kernel> {
    if rng.gen::<f64>() < prob {
        let size = random_size(rng, max_size);
        Some(circular_lowpass_kernel(uniform(rng, [PI / 3.0, PI]), size).padded_to(max_size))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn padding_keeps_the_kernel_centred() {
        let k = circular_lowpass_kernel(2.0, 7).padded_to(21);
        assert_eq!(k.size, 21);
        assert!((k.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(k.weights[10 * 21 + 10], circular_lowpass_kernel(2.0, 7).weights[3 * 7 + 3]);
        assert_eq!(k.weights[6 * 21 + 6], 0.0);
        assert_eq!(Kernel::pulse(21).weights.iter().sum::<f64>(), 1.0);
    }

    #[test]
    fn random_kernels_have_odd_sizes_in_range_and_sum_to_one() {
        let kinds = [KernelKind::Iso, KernelKind::Aniso, KernelKind::PlateauAniso];
        let ranges = KernelRanges {
            max_size: 21,
            kinds: &kinds,
            kind_prob: &[0.3, 0.3, 0.4],
            sinc_prob: 0.3,
            sigma: [0.2, 3.0],
            betag_range: [0.5, 4.0],
            betap_range: [1.0, 2.0],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut sizes = std::collections::BTreeSet::new();
        for _ in 0..400 {
            sizes.insert(random_size(&mut rng, 21));
            let k = random_blur_kernel(&mut rng, &ranges);
            assert_eq!(k.size, 21);
            assert!((k.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![7, 9, 11, 13, 15, 17, 19, 21]);
    }
}

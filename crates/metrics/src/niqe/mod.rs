//! NIQE (Mittal et al., "Making a 'Completely Blind' Image Quality Analyzer") as basicsr's `calculate_niqe` /
//! `niqe` (`basicsr/metrics/niqe.py`), which reproduces the official MATLAB release:
//! - the image is turned into its MATLAB-style Y (`to_y_channel`), border-cropped and rounded to integers;
//! - it is cut to whole 96x96 blocks (no overlap);
//! - at two scales (the image, then its MATLAB `imresize` by 0.5) the mean-subtracted contrast-normalised
//!   coefficients `(I - mu) / (sigma + 1)` (7x7 Gaussian, replicated edges) of every block give 18 AGGD features;
//! - a Gaussian fitted to the blocks' 36 features is compared with the pristine one:
//!   `sqrt((mu_p - mu)^T pinv((cov_p + cov) / 2) (mu_p - mu))`.
//!
//! The contrast normalisation reproduces basicsr's float32 arithmetic (see [`normalise_contrast`]); the rest is
//! f64.

mod aggd;
mod linalg;
mod pristine;

use crate::plane::{planes, Plane};
use crate::MetricError;
use sana_sr_data::resize::matlab::{imresize_hwc, Target};
use sana_sr_data::Image;

/// The block side of the pristine model (the official recommendation, basicsr's default).
const BLOCK: usize = 96;
const FEATURES_PER_SCALE: usize = 18;
const FEATURES: usize = 2 * FEATURES_PER_SCALE;

/// NIQE of `image` (lower is better), `crop_border` pixels dropped at every edge first. Needs at least two whole
/// 96x96 blocks after the crop.
pub fn niqe(image: &Image, crop_border: usize) -> Result<f64, MetricError> {
    let mut plane = planes(image, crop_border, true)?.remove(0);
    for v in &mut plane.data {
        // `img.round()` in numpy: halves go to even.
        *v = v.round_ties_even();
    }
    let (blocks_w, blocks_h) = (plane.width / BLOCK, plane.height / BLOCK);
    if blocks_w * blocks_h < 2 {
        return Err(MetricError::NiqeTooSmall { width: plane.width, height: plane.height });
    }
    let plane = crop(&plane, 0, 0, blocks_w * BLOCK, blocks_h * BLOCK);
    let half = half_size(&plane);
    let mut features = vec![[f64::NAN; FEATURES]; blocks_w * blocks_h];
    for (scale, image) in [(1, &plane), (2, &half)] {
        let normalised = normalise_contrast(image);
        let side = BLOCK / scale;
        let offset = (scale - 1) * FEATURES_PER_SCALE;
        for (bx, by) in (0..blocks_w).flat_map(|bx| (0..blocks_h).map(move |by| (bx, by))) {
            let block = crop(&normalised, bx * side, by * side, side, side);
            let f = aggd::block_features(&block);
            features[by * blocks_w + bx][offset..offset + FEATURES_PER_SCALE].copy_from_slice(&f);
        }
    }
    quality(&features)
}

fn crop(plane: &Plane, x: usize, y: usize, width: usize, height: usize) -> Plane {
    let data = (y..y + height).flat_map(|row| &plane.row(row)[x..x + width]).copied().collect();
    Plane { width, height, data }
}

/// `imresize(img / 255., scale=0.5) * 255.` of niqe.py: the second scale. basicsr resizes in float32; the last
/// bits of this image feed the f32 cancellation of [`normalise_contrast`], which is what leaves NIQE ~1e-4 from
/// basicsr's (rounding this resize to f32 as well moves individual images either way, not closer on the whole).
fn half_size(plane: &Plane) -> Plane {
    let scaled: Vec<f64> = plane.data.iter().map(|v| v / 255.0).collect();
    let half = imresize_hwc(&scaled, plane.height, plane.width, 1, Target::Scale(0.5))
        .expect("halving a plane of whole 96x96 blocks is a valid resize");
    Plane { width: plane.width / 2, height: plane.height / 2, data: half.into_iter().map(|v| v * 255.0).collect() }
}

/// `(img - mu) / (sigma + 1)` with mu and sigma the local mean and standard deviation under the pristine
/// model's 7x7 window (scipy `convolve(..., mode='nearest')`: edges replicated).
///
/// This step runs in f32, as in basicsr, whose image is float32 here (scipy's `convolve` sums in double and
/// stores float32): `sigma = sqrt(|E[x^2] - mu^2|)` cancels catastrophically on smooth regions, and the f32
/// rounding of that cancellation moves NIQE by ~1e-2 (woman.png: 4.3890 in f32, 4.3978 in f64). The features
/// downstream are insensitive to precision (f64 vs f32: ~1e-8) and are computed in f64.
fn normalise_contrast(plane: &Plane) -> Plane {
    let window = &pristine::model().window;
    let image: Vec<f32> = plane.data.iter().map(|&v| v as f32).collect();
    let as_plane = |data: &[f32]| Plane { data: data.iter().map(|&v| f64::from(v)).collect(), ..*plane };
    let squares: Vec<f32> = image.iter().map(|v| v * v).collect();
    let mu = convolve_nearest(&as_plane(&image), window);
    let mean_square = convolve_nearest(&as_plane(&squares), window);
    let data = image
        .iter()
        .zip(mu.iter().zip(&mean_square))
        .map(|(&v, (&m, &ms))| {
            let (m, ms) = (m as f32, ms as f32);
            f64::from((v - m) / ((ms - m * m).abs().sqrt() + 1.0))
        })
        .collect();
    Plane { data, ..*plane }
}

/// 2-D convolution with a 7x7 kernel, edge pixels replicated outward.
fn convolve_nearest(plane: &Plane, kernel: &[[f64; 7]; 7]) -> Vec<f64> {
    let (w, h) = (plane.width as isize, plane.height as isize);
    let at = |x: isize, y: isize| plane.data[(y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) as usize];
    let mut out = Vec::with_capacity(plane.data.len());
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0.0;
            for (i, kernel_row) in kernel.iter().enumerate() {
                for (j, k) in kernel_row.iter().enumerate() {
                    // Convolution flips the kernel: tap (i, j) reads (y + 3 - i, x + 3 - j).
                    sum += k * at(x + 3 - j as isize, y + 3 - i as isize);
                }
            }
            out.push(sum);
        }
    }
    out
}

/// Eq. 10 of the paper against the pristine model, with numpy's `nanmean` for the mean and the covariance over
/// the blocks whose features are all finite (MATLAB `nancov`).
fn quality(features: &[[f64; FEATURES]]) -> Result<f64, MetricError> {
    let mut mean = [0.0; FEATURES];
    for (k, m) in mean.iter_mut().enumerate() {
        let finite: Vec<f64> = features.iter().map(|f| f[k]).filter(|v| !v.is_nan()).collect();
        *m = finite.iter().sum::<f64>() / finite.len() as f64;
    }
    let complete: Vec<&[f64; FEATURES]> = features.iter().filter(|f| f.iter().all(|v| !v.is_nan())).collect();
    if complete.len() < 2 {
        return Err(MetricError::NiqeUndefined);
    }
    let n = complete.len() as f64;
    let mut complete_mean = [0.0; FEATURES];
    for f in &complete {
        for (m, v) in complete_mean.iter_mut().zip(f.iter()) {
            *m += v / n;
        }
    }
    let model = pristine::model();
    let mut pooled = vec![0.0; FEATURES * FEATURES];
    for i in 0..FEATURES {
        for j in 0..FEATURES {
            let cov: f64 =
                complete.iter().map(|f| (f[i] - complete_mean[i]) * (f[j] - complete_mean[j])).sum::<f64>() / (n - 1.0);
            pooled[i * FEATURES + j] = (model.cov[i * FEATURES + j] + cov) / 2.0;
        }
    }
    let inverse = linalg::symmetric_pinv(&pooled, FEATURES);
    let diff: Vec<f64> = model.mu.iter().zip(&mean).map(|(p, m)| p - m).collect();
    let form: f64 =
        (0..FEATURES).map(|i| diff[i] * (0..FEATURES).map(|j| inverse[i * FEATURES + j] * diff[j]).sum::<f64>()).sum();
    Ok(form.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convolution_replicates_edges() {
        let plane = Plane { width: 3, height: 2, data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] };
        let mut delta = [[0.0; 7]; 7];
        delta[3][4] = 1.0; // reads (x - 1): a shift right with the first column replicated
        assert_eq!(convolve_nearest(&plane, &delta), vec![1.0, 1.0, 2.0, 4.0, 4.0, 5.0]);
    }

    #[test]
    fn too_small_is_an_error() {
        let image = Image::new(150, 100, 1, vec![0.5; 150 * 100]);
        assert_eq!(niqe(&image, 0), Err(MetricError::NiqeTooSmall { width: 150, height: 100 }));
    }
}

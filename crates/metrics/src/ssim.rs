//! SSIM as basicsr's `calculate_ssim` / `_ssim` (`basicsr/metrics/psnr_ssim.py`), itself Wang et al.'s MATLAB
//! `ssim_index`: local statistics under an 11x11 Gaussian window (sigma 1.5, `cv2.getGaussianKernel`), only
//! where the window fits ("valid", basicsr crops 5 pixels of its `filter2D` output), C1 = (0.01 * 255)^2,
//! C2 = (0.03 * 255)^2, the SSIM map averaged per channel and the channels averaged.

use crate::plane::{planes, Plane};
use crate::{check_pair, MetricError};
use sana_sr_data::Image;

const WINDOW: usize = 11;
const SIGMA: f64 = 1.5;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// Mean SSIM of `a` against `b`, `crop_border` pixels dropped at every edge, on the luma if `test_y_channel`.
pub fn ssim(a: &Image, b: &Image, crop_border: usize, test_y_channel: bool) -> Result<f64, MetricError> {
    check_pair(a, b)?;
    let (pa, pb) = (planes(a, crop_border, test_y_channel)?, planes(b, crop_border, test_y_channel)?);
    let (width, height) = (pa[0].width, pa[0].height);
    if width < WINDOW || height < WINDOW {
        return Err(MetricError::TooSmall { metric: "SSIM", min: WINDOW, width, height });
    }
    let kernel = gaussian_kernel();
    let per_channel: Vec<f64> = pa.iter().zip(&pb).map(|(x, y)| ssim_plane(x, y, &kernel)).collect();
    Ok(per_channel.iter().sum::<f64>() / per_channel.len() as f64)
}

/// SSIM on the Y channel, the SR papers' table convention (`test_y_channel=True`).
pub fn ssim_y(a: &Image, b: &Image, crop_border: usize) -> Result<f64, MetricError> {
    ssim(a, b, crop_border, true)
}

/// `cv2.getGaussianKernel(11, 1.5)`: sampled, normalised to sum 1.
fn gaussian_kernel() -> [f64; WINDOW] {
    let centre = (WINDOW / 2) as f64;
    let mut kernel = [0.0; WINDOW];
    for (i, k) in kernel.iter_mut().enumerate() {
        let d = i as f64 - centre;
        *k = (-d * d / (2.0 * SIGMA * SIGMA)).exp();
    }
    let sum: f64 = kernel.iter().sum();
    kernel.map(|k| k / sum)
}

fn ssim_plane(x: &Plane, y: &Plane, kernel: &[f64; WINDOW]) -> f64 {
    let product = |f: fn(f64, f64) -> f64| Plane {
        width: x.width,
        height: x.height,
        data: x.data.iter().zip(&y.data).map(|(&a, &b)| f(a, b)).collect(),
    };
    let mu_x = filter_valid(x, kernel);
    let mu_y = filter_valid(y, kernel);
    let xx = filter_valid(&product(|a, _| a * a), kernel);
    let yy = filter_valid(&product(|_, b| b * b), kernel);
    let xy = filter_valid(&product(|a, b| a * b), kernel);
    let sum: f64 = (0..mu_x.len())
        .map(|i| {
            let (mx, my) = (mu_x[i], mu_y[i]);
            let (var_x, var_y, cov) = (xx[i] - mx * mx, yy[i] - my * my, xy[i] - mx * my);
            ((2.0 * mx * my + C1) * (2.0 * cov + C2)) / ((mx * mx + my * my + C1) * (var_x + var_y + C2))
        })
        .sum();
    sum / mu_x.len() as f64
}

/// The separable window's weighted means where the whole window lies inside the plane, row-major,
/// `(width - 10) x (height - 10)`.
fn filter_valid(plane: &Plane, kernel: &[f64; WINDOW]) -> Vec<f64> {
    let out_width = plane.width - WINDOW + 1;
    let horizontal: Vec<f64> = (0..plane.height)
        .flat_map(|y| {
            let row = plane.row(y);
            (0..out_width).map(move |x| kernel.iter().zip(&row[x..x + WINDOW]).map(|(k, v)| k * v).sum::<f64>())
        })
        .collect();
    (0..plane.height - WINDOW + 1)
        .flat_map(|y| {
            let horizontal = &horizontal;
            (0..out_width).map(move |x| {
                kernel.iter().enumerate().map(|(i, k)| k * horizontal[(y + i) * out_width + x]).sum::<f64>()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_gaussian() {
        let k = gaussian_kernel();
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!((k[5] / k[6] - (1.0 / (2.0 * SIGMA * SIGMA)).exp()).abs() < 1e-12);
    }

    #[test]
    fn identical_images_score_one() {
        let a = Image::new(13, 12, 3, (0..13 * 12 * 3).map(|i| (i % 7) as f32 / 7.0).collect());
        assert!((ssim(&a, &a, 0, false).unwrap() - 1.0).abs() < 1e-12);
        let small = Image::new(10, 12, 1, vec![0.0; 120]);
        assert!(matches!(ssim(&small, &small, 0, false), Err(MetricError::TooSmall { .. })));
    }
}

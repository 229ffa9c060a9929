//! The 18 NIQE features of one block of normalised coefficients: `estimate_aggd_param` and `compute_feature` of
//! basicsr/metrics/niqe.py.

use super::Plane;
use libm::tgamma;
use std::sync::OnceLock;

/// The shape grid the fit searches: `np.arange(0.2, 10.001, 0.001)`, 9801 values.
const GRID_START: f64 = 0.2;
const GRID_STEP: f64 = 0.001;
const GRID_LEN: usize = 9801;

/// `Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))` on the grid, the ratio the moment estimate is matched against.
fn ratio_table() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..GRID_LEN)
            .map(|i| {
                let inv = 1.0 / (GRID_START + i as f64 * GRID_STEP);
                let g2 = tgamma(2.0 * inv);
                g2 * g2 / (tgamma(inv) * tgamma(3.0 * inv))
            })
            .collect()
    })
}

/// Asymmetric generalised Gaussian fit by moment matching: (shape alpha, left scale, right scale).
///
/// A block with no negative (or no positive) values has undefined scales: they come out NaN, as in numpy, and
/// the shape is the first grid value, which is what `np.argmin` returns for an all-NaN distance.
fn fit(values: &[f64]) -> (f64, f64, f64) {
    let (mut left_sq, mut left_n, mut right_sq, mut right_n, mut abs_sum, mut sq_sum) = (0.0, 0, 0.0, 0, 0.0, 0.0);
    for &v in values {
        if v < 0.0 {
            left_sq += v * v;
            left_n += 1;
        } else if v > 0.0 {
            right_sq += v * v;
            right_n += 1;
        }
        abs_sum += v.abs();
        sq_sum += v * v;
    }
    let n = values.len() as f64;
    let left_std = (left_sq / left_n as f64).sqrt();
    let right_std = (right_sq / right_n as f64).sqrt();
    let gamma_hat = left_std / right_std;
    let r_hat = (abs_sum / n).powi(2) / (sq_sum / n);
    let r_hat_norm = r_hat * (gamma_hat.powi(3) + 1.0) * (gamma_hat + 1.0) / (gamma_hat.powi(2) + 1.0).powi(2);
    let best = if r_hat_norm.is_nan() {
        0
    } else {
        // First minimum, as np.argmin.
        let mut best = (0, f64::INFINITY);
        for (i, r) in ratio_table().iter().enumerate() {
            let d = (r - r_hat_norm) * (r - r_hat_norm);
            if d < best.1 {
                best = (i, d);
            }
        }
        best.0
    };
    let alpha = GRID_START + best as f64 * GRID_STEP;
    let spread = (tgamma(1.0 / alpha) / tgamma(3.0 / alpha)).sqrt();
    (alpha, left_std * spread, right_std * spread)
}

/// alpha and mean scale of the coefficients, then for each of the horizontal, vertical and two diagonal
/// neighbour products: alpha, mean (Eq. 8), left and right scales. Neighbours wrap around the block
/// (`np.roll` with shifts (0,1), (1,0), (1,1), (1,-1)).
pub(super) fn block_features(block: &Plane) -> [f64; 18] {
    let mut features = [0.0; 18];
    let (alpha, left, right) = fit(&block.data);
    features[0] = alpha;
    features[1] = (left + right) / 2.0;
    let (w, h) = (block.width, block.height);
    for (k, (dy, dx)) in [(0, 1), (1, 0), (1, 1), (1, w - 1)].into_iter().enumerate() {
        let products: Vec<f64> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (y, x)))
            .map(|(y, x)| block.data[y * w + x] * block.data[((y + h - dy) % h) * w + (x + w - dx) % w])
            .collect();
        let (alpha, left, right) = fit(&products);
        let mean = (right - left) * tgamma(2.0 / alpha) / tgamma(1.0 / alpha);
        features[2 + 4 * k..6 + 4 * k].copy_from_slice(&[alpha, mean, left, right]);
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_samples_fit_shape_two() {
        // A symmetric sample with the moment ratio of a Gaussian (E|x|^2 / E x^2 = 2/pi) is fitted alpha = 2.
        let table = ratio_table();
        let two = ((2.0 - GRID_START) / GRID_STEP).round() as usize;
        assert!((table[two] - 2.0 / std::f64::consts::PI).abs() < 1e-12);
        // +-1 and +-t with t chosen so that mean|x|^2 / mean x^2 = 2/pi.
        let target = 2.0 / std::f64::consts::PI;
        // ((1 + t)/2)^2 / ((1 + t^2)/2) = target  =>  solve the quadratic in t.
        let (a, b, c) = (1.0 - 2.0 * target, 2.0, 1.0 - 2.0 * target);
        let t = (-b - (b * b - 4.0 * a * c).sqrt()) / (2.0 * a);
        let values = [1.0, -1.0, t, -t];
        let (alpha, left, right) = fit(&values);
        assert!((alpha - 2.0).abs() < 1.5e-3, "alpha {alpha}");
        assert!((left - right).abs() < 1e-12);
    }

    #[test]
    fn one_sided_block_has_undefined_scales() {
        let (alpha, left, right) = fit(&[0.5, 1.0, 2.0]);
        assert_eq!(alpha, GRID_START);
        assert!(left.is_nan() && right.is_finite());
    }
}

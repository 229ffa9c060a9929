//! PSNR as basicsr's `calculate_psnr` (`basicsr/metrics/psnr_ssim.py`): one MSE over all cropped pixels and
//! channels on the 255 scale; identical images give infinity.

use crate::plane::planes;
use crate::{check_pair, MetricError};
use sana_sr_data::Image;

/// PSNR in dB of `a` against `b` (order does not matter), `crop_border` pixels dropped at every edge, on the
/// luma if `test_y_channel`.
pub fn psnr(a: &Image, b: &Image, crop_border: usize, test_y_channel: bool) -> Result<f64, MetricError> {
    check_pair(a, b)?;
    let (pa, pb) = (planes(a, crop_border, test_y_channel)?, planes(b, crop_border, test_y_channel)?);
    let count: usize = pa.iter().map(|p| p.data.len()).sum();
    let squared_error: f64 =
        pa.iter().zip(&pb).flat_map(|(x, y)| x.data.iter().zip(&y.data)).map(|(x, y)| (x - y) * (x - y)).sum();
    let mse = squared_error / count as f64;
    Ok(if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0 * 255.0 / mse).log10() })
}

/// PSNR on the Y channel, the SR papers' table convention (`test_y_channel=True`).
pub fn psnr_y(a: &Image, b: &Image, crop_border: usize) -> Result<f64, MetricError> {
    psnr(a, b, crop_border, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mse() {
        let a = Image::new(2, 2, 1, vec![0.0; 4]);
        let b = Image::new(2, 2, 1, vec![1.0 / 255.0, 0.0, 0.0, 0.0]);
        // MSE = 1/4 on the 255 scale.
        let expected = 10.0 * (255.0f64 * 255.0 * 4.0).log10();
        assert!((psnr(&a, &b, 0, false).unwrap() - expected).abs() < 1e-4);
        assert_eq!(psnr(&a, &a, 0, true).unwrap(), f64::INFINITY);
        let c = Image::new(4, 1, 1, vec![0.0; 4]);
        assert!(matches!(psnr(&a, &c, 0, false), Err(MetricError::ShapeMismatch { .. })));
    }
}

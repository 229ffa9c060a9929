//! Images as the f64 planes on the `[0, 255]` scale that basicsr's metrics compute on.

use crate::MetricError;
use sana_sr_data::Image;

/// One channel, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f64>,
}

impl Plane {
    pub fn row(&self, y: usize) -> &[f64] {
        &self.data[y * self.width..(y + 1) * self.width]
    }
}

/// The planes basicsr scores after `img[crop_border:-crop_border, crop_border:-crop_border]`: every channel
/// (`samples * 255`), or with `y_channel` the luma ([`luma`]) of an RGB image (a gray image is its own luma).
pub(crate) fn planes(image: &Image, crop_border: usize, y_channel: bool) -> Result<Vec<Plane>, MetricError> {
    let (width, height) = cropped_size(image, crop_border)?;
    let pixel = |x: usize, y: usize| {
        let start = ((y + crop_border) * image.width + x + crop_border) * image.channels;
        &image.data[start..start + image.channels]
    };
    let pixels = || (0..height).flat_map(move |y| (0..width).map(move |x| pixel(x, y)));
    let plane = |data: Vec<f64>| Plane { width, height, data };
    Ok(match (y_channel, image.channels) {
        (true, 3) => vec![plane(pixels().map(|p| luma(p[0], p[1], p[2])).collect())],
        // basicsr's `to_y_channel` passes a gray image through `/ 255. * 255.` in f32.
        (true, _) => vec![plane(pixels().map(|p| f64::from(p[0] * 255.0)).collect())],
        (false, channels) => {
            (0..channels).map(|c| plane(pixels().map(|p| f64::from(p[c]) * 255.0).collect())).collect()
        }
    })
}

fn cropped_size(image: &Image, crop_border: usize) -> Result<(usize, usize), MetricError> {
    if !matches!(image.channels, 1 | 3) {
        return Err(MetricError::Channels(image.channels));
    }
    let (width, height) = (image.width, image.height);
    if 2 * crop_border >= width || 2 * crop_border >= height {
        return Err(MetricError::CropTooLarge { crop_border, width, height });
    }
    Ok((width - 2 * crop_border, height - 2 * crop_border))
}

/// The Y of MATLAB's `rgb2ycbcr` (BT.601, `[16, 235]`) on the 255 scale, of samples in `[0, 1]`, rounded the
/// way basicsr's `to_y_channel` rounds it: the weighted sum in f64 (`bgr2ycbcr(y_only=True)`), the result
/// divided by 255 and stored as f32, then scaled back by 255 in f32 (`basicsr/metrics/metric_util.py`).
pub(crate) fn luma(r: f32, g: f32, b: f32) -> f64 {
    let y = f64::from(b) * 24.966 + f64::from(g) * 128.553 + f64::from(r) * 65.481 + 16.0;
    f64::from((y / 255.0) as f32 * 255.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_spans_studio_range() {
        assert!((luma(0.0, 0.0, 0.0) - 16.0).abs() < 1e-5);
        assert!((luma(1.0, 1.0, 1.0) - 235.0).abs() < 1e-4);
        // Pure red weighs 65.481 (MATLAB rgb2ycbcr); a BGR mix-up would give 24.966.
        assert!((luma(1.0, 0.0, 0.0) - (16.0 + 65.481)).abs() < 1e-4);
    }

    #[test]
    fn crop_and_channels() {
        let image = Image::new(4, 3, 3, (0..36).map(|i| i as f32 / 255.0).collect());
        let rgb = planes(&image, 1, false).unwrap();
        assert_eq!(rgb.len(), 3);
        assert_eq!((rgb[1].width, rgb[1].height), (2, 1));
        assert!((rgb[1].data[0] - 16.0).abs() < 1e-4 && (rgb[1].data[1] - 19.0).abs() < 1e-4);
        assert_eq!(planes(&image, 1, true).unwrap().len(), 1);
        assert!(matches!(planes(&image, 2, false), Err(MetricError::CropTooLarge { .. })));
        let rgba = Image::new(1, 1, 4, vec![0.0; 4]);
        assert_eq!(planes(&rgba, 0, false), Err(MetricError::Channels(4)));
    }
}

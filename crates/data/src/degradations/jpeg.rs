//! JPEG compression artefacts: a real encode/decode round trip through the `image` crate.
//!
//! Real-ESRGAN uses basicsr's `DiffJPEG` (`basicsr/utils/diffjpeg.py`, non-differentiable mode) instead of
//! cv2/libjpeg. What differs here, and why it is close enough for training data:
//! - quality: DiffJPEG scales the standard IJG tables by the real-valued quality's factor
//!   (`5000 / q` below 50, `200 - 2q` above); the `image` encoder uses the same IJG scaling on an integer
//!   quality, so the drawn quality is rounded (at most half a quality step);
//! - chroma: DiffJPEG (like cv2's default) stores Cb/Cr at half resolution (4:2:0, 2x2 means) and upsamples
//!   them by repetition; the `image` encoder writes 4:4:4. To keep the colour bleeding of real JPEGs, the
//!   chroma is averaged over 2x2 blocks and repeated before encoding ([`subsample_chroma`]), which gives the
//!   same chroma resolution loss; only the chroma quantisation then acts on 8x8 instead of 16x16 pixels;
//! - borders: DiffJPEG zero-pads to a multiple of 16; a real encoder replicates the edge, as here;
//! - output: the decoder returns 8-bit samples (DiffJPEG returns unrounded floats), a difference of at most
//!   half a code value, which the pipeline's final rounding makes moot.

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat};
use sana_sr_core::{Device, Tensor};

use super::DegradeError;
use crate::tensor::{to_image, to_tensor};
use crate::Image;

/// JPEG-compresses a `[1, 3, H, W]` image in `[0, 1]` at `quality` (rounded to an integer in 1..=100).
pub fn jpeg_round_trip(image: &Tensor, quality: f64) -> Result<Tensor, DegradeError> {
    let rgb = to_image(image).map_err(|_| DegradeError::Shape(image.size()))?;
    if rgb.channels != 3 {
        return Err(DegradeError::Shape(image.size()));
    }
    let mut samples = crate::io::to_u8(&rgb.data);
    subsample_chroma(&mut samples, rgb.width, rgb.height);
    let mut encoded = Vec::new();
    let quality = quality.round().clamp(1.0, 100.0) as u8;
    JpegEncoder::new_with_quality(&mut encoded, quality)
        .write_image(&samples, rgb.width as u32, rgb.height as u32, ExtendedColorType::Rgb8)
        .map_err(DegradeError::Jpeg)?;
    let decoded = image::load_from_memory_with_format(&encoded, ImageFormat::Jpeg).map_err(DegradeError::Jpeg)?;
    let data = decoded.to_rgb32f().into_raw();
    let out = Image::new(rgb.width, rgb.height, 3, data);
    Ok(to_tensor(&out, Device::Cpu).to_device(image.device()).to_kind(image.kind()))
}

/// Replaces the chroma of interleaved 8-bit RGB with its 2x2 block means (JPEG's full-range BT.601 YCbCr),
/// keeping each pixel's luma: the resolution loss of 4:2:0 chroma subsampling.
fn subsample_chroma(rgb: &mut [u8], width: usize, height: usize) {
    let ycbcr = |p: &[u8]| {
        let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
        [
            0.299 * r + 0.587 * g + 0.114 * b,
            -0.168736 * r - 0.331264 * g + 0.5 * b,
            0.5 * r - 0.418688 * g - 0.081312 * b,
        ]
    };
    for by in (0..height).step_by(2) {
        for bx in (0..width).step_by(2) {
            let pixels: Vec<usize> = (by..(by + 2).min(height))
                .flat_map(|y| (bx..(bx + 2).min(width)).map(move |x| (y * width + x) * 3))
                .collect();
            let (mut cb, mut cr) = (0.0, 0.0);
            for &i in &pixels {
                let [_, b, r] = ycbcr(&rgb[i..i + 3]);
                cb += b;
                cr += r;
            }
            let (cb, cr) = (cb / pixels.len() as f32, cr / pixels.len() as f32);
            for &i in &pixels {
                let y = ycbcr(&rgb[i..i + 3])[0];
                let rgb_out = [y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb];
                for (dst, v) in rgb[i..i + 3].iter_mut().zip(rgb_out) {
                    *dst = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::Kind;

    fn psnr(a: &Tensor, b: &Tensor) -> f64 {
        let mse = (a - b).square().mean(Kind::Double).double_value(&[]);
        10.0 * (1.0 / mse).log10()
    }

    /// A gray textured image, 48x40 (no chroma, so only the JPEG quantisation loses anything).
    fn test_image() -> Tensor {
        let (h, w) = (40, 48);
        let y = Tensor::arange(h, (Kind::Float, Device::Cpu)).view([1, 1, h, 1]) / h as f64;
        let x = Tensor::arange(w, (Kind::Float, Device::Cpu)).view([1, 1, 1, w]) / w as f64;
        let v = (&x * 6.0).sin() * (&y * 9.0).cos() * 0.3 + ((&x + &y) * 17.0).sin() * 0.1 + 0.5;
        v.repeat([1, 3, 1, 1])
    }

    #[test]
    fn lower_quality_loses_more_and_sizes_are_kept() {
        let image = test_image();
        let high = jpeg_round_trip(&image, 95.0).unwrap();
        let low = jpeg_round_trip(&image, 30.0).unwrap();
        assert_eq!(high.size(), image.size());
        let (p_high, p_low) = (psnr(&image, &high), psnr(&image, &low));
        assert!(p_high > 30.0 && p_low < p_high - 3.0, "PSNR q95 {p_high:.2} dB, q30 {p_low:.2} dB");
    }

    #[test]
    fn chroma_subsampling_keeps_luma_and_averages_colour() {
        // An orange and a blue pixel over each other twice, in one 2x2 block: they end up with one chroma.
        let (orange, blue) = ([200u8, 100, 50], [50u8, 100, 200]);
        let mut rgb: Vec<u8> = [orange, blue, orange, blue].concat();
        subsample_chroma(&mut rgb, 2, 2);
        let luma = |p: &[u8]| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        assert!((luma(&rgb[0..3]) - luma(&orange)).abs() < 1.0, "{rgb:?}");
        assert!((luma(&rgb[3..6]) - luma(&blue)).abs() < 1.0, "{rgb:?}");
        // Same Cb and Cr: the same R - B and G - B (up to rounding) for both pixels.
        let diff = |p: &[u8], i: usize| p[i] as i32 - p[2] as i32;
        assert!((diff(&rgb[0..3], 0) - diff(&rgb[3..6], 0)).abs() <= 1, "{rgb:?}");
        assert!((diff(&rgb[0..3], 1) - diff(&rgb[3..6], 1)).abs() <= 1, "{rgb:?}");
        assert_ne!(&rgb[0..3], &orange);
    }
}

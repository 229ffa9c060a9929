//! MATLAB's `imresize` of a `uint8` image, the way the x4 benchmarks' LR images and the "Bicubic" rows of
//! the SR papers were made.
//!
//! MATLAB resizes one dimension at a time (the one with the smaller scale first, rows on a tie) and each
//! pass returns the input's class, so a `uint8` image is rounded and clamped to 8 bits *between* the two
//! passes, not only at the end. The float `imresize` rounded once differs from MATLAB on about a tenth of
//! the samples (by one code value, more where overshoot at sharp edges is clamped); rounded after each
//! pass it reproduces the LR images shipped with Set5 and Set14 bit for bit (`tests/benchmarks.rs`).

use sana_sr_data::resize::matlab::{imresize_to, ResizeError};
use sana_sr_data::Image;

use crate::inputs::to_8bit;

/// `imresize(image, scale)` of an 8-bit image by an integer factor or its inverse (`4.0`, `0.25`), with
/// MATLAB's per-pass rounding to 8 bits; `scale * size` must be a whole number of pixels.
pub fn imresize_uint8(image: &Image, scale: f64) -> Result<Image, ResizeError> {
    let size = |extent: usize| (extent as f64 * scale).ceil() as usize;
    let rows = to_8bit(&imresize_to(image, size(image.height), image.width)?);
    Ok(to_8bit(&imresize_to(
        &rows,
        size(image.height),
        size(image.width),
    )?))
}

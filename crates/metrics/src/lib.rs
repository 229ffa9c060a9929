//! Image quality metrics with the conventions of the Real-ISR papers, matched to basicsr 1.4.2
//! (`basicsr/metrics/psnr_ssim.py`, `basicsr/metrics/niqe.py`).
//!
//! Images are [`Image`]s (RGB or gray, samples in `[0, 1]`); the metrics work on basicsr's `[0, 255]` scale.
//! The conventions the papers choose are explicit arguments: `crop_border` (pixels dropped at every edge, usually
//! the SR scale) and `test_y_channel` (score the BT.601 luma, as MATLAB's `rgb2ycbcr`, instead of RGB).
//! basicsr scores what `tensor2img` wrote, i.e. 8-bit values: round an image to 8 bits before scoring it to
//! reproduce its numbers.
//!
//! [`Lpips`] (LPIPS v0.1, AlexNet) needs its network weights from a user-supplied file; see [`lpips`].
//! [`Dists`] (DISTS, VGG16) likewise needs a user-supplied weights file; see [`dists`].

pub mod dists;
pub mod lpips;
mod niqe;
mod plane;
mod psnr;
mod ssim;

pub use dists::{Dists, DistsError};
pub use lpips::{Lpips, LpipsError};
pub use niqe::niqe;
pub use psnr::{psnr, psnr_y};
pub use ssim::{ssim, ssim_y};

use sana_sr_data::Image;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    #[error("the images differ in shape: {a:?} vs {b:?} (width, height, channels)")]
    ShapeMismatch { a: (usize, usize, usize), b: (usize, usize, usize) },
    #[error("metrics take gray or RGB images, got {0} channels")]
    Channels(usize),
    #[error("crop_border {crop_border} leaves nothing of a {width}x{height} image")]
    CropTooLarge { crop_border: usize, width: usize, height: usize },
    #[error("{metric} needs at least {min}x{min} pixels (after the border crop), got {width}x{height}")]
    TooSmall { metric: &'static str, min: usize, width: usize, height: usize },
    #[error("NIQE needs at least two whole 96x96 blocks (after the border crop), got {width}x{height}")]
    NiqeTooSmall { width: usize, height: usize },
    #[error("NIQE is undefined here: fewer than two 96x96 blocks have finite features")]
    NiqeUndefined,
}

fn shape(image: &Image) -> (usize, usize, usize) {
    (image.width, image.height, image.channels)
}

/// Loads a user-supplied weights file into `vs` (the learned metrics, LPIPS and DISTS): the reference's
/// constant entries (`ignored` says which) are dropped, every other key must fit the store exactly, and the
/// weights are frozen.
fn load_user_weights(
    vs: &mut sana_sr_core::nn::VarStore,
    path: &std::path::Path,
    ignored: impl Fn(&str) -> bool,
) -> Result<(), sana_sr_model::checkpoint::CheckpointError> {
    let mut tensors = sana_sr_model::checkpoint::read_tensors(&[path.to_path_buf()])?;
    tensors.retain(|key, _| !ignored(key));
    sana_sr_model::checkpoint::copy_into(vs, tensors)?;
    vs.freeze();
    Ok(())
}

fn check_pair(a: &Image, b: &Image) -> Result<(), MetricError> {
    if shape(a) != shape(b) {
        return Err(MetricError::ShapeMismatch { a: shape(a), b: shape(b) });
    }
    Ok(())
}

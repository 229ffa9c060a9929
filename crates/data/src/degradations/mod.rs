//! The Real-ESRGAN second-order degradation model (Wang et al., "Real-ESRGAN: Training Real-World Blind
//! Super-Resolution with Pure Synthetic Data", ICCV-W 2021), which OSEDiff and SANA-SR train on.
//!
//! A high-resolution crop is degraded twice by blur → random resize → noise → JPEG, then brought to the LR
//! size together with a final sinc filter, before or after a last JPEG. The pieces:
//! [`kernels`] (blur and sinc kernels and their random draw), [`filter`] (basicsr `filter2D`), [`noise`],
//! [`jpeg`], [`pipeline`] (the order of it all, from `realesrgan/models/realesrgan_model.py` `feed_data`),
//! [`config`] (every probability and range, named as the reference's yml) and [`preview`] (a picture of
//! pairs for eyes).

pub mod config;
pub mod filter;
pub mod jpeg;
pub mod kernels;
pub mod noise;
pub mod pipeline;
pub mod preview;

pub use config::{ConfigError, RealEsrganConfig};
pub use pipeline::{Degradation, DegradationParams, StageParams};

use crate::resize::interpolate::InterpolateError;
use crate::resize::matlab::ResizeError;

#[derive(Debug, thiserror::Error)]
pub enum DegradeError {
    #[error("expected a [1, 3, H, W] image tensor, got shape {0:?}")]
    Shape(Vec<i64>),
    #[error("a {height}x{width} image is too small for {what}")]
    TooSmall { height: i64, width: i64, what: String },
    #[error(transparent)]
    Interpolate(#[from] InterpolateError),
    #[error(transparent)]
    Resize(#[from] ResizeError),
    #[error("JPEG round trip failed: {0}")]
    Jpeg(image::ImageError),
    #[error("tensor operation failed: {0}")]
    Torch(String),
}

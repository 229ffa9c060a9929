//! PyTorch's `F.interpolate` on NCHW tensors, the way the Real-ESRGAN degradation pipeline calls it
//! (`realesrgan/models/realesrgan_model.py`, `feed_data`): modes nearest, bilinear, bicubic and area,
//! `align_corners=False`, no antialiasing.
//!
//! Two details decide the exact output, and both follow `torch/nn/functional.py`:
//! - with a scale factor, the output size is `floor(size * scale)` (computed in `f64`) and the scale factor
//!   itself, not the ratio of the sizes, maps output to input coordinates
//!   (`src = (dst + 0.5) / scale - 0.5`);
//! - `area` is adaptive average pooling to the output size (the scale factor only sets that size).
//!
//! This is a thin layer over libtorch's own kernels, so it runs on any device. For the MATLAB-compatible
//! `imresize` that benchmarks use, see [`super::matlab`].

use sana_sr_core::Tensor;

/// The interpolation mode, named as in `F.interpolate(mode=...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Nearest,
    Bilinear,
    Bicubic,
    Area,
}

impl Mode {
    /// The modes the Real-ESRGAN pipeline draws from, in its order (`random.choice(['area', 'bilinear', 'bicubic'])`).
    pub const REAL_ESRGAN: [Mode; 3] = [Mode::Area, Mode::Bilinear, Mode::Bicubic];
}

/// The output size, given as `F.interpolate`'s `size` or `scale_factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `size=(height, width)`.
    Size { height: i64, width: i64 },
    /// `scale_factor=scale`, the same for both axes.
    Scale(f64),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InterpolateError {
    #[error("interpolate expects an NCHW tensor, got shape {0:?}")]
    Shape(Vec<i64>),
    #[error("interpolate to {height}x{width} is empty")]
    EmptyOutput { height: i64, width: i64 },
    #[error("interpolate scale factor must be positive and finite, got {0}")]
    Scale(f64),
}

/// `F.interpolate(input, size | scale_factor, mode, align_corners=False)` for a 4-D `input`.
pub fn interpolate(input: &Tensor, target: Target, mode: Mode) -> Result<Tensor, InterpolateError> {
    let (height, width) = match input.size().as_slice() {
        &[_, _, h, w] => (h, w),
        other => return Err(InterpolateError::Shape(other.to_vec())),
    };
    let (out_h, out_w, scale) = match target {
        Target::Size { height, width } => (height, width, None),
        Target::Scale(s) if s.is_finite() && s > 0.0 => {
            ((height as f64 * s).floor() as i64, (width as f64 * s).floor() as i64, Some(s))
        }
        Target::Scale(s) => return Err(InterpolateError::Scale(s)),
    };
    if out_h < 1 || out_w < 1 {
        return Err(InterpolateError::EmptyOutput { height: out_h, width: out_w });
    }
    let size = [out_h, out_w];
    Ok(match mode {
        Mode::Nearest => input.upsample_nearest2d(size, scale, scale),
        Mode::Bilinear => input.upsample_bilinear2d(size, false, scale, scale),
        Mode::Bicubic => input.upsample_bicubic2d(size, false, scale, scale),
        Mode::Area => input.adaptive_avg_pool2d(size),
    })
}

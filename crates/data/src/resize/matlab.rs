//! MATLAB's bicubic `imresize`, the resize every SR benchmark makes its LR images with and NIQE downsamples with.
//!
//! It follows basicsr's port (`basicsr/utils/matlab_functions.py`, `calculate_weights_indices` + `imresize`):
//! - the cubic convolution kernel with a = -0.5 (Keys), 4 taps wide;
//! - when downscaling, the kernel is stretched by `1 / scale` (and scaled by `scale`) so it also low-passes
//!   ("antialiasing");
//! - output pixel `x` (1-based) samples input position `u = x / scale + 0.5 * (1 - 1 / scale)`, so pixel edges,
//!   not centres, line up;
//! - taps that fall outside the image are mirrored half-sample symmetrically (`..., 1, 0 | 0, 1, ...`);
//! - rows are resized first, then columns; output sizes are `ceil(in * scale)`, or the requested size, in which
//!   case each dimension uses its own `scale = out / in` as MATLAB does.
//!
//! Weights are computed and applied in f64 whatever the sample type; basicsr works in f32, which is why the
//! fixtures agree to ~1e-7 rather than exactly.

use sana_sr_core::Tensor;

use crate::image::Image;

/// How big the output is: one scale factor for both dimensions, or an explicit size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Scale(f64),
    Size { height: usize, width: usize },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResizeError {
    #[error("imresize: the scale factor must be finite and positive, got {0}")]
    InvalidScale(f64),
    #[error("imresize: cannot resize an empty {height}x{width} image")]
    EmptyInput { height: usize, width: usize },
    #[error("imresize: cannot resize to an empty {height}x{width} image")]
    EmptyOutput { height: usize, width: usize },
    #[error("imresize: expected an NCHW tensor, got shape {0:?}")]
    Shape(Vec<i64>),
    #[error("imresize: buffer holds {got} samples, {height}x{width}x{channels} needs {expected}")]
    BufferSize { height: usize, width: usize, channels: usize, expected: usize, got: usize },
}

/// A floating-point sample type `imresize` can work on (f32 for images, f64 for NIQE).
pub trait Sample: Copy {
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
}

impl Sample for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl Sample for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
}

/// MATLAB `imresize(image, scale)` (bicubic, antialiased).
pub fn imresize(image: &Image, scale: f64) -> Result<Image, ResizeError> {
    resize_image(image, Target::Scale(scale))
}

/// MATLAB `imresize(image, [height width])` (bicubic, antialiased).
pub fn imresize_to(image: &Image, height: usize, width: usize) -> Result<Image, ResizeError> {
    resize_image(image, Target::Size { height, width })
}

/// MATLAB `imresize(image, scale)` of a `uint8` image, the way the x4 benchmarks' LR images and the "Bicubic"
/// rows of the SR papers were made.
///
/// MATLAB resizes one dimension at a time (rows first when both scales are equal) and each pass returns the
/// input's class, so a `uint8` image is rounded to 8 bits *between* the two passes, not only at the end.
/// Rounded once at the end, the float resize differs from MATLAB on about a tenth of the samples; rounded
/// after each pass it reproduces the LR images shipped with Set5 and Set14 bit for bit
/// (`crates/eval/tests/benchmarks.rs`). Meant for equal integer factors or their inverses (`4.0`, `0.25`).
pub fn imresize_uint8(image: &Image, scale: f64) -> Result<Image, ResizeError> {
    let (height, width) = output_size(image.height, image.width, Target::Scale(scale))?;
    imresize_uint8_to(image, height, width)
}

/// [`imresize_uint8`] to a given size.
pub fn imresize_uint8_to(image: &Image, height: usize, width: usize) -> Result<Image, ResizeError> {
    let rows = imresize_to(image, height, image.width)?.to_8bit();
    Ok(imresize_to(&rows, height, width)?.to_8bit())
}

fn resize_image(image: &Image, target: Target) -> Result<Image, ResizeError> {
    let (height, width) = output_size(image.height, image.width, target)?;
    let data = imresize_hwc(&image.data, image.height, image.width, image.channels, target)?;
    Ok(Image::new(width, height, image.channels, data))
}

/// The `(height, width)` that `target` gives an `height x width` input: `ceil(in * scale)` as MATLAB computes it
/// (in f64, so `50 * 1.1` gives 56), or the requested size.
pub fn output_size(height: usize, width: usize, target: Target) -> Result<(usize, usize), ResizeError> {
    if height == 0 || width == 0 {
        return Err(ResizeError::EmptyInput { height, width });
    }
    let size = match target {
        Target::Scale(scale) if scale.is_finite() && scale > 0.0 => {
            ((height as f64 * scale).ceil() as usize, (width as f64 * scale).ceil() as usize)
        }
        Target::Scale(scale) => return Err(ResizeError::InvalidScale(scale)),
        Target::Size { height, width } => (height, width),
    };
    match size {
        (0, _) | (_, 0) => Err(ResizeError::EmptyOutput { height: size.0, width: size.1 }),
        _ => Ok(size),
    }
}

/// `imresize` of a row-major `height x width x channels` buffer; the output has the size [`output_size`] gives.
pub fn imresize_hwc<T: Sample>(
    data: &[T],
    height: usize,
    width: usize,
    channels: usize,
    target: Target,
) -> Result<Vec<T>, ResizeError> {
    let expected = height * width * channels;
    if data.len() != expected {
        return Err(ResizeError::BufferSize { height, width, channels, expected, got: data.len() });
    }
    let (out_height, out_width) = output_size(height, width, target)?;
    let (scale_h, scale_w) = match target {
        Target::Scale(scale) => (scale, scale),
        Target::Size { .. } => (out_height as f64 / height as f64, out_width as f64 / width as f64),
    };
    let rows = Taps::new(height, out_height, scale_h);
    let cols = Taps::new(width, out_width, scale_w);

    // Rows first (as basicsr), into an f64 intermediate.
    let row_len = width * channels;
    let mut mid = vec![0.0f64; out_height * row_len];
    for (y, out_row) in mid.chunks_exact_mut(row_len).enumerate() {
        for (&index, &weight) in rows.of(y) {
            let in_row = &data[index * row_len..(index + 1) * row_len];
            for (o, &v) in out_row.iter_mut().zip(in_row) {
                *o += weight * v.to_f64();
            }
        }
    }
    let mut out = Vec::with_capacity(out_height * out_width * channels);
    for mid_row in mid.chunks_exact(row_len) {
        for x in 0..out_width {
            for c in 0..channels {
                let sum: f64 = cols.of(x).map(|(&index, &weight)| weight * mid_row[index * channels + c]).sum();
                out.push(T::from_f64(sum));
            }
        }
    }
    Ok(out)
}

/// MATLAB's cubic convolution kernel, a = -0.5 (`cubic` in matlab_functions.py).
fn cubic(x: f64) -> f64 {
    let ax = x.abs();
    let (ax2, ax3) = (ax * ax, ax * ax * ax);
    if ax <= 1.0 {
        1.5 * ax3 - 2.5 * ax2 + 1.0
    } else if ax <= 2.0 {
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    } else {
        0.0
    }
}

/// MATLAB `imresize(x, [height width])` of an NCHW float tensor, as two matrix products whose matrices hold
/// [`imresize`]'s taps: differentiable and on the tensor's device, so a model can take its input resized the
/// way the benchmarks' bicubic baseline is (float, without [`imresize_uint8`]'s 8-bit rounding).
pub fn imresize_tensor(input: &Tensor, height: usize, width: usize) -> Result<Tensor, ResizeError> {
    let size = input.size();
    let (in_height, in_width) = match size.as_slice() {
        [_, _, h, w] => (*h as usize, *w as usize),
        _ => return Err(ResizeError::Shape(size)),
    };
    let (height, width) = output_size(in_height, in_width, Target::Size { height, width })?;
    // `matrix[o][i]`: the weight of input sample i in output sample o; `Taps` already mirrored the indices.
    let matrix = |in_len: usize, out_len: usize| {
        let taps = Taps::new(in_len, out_len, out_len as f64 / in_len as f64);
        let mut dense = vec![0.0f64; out_len * in_len];
        for o in 0..out_len {
            for (&i, &w) in taps.of(o) {
                dense[o * in_len + i] += w;
            }
        }
        Tensor::from_slice(&dense).view([out_len as i64, in_len as i64]).to_device(input.device())
    };
    let kind = input.kind();
    let (rows, cols) = (matrix(in_height, height).to_kind(kind), matrix(in_width, width).to_kind(kind));
    Ok(rows.matmul(input).matmul(&cols.tr()))
}

/// The input indices (already mirrored into range) and normalised weights of every output pixel along one
/// dimension: `calculate_weights_indices` of matlab_functions.py.
struct Taps {
    per_output: usize,
    indices: Vec<usize>,
    weights: Vec<f64>,
}

impl Taps {
    fn new(in_len: usize, out_len: usize, scale: f64) -> Self {
        const KERNEL_WIDTH: f64 = 4.0;
        let antialias = scale < 1.0;
        let kernel_width = if antialias { KERNEL_WIDTH / scale } else { KERNEL_WIDTH };
        // One candidate more on each side than the kernel can reach; the edge candidates are dropped below.
        let candidates = kernel_width.ceil() as usize + 2;
        let mut first = Vec::with_capacity(out_len);
        let mut weights = Vec::with_capacity(out_len * candidates);
        for x in 1..=out_len {
            let u = x as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (u - kernel_width / 2.0).floor();
            let row: Vec<f64> = (0..candidates)
                .map(|k| {
                    let distance = u - (left + k as f64);
                    if antialias {
                        scale * cubic(distance * scale)
                    } else {
                        cubic(distance)
                    }
                })
                .collect();
            let sum: f64 = row.iter().sum();
            weights.extend(row.iter().map(|w| w / sum));
            first.push(left as i64);
        }
        // basicsr drops the first (last) candidate column if any output gives it an exactly zero weight, which
        // (up to rounding) it always does: the kernel's support is `kernel_width` wide.
        let column_has_zero = |k: usize| (0..out_len).any(|o| weights[o * candidates + k] == 0.0);
        let skip_first = column_has_zero(0) as usize;
        let skip_last = column_has_zero(candidates - 1) as usize;
        let per_output = candidates - skip_first - skip_last;
        let mut indices = Vec::with_capacity(out_len * per_output);
        let mut kept = Vec::with_capacity(out_len * per_output);
        for (o, &left) in first.iter().enumerate() {
            for k in skip_first..skip_first + per_output {
                // `left` is 1-based, as in MATLAB.
                indices.push(mirror(left + k as i64 - 1, in_len));
                kept.push(weights[o * candidates + k]);
            }
        }
        Self { per_output, indices, weights: kept }
    }

    fn of(&self, output: usize) -> impl Iterator<Item = (&usize, &f64)> {
        let range = output * self.per_output..(output + 1) * self.per_output;
        self.indices[range.clone()].iter().zip(&self.weights[range])
    }
}

/// Half-sample symmetric extension of a 0-based index into `0..len` (MATLAB's `aux = [1:n, n:-1:1]` indexing;
/// basicsr's flipped border copies give the same whenever the border is no wider than the image).
fn mirror(index: i64, len: usize) -> usize {
    let period = 2 * len as i64;
    let i = index.rem_euclid(period);
    if i < len as i64 {
        i as usize
    } else {
        (period - 1 - i) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_half_sample_symmetric() {
        let got: Vec<usize> = (-4..8).map(|i| mirror(i, 3)).collect();
        assert_eq!(got, vec![2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
    }

    #[test]
    fn output_sizes_follow_matlab() {
        assert_eq!(output_size(50, 64, Target::Scale(1.1)), Ok((56, 71)));
        assert_eq!(output_size(7, 5, Target::Scale(0.25)), Ok((2, 2)));
        assert_eq!(output_size(7, 5, Target::Size { height: 3, width: 9 }), Ok((3, 9)));
        assert_eq!(output_size(7, 5, Target::Scale(0.0)), Err(ResizeError::InvalidScale(0.0)));
        assert!(matches!(output_size(7, 5, Target::Scale(f64::NAN)), Err(ResizeError::InvalidScale(_))));
        assert!(output_size(0, 5, Target::Scale(2.0)).is_err());
        assert!(output_size(7, 5, Target::Size { height: 0, width: 2 }).is_err());
    }

    #[test]
    fn constant_image_stays_constant() {
        let image = Image::new(9, 7, 2, vec![0.375; 9 * 7 * 2]);
        for scale in [0.25, 0.5, 0.7, 1.0, 1.5, 3.0] {
            let out = imresize(&image, scale).unwrap();
            assert!(out.data.iter().all(|v| (v - 0.375).abs() < 1e-6), "scale {scale}");
        }
    }

    #[test]
    fn wrong_buffer_is_an_error() {
        let err = imresize_hwc(&[0.0f32; 5], 2, 3, 1, Target::Scale(2.0)).unwrap_err();
        assert!(matches!(err, ResizeError::BufferSize { expected: 6, got: 5, .. }));
    }

    #[test]
    fn tensor_resize_equals_the_image_resize() {
        let (w, h) = (17, 13);
        let data: Vec<f32> = (0..w * h * 3).map(|i| ((i * 7919) % 251) as f32 / 250.0).collect();
        let image = Image::new(w, h, 3, data);
        let tensor = crate::tensor::to_tensor(&image, sana_sr_core::Device::Cpu);
        for (height, width) in [(52, 68), (7, 9), (13, 40)] {
            let expected = imresize_to(&image, height, width).unwrap();
            let got = crate::tensor::to_image(&imresize_tensor(&tensor, height, width).unwrap()).unwrap();
            assert_eq!((got.width, got.height), (width, height));
            // Two passes of at most 8 nonzero taps (|weights| summing to at most 1.2) on values in [0, 1],
            // summed by the CPU's BLAS in an order of its own: within 2·8·1.2 roundings (u = 2^-24) of the
            // exact result, plus one rounding of each f32 tap and output: under 48u ≈ 2.9e-6.
            let bound = 48.0 * sana_sr_core::compare::UNIT_ROUNDOFF as f32;
            let worst = got.data.iter().zip(&expected.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst <= bound, "{height}x{width}: max error {worst}");
        }
        let flat = Tensor::zeros([3, 4], (sana_sr_core::Kind::Float, sana_sr_core::Device::Cpu));
        assert_eq!(imresize_tensor(&flat, 8, 8).unwrap_err(), ResizeError::Shape(vec![3, 4]));
    }
}

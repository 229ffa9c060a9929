//! basicsr `filter2D` (`basicsr/utils/img_process_util.py`): every channel convolved with one kernel,
//! borders reflected (`F.pad(mode='reflect')`, which does not repeat the edge sample), output the input's size.

use sana_sr_core::Tensor;

use super::kernels::Kernel;
use super::DegradeError;

/// `filter2D(input, kernel)` for an NCHW `input`; the image must be larger than half the kernel on each
/// side, as reflection padding requires.
pub fn filter2d(input: &Tensor, kernel: &Kernel) -> Result<Tensor, DegradeError> {
    let (n, c, h, w) = input.size4().map_err(|_| DegradeError::Shape(input.size()))?;
    let k = kernel.size as i64;
    let pad = k / 2;
    if pad >= h || pad >= w {
        return Err(DegradeError::TooSmall { height: h, width: w, what: format!("a {k}x{k} blur kernel") });
    }
    let weights: Vec<f32> = kernel.weights.iter().map(|&x| x as f32).collect();
    let weight = Tensor::from_slice(&weights).view([1, 1, k, k]).to_device(input.device()).to_kind(input.kind());
    let planes = input.reshape([n * c, 1, h, w]).reflection_pad2d([pad, pad, pad, pad]);
    Ok(planes.conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1).reshape([n, c, h, w]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::{Device, Kind};

    #[test]
    fn matches_a_direct_reflected_convolution() {
        let (h, w) = (6usize, 7usize);
        let image: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
        let kernel = Kernel { size: 3, weights: vec![0.0, 0.1, 0.05, 0.2, 0.3, 0.1, 0.05, 0.15, 0.05] };
        let input = Tensor::from_slice(&image).view([1, 1, h as i64, w as i64]);
        let output = filter2d(&input, &kernel).unwrap();
        // Reflection without repeating the edge: index -1 -> 1, n -> n - 2.
        let reflect = |i: isize, n: usize| -> usize {
            if i < 0 {
                (-i) as usize
            } else if i as usize >= n {
                2 * n - 2 - i as usize
            } else {
                i as usize
            }
        };
        for y in 0..h {
            for x in 0..w {
                let mut expected = 0.0f64;
                for ky in 0..3 {
                    for kx in 0..3 {
                        let sy = reflect(y as isize + ky as isize - 1, h);
                        let sx = reflect(x as isize + kx as isize - 1, w);
                        expected += kernel.weights[ky * 3 + kx] * image[sy * w + sx] as f64;
                    }
                }
                let got = output.double_value(&[0, 0, y as i64, x as i64]);
                // Nine float32 products of values in [0, 1] with weights summing to 1, summed in the kernel's
                // order: within 9 roundings (u = 2^-24 ≈ 6e-8) of the float64 sum, 5.4e-7.
                assert!((got - expected).abs() < 1e-6, "({x}, {y}): {got} vs {expected}");
            }
        }
    }

    #[test]
    fn refuses_images_smaller_than_the_kernel() {
        let input = Tensor::zeros([1, 3, 10, 40], (Kind::Float, Device::Cpu));
        assert!(matches!(filter2d(&input, &Kernel::pulse(21)), Err(DegradeError::TooSmall { .. })));
    }
}

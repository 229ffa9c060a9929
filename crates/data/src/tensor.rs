//! The one conversion between [`Image`] (HWC samples in memory) and tensors (NCHW `f32`, what networks,
//! resizing and degradations work on). Values are not rescaled: `[0, 1]` in, `[0, 1]` out.

use sana_sr_core::{Device, Kind, Tensor};

use crate::Image;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TensorError {
    #[error("expected a CHW or NCHW image tensor, got shape {0:?}")]
    Shape(Vec<i64>),
}

/// `image` as a `[1, C, H, W]` `f32` tensor on `device`.
pub fn to_tensor(image: &Image, device: Device) -> Tensor {
    let (h, w, c) = (image.height as i64, image.width as i64, image.channels as i64);
    Tensor::from_slice(&image.data).view([h, w, c]).permute([2, 0, 1]).unsqueeze(0).contiguous().to_device(device)
}

/// A `[C, H, W]` or `[1, C, H, W]` tensor (any float kind, any device) as an [`Image`].
pub fn to_image(tensor: &Tensor) -> Result<Image, TensorError> {
    let chw = match tensor.size().as_slice() {
        [1, _, _, _] => tensor.squeeze_dim(0),
        [_, _, _] => tensor.shallow_clone(),
        other => return Err(TensorError::Shape(other.to_vec())),
    };
    let (c, h, w) = chw.size3().map_err(|_| TensorError::Shape(tensor.size()))?;
    let data = flat_samples(&chw.permute([1, 2, 0]))?;
    Ok(Image::new(w as usize, h as usize, c as usize, data))
}

/// The samples of `tensor` (any float kind, any device) in memory order of its contiguous form, as CPU `f32`.
pub fn flat_samples(tensor: &Tensor) -> Result<Vec<f32>, TensorError> {
    let flat = tensor.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&flat).map_err(|_| TensorError::Shape(tensor.size()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(width: usize, height: usize, channels: usize, offset: f32) -> Image {
        let data = (0..width * height * channels).map(|i| offset + i as f32 / 1000.0).collect();
        Image::new(width, height, channels, data)
    }

    #[test]
    fn layout_is_nchw() {
        let image = ramp(3, 2, 3, 0.0);
        let tensor = to_tensor(&image, Device::Cpu);
        assert_eq!(tensor.size(), [1, 3, 2, 3]);
        for (x, y, c) in [(0, 0, 0), (2, 1, 2), (1, 0, 1), (2, 0, 0)] {
            let value = tensor.double_value(&[0, c as i64, y as i64, x as i64]) as f32;
            assert_eq!(value, image.at(x, y, c));
        }
    }

    #[test]
    fn round_trips_images() {
        let image = ramp(5, 4, 1, 0.0);
        assert_eq!(to_image(&to_tensor(&image, Device::Cpu)).unwrap(), image);
        let rgb = ramp(4, 3, 3, 0.5);
        assert_eq!(to_image(&to_tensor(&rgb, Device::Cpu).squeeze_dim(0)).unwrap(), rgb);
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(matches!(
            to_image(&Tensor::zeros([2, 3, 4, 4], (Kind::Float, Device::Cpu))),
            Err(TensorError::Shape(_))
        ));
        assert!(matches!(to_image(&Tensor::zeros([4, 4], (Kind::Float, Device::Cpu))), Err(TensorError::Shape(_))));
    }
}

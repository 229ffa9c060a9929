//! The one conversion between [`Image`] (HWC samples in memory) and tensors (NCHW `f32`, what networks,
//! resizing and degradations work on). Values are not rescaled: `[0, 1]` in, `[0, 1]` out.

use sana_sr_core::{Device, Kind, Tensor};

use crate::Image;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TensorError {
    #[error("expected a CHW or NCHW image tensor, got shape {0:?}")]
    Shape(Vec<i64>),
    #[error("cannot stack images of different sizes: {first:?} and {other:?} (width, height, channels)")]
    Mismatch { first: (usize, usize, usize), other: (usize, usize, usize) },
    #[error("cannot make a batch of no images")]
    EmptyBatch,
}

/// `image` as a `[1, C, H, W]` `f32` tensor on `device`.
pub fn to_tensor(image: &Image, device: Device) -> Tensor {
    let (h, w, c) = (image.height as i64, image.width as i64, image.channels as i64);
    Tensor::from_slice(&image.data).view([h, w, c]).permute([2, 0, 1]).unsqueeze(0).contiguous().to_device(device)
}

/// Images of one size as a `[N, C, H, W]` `f32` tensor on `device`.
pub fn to_batch(images: &[Image], device: Device) -> Result<Tensor, TensorError> {
    let first = images.first().ok_or(TensorError::EmptyBatch)?;
    let key = |i: &Image| (i.width, i.height, i.channels);
    if let Some(other) = images.iter().find(|i| key(i) != key(first)) {
        return Err(TensorError::Mismatch { first: key(first), other: key(other) });
    }
    let parts: Vec<Tensor> = images.iter().map(|i| to_tensor(i, Device::Cpu)).collect();
    Ok(Tensor::cat(&parts, 0).to_device(device))
}

/// A `[C, H, W]` or `[1, C, H, W]` tensor (any float kind, any device) as an [`Image`].
pub fn to_image(tensor: &Tensor) -> Result<Image, TensorError> {
    let chw = match tensor.size().as_slice() {
        [1, _, _, _] => tensor.squeeze_dim(0),
        [_, _, _] => tensor.shallow_clone(),
        other => return Err(TensorError::Shape(other.to_vec())),
    };
    let (c, h, w) = chw.size3().map_err(|_| TensorError::Shape(tensor.size()))?;
    let hwc = chw.to_device(Device::Cpu).to_kind(Kind::Float).permute([1, 2, 0]).contiguous().view([-1]);
    let data = Vec::<f32>::try_from(&hwc).map_err(|_| TensorError::Shape(tensor.size()))?;
    Ok(Image::new(w as usize, h as usize, c as usize, data))
}

/// Every image of a `[N, C, H, W]` tensor.
pub fn to_images(batch: &Tensor) -> Result<Vec<Image>, TensorError> {
    match batch.size().as_slice() {
        [n, _, _, _] => (0..*n).map(|i| to_image(&batch.get(i))).collect(),
        other => Err(TensorError::Shape(other.to_vec())),
    }
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
    fn round_trips_images_and_batches() {
        let image = ramp(5, 4, 1, 0.0);
        assert_eq!(to_image(&to_tensor(&image, Device::Cpu)).unwrap(), image);
        let images = vec![ramp(4, 3, 3, 0.0), ramp(4, 3, 3, 0.5)];
        let batch = to_batch(&images, Device::Cpu).unwrap();
        assert_eq!(batch.size(), [2, 3, 3, 4]);
        assert_eq!(to_images(&batch).unwrap(), images);
    }

    #[test]
    fn refuses_bad_shapes_and_mixed_sizes() {
        assert_eq!(to_batch(&[], Device::Cpu).unwrap_err(), TensorError::EmptyBatch);
        let mixed = to_batch(&[ramp(4, 3, 3, 0.0), ramp(3, 4, 3, 0.0)], Device::Cpu).unwrap_err();
        assert!(matches!(mixed, TensorError::Mismatch { .. }));
        assert!(matches!(
            to_image(&Tensor::zeros([2, 3, 4, 4], (Kind::Float, Device::Cpu))),
            Err(TensorError::Shape(_))
        ));
        assert!(matches!(to_image(&Tensor::zeros([4, 4], (Kind::Float, Device::Cpu))), Err(TensorError::Shape(_))));
    }
}

//! A picture of what the degradation does: rows of HR crops, each followed by its LR images for several
//! seeds, nearest-upscaled back to the HR size so every pixel of the LR stays visible.

use sana_sr_core::Device;

use super::pipeline::{pair_rng, Degradation};
use super::DegradeError;
use crate::resize::interpolate::{interpolate, Mode, Target};
use crate::tensor::{to_image, to_tensor};
use crate::Image;

/// White gap between tiles, in pixels.
const GAP: usize = 4;

/// The `(width, height)` of the grid of `images` rows and `seeds` LR columns of `crop` pixels, saturating:
/// a size to check against a limit before any image is read.
pub fn grid_size(images: usize, seeds: usize, crop: usize) -> (u64, u64) {
    let extent = |count: u64| count.saturating_mul(crop as u64).saturating_add(count.saturating_sub(1) * GAP as u64);
    (extent(1 + seeds as u64), extent(images as u64))
}

/// One row per image: its centre `crop x crop` HR crop, then the LR of that crop under each seed
/// (the draw of image `i` with seed `s` is [`pair_rng`]`(s, i)`, as the loader draws).
pub fn preview_grid(
    images: &[Image],
    degradation: &Degradation,
    seeds: &[u64],
    crop: usize,
) -> Result<Image, DegradeError> {
    let (width, height) = grid_size(images.len(), seeds.len(), crop);
    let (width, height) = (width as usize, height as usize);
    let mut grid = Image::new(width, height, 3, vec![1.0; width * height * 3]);
    for (row, image) in images.iter().enumerate() {
        let (h, w) = (image.height, image.width);
        let hr = image
            .crop(w.saturating_sub(crop) / 2, h.saturating_sub(crop) / 2, crop, crop)
            .ok_or(DegradeError::TooSmall { height: h as i64, width: w as i64, what: format!("a {crop}px crop") })?
            .to_rgb();
        let top = row * (crop + GAP);
        grid.paste(&hr, 0, top);
        let hr_tensor = to_tensor(&hr, Device::Cpu);
        for (column, &seed) in seeds.iter().enumerate() {
            let lr = degradation.degrade(&hr_tensor, &mut pair_rng(seed, row as u64))?;
            let shown = interpolate(&lr, Target::Size { height: crop as i64, width: crop as i64 }, Mode::Nearest)?;
            let shown = to_image(&shown).map_err(|_| DegradeError::Shape(shown.size()))?;
            grid.paste(&shown, (column + 1) * (crop + GAP), top);
        }
    }
    Ok(grid)
}

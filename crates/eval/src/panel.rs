//! Side-by-side crops for looking at results: one row per image, one column per source
//! (LR nearest-upscaled | each method | ground truth), each a `cell`-pixel square cut from the same place
//! of every image (the centre of the output, aligned to the LR grid so the LR column shows whole pixels).

use sana_sr_core::Device;
use sana_sr_data::resize::interpolate::{interpolate, Mode, Target};
use sana_sr_data::tensor::{to_image, to_tensor};
use sana_sr_data::Image;

/// Gap between cells, in pixels, and the colour of gaps and of empty cells (a method that failed).
const GAP: usize = 4;
const BACKGROUND: f32 = 1.0;
const EMPTY: f32 = 0.5;

/// The cells of one panel row: `None` for a source with no image.
pub type PanelRow = Vec<Option<Image>>;

/// The `(x, y, width, height)` window, in output pixels, that the crops of an output of `width x height`
/// are cut from: the centre `cell x cell` square (less where the image is smaller), a multiple of `scale`.
pub fn window(width: usize, height: usize, cell: usize, scale: usize) -> (usize, usize, usize, usize) {
    let side = |extent: usize| (cell.min(extent) / scale * scale).max(scale.min(extent));
    let (w, h) = (side(width), side(height));
    let corner = |extent: usize, size: usize| (extent - size) / 2 / scale * scale;
    (corner(width, w), corner(height, h), w, h)
}

/// The crops of one sample: `lr` upscaled by nearest neighbour, then `outputs` and `gt`, all cut at the
/// same window of the output grid. Outputs that do not cover the window are left empty.
pub fn row(lr: &Image, outputs: &[Option<&Image>], gt: Option<&Image>, cell: usize, scale: usize) -> PanelRow {
    let (x, y, w, h) = window(lr.width * scale, lr.height * scale, cell, scale);
    let lr_cell = lr.crop(x / scale, y / scale, w / scale, h / scale).and_then(|crop| nearest_up(&crop, scale));
    let cut = |image: Option<&Image>| image.and_then(|image| image.crop(x, y, w, h));
    std::iter::once(lr_cell)
        .chain(outputs.iter().map(|output| cut(*output)))
        .chain(gt.map(|gt| cut(Some(gt))))
        .collect()
}

/// The `(width, height)` of a grid of `rows` x `columns` cells of `cell` pixels, saturating: a size to
/// check against a limit before the grid is made.
pub fn grid_size(rows: usize, columns: usize, cell: usize) -> (u64, u64) {
    let extent = |count: usize| {
        (count as u64).saturating_mul(cell as u64).saturating_add((count as u64 + 1).saturating_mul(GAP as u64))
    };
    (extent(columns), extent(rows))
}

/// Lays `rows` out as a grid of `cell`-pixel squares (RGB); smaller crops sit in the top-left corner.
pub fn grid(rows: &[PanelRow], cell: usize) -> Image {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (width, height) = grid_size(rows.len(), columns, cell);
    let (width, height) = (width as usize, height as usize);
    let mut panel = Image::new(width, height, 3, vec![BACKGROUND; width * height * 3]);
    for (r, cells) in rows.iter().enumerate() {
        for (c, cell_image) in cells.iter().enumerate() {
            let (left, top) = (GAP + c * (cell + GAP), GAP + r * (cell + GAP));
            match cell_image {
                Some(image) => {
                    let shown = image.to_rgb();
                    if let Some(shown) = shown.crop(0, 0, shown.width.min(cell), shown.height.min(cell)) {
                        panel.paste(&shown, left, top);
                    }
                }
                None => fill(&mut panel, left, top, cell, EMPTY),
            }
        }
    }
    panel
}

/// Each pixel repeated `scale` times in both directions (`None` if the tensor backend fails).
fn nearest_up(image: &Image, scale: usize) -> Option<Image> {
    let target = Target::Size { height: (image.height * scale) as i64, width: (image.width * scale) as i64 };
    let up = interpolate(&to_tensor(image, Device::Cpu), target, Mode::Nearest).ok()?;
    to_image(&up).ok()
}

fn fill(panel: &mut Image, left: usize, top: usize, cell: usize, value: f32) {
    for y in top..top + cell {
        let start = (y * panel.width + left) * 3;
        panel.data[start..start + cell * 3].fill(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_centred_and_on_the_lr_grid() {
        assert_eq!(window(512, 512, 128, 4), (192, 192, 128, 128));
        assert_eq!(window(250, 100, 128, 4), (60, 0, 128, 100));
        assert_eq!(window(30, 6, 128, 4), (0, 0, 28, 4));
    }

    #[test]
    fn row_cuts_the_same_place_from_every_source() {
        // LR 4x4 whose pixel (x, y) has value x + 10 y; outputs are its nearest upscaling, so every crop
        // of a correct window shows the same values as the nearest-upscaled LR crop.
        let lr = Image::new(4, 4, 1, (0..16).map(|i| (i % 4 + 10 * (i / 4)) as f32).collect());
        let up = nearest_up(&lr, 2).unwrap();
        assert_eq!(up.at(3, 2, 0), lr.at(1, 1, 0));
        let cells = row(&lr, &[Some(&up), None], Some(&up), 4, 2);
        assert_eq!(cells.len(), 4);
        let lr_cell = cells[0].as_ref().unwrap();
        assert_eq!((lr_cell.width, lr_cell.height), (4, 4));
        assert_eq!(lr_cell.at(0, 0, 0), 11.0, "the centre 4x4 output window starts at LR pixel (1, 1)");
        assert_eq!(cells[1].as_ref(), Some(lr_cell));
        assert!(cells[2].is_none());
        assert_eq!(cells[3].as_ref(), Some(lr_cell));
    }

    #[test]
    fn grid_places_cells_and_marks_empty_ones() {
        let red = Image::new(2, 2, 3, [1.0, 0.0, 0.0].repeat(4));
        let panel = grid(&[vec![Some(red), None]], 3);
        assert_eq!((panel.width, panel.height), (2 * 3 + 3 * GAP, 3 + 2 * GAP));
        assert_eq!(panel.at(GAP, GAP, 1), 0.0, "pasted pixel");
        assert_eq!(panel.at(GAP + 2, GAP, 1), BACKGROUND, "outside the 2x2 crop");
        assert_eq!(panel.at(2 * GAP + 3, GAP, 0), EMPTY, "empty cell");
        assert_eq!(panel.at(0, 0, 0), BACKGROUND, "gap");
    }
}

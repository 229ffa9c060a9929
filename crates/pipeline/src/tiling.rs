//! Running a network over an image or latent of any size in bounded memory: overlapping tiles, each processed
//! alone, blended back with smooth weights.
//!
//! One function serves the three stages of the pipeline (encoder: pixels in, latent cells out; DiT: cells to
//! cells; decoder: cells in, pixels out) by working on a grid of *cells*: `unit_in` input pixels and `unit_out`
//! output pixels per cell side, so every tile starts on a cell and the encoder's tiles land exactly on latent
//! cells.
//!
//! Blending: where two tiles overlap, each tile's weight is zero within `margin` of its inner edge (the output
//! there saw a cut-off neighbourhood), then ramps linearly to one across the rest of the overlap; outputs are
//! summed with their weights and divided by the weight sum. A network whose receptive field is no wider than the
//! margin therefore gives exactly its untiled output, and the ramps leave no seam for the others.

use sana_sr_core::{Device, Kind, Tensor};

/// Tile layout along both axes, in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Longest side of a tile; a grid no longer than this along an axis is not cut along it.
    pub tile: i64,
    /// Cells shared by neighbouring tiles, at least; must be more than twice `margin`.
    pub overlap: i64,
    /// Cells at a tile's inner edge whose output is discarded.
    pub margin: i64,
}

impl Tiling {
    /// Tiles of `tile` cells overlapping by a quarter of that, a quarter of the overlap discarded: at the
    /// encoder's 32-pixel cells, a 1024-pixel tile overlaps its neighbours by 256 pixels and drops 64.
    pub fn with_tile(tile: i64) -> Self {
        let overlap = (tile / 4).max(1);
        let margin = if overlap > 2 { overlap / 4 } else { 0 };
        Self { tile: tile.max(2 * overlap + 1), overlap, margin }
    }

    /// One tile covering any grid: the untiled computation.
    pub fn whole() -> Self {
        Self { tile: i64::MAX, overlap: 0, margin: 0 }
    }

    /// How many tiles an axis of `cells` cells is cut into: the fewest of at most `tile` cells whose overlaps
    /// are all at least `overlap`.
    fn count_along(&self, cells: i64) -> i64 {
        if cells <= self.tile {
            return 1;
        }
        let stride = self.tile - self.overlap;
        (cells - self.overlap + stride - 1) / stride
    }

    /// Length of every tile along an axis of `cells` cells: the whole axis in one tile, else the shortest at
    /// which that many tiles still overlap by `overlap`. Equal tiles just long enough: an axis a little longer
    /// than one tile is not computed nearly twice over (300 cells in tiles of at most 256 overlapping by 64
    /// are two tiles of 182, not of 256).
    pub fn len(&self, cells: i64) -> i64 {
        let count = self.count_along(cells);
        (cells + (count - 1) * self.overlap + count - 1) / count
    }

    /// Start cells of the tiles along an axis of `cells` cells (each [`Self::len`] long), spread evenly, the last
    /// one ending on the edge.
    pub fn starts(&self, cells: i64) -> Vec<i64> {
        let count = self.count_along(cells);
        if count == 1 {
            return vec![0];
        }
        // Rounded starts move each step by the floor or the ceiling of `span / (count - 1)`, which `len`
        // keeps within `len - overlap`.
        let span = cells - self.len(cells);
        (0..count).map(|i| (i * span + (count - 1) / 2) / (count - 1)).collect()
    }

    /// How many tiles a grid of `rows` x `cols` cells is cut into.
    pub fn count(&self, rows: i64, cols: i64) -> usize {
        self.starts(rows).len() * self.starts(cols).len()
    }
}

/// Applies `f` to `input` (`[N, C, H, W]`, `H` and `W` multiples of `unit_in`) tile by tile and blends the
/// outputs, which must be `[N, C', h / unit_in * unit_out, w / unit_in * unit_out]` for a tile of `h x w`
/// pixels. `on_tile` is called after each tile. Meant for inference: the result carries no gradient.
pub fn map_tiled<E>(
    input: &Tensor,
    tiling: &Tiling,
    unit_in: i64,
    unit_out: i64,
    mut f: impl FnMut(&Tensor) -> Result<Tensor, E>,
    mut on_tile: impl FnMut(),
) -> Result<Tensor, E> {
    let size = input.size();
    let (rows, cols) = (size[2] / unit_in, size[3] / unit_in);
    debug_assert_eq!((rows * unit_in, cols * unit_in), (size[2], size[3]), "input is not a whole number of cells");
    let (row_starts, col_starts) = (tiling.starts(rows), tiling.starts(cols));
    if row_starts.len() == 1 && col_starts.len() == 1 {
        let out = f(input)?;
        on_tile();
        return Ok(out);
    }
    let (tile_rows, tile_cols) = (tiling.len(rows), tiling.len(cols));
    let mut sum: Option<Tensor> = None;
    let mut weight_sum: Option<Tensor> = None;
    for &r in &row_starts {
        for &c in &col_starts {
            let tile = input.narrow(2, r * unit_in, tile_rows * unit_in).narrow(3, c * unit_in, tile_cols * unit_in);
            let out = f(&tile)?.to_kind(Kind::Float);
            let device = out.device();
            let wy = edge_weights(tiling, r, tile_rows, rows, unit_out, device);
            let wx = edge_weights(tiling, c, tile_cols, cols, unit_out, device);
            let weight = wy.unsqueeze(1) * wx.unsqueeze(0);
            let (n, channels) = (out.size()[0], out.size()[1]);
            let sum = sum.get_or_insert_with(|| {
                Tensor::zeros([n, channels, rows * unit_out, cols * unit_out], (Kind::Float, device))
            });
            let weight_sum = weight_sum
                .get_or_insert_with(|| Tensor::zeros([rows * unit_out, cols * unit_out], (Kind::Float, device)));
            let (y, x, h, w) = (r * unit_out, c * unit_out, tile_rows * unit_out, tile_cols * unit_out);
            let _ = sum.narrow(2, y, h).narrow(3, x, w).f_add_(&(out * &weight)).expect("shapes match by construction");
            let _ = weight_sum.narrow(0, y, h).narrow(1, x, w).f_add_(&weight).expect("shapes match by construction");
            on_tile();
        }
    }
    let (sum, weight_sum) = (sum.expect("at least one tile"), weight_sum.expect("at least one tile"));
    Ok(sum / weight_sum)
}

/// The blending weight along one axis for a tile starting at cell `start`, `len` cells long, on an axis of
/// `cells` cells, sampled at the centres of its `len * unit` output pixels: ramps at inner edges only.
fn edge_weights(tiling: &Tiling, start: i64, len: i64, cells: i64, unit: i64, device: Device) -> Tensor {
    let pixels = len * unit;
    let margin = (tiling.margin * unit) as f64;
    let ramp = ((tiling.overlap - 2 * tiling.margin) * unit) as f64;
    let centre = Tensor::arange(pixels, (Kind::Float, device)) + 0.5;
    let ramp_from = |distance: Tensor| ((distance - margin) / ramp).clamp(0.0, 1.0);
    let mut weight = Tensor::ones([pixels], (Kind::Float, device));
    if start > 0 {
        weight *= ramp_from(centre.shallow_clone());
    }
    if start + len < cells {
        weight *= ramp_from(-centre + pixels as f64);
    }
    weight
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::compare::{Deviation, UNIT_ROUNDOFF};

    #[test]
    fn tiles_cover_the_axis_with_at_least_the_overlap() {
        let tiling = Tiling { tile: 8, overlap: 2, margin: 0 };
        assert_eq!((tiling.starts(8), tiling.len(8)), (vec![0], 8));
        assert_eq!((tiling.starts(5), tiling.len(5)), (vec![0], 5));
        assert_eq!((tiling.starts(14), tiling.len(14)), (vec![0, 6], 8));
        assert_eq!((tiling.starts(15), tiling.len(15)), (vec![0, 4, 8], 7));
        assert_eq!((tiling.starts(9), tiling.len(9)), (vec![0, 3], 6));
        for cells in 9..100 {
            let (starts, len) = (tiling.starts(cells), tiling.len(cells));
            assert!(len <= tiling.tile, "{cells}: tiles of {len}");
            assert_eq!(starts[0], 0);
            assert_eq!(starts.last().unwrap() + len, cells, "last tile ends on the edge");
            for pair in starts.windows(2) {
                let shared = pair[0] + len - pair[1];
                assert!(shared >= tiling.overlap && pair[1] > pair[0], "{cells}: {starts:?} of {len}");
            }
            let n = starts.len() as i64;
            // The fewest tiles: one tile fewer could not reach the edge with every overlap kept.
            assert!((n - 1) * (tiling.tile - tiling.overlap) + tiling.overlap < cells, "{cells}: {starts:?}");
            // The shortest: one cell less and n tiles could not keep every overlap.
            assert!(n * (len - 1) - (n - 1) * tiling.overlap < cells, "{cells}: {starts:?} of {len}");
        }
    }

    /// A 3x3 box blur applied twice: a receptive field of 2 pixels each side, what a margin of 1 cell of
    /// 2 pixels hides exactly.
    fn local_filter(x: &Tensor) -> Result<Tensor, ()> {
        let channels = x.size()[1];
        let kernel = Tensor::ones([channels, 1, 3, 3], (Kind::Float, Device::Cpu)) / 9.0;
        let blur = |t: &Tensor| t.conv2d(&kernel, None::<Tensor>, [1, 1], [1, 1], [1, 1], channels);
        Ok(blur(&blur(x)))
    }

    #[test]
    fn a_local_network_gives_its_untiled_output_exactly() {
        let input = Tensor::rand([2, 3, 38, 54], (Kind::Float, Device::Cpu));
        let whole = local_filter(&input).unwrap();
        let tiling = Tiling { tile: 7, overlap: 4, margin: 1 };
        let mut tiles = 0;
        let tiled = map_tiled(&input, &tiling, 2, 2, local_filter, || tiles += 1).unwrap();
        assert_eq!(tiles, tiling.count(19, 27));
        assert!(tiles > 4);
        // Tile and whole may be convolved by different kernels (oneDNN picks by shape): two 9-tap sums of values
        // in [0, 1], each within 9 roundings of its magnitude (<= 1), and the blend's weighted average a few more.
        let bound = 32.0 * UNIT_ROUNDOFF;
        let err = Deviation::between(&tiled, &whole).max_abs;
        assert!(err <= bound, "max abs error {err:e} over {bound:e}");
    }

    #[test]
    fn without_the_margin_the_same_network_differs_so_the_test_above_can_fail() {
        let input = Tensor::rand([1, 1, 38, 54], (Kind::Float, Device::Cpu));
        let whole = local_filter(&input).unwrap();
        let tiling = Tiling { tile: 7, overlap: 4, margin: 0 };
        let tiled = map_tiled(&input, &tiling, 2, 2, local_filter, || {}).unwrap();
        assert!((tiled - whole).abs().max().double_value(&[]) > 1e-3);
    }

    #[test]
    fn cells_map_between_resolutions() {
        // An "encoder" averaging 4x4 pixels into a cell and a "decoder" repeating a cell into 4x4 pixels.
        let image = Tensor::rand([1, 2, 40, 24], (Kind::Float, Device::Cpu));
        let tiling = Tiling { tile: 4, overlap: 2, margin: 0 };
        let encode = |x: &Tensor| Ok::<_, ()>(x.avg_pool2d([4, 4], [4, 4], [0, 0], false, true, None::<i64>));
        let latent = map_tiled(&image, &tiling, 4, 1, encode, || {}).unwrap();
        let want = encode(&image).unwrap();
        assert_eq!(latent.size(), [1, 2, 10, 6]);
        // A 16-term average of values in [0, 1] summed in another order, and the blend's average of equal values.
        let bound = 32.0 * UNIT_ROUNDOFF;
        assert!(Deviation::between(&latent, &want).max_abs <= bound);
        let decode =
            |x: &Tensor| Ok::<_, ()>(x.repeat_interleave_self_int(4, 2, None).repeat_interleave_self_int(4, 3, None));
        let decoded = map_tiled(&latent, &tiling, 1, 4, decode, || {}).unwrap();
        assert!(Deviation::between(&decoded, &decode(&want).unwrap()).max_abs <= bound);
    }

    #[test]
    fn a_smooth_gradient_stays_smooth_across_tile_seams() {
        // A network with a visible tile-border artefact (it darkens the outermost pixels of whatever it
        // sees): blending must hide it, so the output rows stay a straight ramp with no step at any seam.
        let ramp = Tensor::linspace(0.0, 1.0, 96, (Kind::Float, Device::Cpu))
            .view([1, 1, 1, 96])
            .expand([1, 1, 64, 96], false);
        let vignetting = |x: &Tensor| {
            let y = x.copy();
            let (h, w) = (x.size()[2], x.size()[3]);
            for (dim, len) in [(2, h), (3, w)] {
                let _ = y.narrow(dim, 0, 1).f_mul_scalar_(0.5).unwrap();
                let _ = y.narrow(dim, len - 1, 1).f_mul_scalar_(0.5).unwrap();
            }
            Ok::<_, ()>(y)
        };
        let tiling = Tiling::with_tile(16);
        let tiled = map_tiled(&ramp.contiguous(), &tiling, 2, 2, vignetting, || {}).unwrap();
        // Away from the image border (where the artefact is the network's own), the largest step between
        // neighbours is the ramp's own step.
        let inner = tiled.narrow(2, 2, 60).narrow(3, 2, 92);
        let steps = inner.narrow(3, 1, 91) - inner.narrow(3, 0, 91);
        let step = 1.0 / 95.0;
        // The ramp's own values are rounded (u = 2^-24 of values <= 1) and each blended pixel is a weighted
        // average of two tiles' copies, a few roundings more: a seam's step would be of the artefact's size, 0.5.
        let bound = 64.0 * UNIT_ROUNDOFF;
        let worst = (steps - step).abs().max().double_value(&[]);
        assert!(worst <= bound, "a seam: step error {worst}");
        let rows = inner.narrow(2, 1, 59) - inner.narrow(2, 0, 59);
        assert!(rows.abs().max().double_value(&[]) <= bound);
    }
}

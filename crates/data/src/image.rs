//! The in-memory image of sana-sr: float samples in `[0, 1]`, row-major, channels interleaved (HWC).

/// An image of `channels` interleaved samples per pixel (1 = gray, 3 = RGB, 4 = RGBA).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl Image {
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), width * height * channels, "image buffer does not match {width}x{height}x{channels}");
        Self { width, height, channels, data }
    }

    pub fn zeros(width: usize, height: usize, channels: usize) -> Self {
        Self::new(width, height, channels, vec![0.0; width * height * channels])
    }

    /// The sample at column `x`, row `y`, channel `c`.
    pub fn at(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * self.channels + c]
    }
}

impl Image {
    /// The `width x height` window whose top-left pixel is (`x`, `y`); `None` if it does not fit.
    pub fn crop(&self, x: usize, y: usize, width: usize, height: usize) -> Option<Image> {
        if x + width > self.width || y + height > self.height {
            return None;
        }
        let row_len = width * self.channels;
        let mut data = Vec::with_capacity(height * row_len);
        for row in y..y + height {
            let start = (row * self.width + x) * self.channels;
            data.extend_from_slice(&self.data[start..start + row_len]);
        }
        Some(Image::new(width, height, self.channels, data))
    }

    /// The image rounded to 8-bit code values, as a file stores it. Benchmark LR images are 8-bit and so are
    /// the outputs tools write (basicsr scores `tensor2img` output), so images made in memory are rounded the
    /// same way before they are scored.
    pub fn to_8bit(&self) -> Image {
        let data = self.data.iter().map(|&v| f32::from(crate::io::quantize(v, 255.0)) / 255.0).collect();
        Image::new(self.width, self.height, self.channels, data)
    }

    /// Copies `tile` into this image with its top-left pixel at (`left`, `top`); what falls outside is cut off.
    /// Both must have the same number of channels.
    pub fn paste(&mut self, tile: &Image, left: usize, top: usize) {
        assert_eq!(
            tile.channels, self.channels,
            "pasting a {}-channel tile into a {}-channel image",
            tile.channels, self.channels
        );
        let width = tile.width.min(self.width.saturating_sub(left));
        for y in 0..tile.height.min(self.height.saturating_sub(top)) {
            let dst = ((top + y) * self.width + left) * self.channels;
            let src = y * tile.width * self.channels;
            self.data[dst..dst + width * self.channels].copy_from_slice(&tile.data[src..src + width * self.channels]);
        }
    }

    /// The image as RGB: gray is repeated into three channels, alpha is dropped (composited on nothing: SR
    /// training and evaluation see the stored colour).
    pub fn to_rgb(&self) -> Image {
        let data = match self.channels {
            3 => return self.clone(),
            1 | 2 => self.data.chunks_exact(self.channels).flat_map(|p| [p[0]; 3]).collect(),
            _ => self.data.chunks_exact(self.channels).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        };
        Image::new(self.width, self.height, 3, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_and_rgb() {
        let image = Image::new(3, 2, 2, (0..12).map(|i| i as f32).collect());
        let crop = image.crop(1, 1, 2, 1).unwrap();
        assert_eq!(crop.data, vec![8.0, 9.0, 10.0, 11.0]);
        assert!(image.crop(2, 0, 2, 1).is_none());
        assert_eq!(crop.to_rgb().data, vec![8.0, 8.0, 8.0, 10.0, 10.0, 10.0]);
        let rgba = Image::new(1, 1, 4, vec![0.1, 0.2, 0.3, 0.4]);
        assert_eq!(rgba.to_rgb().data, vec![0.1, 0.2, 0.3]);
    }

    #[test]
    fn paste_copies_and_cuts_off_at_the_border() {
        let mut canvas = Image::zeros(3, 2, 1);
        canvas.paste(&Image::new(2, 2, 1, vec![1.0, 2.0, 3.0, 4.0]), 2, 1);
        assert_eq!(canvas.data, vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        canvas.paste(&Image::new(2, 1, 1, vec![5.0, 6.0]), 0, 0);
        assert_eq!(canvas.data, vec![5.0, 6.0, 0.0, 0.0, 0.0, 1.0]);
    }
}

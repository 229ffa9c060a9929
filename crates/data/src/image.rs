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

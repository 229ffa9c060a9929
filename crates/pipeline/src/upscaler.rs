//! The one-step SR pipeline on images of any size (SANA-SR, after OSEDiff): resize the LR image to the output
//! size, encode it with the DC-AE, run the DiT once, decode; each stage in tiles when the image is large.

use std::panic::{catch_unwind, AssertUnwindSafe};

use sana_sr_core::{nn, no_grad, Device, Tensor};
use sana_sr_data::tensor::{to_image, to_tensor};
use sana_sr_data::Image;

use crate::sr_model::{ModelError, SrModel};
use crate::tiling::{map_tiled, Tiling};

/// Default tile side in output pixels: large enough that photos up to a megapixel run whole, small enough
/// that a tile of the full-size DC-AE fits a laptop's memory.
pub const DEFAULT_TILE: u32 = 1024;

/// The largest output refused up front: at 100 megapixels the output alone is 1.2 GB in f32 and the
/// pipeline holds a few such images.
pub const MAX_OUTPUT_PIXELS: u64 = 100_000_000;

/// Tiles are at least this many latent tokens wide, so that their overlap can hide seams.
const MIN_TILE_TOKENS: i64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum UpscaleError {
    #[error("the image is empty ({width}x{height})")]
    Empty { width: usize, height: usize },
    #[error("scale {scale} is not supported by model `{model}` (it supports {supported:?})")]
    Scale { scale: u32, model: String, supported: Vec<u32> },
    #[error("the output would be {width}x{height} = {} megapixels, over the limit of {} megapixels", width * height / 1_000_000, MAX_OUTPUT_PIXELS / 1_000_000)]
    TooLarge { width: u64, height: u64 },
    #[error("tile size {tile} is too small for this model: tiles must be at least {min} output pixels")]
    Tile { tile: u32, min: i64 },
    #[error("ran out of memory ({0}); try a smaller --tile")]
    OutOfMemory(String),
    #[error("the backend failed: {0}")]
    Backend(String),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// How to upscale one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpscaleOptions {
    /// Upscaling factor; `None` is the model's own.
    pub scale: Option<u32>,
    /// Tile side in output pixels (rounded down to whole latent tokens); `None` runs every stage whole.
    pub tile: Option<u32>,
}

impl Default for UpscaleOptions {
    fn default() -> Self {
        Self { scale: None, tile: Some(DEFAULT_TILE) }
    }
}

/// Progress through one image: `done` of `total` tiles over all three stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// A loaded model ready to upscale images.
///
/// ```
/// use sana_sr_data::Image;
/// use sana_sr_pipeline::{ModelSource, UpscaleOptions, Upscaler};
///
/// let upscaler = Upscaler::load(&ModelSource::default_model(), sana_sr_core::Device::Cpu)?;
/// let photo = Image::new(24, 16, 3, vec![0.5; 24 * 16 * 3]); // or sana_sr_data::io::read_image(path)?
/// let sharp = upscaler.upscale(&photo, &UpscaleOptions::default())?;
/// assert_eq!((sharp.width, sharp.height), (96, 64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Upscaler {
    pub model: SrModel,
    /// Holds the model's weights.
    _weights: nn::VarStore,
    device: Device,
}

impl Upscaler {
    pub fn new(model: SrModel, weights: nn::VarStore) -> Self {
        let device = weights.device();
        Self { model, _weights: weights, device }
    }

    pub fn load(source: &crate::ModelSource, device: Device) -> Result<Self, crate::RegistryError> {
        let (model, weights) = source.load(device)?;
        Ok(Self::new(model, weights))
    }

    /// The upscaling factor `options` asks for, checked against the model.
    pub fn scale(&self, options: &UpscaleOptions) -> Result<u32, UpscaleError> {
        let config = &self.model.config;
        let scale = options.scale.unwrap_or(config.scale);
        if config.scales.contains(&scale) {
            Ok(scale)
        } else {
            Err(UpscaleError::Scale { scale, model: config.name.clone(), supported: config.scales.clone() })
        }
    }

    pub fn upscale(&self, image: &Image, options: &UpscaleOptions) -> Result<Image, UpscaleError> {
        self.upscale_with_progress(image, options, |_| {})
    }

    /// [`Self::upscale`], calling `on_progress` after every tile. RGB(A) or gray in, RGB(A) out: alpha is
    /// resized bicubically beside the colour.
    pub fn upscale_with_progress(
        &self,
        image: &Image,
        options: &UpscaleOptions,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<Image, UpscaleError> {
        let scale = self.scale(options)?;
        if image.width == 0 || image.height == 0 {
            return Err(UpscaleError::Empty { width: image.width, height: image.height });
        }
        let (width, height) = (image.width as u64 * scale as u64, image.height as u64 * scale as u64);
        if width * height > MAX_OUTPUT_PIXELS {
            return Err(UpscaleError::TooLarge { width, height });
        }
        let tiling = self.tiling(options.tile)?;
        // libtorch reports failures (chiefly running out of memory) by panicking through tch: turn them into
        // this image's error so that a batch goes on with the next file.
        catch_unwind(AssertUnwindSafe(|| no_grad(|| self.run(image, scale, &tiling, &mut on_progress))))
            .unwrap_or_else(|panic| Err(backend_error(panic)))
    }

    fn tiling(&self, tile: Option<u32>) -> Result<Tiling, UpscaleError> {
        let Some(tile) = tile else { return Ok(Tiling::whole()) };
        let per_token = self.model.config.pixels_per_token();
        let tokens = tile as i64 / per_token;
        if tokens < MIN_TILE_TOKENS {
            return Err(UpscaleError::Tile { tile, min: MIN_TILE_TOKENS * per_token });
        }
        Ok(Tiling::with_tile(tokens))
    }

    fn run(
        &self,
        image: &Image,
        scale: u32,
        tiling: &Tiling,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<Image, UpscaleError> {
        let model = &self.model;
        let (out_h, out_w) = (image.height as i64 * scale as i64, image.width as i64 * scale as i64);
        let resize = |channels: &Image| model.resize_input(&to_tensor(channels, self.device), out_h, out_w);
        // Pad (repeating the border) to whole latent tokens; cropped off at the end.
        let per_token = model.config.pixels_per_token();
        let patch = model.config.transformer.patch_size;
        let pad = |n: i64| (n + per_token - 1) / per_token * per_token - n;
        let lr = resize(&image.to_rgb()) * 2.0 - 1.0;
        let lr = lr.pad([0, pad(out_w), 0, pad(out_h)], "replicate", None);

        let tokens = |n: i64| (n + pad(n)) / per_token;
        let per_stage = tiling.count(tokens(out_h), tokens(out_w));
        let total = 3 * per_stage;
        let mut done = 0;
        let mut tick = || {
            done += 1;
            on_progress(Progress { done, total });
        };
        let latent = map_tiled(&lr, tiling, per_token, patch, |t| model.encode(t), &mut tick)?;
        let latent = map_tiled(&latent, tiling, patch, patch, |t| model.restore(t), &mut tick)?;
        let decoded = map_tiled(&latent, tiling, patch, per_token, |t| model.decode(t), &mut tick)?;
        let sr = model.add_skip(decoded, &lr).narrow(2, 0, out_h).narrow(3, 0, out_w);
        let sr = ((sr + 1.0) / 2.0).clamp(0.0, 1.0);

        let sr = match alpha(image) {
            Some(alpha) => Tensor::cat(&[sr, resize(&alpha)], 1),
            None => sr,
        };
        Ok(to_image(&sr).expect("an NCHW tensor of one image"))
    }
}

/// The alpha channel of a gray+alpha or RGBA image.
fn alpha(image: &Image) -> Option<Image> {
    matches!(image.channels, 2 | 4).then(|| {
        let data = image.data.chunks_exact(image.channels).map(|p| p[image.channels - 1]).collect();
        Image::new(image.width, image.height, 1, data)
    })
}

fn backend_error(panic: Box<dyn std::any::Any + Send>) -> UpscaleError {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown error");
    // The first line of libtorch's message says what happened; the rest is a C++ backtrace.
    let first_line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or(message).trim().to_string();
    if message.contains("out of memory") || message.contains("CUDA error: out of memory") {
        UpscaleError::OutOfMemory(first_line)
    } else {
        UpscaleError::Backend(first_line)
    }
}

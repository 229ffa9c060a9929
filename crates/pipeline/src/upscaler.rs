//! The one-step SR pipeline on images of any size (SANA-SR, after OSEDiff): resize the LR image to the output
//! size, encode it with the DC-AE, run the DiT once, decode; each stage in tiles when the image is large.
//! A peer network ([`EsrganModel`]) runs on the LR image itself, in tiles of LR pixels.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use sana_sr_core::precision::{with_compute_kind, with_weights_cast_in_place, Precision};
use sana_sr_core::profile::stage;
use sana_sr_core::{nn, no_grad, Device, Tensor};
use sana_sr_data::tensor::{to_image, to_tensor};
use sana_sr_data::Image;

use sana_sr_data::resize::matlab::imresize_tensor;

use crate::condition::{self, ConditionError};
use crate::network::{EsrganModel, ModelConfig, Network};
use crate::sr_model::{ModelError, SrModel, SrModelConfig, MAX_STEPS};
use crate::tiling::{map_tiled, Tiling};

/// Default tile side in output pixels: large enough that photos up to a megapixel run whole, small enough
/// that a tile of the full-size DC-AE fits a laptop's memory.
pub const DEFAULT_TILE: u32 = 1024;

/// [`default_tile`] for a SANA-SR model: [`DEFAULT_TILE`] times the square root of how much narrower its widest
/// activation is than this, the full-size DC-AE's (`AutoencoderDcConfig::widest_activation`), so that its tile
/// holds about as much as a full-size DC-AE's; at most [`MAX_DEFAULT_TILE`].
const DEFAULT_TILE_WIDTH: f64 = 128.0;

/// The largest default tile (4 megapixels): a narrow model still runs larger images in tiles.
const MAX_DEFAULT_TILE: u32 = 2 * DEFAULT_TILE;

/// The tile side `upscale` takes unless told: [`DEFAULT_TILE`] for the peers and for a SANA-SR model as wide as
/// the full-size DC-AE, larger for a narrower one (up to [`MAX_DEFAULT_TILE`]), whose tile's memory is smaller.
/// Every cut recomputes the tiles' overlap, so a photo that fits one tile runs faster whole: the built-in
/// model upscales a 1200x1000 photo 12% faster in one tile than in two 1024-pixel ones in float32, 3% in
/// bfloat16 on a CPU with AMX (docs/benchmarks.md).
pub fn default_tile(config: &ModelConfig) -> u32 {
    let ModelConfig::Sana(config) = config else { return DEFAULT_TILE };
    let t = &config.transformer;
    // The DiT's tokens: its stream and its Mix-FFN's gated expansion, per output pixel of the latent grid.
    let ff_hidden = (0..t.num_layers).map(|i| t.block(i).ff_hidden).max().unwrap_or(0);
    let dit = (2 * ff_hidden).max(t.inner_dim()) as f64 / (config.pixels_per_token() as f64).powi(2);
    let widest = config.vae.widest_activation().max(dit);
    let side = DEFAULT_TILE as f64 * (DEFAULT_TILE_WIDTH / widest).sqrt();
    (side as u32).clamp(DEFAULT_TILE, MAX_DEFAULT_TILE)
}

/// Tiles are at least this many latent tokens wide, so that their overlap can hide seams.
const MIN_TILE_TOKENS: i64 = 4;

/// A peer's tiles are at least this many LR pixels wide (256 output pixels at x4).
const MIN_PEER_TILE: i64 = 64;

/// LR pixels of a peer tile's output discarded at an inner edge, at least. A convolution stack's output near
/// a cut depends on what the cut removed; Real-ESRGAN's own tiled inference pads its tiles by 10 LR pixels
/// (`tile_pad`, and realesrgan-ncnn-vulkan's `prepadding`), which leaves no visible seam, and the ramp past
/// the margin blends what remains (the seam bound is measured in `tests/esrgan_upscaler.rs`).
const PEER_MARGIN: i64 = 10;

/// LR pixels the image is extended by, mirrored (torch's `reflect`), before a peer runs, cropped off after:
/// what realesrgan-ncnn-vulkan, the engine both released peers ship with, does (`prepadding` 10) and
/// Real-ESRGAN's `pre_pad`. Measured on Set5's baby with general-x4v3: 88.9 dB from the ncnn engine's output
/// with it, 41.1 dB with the networks' bare zero padding (a rim ~25 LR pixels deep) and 37.2 dB repeating
/// the border instead.
pub const PEER_PREPAD: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum UpscaleError {
    #[error("the image is empty ({width}x{height})")]
    Empty { width: usize, height: usize },
    #[error("scale {scale} is not supported by model `{model}` (it supports {supported:?})")]
    Scale { scale: u32, model: String, supported: Vec<u32> },
    #[error("the output would be {width}x{height} = {} pixels, over the limit of {limit} pixels (--max-pixels raises it)", width.saturating_mul(*height))]
    TooLarge { width: u64, height: u64, limit: u64 },
    #[error("tile size {tile} is too small for this model: tiles must be at least {min} output pixels")]
    Tile { tile: u32, min: i64 },
    #[error("ran out of memory ({0}); try a smaller --tile")]
    OutOfMemory(String),
    #[error("the backend failed: {0}")]
    Backend(String),
    #[error("{0}")]
    Steps(String),
    #[error("cancelled")]
    Cancelled,
    #[error("this upscaler runs only in {fixed} (its weights are converted to it), not in {asked}")]
    Precision { fixed: &'static str, asked: &'static str },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// How to upscale one image.
#[derive(Debug, Clone, PartialEq)]
pub struct UpscaleOptions {
    /// Upscaling factor; `None` is the model's own.
    pub scale: Option<u32>,
    /// Largest tile side in output pixels (rounded down to whole latent tokens); `None` runs every stage whole.
    pub tile: Option<u32>,
    /// Sampler steps of a SANA-SR model; `None` is the model's own (peers run in one pass and take none).
    pub steps: Option<usize>,
    /// Seed of the start noise of a model whose sampler starts from noise.
    pub seed: u64,
    /// The image's tags, for a model with a text encoder (`None`: its untagged prompt).
    pub tags: Option<String>,
    /// Classifier-free guidance towards the tags' prompt, for a model with a text encoder (1 = none).
    pub guidance: f64,
    /// What the weight layers compute in.
    pub precision: Precision,
}

impl Default for UpscaleOptions {
    fn default() -> Self {
        Self {
            scale: None,
            tile: Some(DEFAULT_TILE),
            steps: None,
            seed: 0,
            tags: None,
            guidance: 1.0,
            precision: Precision::default(),
        }
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
    /// A SANA-SR model or a peer network.
    pub model: Network,
    /// Holds the model's weights.
    _weights: nn::VarStore,
    device: Device,
    /// The one precision it runs in, if fixed ([`Upscaler::in_one_precision`]).
    only: Option<Precision>,
}

impl Upscaler {
    /// The weights are frozen: an upscaler never trains them, and frozen weights are cast to a low precision
    /// once rather than at every call.
    pub fn new(model: impl Into<Network>, mut weights: nn::VarStore) -> Self {
        weights.freeze();
        let device = weights.device();
        Self { model: model.into(), _weights: weights, device, only: None }
    }

    /// Runs only in `precision`: a low one then converts the weight layers' weights at the first upscale, the
    /// float32 values freed (half the weights' memory for bf16 and f16; one precision's weights held instead
    /// of two), and an upscale asking for another precision is refused. For a process that upscales in one
    /// precision, as `upscale` and `serve` do.
    pub fn in_one_precision(mut self, precision: Precision) -> Self {
        self.only = Some(precision);
        self
    }

    pub fn load(source: &crate::ModelSource, device: Device) -> Result<Self, crate::RegistryError> {
        let (model, weights) = source.load_network(device)?;
        Ok(Self::new(model, weights))
    }

    /// The upscaling factor `options` asks for, checked against the model.
    pub fn scale(&self, options: &UpscaleOptions) -> Result<u32, UpscaleError> {
        checked_scale(&self.model.config(), options)
    }

    /// [`check_output_size`].
    pub fn check_output_size(&self, width: u64, height: u64, scale: u32) -> Result<(), UpscaleError> {
        check_output_size(width, height, scale)
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
        self.upscale_interruptible(image, options, |progress| {
            on_progress(progress);
            ControlFlow::Continue(())
        })
    }

    /// [`Self::upscale_with_progress`] whose `on_progress` may stop the work: after a
    /// [`ControlFlow::Break`], no further tile runs and the result is [`UpscaleError::Cancelled`] (a service
    /// cancels a running job this way, within one tile).
    pub fn upscale_interruptible(
        &self,
        image: &Image,
        options: &UpscaleOptions,
        mut on_progress: impl FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Image, UpscaleError> {
        let scale = self.scale(options)?;
        checked_steps(&self.model.config(), options)?;
        if image.width == 0 || image.height == 0 {
            return Err(UpscaleError::Empty { width: image.width, height: image.height });
        }
        self.check_output_size(image.width as u64, image.height as u64, scale)?;
        let tiling = self.tiling(options, scale)?;
        // The tiles ask this before they run: `map_tiled` reports progress but cannot be told to stop.
        let stopped = Cell::new(false);
        let mut on_progress = |progress| stopped.set(stopped.get() || on_progress(progress).is_break());
        let go_on = || if stopped.get() { Err(UpscaleError::Cancelled) } else { Ok(()) };
        // libtorch reports failures (chiefly running out of memory) by panicking through tch: turn them into
        // this image's error so that a batch goes on with the next file.
        let compute_kind = options.precision.compute_kind(self.device);
        if let Some(only) = self.only.filter(|only| only.compute_kind(self.device) != compute_kind) {
            let (fixed, asked) = (only.resolved_name(self.device), options.precision.resolved_name(self.device));
            return Err(UpscaleError::Precision { fixed, asked });
        }
        let mut upscale = || {
            with_compute_kind(compute_kind, || {
                no_grad(|| match &self.model {
                    Network::Sana(model) => self.run(model, image, scale, options, &tiling, &mut on_progress, &go_on),
                    Network::Esrgan(model) => self.run_peer(model, image, scale, &tiling, &mut on_progress, &go_on),
                })
            })
        };
        catch_unwind(AssertUnwindSafe(|| match self.only {
            Some(_) => with_weights_cast_in_place(upscale),
            None => upscale(),
        }))
        .unwrap_or_else(|panic| Err(backend_error(panic)))
    }

    fn tiling(&self, options: &UpscaleOptions, scale: u32) -> Result<Tiling, UpscaleError> {
        tiling(&self.model.config(), options.tile, scale)
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        model: &SrModel,
        image: &Image,
        scale: u32,
        options: &UpscaleOptions,
        tiling: &Tiling,
        on_progress: &mut dyn FnMut(Progress),
        go_on: &dyn Fn() -> Result<(), UpscaleError>,
    ) -> Result<Image, UpscaleError> {
        let (out_h, out_w) = (image.height as i64 * scale as i64, image.width as i64 * scale as i64);
        let lr = stage("resize", || sana_input(model, &to_tensor(&image.to_rgb(), self.device), out_h, out_w));
        let (per_token, patch) = (model.config.pixels_per_token(), model.config.transformer.patch_size);
        let per_stage = tiling.count(lr.size()[2] / per_token, lr.size()[3] / per_token);
        let total = 3 * per_stage;
        let mut done = 0;
        let mut tick = || {
            done += 1;
            on_progress(Progress { done, total });
        };
        let steps = options.steps.unwrap_or(model.config.sampler.steps);
        // Encoded once (and cached by the model), for every tile.
        let conditioning = stage("condition", || model.conditioning(options.tags.as_deref(), options.guidance))?;
        // Each tile asks `go_on` first, so that a cancelled upscale stops within one tile.
        let encode = |t: &Tensor| -> Result<Tensor, UpscaleError> {
            go_on()?;
            Ok(stage("encoder", || model.encode_lr(t))?)
        };
        let restore = |t: &Tensor| -> Result<Tensor, UpscaleError> {
            go_on()?;
            Ok(stage("transformer", || model.sample_with(t, steps, &conditioning))?)
        };
        let decode = |t: &Tensor| -> Result<Tensor, UpscaleError> {
            go_on()?;
            Ok(stage("decoder", || model.decode(t))?)
        };
        // What the tiles cost beyond the networks (cutting, blending) is the stage `tiles`.
        let encoded = stage("tiles", || map_tiled(&lr, tiling, per_token, patch, encode, &mut tick))?;
        // The start noise is drawn for the whole latent at once, so that tiles do not change it.
        let start = model.with_start_noise(encoded, options.seed);
        let latent = stage("tiles", || map_tiled(&start, tiling, patch, patch, restore, &mut tick))?;
        let decoded = stage("tiles", || map_tiled(&latent, tiling, patch, per_token, decode, &mut tick))?;
        stage("output", || {
            let sr = model.add_skip(decoded, &lr).narrow(2, 0, out_h).narrow(3, 0, out_w);
            let sr = ((sr + 1.0) / 2.0).clamp(0.0, 1.0);
            let sr = match alpha(image) {
                Some(alpha) => Tensor::cat(&[sr, model.resize_input(&to_tensor(&alpha, self.device), out_h, out_w)], 1),
                None => sr,
            };
            Ok(to_image(&sr).expect("an NCHW tensor of one image"))
        })
    }

    /// A peer on the LR image in [0, 1] as it is (extended by [`PEER_PREPAD`]; tiles of LR pixels, `scale`
    /// output pixels each), clamped; alpha resized by MATLAB's bicubic.
    fn run_peer(
        &self,
        model: &EsrganModel,
        image: &Image,
        scale: u32,
        tiling: &Tiling,
        on_progress: &mut dyn FnMut(Progress),
        go_on: &dyn Fn() -> Result<(), UpscaleError>,
    ) -> Result<Image, UpscaleError> {
        let (out_h, out_w) = (image.height * scale as usize, image.width * scale as usize);
        let (lr, (pad_y, pad_x)) = stage("resize", || peer_input(&to_tensor(&image.to_rgb(), self.device)));
        let total = tiling.count(lr.size()[2], lr.size()[3]);
        let mut done = 0;
        let tick = || {
            done += 1;
            on_progress(Progress { done, total });
        };
        let network = |t: &Tensor| go_on().map(|()| stage("network", || model.forward(t)));
        let sr = stage("tiles", || map_tiled(&lr, tiling, 1, scale as i64, network, tick))?;
        let (crop_y, crop_x) = (pad_y * scale as i64, pad_x * scale as i64);
        stage("output", || {
            let sr = sr.narrow(2, crop_y, out_h as i64).narrow(3, crop_x, out_w as i64).clamp(0.0, 1.0);
            let sr = match alpha(image) {
                Some(alpha) => {
                    let alpha = imresize_tensor(&to_tensor(&alpha, self.device), out_h, out_w)
                        .expect("an NCHW batch to a non-empty size");
                    Tensor::cat(&[sr, alpha.clamp(0.0, 1.0)], 1)
                }
                None => sr,
            };
            Ok(to_image(&sr).expect("an NCHW tensor of one image"))
        })
    }
}

/// A batch of LR images `[N, 3, h, w]` in [0, 1] to their SR images `[N, 3, scale·h, scale·w]` in [-1, 1]
/// terms, not clamped: what the upscaler computes without tiles (`tile: None`), before its clamp
/// (`((sr + 1) / 2).clamp(0, 1)`, which is `sr.clamp(-1, 1)` in these terms). A SANA-SR model resizes the LR
/// its own way and pads to whole tokens, a peer runs on the LR mirrored by [`PEER_PREPAD`]. Differentiable;
/// the trainer runs its teachers through it, under `no_grad`. `scale` must be one the model supports.
pub fn forward_batch(network: &Network, lr: &Tensor, scale: u32) -> Result<Tensor, ModelError> {
    let (h, w) = (lr.size()[2], lr.size()[3]);
    let (out_h, out_w) = (h * scale as i64, w * scale as i64);
    Ok(match network {
        Network::Sana(model) => model.forward(&sana_input(model, lr, out_h, out_w))?.narrow(2, 0, out_h),
        Network::Esrgan(model) => {
            let (lr, (pad_y, pad_x)) = peer_input(lr);
            let sr = model.forward(&lr) * 2.0 - 1.0;
            sr.narrow(2, pad_y * scale as i64, out_h).narrow(3, pad_x * scale as i64, out_w)
        }
    }
    .narrow(3, 0, out_w))
}

/// A SANA-SR model's input: the LR batch in [0, 1] resized to `out_h x out_w` its way, in [-1, 1], padded
/// (repeating the border) to whole latent tokens; the pad is cropped off the output.
fn sana_input(model: &SrModel, lr: &Tensor, out_h: i64, out_w: i64) -> Tensor {
    let per_token = model.config.pixels_per_token();
    let pad = |n: i64| (n + per_token - 1) / per_token * per_token - n;
    let lr = model.resize_input(lr, out_h, out_w) * 2.0 - 1.0;
    lr.pad([0, pad(out_w), 0, pad(out_h)], "replicate", None)
}

/// A peer's input: the LR batch mirrored by [`PEER_PREPAD`] pixels, and the `(rows, columns)` added on each
/// side. A mirror needs a pixel beyond the one mirrored about: less padding on a tiny image.
fn peer_input(lr: &Tensor) -> (Tensor, (i64, i64)) {
    let (h, w) = (lr.size()[2], lr.size()[3]);
    let (pad_y, pad_x) = (PEER_PREPAD.min(h - 1), PEER_PREPAD.min(w - 1));
    (lr.pad([pad_x, pad_x, pad_y, pad_y], "reflect", None), (pad_y, pad_x))
}

/// The factor `options` asks of a model of `config`, and their tile checked: what [`Upscaler::upscale`]
/// refuses for any image, known from the model's config alone (a service checks a request with it before a
/// worker runs the model).
pub fn check_options(config: &ModelConfig, options: &UpscaleOptions) -> Result<u32, UpscaleError> {
    let scale = checked_scale(config, options)?;
    checked_steps(config, options)?;
    checked_prompt(config, options)?;
    tiling(config, options.tile, scale)?;
    Ok(scale)
}

/// Refuses an output over the process's pixel limit ([`sana_sr_data::io::max_pixels`]: at 100 megapixels
/// the output alone is 1.2 GB in f32, and the pipeline holds a few such images) for an input of
/// `width x height` at `scale`: a caller with the input's header alone can check before decoding it.
pub fn check_output_size(width: u64, height: u64, scale: u32) -> Result<(), UpscaleError> {
    let (width, height) = (width.saturating_mul(u64::from(scale)), height.saturating_mul(u64::from(scale)));
    let limit = sana_sr_data::io::max_pixels();
    if width.saturating_mul(height) > limit {
        return Err(UpscaleError::TooLarge { width, height, limit });
    }
    Ok(())
}

fn checked_scale(config: &ModelConfig, options: &UpscaleOptions) -> Result<u32, UpscaleError> {
    let scale = options.scale.unwrap_or(config.scale());
    if config.scales().contains(&scale) {
        Ok(scale)
    } else {
        Err(UpscaleError::Scale { scale, model: config.name().to_string(), supported: config.scales() })
    }
}

fn checked_steps(config: &ModelConfig, options: &UpscaleOptions) -> Result<(), UpscaleError> {
    match (config, options.steps) {
        (_, None) => Ok(()),
        (ModelConfig::Esrgan(_), Some(_)) => Err(UpscaleError::Steps(format!(
            "model `{}` is a peer network, which runs in one pass: it takes no sampler steps",
            config.name()
        ))),
        (ModelConfig::Sana(_), Some(steps)) if !(1..=MAX_STEPS).contains(&steps) => {
            Err(UpscaleError::Steps(format!("{steps} sampler steps are outside 1..={MAX_STEPS}")))
        }
        (ModelConfig::Sana(_), Some(_)) => Ok(()),
    }
}

/// Tags and guidance need a text encoder; the guidance scale is checked whatever the model.
fn checked_prompt(config: &ModelConfig, options: &UpscaleOptions) -> Result<(), UpscaleError> {
    condition::check_guidance(options.guidance).map_err(ModelError::from)?;
    let text = matches!(config, ModelConfig::Sana(c) if c.text.is_some());
    if !text && (options.tags.is_some() || options.guidance != 1.0) {
        return Err(ModelError::from(ConditionError::NoTextEncoder(config.name().to_string())).into());
    }
    Ok(())
}

fn tiling(config: &ModelConfig, tile: Option<u32>, scale: u32) -> Result<Tiling, UpscaleError> {
    match config {
        ModelConfig::Sana(config) => sana_tiling(config, tile),
        ModelConfig::Esrgan(_) => peer_tiling(tile, scale),
    }
}

/// SANA-SR tiles: whole latent tokens, `tile` output pixels.
fn sana_tiling(config: &SrModelConfig, tile: Option<u32>) -> Result<Tiling, UpscaleError> {
    let Some(tile) = tile else { return Ok(Tiling::whole()) };
    let per_token = config.pixels_per_token();
    let tokens = tile as i64 / per_token;
    if tokens < MIN_TILE_TOKENS {
        return Err(UpscaleError::Tile { tile, min: MIN_TILE_TOKENS * per_token });
    }
    Ok(Tiling::with_tile(tokens))
}

/// Peer tiles: `tile / scale` LR pixels, overlapping by a quarter of that (at least twice the margin and 8
/// more, for the ramp), a sixteenth discarded (at least [`PEER_MARGIN`]).
pub fn peer_tiling(tile: Option<u32>, scale: u32) -> Result<Tiling, UpscaleError> {
    let Some(tile) = tile else { return Ok(Tiling::whole()) };
    let pixels = tile as i64 / scale as i64;
    if pixels < MIN_PEER_TILE {
        return Err(UpscaleError::Tile { tile, min: MIN_PEER_TILE * scale as i64 });
    }
    let margin = (pixels / 16).max(PEER_MARGIN);
    let overlap = (pixels / 4).max(2 * margin + 8);
    Ok(Tiling { tile: pixels, overlap, margin })
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

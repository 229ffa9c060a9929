//! The DiT's input embeddings (diffusers `models/embeddings.py` and `normalization.AdaLayerNormSingle`):
//! patches of the latent, the timestep (and SANA-Sprint's guidance) conditioning, and the caption projection.

use sana_sr_core::{nn, Device, Kind, Tensor};

use crate::layers::{ConvConfig, Layer};

/// Width of the sinusoidal timestep features (`Timesteps(num_channels=256, ...)` in the reference).
const TIMESTEP_CHANNELS: i64 = 256;

/// Patchify: a `patch_size`-strided convolution to tokens `[B, (H/p)·(W/p), D]` in row-major patch order
/// (diffusers `PatchEmbed` with `layer_norm=False`, `flatten=True`), plus the optional 2D sin-cos positional
/// embedding. Latent sizes that are not a multiple of the patch are floored, as the strided convolution does.
#[derive(Debug)]
pub struct PatchEmbed {
    pub proj: Layer,
    /// `Some((base_size, interpolation_scale))` when the config has an `interpolation_scale`.
    pos_embed: Option<(i64, f64)>,
}

impl PatchEmbed {
    pub fn new(
        p: nn::Path,
        in_channels: i64,
        embed_dim: i64,
        patch_size: i64,
        sample_size: i64,
        interpolation_scale: Option<f64>,
    ) -> Self {
        let cfg = ConvConfig { stride: patch_size, ..Default::default() };
        let proj = Layer::conv2d(&p / "proj", in_channels, embed_dim, patch_size, cfg);
        Self { proj, pos_embed: interpolation_scale.map(|scale| (sample_size / patch_size, scale)) }
    }

    /// `latent`: NCHW → tokens `[B, N, D]`.
    pub fn forward(&self, latent: &Tensor) -> Tensor {
        let x = self.proj.forward(latent);
        let (height, width) = (x.size()[2], x.size()[3]);
        let tokens = x.flatten(2, -1).transpose(1, 2);
        match self.pos_embed {
            None => tokens,
            Some((base_size, scale)) => {
                let dim = tokens.size()[2];
                let pos = sincos_pos_embed_2d(dim, height, width, base_size, scale, tokens.device());
                (&tokens + pos.unsqueeze(0)).to_kind(tokens.kind())
            }
        }
    }
}

/// diffusers `get_2d_sincos_pos_embed` for a `height`×`width` token grid, `[H·W, dim]` in float32.
///
/// Token `(r, c)` gets the 1D embedding of its column coordinate in the first half and of its row coordinate
/// in the second (the reference's meshgrid with "xy" indexing puts w first). Coordinates are
/// `index / (extent / base_size) / interpolation_scale` in float32; the sines are taken in float64.
fn sincos_pos_embed_2d(dim: i64, height: i64, width: i64, base_size: i64, scale: f64, device: Device) -> Tensor {
    let coords =
        |extent: i64| Tensor::arange(extent, (Kind::Float, device)) / (extent as f64 / base_size as f64) / scale;
    let cols = coords(width).unsqueeze(0).expand([height, width], false).reshape([-1]);
    let rows = coords(height).unsqueeze(1).expand([height, width], false).reshape([-1]);
    Tensor::cat(&[sincos_1d(dim / 2, &cols), sincos_1d(dim / 2, &rows)], 1).to_kind(Kind::Float)
}

/// diffusers `get_1d_sincos_pos_embed_from_grid`: `[sin(pos·ω), cos(pos·ω)]`, `ω_i = 10000^(-i/(dim/2))`.
fn sincos_1d(dim: i64, pos: &Tensor) -> Tensor {
    let half = dim / 2;
    let omega = Tensor::arange(half, (Kind::Double, pos.device())) / (dim as f64 / 2.0);
    let omega = (omega * -(10000f64.ln())).exp();
    let angles = pos.to_kind(Kind::Double).outer(&omega);
    Tensor::cat(&[angles.sin(), angles.cos()], 1)
}

/// diffusers `get_timestep_embedding` with the settings every SANA embedder uses (`flip_sin_to_cos=True`,
/// `downscale_freq_shift=0`, `scale=1`, `max_period=10000`): `[cos(t·f), sin(t·f)]`, `f_i = 10000^(-i/128)`,
/// computed in float32 like the reference.
pub fn timestep_features(timesteps: &Tensor) -> Tensor {
    let half = TIMESTEP_CHANNELS / 2;
    let exponent = Tensor::arange(half, (Kind::Float, timesteps.device())) * -(10000f64.ln()) / half as f64;
    let angles = timesteps.to_kind(Kind::Float).unsqueeze(1) * exponent.exp().unsqueeze(0);
    Tensor::cat(&[angles.cos(), angles.sin()], 1)
}

/// diffusers `TimestepEmbedding(in_channels=256, time_embed_dim=D)`: linear → SiLU → linear.
#[derive(Debug)]
pub struct TimestepEmbedding {
    pub linear_1: Layer,
    pub linear_2: Layer,
}

impl TimestepEmbedding {
    pub fn new(p: nn::Path, dim: i64) -> Self {
        Self {
            linear_1: Layer::linear(&p / "linear_1", TIMESTEP_CHANNELS, dim, true),
            linear_2: Layer::linear(&p / "linear_2", dim, dim, true),
        }
    }

    /// Scalars `[B]` → `[B, D]` in `kind`.
    pub fn forward(&self, values: &Tensor, kind: Kind) -> Tensor {
        self.linear_2.forward(&self.linear_1.forward(&timestep_features(values).to_kind(kind)).silu())
    }
}

/// The conditioning of the blocks: diffusers `AdaLayerNormSingle` (SANA), or
/// `SanaCombinedTimestepGuidanceEmbeddings` (SANA-Sprint, which adds an embedding of the guidance scale).
/// Both end in SiLU → linear to the six modulation vectors of every block.
#[derive(Debug)]
pub struct TimeEmbed {
    /// `time_embed.emb.timestep_embedder` (AdaLayerNormSingle) or `time_embed.timestep_embedder` (Sprint).
    pub timestep_embedder: TimestepEmbedding,
    /// `time_embed.guidance_embedder`, with guidance embeds only.
    pub guidance_embedder: Option<TimestepEmbedding>,
    pub linear: Layer,
}

impl TimeEmbed {
    pub fn new(p: nn::Path, dim: i64, guidance_embeds: bool) -> Self {
        let (timestep_embedder, guidance_embedder) = if guidance_embeds {
            (
                TimestepEmbedding::new(&p / "timestep_embedder", dim),
                Some(TimestepEmbedding::new(&p / "guidance_embedder", dim)),
            )
        } else {
            (TimestepEmbedding::new(&p / "emb" / "timestep_embedder", dim), None)
        };
        let linear = Layer::linear(&p / "linear", dim, 6 * dim, true);
        Self { timestep_embedder, guidance_embedder, linear }
    }

    /// Returns the modulation `[B, 6D]` and the embedded timestep `[B, D]` (used by the output norm).
    /// `guidance` is used exactly when the model has a guidance embedder; the caller checks that.
    pub fn forward(&self, timestep: &Tensor, guidance: Option<&Tensor>, kind: Kind) -> (Tensor, Tensor) {
        let embedded = self.timestep_embedder.forward(timestep, kind);
        let embedded = match (&self.guidance_embedder, guidance) {
            (Some(embedder), Some(guidance)) => embedded + embedder.forward(guidance, kind),
            _ => embedded,
        };
        (self.linear.forward(&embedded.silu()), embedded)
    }
}

/// diffusers `PixArtAlphaTextProjection` (tanh-GELU between two linears): caption features to the DiT width.
#[derive(Debug)]
pub struct CaptionProjection {
    pub linear_1: Layer,
    pub linear_2: Layer,
}

impl CaptionProjection {
    pub fn new(p: nn::Path, in_features: i64, hidden: i64) -> Self {
        Self {
            linear_1: Layer::linear(&p / "linear_1", in_features, hidden, true),
            linear_2: Layer::linear(&p / "linear_2", hidden, hidden, true),
        }
    }

    pub fn forward(&self, caption: &Tensor) -> Tensor {
        self.linear_2.forward(&self.linear_1.forward(caption).gelu("tanh"))
    }
}

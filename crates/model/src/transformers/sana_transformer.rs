//! SANA's linear-attention DiT, diffusers `SanaTransformer2DModel` and `SanaTransformerBlock`
//! (`diffusers/models/transformers/sana_transformer.py`), with its variable names as checkpoint keys.
//!
//! Data flow: patchify the latent to tokens → N blocks (modulated linear self-attention, cross-attention to
//! the projected caption, modulated Mix-FFN), all conditioned on one timestep vector → modulated final norm →
//! linear → unpatchify.

use sana_sr_core::{nn, Kind, Tensor};

use super::attention::{AttentionDims, CrossAttention, LinearSelfAttention};
use super::config::{BlockWidths, SanaTransformerConfig};
use super::embeddings::{CaptionProjection, PatchEmbed, TimeEmbed};
use crate::checkpoint::{CheckpointError, Pretrained};
use crate::layers::{variables, GluMbConv, Layer, LayerNorm, RmsNorm};

/// Epsilon of the output norm (`SanaModulatedNorm(..., eps=1e-6)`, not the config's `norm_eps`).
const NORM_OUT_EPS: f64 = 1e-6;
/// Epsilon of `caption_norm` (`RMSNorm(inner_dim, eps=1e-5)`).
const CAPTION_NORM_EPS: f64 = 1e-5;
/// The logit bias of a masked-out caption token (diffusers' mask-to-bias conversion in `forward`).
const MASKED_BIAS: f64 = -10000.0;

#[derive(Debug, thiserror::Error)]
pub enum SanaTransformerError {
    #[error("unsupported SanaTransformer2DModel config: {0}")]
    Config(String),
    #[error("bad input to SanaTransformer2DModel: {0}")]
    Input(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

type Result<T> = std::result::Result<T, SanaTransformerError>;

/// What every block reads besides the image tokens: computed once per forward by
/// [`SanaTransformer2DModel::prepare`].
#[derive(Debug)]
pub struct BlockConditioning {
    /// The six modulation vectors of the blocks, `[B, 6D]` (diffusers' `timestep` after `time_embed`).
    pub timestep: Tensor,
    /// `[B, D]`, modulates the output norm.
    pub embedded_timestep: Tensor,
    /// The projected and RMS-normalised caption, `[B, L, D]`.
    pub encoder_hidden_states: Tensor,
    /// Additive cross-attention bias `[B, 1, 1, L]`: 0 for kept tokens, −10000 for padding.
    pub encoder_bias: Option<Tensor>,
    /// The token grid, `latent size / patch_size` (floored).
    pub height: i64,
    pub width: i64,
}

/// One DiT block (diffusers `SanaTransformerBlock`).
#[derive(Debug)]
pub struct SanaTransformerBlock {
    pub norm1: LayerNorm,
    pub attn1: LinearSelfAttention,
    /// The norm before the feed-forward; cross-attention reads the un-normalised tokens, as in the reference.
    pub norm2: LayerNorm,
    pub attn2: CrossAttention,
    pub ff: GluMbConv,
    /// `[6, D]`: shift/scale/gate of self-attention, then shift/scale/gate of the feed-forward.
    pub scale_shift_table: Tensor,
}

impl SanaTransformerBlock {
    /// The block of a config already checked by [`SanaTransformer2DModel::new`].
    fn new(p: nn::Path, cfg: &SanaTransformerConfig, widths: BlockWidths, cross: (i64, i64, i64)) -> Self {
        let dim = cfg.inner_dim();
        let (_, cross_head_dim, cross_dim) = cross;
        let self_attn = AttentionDims {
            query_dim: dim,
            kv_dim: dim,
            heads: widths.heads,
            head_dim: cfg.attention_head_dim,
            qkv_bias: cfg.attention_bias,
            out_bias: true,
        };
        let cross_attn = AttentionDims {
            query_dim: dim,
            kv_dim: cross_dim,
            heads: widths.cross_heads,
            head_dim: cross_head_dim,
            qkv_bias: true,
            out_bias: true,
        };
        Self {
            norm1: LayerNorm::new(&p / "norm1", dim, cfg.norm_eps, false, false),
            attn1: LinearSelfAttention::new(&p / "attn1", self_attn, cfg.qk_norm),
            norm2: LayerNorm::new(&p / "norm2", dim, cfg.norm_eps, cfg.norm_elementwise_affine, true),
            attn2: CrossAttention::new(&p / "attn2", cross_attn, cfg.qk_norm),
            ff: GluMbConv::with_hidden(&p / "ff", dim, dim, widths.ff_hidden, false, false),
            scale_shift_table: variables::var(&p, "scale_shift_table", &[6, dim], random_table(dim)),
        }
    }

    /// `hidden_states`: tokens `[B, N, D]` → `[B, N, D]`.
    pub fn forward(&self, hidden_states: &Tensor, cond: &BlockConditioning) -> Tensor {
        let batch = hidden_states.size()[0];
        let modulation = self.scale_shift_table.unsqueeze(0) + cond.timestep.reshape([batch, 6, -1]);
        let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp]: [Tensor; 6] =
            modulation.chunk(6, 1).try_into().expect("a [B, 6, D] tensor splits into six chunks");

        let x = self.norm1.forward(hidden_states) * (scale_msa + 1.0) + shift_msa;
        let x = self.attn1.forward(&x.to_kind(hidden_states.kind()));
        let hidden_states = hidden_states + gate_msa * x;

        let hidden_states = self.attn2.forward(&hidden_states, &cond.encoder_hidden_states, cond.encoder_bias.as_ref())
            + &hidden_states;

        let x = self.norm2.forward(&hidden_states) * (scale_mlp + 1.0) + shift_mlp;
        let x = x.unflatten(1, [cond.height, cond.width]).permute([0, 3, 1, 2]);
        let x = self.ff.forward(&x).flatten(2, 3).permute([0, 2, 1]);
        hidden_states + gate_mlp * x
    }
}

/// diffusers `SanaTransformer2DModel`, inference.
#[derive(Debug)]
pub struct SanaTransformer2DModel {
    pub config: SanaTransformerConfig,
    pub patch_embed: PatchEmbed,
    pub time_embed: TimeEmbed,
    pub caption_projection: CaptionProjection,
    pub caption_norm: RmsNorm,
    pub transformer_blocks: Vec<SanaTransformerBlock>,
    /// `[2, D]`: shift and scale of the output norm.
    pub scale_shift_table: Tensor,
    /// The output norm (`norm_out.norm`, no weights).
    pub norm_out: LayerNorm,
    pub proj_out: Layer,
}

impl Pretrained for SanaTransformer2DModel {
    type Config = SanaTransformerConfig;
    type Error = SanaTransformerError;

    fn build(p: nn::Path, config: &SanaTransformerConfig) -> Result<Self> {
        Self::new(p, config)
    }

    fn config(&self) -> &SanaTransformerConfig {
        &self.config
    }
}

impl SanaTransformer2DModel {
    /// Builds the model's variables under `p`, randomly initialised like the reference.
    pub fn new(p: nn::Path, config: &SanaTransformerConfig) -> Result<Self> {
        let cross = check(config)?;
        let dim = config.inner_dim();
        let patch = config.patch_size;
        let blocks = &p / "transformer_blocks";
        Ok(Self {
            config: config.clone(),
            patch_embed: PatchEmbed::new(
                &p / "patch_embed",
                config.in_channels,
                dim,
                patch,
                config.sample_size,
                config.interpolation_scale,
            ),
            time_embed: TimeEmbed::new(&p / "time_embed", dim, config.guidance_embeds),
            caption_projection: CaptionProjection::new(&p / "caption_projection", config.caption_channels, dim),
            caption_norm: RmsNorm::new(&p / "caption_norm", dim, CAPTION_NORM_EPS, true, false),
            transformer_blocks: (0..config.num_layers)
                .map(|i| SanaTransformerBlock::new(&blocks / i, config, config.block(i), cross))
                .collect(),
            scale_shift_table: variables::var(&p, "scale_shift_table", &[2, dim], random_table(dim)),
            norm_out: LayerNorm::new(&p / "norm_out" / "norm", dim, NORM_OUT_EPS, false, false),
            proj_out: Layer::linear(&p / "proj_out", dim, patch * patch * config.out_channels(), true),
        })
    }

    /// The denoiser: `hidden_states` NCHW latent, `encoder_hidden_states` `[B, L, caption_channels]`,
    /// `timestep` `[B]` (float), `encoder_attention_mask` `[B, L]` with 1 = keep and 0 = padding, `guidance`
    /// `[B]` exactly when the config has `guidance_embeds`. Returns `[B, out_channels, H', W']` with
    /// `H' = H / patch_size · patch_size` (floored).
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        guidance: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (mut x, cond) =
            self.prepare(hidden_states, encoder_hidden_states, timestep, encoder_attention_mask, guidance)?;
        for block in &self.transformer_blocks {
            x = block.forward(&x, &cond);
        }
        Ok(self.finish(&x, &cond))
    }

    /// Everything before the blocks: checks the inputs, returns the patch tokens `[B, N, D]` and what the
    /// blocks read. [`Self::forward`] is `prepare`, every block in order, then [`Self::finish`].
    pub fn prepare(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        guidance: Option<&Tensor>,
    ) -> Result<(Tensor, BlockConditioning)> {
        self.check_inputs(hidden_states, encoder_hidden_states, timestep, encoder_attention_mask, guidance)?;
        let kind = hidden_states.kind();
        let patch = self.config.patch_size;
        let size = hidden_states.size();
        let (height, width) = (size[2] / patch, size[3] / patch);

        let tokens = self.patch_embed.forward(hidden_states);
        let (timestep, embedded_timestep) = self.time_embed.forward(timestep, guidance, kind);
        let caption = self.caption_projection.forward(encoder_hidden_states);
        let encoder_hidden_states = self.caption_norm.forward(&caption);
        let encoder_bias = encoder_attention_mask.map(|mask| mask_to_bias(mask, kind));
        let cond =
            BlockConditioning { timestep, embedded_timestep, encoder_hidden_states, encoder_bias, height, width };
        Ok((tokens, cond))
    }

    /// Everything after the blocks: modulated output norm, projection, unpatchify to NCHW.
    pub fn finish(&self, hidden_states: &Tensor, cond: &BlockConditioning) -> Tensor {
        let batch = hidden_states.size()[0];
        let modulation = self.scale_shift_table.unsqueeze(0) + cond.embedded_timestep.unsqueeze(1);
        let [shift, scale]: [Tensor; 2] =
            modulation.chunk(2, 1).try_into().expect("a [B, 2, D] tensor splits into two chunks");
        let x = self.norm_out.forward(hidden_states) * (scale + 1.0) + shift;
        let x = self.proj_out.forward(&x);
        let p = self.config.patch_size;
        x.reshape([batch, cond.height, cond.width, p, p, -1]).permute([0, 5, 1, 3, 2, 4]).reshape([
            batch,
            -1,
            cond.height * p,
            cond.width * p,
        ])
    }

    fn check_inputs(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        mask: Option<&Tensor>,
        guidance: Option<&Tensor>,
    ) -> Result<()> {
        let cfg = &self.config;
        let bad = |what: String| Err(SanaTransformerError::Input(what));
        let latent = hidden_states.size();
        if latent.len() != 4 || latent[1] != cfg.in_channels || latent[2] < cfg.patch_size || latent[3] < cfg.patch_size
        {
            return bad(format!(
                "hidden_states must be [B, {}, H, W] with H, W >= patch_size {}, got {latent:?}",
                cfg.in_channels, cfg.patch_size
            ));
        }
        let batch = latent[0];
        let caption = encoder_hidden_states.size();
        if caption.len() != 3 || caption[0] != batch || caption[2] != cfg.caption_channels {
            return bad(format!(
                "encoder_hidden_states must be [{batch}, L, {}], got {caption:?}",
                cfg.caption_channels
            ));
        }
        if timestep.size() != [batch] {
            return bad(format!("timestep must be [{batch}] (one per sample), got {:?}", timestep.size()));
        }
        if let Some(mask) = mask {
            if mask.size() != [batch, caption[1]] {
                return bad(format!("encoder_attention_mask must be [{batch}, {}], got {:?}", caption[1], mask.size()));
            }
        }
        match (cfg.guidance_embeds, guidance) {
            (true, None) => bad("this model has guidance embeddings (SANA-Sprint): `guidance` is required".into()),
            (false, Some(_)) => bad("this model has no guidance embeddings: `guidance` must be None".into()),
            (true, Some(g)) if g.size() != [batch] => bad(format!("guidance must be [{batch}], got {:?}", g.size())),
            _ => Ok(()),
        }
    }
}

/// diffusers' conversion of a keep/discard mask `[B, L]` (1/0) to the additive logit bias
/// `(1 - mask) · −10000`, shaped `[B, 1, 1, L]` to broadcast over heads and queries.
pub fn mask_to_bias(mask: &Tensor, kind: Kind) -> Tensor {
    ((-mask.to_kind(kind) + 1.0) * MASKED_BIAS).unsqueeze(1).unsqueeze(1)
}

/// The reference's `torch.randn(n, dim) / dim**0.5` init of the modulation tables.
fn random_table(dim: i64) -> nn::Init {
    nn::Init::Randn { mean: 0.0, stdev: 1.0 / (dim as f64).sqrt() }
}

/// Rejects configs the reference cannot run; returns the cross-attention's (heads, head_dim, kv width).
pub(crate) fn check(cfg: &SanaTransformerConfig) -> Result<(i64, i64, i64)> {
    let bad = |what: &str| Err(SanaTransformerError::Config(what.to_string()));
    let (Some(heads), Some(head_dim), Some(cross_dim)) =
        (cfg.num_cross_attention_heads, cfg.cross_attention_head_dim, cfg.cross_attention_dim)
    else {
        // The reference builds no `attn2`/`norm2` then, and its forward fails.
        return bad("cross-attention is required: num_cross_attention_heads, cross_attention_head_dim and cross_attention_dim must be set");
    };
    let sizes = [cfg.in_channels, cfg.out_channels(), cfg.num_attention_heads, cfg.attention_head_dim, heads, head_dim];
    if sizes.iter().any(|&s| s <= 0) || cfg.caption_channels <= 0 || cfg.patch_size <= 0 {
        return bad("channel counts, head counts, head widths and patch_size must be positive");
    }
    variables::check_sizes(&[
        ("in_channels", cfg.in_channels),
        ("out_channels", cfg.out_channels()),
        ("num_attention_heads", cfg.num_attention_heads),
        ("attention_head_dim", cfg.attention_head_dim),
        ("num_cross_attention_heads", heads),
        ("cross_attention_head_dim", head_dim),
        ("caption_channels", cfg.caption_channels),
        ("patch_size", cfg.patch_size),
    ])
    .and_then(|()| variables::check_depths(&[("num_layers", cfg.num_layers.try_into().unwrap_or(i64::MAX))]))
    .map_err(SanaTransformerError::Config)?;
    let dim = cfg.inner_dim();
    if !(cfg.mlp_ratio.is_finite() && cfg.mlp_ratio * dim as f64 <= variables::MAX_CONFIG_SIZE as f64) {
        return bad(&format!("mlp_ratio * inner_dim must be a number up to {}", variables::MAX_CONFIG_SIZE));
    }
    if cross_dim != dim {
        return bad(&format!(
            "cross_attention_dim ({cross_dim}) must equal num_attention_heads * attention_head_dim ({dim}): \
             the caption projection feeds cross-attention at that width"
        ));
    }
    if (cfg.mlp_ratio * dim as f64) < 1.0 {
        return bad("mlp_ratio * inner_dim must be at least 1");
    }
    if let Some(widths) = &cfg.block_widths {
        if widths.len() != cfg.num_layers {
            return bad(&format!("block_widths has {} entries for {} blocks", widths.len(), cfg.num_layers));
        }
        if widths.iter().any(|w| w.heads < 1 || w.cross_heads < 1 || w.ff_hidden < 1) {
            return bad("every block needs at least one head, one cross-attention head and one Mix-FFN channel");
        }
    }
    if cfg.interpolation_scale.is_some() && (dim % 4 != 0 || cfg.sample_size < cfg.patch_size) {
        // `get_2d_sincos_pos_embed` splits the width in four (sin/cos of rows and columns).
        return bad("a sin-cos positional embedding (interpolation_scale) needs inner_dim divisible by 4 and sample_size >= patch_size");
    }
    Ok((heads, head_dim, cross_dim))
}

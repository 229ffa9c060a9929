//! The configuration of [`super::SanaTransformer2DModel`]: diffusers' `config.json` for
//! `SanaTransformer2DModel`, field for field, with the defaults of its `__init__`
//! (`diffusers/models/transformers/sana_transformer.py`).

use serde::{Deserialize, Serialize};

/// Normalisation of queries and keys before attention (diffusers `Attention(qk_norm=...)`).
///
/// Only the variant SANA uses exists: the Sana processors apply `norm_q`/`norm_k` to the whole projected width
/// (all heads together), which the per-head variants of diffusers (`"rms_norm"`, `"layer_norm"`) do not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QkNorm {
    /// RMS norm over `heads * head_dim` with a learned weight and eps 1e-5 (SANA 1.5, SANA-Sprint).
    RmsNormAcrossHeads,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SanaTransformerConfig {
    pub in_channels: i64,
    /// `None` means `in_channels`.
    pub out_channels: Option<i64>,
    pub num_attention_heads: i64,
    pub attention_head_dim: i64,
    pub num_layers: usize,
    pub num_cross_attention_heads: Option<i64>,
    pub cross_attention_head_dim: Option<i64>,
    /// Width of the keys/values of cross-attention: the caption projection's output, so it must equal
    /// `num_attention_heads * attention_head_dim` for a model that runs.
    pub cross_attention_dim: Option<i64>,
    pub caption_channels: i64,
    pub mlp_ratio: f64,
    /// Training-only; inference ignores it, as diffusers in eval mode does.
    pub dropout: f64,
    /// Bias of the self-attention's q/k/v projections.
    pub attention_bias: bool,
    /// Latent size the sin-cos positional embedding is designed for (only used with `interpolation_scale`).
    pub sample_size: i64,
    pub patch_size: i64,
    /// Learned affine weights in the norm before the feed-forward (`norm2`).
    pub norm_elementwise_affine: bool,
    pub norm_eps: f64,
    /// `None`: no positional embedding at all (the 512px and 1024px models); a value: the 2D sin-cos embedding
    /// with this interpolation scale (the 2K/4K models, `convert_sana_to_diffusers.py`).
    pub interpolation_scale: Option<f64>,
    /// SANA-Sprint: a second timestep-style embedding of the guidance scale is added to the timestep's.
    pub guidance_embeds: bool,
    /// Pipeline-side: SANA-Sprint's pipeline multiplies the guidance by it before calling the model; the model
    /// itself never reads it (kept so configs round-trip).
    pub guidance_embeds_scale: f64,
    pub qk_norm: Option<QkNorm>,
    /// Pipeline-side: `SanaPipeline` multiplies the timestep by it before calling the model; the model itself
    /// never reads it (kept so configs round-trip).
    pub timestep_scale: f64,
    /// sana-sr's structured pruning, not a diffusers field: every block's widths, one entry per block, where
    /// they differ from the uniform `num_attention_heads`, `num_cross_attention_heads` and `mlp_ratio`;
    /// absent from every config diffusers writes (and not written when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_widths: Option<Vec<BlockWidths>>,
}

/// The widths of one pruned DiT block; the head widths stay the config's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockWidths {
    /// Heads of the linear self-attention (of `attention_head_dim` each).
    pub heads: i64,
    /// Heads of the cross-attention (of `cross_attention_head_dim` each).
    pub cross_heads: i64,
    /// Hidden channels of the Mix-FFN (GLUMBConv), `mlp_ratio * inner_dim` unpruned.
    pub ff_hidden: i64,
}

impl Default for SanaTransformerConfig {
    /// The defaults of `SanaTransformer2DModel.__init__` (which are the 1600M model's sizes).
    fn default() -> Self {
        Self {
            in_channels: 32,
            out_channels: Some(32),
            num_attention_heads: 70,
            attention_head_dim: 32,
            num_layers: 20,
            num_cross_attention_heads: Some(20),
            cross_attention_head_dim: Some(112),
            cross_attention_dim: Some(2240),
            caption_channels: 2304,
            mlp_ratio: 2.5,
            dropout: 0.0,
            attention_bias: false,
            sample_size: 32,
            patch_size: 1,
            norm_elementwise_affine: false,
            norm_eps: 1e-6,
            interpolation_scale: None,
            guidance_embeds: false,
            guidance_embeds_scale: 0.1,
            qk_norm: None,
            timestep_scale: 1.0,
            block_widths: None,
        }
    }
}

impl SanaTransformerConfig {
    /// SANA 600M at 1024px (`Efficient-Large-Model/Sana_600M_1024px_diffusers`): `model_kwargs["SanaMS_600M_P1_D28"]`
    /// and `transformer_kwargs` of diffusers' `scripts/convert_sana_to_diffusers.py` with `image_size=1024`
    /// (so `sample_size = 1024 / 32` and no positional embedding).
    pub fn sana_600m_1024px() -> Self {
        Self {
            num_attention_heads: 36,
            num_layers: 28,
            num_cross_attention_heads: Some(16),
            cross_attention_head_dim: Some(72),
            cross_attention_dim: Some(1152),
            ..Self::released_1024px()
        }
    }

    /// SANA 1600M at 1024px (`Efficient-Large-Model/Sana_1600M_1024px_diffusers`): `model_kwargs["SanaMS_1600M_P1_D20"]`
    /// of the same script.
    pub fn sana_1600m_1024px() -> Self {
        Self {
            num_attention_heads: 70,
            num_layers: 20,
            num_cross_attention_heads: Some(20),
            cross_attention_head_dim: Some(112),
            cross_attention_dim: Some(2240),
            ..Self::released_1024px()
        }
    }

    /// What `convert_sana_to_diffusers.py` sets for every released 1024px model.
    fn released_1024px() -> Self {
        Self {
            in_channels: 32,
            out_channels: Some(32),
            attention_head_dim: 32,
            caption_channels: 2304,
            mlp_ratio: 2.5,
            attention_bias: false,
            sample_size: 1024 / 32,
            patch_size: 1,
            norm_elementwise_affine: false,
            norm_eps: 1e-6,
            interpolation_scale: None,
            ..Self::default()
        }
    }

    /// Rejects a config the reference cannot run, as building the model does first.
    pub fn validate(&self) -> Result<(), String> {
        super::sana_transformer::check(self).map(|_| ()).map_err(|e| e.to_string())
    }

    /// The widths of block `i`: its entry of `block_widths`, else the uniform ones.
    pub fn block(&self, i: usize) -> BlockWidths {
        match &self.block_widths {
            Some(widths) => widths[i],
            None => BlockWidths {
                heads: self.num_attention_heads,
                cross_heads: self.num_cross_attention_heads.unwrap_or(0),
                ff_hidden: (self.mlp_ratio * self.inner_dim() as f64) as i64,
            },
        }
    }

    /// Width of the token stream: `num_attention_heads * attention_head_dim`.
    pub fn inner_dim(&self) -> i64 {
        self.num_attention_heads * self.attention_head_dim
    }

    /// `out_channels or in_channels`, as the reference resolves it.
    pub fn out_channels(&self) -> i64 {
        self.out_channels.unwrap_or(self.in_channels)
    }
}

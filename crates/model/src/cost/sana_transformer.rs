//! The cost of SANA's DiT (`crate::transformers`) on one latent, module by module as it is built.

use super::dc_ae::glu_mb_conv;
use super::{conv2d, linear, matmul, n, Cost, Part};
use crate::transformers::SanaTransformerConfig;

/// Width of the sinusoidal timestep features the timestep embedder reads.
const TIMESTEP_CHANNELS: i64 = 256;

/// The DiT on one latent of `latent` cells (height, width) with `caption_tokens` condition tokens: its parts
/// (`patch_embed`, `time_embed`, `caption_projection` with `caption_norm`, `transformer_blocks.{i}`, and
/// `proj_out` with the output norm's table). The timestep embedding runs once per image.
pub fn transformer(cfg: &SanaTransformerConfig, latent: (i64, i64), caption_tokens: i64) -> Vec<Part> {
    let dim = cfg.inner_dim();
    let p = cfg.patch_size;
    let grid = (latent.0 / p, latent.1 / p);
    let tokens = grid.0 * grid.1;
    let mut parts = vec![Part::new("patch_embed", conv2d(grid, cfg.in_channels, dim, p, 1, true))];

    let embedder = || linear(1, TIMESTEP_CHANNELS, dim, true) + linear(1, dim, dim, true);
    let guidance = if cfg.guidance_embeds { embedder() } else { Cost::default() };
    parts.push(Part::new("time_embed", embedder() + guidance + linear(1, dim, 6 * dim, true)));

    let caption = linear(caption_tokens, cfg.caption_channels, dim, true) + linear(caption_tokens, dim, dim, true);
    parts.push(Part::new("caption_projection", caption + Cost::params(dim as u64)));

    for i in 0..cfg.num_layers {
        parts.push(Part::new(format!("transformer_blocks.{i}"), block(cfg, i, grid, caption_tokens)));
    }
    let table = Cost::params(2 * dim as u64);
    parts.push(Part::new("proj_out", linear(tokens, dim, p * p * cfg.out_channels(), true) + table));
    parts
}

/// Block `i` (`SanaTransformerBlock`, at its own widths) on a `grid` of image tokens and `caption_tokens`.
pub fn block(cfg: &SanaTransformerConfig, i: usize, grid: (i64, i64), caption_tokens: i64) -> Cost {
    let dim = cfg.inner_dim();
    let tokens = grid.0 * grid.1;
    let widths = cfg.block(i);
    let (heads, head_dim) = (widths.heads, cfg.attention_head_dim);
    let inner = heads * head_dim;
    let qk_norm = |inner: i64| if cfg.qk_norm.is_some() { Cost::params(2 * inner as u64) } else { Cost::default() };

    // Linear self-attention: [v; 1] kᵀ then by q, two (d + 1)×d×N products per head.
    let attn1 = (0..3).map(|_| linear(tokens, dim, inner, cfg.attention_bias)).sum::<Cost>()
        + qk_norm(inner)
        + matmul(heads, head_dim + 1, tokens, head_dim)
        + matmul(heads, head_dim + 1, head_dim, tokens)
        + linear(tokens, inner, dim, true);

    // Cross-attention: q from the image tokens, k and v from the caption, Q Kᵀ and A V per head.
    let cross_heads = widths.cross_heads;
    let cross_head_dim = cfg.cross_attention_head_dim.expect("a checked config has cross-attention");
    let cross_dim = cfg.cross_attention_dim.expect("a checked config has cross-attention");
    let cross_inner = cross_heads * cross_head_dim;
    let attn2 = linear(tokens, dim, cross_inner, true)
        + linear(caption_tokens, cross_dim, cross_inner, true)
        + linear(caption_tokens, cross_dim, cross_inner, true)
        + qk_norm(cross_inner)
        + matmul(cross_heads, tokens, cross_head_dim, caption_tokens)
        + matmul(cross_heads, tokens, caption_tokens, cross_head_dim)
        + linear(tokens, cross_inner, dim, true);

    let ff = glu_mb_conv(grid, dim, widths.ff_hidden, false);
    let norm2 = if cfg.norm_elementwise_affine { Cost::params(2 * dim as u64) } else { Cost::default() };
    attn1 + attn2 + ff + norm2 + Cost::params(6 * dim as u64)
}

/// A dense (ungrouped) linear layer or convolution of the DiT, which LoRA can adapt: its module path, its
/// weight's output size and fan-in (in · k · k), and how many times it runs per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseLayer {
    pub path: String,
    pub out: i64,
    pub fan_in: i64,
    pub positions: i64,
}

impl DenseLayer {
    fn new(path: impl Into<String>, fan_in: i64, out: i64, positions: i64) -> Self {
        Self { path: path.into(), out, fan_in, positions }
    }

    /// A LoRA update of `rank` on this layer: A (`rank` × fan-in) then B (out × `rank`) at every position.
    pub fn lora(&self, rank: i64) -> Cost {
        let per_position = n(rank) * (n(self.fan_in) + n(self.out));
        Cost { params: per_position, macs: n(self.positions) * per_position }
    }
}

/// The dense layers of the DiT on one latent of `latent` cells with `caption_tokens` condition tokens, as it
/// builds them (the Mix-FFN's depthwise convolution is grouped, so not among them).
pub fn dense_layers(cfg: &SanaTransformerConfig, latent: (i64, i64), caption_tokens: i64) -> Vec<DenseLayer> {
    let dim = cfg.inner_dim();
    let p = cfg.patch_size;
    let tokens = (latent.0 / p) * (latent.1 / p);
    let mut layers = vec![DenseLayer::new("patch_embed.proj", cfg.in_channels * p * p, dim, tokens)];
    let embedders: &[&str] =
        if cfg.guidance_embeds { &["timestep_embedder", "guidance_embedder"] } else { &["emb.timestep_embedder"] };
    for embedder in embedders {
        layers.push(DenseLayer::new(format!("time_embed.{embedder}.linear_1"), TIMESTEP_CHANNELS, dim, 1));
        layers.push(DenseLayer::new(format!("time_embed.{embedder}.linear_2"), dim, dim, 1));
    }
    layers.push(DenseLayer::new("time_embed.linear", dim, 6 * dim, 1));
    layers.push(DenseLayer::new("caption_projection.linear_1", cfg.caption_channels, dim, caption_tokens));
    layers.push(DenseLayer::new("caption_projection.linear_2", dim, dim, caption_tokens));
    let cross_dim = cfg.cross_attention_dim.expect("a checked config has cross-attention");
    let cross_head_dim = cfg.cross_attention_head_dim.expect("a checked config has cross-attention");
    for i in 0..cfg.num_layers {
        let widths = cfg.block(i);
        let inner = widths.heads * cfg.attention_head_dim;
        let cross_inner = widths.cross_heads * cross_head_dim;
        let block = |name: &str, fan_in: i64, out: i64, positions: i64| {
            DenseLayer::new(format!("transformer_blocks.{i}.{name}"), fan_in, out, positions)
        };
        layers.extend([
            block("attn1.to_q", dim, inner, tokens),
            block("attn1.to_k", dim, inner, tokens),
            block("attn1.to_v", dim, inner, tokens),
            block("attn1.to_out.0", inner, dim, tokens),
            block("attn2.to_q", dim, cross_inner, tokens),
            block("attn2.to_k", cross_dim, cross_inner, caption_tokens),
            block("attn2.to_v", cross_dim, cross_inner, caption_tokens),
            block("attn2.to_out.0", cross_inner, dim, tokens),
            block("ff.conv_inverted", dim, 2 * widths.ff_hidden, tokens),
            block("ff.conv_point", widths.ff_hidden, dim, tokens),
        ]);
    }
    layers.push(DenseLayer::new("proj_out", dim, p * p * cfg.out_channels(), tokens));
    layers
}

//! SANA's two attentions, with diffusers' `Attention` module layout (`to_q`, `to_k`, `to_v`, `to_out.0`,
//! `norm_q`, `norm_k`): ReLU linear self-attention (`SanaLinearAttnProcessor2_0` in
//! `attention_processor.py`) and softmax cross-attention to the caption (`SanaAttnProcessor2_0` in
//! `sana_transformer.py`).

use sana_sr_core::{nn, Kind, Tensor};

use super::config::QkNorm;
use crate::cost;
use crate::layers::{linear_attention, Layer, RmsNorm};

/// Epsilon of `norm_q`/`norm_k` (the `eps=1e-5` default of diffusers `Attention`).
const QK_NORM_EPS: f64 = 1e-5;

/// The projections of one diffusers `Attention`.
#[derive(Debug)]
pub struct AttentionProjections {
    pub to_q: Layer,
    pub to_k: Layer,
    pub to_v: Layer,
    /// `to_out.0` (index 1 of the reference's `to_out` is a dropout).
    pub to_out: Layer,
    pub norm_q: Option<RmsNorm>,
    pub norm_k: Option<RmsNorm>,
    pub heads: i64,
}

/// Sizes of one attention, in diffusers `Attention` terms.
#[derive(Debug, Clone, Copy)]
pub struct AttentionDims {
    pub query_dim: i64,
    /// Width of the keys/values' source (`query_dim` for self-attention).
    pub kv_dim: i64,
    pub heads: i64,
    pub head_dim: i64,
    /// Bias of `to_q`/`to_k`/`to_v`.
    pub qkv_bias: bool,
    pub out_bias: bool,
}

impl AttentionProjections {
    pub fn new(p: nn::Path, dims: AttentionDims, qk_norm: Option<QkNorm>) -> Self {
        let inner = dims.heads * dims.head_dim;
        let norm = |name: &str| {
            qk_norm.map(|QkNorm::RmsNormAcrossHeads| RmsNorm::new(&p / name, inner, QK_NORM_EPS, true, false))
        };
        Self {
            to_q: Layer::linear(&p / "to_q", dims.query_dim, inner, dims.qkv_bias),
            to_k: Layer::linear(&p / "to_k", dims.kv_dim, inner, dims.qkv_bias),
            to_v: Layer::linear(&p / "to_v", dims.kv_dim, inner, dims.qkv_bias),
            to_out: Layer::linear(&p / "to_out" / 0, inner, dims.query_dim, dims.out_bias),
            norm_q: norm("norm_q"),
            norm_k: norm("norm_k"),
            heads: dims.heads,
        }
    }

    /// Projected and normalised queries `[B, N, inner]`, keys and values `[B, L, inner]`.
    fn qkv(&self, x: &Tensor, context: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (mut q, mut k) = (self.to_q.forward(x), self.to_k.forward(context));
        if let Some(norm) = &self.norm_q {
            q = norm.forward(&q);
        }
        if let Some(norm) = &self.norm_k {
            k = norm.forward(&k);
        }
        (q, k, self.to_v.forward(context))
    }
}

/// ReLU linear attention over the image tokens: per head,
/// `out_n = Σ_m v_m (φk_m·φq_n) / (Σ_m φk_m·φq_n + 1e-15)` with `φ = relu`, in float32
/// ([`linear_attention`]).
#[derive(Debug)]
pub struct LinearSelfAttention {
    pub proj: AttentionProjections,
}

impl LinearSelfAttention {
    pub fn new(p: nn::Path, dims: AttentionDims, qk_norm: Option<QkNorm>) -> Self {
        Self { proj: AttentionProjections::new(p, dims, qk_norm) }
    }

    /// `x`: `[B, N, C]` → `[B, N, C]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let (q, k, v) = self.proj.qkv(x, x);
        let heads = self.proj.heads;
        // [B, N, inner] → [B, heads, N, head_dim], views
        let per_head = |t: Tensor| t.unflatten(2, [heads, -1]).transpose(1, 2);
        let q = per_head(q).relu().to_kind(Kind::Float);
        let k = per_head(k).relu().to_kind(Kind::Float);
        let v = per_head(v).to_kind(Kind::Float);
        let out = linear_attention(&q, &k, &v);
        let out = out.transpose(1, 2).flatten(2, 3).to_kind(kind);
        let out = self.proj.to_out.forward(&out);
        if kind == Kind::Half {
            out.clamp(-65504.0, 65504.0)
        } else {
            out
        }
    }
}

/// Scaled-dot-product cross-attention from image tokens to the caption tokens, with an additive key bias.
#[derive(Debug)]
pub struct CrossAttention {
    pub proj: AttentionProjections,
}

impl CrossAttention {
    pub fn new(p: nn::Path, dims: AttentionDims, qk_norm: Option<QkNorm>) -> Self {
        Self { proj: AttentionProjections::new(p, dims, qk_norm) }
    }

    /// `x`: `[B, N, C]`, `context`: `[B, L, C_kv]`, `key_bias`: `[B, 1, 1, L]` added to the attention logits
    /// (see [`super::mask_to_bias`]).
    pub fn forward(&self, x: &Tensor, context: &Tensor, key_bias: Option<&Tensor>) -> Tensor {
        let (q, k, v) = self.proj.qkv(x, context);
        let heads = self.proj.heads;
        // [B, T, inner] → [B, heads, T, head_dim]
        let per_head = |t: Tensor| t.unflatten(2, [heads, -1]).transpose(1, 2);
        let kind = q.kind();
        // The bias must have the logits' kind (it is float32 beside bfloat16 projections under mixed precision),
        // and so must the values: a query-key norm returns float32 queries and keys beside bfloat16 values.
        let key_bias = key_bias.map(|bias| bias.to_kind(kind));
        let (q, k, v) = (per_head(q), per_head(k.to_kind(kind)), per_head(v.to_kind(kind)));
        // Q Kᵀ and A V: each [B, heads, N, L] products over head_dim.
        cost::record(|| 2 * (q.numel() * k.size()[2] as usize) as u64);
        let out = Tensor::scaled_dot_product_attention(&q, &k, &v, key_bias.as_ref(), 0.0, false, None, false);
        self.proj.to_out.forward(&out.transpose(1, 2).flatten(2, 3))
    }
}

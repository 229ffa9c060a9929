//! EfficientViT's lightweight multi-scale linear attention, the first half of the DC-AE's EfficientViT
//! blocks (diffusers `attention_processor.SanaMultiscaleLinearAttention` with `SanaMultiscaleAttnProcessor2_0`).
//!
//! q, k and v come from 1×1 projections; each extra scale aggregates them with a k×k depthwise conv followed
//! by a grouped 1×1 conv, and every scale becomes further heads. Attention is ReLU linear attention,
//! `(v kᵀ) q / (1ᵀ kᵀ q)`, computed in float32; on feature maps with no more pixels than the head dimension
//! the reference switches to the equivalent quadratic form `v · normalise(kᵀ q)`, and so does this.

use sana_sr_core::{nn, Kind, Tensor};

use super::channel_norm::{ChannelNorm, NormType};
use crate::cost;
use crate::layers::{fresh, linear_attention, ConvConfig, Layer, NORMALISER_EPS};

/// One extra scale of `to_qkv_multiscale`: a `kernel_size` depthwise conv over the concatenated q, k, v
/// channels, then a 1×1 conv mixing channels within each of the `3 * heads` groups (diffusers
/// `SanaMultiscaleAttentionProjection`). Neither has a bias.
#[derive(Debug)]
pub struct MultiscaleProjection {
    pub proj_in: Layer,
    pub proj_out: Layer,
}

impl MultiscaleProjection {
    fn new(p: nn::Path, inner_dim: i64, heads: i64, kernel_size: i64) -> Self {
        let channels = 3 * inner_dim;
        let depthwise = ConvConfig { padding: kernel_size / 2, groups: channels, bias: false, ..Default::default() };
        let grouped = ConvConfig { groups: 3 * heads, bias: false, ..Default::default() };
        Self {
            proj_in: Layer::conv2d(&p / "proj_in", channels, channels, kernel_size, depthwise),
            proj_out: Layer::conv2d(&p / "proj_out", channels, channels, 1, grouped),
        }
    }

    fn forward(&self, qkv: &Tensor) -> Tensor {
        self.proj_out.forward(&self.proj_in.forward(qkv))
    }
}

#[derive(Debug)]
pub struct SanaMultiscaleLinearAttention {
    pub to_q: Layer,
    pub to_k: Layer,
    pub to_v: Layer,
    pub to_qkv_multiscale: Vec<MultiscaleProjection>,
    pub to_out: Layer,
    pub norm_out: ChannelNorm,
    attention_head_dim: i64,
    residual_connection: bool,
}

impl SanaMultiscaleLinearAttention {
    /// The DC-AE's use: `num_attention_heads = None` (so `channels // attention_head_dim` heads, `mult` 1)
    /// and `out_channels == in_channels`.
    pub fn new(
        p: nn::Path,
        channels: i64,
        attention_head_dim: i64,
        kernel_sizes: &[i64],
        norm_type: NormType,
        residual_connection: bool,
    ) -> Self {
        let heads = channels / attention_head_dim;
        let inner_dim = heads * attention_head_dim;
        let to_multiscale = &p / "to_qkv_multiscale";
        Self {
            to_q: Layer::linear(&p / "to_q", channels, inner_dim, false),
            to_k: Layer::linear(&p / "to_k", channels, inner_dim, false),
            to_v: Layer::linear(&p / "to_v", channels, inner_dim, false),
            to_qkv_multiscale: kernel_sizes
                .iter()
                .enumerate()
                .map(|(i, &k)| MultiscaleProjection::new(&to_multiscale / i, inner_dim, heads, k))
                .collect(),
            to_out: Layer::linear(&p / "to_out", inner_dim * (1 + kernel_sizes.len() as i64), channels, false),
            norm_out: ChannelNorm::new(&p / "norm_out", channels, norm_type),
            attention_head_dim,
            residual_connection,
        }
    }

    /// `x`: NCHW.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (batch, _, height, width) = x.size4().expect("NCHW activations");
        let pixels = height * width;
        let use_linear_attention = pixels > self.attention_head_dim;
        let input_kind = x.kind();

        // Token-major throughout (`[batch, height, width, channels]`): the projections are linear layers over
        // the channels, and the attention's heads are runs of channels of each token, so nothing is transposed
        // into another layout and back.
        let h = {
            let channels_last = x.movedim([1], [-1]);
            let qkv = Tensor::cat(
                &[
                    self.to_q.forward(&channels_last),
                    self.to_k.forward(&channels_last),
                    self.to_v.forward(&channels_last),
                ],
                3,
            );
            let qkv_nchw = qkv.movedim([-1], [1]);
            let mut scales = vec![qkv.shallow_clone()];
            scales.extend(self.to_qkv_multiscale.iter().map(|scale| scale.forward(&qkv_nchw).movedim([1], [-1])));
            // The scales' own tensors end with this block, before the float32 copy is made.
            Tensor::cat(&scales, 3)
        };
        let h = match use_linear_attention {
            // `low` is dropped at the arm's end, so the two copies are not held at once.
            true => {
                let low = h;
                low.to_kind(Kind::Float)
            }
            false => h,
        };

        // Heads are consecutive runs of 3·head_dim channels, each holding that head's q, k and v, as in the
        // reference's reshape (and in the original EfficientViT's checkpoint layout): `[batch, heads, pixels,
        // head_dim]` views. The ReLU feature map goes over the queries' and keys' channels of that fresh tensor
        // together, in place where no gradient is recorded.
        let head_dim = self.attention_head_dim;
        let h = h.reshape([batch, pixels, -1, 3 * head_dim]);
        let qk = fresh::relu(h.narrow(-1, 0, 2 * head_dim));
        let per_head = |t: Tensor| t.transpose(1, 2);
        let q = per_head(qk.narrow(-1, 0, head_dim));
        let k = per_head(qk.narrow(-1, head_dim, head_dim));
        let v = per_head(h.narrow(-1, 2 * head_dim, head_dim));
        let h = if use_linear_attention {
            linear_attention(&q, &k, &v).to_kind(input_kind)
        } else {
            quadratic_attention(&q, &k, &v)
        };

        let h = h.transpose(1, 2).reshape([batch, height, width, -1]);
        let h = self.to_out.forward(&h).movedim([-1], [1]);
        let h = self.norm_out.forward(&h);
        if self.residual_connection {
            fresh::add(h, x)
        } else {
            h
        }
    }
}

/// The same attention with the `[pixels, pixels]` score matrix formed explicitly, normalised over the keys
/// in float32; `[batch, heads, pixels, head_dim]` in and out.
fn quadratic_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let head_dim = q.size()[3];
    let scores = q.matmul(&k.transpose(-1, -2));
    cost::record_product(&scores, head_dim);
    let scores = scores.to_kind(Kind::Float);
    let scores = &scores / (scores.sum_dim_intlist(-1, true, Kind::Float) + NORMALISER_EPS);
    let out = scores.to_kind(v.kind()).matmul(v);
    cost::record_product(&out, scores.size()[3]);
    out
}

//! GLUMBConv, the gated inverted-bottleneck convolution of EfficientViT: SANA's Mix-FFN in the DiT and the
//! second half of every EfficientViT block in the DC-AE (diffusers `sana_transformer.GLUMBConv`).
//!
//! 1×1 expand to twice the hidden width → SiLU → 3×3 depthwise conv (the only source of position in
//! SANA, which has no positional embedding) → split into value and gate, `value * silu(gate)` → 1×1 project.

use sana_sr_core::{nn, Tensor};

use super::{fresh, ConvConfig, Layer, RmsNorm};

#[derive(Debug)]
pub struct GluMbConv {
    pub conv_inverted: Layer,
    pub conv_depth: Layer,
    pub conv_point: Layer,
    /// RMS norm over channels after the projection (the DC-AE's blocks; the DiT's Mix-FFN has none).
    pub norm: Option<RmsNorm>,
    residual_connection: bool,
}

impl GluMbConv {
    pub fn new(
        p: nn::Path,
        in_channels: i64,
        out_channels: i64,
        expand_ratio: f64,
        rms_norm: bool,
        residual_connection: bool,
    ) -> Self {
        // `int(expand_ratio * in_channels)` in the reference: truncation, not rounding.
        let hidden = (expand_ratio * in_channels as f64) as i64;
        Self::with_hidden(p, in_channels, out_channels, hidden, rms_norm, residual_connection)
    }

    /// The block with `hidden` gated channels, whatever the ratio (a pruned block's).
    pub fn with_hidden(
        p: nn::Path,
        in_channels: i64,
        out_channels: i64,
        hidden: i64,
        rms_norm: bool,
        residual_connection: bool,
    ) -> Self {
        let conv_inverted = Layer::conv2d(&p / "conv_inverted", in_channels, hidden * 2, 1, ConvConfig::default());
        let depthwise = ConvConfig { padding: 1, groups: hidden * 2, ..Default::default() };
        let conv_depth = Layer::conv2d(&p / "conv_depth", hidden * 2, hidden * 2, 3, depthwise);
        let conv_point =
            Layer::conv2d(&p / "conv_point", hidden, out_channels, 1, ConvConfig { bias: false, ..Default::default() });
        let norm = rms_norm.then(|| RmsNorm::new(&p / "norm", out_channels, 1e-5, true, true));
        Self { conv_inverted, conv_depth, conv_point, norm, residual_connection }
    }

    /// `x`: NCHW.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.conv_depth.forward(&fresh::silu(self.conv_inverted.forward(x)));
        let mut halves = h.chunk(2, 1);
        // The gate's SiLU over its half of the fresh depthwise output; the product is a new tensor, where
        // written over that half it would leave the projection a strided input.
        let gate = fresh::silu(halves.pop().expect("two halves"));
        let h = self.conv_point.forward(&(&halves[0] * gate));
        let h = match &self.norm {
            Some(norm) => norm.forward_channels(&h),
            None => h,
        };
        if self.residual_connection {
            fresh::add(h, x)
        } else {
            h
        }
    }
}

//! The per-channel normalisations a DC-AE block can be configured with (diffusers
//! `normalization.get_normalization`, as called by `autoencoder_dc.py` and `SanaMultiscaleLinearAttention`).

use sana_sr_core::{nn, Tensor};
use serde::{Deserialize, Serialize};

use crate::layers::{BatchNorm2d, RmsNorm};

/// A norm type by its diffusers name.
///
/// diffusers also accepts `"layer_norm"`, but its DC-AE blocks apply that `nn.LayerNorm(channels)` to the
/// last axis of an NCHW tensor, the width, so it only runs when width == channels; no released DC-AE uses
/// it, and it is rejected here when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormType {
    #[serde(rename = "rms_norm")]
    RmsNorm,
    #[serde(rename = "batch_norm")]
    BatchNorm,
}

/// `get_normalization(norm_type, channels)`: eps 1e-5, affine, with bias, applied across the channels of
/// NCHW activations (the RMS norm with channels moved last, the batch norm with its running statistics).
#[derive(Debug)]
pub enum ChannelNorm {
    Rms(RmsNorm),
    Batch(BatchNorm2d),
}

impl ChannelNorm {
    pub fn new(p: nn::Path, channels: i64, norm_type: NormType) -> Self {
        const EPS: f64 = 1e-5;
        match norm_type {
            NormType::RmsNorm => ChannelNorm::Rms(RmsNorm::new(p, channels, EPS, true, true)),
            NormType::BatchNorm => ChannelNorm::Batch(BatchNorm2d::new(p, channels, EPS)),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            ChannelNorm::Rms(norm) => norm.forward_channels(x),
            ChannelNorm::Batch(norm) => norm.forward(x),
        }
    }
}

//! Real-ESRGAN's released generators, so that its published weights run, train and teach inside sana-sr:
//! [`RrdbNet`] (Real-ESRGAN x4plus) and [`SrVggNetCompact`] (realesr-general-x4v3, Upscayl's "x4fast").
//! Both take an RGB image in [0, 1] at the LR size and return it `scale` times larger, with no resize before;
//! every convolution is a [`crate::layers::Layer`], so LoRA and pruning apply to them as to the DiT.
//!
//! [`ncnn`] reads the `.param` + `.bin` files these networks are shipped in and maps them onto the
//! reference's state-dict keys.

pub mod ncnn;
pub mod rrdbnet;
pub mod srvgg;

use sana_sr_core::{nn, Tensor};
use serde::{Deserialize, Serialize};

pub use rrdbnet::{RrdbNet, RrdbNetConfig};
pub use srvgg::{SrVggNetCompact, SrVggNetCompactConfig, VggActivation};

/// Which network and its arguments; serialized with an `architecture` tag beside the reference's own
/// argument names (`{"architecture": "rrdbnet", "num_feat": 64, ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "architecture", rename_all = "snake_case")]
pub enum EsrganConfig {
    Rrdbnet(RrdbNetConfig),
    SrvggnetCompact(SrVggNetCompactConfig),
}

impl EsrganConfig {
    /// The reference's class name, for listings.
    pub fn architecture(&self) -> &'static str {
        match self {
            Self::Rrdbnet(_) => "RRDBNet",
            Self::SrvggnetCompact(_) => "SRVGGNetCompact",
        }
    }

    /// The upscaling factor.
    pub fn scale(&self) -> i64 {
        match self {
            Self::Rrdbnet(c) => c.scale,
            Self::SrvggnetCompact(c) => c.upscale,
        }
    }

    /// Input channels.
    pub fn in_channels(&self) -> i64 {
        match self {
            Self::Rrdbnet(c) => c.num_in_ch,
            Self::SrvggnetCompact(c) => c.num_in_ch,
        }
    }
}

/// One of the two networks, built from an [`EsrganConfig`].
// One per loaded model: boxing the larger variant would save nothing worth the indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Esrgan {
    Rrdbnet(RrdbNet),
    SrvggnetCompact(SrVggNetCompact),
}

impl Esrgan {
    /// Builds the network under `p`, randomly initialised; an unsupported config is refused with the reason.
    pub fn new(p: nn::Path, config: &EsrganConfig) -> Result<Self, String> {
        Ok(match config {
            EsrganConfig::Rrdbnet(c) => Self::Rrdbnet(RrdbNet::new(p, c)?),
            EsrganConfig::SrvggnetCompact(c) => Self::SrvggnetCompact(SrVggNetCompact::new(p, c)?),
        })
    }

    /// LR image `[N, C, h, w]` to SR image `[N, C', scale·h, scale·w]`, unclamped.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        // Channels-last memory (NHWC strides under the same NCHW shape) carries through every conv and
        // activation of these plain conv stacks, so oneDNN convolves without reordering each layer's input
        // and output: on CPU general-x4v3 runs 1.15x and x4plus 1.06x faster (docs/benchmarks.md); the DC-AE,
        // tried the same way, gains nothing.
        let x = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        let x = &x;
        match self {
            Self::Rrdbnet(net) => net.forward(x),
            Self::SrvggnetCompact(net) => net.forward(x),
        }
    }
}

impl nn::Module for Esrgan {
    fn forward(&self, xs: &Tensor) -> Tensor {
        Esrgan::forward(self, xs)
    }
}

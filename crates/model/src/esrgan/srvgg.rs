//! SRVGGNetCompact, the small plain-VGG generator of realesr-general-x4v3 and the realesr-animevideov3
//! models (Real-ESRGAN's `realesrgan/archs/srvgg_arch.py`; Wang et al., "Real-ESRGAN", ICCV 2021 workshops):
//! convolutions with activations at low resolution only, a pixel shuffle to the output size, and the
//! nearest-upsampled input added, so the network learns only the residual.
//!
//! Variable paths are the reference's state-dict keys: `body` is one list of conv, activation, conv,
//! activation, ..., conv, so `body.0` is the first conv, `body.1` its PReLU (`body.1.weight`, one slope per
//! channel), and the last conv is `body.{2 * num_conv + 2}`; `upsampler` is the parameter-free pixel shuffle.

use sana_sr_core::{nn, Tensor};
use serde::{Deserialize, Serialize};

use super::rrdbnet::{leaky, upsample_nearest};
use crate::layers::{variables, Layer};

/// The activation after every conv but the last (`act_type` in the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VggActivation {
    Relu,
    /// One learned slope per channel, initialised to 0.25 (torch's `nn.PReLU(num_parameters=num_feat)`).
    Prelu,
    /// `nn.LeakyReLU(negative_slope=0.1)`.
    Leakyrelu,
}

/// Real-ESRGAN's `SRVGGNetCompact` arguments; `Default` is its defaults (realesr-animevideov3's 16 convs;
/// realesr-general-x4v3 has 32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SrVggNetCompactConfig {
    pub num_in_ch: i64,
    pub num_out_ch: i64,
    pub num_feat: i64,
    /// Body convolutions between the first and the last one.
    pub num_conv: i64,
    /// Upscaling factor (the pixel shuffle's).
    pub upscale: i64,
    pub act_type: VggActivation,
}

impl Default for SrVggNetCompactConfig {
    fn default() -> Self {
        Self { num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_conv: 16, upscale: 4, act_type: VggActivation::Prelu }
    }
}

#[derive(Debug)]
enum Act {
    Relu,
    Prelu(Tensor),
    Leaky,
}

#[derive(Debug)]
pub struct SrVggNetCompact {
    pub config: SrVggNetCompactConfig,
    /// `body.0`, `body.2`, ..., the last one mapping to `num_out_ch * upscale²` channels.
    pub convs: Vec<Layer>,
    acts: Vec<Act>,
}

impl SrVggNetCompact {
    pub fn new(p: nn::Path, config: &SrVggNetCompactConfig) -> Result<Self, String> {
        let c = config;
        if [c.num_in_ch, c.num_out_ch, c.num_feat, c.upscale].iter().any(|&n| n < 1) || c.num_conv < 0 {
            return Err(format!("SRVGGNetCompact sizes must be positive: {c:?}"));
        }
        variables::check_sizes(&[
            ("num_in_ch", c.num_in_ch),
            ("num_out_ch", c.num_out_ch),
            ("num_feat", c.num_feat),
            ("upscale", c.upscale),
        ])?;
        variables::check_depths(&[("num_conv", c.num_conv)])?;
        if c.upscale > 16 {
            return Err(format!("SRVGGNetCompact upscale {} is over the limit of 16", c.upscale));
        }
        let body = &p / "body";
        let mut convs = Vec::new();
        let mut acts = Vec::new();
        for i in 0..=c.num_conv {
            let in_ch = if i == 0 { c.num_in_ch } else { c.num_feat };
            convs.push(Layer::conv2d_same(&body / (2 * i), in_ch, c.num_feat, 3, true));
            acts.push(match c.act_type {
                VggActivation::Relu => Act::Relu,
                VggActivation::Leakyrelu => Act::Leaky,
                VggActivation::Prelu => {
                    Act::Prelu(variables::var(&(&body / (2 * i + 1)), "weight", &[c.num_feat], nn::Init::Const(0.25)))
                }
            });
        }
        let out = c.num_out_ch * c.upscale * c.upscale;
        convs.push(Layer::conv2d_same(&body / (2 * c.num_conv + 2), c.num_feat, out, 3, true));
        Ok(Self { config: c.clone(), convs, acts })
    }

    /// `[N, num_in_ch, h, w]` to `[N, num_out_ch, upscale·h, upscale·w]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (conv, act) in self.convs.iter().zip(&self.acts) {
            let y = conv.forward(&h);
            h = match act {
                Act::Relu => y.relu(),
                Act::Leaky => leaky(&y, 0.1),
                Act::Prelu(weight) => y.prelu(&weight.to_kind(y.kind())),
            };
        }
        let residual = self.convs.last().expect("the last conv").forward(&h).pixel_shuffle(self.config.upscale);
        let base = upsample_nearest(x, self.config.upscale);
        let kind = residual.kind();
        residual + base.to_kind(kind)
    }
}

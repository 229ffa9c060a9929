//! RRDBNet, the generator of ESRGAN (Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial
//! Networks", ECCV 2018 workshops) and of Real-ESRGAN x4plus (Wang et al., "Real-ESRGAN: Training Real-World
//! Blind Super-Resolution with Pure Synthetic Data", ICCV 2021 workshops); basicsr's `archs/rrdbnet_arch.py`.
//!
//! `conv_first` → `num_block` residual-in-residual dense blocks → `conv_body`, added to the first features →
//! two (nearest ×2 → conv → LeakyReLU) upsamplings → `conv_hr` → LeakyReLU → `conv_last`. Every residual branch
//! is scaled by 0.2 before it is added (the paper's residual scaling, which keeps a deep stack trainable
//! without batch norm). Variable paths are basicsr's state-dict keys (`body.0.rdb1.conv1`, `conv_up1`, ...).

use sana_sr_core::{nn, Tensor};
use serde::{Deserialize, Serialize};

use crate::layers::{variables, Layer};

/// Slope of every LeakyReLU of the network (`nn.LeakyReLU(negative_slope=0.2)` in basicsr).
pub const LEAKY_SLOPE: f64 = 0.2;

/// Factor of every residual branch before it is added (`x5 * 0.2 + x`, `out * 0.2 + x` in basicsr).
pub const RESIDUAL_SCALE: f64 = 0.2;

/// basicsr's `RRDBNet` arguments; `Default` is its defaults, which are Real-ESRGAN x4plus's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RrdbNetConfig {
    pub num_in_ch: i64,
    pub num_out_ch: i64,
    /// Upscaling factor. Only 4 is built: basicsr's x2 and x1 variants pixel-unshuffle the input first
    /// (4 or 16 times the input channels), which no released ncnn file here uses.
    pub scale: i64,
    /// Channels of the trunk.
    pub num_feat: i64,
    /// Residual-in-residual dense blocks in the trunk.
    pub num_block: i64,
    /// Channels each dense layer adds ("growth").
    pub num_grow_ch: i64,
}

impl Default for RrdbNetConfig {
    fn default() -> Self {
        Self { num_in_ch: 3, num_out_ch: 3, scale: 4, num_feat: 64, num_block: 23, num_grow_ch: 32 }
    }
}

pub(crate) fn leaky(x: &Tensor, slope: f64) -> Tensor {
    // `max(x, slope * x)` is LeakyReLU for a slope under 1 (tch's `leaky_relu` has torch's fixed 0.01).
    x.maximum(&(x * slope))
}

fn conv3(p: nn::Path, in_ch: i64, out_ch: i64) -> Layer {
    Layer::conv2d_same(p, in_ch, out_ch, 3, true)
}

/// Five 3×3 convolutions, each seeing the block input and every earlier output (dense connections).
#[derive(Debug)]
pub struct ResidualDenseBlock {
    /// `conv1` .. `conv5`; `conv5` maps back to `num_feat` channels.
    pub convs: Vec<Layer>,
}

impl ResidualDenseBlock {
    pub fn new(p: nn::Path, num_feat: i64, num_grow_ch: i64) -> Self {
        let convs = (0..5)
            .map(|i| {
                let out = if i == 4 { num_feat } else { num_grow_ch };
                conv3(&p / format!("conv{}", i + 1), num_feat + i * num_grow_ch, out)
            })
            .collect();
        Self { convs }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut features = vec![x.shallow_clone()];
        for conv in &self.convs[..4] {
            let y = leaky(&conv.forward(&Tensor::cat(&features, 1)), LEAKY_SLOPE);
            features.push(y);
        }
        self.convs[4].forward(&Tensor::cat(&features, 1)) * RESIDUAL_SCALE + x
    }
}

/// Three residual dense blocks and a scaled residual around them.
#[derive(Debug)]
pub struct Rrdb {
    pub rdb1: ResidualDenseBlock,
    pub rdb2: ResidualDenseBlock,
    pub rdb3: ResidualDenseBlock,
}

impl Rrdb {
    pub fn new(p: nn::Path, num_feat: i64, num_grow_ch: i64) -> Self {
        let rdb = |name: &str| ResidualDenseBlock::new(&p / name, num_feat, num_grow_ch);
        Self { rdb1: rdb("rdb1"), rdb2: rdb("rdb2"), rdb3: rdb("rdb3") }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.rdb3.forward(&self.rdb2.forward(&self.rdb1.forward(x))) * RESIDUAL_SCALE + x
    }
}

#[derive(Debug)]
pub struct RrdbNet {
    pub config: RrdbNetConfig,
    pub conv_first: Layer,
    pub body: Vec<Rrdb>,
    pub conv_body: Layer,
    pub conv_up1: Layer,
    pub conv_up2: Layer,
    pub conv_hr: Layer,
    pub conv_last: Layer,
}

impl RrdbNet {
    /// Builds the network under `p`; only `scale` 4 is supported (see [`RrdbNetConfig::scale`]).
    pub fn new(p: nn::Path, config: &RrdbNetConfig) -> Result<Self, String> {
        let c = config;
        if c.scale != 4 {
            return Err(format!("RRDBNet scale {} is not supported (only 4; x1/x2 use pixel unshuffle)", c.scale));
        }
        if [c.num_in_ch, c.num_out_ch, c.num_feat, c.num_block, c.num_grow_ch].iter().any(|&n| n < 1) {
            return Err(format!("RRDBNet sizes must be positive: {c:?}"));
        }
        variables::check_sizes(&[
            ("num_in_ch", c.num_in_ch),
            ("num_out_ch", c.num_out_ch),
            ("num_feat", c.num_feat),
            ("num_grow_ch", c.num_grow_ch),
        ])?;
        variables::check_depths(&[("num_block", c.num_block)])?;
        let f = c.num_feat;
        let body = (0..c.num_block).map(|i| Rrdb::new(&p / "body" / i, f, c.num_grow_ch)).collect();
        Ok(Self {
            config: c.clone(),
            conv_first: conv3(&p / "conv_first", c.num_in_ch, f),
            body,
            conv_body: conv3(&p / "conv_body", f, f),
            conv_up1: conv3(&p / "conv_up1", f, f),
            conv_up2: conv3(&p / "conv_up2", f, f),
            conv_hr: conv3(&p / "conv_hr", f, f),
            conv_last: conv3(&p / "conv_last", f, c.num_out_ch),
        })
    }

    /// `[N, num_in_ch, h, w]` (RGB in [0, 1] for the released weights) to `[N, num_out_ch, 4h, 4w]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let feat = self.conv_first.forward(x);
        let trunk = self.body.iter().fold(feat.shallow_clone(), |h, block| block.forward(&h));
        let feat = feat + self.conv_body.forward(&trunk);
        let up = |h: &Tensor, conv: &Layer| leaky(&conv.forward(&upsample_nearest(h, 2)), LEAKY_SLOPE);
        let feat = up(&up(&feat, &self.conv_up1), &self.conv_up2);
        self.conv_last.forward(&leaky(&self.conv_hr.forward(&feat), LEAKY_SLOPE))
    }
}

/// torch's `interpolate(mode="nearest", scale_factor=factor)` for a whole factor: every pixel repeated.
pub(crate) fn upsample_nearest(x: &Tensor, factor: i64) -> Tensor {
    let size = x.size();
    let f = factor as f64;
    x.upsample_nearest2d([size[2] * factor, size[3] * factor], Some(f), Some(f))
}

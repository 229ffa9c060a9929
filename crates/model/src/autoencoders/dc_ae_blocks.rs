//! The blocks the DC-AE's stages are made of (diffusers `models/autoencoders/autoencoder_dc.py`).

use sana_sr_core::{nn, Tensor};

use super::channel_norm::{ChannelNorm, NormType};
use super::multiscale_linear_attention::SanaMultiscaleLinearAttention;
use crate::layers::{fresh, Activation, ConvConfig, GluMbConv, Layer};

/// Receives `(module path, output)` as each traced module finishes; paths are diffusers' module names.
pub type Tracer<'a> = dyn FnMut(&str, &Tensor) + 'a;

/// Every 2× resampling of the DC-AE is a space-to-channel or channel-to-space rearrangement by 2.
const FACTOR: i64 = 2;

/// conv3×3 → act → conv3×3 (no bias) → norm, plus the input (`ResBlock`).
#[derive(Debug)]
pub struct ResBlock {
    pub conv1: Layer,
    pub conv2: Layer,
    pub norm: ChannelNorm,
    act: Activation,
}

impl ResBlock {
    /// The block with `hidden` channels between its convolutions (`channels` in the reference; fewer pruned).
    pub fn new(p: nn::Path, channels: i64, hidden: i64, norm_type: NormType, act: Activation) -> Self {
        Self {
            conv1: Layer::conv2d_same(&p / "conv1", channels, hidden, 3, true),
            conv2: Layer::conv2d_same(&p / "conv2", hidden, channels, 3, false),
            norm: ChannelNorm::new(&p / "norm", channels, norm_type),
            act,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.conv2.forward(&self.act.forward_fresh(self.conv1.forward(x)));
        fresh::add(self.norm.forward(&h), x)
    }
}

/// Multi-scale linear attention then an RMS-normed GLUMBConv (expand ratio 4), each with its residual
/// (`EfficientViTBlock`).
#[derive(Debug)]
pub struct EfficientVitBlock {
    pub attn: SanaMultiscaleLinearAttention,
    pub conv_out: GluMbConv,
}

impl EfficientVitBlock {
    /// The block with `hidden` GLUMBConv channels (`4 * channels` in the reference; fewer pruned).
    pub fn new(
        p: nn::Path,
        channels: i64,
        hidden: i64,
        attention_head_dim: i64,
        qkv_multiscales: &[i64],
        norm_type: NormType,
    ) -> Self {
        Self {
            attn: SanaMultiscaleLinearAttention::new(
                &p / "attn",
                channels,
                attention_head_dim,
                qkv_multiscales,
                norm_type,
                true,
            ),
            conv_out: GluMbConv::with_hidden(&p / "conv_out", channels, channels, hidden, true, true),
        }
    }

    fn forward_traced(&self, x: &Tensor, path: &str, trace: &mut Tracer) -> Tensor {
        let h = self.attn.forward(x);
        trace(&format!("{path}.attn"), &h);
        let h = self.conv_out.forward(&h);
        trace(&format!("{path}.conv_out"), &h);
        h
    }
}

/// Halves the resolution (`DCDownBlock2d`): a stride-2 3×3 conv, or a stride-1 conv to a quarter of the
/// channels followed by pixel-unshuffle; optionally plus a parameter-free shortcut that pixel-unshuffles the
/// input and averages groups of consecutive channels down to the output width.
#[derive(Debug)]
pub struct DcDownBlock2d {
    pub conv: Layer,
    pixel_unshuffle: bool,
    /// Channels averaged per output channel by the shortcut, `in * 4 / out`; `None` without shortcut.
    shortcut_group_size: Option<i64>,
}

impl DcDownBlock2d {
    pub fn new(p: nn::Path, in_channels: i64, out_channels: i64, pixel_unshuffle: bool, shortcut: bool) -> Self {
        let ratio = FACTOR * FACTOR;
        let (conv_out, stride) = if pixel_unshuffle { (out_channels / ratio, 1) } else { (out_channels, FACTOR) };
        let conv = ConvConfig { stride, padding: 1, ..Default::default() };
        Self {
            conv: Layer::conv2d(&p / "conv", in_channels, conv_out, 3, conv),
            pixel_unshuffle,
            shortcut_group_size: shortcut.then_some(in_channels * ratio / out_channels),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.conv.forward(x);
        let h = if self.pixel_unshuffle { h.pixel_unshuffle(FACTOR) } else { h };
        match self.shortcut_group_size {
            // A group of one channel is its own mean: no pass over the tensor to take it.
            Some(1) => fresh::add(h, &x.pixel_unshuffle(FACTOR)),
            Some(group) => fresh::add(h, &x.pixel_unshuffle(FACTOR).unflatten(1, [-1, group]).mean_dim(2, false, None)),
            None => h,
        }
    }
}

/// Doubles the resolution (`DCUpBlock2d`): nearest-neighbour ×2 then a 3×3 conv, or a 3×3 conv to four
/// times the channels followed by pixel-shuffle; optionally plus a parameter-free shortcut that repeats
/// every input channel (`repeat_interleave`) up to four times the output width and pixel-shuffles that.
#[derive(Debug)]
pub struct DcUpBlock2d {
    pub conv: Layer,
    interpolate: bool,
    /// Times each input channel is repeated by the shortcut, `out * 4 / in`; `None` without shortcut.
    shortcut_repeats: Option<i64>,
}

impl DcUpBlock2d {
    pub fn new(p: nn::Path, in_channels: i64, out_channels: i64, interpolate: bool, shortcut: bool) -> Self {
        let ratio = FACTOR * FACTOR;
        let conv_out = if interpolate { out_channels } else { out_channels * ratio };
        Self {
            conv: Layer::conv2d_same(&p / "conv", in_channels, conv_out, 3, true),
            interpolate,
            shortcut_repeats: shortcut.then_some(out_channels * ratio / in_channels),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = if self.interpolate {
            let (_, _, height, width) = x.size4().expect("NCHW activations");
            let upsampled = x.upsample_nearest2d([height * FACTOR, width * FACTOR], FACTOR as f64, FACTOR as f64);
            self.conv.forward(&upsampled)
        } else {
            self.conv.forward(x).pixel_shuffle(FACTOR)
        };
        match self.shortcut_repeats {
            Some(1) => fresh::add(h, &x.pixel_shuffle(FACTOR)),
            Some(repeats) => {
                let channels = x.size()[1];
                fresh::add(h, &x.repeat_interleave_self_int(repeats, 1, channels * repeats).pixel_shuffle(FACTOR))
            }
            None => h,
        }
    }
}

/// One module of an encoder or decoder: a stage's blocks, and the encoder's conv_in / decoder's conv_out,
/// which are a plain conv or, when the first stage has no layers, a down / up block.
#[derive(Debug)]
pub enum Block {
    Conv(Layer),
    Res(Box<ResBlock>),
    EfficientVit(Box<EfficientVitBlock>),
    Down(DcDownBlock2d),
    Up(DcUpBlock2d),
}

impl Block {
    /// Runs the block and reports its output as `path` (and an EfficientViT block's two halves below it).
    pub fn forward_traced(&self, x: &Tensor, path: &str, trace: &mut Tracer) -> Tensor {
        let h = match self {
            Block::Conv(conv) => conv.forward(x),
            Block::Res(block) => block.forward(x),
            Block::EfficientVit(block) => block.forward_traced(x, path, trace),
            Block::Down(block) => block.forward(x),
            Block::Up(block) => block.forward(x),
        };
        trace(path, &h);
        h
    }
}

//! DC-AE, the deep-compression autoencoder of SANA (diffusers `models/autoencoders/autoencoder_dc.py`,
//! `AutoencoderDC`): an image in [-1, 1] to a latent 32× smaller per side and back, number for number and
//! loading diffusers checkpoints (the variable names are diffusers' state-dict keys).

use sana_sr_core::{nn, Tensor};

use super::channel_norm::NormType;
use super::dc_ae_blocks::{Block, DcDownBlock2d, DcUpBlock2d, EfficientVitBlock, ResBlock, Tracer};
use super::dc_ae_config::{AutoencoderDcConfig, BlockType, Side};
use crate::checkpoint::{CheckpointError, Pretrained};
use crate::layers::{Activation, Layer, RmsNorm};

#[derive(Debug, thiserror::Error)]
pub enum DcAeError {
    #[error("invalid AutoencoderDC config: {0}")]
    Config(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{what} of shape {shape:?} does not fit this DC-AE: expected {expected}")]
    Input { what: &'static str, shape: Vec<i64>, expected: String },
}

type Result<T> = std::result::Result<T, DcAeError>;

/// A stage block of `block_type` at `channels` wide (`autoencoder_dc.get_block`). `act` only reaches
/// ResBlocks; the EfficientViT block's activations are fixed (ReLU attention kernel, SiLU GLUMBConv).
#[allow(clippy::too_many_arguments)]
fn stage_block(
    p: nn::Path,
    block_type: BlockType,
    channels: i64,
    hidden: i64,
    attention_head_dim: i64,
    qkv_multiscales: &[i64],
    norm_type: NormType,
    act: Activation,
) -> Block {
    match block_type {
        BlockType::ResBlock => Block::Res(Box::new(ResBlock::new(p, channels, hidden, norm_type, act))),
        BlockType::EfficientVitBlock => Block::EfficientVit(Box::new(EfficientVitBlock::new(
            p,
            channels,
            hidden,
            attention_head_dim,
            qkv_multiscales,
            norm_type,
        ))),
    }
}

/// Image to latent. Stages of blocks at growing widths, each but the last ending in a 2× down block; the
/// encoder's blocks always use RMS norms and SiLU.
#[derive(Debug)]
pub struct Encoder {
    pub conv_in: Block,
    /// `down_blocks[i]` are stage i's blocks in order (diffusers' `nn.Sequential` indices).
    pub down_blocks: Vec<Vec<Block>>,
    pub conv_out: Layer,
    /// Channels averaged into each latent channel by the output shortcut; `None` without it.
    out_shortcut_group_size: Option<i64>,
    /// Per 2× downsampling step, whether it needs an even input size: every step pixel-unshuffles (its
    /// features or its shortcut) except a stride-2 conv_in without shortcut, which accepts odd sizes.
    steps_need_even: Vec<bool>,
}

impl Encoder {
    pub fn new(p: nn::Path, cfg: &AutoencoderDcConfig) -> Self {
        let widths = &cfg.encoder_block_out_channels;
        let layers = &cfg.encoder_layers_per_block;
        let stages = widths.len();
        let unshuffle = cfg.pixel_unshuffle_down();
        let mut steps_need_even = Vec::new();
        let conv_in = if layers[0] > 0 {
            Block::Conv(Layer::conv2d_same(&p / "conv_in", cfg.in_channels, widths[0], 3, true))
        } else {
            steps_need_even.push(unshuffle);
            Block::Down(DcDownBlock2d::new(&p / "conv_in", cfg.in_channels, widths[1], unshuffle, false))
        };
        let down_blocks = (0..stages)
            .map(|i| {
                let stage = &p / "down_blocks" / i;
                let block_type = cfg.encoder_block_types.stage(i).expect("validated config");
                let mut blocks: Vec<Block> = (0..layers[i])
                    .map(|j| {
                        let scales = &cfg.encoder_qkv_multiscales[i];
                        let (norm, act) = (NormType::RmsNorm, Activation::Silu);
                        let (hidden, head_dim) = (cfg.block_hidden(Side::Encoder, i, j), cfg.attention_head_dim);
                        stage_block(&stage / j, block_type, widths[i], hidden, head_dim, scales, norm, act)
                    })
                    .collect();
                if i + 1 < stages && layers[i] > 0 {
                    steps_need_even.push(true);
                    let down = DcDownBlock2d::new(&stage / layers[i], widths[i], widths[i + 1], unshuffle, true);
                    blocks.push(Block::Down(down));
                }
                blocks
            })
            .collect();
        let last = widths[stages - 1];
        Self {
            conv_in,
            down_blocks,
            conv_out: Layer::conv2d_same(&p / "conv_out", last, cfg.latent_channels, 3, true),
            out_shortcut_group_size: cfg.encoder_out_shortcut.then(|| last / cfg.latent_channels),
            steps_need_even,
        }
    }

    /// The latent's spatial size for an image of `height`×`width`, or `None` where some downsampling step
    /// would get an odd size it cannot pixel-unshuffle.
    pub fn latent_size(&self, height: i64, width: i64) -> Option<(i64, i64)> {
        let mut size = (height, width);
        for &need_even in &self.steps_need_even {
            if need_even && (size.0 % 2 != 0 || size.1 % 2 != 0) {
                return None;
            }
            size = ((size.0 + 1) / 2, (size.1 + 1) / 2);
        }
        Some(size)
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_traced(x, &mut |_, _| {})
    }

    /// [`Self::forward`], reporting each module's output under its diffusers path relative to the encoder
    /// (`conv_in`, `down_blocks.1.0`, `down_blocks.1.0.attn`, ..., `conv_out` before the shortcut).
    pub fn forward_traced(&self, x: &Tensor, trace: &mut Tracer) -> Tensor {
        let mut h = self.conv_in.forward_traced(x, "conv_in", trace);
        for (i, stage) in self.down_blocks.iter().enumerate() {
            for (j, block) in stage.iter().enumerate() {
                h = block.forward_traced(&h, &format!("down_blocks.{i}.{j}"), trace);
            }
        }
        let out = self.conv_out.forward(&h);
        trace("conv_out", &out);
        match self.out_shortcut_group_size {
            Some(group) => out + h.unflatten(1, [-1, group]).mean_dim(2, false, None),
            None => out,
        }
    }
}

/// Latent to image: the encoder's mirror, with per-stage norm types and act fns, then RMS norm, an
/// activation and the output conv (or up block).
#[derive(Debug)]
pub struct Decoder {
    pub conv_in: Layer,
    /// `up_blocks[i]` are stage i's blocks in order (its up block first); they run from the last stage down.
    pub up_blocks: Vec<Vec<Block>>,
    pub norm_out: RmsNorm,
    pub conv_out: Block,
    conv_act: Activation,
    /// Times each latent channel is repeated by the input shortcut; `None` without it.
    in_shortcut_repeats: Option<i64>,
}

impl Decoder {
    /// The layer that draws the image: `conv_out`'s convolution (the one inside a pixel-shuffle up block when
    /// the first stage is empty, which then has no shortcut).
    pub fn output_layer(&self) -> &Layer {
        match &self.conv_out {
            Block::Conv(layer) => layer,
            Block::Up(up) => &up.conv,
            _ => unreachable!("conv_out is a convolution or an up block"),
        }
    }

    pub fn new(p: nn::Path, cfg: &AutoencoderDcConfig) -> Self {
        let widths = &cfg.decoder_block_out_channels;
        let layers = &cfg.decoder_layers_per_block;
        let stages = widths.len();
        let interpolate = cfg.interpolate_up();
        let up_blocks = (0..stages)
            .map(|i| {
                let stage = &p / "up_blocks" / i;
                let mut blocks = Vec::new();
                if i + 1 < stages && layers[i] > 0 {
                    blocks.push(Block::Up(DcUpBlock2d::new(&stage / 0, widths[i + 1], widths[i], interpolate, true)));
                }
                let block_type = cfg.decoder_block_types.stage(i).expect("validated config");
                let norm = cfg.decoder_norm_types.stage(i).expect("validated config");
                let act = cfg.decoder_act_fns.stage(i).expect("validated config");
                for j in 0..layers[i] {
                    let (scales, head_dim) = (&cfg.decoder_qkv_multiscales[i], cfg.attention_head_dim);
                    let hidden = cfg.block_hidden(Side::Decoder, i, j);
                    let path = &stage / blocks.len();
                    blocks.push(stage_block(path, block_type, widths[i], hidden, head_dim, scales, norm, act));
                }
                blocks
            })
            .collect();
        let last = widths[stages - 1];
        let channels = if layers[0] > 0 { widths[0] } else { widths[1] };
        let conv_out = if layers[0] > 0 {
            Block::Conv(Layer::conv2d_same(&p / "conv_out", channels, cfg.in_channels, 3, true))
        } else {
            Block::Up(DcUpBlock2d::new(&p / "conv_out", channels, cfg.in_channels, interpolate, false))
        };
        Self {
            conv_in: Layer::conv2d_same(&p / "conv_in", cfg.latent_channels, last, 3, true),
            up_blocks,
            norm_out: RmsNorm::new(&p / "norm_out", channels, 1e-5, true, true),
            conv_out,
            conv_act: cfg.decoder_conv_act_fn,
            in_shortcut_repeats: cfg.decoder_in_shortcut.then(|| last / cfg.latent_channels),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_traced(x, &mut |_, _| {})
    }

    /// [`Self::forward`], reporting each module's output under its diffusers path relative to the decoder
    /// (`conv_in` before the shortcut, `up_blocks.2.0`, ..., `norm_out`, `conv_act`, `conv_out`).
    pub fn forward_traced(&self, x: &Tensor, trace: &mut Tracer) -> Tensor {
        let h = self.conv_in.forward(x);
        trace("conv_in", &h);
        let mut h = match self.in_shortcut_repeats {
            Some(repeats) => h + x.repeat_interleave_self_int(repeats, 1, x.size()[1] * repeats),
            None => h,
        };
        for (i, stage) in self.up_blocks.iter().enumerate().rev() {
            for (j, block) in stage.iter().enumerate() {
                h = block.forward_traced(&h, &format!("up_blocks.{i}.{j}"), trace);
            }
        }
        let h = self.norm_out.forward_channels(&h);
        trace("norm_out", &h);
        let h = self.conv_act.forward(&h);
        trace("conv_act", &h);
        self.conv_out.forward_traced(&h, "conv_out", trace)
    }
}

#[derive(Debug)]
pub struct AutoencoderDc {
    pub config: AutoencoderDcConfig,
    pub encoder: Encoder,
    pub decoder: Decoder,
}

impl Pretrained for AutoencoderDc {
    type Config = AutoencoderDcConfig;
    type Error = DcAeError;

    fn build(p: nn::Path, config: &AutoencoderDcConfig) -> Result<Self> {
        Self::new(p, config)
    }

    fn config(&self) -> &AutoencoderDcConfig {
        &self.config
    }
}

impl AutoencoderDc {
    /// Builds the model under `p` (randomly initialised, as torch would); the config is validated first.
    pub fn new(p: nn::Path, config: &AutoencoderDcConfig) -> Result<Self> {
        config.validate().map_err(DcAeError::Config)?;
        Ok(Self {
            config: config.clone(),
            encoder: Encoder::new(&p / "encoder", config),
            decoder: Decoder::new(&p / "decoder", config),
        })
    }

    /// `AutoencoderDC.encode(image).latent`: NCHW image in [-1, 1] to the unscaled latent (multiply by
    /// `config.scaling_factor` for the diffusion model). The image is moved to the model's device and dtype.
    /// Run it under [`sana_sr_core::no_grad`] unless gradients are wanted.
    pub fn encode(&self, image: &Tensor) -> Result<Tensor> {
        let shape = image.size();
        let fits = match shape[..] {
            [_, channels, height, width] => {
                channels == self.config.in_channels && self.encoder.latent_size(height, width).is_some()
            }
            _ => false,
        };
        if !fits {
            let expected = format!(
                "[batch, {}, height, width] with a height and width that every 2x downsampling step can halve \
                 (multiples of {} always can)",
                self.config.in_channels,
                self.config.spatial_compression_ratio()
            );
            return Err(DcAeError::Input { what: "image", shape, expected });
        }
        Ok(self.encoder.forward(&self.to_model(image)))
    }

    /// `AutoencoderDC.decode(latent).sample`: unscaled NCHW latent to the image (roughly in [-1, 1]).
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let shape = latent.size();
        if !matches!(shape[..], [_, channels, _, _] if channels == self.config.latent_channels) {
            let expected = format!("[batch, {}, height, width]", self.config.latent_channels);
            return Err(DcAeError::Input { what: "latent", shape, expected });
        }
        Ok(self.decoder.forward(&self.to_model(latent)))
    }

    fn to_model(&self, x: &Tensor) -> Tensor {
        let weight = &self.decoder.conv_in.weight;
        let x = x.to_device(weight.device()).to_kind(weight.kind());
        // Channels-last memory: every convolution keeps it, and the channel norms and the attention's
        // projections then read each pixel's channels as one contiguous row.
        x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    }
}

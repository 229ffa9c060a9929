//! The configuration of the DC-AE: diffusers' `AutoencoderDC` `config.json`, field for field.

use serde::{Deserialize, Serialize};

use super::channel_norm::NormType;
use crate::layers::{variables, Activation};

/// The building block of a stage, by its diffusers name (`autoencoder_dc.get_block`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockType {
    ResBlock,
    #[serde(rename = "EfficientViTBlock")]
    EfficientVitBlock,
}

/// A setting given once for every stage (a JSON string) or stage by stage (a JSON list), as diffusers accepts
/// for block types, norm types and act fns. Kept in the form it was read in, so configs round-trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerStage<T> {
    All(T),
    Each(Vec<T>),
}

impl<T: Copy> PerStage<T> {
    /// The setting of stage `i`; `None` if a per-stage list is too short.
    pub fn stage(&self, i: usize) -> Option<T> {
        match self {
            PerStage::All(value) => Some(*value),
            PerStage::Each(values) => values.get(i).copied(),
        }
    }

    fn len_matches(&self, stages: usize) -> bool {
        match self {
            PerStage::All(_) => true,
            PerStage::Each(values) => values.len() == stages,
        }
    }
}

/// `AutoencoderDC.__init__`'s arguments, with its defaults (`Default`).
///
/// `downsample_block_type` and `upsample_block_type` are kept as the strings diffusers compares against:
/// exactly `"pixel_unshuffle"` selects conv + pixel-unshuffle down blocks and anything else a stride-2 conv;
/// exactly `"interpolate"` selects nearest upsampling + conv up blocks and anything else conv + pixel-shuffle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoencoderDcConfig {
    /// Written by diffusers' `save_pretrained`; checked so that another model's folder is refused clearly.
    #[serde(rename = "_class_name")]
    pub class_name: String,
    pub in_channels: i64,
    pub latent_channels: i64,
    pub attention_head_dim: i64,
    pub encoder_block_types: PerStage<BlockType>,
    pub decoder_block_types: PerStage<BlockType>,
    pub encoder_block_out_channels: Vec<i64>,
    pub decoder_block_out_channels: Vec<i64>,
    pub encoder_layers_per_block: Vec<usize>,
    pub decoder_layers_per_block: Vec<usize>,
    pub encoder_qkv_multiscales: Vec<Vec<i64>>,
    pub decoder_qkv_multiscales: Vec<Vec<i64>>,
    pub upsample_block_type: String,
    pub downsample_block_type: String,
    pub decoder_norm_types: PerStage<NormType>,
    pub decoder_act_fns: PerStage<Activation>,
    pub encoder_out_shortcut: bool,
    pub decoder_in_shortcut: bool,
    pub decoder_conv_act_fn: Activation,
    /// Latents are multiplied by this before the diffusion model and divided by it before decoding; `encode`
    /// and `decode` themselves do not apply it (as in diffusers).
    pub scaling_factor: f64,
    /// sana-sr's structured pruning, not a diffusers field: the hidden width of every encoder block, stage by
    /// stage (a ResBlock's channels between its two convolutions, an EfficientViT block's GLUMBConv channels);
    /// `None`: the reference's (the stage's width; 4 times it). Not written when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder_block_hidden: Option<Vec<Vec<i64>>>,
    /// The same for the decoder's blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoder_block_hidden: Option<Vec<Vec<i64>>>,
}

/// The per-stage settings of the encoder or the decoder ([`AutoencoderDcConfig::side`]).
#[derive(Debug, Clone, Copy)]
pub struct SideConfig<'a> {
    pub widths: &'a [i64],
    pub layers: &'a [usize],
    pub block_types: &'a PerStage<BlockType>,
    /// Kernel sizes of the extra attention scales, per stage.
    pub scales: &'a [Vec<i64>],
    /// Per-block hidden widths, when pruned.
    pub hidden: Option<&'a [Vec<i64>]>,
}

/// The encoder or the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Encoder,
    Decoder,
}

pub const CLASS_NAME: &str = "AutoencoderDC";

impl Default for AutoencoderDcConfig {
    /// The defaults of `AutoencoderDC.__init__` (diffusers `models/autoencoders/autoencoder_dc.py`).
    fn default() -> Self {
        let no_attention_then_5 = vec![vec![], vec![], vec![], vec![5], vec![5], vec![5]];
        Self {
            class_name: CLASS_NAME.to_string(),
            in_channels: 3,
            latent_channels: 32,
            attention_head_dim: 32,
            encoder_block_types: PerStage::All(BlockType::ResBlock),
            decoder_block_types: PerStage::All(BlockType::ResBlock),
            encoder_block_out_channels: vec![128, 256, 512, 512, 1024, 1024],
            decoder_block_out_channels: vec![128, 256, 512, 512, 1024, 1024],
            encoder_layers_per_block: vec![2, 2, 2, 3, 3, 3],
            decoder_layers_per_block: vec![3, 3, 3, 3, 3, 3],
            encoder_qkv_multiscales: no_attention_then_5.clone(),
            decoder_qkv_multiscales: no_attention_then_5,
            upsample_block_type: "pixel_shuffle".to_string(),
            downsample_block_type: "pixel_unshuffle".to_string(),
            decoder_norm_types: PerStage::All(NormType::RmsNorm),
            decoder_act_fns: PerStage::All(Activation::Silu),
            encoder_out_shortcut: true,
            decoder_in_shortcut: true,
            decoder_conv_act_fn: Activation::Relu,
            scaling_factor: 1.0,
            encoder_block_hidden: None,
            decoder_block_hidden: None,
        }
    }
}

impl AutoencoderDcConfig {
    /// `dc-ae-f32c32-sana-1.0`, the autoencoder of SANA: `get_ae_config("dc-ae-f32c32-sana-1.0")` in diffusers'
    /// `scripts/convert_dcae_to_diffusers.py` (three ResBlock stages, then three EfficientViT stages with one
    /// extra attention scale of kernel 5; stride-2 conv down blocks, nearest-interpolation up blocks;
    /// `scaling_factor` 0.41407), everything else at the defaults.
    pub fn dc_ae_f32c32_sana_1_0() -> Self {
        let blocks = [[BlockType::ResBlock; 3], [BlockType::EfficientVitBlock; 3]].concat();
        let scales = vec![vec![], vec![], vec![], vec![5], vec![5], vec![5]];
        Self {
            latent_channels: 32,
            encoder_block_types: PerStage::Each(blocks.clone()),
            decoder_block_types: PerStage::Each(blocks),
            encoder_block_out_channels: vec![128, 256, 512, 512, 1024, 1024],
            decoder_block_out_channels: vec![128, 256, 512, 512, 1024, 1024],
            encoder_qkv_multiscales: scales.clone(),
            decoder_qkv_multiscales: scales,
            encoder_layers_per_block: vec![2, 2, 2, 3, 3, 3],
            decoder_layers_per_block: vec![3, 3, 3, 3, 3, 3],
            downsample_block_type: "conv".to_string(),
            upsample_block_type: "interpolate".to_string(),
            decoder_norm_types: PerStage::All(NormType::RmsNorm),
            decoder_act_fns: PerStage::All(Activation::Silu),
            scaling_factor: 0.41407,
            ..Self::default()
        }
    }

    /// `dc-ae-f32c32-sana-1.1`: the same architecture and scaling factor as 1.0 with a retrained decoder. The
    /// efficientvit configs shipped with SANA (NVlabs/Sana `diffusion/model/dc_ae/efficientvit/models/
    /// efficientvit/dc_ae.py`, `dc_ae_f32c32`) build "dc-ae-f32c32-sana-1.0" and "-1.1" from one config string
    /// with `scaling_factor=0.41407`, and efficientvit's `assets/docs/dc_ae_sana_1.1.md` describes 1.1 as
    /// "the same encoder as DC-AE-f32c32-SANA-1.0 while having a slightly better decoder".
    pub fn dc_ae_f32c32_sana_1_1() -> Self {
        Self::dc_ae_f32c32_sana_1_0()
    }

    pub fn num_stages(&self) -> usize {
        self.encoder_block_out_channels.len()
    }

    /// The image-to-latent downsampling factor, `2 ** (len(encoder_block_out_channels) - 1)`.
    pub fn spatial_compression_ratio(&self) -> i64 {
        1 << (self.num_stages().saturating_sub(1))
    }

    /// One side's per-stage settings.
    pub fn side(&self, side: Side) -> SideConfig<'_> {
        match side {
            Side::Encoder => SideConfig {
                widths: &self.encoder_block_out_channels,
                layers: &self.encoder_layers_per_block,
                block_types: &self.encoder_block_types,
                scales: &self.encoder_qkv_multiscales,
                hidden: self.encoder_block_hidden.as_deref(),
            },
            Side::Decoder => SideConfig {
                widths: &self.decoder_block_out_channels,
                layers: &self.decoder_layers_per_block,
                block_types: &self.decoder_block_types,
                scales: &self.decoder_qkv_multiscales,
                hidden: self.decoder_block_hidden.as_deref(),
            },
        }
    }

    /// The hidden width of block `block` of stage `stage` on `side` (see `encoder_block_hidden`).
    pub fn block_hidden(&self, side: Side, stage: usize, block: usize) -> i64 {
        let c = self.side(side);
        match c.hidden {
            Some(hidden) => hidden[stage][block],
            None => match c.block_types.stage(stage).expect("validated config") {
                BlockType::ResBlock => c.widths[stage],
                // `GLUMBConv(expand_ratio=4)`: `int(4 * channels)`.
                BlockType::EfficientVitBlock => 4 * c.widths[stage],
            },
        }
    }

    /// Channels per image pixel of the widest activation either side computes, a tensor of `c` channels at
    /// stage `i` (a `2^i`-times smaller grid) counting `c / 4^i`: the stage widths, ResBlocks' hidden widths,
    /// an EfficientViT block's gated expansion (twice its hidden width) and its attention's q, k, v over every
    /// scale. What a tile's memory grows with: 128 for the full-size f32c32 DC-AE (its first stage, at full
    /// resolution).
    pub fn widest_activation(&self) -> f64 {
        let side_widest = |side: Side| {
            let c = self.side(side);
            (0..c.widths.len())
                // An empty first stage computes only its in/out convolution, narrower than the next stage.
                .filter(|&i| i > 0 || c.layers[0] > 0)
                .map(|i| {
                    let blocks = (0..c.layers[i]).map(|j| {
                        let hidden = self.block_hidden(side, i, j);
                        match c.block_types.stage(i).expect("validated config") {
                            BlockType::ResBlock => hidden,
                            BlockType::EfficientVitBlock => {
                                (2 * hidden).max(3 * c.widths[i] * (1 + c.scales[i].len() as i64))
                            }
                        }
                    });
                    let widest = blocks.fold(c.widths[i], i64::max);
                    widest as f64 / 4f64.powi(i as i32)
                })
                .fold(0.0, f64::max)
        };
        side_widest(Side::Encoder).max(side_widest(Side::Decoder))
    }

    pub(crate) fn pixel_unshuffle_down(&self) -> bool {
        self.downsample_block_type == "pixel_unshuffle"
    }

    pub(crate) fn interpolate_up(&self) -> bool {
        self.upsample_block_type == "interpolate"
    }

    /// Checks what diffusers would otherwise only find out by crashing, at construction or in the first
    /// forward pass: list lengths, channel counts the shortcuts and pixel (un)shuffles can divide, heads of at
    /// least one, "same"-padded (odd) kernels, stages that connect.
    pub fn validate(&self) -> Result<(), String> {
        if self.class_name != CLASS_NAME {
            return Err(format!("`_class_name` is {:?}, not {CLASS_NAME:?}", self.class_name));
        }
        for (name, value) in [
            ("in_channels", self.in_channels),
            ("latent_channels", self.latent_channels),
            ("attention_head_dim", self.attention_head_dim),
        ] {
            if value <= 0 {
                return Err(format!("`{name}` must be positive, not {value}"));
            }
        }
        variables::check_sizes(&[
            ("in_channels", self.in_channels),
            ("latent_channels", self.latent_channels),
            ("attention_head_dim", self.attention_head_dim),
        ])?;
        // The latent is multiplied by it after encoding and divided by it before decoding: zero turns every
        // image black (or NaN), and diffusers' configs are all positive.
        if !(self.scaling_factor.is_finite() && self.scaling_factor > 0.0) {
            return Err(format!("`scaling_factor` must be a positive number, not {}", self.scaling_factor));
        }
        let encoder = SideView {
            side: "encoder",
            widths: &self.encoder_block_out_channels,
            layers: &self.encoder_layers_per_block,
            scales: &self.encoder_qkv_multiscales,
            block_types: &self.encoder_block_types,
        };
        let decoder = SideView {
            side: "decoder",
            widths: &self.decoder_block_out_channels,
            layers: &self.decoder_layers_per_block,
            scales: &self.decoder_qkv_multiscales,
            block_types: &self.decoder_block_types,
        };
        encoder.validate(self.attention_head_dim)?;
        decoder.validate(self.attention_head_dim)?;
        for (name, hidden, layers) in [
            ("encoder_block_hidden", &self.encoder_block_hidden, &self.encoder_layers_per_block),
            ("decoder_block_hidden", &self.decoder_block_hidden, &self.decoder_layers_per_block),
        ] {
            let Some(hidden) = hidden else { continue };
            let fits = hidden.len() == layers.len() && hidden.iter().zip(layers).all(|(h, &l)| h.len() == l);
            if !fits {
                return Err(format!("`{name}` must list one width per block of every stage ({layers:?} blocks)"));
            }
            if let Some(w) = hidden.iter().flatten().find(|&&w| w < 1) {
                return Err(format!("`{name}` has a width {w}; every block keeps at least one channel"));
            }
        }
        if decoder.widths.len() != encoder.widths.len() {
            return Err(format!(
                "encoder and decoder have {} and {} stages; the compression ratios would differ",
                encoder.widths.len(),
                decoder.widths.len()
            ));
        }
        let stages = decoder.widths.len();
        if !self.decoder_norm_types.len_matches(stages) || !self.decoder_act_fns.len_matches(stages) {
            return Err(format!("`decoder_norm_types` and `decoder_act_fns` must be one value or {stages} values"));
        }

        if self.encoder_layers_per_block[0] == 0 && self.pixel_unshuffle_down() && encoder.widths[1] % 4 != 0 {
            return Err(format!(
                "encoder conv_in: pixel_unshuffle needs out channels divisible by 4, not {}",
                encoder.widths[1]
            ));
        }
        for i in 0..stages - 1 {
            let (c_in, c_out) = (encoder.widths[i], encoder.widths[i + 1]);
            if self.encoder_layers_per_block[i] > 0 {
                if self.pixel_unshuffle_down() && c_out % 4 != 0 {
                    return Err(format!("encoder down block {i}: pixel_unshuffle needs {c_out} divisible by 4"));
                }
                if (4 * c_in) % c_out != 0 {
                    return Err(format!("encoder down block {i}: shortcut averages 4·{c_in} channels into {c_out}"));
                }
            }
            let (c_in, c_out) = (decoder.widths[i + 1], decoder.widths[i]);
            if self.decoder_layers_per_block[i] > 0 && (4 * c_out) % c_in != 0 {
                return Err(format!("decoder up block {i}: shortcut repeats {c_in} channels into 4·{c_out}"));
            }
        }
        let last = |widths: &[i64]| widths[widths.len() - 1];
        if self.encoder_out_shortcut && last(encoder.widths) % self.latent_channels != 0 {
            return Err(format!(
                "encoder out shortcut averages {} channels into {} latent channels",
                last(encoder.widths),
                self.latent_channels
            ));
        }
        if self.decoder_in_shortcut && last(decoder.widths) % self.latent_channels != 0 {
            return Err(format!(
                "decoder in shortcut repeats {} latent channels into {}",
                self.latent_channels,
                last(decoder.widths)
            ));
        }
        Ok(())
    }
}

/// The per-stage lists of one side (encoder or decoder), for validation.
struct SideView<'a> {
    side: &'static str,
    widths: &'a [i64],
    layers: &'a [usize],
    scales: &'a [Vec<i64>],
    block_types: &'a PerStage<BlockType>,
}

impl SideView<'_> {
    fn validate(&self, attention_head_dim: i64) -> Result<(), String> {
        let side = self.side;
        let stages = self.widths.len();
        if stages == 0 {
            return Err(format!("`{side}_block_out_channels` is empty"));
        }
        if self.layers.len() != stages || self.scales.len() != stages || !self.block_types.len_matches(stages) {
            return Err(format!(
                "`{side}_layers_per_block`, `{side}_qkv_multiscales` and `{side}_block_types` must have one entry \
                 per stage ({stages})"
            ));
        }
        if let Some(&width) = self.widths.iter().find(|&&w| w <= 0) {
            return Err(format!("`{side}_block_out_channels` has a non-positive width {width}"));
        }
        // 2^(stages - 1) is the compression; 16 stages compress 32768 times.
        if stages > 16 {
            return Err(format!("`{side}_block_out_channels` has {stages} stages, over the limit of 16"));
        }
        let (widths, kernels, layers) = (
            format!("{side}_block_out_channels"),
            format!("{side}_qkv_multiscales"),
            format!("{side}_layers_per_block"),
        );
        let sizes = self.widths.iter().map(|&w| (widths.as_str(), w));
        let sizes: Vec<(&str, i64)> =
            sizes.chain(self.scales.iter().flatten().map(|&k| (kernels.as_str(), k))).collect();
        variables::check_sizes(&sizes)?;
        let depths: Vec<(&str, i64)> =
            self.layers.iter().map(|&l| (layers.as_str(), i64::try_from(l).unwrap_or(i64::MAX))).collect();
        variables::check_depths(&depths)?;
        if self.layers[0] == 0 && stages < 2 {
            return Err(format!("`{side}_layers_per_block[0] == 0` needs a second stage for conv_in/conv_out"));
        }
        if let Some(i) = (1..stages).find(|&i| self.layers[i] == 0) {
            return Err(format!("`{side}_layers_per_block[{i}]` is 0: only the first stage may be empty"));
        }
        for i in (0..stages).filter(|&i| self.layers[i] > 0) {
            let block_type = self.block_types.stage(i).expect("length checked above");
            if block_type == BlockType::EfficientVitBlock {
                if self.widths[i] < attention_head_dim {
                    return Err(format!(
                        "{side} stage {i}: {} channels give no head of dimension {attention_head_dim}",
                        self.widths[i]
                    ));
                }
                if let Some(k) = self.scales[i].iter().find(|&&k| k <= 0 || k % 2 == 0) {
                    return Err(format!("{side} stage {i}: attention kernel size {k} is not a positive odd number"));
                }
            }
        }
        Ok(())
    }
}

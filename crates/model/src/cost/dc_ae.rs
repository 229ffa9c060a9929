//! The cost of the DC-AE's encoder and decoder (`crate::autoencoders`), module by module as they are built.

use super::{conv2d, conv_out_size, linear, matmul, Cost, Part};
use crate::autoencoders::{AutoencoderDcConfig, BlockType, Side};

type Size = (i64, i64);

/// ResBlock: conv3×3 to `hidden` channels → act → conv3×3 back (no bias) → norm (weight and bias).
fn res_block(size: Size, channels: i64, hidden: i64) -> Cost {
    conv2d(size, channels, hidden, 3, 1, true) + conv2d(size, hidden, channels, 3, 1, false) + norm(channels)
}

/// A channel norm's parameters: RMS norm's or batch norm's weight and bias.
fn norm(channels: i64) -> Cost {
    Cost::params(2 * channels as u64)
}

/// EfficientViT block: multi-scale linear attention (heads of `head_dim` over `channels`, one more set of
/// heads per extra scale), then a GLUMBConv of `hidden` channels, each with an RMS/batch norm.
fn efficient_vit_block(size: Size, channels: i64, head_dim: i64, scales: &[i64], hidden: i64) -> Cost {
    let pixels = size.0 * size.1;
    let heads = channels / head_dim;
    let inner = heads * head_dim;
    let qkv = (0..3).map(|_| linear(pixels, channels, inner, false)).sum::<Cost>();
    let multiscale = scales
        .iter()
        .map(|&k| {
            conv2d(size, 3 * inner, 3 * inner, k, 3 * inner, false)
                + conv2d(size, 3 * inner, 3 * inner, 1, 3 * heads, false)
        })
        .sum::<Cost>();
    let all_heads = heads * (1 + scales.len() as i64);
    let attention = if pixels > head_dim {
        // [v; 1] kᵀ, then that by q: two products of (d + 1)×d×N per head.
        matmul(all_heads, head_dim + 1, pixels, head_dim) + matmul(all_heads, head_dim + 1, head_dim, pixels)
    } else {
        // kᵀ q (N×d×N), then v by the normalised scores (d×N×N).
        matmul(all_heads, pixels, head_dim, pixels) + matmul(all_heads, head_dim, pixels, pixels)
    };
    let to_out = linear(pixels, inner * (1 + scales.len() as i64), channels, false);
    let attn = qkv + multiscale + attention + to_out + norm(channels);
    attn + glu_mb_conv(size, channels, hidden, true)
}

/// GLUMBConv (`crate::layers::GluMbConv`), `channels` to `channels` through `hidden` gated channels.
pub(crate) fn glu_mb_conv(size: Size, channels: i64, hidden: i64, rms_norm: bool) -> Cost {
    conv2d(size, channels, 2 * hidden, 1, 1, true)
        + conv2d(size, 2 * hidden, 2 * hidden, 3, 2 * hidden, true)
        + conv2d(size, hidden, channels, 1, 1, false)
        + if rms_norm { norm(channels) } else { Cost::default() }
}

/// `DCDownBlock2d`: the conv and the size after it.
fn down_block(size: Size, in_ch: i64, out_ch: i64, pixel_unshuffle: bool) -> (Cost, Size) {
    if pixel_unshuffle {
        (conv2d(size, in_ch, out_ch / 4, 3, 1, true), (size.0 / 2, size.1 / 2))
    } else {
        let out = conv_out_size(size, 3, 2, 1);
        (conv2d(out, in_ch, out_ch, 3, 1, true), out)
    }
}

/// `DCUpBlock2d`: the conv and the size after it.
fn up_block(size: Size, in_ch: i64, out_ch: i64, interpolate: bool) -> (Cost, Size) {
    let out = (size.0 * 2, size.1 * 2);
    if interpolate {
        (conv2d(out, in_ch, out_ch, 3, 1, true), out)
    } else {
        (conv2d(size, in_ch, 4 * out_ch, 3, 1, true), out)
    }
}

/// Block `block` of stage `stage` on `side`, on a feature map of `size`.
pub fn stage_block(cfg: &AutoencoderDcConfig, side: Side, stage: usize, block: usize, size: Size) -> Cost {
    let c = cfg.side(side);
    let (widths, types) = (c.widths, c.block_types);
    let hidden = cfg.block_hidden(side, stage, block);
    let scales = match side {
        Side::Encoder => &cfg.encoder_qkv_multiscales[stage],
        Side::Decoder => &cfg.decoder_qkv_multiscales[stage],
    };
    match types.stage(stage).expect("validated config") {
        BlockType::ResBlock => res_block(size, widths[stage], hidden),
        BlockType::EfficientVitBlock => {
            efficient_vit_block(size, widths[stage], cfg.attention_head_dim, scales, hidden)
        }
    }
}

/// The spatial size each stage's blocks run at on `side`, for an image (encoder) or latent (decoder) of
/// `size`.
pub fn stage_sizes(cfg: &AutoencoderDcConfig, side: Side, size: Size) -> Vec<Size> {
    let mut sizes = Vec::new();
    let (widths, layers) = (cfg.side(side).widths, cfg.side(side).layers);
    let mut current = size;
    match side {
        Side::Encoder => {
            if layers[0] == 0 {
                current = down_block(current, cfg.in_channels, widths[1], cfg.pixel_unshuffle_down()).1;
            }
            for i in 0..widths.len() {
                sizes.push(current);
                if i + 1 < widths.len() && layers[i] > 0 {
                    current = down_block(current, widths[i], widths[i + 1], cfg.pixel_unshuffle_down()).1;
                }
            }
        }
        Side::Decoder => {
            sizes = vec![(0, 0); widths.len()];
            for i in (0..widths.len()).rev() {
                if i + 1 < widths.len() && layers[i] > 0 {
                    current = (current.0 * 2, current.1 * 2);
                }
                sizes[i] = current;
            }
        }
    }
    sizes
}

/// The encoder on an image of `size` (a size it accepts): its parts (`conv_in`, `down_blocks.{i}.{j}`,
/// `conv_out`) and the latent's size.
pub fn encoder(cfg: &AutoencoderDcConfig, size: Size) -> (Vec<Part>, Size) {
    let widths = &cfg.encoder_block_out_channels;
    let layers = &cfg.encoder_layers_per_block;
    let stages = widths.len();
    let unshuffle = cfg.pixel_unshuffle_down();
    let mut parts = Vec::new();
    let mut size = size;
    if layers[0] > 0 {
        parts.push(Part::new("conv_in", conv2d(size, cfg.in_channels, widths[0], 3, 1, true)));
    } else {
        let (cost, out) = down_block(size, cfg.in_channels, widths[1], unshuffle);
        parts.push(Part::new("conv_in", cost));
        size = out;
    }
    for i in 0..stages {
        for j in 0..layers[i] {
            let cost = stage_block(cfg, Side::Encoder, i, j, size);
            parts.push(Part::new(format!("down_blocks.{i}.{j}"), cost));
        }
        if i + 1 < stages && layers[i] > 0 {
            let (cost, out) = down_block(size, widths[i], widths[i + 1], unshuffle);
            parts.push(Part::new(format!("down_blocks.{i}.{}", layers[i]), cost));
            size = out;
        }
    }
    parts.push(Part::new("conv_out", conv2d(size, widths[stages - 1], cfg.latent_channels, 3, 1, true)));
    (parts, size)
}

/// The decoder on a latent of `size`: its parts (`conv_in`, `up_blocks.{i}.{j}` from the last stage down,
/// `norm_out`, `conv_out`) and the image's size.
pub fn decoder(cfg: &AutoencoderDcConfig, size: Size) -> (Vec<Part>, Size) {
    let widths = &cfg.decoder_block_out_channels;
    let layers = &cfg.decoder_layers_per_block;
    let stages = widths.len();
    let interpolate = cfg.interpolate_up();
    let mut size = size;
    let mut parts = vec![Part::new("conv_in", conv2d(size, cfg.latent_channels, widths[stages - 1], 3, 1, true))];
    for i in (0..stages).rev() {
        let mut index = 0;
        if i + 1 < stages && layers[i] > 0 {
            let (cost, out) = up_block(size, widths[i + 1], widths[i], interpolate);
            parts.push(Part::new(format!("up_blocks.{i}.0"), cost));
            size = out;
            index = 1;
        }
        for j in 0..layers[i] {
            let cost = stage_block(cfg, Side::Decoder, i, j, size);
            parts.push(Part::new(format!("up_blocks.{i}.{}", index + j), cost));
        }
    }
    let channels = if layers[0] > 0 { widths[0] } else { widths[1] };
    parts.push(Part::new("norm_out", norm(channels)));
    if layers[0] > 0 {
        parts.push(Part::new("conv_out", conv2d(size, channels, cfg.in_channels, 3, 1, true)));
    } else {
        let (cost, out) = up_block(size, channels, cfg.in_channels, interpolate);
        parts.push(Part::new("conv_out", cost));
        size = out;
    }
    (parts, size)
}

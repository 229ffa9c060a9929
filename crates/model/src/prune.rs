//! Structured pruning of the DiT and the DC-AE: the units that can be removed (whole blocks, attention heads,
//! hidden channels), the weights that read each unit, and a plan of what to keep turned into the smaller
//! network's config (per-block widths) and weights.
//!
//! Every unit is removed exactly by zeroing the weights that read it ([`Unit::readers`]): a DiT block's
//! three residual branches end in `attn1.to_out`, `attn2.to_out` and `ff.conv_point`; a DC-AE block's in
//! the affine weights of its norms (RMS or batch norm with weight and bias zero outputs zero); a head's
//! output feeds its columns of `to_out`; a hidden channel its column of the layer after it. So an importance
//! can be measured on the unpruned network (the output with a unit's readers zeroed, or the gradient through
//! them), and the network built from the plan computes what the zeroed one did.
//!
//! Not pruned: the widths of the streams between blocks (the DiT's `inner_dim`, the DC-AE's stage widths),
//! which the DC-AE's parameter-free shortcuts tie from stage to stage, and the DC-AE's attention heads
//! (each a run of three head widths across the concatenated q, k and v, so removing one would leave the
//! three projections of unequal widths).

use std::collections::HashMap;
use std::ops::Range;

use sana_sr_core::Tensor;

use crate::autoencoders::{AutoencoderDcConfig, BlockType, Side};
use crate::transformers::{BlockWidths, SanaTransformerConfig};

/// One removable part of a network, in the unpruned network's indices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unit {
    /// DiT block `i` (the block becomes the identity).
    DitBlock(usize),
    /// Self-attention head `h` of DiT block `i`.
    DitHead(usize, i64),
    /// Cross-attention head `h` of DiT block `i`.
    DitCrossHead(usize, i64),
    /// Mix-FFN hidden channels of DiT block `i`.
    DitFf(usize, Range<i64>),
    /// Block `j` of stage `s` of the encoder or decoder (the block becomes the identity).
    AeBlock(Side, usize, usize),
    /// Hidden channels of block `j` of stage `s` (a ResBlock's between its convolutions, an EfficientViT
    /// block's GLUMBConv channels).
    AeHidden(Side, usize, usize, Range<i64>),
}

/// Part of a variable: `range` of dimension `dim`, or all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The variable's path inside its network (`transformer_blocks.3.attn1.to_out.0.weight`,
    /// `encoder.down_blocks.1.0.conv2.weight`).
    pub var: String,
    pub part: Option<(i64, Range<i64>)>,
}

impl Slice {
    fn whole(var: String) -> Self {
        Self { var, part: None }
    }

    fn columns(var: String, range: Range<i64>) -> Self {
        Self { var, part: Some((1, range)) }
    }

    /// This slice of `tensor` (a view).
    pub fn of(&self, tensor: &Tensor) -> Tensor {
        match &self.part {
            None => tensor.shallow_clone(),
            Some((dim, range)) => tensor.narrow(*dim, range.start, range.end - range.start),
        }
    }
}

/// The path of block `j` of stage `s` inside the autoencoder (`encoder.down_blocks.s.j`; the decoder's
/// stages start with their up block, so `decoder.up_blocks.s.(j + 1)` there).
pub fn ae_block_path(cfg: &AutoencoderDcConfig, side: Side, s: usize, j: usize) -> String {
    match side {
        Side::Encoder => format!("encoder.down_blocks.{s}.{j}"),
        Side::Decoder => format!("decoder.up_blocks.{s}.{}", j + decoder_offset(cfg, s)),
    }
}

/// 1 when decoder stage `s` starts with an up block.
fn decoder_offset(cfg: &AutoencoderDcConfig, s: usize) -> usize {
    let layers = &cfg.decoder_layers_per_block;
    usize::from(s + 1 < layers.len() && layers[s] > 0)
}

impl Unit {
    /// The weights that read this unit (paths inside the DiT for `Dit*` units, inside the autoencoder for
    /// `Ae*` units): zeroing them removes the unit exactly.
    pub fn readers(&self, dit: &SanaTransformerConfig, ae: &AutoencoderDcConfig) -> Vec<Slice> {
        let block = |i: usize| format!("transformer_blocks.{i}");
        match self {
            Unit::DitBlock(i) => [
                "attn1.to_out.0.weight",
                "attn1.to_out.0.bias",
                "attn2.to_out.0.weight",
                "attn2.to_out.0.bias",
                "ff.conv_point.weight",
            ]
            .iter()
            .map(|v| Slice::whole(format!("{}.{v}", block(*i))))
            .collect(),
            Unit::DitHead(i, h) => {
                let d = dit.attention_head_dim;
                vec![Slice::columns(format!("{}.attn1.to_out.0.weight", block(*i)), h * d..(h + 1) * d)]
            }
            Unit::DitCrossHead(i, h) => {
                let d = dit.cross_attention_head_dim.expect("a checked config has cross-attention");
                vec![Slice::columns(format!("{}.attn2.to_out.0.weight", block(*i)), h * d..(h + 1) * d)]
            }
            Unit::DitFf(i, range) => vec![Slice::columns(format!("{}.ff.conv_point.weight", block(*i)), range.clone())],
            Unit::AeBlock(side, s, j) => {
                let path = ae_block_path(ae, *side, *s, *j);
                let norms: &[&str] = match block_type(ae, *side, *s) {
                    BlockType::ResBlock => &["norm"],
                    BlockType::EfficientVitBlock => &["attn.norm_out", "conv_out.norm"],
                };
                norms.iter().flat_map(|n| ["weight", "bias"].map(|w| Slice::whole(format!("{path}.{n}.{w}")))).collect()
            }
            Unit::AeHidden(side, s, j, range) => {
                let path = ae_block_path(ae, *side, *s, *j);
                let reader = match block_type(ae, *side, *s) {
                    BlockType::ResBlock => "conv2",
                    BlockType::EfficientVitBlock => "conv_out.conv_point",
                };
                vec![Slice::columns(format!("{path}.{reader}.weight"), range.clone())]
            }
        }
    }

    /// The unit's name in reports: its block's path (inside its network) and the part of it, e.g.
    /// `transformer_blocks.3.attn1.heads.2`, `transformer_blocks.0.ff.channels.0-180`,
    /// `decoder.up_blocks.1.2.hidden.0-16`.
    pub fn name(&self, ae: &AutoencoderDcConfig) -> String {
        match self {
            Unit::DitBlock(i) => format!("transformer_blocks.{i}"),
            Unit::DitHead(i, h) => format!("transformer_blocks.{i}.attn1.heads.{h}"),
            Unit::DitCrossHead(i, h) => format!("transformer_blocks.{i}.attn2.heads.{h}"),
            Unit::DitFf(i, r) => format!("transformer_blocks.{i}.ff.channels.{}-{}", r.start, r.end),
            Unit::AeBlock(side, s, j) => ae_block_path(ae, *side, *s, *j),
            Unit::AeHidden(side, s, j, r) => {
                format!("{}.hidden.{}-{}", ae_block_path(ae, *side, *s, *j), r.start, r.end)
            }
        }
    }

    /// Whether the unit is a whole block.
    pub fn is_block(&self) -> bool {
        matches!(self, Unit::DitBlock(_) | Unit::AeBlock(..))
    }
}

fn block_type(cfg: &AutoencoderDcConfig, side: Side, s: usize) -> BlockType {
    cfg.side(side).block_types.stage(s).expect("validated config")
}

/// The units of a DiT: every block, every head, and each block's Mix-FFN channels in `ff_groups` runs.
/// With q/k norms (SANA 1.5, Sprint) heads are not units: those norms take their statistics over all heads
/// together, so a head cannot be removed without changing the others.
pub fn dit_units(cfg: &SanaTransformerConfig, ff_groups: i64) -> Vec<Unit> {
    let mut units = Vec::new();
    for i in 0..cfg.num_layers {
        let w = cfg.block(i);
        units.push(Unit::DitBlock(i));
        if cfg.qk_norm.is_none() {
            units.extend((0..w.heads).map(|h| Unit::DitHead(i, h)));
            units.extend((0..w.cross_heads).map(|h| Unit::DitCrossHead(i, h)));
        }
        units.extend(groups(w.ff_hidden, ff_groups).into_iter().map(|r| Unit::DitFf(i, r)));
    }
    units
}

/// The units of an autoencoder: every stage block and each block's hidden channels in `groups` runs.
pub fn ae_units(cfg: &AutoencoderDcConfig, hidden_groups: i64) -> Vec<Unit> {
    let mut units = Vec::new();
    for side in [Side::Encoder, Side::Decoder] {
        let layers = cfg.side(side).layers;
        for (s, &blocks) in layers.iter().enumerate() {
            for j in 0..blocks {
                units.push(Unit::AeBlock(side, s, j));
                let hidden = cfg.block_hidden(side, s, j);
                units.extend(groups(hidden, hidden_groups).into_iter().map(|r| Unit::AeHidden(side, s, j, r)));
            }
        }
    }
    units
}

/// `0..n` in `count` nearly equal runs (fewer when `n` is smaller).
pub fn groups(n: i64, count: i64) -> Vec<Range<i64>> {
    let count = count.clamp(1, n.max(1));
    (0..count).map(|g| g * n / count..(g + 1) * n / count).filter(|r| !r.is_empty()).collect()
}

/// What a pruned DiT block keeps, as indices of the unpruned block's heads and channels (ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DitKeep {
    pub heads: Vec<i64>,
    pub cross_heads: Vec<i64>,
    pub ff: Vec<i64>,
}

/// What a pruned network keeps: per block of the unpruned DiT and autoencoder, `None` when the block goes,
/// else what it keeps (an autoencoder block keeps hidden channels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub dit: Vec<Option<DitKeep>>,
    /// `[side][stage][block]`, sides in the order encoder, decoder.
    pub ae: [Vec<Vec<Option<Vec<i64>>>>; 2],
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Encoder => 0,
        Side::Decoder => 1,
    }
}

impl Plan {
    /// Everything kept.
    pub fn full(dit: &SanaTransformerConfig, ae: &AutoencoderDcConfig) -> Self {
        let all = |n: i64| (0..n).collect::<Vec<_>>();
        let dit = (0..dit.num_layers)
            .map(|i| {
                let w = dit.block(i);
                Some(DitKeep { heads: all(w.heads), cross_heads: all(w.cross_heads), ff: all(w.ff_hidden) })
            })
            .collect();
        let side = |side: Side| {
            let layers = ae.side(side).layers;
            (0..layers.len())
                .map(|s| (0..layers[s]).map(|j| Some(all(ae.block_hidden(side, s, j)))).collect())
                .collect()
        };
        Self { dit, ae: [side(Side::Encoder), side(Side::Decoder)] }
    }

    /// What autoencoder block `j` of stage `s` keeps.
    pub fn ae_block(&self, side: Side, s: usize, j: usize) -> Option<&Vec<i64>> {
        self.ae[side_index(side)][s][j].as_ref()
    }

    pub fn ae_block_mut(&mut self, side: Side, s: usize, j: usize) -> &mut Option<Vec<i64>> {
        &mut self.ae[side_index(side)][s][j]
    }

    /// Removes `unit` (what it already removed stays removed).
    pub fn remove(&mut self, unit: &Unit) {
        let drop = |kept: &mut Vec<i64>, range: Range<i64>| kept.retain(|c| !range.contains(c));
        match unit {
            Unit::DitBlock(i) => self.dit[*i] = None,
            Unit::DitHead(i, h) => {
                if let Some(k) = &mut self.dit[*i] {
                    k.heads.retain(|x| x != h)
                }
            }
            Unit::DitCrossHead(i, h) => {
                if let Some(k) = &mut self.dit[*i] {
                    k.cross_heads.retain(|x| x != h)
                }
            }
            Unit::DitFf(i, range) => {
                if let Some(k) = &mut self.dit[*i] {
                    drop(&mut k.ff, range.clone())
                }
            }
            Unit::AeBlock(side, s, j) => *self.ae_block_mut(*side, *s, *j) = None,
            Unit::AeHidden(side, s, j, range) => {
                if let Some(k) = self.ae_block_mut(*side, *s, *j) {
                    drop(k, range.clone())
                }
            }
        }
    }

    /// Whether `unit` is still there.
    pub fn keeps(&self, unit: &Unit) -> bool {
        match unit {
            Unit::DitBlock(i) => self.dit[*i].is_some(),
            Unit::DitHead(i, h) => self.dit[*i].as_ref().is_some_and(|k| k.heads.contains(h)),
            Unit::DitCrossHead(i, h) => self.dit[*i].as_ref().is_some_and(|k| k.cross_heads.contains(h)),
            Unit::DitFf(i, r) => self.dit[*i].as_ref().is_some_and(|k| k.ff.iter().any(|c| r.contains(c))),
            Unit::AeBlock(side, s, j) => self.ae_block(*side, *s, *j).is_some(),
            Unit::AeHidden(side, s, j, r) => {
                self.ae_block(*side, *s, *j).is_some_and(|k| k.iter().any(|c| r.contains(c)))
            }
        }
    }

    /// Whether only whole blocks are removed (the pruned networks are then plain diffusers configs).
    pub fn is_depth_only(&self, dit: &SanaTransformerConfig, ae: &AutoencoderDcConfig) -> bool {
        let full = Plan::full(dit, ae);
        let dit_ok = self.dit.iter().zip(&full.dit).all(|(a, b)| a.is_none() || a == b);
        let blocks = |plan: &Plan| plan.ae.clone().into_iter().flatten().flatten().collect::<Vec<_>>();
        let ae_ok = blocks(self).iter().zip(blocks(&full)).all(|(a, b)| a.is_none() || *a == b);
        dit_ok && ae_ok
    }

    /// The pruned DiT's config: the kept blocks in order, their widths in `block_widths` (left `None` when
    /// every kept block has the uniform widths).
    pub fn dit_config(&self, cfg: &SanaTransformerConfig) -> SanaTransformerConfig {
        let widths: Vec<BlockWidths> = self
            .dit
            .iter()
            .flatten()
            .map(|k| BlockWidths {
                heads: k.heads.len() as i64,
                cross_heads: k.cross_heads.len() as i64,
                ff_hidden: k.ff.len() as i64,
            })
            .collect();
        let uniform = SanaTransformerConfig { block_widths: None, ..cfg.clone() }.block(0);
        let num_layers = widths.len();
        let block_widths = (!widths.iter().all(|w| *w == uniform)).then_some(widths);
        SanaTransformerConfig { num_layers, block_widths, ..cfg.clone() }
    }

    /// The pruned autoencoder's config: the kept blocks of every stage, their hidden widths (left `None` on a
    /// side where every kept block has the reference's).
    pub fn ae_config(&self, cfg: &AutoencoderDcConfig) -> AutoencoderDcConfig {
        let mut out = cfg.clone();
        for side in [Side::Encoder, Side::Decoder] {
            let kept = &self.ae[side_index(side)];
            let layers: Vec<usize> = kept.iter().map(|stage| stage.iter().flatten().count()).collect();
            let hidden: Vec<Vec<i64>> =
                kept.iter().map(|stage| stage.iter().flatten().map(|k| k.len() as i64).collect()).collect();
            // The reference's hidden width depends on the stage alone (its width, or 4 times it).
            let reference =
                AutoencoderDcConfig { encoder_block_hidden: None, decoder_block_hidden: None, ..cfg.clone() };
            let all_reference = kept
                .iter()
                .enumerate()
                .all(|(s, stage)| stage.iter().flatten().all(|k| k.len() as i64 == reference.block_hidden(side, s, 0)));
            let hidden = (!all_reference).then_some(hidden);
            match side {
                Side::Encoder => (out.encoder_layers_per_block, out.encoder_block_hidden) = (layers, hidden),
                Side::Decoder => (out.decoder_layers_per_block, out.decoder_block_hidden) = (layers, hidden),
            }
        }
        out
    }

    /// The pruned DiT's weights from the unpruned one's (paths inside the DiT).
    pub fn dit_weights(
        &self,
        cfg: &SanaTransformerConfig,
        weights: &HashMap<String, Tensor>,
    ) -> HashMap<String, Tensor> {
        let new_index: Vec<Option<usize>> = renumber(self.dit.iter().map(Option::is_some));
        let mut out = HashMap::new();
        for (name, t) in weights {
            let Some(rest) = name.strip_prefix("transformer_blocks.") else {
                out.insert(name.clone(), t.shallow_clone());
                continue;
            };
            let (i, var) = rest.split_once('.').expect("a block's variable");
            let i: usize = i.parse().expect("a block index");
            let (Some(keep), Some(new)) = (&self.dit[i], new_index[i]) else { continue };
            let rows = |kept: &[i64], width: i64| expand(kept, width);
            let d = cfg.attention_head_dim;
            let dc = cfg.cross_attention_head_dim.unwrap_or(0);
            let hidden = cfg.block(i).ff_hidden;
            let gated: Vec<i64> = keep.ff.iter().copied().chain(keep.ff.iter().map(|c| c + hidden)).collect();
            let sliced = match var {
                "attn1.to_q.weight"
                | "attn1.to_k.weight"
                | "attn1.to_v.weight"
                | "attn1.to_q.bias"
                | "attn1.to_k.bias"
                | "attn1.to_v.bias"
                | "attn1.norm_q.weight"
                | "attn1.norm_k.weight" => select(t, 0, &rows(&keep.heads, d)),
                "attn1.to_out.0.weight" => select(t, 1, &rows(&keep.heads, d)),
                "attn2.to_q.weight"
                | "attn2.to_k.weight"
                | "attn2.to_v.weight"
                | "attn2.to_q.bias"
                | "attn2.to_k.bias"
                | "attn2.to_v.bias"
                | "attn2.norm_q.weight"
                | "attn2.norm_k.weight" => select(t, 0, &rows(&keep.cross_heads, dc)),
                "attn2.to_out.0.weight" => select(t, 1, &rows(&keep.cross_heads, dc)),
                "ff.conv_inverted.weight" | "ff.conv_inverted.bias" | "ff.conv_depth.weight" | "ff.conv_depth.bias" => {
                    select(t, 0, &gated)
                }
                "ff.conv_point.weight" => select(t, 1, &keep.ff),
                _ => t.shallow_clone(),
            };
            out.insert(format!("transformer_blocks.{new}.{var}"), sliced);
        }
        out
    }

    /// The pruned autoencoder's weights from the unpruned one's (paths inside the autoencoder).
    pub fn ae_weights(&self, cfg: &AutoencoderDcConfig, weights: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (name, t) in weights {
            let parsed = if let Some(rest) = name.strip_prefix("encoder.down_blocks.") {
                Some((Side::Encoder, rest))
            } else {
                name.strip_prefix("decoder.up_blocks.").map(|rest| (Side::Decoder, rest))
            };
            let Some((side, rest)) = parsed else {
                out.insert(name.clone(), t.shallow_clone());
                continue;
            };
            let mut fields = rest.splitn(3, '.');
            let s: usize = fields.next().and_then(|f| f.parse().ok()).expect("a stage index");
            let k: usize = fields.next().and_then(|f| f.parse().ok()).expect("a block index");
            let var = fields.next().expect("a block's variable");
            let kept = &self.ae[side_index(side)][s];
            let layers = kept.len();
            let new_index = renumber(kept.iter().map(Option::is_some));
            let kept_count = kept.iter().flatten().count();
            let (module, new_k) = match side {
                // The encoder's stage ends with its down block, at index `layers`.
                Side::Encoder if k == layers => (None, kept_count),
                Side::Encoder => (Some(k), 0),
                Side::Decoder if k < decoder_offset(cfg, s) => (None, k),
                Side::Decoder => (Some(k - decoder_offset(cfg, s)), 0),
            };
            let (new_k, sliced) = match module {
                None => (new_k, t.shallow_clone()),
                Some(j) => {
                    let (Some(keep), Some(new_j)) = (&kept[j], new_index[j]) else { continue };
                    let offset = if side == Side::Decoder { decoder_offset(cfg, s) } else { 0 };
                    let hidden = cfg.block_hidden(side, s, j);
                    let gated: Vec<i64> = keep.iter().copied().chain(keep.iter().map(|c| c + hidden)).collect();
                    let sliced = match (block_type(cfg, side, s), var) {
                        (BlockType::ResBlock, "conv1.weight" | "conv1.bias") => select(t, 0, keep),
                        (BlockType::ResBlock, "conv2.weight") => select(t, 1, keep),
                        (
                            BlockType::EfficientVitBlock,
                            "conv_out.conv_inverted.weight"
                            | "conv_out.conv_inverted.bias"
                            | "conv_out.conv_depth.weight"
                            | "conv_out.conv_depth.bias",
                        ) => select(t, 0, &gated),
                        (BlockType::EfficientVitBlock, "conv_out.conv_point.weight") => select(t, 1, keep),
                        _ => t.shallow_clone(),
                    };
                    (new_j + offset, sliced)
                }
            };
            let prefix = match side {
                Side::Encoder => "encoder.down_blocks",
                Side::Decoder => "decoder.up_blocks",
            };
            out.insert(format!("{prefix}.{s}.{new_k}.{var}"), sliced);
        }
        out
    }
}

/// The new index of every kept item (`None` for removed ones).
fn renumber(kept: impl Iterator<Item = bool>) -> Vec<Option<usize>> {
    let mut next = 0;
    kept.map(|k| {
        k.then(|| {
            next += 1;
            next - 1
        })
    })
    .collect()
}

/// The rows of the kept heads of width `width` each.
fn expand(heads: &[i64], width: i64) -> Vec<i64> {
    heads.iter().flat_map(|h| h * width..(h + 1) * width).collect()
}

/// `t`'s entries `index` along `dim`, copied.
fn select(t: &Tensor, dim: i64, index: &[i64]) -> Tensor {
    let index = Tensor::from_slice(index).to_device(t.device());
    t.index_select(dim, &index).to_kind(t.kind()).to_device(t.device())
}

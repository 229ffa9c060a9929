//! What one upscale costs: parameters per network and multiply-accumulates per stage, counted as
//! `sana_sr_model::cost` counts (its docs say what is counted and what is not) from a model's config alone,
//! so any model (the built-in one, a model file, a config, the real SANA configs) is counted without its
//! weights. The count is of one image upscaled untiled, as [`crate::upscaler::forward_batch`] computes it:
//! tiles overlap and recompute a little more.

use std::path::Path;

use sana_sr_model::cost::{self, dc_ae, esrgan, sana_transformer, Cost, Part};
use serde::Serialize;

use crate::network::{EsrganModelConfig, ModelConfig};
use crate::sr_model::{InputResize, ModelError, SrModelConfig};
use crate::upscaler::PEER_PREPAD;

/// The cost of one upscale of an `input`-sized image by `scale`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostReport {
    pub model: String,
    pub architecture: String,
    pub scale: u32,
    /// LR size, (height, width).
    pub input: (i64, i64),
    /// SR size, (height, width).
    pub output: (i64, i64),
    pub params: u64,
    pub macs: u64,
    /// Parameters (and MACs) per network: `vae.encoder`, `vae.decoder`, `transformer`, `condition`; a peer's
    /// one network.
    pub networks: Vec<Part>,
    /// The stages in the order they run: `input resize`, `encoder`, `transformer embeddings`, every
    /// `transformer_blocks.{i}`, `transformer output`, `decoder`; a peer's `network`.
    pub stages: Vec<Part>,
    /// Every module the stages are made of, under its path in the model file (`vae.encoder.down_blocks.0.1`,
    /// `transformer.transformer_blocks.3`, `body.7`).
    pub modules: Vec<Part>,
    /// What the count assumed about the input, in words (padding, a peer's mirrored border).
    pub notes: Vec<String>,
}

impl CostReport {
    /// The report for a model of either kind; `scale` must be one it supports.
    pub fn new(config: &ModelConfig, input: (i64, i64), scale: u32) -> Self {
        match config {
            ModelConfig::Sana(c) => sana(c, input, scale),
            ModelConfig::Esrgan(c) => peer(c, input, scale),
        }
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<Cost> {
        self.stages.iter().find(|s| s.name == name).map(|s| s.cost)
    }
}

/// The MACs of resizing `channels` planes from `from` to `to` as the model's input resize computes them:
/// MATLAB's bicubic as two dense matrix products (rows, then columns, `sana_sr_data::resize::matlab`),
/// PyTorch's bicubic as a 4×4 neighbourhood per output sample.
pub fn resize_macs(resize: InputResize, channels: i64, from: (i64, i64), to: (i64, i64)) -> u64 {
    let macs = match resize {
        InputResize::MatlabBicubic => channels * to.0 * from.0 * from.1 + channels * to.0 * from.1 * to.1,
        InputResize::PytorchBicubic => channels * to.0 * to.1 * 16,
    };
    macs as u64
}

fn sana(c: &SrModelConfig, input: (i64, i64), scale: u32) -> CostReport {
    let output = (input.0 * scale as i64, input.1 * scale as i64);
    // The resized image is padded (border repeated) to whole latent tokens, as the upscaler does.
    let per_token = c.pixels_per_token();
    let padded = |n: i64| (n + per_token - 1) / per_token * per_token;
    let image = (padded(output.0), padded(output.1));

    let mut notes = Vec::new();
    if image != output {
        notes.push(format!(
            "the resized image is padded to whole latent tokens ({per_token} pixels): {}x{} for the encoder",
            image.1, image.0
        ));
    }
    let resize = Part::new("input resize", Cost::macs(resize_macs(c.input_resize, 3, input, output)));
    let (encoder, latent) = dc_ae::encoder(&c.vae, image);
    let transformer = sana_transformer::transformer(&c.transformer, latent, c.condition_tokens);
    let (decoder, _) = dc_ae::decoder(&c.vae, latent);
    let condition = Cost::params((c.condition_tokens * c.transformer.caption_channels) as u64);

    let is_block = |p: &Part| p.name.starts_with("transformer_blocks.");
    let embeddings: Vec<Part> = transformer.iter().filter(|p| !is_block(p) && p.name != "proj_out").cloned().collect();
    let mut stages = vec![
        resize.clone(),
        Part::new("encoder", cost::total(&encoder)),
        Part::new("transformer embeddings", cost::total(&embeddings) + condition),
    ];
    stages.extend(transformer.iter().filter(|p| is_block(p)).cloned());
    let output_part = transformer.iter().filter(|p| p.name == "proj_out").map(|p| p.cost).sum();
    stages.push(Part::new("transformer output", output_part));
    stages.push(Part::new("decoder", cost::total(&decoder)));

    let networks = vec![
        Part::new("vae.encoder", cost::total(&encoder)),
        Part::new("vae.decoder", cost::total(&decoder)),
        Part::new("transformer", cost::total(&transformer)),
        Part::new("condition", condition),
    ];
    let mut modules = vec![resize];
    modules.extend(cost::prefixed("vae.encoder", encoder));
    modules.extend(cost::prefixed("transformer", transformer));
    modules.extend(cost::prefixed("vae.decoder", decoder));
    modules.push(Part::new("condition", condition));
    report(&c.name, "SANA-SR", scale, (input, output), networks, stages, modules, notes)
}

fn peer(c: &EsrganModelConfig, input: (i64, i64), scale: u32) -> CostReport {
    let output = (input.0 * scale as i64, input.1 * scale as i64);
    // The network runs on the LR image mirrored by PEER_PREPAD pixels a side (fewer on a tiny image).
    let pad = |n: i64| n + 2 * PEER_PREPAD.min(n - 1);
    let padded = (pad(input.0), pad(input.1));
    let modules = esrgan::esrgan(&c.network, padded);
    let total = cost::total(&modules);
    let bare = cost::total(&esrgan::esrgan(&c.network, input));
    let notes = vec![format!(
        "the network runs on the LR image mirrored by {PEER_PREPAD} pixels a side ({}x{}), as the upscaler and \
         the peers' ncnn engine do; on the bare {}x{} image it would cost {} MACs",
        padded.1, padded.0, input.1, input.0, bare.macs
    )];
    let networks = vec![Part::new("network", total)];
    let stages = vec![Part::new("network", total)];
    report(&c.name, c.network.architecture(), scale, (input, output), networks, stages, modules, notes)
}

#[allow(clippy::too_many_arguments)]
fn report(
    model: &str,
    architecture: &str,
    scale: u32,
    (input, output): ((i64, i64), (i64, i64)),
    networks: Vec<Part>,
    stages: Vec<Part>,
    modules: Vec<Part>,
    notes: Vec<String>,
) -> CostReport {
    let total = cost::total(&stages);
    CostReport {
        model: model.to_string(),
        architecture: architecture.to_string(),
        scale,
        input,
        output,
        params: total.params,
        macs: total.macs,
        networks,
        stages,
        modules,
        notes,
    }
}

/// A model config in a JSON file: a SANA-SR `SrModelConfig` (as `configs/*.model.json`, what `train`'s
/// `[model] config` names) or a peer's config (with an `architecture`).
pub fn read_model_config(path: &Path) -> Result<ModelConfig, ModelError> {
    let not_a_model = |reason: String| ModelError::NotAModel { path: path.into(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| not_a_model(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| not_a_model(e.to_string()))?;
    let config = if value.get("architecture").is_some() {
        ModelConfig::Esrgan(serde_json::from_value(value).map_err(|e| not_a_model(e.to_string()))?)
    } else {
        let config: SrModelConfig = serde_json::from_value(value).map_err(|e| not_a_model(e.to_string()))?;
        config.validate().map_err(ModelError::Config)?;
        config.vae.validate().map_err(ModelError::Config)?;
        config.transformer.validate().map_err(ModelError::Config)?;
        ModelConfig::Sana(config)
    };
    Ok(config)
}

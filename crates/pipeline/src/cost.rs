//! What one upscale costs: parameters per network and multiply-accumulates per stage, counted as
//! `sana_sr_model::cost` counts (its docs say what is counted and what is not) from a model's config alone,
//! so any model (the built-in one, a model file, a config, the real SANA configs) is counted without its
//! weights. The count is of one image upscaled untiled, as [`crate::upscaler::forward_batch`] computes it:
//! tiles overlap and recompute a little more.

use std::path::Path;

use sana_sr_model::cost::{self, dc_ae, esrgan, gemma2, sana_transformer, Cost, Part};
use serde::Serialize;

use crate::network::{EsrganModelConfig, ModelConfig};
use crate::sr_model::{InputResize, ModelError, SrModelConfig, Start};
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
    /// Parameters (and MACs) per network: `vae.encoder`, `vae.decoder`, `transformer` (every step and expert),
    /// `condition` (a text model: `text_encoder`), and `lr_stem` when the model has one; a peer's one network.
    pub networks: Vec<Part>,
    /// The stages in the order they run: `input resize`, `encoder`, (`lr stem`), `transformer embeddings`,
    /// every `transformer_blocks.{i}`, `transformer output` (the first step's DiT pass), (`transformer, steps
    /// 2-N`, `transformer, empty prompt (guidance)`, `experts 2-K`), `decoder`; a peer's `network`.
    pub stages: Vec<Part>,
    /// Every module the stages are made of, under its path in the model file (`vae.encoder.down_blocks.0.1`,
    /// `transformer.transformer_blocks.3`, `body.7`).
    pub modules: Vec<Part>,
    /// What the count assumed about the input, in words (padding, a peer's mirrored border).
    pub notes: Vec<String>,
}

/// How an upscale runs, where that changes what it costs (the upscaler's options of the same names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Sampler steps; `None` is the model's own.
    pub steps: Option<usize>,
    /// Classifier-free guidance scale: over 1, every step's DiT runs again on the empty prompt, which the
    /// text encoder encodes too.
    pub guidance: f64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { steps: None, guidance: 1.0 }
    }
}

impl CostReport {
    /// The report for a model of either kind, sampled as its config says; `scale` must be one it supports.
    pub fn new(config: &ModelConfig, input: (i64, i64), scale: u32) -> Self {
        Self::sampled(config, input, scale, Sampling::default())
    }

    /// [`Self::new`] with the sampler's steps and guidance of the run (a peer has neither).
    pub fn sampled(config: &ModelConfig, input: (i64, i64), scale: u32, sampling: Sampling) -> Self {
        match config {
            ModelConfig::Sana(c) => sana(c, input, scale, sampling),
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

fn sana(c: &SrModelConfig, input: (i64, i64), scale: u32, sampling: Sampling) -> CostReport {
    let mut sampler = c.sampler.clone();
    sampler.steps = sampling.steps.unwrap_or(sampler.steps);
    let guided = sampling.guidance > 1.0;
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
    if sampler.steps > 1 || sampler.start == Start::Noise {
        let start = match sampler.start {
            Start::LrLatent => format!("the LR latent at timestep {}", c.timestep),
            Start::Noise => format!("noise (flow shift {})", sampler.shift),
        };
        notes.push(format!("the sampler takes {} step(s) from {start}", sampler.steps));
    }
    if let Some(Ok(router)) = c.experts.as_ref().map(|e| e.router()) {
        let intervals: Vec<String> = router
            .intervals()
            .iter()
            .enumerate()
            .map(|(k, (low, high))| format!("{k}: sigma {low:.3}-{high:.3}"))
            .collect();
        let experts = match c.experts.as_ref().and_then(|e| e.lora.as_ref()) {
            Some(lora) => format!("LoRA experts (rank {}) on one DiT, one adapter set per step", lora.rank),
            None => "experts by noise level, one DiT per step".into(),
        };
        notes.push(format!("{experts}: {}", intervals.join(", ")));
    }
    let resize = Part::new("input resize", Cost::macs(resize_macs(c.input_resize, 3, input, output)));
    let (mut encoder, latent) = dc_ae::encoder(&c.vae, image);
    if sampler.start == Start::Noise {
        // A sampler from noise takes the image through the stem only: the encoder is stored (it makes the
        // training targets) but does not run.
        encoder.iter_mut().for_each(|part| part.cost.macs = 0);
        notes.push("the sampler starts from noise: the encoder does not run".into());
    }
    let transformer = sana_transformer::transformer(&c.transformer, latent, c.condition_tokens);
    let (decoder, _) = dc_ae::decoder(&c.vae, latent);
    // The stored condition, or with a text encoder (no stored condition) Gemma-2 on one prompt.
    let (condition, text) = match &c.text {
        None => (Cost::params((c.condition_tokens * c.transformer.caption_channels) as u64), Vec::new()),
        Some(text) => {
            notes.push("the text encoder runs once per prompt (its condition is kept for every tile and image)".into());
            let mut encoder = gemma2::encoder(&text.encoder, text.max_length as i64);
            if guided {
                // The tags' prompt and the empty one.
                encoder.iter_mut().for_each(|part| part.cost.macs *= 2);
            }
            (Cost::default(), encoder)
        }
    };

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
    // LinearSR's parts: a pass of the DiT per further sampler step, and the other experts' DiTs (one DiT runs
    // per step, so they add parameters, not MACs), or the experts' adapters (one set runs at every step).
    // With guidance, every step's DiT pass (its adapters included) runs twice.
    let passes = if guided { 2 } else { 1 };
    let pass = cost::total(&transformer);
    let steps = sampler.steps as u64;
    let more_steps = Part::new(format!("transformer, steps 2-{steps}"), Cost::macs(pass.macs * (steps - 1)));
    let experts = c.experts.as_ref().and_then(|e| e.count().ok()).unwrap_or(1) as u64;
    let more_experts = match c.experts.as_ref().and_then(|e| e.lora.as_ref()) {
        Some(lora) => {
            let layers = sana_transformer::dense_layers(&c.transformer, latent, c.condition_tokens);
            let set: Cost = layers.iter().filter(|l| lora.selects(&l.path)).map(|l| l.lora(lora.rank)).sum();
            let cost = Cost { params: set.params * experts, macs: set.macs * steps * passes };
            Part::new(format!("expert adapters ({experts} sets)"), cost)
        }
        None => Part::new(format!("experts 2-{experts}"), Cost::params(pass.params * (experts - 1))),
    };
    let empty_prompt = Part::new("transformer, empty prompt (guidance)", Cost::macs(pass.macs * steps * (passes - 1)));
    if guided {
        notes.push(format!("guidance {}: the DiT runs on the tags' prompt and on the empty one", sampling.guidance));
    }
    let extra = [more_steps, empty_prompt, more_experts].into_iter().filter(|p| p.cost != Cost::default());
    stages.extend(extra.clone());
    stages.push(Part::new("decoder", cost::total(&decoder)));
    let stem = lr_stem(c, image);
    if !stem.is_empty() {
        stages.insert(2, Part::new("lr stem", cost::total(&stem)));
    }
    if !text.is_empty() {
        stages.insert(0, Part::new("text encoder", cost::total(&text)));
    }

    let mut networks = vec![
        Part::new("vae.encoder", cost::total(&encoder)),
        Part::new("vae.decoder", cost::total(&decoder)),
        Part::new("transformer", pass + cost::total(&extra.clone().collect::<Vec<_>>())),
    ];
    // A text model has no stored condition: its text encoder's part stands instead.
    let stored_condition = c.text.is_none();
    if stored_condition {
        networks.push(Part::new("condition", condition));
    }
    if !stem.is_empty() {
        networks.push(Part::new("lr_stem", cost::total(&stem)));
    }
    if !text.is_empty() {
        networks.push(Part::new("text_encoder", cost::total(&text)));
    }
    let mut modules = cost::prefixed("text_encoder", text);
    modules.push(resize);
    modules.extend(cost::prefixed("vae.encoder", encoder));
    modules.extend(cost::prefixed("lr_stem", stem));
    modules.extend(cost::prefixed("transformer", transformer));
    modules.extend(extra);
    modules.extend(cost::prefixed("vae.decoder", decoder));
    if stored_condition {
        modules.push(Part::new("condition", condition));
    }
    report(&c.name, "SANA-SR", scale, (input, output), networks, stages, modules, notes)
}

/// The LR stem's convolutions on the `image`-sized input, as [`sana_sr_model::lr_stem::LrStem`] builds them.
fn lr_stem(c: &SrModelConfig, image: (i64, i64)) -> Vec<Part> {
    let Some(stem) = &c.lr_stem else { return Vec::new() };
    let (mut size, mut in_ch) = (image, 3);
    let layers = stem.channels.iter().zip(&stem.strides).enumerate();
    layers
        .map(|(i, (&out_ch, &stride))| {
            let padding = stride / 2;
            let kernel = stride + 2 * padding;
            size = cost::conv_out_size(size, kernel, stride, padding);
            let part = Part::new(format!("layers.{i}"), cost::conv2d(size, in_ch, out_ch, kernel, 1, true));
            in_ch = out_ch;
            part
        })
        .collect()
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

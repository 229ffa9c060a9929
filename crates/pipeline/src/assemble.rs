//! A SANA-SR model from released parts: a diffusers Sana pipeline folder (`transformer/`, `vae/`,
//! `text_encoder/`, `tokenizer/`, `scheduler/`, as `SanaPipeline.save_pretrained` lays them out), optionally a
//! PEFT LoRA adapter of its transformer as SANA-SR's training code saves it (`adapter_model.safetensors` beside
//! its `adapter_config.json`), and optionally another DC-AE folder in place of the pipeline's.
//!
//! The model runs SANA-SR's forward pass: the LR image resized bicubically to the output size, encoded, one
//! Euler step from the LR latent at the scheduler's timestep index (SANA-SR's 900 of 1000) under the prompt of
//! the image's tags followed by SANA-SR's quality suffix, decoded. The adapter is merged into the transformer's
//! weights, so the model file is a plain one and runs as fast as the base.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::{nn, Device, Tensor};
use sana_sr_model::checkpoint::{self, CheckpointError, Shapes};
use sana_sr_model::layers::lora::{self, LoraConfig};
use sana_sr_model::layers::variables;
use sana_sr_model::text::{EncoderWeights, PromptTokenizer};
use serde::Deserialize;

use crate::condition::{ConditionError, TextConfig, TAGS_PLACEHOLDER};
use crate::scheduler::DiffusersScheduler;
use crate::sr_model::{InputResize, ModelError, SamplerConfig, SrModel, SrModelConfig};

/// What SANA-SR's prompts end with (its `prompt_suffix`); alone, the prompt of an image without tags.
pub const SANA_SR_SUFFIX: &str = "clean, extremely detailed, best quality, sharp, high-resolution";
/// SANA-SR's prompt length in tokens.
pub const SANA_SR_MAX_LENGTH: usize = 300;
/// SANA-SR's one-step timestep, as an index into the scheduler's steps (`gen_timestep`).
pub const SANA_SR_TIMESTEP_INDEX: usize = 900;
/// SANA-SR sets as many scheduler steps as training timesteps (`set_timesteps(num_train_timesteps)`).
const SCHEDULER_STEPS: usize = 1000;
/// SANA-SR's upscaling factor.
const SCALE: u32 = 4;

type Result<T> = std::result::Result<T, ModelError>;

/// Where the parts are.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The diffusers Sana pipeline folder.
    pub pipeline: PathBuf,
    /// A PEFT adapter file of the pipeline's transformer; its `adapter_config.json` beside it.
    pub lora: Option<PathBuf>,
    /// A DC-AE folder to use instead of the pipeline's `vae/`.
    pub vae: Option<PathBuf>,
}

/// One network's weights, read when its turn comes: `prefix` is where they go in the model.
struct StoredNetwork {
    prefix: &'static str,
    shapes: Shapes,
    read: Box<dyn Fn() -> Result<HashMap<String, Tensor>>>,
}

impl StoredNetwork {
    fn diffusers(prefix: &'static str, dir: &Path) -> Result<Self> {
        let files = checkpoint::weight_files(dir)?;
        let shapes = checkpoint::read_shapes(&files)?;
        Ok(Self { prefix, shapes, read: Box::new(move || Ok(checkpoint::read_tensors(&files)?)) })
    }

    fn text_encoder(dir: &Path) -> Result<Self> {
        let weights = EncoderWeights::open(dir).map_err(ConditionError::from)?;
        let shapes = weights.shapes().map_err(ConditionError::from)?;
        let read = move || Ok(weights.tensors().map_err(ConditionError::from)?);
        Ok(Self { prefix: "text_encoder.", shapes, read: Box::new(read) })
    }
}

/// Builds the model (on the CPU, float32) from `parts`, the one step at the scheduler's `timestep_index`;
/// `progress` hears which part is being read. The weights are read one network at a time, so that the memory
/// peak is the model plus its largest network as stored.
pub fn assemble(
    parts: &Parts,
    name: &str,
    timestep_index: usize,
    progress: &dyn Fn(&str),
) -> Result<(SrModel, nn::VarStore)> {
    let pipeline = &parts.pipeline;
    let vae_dir = parts.vae.clone().unwrap_or_else(|| pipeline.join("vae"));
    let config = model_config(parts, &vae_dir, name, timestep_index)?;
    let networks = [
        StoredNetwork::diffusers("vae.", &vae_dir)?,
        StoredNetwork::diffusers("transformer.", &pipeline.join("transformer"))?,
        StoredNetwork::text_encoder(&pipeline.join("text_encoder"))?,
    ];
    let shapes: Shapes = networks
        .iter()
        .flat_map(|n| n.shapes.iter().map(move |(k, s)| (format!("{}{k}", n.prefix), s.clone())))
        .collect();
    let adapter = parts.lora.as_deref().map(Adapter::read).transpose()?;
    progress("building the networks");
    let vs = nn::VarStore::new(Device::Cpu);
    let build = || variables::with_stored_shapes(shapes, || SrModel::build(vs.root(), &config));
    let (model, adapters) = match &adapter {
        Some(adapter) => {
            let (model, adapters) = lora::with_adapters(&adapter.config, build)?;
            (model, Some(adapters))
        }
        None => (build()?, None),
    };
    let variables = vs.variables();
    for network in &networks {
        progress(&format!("reading {}", network.prefix.trim_end_matches('.')));
        let own = variables
            .iter()
            .filter(|(k, _)| k.starts_with(network.prefix) && !lora::is_adapter_variable(k))
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        let tensors = (network.read)()?.into_iter().map(|(k, t)| (format!("{}{k}", network.prefix), t)).collect();
        checkpoint::copy_into_variables(own, tensors)?;
    }
    if let (Some(adapter), Some(adapters)) = (adapter, adapters) {
        progress("merging the LoRA adapter");
        let own = variables.into_iter().filter(|(k, _)| lora::is_adapter_variable(k)).collect();
        checkpoint::copy_into_variables(own, adapter.tensors()?)?;
        adapters.merge();
    }
    Ok((model, vs))
}

fn model_config(parts: &Parts, vae_dir: &Path, name: &str, timestep_index: usize) -> Result<SrModelConfig> {
    let pipeline = &parts.pipeline;
    let scheduler_file = pipeline.join("scheduler/scheduler_config.json");
    let scheduler: DiffusersScheduler = checkpoint::read_config(&scheduler_file)?;
    let (timestep, sigma) = scheduler
        .point(SCHEDULER_STEPS, timestep_index)
        .map_err(|reason| CheckpointError::Config { path: scheduler_file, reason })?;
    let tokenizer_dir = pipeline.join("tokenizer");
    let tokenizer: serde_json::Value = checkpoint::read_config(&tokenizer_dir.join("tokenizer.json"))?;
    let pad_token = PromptTokenizer::pad_token_of_folder(&tokenizer_dir).map_err(ConditionError::from)?;
    let folder = |path: &Path| path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let adapter = match &parts.lora {
        Some(file) => format!(" + LoRA {}", folder(file.parent().unwrap_or(file))),
        None => String::new(),
    };
    Ok(SrModelConfig {
        name: name.to_string(),
        description: format!(
            "SANA-SR from {}{adapter}: one step at timestep {timestep} (index {timestep_index}), sigma {sigma:.6}",
            folder(pipeline)
        ),
        scale: SCALE,
        scales: vec![SCALE],
        timestep,
        sigma: Some(sigma),
        lr_skip: false,
        input_resize: InputResize::PytorchBicubic,
        condition_tokens: SANA_SR_MAX_LENGTH as i64,
        vae: checkpoint::read_config(vae_dir)?,
        transformer: checkpoint::read_config(&pipeline.join("transformer"))?,
        sampler: SamplerConfig::default(),
        lr_stem: None,
        experts: None,
        text: Some(TextConfig {
            template: format!("{TAGS_PLACEHOLDER}, {SANA_SR_SUFFIX}"),
            untagged: SANA_SR_SUFFIX.to_string(),
            max_length: SANA_SR_MAX_LENGTH,
            lowercase: false,
            instruction: None,
            pad_token,
            tokenizer,
            encoder: checkpoint::read_config(&pipeline.join("text_encoder"))?,
        }),
    })
}

/// A PEFT LoRA adapter of the transformer: its config and where its weights are.
struct Adapter {
    config: LoraConfig,
    file: PathBuf,
}

/// The fields of PEFT's `adapter_config.json` that say what the adapter computes; every option beyond plain
/// LoRA must be off.
#[derive(Debug, Deserialize)]
struct PeftConfig {
    r: i64,
    lora_alpha: f64,
    target_modules: serde_json::Value,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    rank_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    exclude_modules: Option<serde_json::Value>,
    #[serde(default)]
    fan_in_fan_out: bool,
}

/// The prefixes of an adapter's keys: PEFT's `save_pretrained` of the wrapped transformer, and diffusers'
/// `save_lora_weights`.
const ADAPTER_PREFIXES: [&str; 2] = ["base_model.model.", "transformer."];

impl Adapter {
    fn read(file: &Path) -> Result<Self> {
        let config_file = file.with_file_name("adapter_config.json");
        let peft: PeftConfig = checkpoint::read_config(&config_file)?;
        let config = peft.lora_config().map_err(|reason| CheckpointError::Config { path: config_file, reason })?;
        Ok(Self { config, file: file.to_path_buf() })
    }

    /// The adapter's tensors under the model's variable names.
    fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let tensors = checkpoint::read_tensors(std::slice::from_ref(&self.file))?;
        tensors
            .into_iter()
            .map(|(key, tensor)| match ADAPTER_PREFIXES.iter().find_map(|p| key.strip_prefix(p)) {
                Some(name) => Ok((format!("transformer.{name}"), tensor)),
                None => Err(CheckpointError::Config {
                    path: self.file.clone(),
                    reason: format!(
                        "key `{key}` is not under `{}` (PEFT) or `{}` (diffusers): not a LoRA of the transformer",
                        ADAPTER_PREFIXES[0], ADAPTER_PREFIXES[1]
                    ),
                }
                .into()),
            })
            .collect()
    }
}

impl PeftConfig {
    fn lora_config(&self) -> std::result::Result<LoraConfig, String> {
        let unsupported = [
            ("use_dora", self.use_dora),
            ("rank_pattern", !self.rank_pattern.is_empty()),
            ("alpha_pattern", !self.alpha_pattern.is_empty()),
            ("bias", self.bias.as_deref().is_some_and(|b| b != "none")),
            ("modules_to_save", self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty())),
            ("layers_to_transform", self.layers_to_transform.as_ref().is_some_and(|l| !l.is_null())),
            ("exclude_modules", self.exclude_modules.as_ref().is_some_and(|e| !e.is_null())),
            ("fan_in_fan_out", self.fan_in_fan_out),
        ];
        if let Some((option, _)) = unsupported.iter().find(|(_, on)| *on) {
            return Err(format!("the adapter sets `{option}`; only plain LoRA adapters can be merged"));
        }
        let modules: Vec<String> = serde_json::from_value(self.target_modules.clone()).map_err(|_| {
            format!(
                "target_modules {} is not a list of module names (a regular expression is not supported)",
                self.target_modules
            )
        })?;
        // PEFT selects a module whose name is a target or ends with "." + target, within the transformer.
        let targets = modules.iter().map(|m| format!("transformer.*.{m}")).collect();
        // rsLoRA scales by alpha/√r where LoRA scales by alpha/r.
        let alpha = if self.use_rslora { self.lora_alpha * (self.r as f64).sqrt() } else { self.lora_alpha };
        Ok(LoraConfig { rank: self.r, alpha, targets })
    }
}

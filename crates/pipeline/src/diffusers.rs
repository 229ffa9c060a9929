//! A SANA-SR model as diffusers model folders, so that diffusers can load its networks: `vae/` (an
//! `AutoencoderDC`) and `transformer/` (a `SanaTransformer2DModel`), each `config.json` +
//! `diffusion_pytorch_model.safetensors`, beside `sana_sr.json` (the model's own config: scale, timestep,
//! condition size, ...) and `condition.safetensors` (the stored condition, `condition`).
//! `tools/reference/check_pruned_diffusers.py` runs such a folder in diffusers.
//!
//! diffusers knows nothing of sana-sr's per-block widths, so only models without them can be written: the
//! reference configs and depth-pruned models (whole blocks removed, renumbered).

use std::collections::HashMap;
use std::path::Path;

use sana_sr_core::{nn, Device, Kind, Tensor};
use sana_sr_model::checkpoint::{self, CheckpointError};

use crate::sr_model::{ModelError, SrModel, SrModelConfig};

/// The model's own config, beside the two network folders.
pub const MODEL_CONFIG_FILE: &str = "sana_sr.json";
/// The stored condition embedding.
pub const CONDITION_FILE: &str = "condition.safetensors";

/// diffusers' class names, written into the folders' configs.
const VAE_CLASS: &str = "AutoencoderDC";
const TRANSFORMER_CLASS: &str = "SanaTransformer2DModel";

/// Writes `model` (built in `vs`) as diffusers folders under `dir`, weights in `kind`.
pub fn save(model: &SrModel, vs: &nn::VarStore, dir: &Path, kind: Kind) -> Result<(), ModelError> {
    let c = &model.config;
    let Some(condition) = &model.condition else {
        return Err(ModelError::Config(
            "the model has a text encoder; only models with a stored condition are written as diffusers folders".into(),
        ));
    };
    if c.vae.encoder_block_hidden.is_some()
        || c.vae.decoder_block_hidden.is_some()
        || c.transformer.block_widths.is_some()
    {
        return Err(ModelError::Config(
            "the model has per-block widths (pruned heads or channels), which diffusers cannot build; only \
             models pruned by whole blocks can be written as diffusers folders"
                .into(),
        ));
    }
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
        move |source| CheckpointError::Io { path: path.into(), source }
    }
    let vars = vs.variables();
    let network = |prefix: &str| -> HashMap<String, Tensor> {
        vars.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.shallow_clone()))).collect()
    };
    let mut vae = serde_json::to_value(&c.vae).expect("configs serialize");
    vae["_class_name"] = VAE_CLASS.into();
    let mut transformer = serde_json::to_value(&c.transformer).expect("configs serialize");
    transformer["_class_name"] = TRANSFORMER_CLASS.into();
    for (name, config, prefix) in [("vae", vae, "vae."), ("transformer", transformer, "transformer.")] {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).map_err(io(&sub))?;
        let json = serde_json::to_string_pretty(&config).expect("configs serialize");
        std::fs::write(sub.join(checkpoint::CONFIG_FILE), json).map_err(io(&sub))?;
        let weights = sub.join(checkpoint::WEIGHTS_FILE);
        checkpoint::save_variables(network(prefix), &weights, kind, HashMap::new())?;
    }
    let json = serde_json::to_string_pretty(c).expect("configs serialize");
    std::fs::write(dir.join(MODEL_CONFIG_FILE), json).map_err(io(dir))?;
    let condition = HashMap::from([("condition".to_string(), condition.shallow_clone())]);
    checkpoint::save_variables(condition, &dir.join(CONDITION_FILE), kind, HashMap::new())?;
    Ok(())
}

/// Reads folders written by [`save`] (or by diffusers' `save_pretrained` beside the two sana-sr files) onto
/// `device`, in float32.
pub fn load(dir: &Path, device: Device) -> Result<(SrModel, nn::VarStore), ModelError> {
    let text = std::fs::read_to_string(dir.join(MODEL_CONFIG_FILE))
        .map_err(|source| CheckpointError::Io { path: dir.join(MODEL_CONFIG_FILE), source })?;
    let mut config: SrModelConfig = serde_json::from_str(&text)
        .map_err(|e| CheckpointError::Config { path: dir.join(MODEL_CONFIG_FILE), reason: e.to_string() })?;
    config.vae = checkpoint::read_config(&dir.join("vae"))?;
    config.transformer = checkpoint::read_config(&dir.join("transformer"))?;
    let mut tensors = HashMap::new();
    for name in ["vae", "transformer"] {
        let files = checkpoint::weight_files(&dir.join(name))?;
        let weights = checkpoint::read_tensors(&files)?;
        tensors.extend(weights.into_iter().map(|(k, v)| (format!("{name}.{k}"), v)));
    }
    tensors.extend(checkpoint::read_tensors(&[dir.join(CONDITION_FILE)])?);
    let vs = nn::VarStore::new(device);
    let model = SrModel::build(vs.root(), &config)?;
    checkpoint::copy_into(&vs, tensors)?;
    Ok((model, vs))
}

//! What a run writes and reads back: snapshots, the exported model and the checkpoint; and the EMA weights
//! swapped in for the validation and the snapshots.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::tensor::to_image;
use sana_sr_model::checkpoint::{self, CheckpointError};
use sana_sr_model::layers::lora::{self, Adapters};
use sana_sr_pipeline::SrModel;

use crate::optim::{AdamW, Ema};

use super::{Adversarial, Result, RunState, TrainError, STATE_METADATA_KEY};

/// Runs `f` with the EMA weights in the model, then puts the trained weights back.
pub(super) fn with_ema<T>(ema: &Ema, params: &HashMap<String, Tensor>, f: impl FnOnce() -> T) -> T {
    let current: HashMap<String, Tensor> =
        no_grad(|| params.iter().map(|(k, v)| (k.clone(), v.detach().copy())).collect());
    ema.copy_to(params);
    let out = f();
    no_grad(|| {
        for (name, value) in &current {
            params[name].shallow_clone().copy_(value);
        }
    });
    out
}

/// NIQE of one `[3, H, W]` image in [0, 1], on its 8-bit values as a saved image would have them.
pub(super) fn niqe_of(image: &Tensor) -> Result<f64> {
    let image = to_image(image).map_err(|e| TrainError::Setup(e.to_string()))?;
    sana_sr_metrics::niqe(&image.to_8bit(), 0).map_err(|e| TrainError::Setup(format!("validation NIQE: {e}")))
}

pub(super) fn snapshot_path(run_dir: &Path, step: u64, lora: bool) -> PathBuf {
    let kind = if lora { "lora" } else { "model" };
    run_dir.join("snapshots").join(format!("step_{step:07}.{kind}.safetensors"))
}

/// Writes the model of snapshot `step` to `out` in f16, the shipping format: the snapshot's weights, or in
/// a LoRA run the base weights with the snapshot's adapters merged in.
pub(super) fn export(
    model: &SrModel,
    vs: &nn::VarStore,
    adapters: Option<&Adapters>,
    run_dir: &Path,
    step: u64,
    out: &Path,
) -> Result<()> {
    let snapshot = snapshot_path(run_dir, step, adapters.is_some());
    match adapters {
        None => {
            let (chosen, chosen_vs) = SrModel::load(&snapshot, Device::Cpu)?;
            chosen.save(&chosen_vs, out, Kind::Half)?;
        }
        Some(adapters) => {
            lora::load_adapters(vs, &snapshot)?;
            adapters.merge();
            model.save(vs, out, Kind::Half)?;
        }
    }
    Ok(())
}

pub(super) fn save_checkpoint(
    path: &Path,
    vs: &nn::VarStore,
    optimizer: &AdamW,
    ema: &Ema,
    adversarial: Option<&Adversarial>,
    state: &RunState,
) -> Result<()> {
    let mut named: HashMap<String, Tensor> = HashMap::new();
    let mut add = |prefix: &str, items: Vec<(String, Tensor)>| {
        for (name, t) in items {
            named.insert(format!("{prefix}.{name}"), t);
        }
    };
    add("model", vs.variables().into_iter().collect());
    add("ema", ema.averages.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect());
    add("adam", optimizer.state());
    if let Some(a) = adversarial {
        add("disc", a.vs.variables().into_iter().collect());
        add("disc_adam", a.optimizer.state());
    }
    let json = serde_json::to_string(state).expect("the run state serializes");
    let metadata = HashMap::from([(STATE_METADATA_KEY.to_string(), json)]);
    checkpoint::save_variables(named, path, Kind::Float, metadata)?;
    Ok(())
}

pub(super) fn restore(
    path: &Path,
    vs: &nn::VarStore,
    optimizer: &mut AdamW,
    ema: &mut Ema,
    adversarial: Option<&mut Adversarial>,
) -> Result<RunState> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.into(), source })?;
    let (tensors, metadata) = checkpoint::read_tensors_from_bytes(&bytes, path)?;
    let state: RunState = metadata
        .get(STATE_METADATA_KEY)
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| TrainError::Setup(format!("{}: not a training checkpoint (no run state)", path.display())))?;
    let take = |prefix: &str| -> HashMap<String, Tensor> {
        let prefix = format!("{prefix}.");
        tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(&prefix).map(|k| (k.to_string(), t.shallow_clone())))
            .collect()
    };
    let bad = |what: &str, e: String| TrainError::Setup(format!("{}: {what}: {e}", path.display()));
    checkpoint::copy_into_variables(vs.variables(), take("model"))?;
    optimizer.load_state(&take("adam"), state.step).map_err(|e| bad("optimizer", e))?;
    let saved_ema = take("ema");
    for (name, average) in &ema.averages {
        let saved = saved_ema.get(name).ok_or_else(|| bad("EMA", format!("`{name}` is missing")))?;
        no_grad(|| average.shallow_clone().copy_(saved));
    }
    if let Some(a) = adversarial {
        checkpoint::copy_into_variables(a.vs.variables(), take("disc"))?;
        a.optimizer.load_state(&take("disc_adam"), state.step).map_err(|e| bad("discriminator optimizer", e))?;
    }
    Ok(state)
}

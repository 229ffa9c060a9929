//! What a run starts from: the model and which of its weights train, the pool split into training and held-out
//! photos, the degradations, and the fixed validation pairs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::{nn, no_grad, Device, Tensor};
use sana_sr_data::degradations::{Degradation, RealEsrganConfig};
use sana_sr_data::loader::{pool_paths, Loader, LoaderConfig};
use sana_sr_model::checkpoint;
use sana_sr_model::layers::lora::{self, Adapters};
use sana_sr_model::layers::variables;
use sana_sr_pipeline::{ModelSource, SrModel, SrModelConfig};

use crate::config::{TrainConfig, ValMetric};
use crate::teacher::Teacher;

use super::run_files::snapshot_path;
use super::{Result, RunState, TrainError, Validation, CHECKPOINT_FILE, STATE_METADATA_KEY, VALIDATION_SEED_KEY};

/// The model to train and its store; with `[lora]`, the adapters attached to it.
pub(super) fn build_model(config: &TrainConfig, device: Device) -> Result<(SrModel, nn::VarStore, Option<Adapters>)> {
    let load = || -> Result<(SrModel, nn::VarStore)> {
        match (&config.model.from, &config.model.config, &config.model.knee_of) {
            (Some(from), _, _) => Ok(ModelSource::resolve(from)?.load(device)?),
            (None, None, Some(run)) => Ok(SrModel::load(&knee_snapshot(run)?, device)?),
            (None, Some(path), _) => {
                let text = sana_sr_core::fs::read_text(path)
                    .map_err(|e| TrainError::Setup(format!("cannot read model config {}: {e}", path.display())))?;
                let model_config: SrModelConfig = serde_json::from_str(&text)
                    .map_err(|e| TrainError::Setup(format!("model config {}: {e}", path.display())))?;
                // No file bounds a new network: its size is counted against a stated limit first.
                variables::check_parameter_limit(variables::MAX_NEW_PARAMETERS, || {
                    SrModel::build(nn::VarStore::new(device).root(), &model_config)
                })?;
                let vs = nn::VarStore::new(device);
                let model = SrModel::build(vs.root(), &model_config)?;
                if let Some(source) = &config.model.weights_from {
                    take_matching_weights(&vs, source, device)?;
                }
                Ok((model, vs))
            }
            (None, None, None) => unreachable!("the config is validated"),
        }
    };
    let build = || -> Result<(SrModel, nn::VarStore)> {
        let (model, vs) = load()?;
        match &config.model.experts {
            Some(experts) => Ok(model.with_experts(&vs, experts)?),
            None => Ok((model, vs)),
        }
    };
    match &config.lora {
        Some(lora_config) => {
            let ((model, vs), adapters) = lora::with_adapters(lora_config, build)?;
            Ok((model, vs, Some(adapters)))
        }
        None => {
            let (model, vs) = build()?;
            Ok((model, vs, None))
        }
    }
}

/// Copies into `vs` every weight of the SANA-SR model `source` whose name and shape it has too.
pub(super) fn take_matching_weights(vs: &nn::VarStore, source: &str, device: Device) -> Result<()> {
    let (_, source_vs) = ModelSource::resolve(source)?.load(device)?;
    let from = source_vs.variables();
    let matching: HashMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .filter_map(|(name, var)| {
            // Weights only: counters (a batch norm's `num_batches_tracked`) fit any model that has them.
            let value = from.get(&name).filter(|v| var.is_floating_point() && v.size() == var.size())?;
            Some((name, value.shallow_clone()))
        })
        .collect();
    no_grad(|| {
        let variables = vs.variables();
        for (name, value) in matching {
            variables[&name].shallow_clone().copy_(&value);
        }
    });
    Ok(())
}

/// The model file of a run's ESGF knee: its snapshot at the knee of the validations its checkpoint records.
pub(super) fn knee_snapshot(run_dir: &Path) -> Result<PathBuf> {
    let path = run_dir.join(CHECKPOINT_FILE);
    let bytes = checkpoint::map_file(&path)?;
    let (_, metadata) = checkpoint::read_header(&bytes, &path)?;
    let state: RunState = metadata
        .get(STATE_METADATA_KEY)
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| TrainError::Setup(format!("{}: not a training checkpoint (no run state)", path.display())))?;
    let knee = state.esgf.knee().ok_or_else(|| {
        TrainError::Setup(format!(
            "run {} has no knee yet ({} validation(s) up to step {}): train it further, or start from a model file \
             with `from`",
            run_dir.display(),
            state.esgf.history().len(),
            state.step
        ))
    })?;
    let snapshot = snapshot_path(run_dir, knee.step, false);
    if snapshot.exists() {
        Ok(snapshot)
    } else if snapshot_path(run_dir, knee.step, true).exists() {
        Err(TrainError::Setup(format!(
            "run {} is a LoRA run: its snapshots are adapters, not models; start from its exported model with `from`",
            run_dir.display()
        )))
    } else {
        Err(TrainError::Setup(format!("the knee snapshot {} is missing", snapshot.display())))
    }
}

/// The variables that train, by name; every other one is frozen (with `[train] expert`, the other experts too).
pub(super) fn select_trainable(
    config: &TrainConfig,
    model: &SrModel,
    vs: &nn::VarStore,
    with_adapters: bool,
) -> Result<HashMap<String, Tensor>> {
    if with_adapters {
        lora::set_trainable(vs, lora::Trainable::Adapters)?;
    } else {
        for (name, var) in vs.variables() {
            if var.is_floating_point() {
                let expert_alone = match (config.train.expert, &model.config.experts) {
                    (Some(k), Some(experts)) => experts.trains_with_expert(&name, k),
                    _ => true,
                };
                let _ = var.set_requires_grad(config.train.trainable.includes(&name) && expert_alone);
            }
        }
    }
    let params: HashMap<String, Tensor> = vs.variables().into_iter().filter(|(_, v)| v.requires_grad()).collect();
    if params.is_empty() {
        return Err(TrainError::Setup("nothing to train: no variable is trainable".into()));
    }
    Ok(params)
}

/// Training and validation images: every pool folder's images; the photos of the last `val_images` file
/// names (sorted) are held out, in every folder that has them, so a photo kept at several scales (pools
/// downscaled 2x and 4x, say) never trains at one scale and validates at another.
pub(super) fn split_pool(folders: &[PathBuf], val_images: usize) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut paths = Vec::new();
    for folder in folders {
        paths
            .extend(pool_paths(folder).map_err(|e| TrainError::Setup(format!("HR folder {}: {e}", folder.display())))?);
    }
    let mut names: Vec<_> = paths.iter().filter_map(|p| p.file_name()).map(|n| n.to_owned()).collect();
    names.sort();
    names.dedup();
    if names.len() <= val_images {
        return Err(TrainError::Setup(format!(
            "{} HR photos are too few to hold out {val_images} for validation",
            names.len()
        )));
    }
    let held_out = names.split_off(names.len() - val_images);
    paths.sort_by(|a, b| (a.file_name(), a).cmp(&(b.file_name(), b)));
    let (val, train) = paths.into_iter().partition(|p| p.file_name().is_some_and(|n| held_out.iter().any(|h| h == n)));
    Ok((train, val))
}

pub(super) fn check_crop(crop: usize, model: &SrModelConfig, scale: usize) -> Result<()> {
    let token = model.pixels_per_token() as usize;
    if !crop.is_multiple_of(token) || !crop.is_multiple_of(scale) {
        return Err(TrainError::Setup(format!(
            "crop {crop} must be a multiple of the model's token size ({token} px) and of the scale ({scale})"
        )));
    }
    Ok(())
}

/// A degradation config file, read and checked.
pub(super) fn read_degradation(path: &Path) -> Result<Degradation> {
    let config = RealEsrganConfig::from_toml_file(path).map_err(|e| TrainError::Setup(e.to_string()))?;
    Degradation::new(config).map_err(|e| TrainError::Setup(e.to_string()))
}

/// Everything the validation values depend on besides the model: the held-out photos, the pairs made of
/// them, the metric and, for `teacher_l1`, the teacher.
pub(super) fn validation_key(config: &TrainConfig, degradation: &RealEsrganConfig) -> String {
    let data = &config.data;
    let teacher = config.teachers.first().filter(|_| config.train.val_metric == ValMetric::TeacherL1);
    serde_json::json!({
        "hr": data.hr,
        "images": data.val_images,
        "pairs": data.val_pairs,
        "crop": data.val_crop.unwrap_or(data.crop),
        "seed": config.train.seed,
        "degradation": degradation,
        "metric": config.train.val_metric,
        "teacher": teacher.map(|t| &t.model),
    })
    .to_string()
}

/// The fixed validation pairs; their target is `teacher`'s image of the LR crops when one is given, else HR.
pub(super) fn validation_pairs(
    config: &TrainConfig,
    model: &SrModel,
    paths: Vec<PathBuf>,
    degradation: Degradation,
    device: Device,
    teacher: Option<&Teacher>,
) -> Result<Validation> {
    let loader_config = LoaderConfig {
        gt_size: config.data.val_crop.unwrap_or(config.data.crop),
        batch_size: config.data.val_pairs,
        num_workers: 1,
        seed: config.train.seed ^ VALIDATION_SEED_KEY,
        device,
        ..LoaderConfig::default()
    };
    let batch = Loader::new(paths, degradation, loader_config)?.next().expect("the loader never ends")?;
    let target = match teacher {
        Some(teacher) => (teacher.target(&batch)? + 1.0) / 2.0,
        None => batch.hr.shallow_clone(),
    };
    Ok(Validation { lr: upsampled(model, &batch.lr, &batch.hr), target, tags: batch.tags })
}

/// The LR batch resized to the HR batch's size (as the pipeline resizes for `model`), in [-1, 1].
pub(super) fn upsampled(model: &SrModel, lr: &Tensor, hr: &Tensor) -> Tensor {
    let size = hr.size();
    model.resize_input(lr, size[2], size[3]) * 2.0 - 1.0
}

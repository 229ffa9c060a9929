//! The training config: one TOML file names the model, the data, the objective and the schedule, so that a
//! run is reproduced from the file alone. Relative paths are relative to the working folder.
//!
//! Teachers, one `[[teacher]]` table each, are frozen models whose outputs on the student's LR batch are
//! targets beside the HR (distillation): `model` is anything `upscale --model` takes (an imported peer such
//! as `realesr-general-x4v3`, a sana-sr model file, a built-in name), and `pixel_l1`, `pixel_l2`, `edge` weigh
//! the student's L1, L2 and edge loss towards its output; each weighted term is logged as
//! `teacher_<name>_<term>` and added to the loss. The `[loss]` terms against HR stay.
//!
//! ```toml
//! [[teacher]]
//! model = "realesr-general-x4v3"
//! pixel_l1 = 1.0
//! edge = 0.3
//! ```

use std::path::{Path, PathBuf};

use sana_sr_core::Kind;
use sana_sr_model::layers::lora::LoraConfig;
use sana_sr_pipeline::experts::ExpertsConfig;
use serde::{Deserialize, Serialize};

use crate::discriminator::{DiscriminatorKind, UNET_MULTIPLE};
use crate::esgf::EsgfConfig;
use crate::losses::LossWeights;
use crate::optim::AdamWConfig;
use crate::schedule::LrSchedule;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelInit,
    pub data: DataConfig,
    pub train: RunConfig,
    pub schedule: LrSchedule,
    #[serde(default)]
    pub optimizer: AdamWConfig,
    #[serde(default)]
    pub loss: LossWeights,
    #[serde(default)]
    pub esgf: EsgfConfig,
    /// Present: LoRA fine-tuning (adapters train, everything else is frozen).
    #[serde(default)]
    pub lora: Option<LoraConfig>,
    #[serde(default)]
    pub discriminator: DiscriminatorConfig,
    /// `[[teacher]]`: models whose outputs are targets too (see the module docs).
    #[serde(default, rename = "teacher")]
    pub teachers: Vec<TeacherConfig>,
}

/// A teacher (`[[teacher]]`): a frozen model, run on the LR batch the student sees, whose clamped output the
/// student is pulled towards by the weighted terms; a zero weight switches a term off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// A model file, or a built-in or local model name (`ModelSource::resolve`): a peer or a SANA-SR model.
    pub model: String,
    /// Its name in the log's columns; default: `model`'s file stem (the name itself when it is a name).
    #[serde(default)]
    pub name: Option<String>,
    /// Mean absolute error of the student's SR image against the teacher's (images in [-1, 1]).
    #[serde(default)]
    pub pixel_l1: f64,
    /// Mean squared error against the teacher's image.
    #[serde(default)]
    pub pixel_l2: f64,
    /// L1 between the Sobel gradients of the student's and the teacher's images.
    #[serde(default)]
    pub edge: f64,
}

impl TeacherConfig {
    /// The name in logs and messages.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let path = Path::new(&self.model);
            let is_file = path.components().count() > 1
                || path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case(sana_sr_pipeline::registry::MODEL_EXTENSION));
            match path.file_stem() {
                Some(stem) if is_file => stem.to_string_lossy().into_owned(),
                _ => self.model.clone(),
            }
        })
    }

    /// Every term and its weight.
    pub fn weights(&self) -> [(PixelTerm, f64); 3] {
        [(PixelTerm::L1, self.pixel_l1), (PixelTerm::L2, self.pixel_l2), (PixelTerm::Edge, self.edge)]
    }
}

/// A term of the loss towards a teacher's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelTerm {
    L1,
    L2,
    Edge,
}

impl PixelTerm {
    /// Its name in the log.
    pub fn name(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
            Self::Edge => "edge",
        }
    }
}

/// Where the weights start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInit {
    /// A model to fine-tune: a model file, or a built-in or local model name.
    #[serde(default)]
    pub from: Option<String>,
    /// A new model, randomly initialised from this `SrModelConfig` JSON file (when `from` is absent).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// With `config`: a model (file, built-in or local name) whose variables start the new model wherever
    /// the name and the shape agree (e.g. a trained autoencoder under a new DiT); the rest starts random.
    #[serde(default)]
    pub weights_from: Option<String>,
    /// Another run's folder: start from the snapshot at its ESGF knee (a stage continuing the one before).
    #[serde(default)]
    pub knee_of: Option<PathBuf>,
    /// Turns a model with one DiT into SNR-based experts, each starting as a copy of that DiT.
    #[serde(default)]
    pub experts: Option<ExpertsConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Folders of HR images (the pool `sana-sr data build-pool` makes).
    pub hr: Vec<PathBuf>,
    /// The Real-ESRGAN degradation config that makes the LR images.
    pub degradation: PathBuf,
    /// HR crop side in pixels (a multiple of the degradation's scale and of the model's token size).
    pub crop: usize,
    pub batch: usize,
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// The last this many pool images (by name) are held out for validation, never trained on.
    pub val_images: usize,
    /// Validation pairs made from them (fixed crops and degradations).
    pub val_pairs: usize,
    /// The degradation of the validation pairs (default: `degradation`), for a metric that follows the inputs a
    /// model is meant for, e.g. the training degradation without its clean pairs. A resumed run whose
    /// validation pairs changed starts ESGF's history again.
    #[serde(default)]
    pub val_degradation: Option<PathBuf>,
    /// HR side of a validation crop (default: `crop`); NIQE needs at least 192 (two 96-pixel blocks at
    /// half scale).
    #[serde(default)]
    pub val_crop: Option<usize>,
    /// Crop positions drawn per training pair, the most detailed kept (1: uniform crops; see
    /// `LoaderConfig::crop_tries`). Validation crops stay uniform.
    #[serde(default = "default_crop_tries")]
    pub crop_tries: usize,
}

fn default_crop_tries() -> usize {
    1
}

fn default_workers() -> usize {
    2
}

/// What ESGF watches on the validation pairs; both improve downwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValMetric {
    /// Mean absolute error of the SR crops against HR: fidelity.
    #[default]
    L1,
    /// Mean NIQE of the SR crops (no reference): how natural they look, which an adversarial term improves
    /// while the L1 barely moves.
    Niqe,
    /// Mean absolute error of the SR crops against the first `[[teacher]]`'s image of the same LR crops: how
    /// closely a distilled student follows its teacher, which keeps falling where the L1 to HR is flat.
    #[serde(rename = "teacher_l1")]
    TeacherL1,
}

impl ValMetric {
    /// The metric's column in the training log.
    pub fn column(self) -> &'static str {
        match self {
            Self::L1 => "val_l1",
            Self::Niqe => "val_niqe",
            Self::TeacherL1 => "val_teacher_l1",
        }
    }
}

/// The precision of the training forward pass; weights, gradients, optimizer and EMA stay float32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// Convolutions and matrix products in bfloat16 (see `sana_sr_core::precision`): the GPU setting, where
    /// tensor cores run bfloat16 many times faster. It runs on the CPU too, slower than float32 there.
    Bf16,
}

impl Precision {
    /// The compute kind of [`sana_sr_core::precision::with_compute_kind`].
    pub fn compute_kind(self) -> Option<Kind> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(Kind::BFloat16),
        }
    }
}

/// Which networks train in full fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trainable {
    /// The transformer (or every expert), the LR stem and the condition embedding.
    Dit,
    /// Those and the DC-AE encoder (OSEDiff adapts the encoder too).
    DitEncoder,
    /// Everything, decoder included (a text encoder never trains).
    All,
}

impl Trainable {
    /// Whether the model variable `name` trains.
    pub fn includes(self, name: &str) -> bool {
        // The text encoder stays frozen whatever trains (both papers keep SANA's Gemma-2 as released).
        if name.starts_with("text_encoder.") {
            return false;
        }
        let dit = ["transformer.", "experts.", "lr_stem."].iter().any(|p| name.starts_with(p)) || name == "condition";
        match self {
            Self::Dit => dit,
            Self::DitEncoder => dit || name.starts_with("vae.encoder."),
            Self::All => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Optimizer steps of the whole run (the schedule's `total_steps` is usually the same).
    pub steps: u64,
    pub trainable: Trainable,
    /// The validation metric ESGF follows.
    #[serde(default)]
    pub val_metric: ValMetric,
    /// `f32` or `bf16` (mixed precision).
    #[serde(default)]
    pub precision: Precision,
    pub seed: u64,
    /// Trains expert k of a model with SNR-based experts alone: the flow-matching loss samples noise levels
    /// inside its interval and the other experts are frozen. Without it every expert trains, each on the
    /// steps whose noise level falls in its interval.
    #[serde(default)]
    pub expert: Option<usize>,
    /// Global gradient-norm limit; 0 switches clipping off.
    #[serde(default)]
    pub grad_clip: f64,
    /// Decay of the weights' moving average, which is what is validated and exported.
    pub ema_decay: f64,
    /// Save the resumable state every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Average the losses over, and log, every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Torch threads on the CPU; 0 keeps libtorch's default.
    #[serde(default)]
    pub threads: usize,
}

fn default_log_every() -> u64 {
    10
}

/// The discriminator of the adversarial loss (trained only when `loss.adversarial > 0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscriminatorConfig {
    pub kind: DiscriminatorKind,
    /// Channels of its first layer (then 2x, 4x and, in the U-Net, 8x).
    pub width: i64,
    pub lr: f64,
    /// Steps before the adversarial term starts, so that the generator first learns the content.
    pub start_step: u64,
    /// Steps at the start of a run in which the discriminator alone trains, on the images the model draws as
    /// it starts: a fresh discriminator on a model that already draws texture first learns to tell that
    /// texture from the photos', instead of letting the pixel terms wash it out while it cannot yet.
    pub warmup_steps: u64,
    /// Whether the clean pairs (the degradation's `clean_prob`) take part in the adversarial term, the
    /// generator's and the discriminator's. Without them the term sharpens only what was degraded, and a clean
    /// input is held to its HR image by the pixel terms alone.
    pub clean_pairs: bool,
}

impl Default for DiscriminatorConfig {
    fn default() -> Self {
        Self { kind: DiscriminatorKind::Patch, width: 32, lr: 1e-4, start_step: 0, warmup_steps: 0, clean_pairs: true }
    }
}

/// The most CPU threads a run may ask libtorch for: far more cores than any machine has, and few enough
/// for libtorch's `int` (whose overflow panicked).
pub const MAX_THREADS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read training config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("training config {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl TrainConfig {
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            sana_sr_core::fs::read_text(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let invalid = |reason: String| ConfigError::Invalid { path: path.into(), reason };
        let config: Self = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let m = &self.model;
        if [m.from.is_some(), m.config.is_some(), m.knee_of.is_some()].iter().filter(|&&given| given).count() != 1 {
            return Err("[model] needs exactly one of `from` (a model to fine-tune), `config` (a new one) or \
                        `knee_of` (a run whose knee snapshot starts this one)"
                .into());
        }
        if m.weights_from.is_some() && m.config.is_none() {
            return Err("[model] `weights_from` starts a new model (`config`) from another's weights".into());
        }
        let d = &self.data;
        if d.hr.is_empty()
            || d.batch == 0
            || d.crop == 0
            || d.workers == 0
            || d.val_pairs == 0
            || d.val_images == 0
            || d.crop_tries == 0
        {
            return Err(
                "[data] needs HR folders, and positive crop, batch, workers, val_images, val_pairs, crop_tries".into(),
            );
        }
        let t = &self.train;
        if t.steps == 0 || t.checkpoint_every == 0 || t.log_every == 0 || !(0.0..1.0).contains(&t.ema_decay) {
            return Err("[train] needs positive steps, checkpoint_every, log_every and ema_decay in [0, 1)".into());
        }
        if t.threads > MAX_THREADS || d.workers > MAX_THREADS {
            return Err(format!(
                "[train] threads = {} and [data] workers = {} must be at most {MAX_THREADS}",
                t.threads, d.workers
            ));
        }
        // The loader holds a batch of crops, validation all its pairs: sized by the config, they are held to
        // the process's pixel limit like any image.
        let max_pixels = sana_sr_data::io::max_pixels();
        let val_crop = d.val_crop.unwrap_or(d.crop);
        for (what, count, side) in [("a batch", d.batch, d.crop), ("the validation pairs", d.val_pairs, val_crop)] {
            let pixels = (count as u64).saturating_mul((side as u64).saturating_mul(side as u64));
            if pixels > max_pixels {
                return Err(format!(
                    "[data] {what} of {count} crops of {side}x{side} is {pixels} pixels, over the limit of \
                     {max_pixels} pixels (--max-pixels raises it)"
                ));
            }
        }
        self.schedule.validate().map_err(|e| e.to_string())?;
        self.esgf.validate().map_err(|e| e.to_string())?;
        if self.esgf.goal != crate::esgf::Goal::Minimize {
            return Err(format!("[esgf] goal must be \"minimize\": {} improves downwards", t.val_metric.column()));
        }
        let disc = &self.discriminator;
        if self.loss.adversarial > 0.0
            && disc.kind == DiscriminatorKind::Unet
            && !d.crop.is_multiple_of(UNET_MULTIPLE as usize)
        {
            return Err(format!(
                "[discriminator] kind = \"unet\" needs a crop that is a multiple of {UNET_MULTIPLE}, not {}",
                d.crop
            ));
        }
        if disc.warmup_steps > 0
            && (self.loss.adversarial == 0.0 || disc.start_step > 0 || disc.warmup_steps >= t.steps)
        {
            return Err("[discriminator] warmup_steps trains the discriminator alone from the first step: it needs \
                        [loss] adversarial > 0, no start_step, and fewer steps than [train] steps"
                .into());
        }
        if t.val_metric == ValMetric::Niqe && self.data.val_crop.unwrap_or(d.crop) < 192 {
            return Err("[data] val_crop must be at least 192 for val_metric = \"niqe\"".into());
        }
        if t.val_metric == ValMetric::TeacherL1 && self.teachers.is_empty() {
            return Err(
                "val_metric = \"teacher_l1\" needs a [[teacher]]: it compares with the first one's image".into()
            );
        }
        let teacher_weights = self.teachers.iter().flat_map(|t| t.weights().map(|(_, w)| w));
        let all_weights: Vec<f64> = self.loss.weights().into_iter().chain(teacher_weights).collect();
        if all_weights.iter().all(|&w| w == 0.0) || all_weights.iter().any(|&w| w < 0.0) {
            return Err("[loss] and [[teacher]] weights must be non-negative and not all zero".into());
        }
        for (i, teacher) in self.teachers.iter().enumerate() {
            let label = teacher.label();
            if teacher.weights().iter().all(|&(_, w)| w == 0.0) {
                return Err(format!("teacher `{label}` has no loss weight (pixel_l1, pixel_l2 or edge)"));
            }
            if self.teachers[..i].iter().any(|t| t.label() == label) {
                return Err(format!("two teachers are named `{label}`: give one a `name`"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(dir: &Path, data: &str, train: &str) -> Result<TrainConfig, ConfigError> {
        let text = format!(
            "[model]\nconfig = \"m.json\"\n[data]\nhr = [\"pool\"]\ndegradation = \"d.toml\"\nval_images = 1\n\
             val_pairs = 2\n{data}\n[train]\nsteps = 2\ntrainable = \"all\"\nseed = 0\nema_decay = 0.9\n\
             checkpoint_every = 2\n{train}\n[schedule]\nbase_lr = 1e-3\nwarmup_steps = 0\ntotal_steps = 2\n"
        );
        let path = dir.join("train.toml");
        std::fs::write(&path, text).unwrap();
        TrainConfig::from_toml_file(&path)
    }

    #[test]
    fn thread_counts_and_batch_sizes_are_held_to_their_limits() {
        let dir = tempfile::tempdir().unwrap();
        let ok = "crop = 96\nbatch = 2";
        assert!(config_with(dir.path(), ok, "threads = 2").is_ok());
        // 2^31 threads overflowed libtorch's int and panicked.
        let err = config_with(dir.path(), ok, "threads = 2147483648").unwrap_err().to_string();
        assert!(err.contains("threads = 2147483648 and [data] workers = 2 must be at most 1024"), "{err}");
        let err = config_with(dir.path(), "crop = 96\nbatch = 2\nworkers = 100000", "").unwrap_err().to_string();
        assert!(err.contains("workers = 100000"), "{err}");
        let err = config_with(dir.path(), "crop = 100000\nbatch = 64", "").unwrap_err().to_string();
        assert!(err.contains("a batch of 64 crops of 100000x100000 is 640000000000 pixels, over the limit"), "{err}");
        assert!(err.contains("(--max-pixels raises it)"), "{err}");
    }

    #[test]
    fn a_teacher_l1_validation_needs_a_teacher() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            config_with(dir.path(), "crop = 96\nbatch = 2", "val_metric = \"teacher_l1\"").unwrap_err().to_string();
        assert!(err.contains("val_metric = \"teacher_l1\" needs a [[teacher]]"), "{err}");
    }

    #[test]
    fn a_unet_discriminator_needs_crops_it_can_halve_three_times() {
        let dir = tempfile::tempdir().unwrap();
        let unet = "[loss]\npixel_l1 = 1.0\nadversarial = 0.1\n[discriminator]\nkind = \"unet\"";
        assert!(config_with(dir.path(), "crop = 96\nbatch = 2", unet).is_ok());
        let err = config_with(dir.path(), "crop = 100\nbatch = 2", unet).unwrap_err().to_string();
        assert!(err.contains("kind = \"unet\" needs a crop that is a multiple of 8, not 100"), "{err}");
    }
}

//! Where models come from: the ones built into the binary, and model files in the models folder or anywhere
//! on disk.

use std::path::{Path, PathBuf};

use sana_sr_core::{nn, Device};

use crate::network::Network;
use crate::sr_model::{map_file, ModelError, ModelInfo, SrModel};

/// The model `upscale` uses when none is named: x4 only.
pub const DEFAULT_MODEL: &str = "sana-sr-compact-pruned-gan-extrapolated";

/// Environment variable naming the folder of local models (default: `$XDG_DATA_HOME/sana-sr/models`, else
/// `~/.local/share/sana-sr/models`).
pub const MODELS_DIR_ENV: &str = "SANA_SR_MODELS";

/// Extension of model files.
pub const MODEL_EXTENSION: &str = "safetensors";

/// A model compiled into the binary, so that it runs offline with nothing installed.
#[derive(Debug)]
pub struct BuiltinModel {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

pub static BUILTIN_MODELS: &[BuiltinModel] = &[
    BuiltinModel {
        name: DEFAULT_MODEL,
        bytes: include_bytes!("../models/sana-sr-compact-pruned-gan-extrapolated.safetensors"),
    },
    // The same continuation with half the adversarial weight: less invented texture, more faithful to clean
    // inputs (PSNR-Y 0.4-0.9 dB higher on the sets with ground truth), for photos that were only downscaled; with
    // the default, the two ends of `models mix` (3.1 MB).
    BuiltinModel {
        name: "sana-sr-compact-pruned-gan-real",
        bytes: include_bytes!("../models/sana-sr-compact-pruned-gan-real.safetensors"),
    },
    // The default before its adversarial stages and their start, which keeps them reproducible: softer, a cleaner
    // look where fidelity matters more than sharpness (3.1 MB).
    BuiltinModel {
        name: "sana-sr-compact-pruned-clean",
        bytes: include_bytes!("../models/sana-sr-compact-pruned-clean.safetensors"),
    },
    // The default before its fine-tune on clean pairs and the start of that fine-tune's config, which stays
    // reproducible from it (3.1 MB).
    BuiltinModel {
        name: "sana-sr-compact-pruned",
        bytes: include_bytes!("../models/sana-sr-compact-pruned.safetensors"),
    },
    // The model sana-sr-compact-pruned was pruned from and recovered towards (its teacher, and the default's
    // on degraded pairs), and the start of LinearSR's configs: the pruning and expert runs are reproducible
    // from it (5.8 MB).
    BuiltinModel { name: "sana-sr-compact", bytes: include_bytes!("../models/sana-sr-compact.safetensors") },
    // An earlier default, kept for what the others cannot do: x2 and x3 (3.1 MB).
    BuiltinModel { name: "sana-sr-tiny", bytes: include_bytes!("../models/sana-sr-tiny.safetensors") },
];

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no model named `{name}`: not a file, not built in ({builtin}), not in the models folder {folder}")]
    Unknown { name: String, builtin: String, folder: String },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A model to load: built in, or a file.
#[derive(Debug, Clone)]
pub enum ModelSource {
    Builtin(&'static BuiltinModel),
    File(PathBuf),
}

impl ModelSource {
    /// The built-in default model.
    pub fn default_model() -> Self {
        Self::resolve(DEFAULT_MODEL).expect("the default model is built in")
    }

    /// `spec` as a path to a model file when it looks like one (it exists, has a folder part or ends in
    /// `.safetensors`), else as the name of a built-in model, else of a file `NAME.safetensors` in the models
    /// folder.
    pub fn resolve(spec: &str) -> Result<Self, RegistryError> {
        let path = Path::new(spec);
        let looks_like_path = path.exists()
            || path.components().count() > 1
            || path.extension().is_some_and(|e| e.eq_ignore_ascii_case(MODEL_EXTENSION));
        if looks_like_path {
            return Ok(Self::File(path.to_path_buf()));
        }
        if let Some(builtin) = BUILTIN_MODELS.iter().find(|m| m.name == spec) {
            return Ok(Self::Builtin(builtin));
        }
        if let Some(file) = local_models().into_iter().find(|f| f.file_stem().is_some_and(|s| s == spec)) {
            return Ok(Self::File(file));
        }
        Err(RegistryError::Unknown {
            name: spec.to_string(),
            builtin: BUILTIN_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
            folder: models_dir().map_or_else(|| "(none: no home folder)".into(), |d| d.display().to_string()),
        })
    }

    /// How the model is named in messages: its built-in name or its path.
    pub fn label(&self) -> String {
        match self {
            Self::Builtin(m) => m.name.to_string(),
            Self::File(path) => path.display().to_string(),
        }
    }

    /// The model's config and size, without loading its weights.
    pub fn info(&self) -> Result<ModelInfo, ModelError> {
        match self {
            Self::Builtin(m) => ModelInfo::read(m.bytes, Path::new(m.name)),
            Self::File(path) => ModelInfo::read(&map_file(path)?, path),
        }
    }

    /// Hex SHA-256 of the model's bytes: what tells two models apart whatever they are named (an
    /// evaluation's record keys its scores by it).
    pub fn fingerprint(&self) -> Result<String, ModelError> {
        use sha2::{Digest, Sha256};
        let digest = match self {
            Self::Builtin(m) => Sha256::digest(m.bytes),
            Self::File(path) => Sha256::digest(&*map_file(path)?),
        };
        Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// The SANA-SR model (for training, LoRA); a peer network is refused ([`ModelError::NotSana`]).
    pub fn load(&self, device: Device) -> Result<(SrModel, nn::VarStore), ModelError> {
        match self {
            Self::Builtin(m) => SrModel::from_bytes(m.bytes, Path::new(m.name), device),
            Self::File(path) => SrModel::load(path, device),
        }
    }

    /// The network of either kind, a SANA-SR model or a peer (what the upscaler runs).
    pub fn load_network(&self, device: Device) -> Result<(Network, nn::VarStore), ModelError> {
        match self {
            Self::Builtin(m) => Network::from_bytes(m.bytes, Path::new(m.name), device),
            Self::File(path) => Network::load(path, device),
        }
    }
}

/// The folder of local models (see [`MODELS_DIR_ENV`]); `None` without a home folder.
pub fn models_dir() -> Option<PathBuf> {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    env(MODELS_DIR_ENV)
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("sana-sr/models")))
        .or_else(|| env("HOME").map(|d| d.join(".local/share/sana-sr/models")))
}

/// Model files in the models folder, sorted by name (none when it does not exist).
pub fn local_models() -> Vec<PathBuf> {
    let Some(dir) = models_dir() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case(MODEL_EXTENSION)))
        .collect();
    files.sort();
    files
}

//! What a model file can hold: a SANA-SR model ([`SrModel`]) or a peer network, one of Real-ESRGAN's released
//! generators ([`EsrganModel`]), and how each is run.
//!
//! Both kinds are one safetensors file with the config as JSON under [`CONFIG_METADATA_KEY`]. A peer's config
//! carries an `architecture` (`rrdbnet`, `srvggnet_compact`) beside the reference's arguments; a config
//! without one is SANA-SR's, so every model file written before peers existed loads unchanged. A peer's
//! weights are under the reference's state-dict keys (`conv_first.weight`, `body.0.rdb1.conv1.weight`, ...),
//! float16 or float32 as imported.

use std::collections::HashMap;
use std::path::Path;

use sana_sr_core::{nn, Device, Kind, Tensor};
use sana_sr_model::checkpoint;
use sana_sr_model::esrgan::{ncnn, Esrgan, EsrganConfig};
use sana_sr_model::layers::variables;
use serde::{Deserialize, Serialize};

use crate::sr_model::{config_from_metadata, map_file, ModelError, SrModel, SrModelConfig, CONFIG_METADATA_KEY};

type Result<T> = std::result::Result<T, ModelError>;

/// A model file's config, whichever network it holds.
// One or two per loaded model: boxing the larger variants would save nothing worth the indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    Sana(SrModelConfig),
    Esrgan(EsrganModelConfig),
}

impl ModelConfig {
    pub fn name(&self) -> &str {
        match self {
            Self::Sana(c) => &c.name,
            Self::Esrgan(c) => &c.name,
        }
    }

    pub fn description(&self) -> &str {
        match self {
            Self::Sana(c) => &c.description,
            Self::Esrgan(c) => &c.description,
        }
    }

    pub fn set_description(&mut self, description: String) {
        match self {
            Self::Sana(c) => c.description = description,
            Self::Esrgan(c) => c.description = description,
        }
    }

    /// The upscaling factor used when none is asked for.
    pub fn scale(&self) -> u32 {
        match self {
            Self::Sana(c) => c.scale,
            Self::Esrgan(c) => c.network.scale() as u32,
        }
    }

    /// Every factor the model runs at (a peer: its one factor).
    pub fn scales(&self) -> Vec<u32> {
        match self {
            Self::Sana(c) => c.scales.clone(),
            Self::Esrgan(c) => vec![c.network.scale() as u32],
        }
    }

    /// `SANA-SR`, or the peer's reference class name (`RRDBNet`, `SRVGGNetCompact`).
    pub fn architecture(&self) -> &'static str {
        match self {
            Self::Sana(_) => "SANA-SR",
            Self::Esrgan(c) => c.network.architecture(),
        }
    }

    fn to_json(&self) -> String {
        match self {
            Self::Sana(c) => serde_json::to_string(c),
            Self::Esrgan(c) => serde_json::to_string(c),
        }
        .expect("model configs always serialize")
    }
}

/// A peer network's model file config: its name and the network's config, flat
/// (`{"name": ..., "architecture": "rrdbnet", "num_feat": 64, ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsrganModelConfig {
    /// Shown by `sana-sr models` and in reports.
    pub name: String,
    /// One line on what the network is and where its weights come from.
    #[serde(default)]
    pub description: String,
    #[serde(flatten)]
    pub network: EsrganConfig,
}

/// A peer network: the LR image in [0, 1] in, the SR image out, no resize before (Real-ESRGAN's inference).
#[derive(Debug)]
pub struct EsrganModel {
    pub config: EsrganModelConfig,
    pub net: Esrgan,
}

impl EsrganModel {
    /// Builds the network under `p`, randomly initialised.
    pub fn build(p: nn::Path, config: &EsrganModelConfig) -> Result<Self> {
        let net = Esrgan::new(p, &config.network).map_err(ModelError::Config)?;
        Ok(Self { config: config.clone(), net })
    }

    /// `[N, 3, h, w]` in [0, 1] to `[N, 3, scale·h, scale·w]`, unclamped; differentiable.
    pub fn forward(&self, lr: &Tensor) -> Tensor {
        self.net.forward(lr)
    }

    /// Writes a model file of imported weights (e.g. [`ncnn::Imported`]'s), each tensor in the dtype it
    /// has, after checking that they fit the network of `config` exactly (keys and shapes); an existing
    /// file is replaced only with `overwrite`.
    pub fn write_file(
        config: &EsrganModelConfig,
        tensors: HashMap<String, Tensor>,
        path: &Path,
        overwrite: bool,
    ) -> Result<()> {
        let vs = nn::VarStore::new(Device::Cpu);
        Self::build(vs.root(), config)?;
        let copies = tensors.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect();
        checkpoint::copy_into(&vs, copies)?;
        let metadata =
            HashMap::from([(CONFIG_METADATA_KEY.to_string(), ModelConfig::Esrgan(config.clone()).to_json())]);
        Ok(checkpoint::save_tensors(tensors, path, metadata, overwrite)?)
    }

    /// [`Self::write_file`] for an ncnn import, named `name`.
    pub fn write_imported(
        imported: ncnn::Imported,
        name: &str,
        description: &str,
        path: &Path,
        overwrite: bool,
    ) -> Result<()> {
        let config = EsrganModelConfig {
            name: name.to_string(),
            description: description.to_string(),
            network: imported.config,
        };
        Self::write_file(&config, imported.tensors.into_iter().collect(), path, overwrite)
    }
}

/// The network of a model file, built in one variable store.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Network {
    Sana(SrModel),
    Esrgan(EsrganModel),
}

impl From<SrModel> for Network {
    fn from(model: SrModel) -> Self {
        Self::Sana(model)
    }
}

impl Network {
    /// Loads a model file of either kind onto `device` (float32).
    pub fn load(path: &Path, device: Device) -> Result<(Self, nn::VarStore)> {
        Self::from_bytes(&map_file(path)?, path, device)
    }

    /// [`Self::load`] from a model file's bytes; `origin` names it in errors.
    /// Built at the file's stored shapes, as [`SrModel::from_bytes`] is.
    pub fn from_bytes(bytes: &[u8], origin: &Path, device: Device) -> Result<(Self, nn::VarStore)> {
        let (shapes, metadata) = checkpoint::read_header(bytes, origin)?;
        let config = config_from_metadata(&metadata, origin)?;
        let vs = nn::VarStore::new(device);
        let network = variables::with_stored_shapes(shapes, || {
            Ok::<_, ModelError>(match &config {
                ModelConfig::Sana(config) => Self::Sana(SrModel::build(vs.root(), config)?),
                ModelConfig::Esrgan(config) => Self::Esrgan(EsrganModel::build(vs.root(), config)?),
            })
        })?;
        checkpoint::copy_into(&vs, checkpoint::read_tensors_from_bytes(bytes, origin)?.0)?;
        Ok((network, vs))
    }

    pub fn config(&self) -> ModelConfig {
        match self {
            Self::Sana(m) => ModelConfig::Sana(m.config.clone()),
            Self::Esrgan(m) => ModelConfig::Esrgan(m.config.clone()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Sana(m) => &m.config.name,
            Self::Esrgan(m) => &m.config.name,
        }
    }

    pub fn set_description(&mut self, description: String) {
        match self {
            Self::Sana(m) => m.config.description = description,
            Self::Esrgan(m) => m.config.description = description,
        }
    }

    pub fn set_name(&mut self, name: String) {
        match self {
            Self::Sana(m) => m.config.name = name,
            Self::Esrgan(m) => m.config.name = name,
        }
    }

    /// The SANA-SR model, if that is what this is.
    pub fn as_sana(&self) -> Option<&SrModel> {
        match self {
            Self::Sana(m) => Some(m),
            Self::Esrgan(_) => None,
        }
    }

    pub fn as_sana_mut(&mut self) -> Option<&mut SrModel> {
        match self {
            Self::Sana(m) => Some(m),
            Self::Esrgan(_) => None,
        }
    }

    /// Writes the model file atomically (replacing an earlier one) with weights in `kind` (F32/F16/BF16);
    /// `vs` must be the store the network was built in.
    pub fn save(&self, vs: &nn::VarStore, path: &Path, kind: Kind) -> Result<()> {
        let metadata = HashMap::from([(CONFIG_METADATA_KEY.to_string(), self.config().to_json())]);
        Ok(checkpoint::save_with_metadata(vs, path, kind, metadata)?)
    }
}

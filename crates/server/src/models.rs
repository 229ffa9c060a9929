//! The models a job may name: the service's own (`--model`), the built-in ones and those in the models
//! folder, known here by their configs (what a request is checked against); the workers load each one the
//! first time a job names it. A job names a model by the name this list gives it, never by a path: nothing
//! a client sends is looked up on the disk.

use sana_sr_pipeline::registry::{local_models, BUILTIN_MODELS};
use sana_sr_pipeline::{ModelConfig, ModelSource, RegistryError};
use serde::Serialize;

use crate::error::ApiError;

/// A model as `GET /api/models` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEntry {
    pub name: String,
    pub description: String,
    pub scales: Vec<u32>,
    /// The model's own scale, what a job that names none gets.
    pub scale: u32,
    /// The model a job that names none runs.
    pub default: bool,
}

#[derive(Debug)]
pub struct Model {
    pub entry: ModelEntry,
    pub source: ModelSource,
    pub config: ModelConfig,
}

#[derive(Debug)]
pub struct Catalogue {
    /// The default first.
    models: Vec<Model>,
}

impl Catalogue {
    /// The catalogue, `default` first, from the models' headers. Other models whose files cannot be read are
    /// left out, with a warning.
    pub fn new(default: &ModelSource) -> Result<Self, RegistryError> {
        let mut models = vec![model(name_of(default), default.clone(), true)?];
        let others =
            BUILTIN_MODELS.iter().map(ModelSource::Builtin).chain(local_models().into_iter().map(ModelSource::File));
        for source in others {
            let name = name_of(&source);
            if models.iter().any(|m| m.entry.name == name) {
                continue;
            }
            match model(name.clone(), source, false) {
                Ok(model) => models.push(model),
                Err(error) => eprintln!("warning: model `{name}` is left out: {error}"),
            }
        }
        Ok(Self { models })
    }

    pub fn list(&self) -> Vec<ModelEntry> {
        self.models.iter().map(|m| m.entry.clone()).collect()
    }

    pub fn default_model(&self) -> &Model {
        &self.models[0]
    }

    /// The model named `name`, the default when `None`.
    pub fn get(&self, name: Option<&str>) -> Result<&Model, ApiError> {
        let Some(name) = name else { return Ok(self.default_model()) };
        self.models.iter().find(|m| m.entry.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.models.iter().map(|m| m.entry.name.as_str()).collect();
            ApiError::BadOption(format!("no model named `{name}` (the models are {})", names.join(", ")))
        })
    }
}

/// A built-in model's name, a file's stem.
fn name_of(source: &ModelSource) -> String {
    match source {
        ModelSource::Builtin(model) => model.name.to_string(),
        ModelSource::File(path) => {
            path.file_stem().map_or_else(|| source.label(), |s| s.to_string_lossy().into_owned())
        }
    }
}

fn model(name: String, source: ModelSource, default: bool) -> Result<Model, RegistryError> {
    let config = source.info()?.config;
    let entry = ModelEntry {
        name,
        description: config.description().to_string(),
        scales: config.scales(),
        scale: config.scale(),
        default,
    };
    Ok(Model { entry, source, config })
}

//! A SANA-SR model: the DC-AE, the DiT, the stored condition and the few numbers that tie them together
//! (scale, timestep), in one safetensors file.
//!
//! File layout: the autoencoder's weights under `vae.`, the transformer's under `transformer.` (after those
//! prefixes, exactly diffusers' keys), the condition embedding as `condition`, and the [`SrModelConfig`] as JSON
//! in the safetensors metadata under [`CONFIG_METADATA_KEY`]. One file is one model: it can be copied, embedded
//! in the binary, or dropped into the models folder. The same key holds a peer network's config instead (with
//! an `architecture` field, which a SANA-SR config never has): see [`crate::network`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::resize::interpolate::{interpolate, Mode, Target};
use sana_sr_data::resize::matlab::imresize_tensor;
use sana_sr_model::autoencoders::{AutoencoderDc, AutoencoderDcConfig, DcAeError};
use sana_sr_model::checkpoint::{self, CheckpointError};
use sana_sr_model::layers::variables;
use sana_sr_model::transformers::{SanaTransformer2DModel, SanaTransformerConfig, SanaTransformerError};
use serde::{Deserialize, Serialize};

use crate::network::ModelConfig;
use crate::scheduler;

/// The largest upscaling factor a model may declare (16x: far past what one-step SR restores).
pub const MAX_SCALE: u32 = 16;

/// Metadata key of the model config in a model file.
pub const CONFIG_METADATA_KEY: &str = "sana_sr_config";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: not a sana-sr model file: {reason}")]
    NotAModel { path: PathBuf, reason: String },
    #[error("invalid sana-sr model config: {0}")]
    Config(String),
    #[error("{path}: holds {architecture}, a peer network, not a SANA-SR model (only `upscale`, `eval` and `models export` take peers)")]
    NotSana { path: PathBuf, architecture: String },
    #[error(transparent)]
    Autoencoder(#[from] DcAeError),
    #[error(transparent)]
    Transformer(#[from] SanaTransformerError),
}

type Result<T> = std::result::Result<T, ModelError>;

/// The resize from LR to output size that a model's input goes through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputResize {
    /// PyTorch's `interpolate(mode="bicubic")`: Keys' cubic with a = -0.75, border samples repeated.
    #[default]
    PytorchBicubic,
    /// MATLAB's `imresize`: Keys' cubic with a = -0.5, borders mirrored; the benchmarks' "bicubic", which
    /// rings less than PyTorch's and scores a better NIQE (docs/decisions.md).
    MatlabBicubic,
}

/// What a model file says about itself besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SrModelConfig {
    /// Shown by `sana-sr models` and in reports.
    pub name: String,
    /// One line on what the model is and how it was trained.
    #[serde(default)]
    pub description: String,
    /// The upscaling factor it restores by default.
    pub scale: u32,
    /// Every factor it was trained for; other factors are refused.
    pub scales: Vec<u32>,
    /// The flow-matching timestep (0 to 1000) at which the DiT sees the LR latent as a noisy latent.
    pub timestep: f64,
    /// `true`: the decoder adds detail to the resized LR image instead of drawing the whole image.
    #[serde(default)]
    pub lr_skip: bool,
    /// How the LR image is resized to the output size before the encoder (and under the detail).
    #[serde(default)]
    pub input_resize: InputResize,
    /// Tokens of the stored condition embedding (SANA's null caption; LinearSR's tags).
    pub condition_tokens: i64,
    pub vae: AutoencoderDcConfig,
    pub transformer: SanaTransformerConfig,
}

impl SrModelConfig {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let latent = self.vae.latent_channels;
        let t = &self.transformer;
        if t.in_channels != latent || t.out_channels() != latent {
            return Err(format!(
                "the transformer maps {} to {} channels but the autoencoder's latent has {latent}",
                t.in_channels,
                t.out_channels()
            ));
        }
        if !self.scales.contains(&self.scale) || self.scales.contains(&0) {
            return Err(format!("default scale {} is not among the scales {:?}", self.scale, self.scales));
        }
        if !(self.timestep > 0.0 && self.timestep <= scheduler::NUM_TRAIN_TIMESTEPS) {
            return Err(format!("timestep {} is outside (0, 1000]", self.timestep));
        }
        if self.condition_tokens < 1 {
            return Err("the condition needs at least one token".into());
        }
        variables::check_sizes(&[("condition_tokens", self.condition_tokens)])?;
        if let Some(scale) = self.scales.iter().find(|&&s| s > MAX_SCALE) {
            return Err(format!("scale {scale} is over the limit of {MAX_SCALE}"));
        }
        Ok(())
    }

    /// Pixels per latent token along each side: the autoencoder's compression times the DiT's patch size.
    /// Images are padded to a multiple of it.
    pub fn pixels_per_token(&self) -> i64 {
        self.vae.spatial_compression_ratio() * self.transformer.patch_size
    }
}

/// The networks of a model, built in one variable store under `vae`, `transformer` and `condition`.
#[derive(Debug)]
pub struct SrModel {
    pub config: SrModelConfig,
    pub vae: AutoencoderDc,
    pub transformer: SanaTransformer2DModel,
    /// `[1, condition_tokens, caption_channels]`: the DiT's cross-attention input, the same for every image.
    pub condition: Tensor,
}

impl SrModel {
    /// Builds the model under `p`, randomly initialised (the condition small and random, as a learned
    /// embedding starts).
    pub fn build(p: nn::Path, config: &SrModelConfig) -> Result<Self> {
        config.validate().map_err(ModelError::Config)?;
        let shape = [1, config.condition_tokens, config.transformer.caption_channels];
        let vae = AutoencoderDc::new(&p / "vae", &config.vae)?;
        if config.lr_skip {
            // The detail starts at zero, so a new model starts as its input resize and learns what to add,
            // instead of first unlearning the random detail of its initialisation (residual SR networks and
            // PixArt/SANA's zero-initialised output layers do the same).
            let out = vae.decoder.output_layer();
            no_grad(|| {
                let _ = out.weight.shallow_clone().zero_();
                if let Some(bias) = &out.bias {
                    let _ = bias.shallow_clone().zero_();
                }
            });
        }
        Ok(Self {
            config: config.clone(),
            vae,
            transformer: SanaTransformer2DModel::new(&p / "transformer", &config.transformer)?,
            condition: variables::var(&p, "condition", &shape, nn::Init::Randn { mean: 0.0, stdev: 0.02 }),
        })
    }

    /// Loads a model file onto `device` (float32); the store is returned for training, casting or saving.
    pub fn load(path: &Path, device: Device) -> Result<(Self, nn::VarStore)> {
        Self::from_bytes(&map_file(path)?, path, device)
    }

    /// Loads a model from the bytes of a model file (e.g. one embedded in the binary); `origin` names it in
    /// errors. The network is built at the shapes the file stores ([`variables::with_stored_shapes`]): a config
    /// that disagrees with them is refused before any weight is allocated.
    pub fn from_bytes(bytes: &[u8], origin: &Path, device: Device) -> Result<(Self, nn::VarStore)> {
        let (shapes, metadata) = checkpoint::read_header(bytes, origin)?;
        let config = match config_from_metadata(&metadata, origin)? {
            ModelConfig::Sana(config) => config,
            ModelConfig::Esrgan(config) => {
                let architecture = config.network.architecture().to_string();
                return Err(ModelError::NotSana { path: origin.into(), architecture });
            }
        };
        let vs = nn::VarStore::new(device);
        let model = variables::with_stored_shapes(shapes, || Self::build(vs.root(), &config))?;
        checkpoint::copy_into(&vs, checkpoint::read_tensors_from_bytes(bytes, origin)?.0)?;
        Ok((model, vs))
    }

    /// Writes the model file atomically (replacing an earlier save) with weights in `kind` (F32/F16/BF16);
    /// `vs` must be the store the model was built in.
    pub fn save(&self, vs: &nn::VarStore, path: &Path, kind: Kind) -> Result<()> {
        let json = serde_json::to_string(&self.config).expect("model configs always serialize");
        let metadata = HashMap::from([(CONFIG_METADATA_KEY.to_string(), json)]);
        Ok(checkpoint::save_with_metadata(vs, path, kind, metadata)?)
    }

    /// Image `[N, 3, H, W]` in [-1, 1] (H and W multiples of [`SrModelConfig::pixels_per_token`]) to the
    /// scaled latent the DiT works on.
    pub fn encode(&self, image: &Tensor) -> Result<Tensor> {
        Ok(self.vae.encode(image)? * self.config.vae.scaling_factor)
    }

    /// The one diffusion step: the LR latent, taken as the noisy latent at the model's timestep, to the clean
    /// latent (the DiT's velocity through [`scheduler::clean_latent`]).
    pub fn restore(&self, latent: &Tensor) -> Result<Tensor> {
        let batch = latent.size()[0];
        let options = (latent.kind(), latent.device());
        let cfg = &self.config.transformer;
        // SANA's pipelines scale the timestep (and SANA-Sprint the guidance) before the model sees it.
        let timestep = Tensor::full([batch], self.config.timestep * cfg.timestep_scale, options);
        let guidance = cfg.guidance_embeds.then(|| Tensor::zeros([batch], options));
        let condition = self.condition.to_kind(latent.kind()).expand([batch, -1, -1], false);
        let velocity = self.transformer.forward(latent, &condition, &timestep, None, guidance.as_ref())?;
        Ok(scheduler::clean_latent(latent, &velocity, scheduler::sigma(self.config.timestep)))
    }

    /// Scaled latent to the decoder's output: the image in [-1, 1] terms, or with `lr_skip` the detail that
    /// [`Self::add_skip`] adds to the LR image.
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        Ok(self.vae.decode(&(latent / self.config.vae.scaling_factor))?)
    }

    /// The LR batch `[N, C, h, w]` in [0, 1] resized to `height x width` the way this model takes its input,
    /// clamped to [0, 1].
    pub fn resize_input(&self, lr: &Tensor, height: i64, width: i64) -> Tensor {
        let resized = match self.config.input_resize {
            InputResize::PytorchBicubic => interpolate(lr, Target::Size { height, width }, Mode::Bicubic)
                .expect("an NCHW batch to a non-empty size"),
            InputResize::MatlabBicubic => {
                imresize_tensor(lr, height as usize, width as usize).expect("an NCHW batch to a non-empty size")
            }
        };
        resized.clamp(0.0, 1.0)
    }

    /// The SR image from the decoder's output and the resized LR image it came from (in [-1, 1], not clamped).
    pub fn add_skip(&self, decoded: Tensor, lr: &Tensor) -> Tensor {
        if self.config.lr_skip {
            let kind = decoded.kind();
            decoded + lr.to_kind(kind)
        } else {
            decoded
        }
    }

    /// The whole pipeline on a batch, untiled and differentiable: the resized LR image in [-1, 1] to the SR
    /// image in [-1, 1] terms (what training calls; [`crate::Upscaler`] adds resizing, padding and tiles).
    pub fn forward(&self, lr: &Tensor) -> Result<Tensor> {
        Ok(self.add_skip(self.decode(&self.restore(&self.encode(lr)?)?)?, lr))
    }

    /// Parameters of the networks and the condition.
    pub fn parameter_count(vs: &nn::VarStore) -> i64 {
        vs.variables().values().filter(|t| t.is_floating_point()).map(|t| t.numel() as i64).sum()
    }
}

/// What a model file holds, read from its header alone (no weights are loaded).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub config: ModelConfig,
    pub parameters: u64,
    /// Size of the file.
    pub bytes: u64,
}

impl ModelInfo {
    pub fn read(bytes: &[u8], origin: &Path) -> Result<Self> {
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| CheckpointError::Corrupt { path: origin.into(), reason: e.to_string() })?;
        let config = config_from_metadata(&header.metadata().clone().unwrap_or_default(), origin)?;
        let parameters = header
            .tensors()
            .values()
            .filter(|info| info.dtype != safetensors::Dtype::I64)
            .map(|info| info.shape.iter().product::<usize>() as u64)
            .sum();
        Ok(Self { config, parameters, bytes: bytes.len() as u64 })
    }
}

/// A model file's bytes, memory-mapped: loading copies the tensors out and reading the info touches only
/// the header, so neither reads the whole file up front.
pub(crate) fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    Ok(checkpoint::map_file(path)?)
}

/// The config in a model file's metadata: a peer network's when it names an `architecture`, else SANA-SR's.
pub(crate) fn config_from_metadata(metadata: &HashMap<String, String>, origin: &Path) -> Result<ModelConfig> {
    let not_a_model = |reason: String| ModelError::NotAModel { path: origin.into(), reason };
    let json = metadata.get(CONFIG_METADATA_KEY).ok_or_else(|| {
        not_a_model(format!(
            "its metadata has no `{CONFIG_METADATA_KEY}` (a diffusers AutoencoderDC or SanaTransformer2DModel \
             checkpoint alone is not a whole model)"
        ))
    })?;
    let bad = |e: serde_json::Error| not_a_model(format!("bad `{CONFIG_METADATA_KEY}`: {e}"));
    let value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
    Ok(if value.get("architecture").is_some() {
        ModelConfig::Esrgan(serde_json::from_value(value).map_err(bad)?)
    } else {
        ModelConfig::Sana(serde_json::from_value(value).map_err(bad)?)
    })
}

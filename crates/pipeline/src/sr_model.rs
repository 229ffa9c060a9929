//! A SANA-SR model: the DC-AE, the DiT, the stored condition and the few numbers that tie them together
//! (scale, timestep, sampler), in one safetensors file; optionally LinearSR's LR stem and SNR-based experts.
//!
//! File layout: the autoencoder's weights under `vae.`, the transformer's under `transformer.` (after those
//! prefixes, exactly diffusers' keys; a model with K experts has K transformers under `experts.{k}.` instead),
//! the LR stem's under `lr_stem.`, the condition embedding as `condition`, and the [`SrModelConfig`] as JSON
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
use sana_sr_model::layers::lora::{self, LoraError};
use sana_sr_model::layers::variables;
use sana_sr_model::lr_stem::{LrStem, LrStemConfig};
use sana_sr_model::transformers::{SanaTransformer2DModel, SanaTransformerConfig, SanaTransformerError};
use serde::{Deserialize, Serialize};

use crate::condition::{self, Condition, ConditionError, Conditioning, TextConfig, TextSide};
use crate::experts::{ExpertKind, ExpertsConfig, Router};
use crate::network::ModelConfig;
use crate::scheduler::{self, Schedule};

/// The largest upscaling factor a model may declare (16x: far past what one-step SR restores).
pub const MAX_SCALE: u32 = 16;

/// The most sampler steps a model or a caller may ask for (a thousand DiT passes is already far past any use).
pub const MAX_STEPS: usize = 1000;

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
    #[error(transparent)]
    Lora(#[from] LoraError),
    #[error(transparent)]
    Condition(#[from] ConditionError),
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

/// Where the DiT stage's sampler starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// The LR latent, taken as the noisy latent at the model's timestep (OSEDiff, SANA-SR); its steps are evenly
    /// spaced in noise level from there to 0.
    #[default]
    LrLatent,
    /// Seeded Gaussian noise at noise level 1, the LR image entering through the stem (LinearSR); its steps
    /// follow diffusers' flow-matching schedule with the sampler's shift.
    Noise,
}

/// How the DiT stage samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    #[serde(default)]
    pub start: Start,
    /// Euler steps by default (a caller may ask for another number).
    #[serde(default = "one_step")]
    pub steps: usize,
    /// diffusers' flow shift of a noise start's schedule (1: none; SANA samples with 3).
    #[serde(default = "scheduler::no_shift")]
    pub shift: f64,
}

fn one_step() -> usize {
    1
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self { start: Start::default(), steps: one_step(), shift: scheduler::no_shift() }
    }
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
    /// The noise level at `timestep` where it is not `timestep / 1000`: diffusers' DPM-Solver gives integer
    /// timesteps beside float sigmas, so a model assembled from a SANA pipeline steps from the scheduler's sigma
    /// while its DiT sees the truncated timestep ([`scheduler::DiffusersScheduler::point`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// `true`: the decoder adds detail to the resized LR image instead of drawing the whole image.
    #[serde(default)]
    pub lr_skip: bool,
    /// How the LR image is resized to the output size before the encoder (and under the detail).
    #[serde(default)]
    pub input_resize: InputResize,
    /// Tokens of the condition: the stored embedding's, or with a text encoder the prompt's `max_length`.
    pub condition_tokens: i64,
    pub vae: AutoencoderDcConfig,
    pub transformer: SanaTransformerConfig,
    #[serde(default)]
    pub sampler: SamplerConfig,
    /// LinearSR's LR conditioning: the stem's features join the latent on channels at every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_stem: Option<LrStemConfig>,
    /// LinearSR's SNR-based experts: one DiT per interval of noise levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<ExpertsConfig>,
    /// A text encoder, whose prompt of the image's tags is the condition instead of a stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
}

impl SrModelConfig {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let latent = self.vae.latent_channels;
        let stem = match &self.lr_stem {
            Some(stem) => {
                stem.validate(self.vae.spatial_compression_ratio())?;
                stem.out_channels()
            }
            None => 0,
        };
        let t = &self.transformer;
        if t.in_channels != latent + stem || t.out_channels() != latent {
            return Err(format!(
                "the transformer maps {} to {} channels but the autoencoder's latent has {latent}{}",
                t.in_channels,
                t.out_channels(),
                if stem > 0 { format!(" and the LR stem adds {stem}") } else { String::new() }
            ));
        }
        let sampler = &self.sampler;
        if !(1..=MAX_STEPS).contains(&sampler.steps) {
            return Err(format!("the sampler's steps {} are outside 1..={MAX_STEPS}", sampler.steps));
        }
        if !(sampler.shift.is_finite() && sampler.shift > 0.0) {
            return Err(format!("the sampler's shift {} is not a positive number", sampler.shift));
        }
        if sampler.start == Start::Noise && self.lr_stem.is_none() {
            return Err("a sampler that starts from noise needs an LR stem: nothing else brings in the image".into());
        }
        if let Some(experts) = &self.experts {
            experts.sigma_boundaries()?;
        }
        if !self.scales.contains(&self.scale) || self.scales.contains(&0) {
            return Err(format!("default scale {} is not among the scales {:?}", self.scale, self.scales));
        }
        if !(self.timestep > 0.0 && self.timestep <= scheduler::NUM_TRAIN_TIMESTEPS) {
            return Err(format!("timestep {} is outside (0, 1000]", self.timestep));
        }
        if let Some(sigma) = self.sigma {
            if !(sigma > 0.0 && sigma <= 1.0) {
                return Err(format!("sigma {sigma} is outside (0, 1]"));
            }
        }
        if self.condition_tokens < 1 {
            return Err("the condition needs at least one token".into());
        }
        variables::check_sizes(&[("condition_tokens", self.condition_tokens)])?;
        if let Some(text) = &self.text {
            text.validate(self.transformer.caption_channels)?;
            if text.max_length as i64 != self.condition_tokens {
                return Err(format!(
                    "condition_tokens {} is not the prompt's max_length {}",
                    self.condition_tokens, text.max_length
                ));
            }
        }
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

/// The networks of a model, built in one variable store under `vae`, `transformer` and `condition` (or
/// `text_encoder`).
#[derive(Debug)]
pub struct SrModel {
    pub config: SrModelConfig,
    pub vae: AutoencoderDc,
    /// The DiT, or one per expert (noisiest interval first).
    pub transformers: Vec<SanaTransformer2DModel>,
    /// Which expert runs at a noise level; `None` without experts.
    pub router: Option<Router>,
    pub lr_stem: Option<LrStem>,
    /// `[1, condition_tokens, caption_channels]`: the DiT's cross-attention input, the same for every image;
    /// `None` with a text encoder.
    pub condition: Option<Tensor>,
    pub text: Option<TextSide>,
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
        let dit = |name: &str| SanaTransformer2DModel::new(&p / name, &config.transformer);
        let (transformers, router) = match &config.experts {
            None => (vec![dit("transformer")?], None),
            Some(experts) => {
                let router = experts.router().map_err(ModelError::Config)?;
                let count = router.intervals().len();
                let dits = match (experts.kind, &experts.lora) {
                    (ExpertKind::Lora, Some(adapters)) => {
                        vec![lora::with_expert_adapters(adapters, count, || -> Result<_> { Ok(dit("transformer")?) })?]
                    }
                    _ => (0..count)
                        .map(|k| SanaTransformer2DModel::new(&p / "experts" / k, &config.transformer))
                        .collect::<std::result::Result<_, _>>()?,
                };
                (dits, Some(router))
            }
        };
        Ok(Self {
            config: config.clone(),
            vae,
            transformers,
            router,
            lr_stem: config.lr_stem.as_ref().map(|stem| LrStem::new(&p / "lr_stem", stem)),
            condition: config
                .text
                .is_none()
                .then(|| variables::var(&p, "condition", &shape, nn::Init::Randn { mean: 0.0, stdev: 0.02 })),
            text: match &config.text {
                Some(text) => Some(TextSide::build(&p / "text_encoder", text, Path::new(&config.name))?),
                None => None,
            },
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

    /// What the DiT stage takes from an image as [`Self::encode`] takes it: the LR latent (for an LR-latent start)
    /// followed on channels by the LR stem's features (with a stem). A noise start needs
    /// [`Self::with_start_noise`] after it.
    pub fn encode_lr(&self, image: &Tensor) -> Result<Tensor> {
        let latent = match self.config.sampler.start {
            Start::LrLatent => Some(self.encode(image)?),
            Start::Noise => None,
        };
        let features = self.lr_stem.as_ref().map(|stem| stem.forward(image));
        Ok(match (latent, features) {
            (Some(latent), Some(features)) => Tensor::cat(&[latent, features], 1),
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => unreachable!("a validated config has a stem whenever it starts from noise"),
        })
    }

    /// [`Self::encode_lr`]'s output made a sampler's start: for a noise start, standard Gaussian noise drawn
    /// from `seed` (ChaCha8 on the CPU, so the same numbers on any device) is put in front as the latent.
    pub fn with_start_noise(&self, encoded: Tensor, seed: u64) -> Tensor {
        match self.config.sampler.start {
            Start::LrLatent => encoded,
            Start::Noise => {
                let size = encoded.size();
                let shape = [size[0], self.config.vae.latent_channels, size[2], size[3]];
                let noise = seeded_noise(&shape, seed).to_kind(encoded.kind()).to_device(encoded.device());
                Tensor::cat(&[noise, encoded], 1)
            }
        }
    }

    /// The noise levels and timesteps of a `steps`-step sampler of this model (see [`Start`]).
    pub fn schedule(&self, steps: usize) -> Schedule {
        match self.config.sampler.start {
            Start::LrLatent => {
                // The first timestep is the model's own exactly (a factor of 1.0), so one step is the one-step
                // pipeline.
                let first = self.config.timestep;
                let fraction = |k: usize| (steps - k) as f64 / steps as f64;
                let timesteps: Vec<f64> = (0..steps).map(|k| first * fraction(k)).collect();
                let sigmas = match self.config.sigma {
                    Some(sigma) => (0..steps).map(|k| sigma * fraction(k)).chain([0.0]).collect(),
                    None => timesteps.iter().map(|&t| scheduler::sigma(t)).chain([0.0]).collect(),
                };
                Schedule { sigmas, timesteps }
            }
            Start::Noise => scheduler::flow_match_schedule(steps, self.config.sampler.shift),
        }
    }

    /// The diffusion steps of the model's sampler ([`SamplerConfig::steps`]) on a start from
    /// [`Self::with_start_noise`]: the clean latent.
    pub fn restore(&self, start: &Tensor) -> Result<Tensor> {
        self.sample(start, self.config.sampler.steps)
    }

    /// [`Self::sample_with`] the model's own condition, unguided (with a text encoder: the untagged prompt).
    pub fn sample(&self, start: &Tensor, steps: usize) -> Result<Tensor> {
        self.sample_with(start, steps, &self.conditioning(None, 1.0)?)
    }

    /// `steps` Euler steps down [`Self::schedule`] from `start` (the start latent, then the stem's features
    /// on channels, which stay as they are at every step) to the clean latent. One step from the LR latent
    /// is the one-step pipeline: the DiT's velocity through [`scheduler::clean_latent`].
    pub fn sample_with(&self, start: &Tensor, steps: usize, conditioning: &Conditioning) -> Result<Tensor> {
        let latent_channels = self.config.vae.latent_channels;
        let features =
            self.lr_stem.is_some().then(|| start.narrow(1, latent_channels, start.size()[1] - latent_channels));
        let mut x = if features.is_some() { start.narrow(1, 0, latent_channels) } else { start.shallow_clone() };
        let schedule = self.schedule(steps);
        for (k, &timestep) in schedule.timesteps.iter().enumerate() {
            let (sigma, next) = (schedule.sigmas[k], schedule.sigmas[k + 1]);
            let input = match &features {
                Some(features) => Tensor::cat(&[&x, features], 1),
                None => x.shallow_clone(),
            };
            let velocity = self.velocity_with(&input, timestep, sigma, conditioning)?;
            x = scheduler::euler_step(&x, &velocity, sigma, next);
        }
        Ok(x)
    }

    /// What the DiT reads besides the latent: the condition of `tags` (without a text encoder, the stored one,
    /// and tags are refused) and, for a `guidance` scale over 1, the empty prompt's to guide against.
    pub fn conditioning(&self, tags: Option<&str>, guidance: f64) -> Result<Conditioning> {
        condition::check_guidance(guidance)?;
        match (&self.text, &self.condition) {
            (Some(text), _) => {
                let condition = text.condition(&text.config.prompt(tags))?;
                let guidance = match guidance > 1.0 {
                    true => Some((text.condition("")?, guidance)),
                    false => None,
                };
                Ok(Conditioning { condition, guidance })
            }
            (None, Some(stored)) if tags.is_none() && guidance == 1.0 => {
                Ok(Conditioning { condition: Condition { tokens: stored.shallow_clone(), mask: None }, guidance: None })
            }
            _ => Err(ConditionError::NoTextEncoder(self.config.name.clone()).into()),
        }
    }

    /// [`Self::velocity_with`] the model's own condition, unguided.
    pub fn velocity(&self, input: &Tensor, timestep: f64, sigma: f64) -> Result<Tensor> {
        self.velocity_with(input, timestep, sigma, &self.conditioning(None, 1.0)?)
    }

    /// The DiT's velocity on `input` (the noisy latent and any stem features) at `timestep`, whose noise level
    /// `sigma` picks the expert, under `conditioning`.
    pub fn velocity_with(
        &self,
        input: &Tensor,
        timestep: f64,
        sigma: f64,
        conditioning: &Conditioning,
    ) -> Result<Tensor> {
        let conditioned = self.conditioned_velocity(input, timestep, sigma, &conditioning.condition)?;
        Ok(match &conditioning.guidance {
            None => conditioned,
            Some((empty, scale)) => {
                let unconditioned = self.conditioned_velocity(input, timestep, sigma, empty)?;
                &unconditioned + (&conditioned - &unconditioned) * *scale
            }
        })
    }

    fn conditioned_velocity(&self, input: &Tensor, timestep: f64, sigma: f64, condition: &Condition) -> Result<Tensor> {
        let batch = input.size()[0];
        let options = (input.kind(), input.device());
        let cfg = &self.config.transformer;
        // SANA's pipelines scale the timestep (and SANA-Sprint the guidance) before the model sees it.
        let timestep = Tensor::full([batch], timestep * cfg.timestep_scale, options);
        let guidance = cfg.guidance_embeds.then(|| Tensor::zeros([batch], options));
        let tokens = condition.tokens.to_kind(input.kind()).to_device(input.device()).expand([batch, -1, -1], false);
        let mask = condition.mask.as_ref().map(|m| m.to_device(input.device()).expand([batch, -1], false));
        let expert = self.router.as_ref().map_or(0, |router| router.expert(sigma));
        let dit = |k: usize| self.transformers[k].forward(input, &tokens, &timestep, mask.as_ref(), guidance.as_ref());
        Ok(match self.transformers.len() {
            // One DiT: no experts, or LoRA experts, whose adapters the active expert picks.
            1 => lora::with_active_expert(expert, || dit(0))?,
            _ => dit(expert)?,
        })
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
    /// image in [-1, 1] terms (what training calls; [`crate::Upscaler`] adds resizing, padding and tiles), with
    /// the model's own steps and, for a noise start, seed 0.
    pub fn forward(&self, lr: &Tensor) -> Result<Tensor> {
        self.forward_with(lr, &self.conditioning(None, 1.0)?)
    }

    /// [`Self::forward`] under `conditioning` (one condition for the batch, or one per image: see
    /// [`Self::batch_conditioning`]).
    pub fn forward_with(&self, lr: &Tensor, conditioning: &Conditioning) -> Result<Tensor> {
        let start = self.with_start_noise(self.encode_lr(lr)?, 0);
        let latent = self.sample_with(&start, self.config.sampler.steps, conditioning)?;
        Ok(self.add_skip(self.decode(&latent)?, lr))
    }

    /// The condition of a batch whose images have tags of their own (`tags[i]` for image i, e.g. a training
    /// batch's): with a text encoder each image's prompt's, stacked on the batch dimension, unguided; without
    /// one the stored condition, the tags unread (such a model has one condition for every image).
    pub fn batch_conditioning(&self, tags: &[Option<String>]) -> Result<Conditioning> {
        let Some(text) = &self.text else {
            return self.conditioning(None, 1.0);
        };
        let conditions = tags
            .iter()
            .map(|tags| text.condition(&text.config.prompt(tags.as_deref())))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let stack = |part: fn(&Condition) -> Tensor| Tensor::cat(&conditions.iter().map(part).collect::<Vec<_>>(), 0);
        let tokens = stack(|c| c.tokens.shallow_clone());
        let mask = stack(|c| c.mask.as_ref().expect("a prompt's condition has a mask").shallow_clone());
        Ok(Conditioning { condition: Condition { tokens, mask: Some(mask) }, guidance: None })
    }

    /// This model, which has one DiT, as SNR-based `experts` in a new store, each expert a copy of that DiT
    /// (full experts), or that DiT with an untrained adapter set per expert (LoRA experts): it computes what it
    /// computed before, and the experts can then train apart (LinearSR's expert stage starts so, from the base
    /// stage's knee).
    pub fn with_experts(&self, vs: &nn::VarStore, experts: &ExpertsConfig) -> Result<(Self, nn::VarStore)> {
        if self.config.experts.is_some() {
            return Err(ModelError::Config(format!("model `{}` has experts already", self.config.name)));
        }
        let config = SrModelConfig { experts: Some(experts.clone()), ..self.config.clone() };
        let split_vs = nn::VarStore::new(vs.device());
        let model = Self::build(split_vs.root(), &config)?;
        let base = vs.variables();
        // `experts.{k}.<key>` starts as `transformer.<key>`; every other variable as itself.
        let source = |name: &str| match name.strip_prefix("experts.").and_then(|rest| rest.split_once('.')) {
            Some((_, key)) => format!("transformer.{key}"),
            None => name.to_string(),
        };
        // LoRA experts' adapters are new and keep their initial values.
        let copied: HashMap<String, Tensor> =
            split_vs.variables().into_iter().filter(|(name, _)| lora::expert_of_variable(name).is_none()).collect();
        let values = copied.keys().map(|name| (name.clone(), base[&source(name)].shallow_clone())).collect();
        checkpoint::copy_into_variables(copied, values)?;
        Ok((model, split_vs))
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

/// Standard Gaussian noise of `shape` from ChaCha8 seeded with `seed`, in float32 on the CPU.
pub fn seeded_noise(shape: &[i64], seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> =
        (0..shape.iter().product::<i64>()).map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal)).collect();
    Tensor::from_slice(&values).reshape(shape)
}

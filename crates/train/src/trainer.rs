//! The training loop of one-step SR: degraded pairs from the HR pool, the pipeline's own differentiable
//! forward pass ([`SrModel::forward`]), AdamW with warm-up + cosine, gradient clipping, an EMA of the
//! weights, ESGF validation and early stopping, and a resumable checkpoint.
//!
//! [`train`] runs a [`Trainer`] to the end: [`Trainer::new`] sets a run up (or resumes it), [`Trainer::step`]
//! trains one batch and validates and logs when due, [`Trainer::checkpoint`] saves the state and
//! [`Trainer::finish`] exports ESGF's choice.
//!
//! A run lives in one folder: `checkpoint.safetensors` (everything needed to continue: weights, EMA,
//! optimizer moments, discriminator, step, ESGF state; rewritten atomically), `log.csv` and `curves.png`,
//! `snapshots/` (the EMA model at every validation) and, at the end, `model.safetensors`: the snapshot at
//! the knee of the validation curve (ESGF), the model to ship.
//!
//! Every pair is a function of (seed, index) and the CPU kernels are deterministic, so a run resumed from
//! its checkpoint computes exactly what the uninterrupted run would have.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sana_sr_core::precision::with_compute_kind;
use sana_sr_core::{manual_seed, nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::degradations::{Degradation, RealEsrganConfig};
use sana_sr_data::loader::{pool_paths, Loader, LoaderConfig};
use sana_sr_data::tensor::to_image;
use sana_sr_model::checkpoint::{self, CheckpointError};
use sana_sr_model::layers::lora::{self, Adapters};
use sana_sr_model::layers::variables;
use sana_sr_pipeline::condition::Conditioning;
use sana_sr_pipeline::scheduler;
use sana_sr_pipeline::sr_model::seeded_noise;
use sana_sr_pipeline::{ModelSource, SrModel, SrModelConfig};
use serde::{Deserialize, Serialize};

use crate::config::{TrainConfig, ValMetric};
use crate::discriminator::Discriminator;
use crate::esgf::{EarlyStopping, StopReason};
use crate::log::{LogColumns, LogRow, LogWriter, TrainingLog};
use crate::losses::{self, TERMS};
use crate::optim::{AdamW, Ema};
use crate::teacher::Teacher;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const MODEL_FILE: &str = "model.safetensors";
pub const LOG_FILE: &str = "log.csv";
pub const PLOT_FILE: &str = "curves.png";
const STATE_METADATA_KEY: &str = "sana_sr_train_state";
/// Keeps the validation pairs apart from every training pair.
const VALIDATION_SEED_KEY: u64 = 0x7a1d_a710_0000_0001;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Model(#[from] sana_sr_pipeline::ModelError),
    #[error(transparent)]
    Registry(#[from] sana_sr_pipeline::RegistryError),
    #[error(transparent)]
    Lora(#[from] lora::LoraError),
    #[error(transparent)]
    Data(#[from] sana_sr_data::loader::LoaderError),
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error(transparent)]
    Esgf(#[from] crate::esgf::EsgfError),
    #[error("teacher `{name}`: {reason}")]
    Teacher { name: String, reason: String },
}

type Result<T> = std::result::Result<T, TrainError>;

/// How this invocation runs (the config says what is trained).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub run_dir: PathBuf,
    /// Continue from the run folder's checkpoint; without it, a folder that has one is refused.
    pub resume: bool,
    pub device: Device,
    /// Stop, with a checkpoint, after this step (to split a run over sessions; `resume` continues it).
    pub stop_after: Option<u64>,
}

/// What the trainer reports after every step.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: u64,
    pub total: u64,
    /// Weighted sum of the loss terms at this step.
    pub loss: f64,
    pub lr: f64,
    pub steps_per_s: f64,
    /// The validation metric, on validation steps.
    pub validation: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Steps completed in total (this invocation and earlier ones).
    pub steps: u64,
    /// Why ESGF stopped the run early, if it did.
    pub stopped: Option<StopReason>,
    /// The exported model (absent when the run was paused by `stop_after`).
    pub model: Option<PathBuf>,
    /// The step whose snapshot was exported.
    pub exported_step: Option<u64>,
    /// Set when this invocation resumed a checkpoint whose validations were measured otherwise (other pairs,
    /// degradation or metric): ESGF's history was then started again at this step.
    pub esgf_restarted_at: Option<u64>,
}

/// The part of the state that is not tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    step: u64,
    esgf: EarlyStopping,
    /// What the validations in `esgf` were measured on ([`validation_key`]); absent in checkpoints made
    /// before it was recorded, which are taken as measured otherwise.
    #[serde(default)]
    validation: Option<String>,
}

/// Trains as `config` says, reporting each step to `on_step`.
pub fn train(config: &TrainConfig, options: &TrainOptions, mut on_step: impl FnMut(&StepReport)) -> Result<Outcome> {
    let mut trainer = Trainer::new(config, options)?;
    while !trainer.done() {
        let report = trainer.step()?;
        on_step(&report);
        let pause = options.stop_after == Some(report.step);
        // The last step's checkpoint is written once, by `finish` (ESGF may also end the run).
        if report.step.is_multiple_of(config.train.checkpoint_every) && report.step < report.total || pause {
            trainer.checkpoint()?;
        }
        if pause {
            let (steps, esgf_restarted_at) = (report.step, trainer.esgf_restarted_at);
            return Ok(Outcome { steps, stopped: None, model: None, exported_step: None, esgf_restarted_at });
        }
    }
    trainer.finish()
}

/// The discriminator of the adversarial term, its store and its optimizer.
struct Adversarial {
    disc: Discriminator,
    vs: nn::VarStore,
    optimizer: AdamW,
}

impl Adversarial {
    /// One optimizer step of the discriminator on photos (`real`) and the model's images of the same pairs.
    fn train_on(&mut self, real: &Tensor, fake: &Tensor, lr: f64) {
        self.optimizer.zero_grad();
        losses::discriminator_loss(&self.disc.forward(real), &self.disc.forward(fake)).backward();
        self.optimizer.step(lr);
    }
}

/// The fixed validation pairs.
struct Validation {
    /// LR upsampled to HR size, in [-1, 1].
    lr: Tensor,
    /// What the L1 metrics compare with, in [0, 1]: HR, or for `val_metric = "teacher_l1"` the first teacher's
    /// image of the LR crops (made once).
    target: Tensor,
    /// Each pair's photo's tags.
    tags: Vec<Option<String>>,
}

/// A run in progress: the model and everything that trains it, the data, and the log.
pub struct Trainer {
    config: TrainConfig,
    run_dir: PathBuf,
    device: Device,
    model: SrModel,
    vs: nn::VarStore,
    adapters: Option<Adapters>,
    /// The trainable variables by name (shallow copies of the store's).
    params: HashMap<String, Tensor>,
    optimizer: AdamW,
    ema: Ema,
    adversarial: Option<Adversarial>,
    /// Frozen, loaded from their files at every (re)start.
    teachers: Vec<Teacher>,
    state: RunState,
    loader: Loader,
    validation: Validation,
    /// The `[loss]` weights, and the indices of the terms that have weight (the logged ones).
    weights: [f64; 7],
    active: Vec<usize>,
    log: LogWriter,
    /// Sums of the logged losses since the last log row, and when and at which step that window began.
    sums: Vec<f64>,
    window_start: (Instant, u64),
    /// The step at which this invocation restarted ESGF's history (see [`Outcome::esgf_restarted_at`]).
    esgf_restarted_at: Option<u64>,
}

impl Trainer {
    /// Sets the run up in `options.run_dir`: a new run, or with `options.resume` the run its checkpoint holds.
    pub fn new(config: &TrainConfig, options: &TrainOptions) -> Result<Self> {
        if config.train.threads > 0 {
            sana_sr_core::set_num_threads(config.train.threads as i32);
        }
        manual_seed(config.train.seed as i64);
        let checkpoint_path = options.run_dir.join(CHECKPOINT_FILE);
        if checkpoint_path.exists() && !options.resume {
            return Err(TrainError::Setup(format!(
                "{} holds a run already: pass --resume to continue it, or choose another folder",
                options.run_dir.display()
            )));
        }
        if options.resume && !checkpoint_path.exists() {
            return Err(TrainError::Setup(format!("nothing to resume: {} does not exist", checkpoint_path.display())));
        }
        let degradation = read_degradation(&config.data.degradation)?;
        let scale = degradation.config().scale as usize;
        let val_degradation = match &config.data.val_degradation {
            Some(path) => read_degradation(path)?,
            None => degradation.clone(),
        };
        if val_degradation.config().scale as usize != scale {
            return Err(TrainError::Setup(format!(
                "[data] val_degradation downscales by {}, the training degradation by {scale}: they must agree",
                val_degradation.config().scale
            )));
        }

        let (model, vs, adapters) = build_model(config, options.device)?;
        if model.config.lr_skip && (config.loss.flow_matching > 0.0 || config.loss.autoencoder > 0.0) {
            return Err(TrainError::Setup(format!(
                "[loss] flow_matching and autoencoder take the HR photo's latent as what the decoder turns into the \
                 photo, but model `{}` has `lr_skip`: its decoder adds detail to the resized LR image, which depends on \
                 the degradation that the HR latent does not carry; use a model that decodes whole images",
                model.config.name
            )));
        }
        if let Some(k) = config.train.expert {
            expert_interval(&model, k)?;
        }
        sana_sr_core::device::autotune_convolutions(options.device);
        let params = select_trainable(config, &model, &vs, adapters.is_some())?;
        let mut optimizer =
            AdamW::new(params.iter().map(|(k, v)| (k.clone(), v.shallow_clone())), config.optimizer.clone());
        let mut ema = Ema::new(&params, config.train.ema_decay);
        let mut adversarial = (config.loss.adversarial > 0.0).then(|| {
            let vs = nn::VarStore::new(options.device);
            let disc = Discriminator::new(vs.root() / "disc", config.discriminator.kind, config.discriminator.width);
            // Its trainable weights: a U-Net's power-iteration vectors are saved with it but not trained.
            let weights = vs.variables().into_iter().filter(|(_, t)| t.requires_grad());
            let optimizer = AdamW::new(weights, crate::optim::AdamWConfig { weight_decay: 0.0, ..Default::default() });
            Adversarial { disc, vs, optimizer }
        });
        // After every random initialisation of the run's own networks: loading a teacher draws from the
        // generator too (it builds its networks before it reads their weights).
        let teachers = config
            .teachers
            .iter()
            .map(|t| Teacher::load(t, scale as u32, options.device))
            .collect::<Result<Vec<_>>>()?;

        let validation_key = validation_key(config, val_degradation.config());
        let mut state = RunState { step: 0, esgf: EarlyStopping::new(config.esgf.clone())?, validation: None };
        let mut esgf_restarted_at = None;
        if options.resume {
            state = restore(&checkpoint_path, &vs, &mut optimizer, &mut ema, adversarial.as_mut())?;
            // The config's ESGF settings judge the history, as if the run had had them from the start; values
            // measured on other pairs or by another metric do not compare with new ones, so they are dropped.
            if state.validation.as_ref() == Some(&validation_key) {
                state.esgf = state.esgf.replayed(config.esgf.clone())?;
            } else {
                state.esgf = EarlyStopping::new(config.esgf.clone())?;
                esgf_restarted_at = Some(state.step);
            }
        }
        state.validation = Some(validation_key);

        let (train_paths, val_paths) = split_pool(&config.data.hr, config.data.val_images)?;
        check_crop(config.data.crop, &model.config, scale)?;
        check_crop(config.data.val_crop.unwrap_or(config.data.crop), &model.config, scale)?;
        let val_teacher = teachers.first().filter(|_| config.train.val_metric == ValMetric::TeacherL1);
        let validation = validation_pairs(config, &model, val_paths, val_degradation, options.device, val_teacher)?;
        let loader_config = LoaderConfig {
            gt_size: config.data.crop,
            batch_size: config.data.batch,
            num_workers: config.data.workers,
            seed: config.train.seed,
            start_index: state.step * config.data.batch as u64,
            crop_tries: config.data.crop_tries,
            device: options.device,
            ..LoaderConfig::default()
        };
        let loader = Loader::new(train_paths, degradation, loader_config)?;

        let weights = config.loss.weights();
        let active: Vec<usize> = (0..TERMS.len()).filter(|&i| weights[i] > 0.0).collect();
        let hr_columns = active.iter().map(|&i| TERMS[i].to_string());
        let teacher_columns = teachers.iter().flat_map(Teacher::columns);
        let columns = LogColumns {
            losses: hr_columns.chain(teacher_columns).chain(["loss".to_string()]).collect(),
            metric: config.train.val_metric.column().to_string(),
        };
        let sums = vec![0.0; columns.losses.len()];
        std::fs::create_dir_all(options.run_dir.join("snapshots"))
            .map_err(|e| TrainError::Setup(format!("cannot create {}: {e}", options.run_dir.display())))?;
        let log_path = options.run_dir.join(LOG_FILE);
        let log = if options.resume {
            LogWriter::resume(&log_path, columns, state.step)?
        } else {
            // No checkpoint (checked above): a log here is of a run stopped before it saved anything to
            // resume, which this fresh start takes over.
            if log_path.exists() {
                std::fs::remove_file(&log_path)
                    .map_err(|e| TrainError::Setup(format!("cannot replace {}: {e}", log_path.display())))?;
            }
            LogWriter::create(&log_path, columns)?
        };
        let window_start = (Instant::now(), state.step);
        Ok(Self {
            config: config.clone(),
            run_dir: options.run_dir.clone(),
            device: options.device,
            model,
            vs,
            adapters,
            params,
            optimizer,
            ema,
            adversarial,
            teachers,
            state,
            loader,
            validation,
            weights,
            active,
            log,
            sums,
            window_start,
            esgf_restarted_at,
        })
    }

    /// Whether the run is over: all steps done, or stopped by ESGF.
    pub fn done(&self) -> bool {
        self.state.step >= self.config.train.steps || self.state.esgf.stopped().is_some()
    }

    /// One optimizer step on the next batch (and the discriminator's), then, when due, a validation (with its
    /// snapshot) and a log row.
    pub fn step(&mut self) -> Result<StepReport> {
        let config = &self.config;
        let batch = self.loader.next().expect("the loader never ends")?;
        let lr_rate = config.schedule.lr(self.state.step);
        let (lr, hr) = (upsampled(&self.model, &batch.lr, &batch.hr), &batch.hr * 2.0 - 1.0);
        // A model with a text encoder reads each photo's tags (encoded once per prompt, the encoder frozen).
        let conditioning = self.model.batch_conditioning(&batch.tags)?;

        // The rows the adversarial term scores, once it has started: none without a discriminator.
        let adversarial_rows = match (&self.adversarial, self.state.step >= config.discriminator.start_step) {
            (Some(_), true) => adversarial_rows(&batch.clean, config.discriminator.clean_pairs, self.device),
            _ => None,
        };
        let adversarial = self.adversarial.as_ref().zip(adversarial_rows.as_ref());
        // While the discriminator warms up the model does not train: its terms are computed for the log only.
        let model_trains = self.state.step >= config.discriminator.warmup_steps;
        // `terms`: every logged term with its weight, `[loss]`'s then the teachers'.
        let forward = || {
            with_compute_kind(config.train.precision.compute_kind(), || -> Result<_> {
                // The whole pipeline's output, for the terms on the image only: a flow-matching stage that has none
                // skips its decoder pass.
                let sr = match config.loss.on_output() || !self.teachers.is_empty() {
                    true => Some(self.model.forward_with(&lr, &conditioning)?.to_kind(Kind::Float)),
                    false => None,
                };
                let flow = FlowDraw::new(config, &self.model, self.state.step)?;
                let inputs = StepInputs { hr: &hr, lr: &lr, conditioning: &conditioning };
                let all = loss_terms(config, &self.model, &inputs, sr.as_ref(), adversarial, &flow)?;
                let mut terms: Vec<(Tensor, f64)> =
                    self.active.iter().map(|&i| (all[i].shallow_clone(), self.weights[i])).collect();
                // Each teacher on the same LR batch, recomputed every step: a training pair is drawn only once.
                for teacher in &self.teachers {
                    let sr = sr.as_ref().expect("teachers make the output needed");
                    terms.extend(teacher.terms(sr, &teacher.target(&batch)?));
                }
                Ok((sr, terms))
            })
        };
        let (sr, terms) = if model_trains { forward()? } else { no_grad(forward)? };
        let loss = terms.iter().map(|(t, w)| t * *w).fold(Tensor::zeros([], (Kind::Float, self.device)), |a, b| a + b);
        let discriminator_lr = config.discriminator.lr;
        if model_trains {
            self.update_model(&loss, lr_rate);
        }
        if let (Some(adversarial), Some(sr), Some(rows)) = (self.adversarial.as_mut(), &sr, &adversarial_rows) {
            adversarial.train_on(&hr.index_select(0, rows), &sr.detach().index_select(0, rows), discriminator_lr);
        }
        self.state.step += 1;

        let loss_value = loss.double_value(&[]);
        for (sum, (term, _)) in self.sums.iter_mut().zip(&terms) {
            *sum += term.double_value(&[]);
        }
        *self.sums.last_mut().expect("the total is logged") += loss_value;
        let validation = self.validate_when_due()?;
        let steps_per_s = self.log_when_due(lr_rate, validation)?;
        let (step, total) = (self.state.step, self.config.train.steps);
        Ok(StepReport { step, total, loss: loss_value, lr: lr_rate, steps_per_s, validation })
    }

    /// The model's optimizer step on `loss`, and its EMA.
    fn update_model(&mut self, loss: &Tensor, lr: f64) {
        self.optimizer.zero_grad();
        loss.backward();
        if self.config.train.grad_clip > 0.0 {
            self.optimizer.clip_grad_norm(self.config.train.grad_clip);
        }
        self.optimizer.step(lr);
        self.ema.update(&self.params);
    }

    /// At ESGF's validation steps and the last one: the validation, its snapshot, and ESGF's verdict.
    fn validate_when_due(&mut self) -> Result<Option<f64>> {
        let step = self.state.step;
        if !(self.config.esgf.is_validation_step(step) || step == self.config.train.steps) {
            return Ok(None);
        }
        let value = self.validate()?;
        // Every validated step keeps its EMA model: the knee is only known after the fact.
        self.save_snapshot()?;
        // A stop shows in `state.esgf.stopped()`, which ends the run.
        self.state.esgf.observe(step, value)?;
        Ok(Some(value))
    }

    /// Every `log_every` steps, at validations and at the end: a log row of the losses averaged since the last
    /// one. Returns the steps per second since then.
    fn log_when_due(&mut self, lr: f64, validation: Option<f64>) -> Result<f64> {
        let step = self.state.step;
        let elapsed = self.window_start.0.elapsed().as_secs_f64();
        let steps_per_s = (step - self.window_start.1) as f64 / elapsed.max(1e-9);
        if step.is_multiple_of(self.config.train.log_every) || validation.is_some() || step == self.config.train.steps {
            let n = (step - self.window_start.1) as f64;
            let losses = self.sums.iter().map(|s| s / n).collect();
            self.log.append(&LogRow { step, lr, losses, metric: validation, steps_per_s })?;
            self.sums.iter_mut().for_each(|s| *s = 0.0);
            self.window_start = (Instant::now(), step);
        }
        Ok(steps_per_s)
    }

    /// Redraws the curves, so that a run paused or killed later has its picture up to here, then writes the
    /// resumable state (atomically).
    pub fn checkpoint(&self) -> Result<()> {
        TrainingLog::read(&self.run_dir.join(LOG_FILE))?.plot(
            &self.run_dir.join(PLOT_FILE),
            self.chosen(),
            (1200, 800),
        )?;
        save_checkpoint(
            &self.run_dir.join(CHECKPOINT_FILE),
            &self.vs,
            &self.optimizer,
            &self.ema,
            self.adversarial.as_ref(),
            &self.state,
        )
    }

    /// ESGF's choice so far: the knee of the validation curve; before a knee exists, the best validation.
    fn chosen(&self) -> Option<u64> {
        self.state.esgf.knee().or_else(|| self.state.esgf.best()).map(|e| e.step)
    }

    /// Ends the run: the last checkpoint and curves, and ESGF's snapshot exported as the model.
    pub fn finish(self) -> Result<Outcome> {
        self.checkpoint()?;
        let chosen = self.chosen();
        let exported = self.run_dir.join(MODEL_FILE);
        if let Some(step) = chosen {
            export(&self.model, &self.vs, self.adapters.as_ref(), &self.run_dir, step, &exported)?;
        }
        Ok(Outcome {
            steps: self.state.step,
            stopped: self.state.esgf.stopped(),
            model: chosen.map(|_| exported),
            exported_step: chosen,
            esgf_restarted_at: self.esgf_restarted_at,
        })
    }

    /// The validation metric of the EMA model on the held-out pairs.
    fn validate(&self) -> Result<f64> {
        let (config, model, val) = (&self.config, &self.model, &self.validation);
        with_ema(&self.ema, &self.params, || {
            no_grad(|| {
                let n = val.lr.size()[0];
                let batch = config.data.batch as i64;
                let mut total = 0.0;
                for start in (0..n).step_by(batch as usize) {
                    let len = (n - start).min(batch);
                    let tags = &val.tags[start as usize..(start + len) as usize];
                    let sr = model.forward_with(&val.lr.narrow(0, start, len), &model.batch_conditioning(tags)?)?;
                    let sr = ((sr + 1.0) / 2.0).clamp(0.0, 1.0);
                    total += match config.train.val_metric {
                        ValMetric::L1 | ValMetric::TeacherL1 => {
                            (sr - val.target.narrow(0, start, len)).abs().sum(Kind::Double).double_value(&[])
                        }
                        ValMetric::Niqe => (0..len).map(|i| niqe_of(&sr.get(i))).sum::<Result<f64>>()?,
                    };
                }
                Ok(match config.train.val_metric {
                    ValMetric::L1 | ValMetric::TeacherL1 => total / val.target.numel() as f64,
                    ValMetric::Niqe => total / n as f64,
                })
            })
        })
    }

    /// The EMA weights at this step: a whole model file, or the adapters alone in a LoRA run.
    fn save_snapshot(&self) -> Result<()> {
        let path = snapshot_path(&self.run_dir, self.state.step, self.adapters.is_some());
        with_ema(&self.ema, &self.params, || -> Result<()> {
            if self.adapters.is_some() {
                lora::save_adapters(&self.vs, &path, Kind::Float)?;
            } else {
                self.model.save(&self.vs, &path, Kind::Float)?;
            }
            Ok(())
        })
    }
}

/// The model to train and its store; with `[lora]`, the adapters attached to it.
fn build_model(config: &TrainConfig, device: Device) -> Result<(SrModel, nn::VarStore, Option<Adapters>)> {
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
fn take_matching_weights(vs: &nn::VarStore, source: &str, device: Device) -> Result<()> {
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
fn knee_snapshot(run_dir: &Path) -> Result<PathBuf> {
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
fn select_trainable(
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
fn split_pool(folders: &[PathBuf], val_images: usize) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
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

fn check_crop(crop: usize, model: &SrModelConfig, scale: usize) -> Result<()> {
    let token = model.pixels_per_token() as usize;
    if !crop.is_multiple_of(token) || !crop.is_multiple_of(scale) {
        return Err(TrainError::Setup(format!(
            "crop {crop} must be a multiple of the model's token size ({token} px) and of the scale ({scale})"
        )));
    }
    Ok(())
}

/// A degradation config file, read and checked.
fn read_degradation(path: &Path) -> Result<Degradation> {
    let config = RealEsrganConfig::from_toml_file(path).map_err(|e| TrainError::Setup(e.to_string()))?;
    Degradation::new(config).map_err(|e| TrainError::Setup(e.to_string()))
}

/// Everything the validation values depend on besides the model: the held-out photos, the pairs made of
/// them, the metric and, for `teacher_l1`, the teacher.
fn validation_key(config: &TrainConfig, degradation: &RealEsrganConfig) -> String {
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
fn validation_pairs(
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
fn upsampled(model: &SrModel, lr: &Tensor, hr: &Tensor) -> Tensor {
    let size = hr.size();
    model.resize_input(lr, size[2], size[3]) * 2.0 - 1.0
}

/// The noise level and the noise seed of one step's flow-matching term, drawn from the run's seed and the step
/// alone (ChaCha8, one stream per step), so that a resumed run draws what the unbroken one did. The noise
/// level is uniform over `[train] expert`'s interval, or over [0, 1) when every expert trains.
struct FlowDraw {
    sigma: f64,
    noise_seed: u64,
}

impl FlowDraw {
    fn new(config: &TrainConfig, model: &SrModel, step: u64) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        let (low, high) = match config.train.expert {
            None => (0.0, 1.0),
            Some(k) => expert_interval(model, k)?,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.train.seed);
        rng.set_stream(step);
        let sigma = low + (high - low) * rng.gen::<f64>();
        Ok(Self { sigma, noise_seed: rng.gen() })
    }
}

/// The noise levels of expert `k` of `model`, or an error naming what is wrong.
fn expert_interval(model: &SrModel, k: usize) -> Result<(f64, f64)> {
    let intervals = model.router.as_ref().map(|r| r.intervals()).unwrap_or_default();
    intervals.get(k).copied().ok_or_else(|| {
        TrainError::Setup(format!(
            "[train] expert = {k}, but model `{}` has {} expert(s)",
            model.config.name,
            intervals.len()
        ))
    })
}

/// Flow matching on the HR latent `x0`: noised to the drawn level (`x_t = (1 - sigma) x0 + sigma noise`), with
/// the LR stem's features when the model has a stem, the routed DiT's velocity against `noise - x0`.
fn flow_matching(
    model: &SrModel,
    conditioning: &Conditioning,
    x0: &Tensor,
    lr: &Tensor,
    draw: &FlowDraw,
) -> Result<Tensor> {
    let noise = seeded_noise(&x0.size(), draw.noise_seed).to_kind(x0.kind()).to_device(x0.device());
    let x_t = scheduler::add_noise(x0, &noise, draw.sigma);
    let input = match &model.lr_stem {
        Some(stem) => Tensor::cat(&[x_t, stem.forward(lr)], 1),
        None => x_t,
    };
    let velocity =
        model.velocity_with(&input, draw.sigma * scheduler::NUM_TRAIN_TIMESTEPS, draw.sigma, conditioning)?;
    Ok(losses::l2(&velocity, &scheduler::velocity(x0, &noise)))
}

/// What one step's loss terms read of its batch.
struct StepInputs<'a> {
    /// HR in [-1, 1].
    hr: &'a Tensor,
    /// LR resized to the HR size, in [-1, 1].
    lr: &'a Tensor,
    /// The DiT's condition for each pair.
    conditioning: &'a Conditioning,
}

/// The rows of a batch that the adversarial term sees: every pair, or with `clean_pairs` false only the
/// degraded ones; `None` when that leaves none (the term is then 0 and the discriminator rests).
fn adversarial_rows(clean: &[bool], clean_pairs: bool, device: Device) -> Option<Tensor> {
    let rows: Vec<i64> = (0..clean.len() as i64).filter(|&i| clean_pairs || !clean[i as usize]).collect();
    (!rows.is_empty()).then(|| Tensor::from_slice(&rows).to_device(device))
}

/// Every loss term (in the order of [`TERMS`]), the inactive ones as zeros. `sr` is the pipeline's output,
/// present when a term on the image is weighted; `adversarial` comes with the rows it scores.
fn loss_terms(
    config: &TrainConfig,
    model: &SrModel,
    inputs: &StepInputs,
    sr: Option<&Tensor>,
    adversarial: Option<(&Adversarial, &Tensor)>,
    flow: &FlowDraw,
) -> Result<Vec<Tensor>> {
    let StepInputs { hr, lr, conditioning } = *inputs;
    let zero = || Tensor::zeros([], (Kind::Float, hr.device()));
    let w = &config.loss;
    // The HR latent, encoded once for the terms that take it: with its gradient for the autoencoder's
    // reconstruction, detached as the latent and velocity targets.
    let hr_latent = match (w.autoencoder > 0.0, w.latent_mse > 0.0 || w.flow_matching > 0.0) {
        (true, _) => Some(model.encode(hr)?),
        (false, true) => Some(no_grad(|| model.encode(hr))?),
        (false, false) => None,
    };
    let target = || hr_latent.as_ref().expect("encoded for the terms that take it").detach();
    let latent = if w.latent_mse > 0.0 {
        let start = model.with_start_noise(model.encode_lr(lr)?, 0);
        losses::l2(&model.sample_with(&start, model.config.sampler.steps, conditioning)?, &target())
    } else {
        zero()
    };
    let on_image = |term: fn(&Tensor, &Tensor) -> Tensor, weight: f64| match sr {
        Some(sr) if weight > 0.0 => term(sr, hr),
        _ => zero(),
    };
    let adv = match (adversarial, sr) {
        (Some((a, rows)), Some(sr)) if w.adversarial > 0.0 => {
            losses::generator_adversarial(&a.disc.forward(&sr.index_select(0, rows)))
        }
        _ => zero(),
    };
    Ok(vec![
        on_image(losses::l1, w.pixel_l1),
        on_image(losses::l2, w.pixel_l2),
        on_image(losses::edge, w.edge),
        latent,
        adv,
        if w.flow_matching > 0.0 { flow_matching(model, conditioning, &target(), lr, flow)? } else { zero() },
        match (&hr_latent, w.autoencoder > 0.0) {
            (Some(latent), true) => losses::l1(&model.decode(latent)?, hr),
            _ => zero(),
        },
    ])
}

/// Runs `f` with the EMA weights in the model, then puts the trained weights back.
fn with_ema<T>(ema: &Ema, params: &HashMap<String, Tensor>, f: impl FnOnce() -> T) -> T {
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
fn niqe_of(image: &Tensor) -> Result<f64> {
    let image = to_image(image).map_err(|e| TrainError::Setup(e.to_string()))?;
    sana_sr_metrics::niqe(&image.to_8bit(), 0).map_err(|e| TrainError::Setup(format!("validation NIQE: {e}")))
}

fn snapshot_path(run_dir: &Path, step: u64, lora: bool) -> PathBuf {
    let kind = if lora { "lora" } else { "model" };
    run_dir.join("snapshots").join(format!("step_{step:07}.{kind}.safetensors"))
}

/// Writes the model of snapshot `step` to `out` in f16, the shipping format: the snapshot's weights, or in
/// a LoRA run the base weights with the snapshot's adapters merged in.
fn export(
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

fn save_checkpoint(
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

fn restore(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Precision;
    use sana_sr_model::esrgan::{EsrganConfig, SrVggNetCompactConfig};
    use sana_sr_pipeline::{EsrganModel, EsrganModelConfig, Network};

    /// A pool of six small textured photos, a tiny random SANA-SR model file `student.safetensors` and a tiny
    /// random SRVGGNetCompact peer file `peer.safetensors` (x4) in `dir`; the config of a run fine-tuning the
    /// student with the `[[teacher]]` tables `teachers`.
    fn tiny_run(dir: &Path, teachers: &str) -> TrainConfig {
        crate::testing::write_textured_pool(dir, 120, 112);
        write_student(dir, &crate::testing::tiny_model_config("student"));
        write_peer(&dir.join("peer.safetensors"), 4);
        let degradation = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/configs/realesrgan_x4plus.toml");
        let text = format!(
            r#"
[model]
from = "{dir}/student.safetensors"
[data]
hr = ["{dir}/pool"]
degradation = "{degradation}"
crop = 96
batch = 2
workers = 1
val_images = 1
val_pairs = 2
[train]
steps = 4
trainable = "all"
seed = 3
ema_decay = 0.9
checkpoint_every = 2
log_every = 1
threads = 1
[schedule]
base_lr = 1e-3
warmup_steps = 1
total_steps = 4
[loss]
pixel_l1 = 1.0
{teachers}
"#,
            dir = dir.display(),
            degradation = degradation.display()
        );
        let config: TrainConfig = toml::from_str(&text).unwrap();
        config
    }

    /// [`tiny_run`] for the terms on the HR latent, weighted as `loss` says: its student decodes whole images
    /// (no `lr_skip`).
    fn tiny_latent_run(dir: &Path, loss: &str) -> TrainConfig {
        let mut config = tiny_run(dir, "");
        let mut model = crate::testing::tiny_model_config("student");
        model.lr_skip = false;
        write_student(dir, &model);
        config.loss = serde_json::from_str(loss).unwrap();
        config
    }

    /// A new random model of `config` as `dir/student.safetensors`, the model [`tiny_run`] trains.
    fn write_student(dir: &Path, config: &SrModelConfig) {
        let vs = nn::VarStore::new(Device::Cpu);
        SrModel::build(vs.root(), config).unwrap().save(&vs, &dir.join("student.safetensors"), Kind::Float).unwrap();
    }

    /// A random SRVGGNetCompact upscaling by `scale`, as a model file.
    fn write_peer(path: &Path, scale: i64) {
        let network = EsrganConfig::SrvggnetCompact(SrVggNetCompactConfig {
            num_feat: 4,
            num_conv: 2,
            upscale: scale,
            ..Default::default()
        });
        let config = EsrganModelConfig { name: "peer".into(), description: String::new(), network };
        let vs = nn::VarStore::new(Device::Cpu);
        let peer = Network::Esrgan(EsrganModel::build(vs.root(), &config).unwrap());
        peer.save(&vs, path, Kind::Float).unwrap();
    }

    fn options(dir: &Path) -> TrainOptions {
        TrainOptions { run_dir: dir.join("run"), resume: false, device: Device::Cpu, stop_after: None }
    }

    /// Copies of every variable of a store, to tell later which ones a step moved.
    struct Snapshot(Vec<(String, Tensor)>);

    impl Snapshot {
        fn of(vs: &nn::VarStore) -> Self {
            Self(vs.variables().into_iter().map(|(k, t)| (k, t.detach().copy())).collect())
        }

        /// Whether any variable under `prefix` differs in `vs` now.
        fn changed(&self, vs: &nn::VarStore, prefix: &str) -> bool {
            self.changed_where(vs, |name| name.starts_with(prefix))
        }

        /// Whether any variable whose name `select` accepts differs in `vs` now.
        fn changed_where(&self, vs: &nn::VarStore, select: impl Fn(&str) -> bool) -> bool {
            let now = vs.variables();
            self.0.iter().filter(|(k, _)| select(k)).any(|(k, old)| !now[k].equal(old))
        }
    }

    fn copies(tensors: &[(String, Tensor)]) -> Vec<Tensor> {
        tensors.iter().map(|(_, t)| t.detach().copy()).collect()
    }

    /// Stage 1 of a staged training as it lies on disk in `run`: a checkpoint whose validations bend at step
    /// 4, and that step's snapshot, the student of `dir`.
    fn write_stage_one(dir: &Path, run: &Path) {
        let (model, vs) = SrModel::load(&dir.join("student.safetensors"), Device::Cpu).unwrap();
        std::fs::create_dir_all(run.join("snapshots")).unwrap();
        model.save(&vs, &snapshot_path(run, 4, false), Kind::Float).unwrap();
        let mut esgf = EarlyStopping::new(crate::esgf::EsgfConfig { every_steps: 1, ..Default::default() }).unwrap();
        for (step, value) in [(1, 10.0), (2, 8.0), (3, 6.0), (4, 4.0), (5, 3.9), (6, 3.8)] {
            esgf.observe(step, value).unwrap();
        }
        assert_eq!(esgf.knee().unwrap().step, 4, "a piecewise-linear curve bends at its break");
        let state = serde_json::to_string(&RunState { step: 6, esgf, validation: None }).unwrap();
        let metadata = HashMap::from([(STATE_METADATA_KEY.to_string(), state)]);
        let named = HashMap::from([("model.condition".to_string(), model.condition.as_ref().unwrap().detach().copy())]);
        checkpoint::save_variables(named, &run.join(CHECKPOINT_FILE), Kind::Float, metadata).unwrap();
    }

    /// An expert stage in `dir`: expert 1 of `experts` trained alone by flow matching, from the knee of
    /// [`write_stage_one`]'s run, which is returned too.
    fn expert_stage(dir: &Path, experts: &str) -> (TrainConfig, PathBuf) {
        let mut config = tiny_latent_run(dir, r#"{"pixel_l1": 0.0, "flow_matching": 1.0}"#);
        let stage1 = dir.join("stage1");
        write_stage_one(dir, &stage1);
        config.model.from = None;
        config.model.knee_of = Some(stage1.clone());
        config.model.experts = Some(serde_json::from_str(experts).unwrap());
        config.train.expert = Some(1);
        (config, stage1)
    }

    #[test]
    fn an_expert_stage_starts_from_the_knee_before_it_and_trains_its_expert_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (config, stage1) = expert_stage(dir.path(), r#"{"kind": "full", "boundaries": [0.5]}"#);
        let mut trainer = Trainer::new(&config, &options(dir.path())).unwrap();

        // Both experts start as the knee snapshot's DiT.
        let (knee, knee_vs) = SrModel::load(&snapshot_path(&stage1, 4, false), Device::Cpu).unwrap();
        let base = knee_vs.variables();
        let variables = trainer.vs.variables();
        let key = "transformer_blocks.0.attn1.to_q.weight";
        for k in 0..2 {
            assert!(variables[&format!("experts.{k}.{key}")].equal(&base[&format!("transformer.{key}")]));
        }
        assert_eq!(knee.config.experts, None);
        // Expert 1 (sigma below 0.5) trains; expert 0 is frozen.
        assert!(trainer.params.keys().any(|k| k.starts_with("experts.1.")));
        assert!(!trainer.params.keys().any(|k| k.starts_with("experts.0.")));
        let draws: Vec<f64> = (0..20).map(|step| FlowDraw::new(&config, &trainer.model, step).unwrap().sigma).collect();
        assert!(draws.iter().all(|s| (0.0..0.5).contains(s)), "{draws:?}");
        // A draw depends on the run's seed and the step alone: other steps and other seeds draw otherwise.
        let draw = |config: &TrainConfig, step| FlowDraw::new(config, &trainer.model, step).unwrap();
        assert_ne!(draw(&config, 7).noise_seed, draw(&config, 8).noise_seed);
        let mut reseeded = config.clone();
        reseeded.train.seed += 1;
        assert_ne!(draw(&config, 7).sigma, draw(&reseeded, 7).sigma);
        let before = Snapshot::of(&trainer.vs);
        trainer.step().unwrap();
        let changed = |prefix: &str| before.changed(&trainer.vs, prefix);
        assert!(changed("experts.1.") && !changed("experts.0.") && !changed("vae."));
        let log = std::fs::read_to_string(dir.path().join("run/log.csv")).unwrap();
        assert!(log.lines().next().unwrap().starts_with("step,lr,loss_flow,loss,"), "{log}");
    }

    /// [`tiny_run`] whose student has a text encoder: the tiny Gemma-2 and tokenizer of the model crate's
    /// fixtures, prompts of 12 tokens, `{tags}, sharp`.
    fn tiny_text_run(dir: &Path) -> TrainConfig {
        use sana_sr_model::checkpoint::Pretrained;
        use sana_sr_model::text::Gemma2Model;
        let config = tiny_run(dir, "");
        let gemma = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/gemma2");
        let tokenizer = std::fs::read_to_string(gemma.join("tokenizer/tokenizer.json")).unwrap();
        let mut model = crate::testing::tiny_model_config("student");
        model.transformer.caption_channels = 32;
        model.condition_tokens = 12;
        model.text = Some(sana_sr_pipeline::condition::TextConfig {
            template: "{tags}, sharp".into(),
            untagged: "sharp".into(),
            max_length: 12,
            lowercase: false,
            instruction: None,
            pad_token: "<pad>".into(),
            tokenizer: serde_json::from_str(&tokenizer).unwrap(),
            encoder: checkpoint::read_config(&gemma.join("sliding_gqa")).unwrap(),
        });
        let vs = nn::VarStore::new(Device::Cpu);
        let student = SrModel::build(vs.root(), &model).unwrap();
        let (_, encoder) = Gemma2Model::from_pretrained(&gemma.join("sliding_gqa"), Device::Cpu).unwrap();
        let variables = vs.variables();
        no_grad(|| {
            for (name, value) in encoder.variables() {
                variables[&format!("text_encoder.{name}")].shallow_clone().copy_(&value);
            }
        });
        student.save(&vs, &dir.join("student.safetensors"), Kind::Float).unwrap();
        config
    }

    #[test]
    fn a_model_with_a_text_encoder_trains_on_its_photos_tags_and_keeps_the_encoder_frozen() {
        // Two steps of the same run (one student file, so the same start), without and with the photos' tag
        // sidecars. The losses tell the two apart, not the weights: Adam's first update is the gradient's sign
        // times the rate, which tags that only scale a gradient leave as it is.
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_text_run(dir.path());
        let losses = |run: &str| {
            let options = TrainOptions { run_dir: dir.path().join(run), ..options(dir.path()) };
            let mut trainer = Trainer::new(&config, &options).unwrap();
            assert!(!trainer.params.keys().any(|k| k.starts_with("text_encoder.")), "trainable = all, yet not Gemma");
            let before = Snapshot::of(&trainer.vs);
            let losses = [trainer.step().unwrap().loss, trainer.step().unwrap().loss];
            assert!(before.changed(&trainer.vs, "transformer.") && !before.changed(&trainer.vs, "text_encoder."));
            losses
        };
        let untagged = losses("untagged");
        assert_eq!(untagged, losses("untagged-again"), "the run repeats exactly");
        for (i, tags) in ["building, sign", "tree", "sky, cloud", "text", "", "dog"].iter().enumerate() {
            std::fs::write(dir.path().join(format!("pool/{i}.txt")), tags).unwrap();
        }
        let tagged = losses("tagged");
        assert_ne!(tagged, untagged, "the photos' tags reach the DiT");
    }

    #[test]
    fn the_autoencoder_term_trains_the_autoencoder_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_latent_run(dir.path(), r#"{"pixel_l1": 0.0, "autoencoder": 1.0}"#);
        // No weight decay, so that only a gradient moves a weight.
        config.optimizer.weight_decay = 0.0;
        let mut trainer = Trainer::new(&config, &options(dir.path())).unwrap();
        let before = Snapshot::of(&trainer.vs);
        trainer.step().unwrap();
        let report = trainer.step().unwrap();
        let changed = |prefix: &str| before.changed(&trainer.vs, prefix);
        assert!(changed("vae.encoder.") && changed("vae.decoder.") && !changed("transformer."));
        assert!(report.loss > 0.0);
        let log = std::fs::read_to_string(dir.path().join("run/log.csv")).unwrap();
        assert!(log.lines().next().unwrap().starts_with("step,lr,loss_ae,loss,"), "{log}");
    }

    #[test]
    fn a_new_model_takes_the_weights_that_fit_from_another() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_run(dir.path(), "");
        // The student with a third DiT block: the autoencoder and the first two blocks fit, the third does not.
        let mut deeper = crate::testing::tiny_model_config("deeper");
        deeper.transformer.num_layers = 3;
        let path = dir.path().join("deeper.model.json");
        std::fs::write(&path, serde_json::to_string(&deeper).unwrap()).unwrap();
        config.model.from = None;
        config.model.config = Some(path);
        config.model.weights_from = Some(dir.path().join("student.safetensors").display().to_string());
        let trainer = Trainer::new(&config, &options(dir.path())).unwrap();
        let (_, student_vs) = SrModel::load(&dir.path().join("student.safetensors"), Device::Cpu).unwrap();
        let (student, new) = (student_vs.variables(), trainer.vs.variables());
        let taken = new.iter().filter(|(name, var)| student.get(*name).is_some_and(|s| s.equal(var))).count();
        let fitting = new.keys().filter(|name| student.contains_key(*name)).count();
        assert_eq!(taken, fitting, "every variable that fits is taken");
        assert!(new.keys().any(|name| name.starts_with("transformer.transformer_blocks.2.")));

        // A peer network is not a SANA-SR model: refused by name.
        config.model.weights_from = Some(dir.path().join("peer.safetensors").display().to_string());
        let err = Trainer::new(&config, &options(&dir.path().join("other"))).err().expect("a peer").to_string();
        assert!(err.contains("holds SRVGGNetCompact, a peer network"), "{err}");
    }

    #[test]
    fn a_lora_expert_stage_trains_its_adapters_alone_on_the_shared_dit() {
        let dir = tempfile::tempdir().unwrap();
        let experts = r#"{"kind": "lora", "lora": {"rank": 2, "alpha": 2}, "boundaries": [0.5]}"#;
        let (config, stage1) = expert_stage(dir.path(), experts);
        let mut trainer = Trainer::new(&config, &options(dir.path())).unwrap();

        // The shared DiT is the knee snapshot's and stays frozen; expert 1's adapters alone train.
        let (_, knee_vs) = SrModel::load(&snapshot_path(&stage1, 4, false), Device::Cpu).unwrap();
        let key = "transformer.transformer_blocks.0.attn1.to_q.weight";
        assert!(trainer.vs.variables()[key].equal(&knee_vs.variables()[key]));
        let expert = |name: &str| lora::expert_of_variable(name);
        assert!(trainer.params.keys().any(|k| expert(k) == Some(1)));
        assert!(trainer.params.keys().all(|k| expert(k) == Some(1) || !k.starts_with("transformer.")));
        let before = Snapshot::of(&trainer.vs);
        trainer.step().unwrap();
        assert!(before.changed_where(&trainer.vs, |n| expert(n) == Some(1)));
        assert!(!before.changed_where(&trainer.vs, |n| expert(n) == Some(0)));
        assert!(!before.changed_where(&trainer.vs, |n| n.starts_with("transformer.") && expert(n).is_none()));
    }

    #[test]
    fn a_stage_refuses_a_run_without_a_knee_and_an_expert_the_model_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_run(dir.path(), "");
        config.train.expert = Some(0);
        let err = Trainer::new(&config, &options(dir.path())).err().expect("a model without experts").to_string();
        assert!(err.contains("expert = 0, but model `student` has 0 expert(s)"), "{err}");
        config.train.expert = None;
        // The terms on the HR latent need a decoder that makes the whole photo, not detail on the resized LR.
        for loss in [r#"{"flow_matching": 1.0}"#, r#"{"autoencoder": 0.5}"#] {
            let mut on_latent = config.clone();
            on_latent.loss = serde_json::from_str(loss).unwrap();
            let err = Trainer::new(&on_latent, &options(dir.path())).err().expect("lr_skip").to_string();
            assert!(err.contains("model `student` has `lr_skip`"), "{err}");
        }
        let stage1 = dir.path().join("stage1");
        write_stage_one(dir.path(), &stage1);
        // The same run, two validations in: no bend yet.
        let mut esgf = EarlyStopping::new(crate::esgf::EsgfConfig::default()).unwrap();
        esgf.observe(500, 1.0).unwrap();
        esgf.observe(1000, 0.9).unwrap();
        let metadata = HashMap::from([(
            STATE_METADATA_KEY.to_string(),
            serde_json::to_string(&RunState { step: 1000, esgf, validation: None }).unwrap(),
        )]);
        let named = HashMap::from([("x".to_string(), Tensor::zeros([1], (Kind::Float, Device::Cpu)))]);
        checkpoint::save_variables(named, &stage1.join(CHECKPOINT_FILE), Kind::Float, metadata).unwrap();
        config.model.from = None;
        config.model.knee_of = Some(stage1);
        let err = Trainer::new(&config, &options(dir.path())).err().expect("no knee").to_string();
        assert!(err.contains("has no knee yet (2 validation(s) up to step 1000)"), "{err}");
    }

    #[test]
    fn the_gradient_reaches_the_student_only() {
        let dir = tempfile::tempdir().unwrap();
        let student = dir.path().join("student.safetensors");
        let teachers = format!(
            "[[teacher]]\nmodel = \"{}\"\npixel_l1 = 1.0\nedge = 0.5\n\
             [[teacher]]\nmodel = \"{}\"\nname = \"copy\"\npixel_l2 = 1.0\n",
            dir.path().join("peer.safetensors").display(),
            student.display()
        );
        let config = tiny_run(dir.path(), &teachers);
        let mut trainer = Trainer::new(&config, &options(dir.path())).unwrap();
        let teacher_weights: Vec<Vec<(String, Tensor)>> = trainer.teachers.iter().map(|t| t.variables()).collect();
        let before: Vec<Vec<Tensor>> = teacher_weights.iter().map(|w| copies(w)).collect();
        let student_names: Vec<String> = trainer.params.keys().cloned().collect();
        let student_before: Vec<Tensor> = student_names.iter().map(|k| trainer.params[k].detach().copy()).collect();
        trainer.step().unwrap();

        for ((weights, before), teacher) in teacher_weights.iter().zip(&before).zip(&trainer.teachers) {
            for ((name, t), old) in weights.iter().zip(before) {
                assert!(!t.requires_grad() && !t.grad().defined(), "{}: {name} takes a gradient", teacher.label);
                assert!(t.equal(old), "{}: {name} changed", teacher.label);
            }
        }
        let changed = student_names.iter().zip(&student_before).filter(|(k, old)| !trainer.params[*k].equal(old));
        assert!(changed.count() > student_names.len() / 2, "the student barely learned");
        let log = std::fs::read_to_string(dir.path().join("run/log.csv")).unwrap();
        let header = log.lines().next().unwrap();
        assert_eq!(header, "step,lr,loss_l1,teacher_peer_l1,teacher_peer_edge,teacher_copy_l2,loss,val_l1,steps_per_s");
    }

    #[test]
    fn a_copy_of_the_student_teaches_nothing_at_the_first_step() {
        // The teacher is the file the student starts from, so before the first update both compute the same
        // function of the same batch, and compute it the same way: the same float32 weights (both loaded from
        // the one file; EMA is not involved, the student trains its raw weights), no dropout or batch
        // statistics in these networks, the same input resize and shapes (so the same CPU kernels), and the
        // teacher runs under the student's compute kind (so in a bf16 run it rounds where the student does).
        // The clamp hides only overshoot that `losses::seen_as_target` clamps in the student too. So every
        // teacher term is 0 whenever the two loaded instances compute bit for bit alike, which they do
        // outside the trainer for every model tried. Inside it, for some random tiny students (5 of 13 seeds),
        // the two instances' DiT step (`restore`) differs by about one float32 ulp (terms ~1e-7: L1 1e-7,
        // edge 4e-7) with equal weights, strides, condition and input, also under `MKL_CBWR=AUTO,STRICT`: not
        // understood yet. The bound is ten ulps at 1 (1.2e-6); a wrong target (another model, a resize or
        // clamp out of step, a gradient-mode difference) gives terms of order 1e-2 and up.
        for precision in [Precision::F32, Precision::Bf16] {
            let dir = tempfile::tempdir().unwrap();
            let teachers = format!(
                "[[teacher]]\nmodel = \"{}\"\nname = \"me\"\npixel_l1 = 1.0\npixel_l2 = 1.0\nedge = 1.0\n",
                dir.path().join("student.safetensors").display()
            );
            let mut config = tiny_run(dir.path(), &teachers);
            config.train.precision = precision;
            let mut trainer = Trainer::new(&config, &options(dir.path())).unwrap();
            trainer.step().unwrap();
            let log = TrainingLog::read(&dir.path().join("run/log.csv")).unwrap();
            assert_eq!(log.columns.losses.len(), 5, "{:?}", log.columns.losses);
            for (name, value) in log.columns.losses.iter().zip(&log.rows[0].losses) {
                if name.starts_with("teacher_me_") {
                    assert!(*value <= 10.0 * f32::EPSILON as f64, "{precision:?}: {name} = {value}");
                } else {
                    assert!(*value > 0.0, "{precision:?}: {name}");
                }
            }
        }
    }

    /// `val_metric = "teacher_l1"` scores the student's validation crops against the first teacher's image:
    /// before any step (the EMA weights are the student's) a teacher that is the student's own file gives 0 up
    /// to the float32 ulps of the self-copy test above, a peer of other weights a clear difference.
    #[test]
    fn the_teacher_l1_validation_compares_with_the_first_teachers_image() {
        let dir = tempfile::tempdir().unwrap();
        let teacher = |path: &Path| format!("[[teacher]]\nmodel = \"{}\"\npixel_l1 = 1.0\n", path.display());
        let mut config = tiny_run(dir.path(), &teacher(&dir.path().join("student.safetensors")));
        config.train.val_metric = ValMetric::TeacherL1;
        let to_itself = Trainer::new(&config, &options(dir.path())).unwrap().validate().unwrap();
        assert!(to_itself <= 10.0 * f32::EPSILON as f64, "{to_itself}");

        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_run(dir.path(), &teacher(&dir.path().join("peer.safetensors")));
        config.train.val_metric = ValMetric::TeacherL1;
        let to_peer = Trainer::new(&config, &options(dir.path())).unwrap().validate().unwrap();
        assert!(to_peer > 1e-3, "{to_peer}");
    }

    /// A clean pair's target is its HR image (in [-1, 1] terms), the others' the teacher's image, the same as
    /// in a batch without clean pairs.
    #[test]
    fn a_clean_pairs_teacher_target_is_its_hr_image() {
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_run(dir.path(), "");
        let peer = tiny_teachers(&format!(
            "[[teacher]]\nmodel = \"{}\"\npixel_l1 = 1.0\n",
            dir.path().join("peer.safetensors").display()
        ));
        let teacher = Teacher::load(&peer[0], 4, Device::Cpu).unwrap();
        let loader_config = LoaderConfig { gt_size: 96, batch_size: 3, seed: 1, ..LoaderConfig::default() };
        let degradation =
            Degradation::new(RealEsrganConfig::from_toml_file(&config.data.degradation).unwrap()).unwrap();
        let paths = pool_paths(&config.data.hr[0]).unwrap();
        let mut batch = Loader::new(paths, degradation, loader_config).unwrap().next().unwrap().unwrap();
        let degraded = teacher.target(&batch).unwrap();
        batch.clean = vec![false, true, false];
        let mixed = teacher.target(&batch).unwrap();
        assert!(mixed.get(1).equal(&(batch.hr.get(1) * 2.0 - 1.0)));
        assert!(!degraded.get(1).equal(&mixed.get(1)));
        for i in [0, 2] {
            assert!(mixed.get(i).equal(&degraded.get(i)), "pair {i}");
        }
    }

    /// A degradation config file in `dir` with these settings (the x4plus ones for the rest).
    fn degradation_file(dir: &Path, name: &str, settings: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, settings).unwrap();
        path
    }

    /// `val_degradation` makes the validation pairs and only them: a run validating on clean pairs has the
    /// validation pairs of a run trained on clean pairs, not those of its own training degradation; one of
    /// another scale is refused by name.
    #[test]
    fn the_validation_pairs_take_val_degradation() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_run(dir.path(), "");
        let all_clean = degradation_file(dir.path(), "all_clean.toml", "clean_prob = 1.0\n");
        let validation = |config: &TrainConfig| Trainer::new(config, &options(dir.path())).unwrap().validation.lr;
        let own = validation(&config);
        config.data.val_degradation = Some(all_clean.clone());
        let chosen = validation(&config);
        let trained_clean = validation(&TrainConfig {
            data: crate::config::DataConfig { degradation: all_clean, val_degradation: None, ..config.data.clone() },
            ..config.clone()
        });
        assert!(chosen.equal(&trained_clean));
        assert!(!chosen.equal(&own));

        config.data.val_degradation = Some(degradation_file(dir.path(), "x2.toml", "scale = 2\n"));
        let error = Trainer::new(&config, &options(dir.path())).err().expect("a scale mismatch").to_string();
        assert!(error.contains("val_degradation downscales by 2"), "{error}");
    }

    /// A resumed run judges the validations in its checkpoint by its config's ESGF settings, and starts the
    /// history again when its validation pairs differ from the checkpoint's.
    #[test]
    fn a_resumed_run_restarts_esgf_when_its_validation_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_run(dir.path(), "");
        config.esgf.every_steps = 1;
        let paused = train(&config, &TrainOptions { stop_after: Some(2), ..options(dir.path()) }, |_| {}).unwrap();
        assert_eq!(paused.esgf_restarted_at, None);
        let resume = TrainOptions { resume: true, ..options(dir.path()) };

        config.esgf.patience = 7;
        let same_pairs = Trainer::new(&config, &resume).unwrap();
        assert_eq!(same_pairs.state.esgf.history().len(), 2);
        assert_eq!((same_pairs.state.esgf.config().patience, same_pairs.esgf_restarted_at), (7, None));

        config.data.val_degradation = Some(degradation_file(dir.path(), "all_clean.toml", "clean_prob = 1.0\n"));
        let other_pairs = Trainer::new(&config, &resume).unwrap();
        assert!(other_pairs.state.esgf.history().is_empty());
        assert_eq!(other_pairs.esgf_restarted_at, Some(2));
    }

    /// The store of a run's discriminator.
    fn discriminator(trainer: &Trainer) -> &nn::VarStore {
        &trainer.adversarial.as_ref().expect("a run with an adversarial term").vs
    }

    /// With `[discriminator] clean_pairs = false` a batch of clean pairs only gives no adversarial term and
    /// leaves the discriminator as it was; with the default it trains both on them.
    #[test]
    fn the_adversarial_term_can_leave_clean_pairs_out() {
        for clean_pairs in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = tiny_run(dir.path(), "");
            let all_clean = dir.path().join("all_clean.toml");
            std::fs::write(&all_clean, "clean_prob = 1.0\n").unwrap();
            config.data.degradation = all_clean;
            config.loss.adversarial = 0.1;
            config.discriminator.clean_pairs = clean_pairs;
            let mut trainer = Trainer::new(&config, &options(dir.path())).unwrap();
            let before = Snapshot::of(discriminator(&trainer));
            trainer.step().unwrap();
            assert_eq!(before.changed_where(discriminator(&trainer), |_| true), clean_pairs);
            let log = TrainingLog::read(&dir.path().join("run/log.csv")).unwrap();
            let adv = log.columns.losses.iter().position(|c| c == "loss_adv").expect("logged");
            assert_eq!(log.rows[0].losses[adv] > 0.0, clean_pairs, "{clean_pairs}: {}", log.rows[0].losses[adv]);
        }
    }

    /// During `warmup_steps` the discriminator trains and the model (and its EMA) does not; then both do.
    #[test]
    fn a_warming_discriminator_trains_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_run(dir.path(), "");
        config.loss.adversarial = 0.1;
        config.discriminator.warmup_steps = 1;
        let mut trainer = Trainer::new(&config, &options(dir.path())).unwrap();
        let ema: Vec<(String, Tensor)> = trainer.ema.averages.iter().map(|(k, v)| (k.clone(), v.copy())).collect();
        let (model, disc) = (Snapshot::of(&trainer.vs), Snapshot::of(discriminator(&trainer)));
        trainer.step().unwrap();
        assert!(!model.changed_where(&trainer.vs, |_| true), "the model trained while the discriminator warmed up");
        assert!(ema.iter().all(|(name, average)| trainer.ema.averages[name].equal(average)));
        assert!(disc.changed_where(discriminator(&trainer), |_| true));
        trainer.step().unwrap();
        assert!(model.changed_where(&trainer.vs, |_| true));
    }

    #[test]
    fn a_bad_teacher_is_refused_by_name_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let x2 = dir.path().join("x2.safetensors");
        let corrupt = dir.path().join("corrupt.safetensors");
        let teacher = |spec: &str| format!("[[teacher]]\nmodel = \"{spec}\"\npixel_l1 = 1.0\n");
        let mut config = tiny_run(dir.path(), &teacher("no-such-model"));
        write_peer(&x2, 2);
        let bytes = std::fs::read(dir.path().join("peer.safetensors")).unwrap();
        std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
        for (spec, says) in [
            ("no-such-model", "no model named"),
            (x2.to_str().unwrap(), "upscales by 2x, the student is trained at 4x"),
            (corrupt.to_str().unwrap(), "corrupt"),
        ] {
            config.teachers = tiny_teachers(&teacher(spec));
            let err = Trainer::new(&config, &options(dir.path())).err().expect("a bad teacher is refused").to_string();
            let name = config.teachers[0].label();
            assert!(err.starts_with(&format!("teacher `{name}`: ")) && err.contains(says), "{err}");
            assert!(!dir.path().join("run").exists(), "{spec}: a run folder was made");
        }
    }

    fn tiny_teachers(toml_text: &str) -> Vec<crate::config::TeacherConfig> {
        #[derive(serde::Deserialize)]
        struct Teachers {
            teacher: Vec<crate::config::TeacherConfig>,
        }
        toml::from_str::<Teachers>(toml_text).unwrap().teacher
    }

    #[test]
    fn a_run_folder_without_a_checkpoint_is_taken_over_by_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_run(dir.path(), "");
        // What a run killed (or out of disk) before its first checkpoint leaves: a log and no checkpoint.
        std::fs::create_dir_all(dir.path().join("run/snapshots")).unwrap();
        std::fs::write(dir.path().join("run").join(LOG_FILE), "step,lr,loss\n1,0.001,0.5\n").unwrap();
        let resumed = Trainer::new(&config, &TrainOptions { resume: true, ..options(dir.path()) });
        assert!(resumed.err().expect("nothing to resume").to_string().contains("nothing to resume"));
        let mut trainer = Trainer::new(&config, &options(dir.path())).unwrap();
        trainer.step().unwrap();
        let log = std::fs::read_to_string(dir.path().join("run").join(LOG_FILE)).unwrap();
        assert!(!log.contains("0.001,0.5") && log.lines().count() == 2, "{log}");
    }

    #[test]
    fn a_held_out_photo_is_held_out_at_every_scale() {
        let dir = tempfile::tempdir().unwrap();
        let (x2, x4) = (dir.path().join("pool_2x"), dir.path().join("pool_4x"));
        for (folder, names) in [(&x2, &["a.png", "b.png", "c.png", "notes.txt"][..]), (&x4, &["a.png", "c.png"][..])] {
            std::fs::create_dir(folder).unwrap();
            for name in names {
                std::fs::write(folder.join(name), b"").unwrap();
            }
        }
        let (train, val) = split_pool(&[x2.clone(), x4.clone()], 1).unwrap();
        assert_eq!(train, [x2.join("a.png"), x4.join("a.png"), x2.join("b.png")]);
        assert_eq!(val, [x2.join("c.png"), x4.join("c.png")]);
        let (_, val) = split_pool(&[x2.clone(), x4.clone()], 2).unwrap();
        assert_eq!(val, [x2.join("b.png"), x2.join("c.png"), x4.join("c.png")]);
        assert!(split_pool(&[x2, x4], 3).is_err(), "three photos cannot hold out three");
    }
}

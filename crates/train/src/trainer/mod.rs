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
//!
//! The parts: `setup` (the model, the pool and the validation pairs a run starts from), `objective` (one
//! step's loss terms) and `run_files` (snapshots, the exported model and the checkpoint).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use sana_sr_core::precision::with_compute_kind;
use sana_sr_core::{manual_seed, nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::loader::{Loader, LoaderConfig};
use sana_sr_model::checkpoint::CheckpointError;
use sana_sr_model::layers::lora::{self, Adapters};
use sana_sr_pipeline::SrModel;
use serde::{Deserialize, Serialize};

use crate::config::{TrainConfig, ValMetric};
use crate::discriminator::Discriminator;
use crate::esgf::{EarlyStopping, StopReason};
use crate::log::{LogColumns, LogRow, LogWriter, TrainingLog};
use crate::losses::{self, TERMS};
use crate::optim::{AdamW, Ema};
use crate::teacher::Teacher;

mod objective;
mod run_files;
mod setup;
#[cfg(test)]
mod tests;

use objective::{adversarial_rows, expert_interval, loss_terms, FlowDraw, StepInputs};
use run_files::{export, niqe_of, restore, save_checkpoint, snapshot_path, with_ema};
use setup::{
    build_model, check_crop, read_degradation, select_trainable, split_pool, upsampled, validation_key,
    validation_pairs,
};

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

//! `sana-sr train`: train or fine-tune a model from a TOML config (see `configs/`), with a progress bar,
//! a CSV log and a plot of the curves in the run folder; `--resume` continues a stopped or killed run.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sana_sr_core::Device;
use sana_sr_train::config::{Precision, TrainConfig};
use sana_sr_train::trainer::{self, TrainOptions};

use super::device_arg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The training config (TOML).
    #[arg(long)]
    config: PathBuf,
    /// The run folder: checkpoint, log.csv, curves.png, snapshots/ and the exported model.safetensors.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Continue the run in the run folder from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (the GPU when there is one).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Pause after this step, with a checkpoint, to continue later with --resume.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    stop_after: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = TrainConfig::from_toml_file(&args.config)?;
    let options = TrainOptions {
        run_dir: args.run.clone(),
        resume: args.resume,
        device: device_arg(&args.device)?,
        stop_after: args.stop_after,
    };
    if config.train.precision == Precision::Bf16 && options.device == Device::Cpu {
        // Mixed precision is for tensor cores; most CPUs have no bfloat16 arithmetic and emulate it.
        eprintln!("note: precision = \"bf16\" is meant for GPUs: on a CPU without bfloat16 instructions it is several times slower than f32");
    }
    let (log, checkpoint) = (args.run.join(trainer::LOG_FILE), args.run.join(trainer::CHECKPOINT_FILE));
    if !args.resume && log.exists() && !checkpoint.exists() {
        eprintln!(
            "note: {} holds no checkpoint (its run stopped before saving one): starting it afresh",
            args.run.display()
        );
    }
    let progress = ProgressBar::new(config.train.steps);
    progress.set_style(ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} steps, {elapsed} (eta {eta})  {msg}",
    )?);
    progress.set_prefix("training");
    let mut last_validation = String::new();
    let outcome = trainer::train(&config, &options, |report| {
        if let Some(value) = report.validation {
            last_validation = format!("  {}={value:.4}", config.train.val_metric.column());
        }
        progress.set_position(report.step);
        progress.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.2} steps/s{last_validation}",
            report.loss, report.lr, report.steps_per_s
        ));
    })
    .with_context(|| format!("training from {}", args.config.display()))?;
    progress.finish();
    if let Some(step) = outcome.esgf_restarted_at {
        eprintln!(
            "note: the checkpoint's validations were measured on other pairs or by another metric: ESGF's history \
             restarted at step {step}"
        );
    }
    match (&outcome.model, outcome.exported_step) {
        (Some(model), Some(step)) => eprintln!(
            "{} steps done{}; model of step {step} (ESGF's choice) written to {}",
            outcome.steps,
            outcome.stopped.map(|r| format!(", stopped early: {r:?}")).unwrap_or_default(),
            model.display()
        ),
        _ => eprintln!("paused after step {}; continue with --resume", outcome.steps),
    }
    Ok(())
}

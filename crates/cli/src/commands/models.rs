//! `sana-sr models`: the models `upscale --model` accepts, built in and in the models folder;
//! `sana-sr models export`: a training snapshot as a model file to ship (float16, described).

use std::path::PathBuf;

use anyhow::Context;
use sana_sr_core::{Device, Kind};
use sana_sr_pipeline::registry::{local_models, models_dir, MODELS_DIR_ENV, MODEL_EXTENSION};
use sana_sr_pipeline::registry::{ModelSource, BUILTIN_MODELS, DEFAULT_MODEL};
use sana_sr_pipeline::SrModel;

use super::inputs::resolved;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a model file (a training snapshot, say) with float16 weights, half the size, optionally with a
    /// new description; the result loads like any model (`upscale --model OUT`).
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// The model file to export, e.g. runs/RUN/snapshots/step_0000400.model.safetensors.
    model: PathBuf,
    #[arg(short, long)]
    output: PathBuf,
    /// The one line `sana-sr models` shows for it (default: the model's own).
    #[arg(long)]
    description: Option<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(Command::Export(args)) => export(args),
        None => list(),
    }
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    if args.output.exists() {
        if !args.overwrite {
            anyhow::bail!("{} exists; pass --overwrite to replace it", args.output.display());
        }
        if resolved(&args.output) == resolved(&args.model) {
            anyhow::bail!("the output would replace the input {}", args.model.display());
        }
    }
    let (mut model, weights) = SrModel::load(&args.model, Device::Cpu)?;
    if let Some(description) = args.description {
        model.config.description = description;
    }
    model.save(&weights, &args.output, Kind::Half).with_context(|| format!("writing {}", args.output.display()))?;
    println!("{} written ({}, float16)", args.output.display(), model.config.name);
    Ok(())
}

fn list() -> anyhow::Result<()> {
    let mut sources: Vec<(String, ModelSource)> =
        BUILTIN_MODELS.iter().map(|m| (format!("{} (built in)", m.name), ModelSource::Builtin(m))).collect();
    for file in local_models() {
        let name = file.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        sources.push((name, ModelSource::File(file)));
    }
    println!("{:<28} {:>8} {:>11} {:>9}  description", "model", "scales", "parameters", "size");
    for (label, source) in &sources {
        match source.info() {
            Ok(info) => {
                let scales: Vec<String> = info.config.scales.iter().map(|s| format!("x{s}")).collect();
                let marker = if label.starts_with(DEFAULT_MODEL) { "*" } else { " " };
                println!(
                    "{marker}{label:<27} {:>8} {:>10.2}M {:>7.1}MB  {}",
                    scales.join(","),
                    info.parameters as f64 / 1e6,
                    info.bytes as f64 / 1e6,
                    info.config.description
                );
            }
            Err(err) => println!(" {label:<27} unreadable: {err}"),
        }
    }
    println!(
        "\n* the default. Local models are .{MODEL_EXTENSION} files in {} (set {MODELS_DIR_ENV} to change it);",
        models_dir().map_or_else(|| "(no home folder)".to_string(), |d| d.display().to_string())
    );
    println!(
        "any model file can also be given by its path: sana-sr upscale --model path/to/model.{MODEL_EXTENSION} ..."
    );
    Ok(())
}

//! `sana-sr models`: the models `upscale --model` accepts, built in and in the models folder.

use sana_sr_pipeline::registry::{local_models, models_dir, MODELS_DIR_ENV, MODEL_EXTENSION};
use sana_sr_pipeline::registry::{ModelSource, BUILTIN_MODELS, DEFAULT_MODEL};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
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

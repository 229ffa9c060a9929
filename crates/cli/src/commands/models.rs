//! `sana-sr models`: the models `upscale --model` accepts, built in and in the models folder;
//! `sana-sr models export`: a training snapshot as a model file to ship (float16, described);
//! `sana-sr models mix`: a weighted sum of models of one network (network interpolation);
//! `sana-sr models import`: a Real-ESRGAN network from its ncnn files into the models folder;
//! `sana-sr models assemble`: SANA-SR from a diffusers Sana pipeline folder and a LoRA adapter.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use sana_sr_core::fs::same_file;
use sana_sr_core::{nn, Device, Kind};
use sana_sr_model::esrgan::ncnn;
use sana_sr_pipeline::assemble::{self, Parts};
use sana_sr_pipeline::mix::{self, Part};
use sana_sr_pipeline::registry::{local_models, models_dir, MODELS_DIR_ENV, MODEL_EXTENSION};
use sana_sr_pipeline::registry::{ModelSource, BUILTIN_MODELS, DEFAULT_MODEL};
use sana_sr_pipeline::{EsrganModel, Network, SrModel};

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
    /// Write the weighted sum of models of one network (ESRGAN's network interpolation), float16 unless
    /// `--float32`: weights in [0, 1] between two fine-tunes of one start give a look between theirs, e.g.
    /// `sana-sr-compact-pruned-gan-real=0.5 sana-sr-compact-pruned-gan-extrapolated=0.5`; a weight past 1 with
    /// a negative one goes on along their difference. The weights sum to 1.
    Mix(MixArgs),
    /// Import Real-ESRGAN's RRDBNet (x4plus) or SRVGGNetCompact (general-x4v3) from an ncnn FILE.param and the
    /// FILE.bin beside it, as NAME.safetensors in the models folder (weights float16 or float32 as stored);
    /// `scripts/fetch_peers.sh` fetches and imports the released ones.
    Import(ImportArgs),
    /// Build SANA-SR from released parts: a diffusers Sana pipeline folder (transformer, vae, text_encoder,
    /// tokenizer, scheduler) and a PEFT LoRA adapter of its transformer as SANA-SR's training code saves it
    /// (merged into the weights). The model upscales x4 in one step at the scheduler's timestep index and takes
    /// `upscale --tags`.
    Assemble(AssembleArgs),
}

#[derive(Debug, clap::Args)]
struct AssembleArgs {
    /// The diffusers Sana pipeline folder, e.g. Sana_600M_1024px_diffusers.
    #[arg(long, value_name = "DIR")]
    pipeline: PathBuf,
    /// A PEFT adapter file of the pipeline's transformer, its adapter_config.json beside it.
    #[arg(long, value_name = "ADAPTER.safetensors")]
    lora: Option<PathBuf>,
    /// A DC-AE folder (diffusers AutoencoderDC) to use instead of the pipeline's vae/.
    #[arg(long, value_name = "DIR")]
    vae: Option<PathBuf>,
    /// The one step's timestep, as an index into the scheduler's 1000 steps (SANA-SR's is 900).
    #[arg(long, default_value_t = sana_sr_pipeline::assemble::SANA_SR_TIMESTEP_INDEX)]
    timestep_index: usize,
    /// The model's name (default: the output file's stem).
    #[arg(long)]
    name: Option<String>,
    /// Store the weights in bfloat16: half the file; the text encoder is released in bfloat16 and loses
    /// nothing, the DiT and the autoencoder lose float32's last digits.
    #[arg(long)]
    bf16: bool,
    /// The model file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Debug, clap::Args)]
struct MixArgs {
    /// Each model with its weight: a built-in model, one in the models folder, or a model file, then `=` and
    /// the weight.
    #[arg(value_name = "NAME|PATH=WEIGHT", required = true, num_args = 2..)]
    parts: Vec<String>,
    #[command(flatten)]
    output: ModelOutput,
    /// Store the weights in float32 (twice the file): a mix of training snapshots to study or train on
    /// further, without float16's rounding.
    #[arg(long)]
    float32: bool,
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// The ncnn .param file; its .bin must be beside it.
    param: PathBuf,
    /// The model's name (default: the file's stem, e.g. realesrgan-x4plus).
    #[arg(long)]
    name: Option<String>,
    /// Replace the model of that name if the models folder has one.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// The model to export: a built-in model, one in the models folder, or a model file such as
    /// runs/RUN/snapshots/step_0000400.model.safetensors.
    #[arg(value_name = "NAME|PATH")]
    model: String,
    #[command(flatten)]
    output: ModelOutput,
}

/// The model file `export` and `mix` write and what it is called.
#[derive(Debug, clap::Args)]
struct ModelOutput {
    /// The model file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// The name it goes by (default: an export keeps the model's own, a mix takes the output file's stem).
    /// Outputs and evaluation records are labelled with a model's name, so new weights (a fine-tune's
    /// snapshot) want a new one.
    #[arg(long)]
    name: Option<String>,
    /// The one line `sana-sr models` shows for it (default: an export keeps the model's own, a mix lists its
    /// parts).
    #[arg(long)]
    description: Option<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    overwrite: bool,
}

impl ModelOutput {
    /// What can be refused before any model is read: an existing output without `--overwrite`, a bad name.
    fn check(&self) -> anyhow::Result<()> {
        if self.output.exists() && !self.overwrite {
            bail!("{} exists; pass --overwrite to replace it", self.output.display());
        }
        self.name.as_deref().map(check_name).transpose()?;
        Ok(())
    }

    /// Refuses an output that is the file `source` reads.
    fn check_input(&self, source: &ModelSource) -> anyhow::Result<()> {
        match source {
            ModelSource::File(input) if same_file(&self.output, input) => {
                bail!("the output would replace the input {}", input.display())
            }
            _ => Ok(()),
        }
    }

    /// Writes `network` with weights of `kind` (float16 or float32) under the given name and description, where
    /// given.
    fn write(self, mut network: Network, vars: &nn::VarStore, kind: Kind) -> anyhow::Result<()> {
        if let Some(name) = self.name {
            network.set_name(name);
        }
        if let Some(description) = self.description {
            network.set_description(description);
        }
        let output = &self.output;
        network.save(vars, output, kind).with_context(|| format!("writing {}", output.display()))?;
        let storage = if kind == Kind::Half { "float16" } else { "float32" };
        println!("{} written ({}, {storage})", output.display(), network.name());
        Ok(())
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(Command::Export(args)) => export(args),
        Some(Command::Mix(args)) => mix(args),
        Some(Command::Import(args)) => import(args),
        Some(Command::Assemble(args)) => assemble(args),
        None => list(),
    }
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    args.output.check()?;
    let source = ModelSource::resolve(&args.model)?;
    args.output.check_input(&source)?;
    let (model, weights) = source.load_network(Device::Cpu)?;
    args.output.write(model, &weights, Kind::Half)
}

fn mix(args: MixArgs) -> anyhow::Result<()> {
    let mut output = args.output;
    let stem = output.output.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    output.name.get_or_insert(stem);
    output.description.get_or_insert_with(|| format!("a mix of {}", args.parts.join(", ")));
    output.check()?;
    let mut parts = Vec::with_capacity(args.parts.len());
    for spec in &args.parts {
        let (model, weight) = spec
            .rsplit_once('=')
            .with_context(|| format!("`{spec}` is not NAME|PATH=WEIGHT (e.g. sana-sr-compact-pruned-gan-real=0.5)"))?;
        let weight: f64 = weight.parse().with_context(|| format!("`{weight}` in `{spec}` is not a number"))?;
        let source = ModelSource::resolve(model)?;
        output.check_input(&source)?;
        let (network, vars) = source.load_network(Device::Cpu).with_context(|| format!("loading {model}"))?;
        parts.push(Part { label: source.label(), network, vars, weight });
    }
    let (network, vars) = mix::mix(parts)?;
    output.write(network, &vars, if args.float32 { Kind::Float } else { Kind::Half })
}

/// A model's name is also its file's stem in the models folder: a file name without folders.
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("`{name}` cannot be a model name (a file name without folders)");
    }
    Ok(())
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let name = match args.name {
        Some(name) => name,
        None => args.param.file_stem().unwrap_or_default().to_string_lossy().into_owned(),
    };
    check_name(&name)?;
    let dir = models_dir().context("no models folder: set SANA_SR_MODELS or HOME")?;
    let output = dir.join(format!("{name}.{MODEL_EXTENSION}"));
    if output.exists() && !args.overwrite {
        bail!("{} exists already (pass --overwrite to replace it)", output.display());
    }
    // Everything is read and checked before the folder is touched: a bad file writes nothing.
    let imported = ncnn::import(&args.param)?;
    let (architecture, half) = (imported.config.architecture(), imported.is_half());
    let description = format!("Real-ESRGAN {architecture}, imported from {}", file_name(&args.param));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the models folder {}", dir.display()))?;
    EsrganModel::write_imported(imported, &name, &description, &output, args.overwrite)?;
    let storage = if half { "float16" } else { "float32" };
    println!("{} written ({name}: {architecture}, {storage})", output.display());
    Ok(())
}

fn assemble(args: AssembleArgs) -> anyhow::Result<()> {
    if args.output.exists() && !args.overwrite {
        bail!("{} exists; pass --overwrite to replace it", args.output.display());
    }
    let mut inputs = vec![args.pipeline.clone()];
    inputs.extend(args.lora.iter().chain(&args.vae).cloned());
    if let Some(input) = inputs.iter().find(|input| same_file(&args.output, input) || args.output.starts_with(input)) {
        bail!("the output {} would be written over or into the input {}", args.output.display(), input.display());
    }
    let name = match args.name {
        Some(name) => name,
        None => args.output.file_stem().unwrap_or_default().to_string_lossy().into_owned(),
    };
    let parts = Parts { pipeline: args.pipeline, lora: args.lora, vae: args.vae };
    let progress = |stage: &str| eprintln!("{stage}...");
    let (model, vs) = assemble::assemble(&parts, &name, args.timestep_index, &progress)
        .with_context(|| format!("assembling SANA-SR from {}", parts.pipeline.display()))?;
    let (kind, storage) = if args.bf16 { (Kind::BFloat16, "bfloat16") } else { (Kind::Float, "float32") };
    eprintln!("writing {}...", args.output.display());
    model.save(&vs, &args.output, kind).with_context(|| format!("writing {}", args.output.display()))?;
    let parameters = SrModel::parameter_count(&vs) as f64 / 1e6;
    println!(
        "{} written ({name}: {parameters:.1}M parameters, {storage}; {})",
        args.output.display(),
        model.config.description
    );
    Ok(())
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): a model file's description or name is
/// the file's word, and a newline would split its row, an escape sequence reach the terminal.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

fn list() -> anyhow::Result<()> {
    match write_list(&mut std::io::stdout().lock()) {
        // A reader that stops early (`sana-sr models | head`) ends the listing, it is not a failure.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => Ok(result?),
    }
}

fn write_list(out: &mut impl Write) -> std::io::Result<()> {
    let mut sources: Vec<(String, ModelSource)> =
        BUILTIN_MODELS.iter().map(|m| (format!("{} (built in)", m.name), ModelSource::Builtin(m))).collect();
    for file in local_models() {
        let name = file.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        sources.push((name, ModelSource::File(file)));
    }
    let labels: Vec<String> = sources.iter().map(|(label, _)| printable(label)).collect();
    // The first column fits the longest name (after the default's marker), so the others stay aligned.
    let width = labels.iter().map(|label| label.chars().count()).max().unwrap_or(0).max(35);
    writeln!(
        out,
        "{:<w$} {:<15} {:>8} {:>11} {:>9}  description",
        "model",
        "architecture",
        "scales",
        "parameters",
        "size",
        w = width + 1
    )?;
    for (label, (_, source)) in labels.iter().zip(&sources) {
        match source.info() {
            Ok(info) => {
                let scales: Vec<String> = info.config.scales().iter().map(|s| format!("x{s}")).collect();
                let is_default = matches!(source, ModelSource::Builtin(m) if m.name == DEFAULT_MODEL);
                let marker = if is_default { "*" } else { " " };
                writeln!(
                    out,
                    "{marker}{label:<width$} {:<15} {:>8} {:>10.2}M {:>7.1}MB  {}",
                    info.config.architecture(),
                    scales.join(","),
                    info.parameters as f64 / 1e6,
                    info.bytes as f64 / 1e6,
                    printable(info.config.description())
                )?;
            }
            Err(err) => writeln!(out, " {label:<width$} unreadable: {}", printable(&err.to_string()))?,
        }
    }
    writeln!(
        out,
        "\n* the default. Local models are .{MODEL_EXTENSION} files in {} (set {MODELS_DIR_ENV} to change it);",
        models_dir().map_or_else(|| "(no home folder)".to_string(), |d| d.display().to_string())
    )?;
    writeln!(
        out,
        "any model file can also be given by its path: sana-sr upscale --model path/to/model.{MODEL_EXTENSION} ..."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("two\nlines \u{1b}[31mred\u{1b}[0m é"), "two\\nlines \\u{1b}[31mred\\u{1b}[0m é");
    }
}

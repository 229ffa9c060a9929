//! `sana-sr lora merge`: fold a LoRA adapter file into its base model, giving a plain model file that runs
//! as fast as the base.

use std::path::PathBuf;

use anyhow::{bail, Context};
use sana_sr_core::fs::same_file;
use sana_sr_core::{Device, Kind};
use sana_sr_model::layers::lora;
use sana_sr_pipeline::ModelSource;
use sana_sr_train::config::TrainConfig;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Merge adapters (a LoRA run's snapshots/step_N.lora.safetensors) into the base model of the run's config.
    Merge(MergeArgs),
}

#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// The training config of the LoRA run: its [model] `from` is the base, its [lora] the adapters' shape.
    #[arg(long)]
    config: PathBuf,
    /// The adapter file.
    #[arg(long)]
    adapters: PathBuf,
    /// The merged model file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Command::Merge(args) = args.command;
    let config = TrainConfig::from_toml_file(&args.config)?;
    let (Some(base), Some(lora_config)) = (&config.model.from, &config.lora) else {
        bail!("{} is not a LoRA run's config: it needs [model] from = ... and a [lora] table", args.config.display());
    };
    let source = ModelSource::resolve(base)?;
    // The files this command reads are never its output, whatever --overwrite says.
    let mut inputs = vec![("adapter file", args.adapters.clone()), ("config", args.config.clone())];
    if let ModelSource::File(path) = &source {
        inputs.push(("base model", path.clone()));
    }
    if let Some((what, input)) = inputs.iter().find(|(_, input)| same_file(&args.output, input)) {
        bail!("the output {} is the {what} {}; refusing to replace it", args.output.display(), input.display());
    }
    if args.output.exists() && !args.overwrite {
        bail!("{} exists already (pass --overwrite to replace it)", args.output.display());
    }
    let ((model, vs), adapters) =
        lora::with_adapters(lora_config, || Ok::<_, anyhow::Error>(source.load(Device::Cpu)?))?;
    lora::load_adapters(&vs, &args.adapters).with_context(|| format!("loading {}", args.adapters.display()))?;
    adapters.merge();
    model.save(&vs, &args.output, Kind::Half)?;
    eprintln!(
        "merged {} adapters of {} into {} -> {}",
        adapters.layers().len(),
        args.adapters.display(),
        source.label(),
        args.output.display()
    );
    Ok(())
}

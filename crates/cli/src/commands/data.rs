//! `sana-sr data …`: preparing data. `data build-pool` turns the fetched photographs
//! (scripts/fetch_training_data.sh) into the HR pool the loader reads; `data make-pairs` degrades photos into
//! a paired test set that `sana-sr eval` scores.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sana_sr_data::degradations::{Degradation, RealEsrganConfig};
use sana_sr_data::loader::pool_paths;
use sana_sr_data::pairs::{write_pairs, PairOptions};
use sana_sr_data::pool::{build_pool, PoolOptions};

use super::inputs::{expand_inputs, Expand};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Downscale the listed photographs into PNGs of the HR pool (idempotent).
    BuildPool(BuildPoolArgs),
    /// Degrade photos into a paired test set: OUT/gt/ holds their centre crops, OUT/lq/ the LR images the
    /// degradation pipeline makes of them (the layout of ImageNet-ValSR, which was made this way). Score a
    /// model on it with `sana-sr eval --datasets PARENT --sets NAME`, OUT being PARENT/NAME.
    MakePairs(MakePairsArgs),
}

#[derive(Debug, clap::Args)]
struct MakePairsArgs {
    /// Photos: image files, folders (the images directly inside them) or quoted glob patterns.
    #[arg(required = true)]
    inputs: Vec<String>,
    /// The set's folder: gt/ and lq/ are made in it.
    #[arg(long)]
    out: PathBuf,
    /// Degradation config (TOML); default: the Real-ESRGAN x4plus settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Side of the centre HR crop.
    #[arg(long, default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=8192))]
    crop: usize,
    /// Degraded versions of each photo, each its own draw (named <stem>_<k> when more than one).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    variants: usize,
    /// Seed of the draws: the same seed, photos and config give the same pairs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace pairs already in OUT (otherwise an OUT holding pairs is an error).
    #[arg(long)]
    overwrite: bool,
}

#[derive(Debug, clap::Args)]
struct BuildPoolArgs {
    /// The photographs to use, one path a line relative to --root ('#' starts a comment).
    #[arg(long, default_value = "scripts/training_photos.txt")]
    list: PathBuf,
    /// Where the fetched packages were unpacked.
    #[arg(long, default_value = "data/raw")]
    root: PathBuf,
    /// Folders whose every image is added too.
    #[arg(long, default_value = "../shared/datasets/SunHays80")]
    extra: Vec<PathBuf>,
    /// The pool's folder (`data/hr_pool` is where the training configs look).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Downscale factor (at least 2).
    #[arg(long, default_value_t = 2.0)]
    downscale: f64,
    /// Leave out photos whose shorter side is below this after downscaling (the loader's crop must fit:
    /// 256 keeps SunHays80, whose 1024x768 photos become 512x384).
    #[arg(long, default_value_t = 256)]
    min_side: usize,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::BuildPool(args) => build(args),
        Command::MakePairs(args) => make_pairs(args),
    }
}

fn make_pairs(args: MakePairsArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => RealEsrganConfig::from_toml_file(path)?,
        None => RealEsrganConfig::default(),
    };
    let degradation = Degradation::new(config)?;
    let found = expand_inputs(&args.inputs, Expand::default());
    if !found.failures.is_empty() {
        let lines: Vec<String> = found.failures.iter().map(ToString::to_string).collect();
        anyhow::bail!("{} (no pairs written)", lines.join("; "));
    }
    let sources: Vec<PathBuf> = found.inputs.into_iter().map(|input| input.path).collect();
    let options = PairOptions { crop: args.crop, variants: args.variants, seed: args.seed, overwrite: args.overwrite };
    let report = write_pairs(&sources, &args.out, &degradation, &options)?;
    for path in &report.too_small {
        println!("left out (smaller than {} px): {}", args.crop, path.display());
    }
    println!("{}: {} pairs in gt/ and lq/", args.out.display(), report.written.len());
    Ok(())
}

fn build(args: BuildPoolArgs) -> Result<()> {
    let mut sources = listed(&args.list, &args.root)?;
    for folder in &args.extra {
        sources.extend(pool_paths(folder)?);
    }
    let options = PoolOptions { downscale: args.downscale, min_side: args.min_side };
    let report = build_pool(&sources, &args.out, &options)?;
    for path in &report.too_small {
        println!("left out (too small): {}", path.display());
    }
    println!(
        "{}: {} written, {} already there, {} too small",
        args.out.display(),
        report.written.len(),
        report.kept.len(),
        report.too_small.len()
    );
    Ok(())
}

fn listed(list: &Path, root: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(list).with_context(|| format!("reading the photo list `{}`", list.display()))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|line| root.join(line))
        .collect())
}

//! `sana-sr eval`: score SR methods on the x4 benchmark sets (PSNR-Y, SSIM-Y, NIQE, seconds per image),
//! print a markdown table, and write it as CSV beside side-by-side crops of every set.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sana_sr_core::fs::write_atomically;
use sana_sr_core::precision::Precision;
use sana_sr_data::io::{write_image, Encoding, WriteOptions};
use sana_sr_eval::dataset::{self, KNOWN_SETS};
use sana_sr_eval::harness::{self, Options};
use sana_sr_eval::method::ModelRun;
use sana_sr_eval::record::{Record, RECORD_FILE};
use sana_sr_eval::{inputs, method, report};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder holding one sub-folder per set (Set5/, Set14/, ...).
    #[arg(long, env = super::DATASETS_ENV, value_name = "DIR")]
    datasets: Option<PathBuf>,
    /// Sets to evaluate, comma-separated (default: every known set). A folder under --datasets that is not a
    /// known set is scored when it holds gt/ and lq/ (`sana-sr data make-pairs` writes such sets).
    #[arg(long, value_delimiter = ',')]
    sets: Vec<String>,
    /// Methods: `bicubic`, `model` (the built-in default model), `model:NAME|PATH` or `model:LABEL=NAME|PATH`
    /// (any sana-sr model, named after its config unless labelled; `NAME@4` runs its sampler in 4 steps and is
    /// named so), or `folder:DIR` / `folder:LABEL=DIR`
    /// (another tool's outputs DIR/<set>/<stem>.<ext>, any readable extension: png, jpg, jpeg, webp);
    /// repeatable.
    #[arg(long = "method", default_value = "bicubic")]
    methods: Vec<String>,
    /// Where the table (quality.csv), every image's scores (images.jsonl, written as they are made) and the
    /// crops (panels/<set>.png) go.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace the evaluation in --out (otherwise one there is an error, before anything is scored).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Continue the evaluation in --out (stopped, or run with fewer sets or methods): the scores in its
    /// images.jsonl are reused where the method's weights and tiles and the image's pixels are the same, and
    /// only the rest is computed; quality.csv and the panels are then rewritten.
    #[arg(long)]
    resume: bool,
    /// Score at most this many images of each set (the first ones by name).
    #[arg(long)]
    max_images: Option<usize>,
    /// Images per set shown in its panel of side-by-side crops.
    #[arg(long, default_value_t = 3, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=64))]
    panel_images: usize,
    /// Side of a panel crop, in output pixels.
    #[arg(long, default_value_t = 128, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=2048))]
    panel_cell: usize,
    /// Device for `model` methods: `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Largest tile side in output pixels for `model` methods, as `upscale --tile`: larger tiles recompute
    /// less of their overlaps and take more memory; 0 runs every image whole.
    #[arg(long, default_value_t = sana_sr_pipeline::upscaler::DEFAULT_TILE)]
    tile: u32,
    /// What `model` methods' weight layers compute in, as `upscale --precision`; a method not in f32 is
    /// named with its precision (`sana-sr-compact bf16`) and scored afresh. f32 by default, unlike `upscale`:
    /// scores then do not depend on the machine's CPU.
    #[arg(long, default_value = "f32", value_parser = super::precision_arg)]
    precision: Precision,
    /// Also write every set's LR inputs to DIR/<set>/<stem>.png (for running other tools on them).
    #[arg(long, value_name = "DIR")]
    export_lr: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let csv = args.out.join("quality.csv");
    let record_path = args.out.join(RECORD_FILE);
    if !args.overwrite && !args.resume {
        if let Some(earlier) = [&csv, &record_path].into_iter().find(|path| path.exists()) {
            anyhow::bail!(
                "{} holds an evaluation already (pass --resume to continue it, --overwrite to replace it)",
                earlier.display()
            );
        }
    }
    let options = Options {
        max_images: args.max_images,
        panel_images: args.panel_images,
        panel_cell: args.panel_cell,
        ..Options::default()
    };
    let names: Vec<String> = if args.sets.is_empty() {
        KNOWN_SETS.iter().map(|(name, _)| name.to_string()).collect()
    } else {
        args.sets.clone()
    };
    let datasets = super::datasets_dir(args.datasets.as_deref())?;
    let mut sets = Vec::new();
    for name in &names {
        let set = dataset::open(name, &datasets.join(name), options.scale)?;
        for line in &set.skipped {
            eprintln!("skipped {line}");
        }
        sets.push(set);
    }
    let device = super::device_arg(&args.device)?;
    let run = ModelRun { device, tile: super::tile_arg(args.tile), precision: args.precision };
    let mut methods = args.methods.iter().map(|spec| method::from_spec(spec, &run)).collect::<Result<Vec<_>, _>>()?;
    for (i, method) in methods.iter().enumerate() {
        if methods[..i].iter().any(|earlier| earlier.name() == method.name()) {
            anyhow::bail!(
                "two methods are named {:?}, so their rows could not be told apart: label them, as in \
                 model:LABEL=PATH or folder:LABEL=DIR",
                method.name()
            );
        }
    }

    options.check(methods.len()).map_err(anyhow::Error::msg)?;
    for (method, set) in methods.iter().flat_map(|m| sets.iter().map(move |s| (m, s))) {
        method.check_set(&set.name).map_err(anyhow::Error::msg)?;
    }

    if let Some(dir) = &args.export_lr {
        for set in &sets {
            for line in inputs::export_lr(set, dir, options.scale) {
                eprintln!("error: {line}");
            }
        }
        eprintln!("LR inputs written to {}", dir.display());
    }

    std::fs::create_dir_all(args.out.join("panels")).with_context(|| format!("creating {}", args.out.display()))?;
    let mut record = if args.resume { Record::resume(&record_path)? } else { Record::create(&record_path)? };
    if !record.is_empty() {
        eprintln!("resuming: {} scores recorded in {}", record.len(), record_path.display());
    }
    let progress = ProgressBar::new(harness::image_count(&sets, &options) as u64);
    progress.set_style(ProgressStyle::with_template("{msg:>18} [{bar:40}] {pos}/{len} images, {elapsed} (eta {eta})")?);
    let evaluation = harness::evaluate(&sets, &mut methods, &options, &mut record, &progress)?;
    progress.finish_and_clear();

    println!("{}", report::markdown(&evaluation.rows));
    let table = report::csv(&evaluation.rows);
    write_atomically(&csv, true, |writer| writer.write_all(table.as_bytes()))
        .with_context(|| format!("writing {}", csv.display()))?;
    // The panels go with the CSV, whose absence (or --overwrite, --resume) was checked before the work.
    let png = WriteOptions { encoding: Encoding::Png { sixteen_bit: false }, overwrite: true };
    for (set, panel) in &evaluation.panels {
        write_image(panel, args.out.join("panels").join(format!("{set}.png")), &png)?;
    }
    eprintln!(
        "wrote {} and {} panels under {}",
        csv.display(),
        evaluation.panels.len(),
        args.out.join("panels").display()
    );
    if !evaluation.errors.is_empty() {
        eprintln!("{} images could not be scored (listed above)", evaluation.errors.len());
    }
    Ok(())
}

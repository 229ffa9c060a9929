//! `sana-sr prune`: a smaller SANA-SR model, structurally pruned to a budget of parameters and/or MACs
//! (`sana_sr_pipeline::prune`), written as a model file that loads and runs wherever the unpruned one does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::Image;
use sana_sr_pipeline::cost::{read_model_config, CostReport};
use sana_sr_pipeline::prune::{self, Calibration, Importance, PruneOptions, Scored, Scores};
use sana_sr_pipeline::{ModelConfig, ModelSource, SrModel, UpscaleOptions, Upscaler};

use super::inspect::{human, parse_size};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to prune: a built-in name, a model file, a name in the models folder, or a model config JSON
    /// (randomly initialised with --seed: the real stack's configs are in crates/pipeline/configs).
    #[arg(long)]
    model: String,
    /// At most this many parameters: a number (344M, 1.5e6) or a share of the model's (70%).
    #[arg(long, required_unless_present = "target_macs")]
    target_params: Option<String>,
    /// At most this many MACs for one upscale of --input: a number (407.95G) or a share of the model's (70%).
    #[arg(long)]
    target_macs: Option<String>,
    /// The LR image size, WIDTHxHEIGHT (or one side), at which MACs are counted.
    #[arg(long, default_value = "128x128")]
    input: String,
    /// The upscaling factor the MACs are counted at (default: the model's).
    #[arg(short, long)]
    scale: Option<u32>,
    /// A folder of photos: centre crops of --crop pixels are the HR of the calibration pairs, their MATLAB
    /// bicubic downscales the LR.
    #[arg(long, default_value = "data/hr_pool")]
    calibration: PathBuf,
    /// Calibration pairs (the first photos by name that are large enough).
    #[arg(long, default_value_t = 8)]
    pairs: usize,
    /// HR side of a calibration crop in pixels (rounded up to whole tokens and the scale).
    #[arg(long, default_value_t = 128)]
    crop: i64,
    /// How units are ranked: `taylor` (first-order estimate of the L1 loss change, one backward pass per
    /// pair) or `removal` (how much the output moves without the unit, one forward pass per unit).
    #[arg(long, value_enum, default_value = "taylor")]
    importance: ImportanceArg,
    /// Read the importances from a file an earlier run wrote beside its model (OUT.importance.json) instead of
    /// measuring them (the same model, --groups and --depth-only).
    #[arg(long, value_name = "FILE")]
    importance_from: Option<PathBuf>,
    /// Remove whole blocks only (the networks stay diffusers configs; see --diffusers).
    #[arg(long)]
    depth_only: bool,
    /// Hidden channels are removed in this many groups per layer.
    #[arg(long, default_value_t = 16)]
    groups: i64,
    /// Seed of a model built from a config.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// The pruned model's name (default: the model's, with `-pruned`).
    #[arg(long)]
    name: Option<String>,
    /// The model file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Write float16 weights (half the size) instead of float32.
    #[arg(long)]
    half: bool,
    /// Also write the pruned model as diffusers folders here (whole-block pruning only).
    #[arg(long, value_name = "DIR")]
    diffusers: Option<PathBuf>,
    /// Time one upscale of an --input image with the unpruned and the pruned model, in this process, and
    /// print the ratio.
    #[arg(long)]
    time: bool,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ImportanceArg {
    Taylor,
    Removal,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.output.exists() && !args.overwrite {
        bail!("{} exists; pass --overwrite to replace it", args.output.display());
    }
    let started = Instant::now();
    let (model, vs) = load(&args.model, args.seed)?;
    let config = model.config.clone();
    let (width, height) = parse_size(&args.input)?;
    let scale = args.scale.unwrap_or(config.scale);
    if !config.scales.contains(&scale) {
        bail!("model `{}` does not upscale by {scale} (it supports {:?})", config.name, config.scales);
    }
    prune::check_prunable(&config)?;
    let before = CostReport::new(&ModelConfig::Sana(config.clone()), (height, width), scale);
    let options = PruneOptions {
        target_params: args.target_params.as_deref().map(|t| amount(t, before.params)).transpose()?,
        target_macs: args.target_macs.as_deref().map(|t| amount(t, before.macs)).transpose()?,
        input: (height, width),
        scale,
        importance: match args.importance {
            ImportanceArg::Taylor => Importance::Taylor,
            ImportanceArg::Removal => Importance::Removal,
        },
        depth_only: args.depth_only,
        channel_groups: args.groups,
    };

    let units = prune::units(&config, &options);
    let summary_line = |how: String| {
        eprintln!(
            "{}: {} parameters, {} MACs at {width}x{height} x{scale}; {} units, {how}",
            config.name,
            human(before.params),
            human(before.macs),
            units.len()
        )
    };
    let (scores, measured) = match &args.importance_from {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let read: Scores = serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
            summary_line(format!("{:?} importances read from {}", read.importance, file.display()));
            (read.of(&config, &units)?, read)
        }
        None => {
            let unit = lcm(config.pixels_per_token(), scale as i64);
            let crop = (args.crop + unit - 1) / unit * unit;
            let calibration = Calibration::from_folder(&args.calibration, args.pairs, crop, scale)
                .with_context(|| format!("reading calibration photos from {}", args.calibration.display()))?;
            summary_line(format!(
                "{:?} importance on {} pairs of {crop}x{crop}",
                options.importance,
                calibration.len()
            ));
            let scores = prune::importance(&model, &vs, &units, &calibration, options.importance, |done, total| {
                if done == total || done % 50 == 0 {
                    eprintln!("  importance: {done}/{total}");
                }
            })?;
            let measured = Scores { importance: options.importance, pairs: calibration.len(), crop, units: Vec::new() };
            (scores, measured)
        }
    };
    let (plan, removed) = prune::select(&config, &units, &scores, &options)?;
    let record = Scores {
        units: units
            .iter()
            .zip(&scores)
            .map(|(u, &importance)| Scored { unit: u.name(&config.vae), importance, removed: !plan.keeps(u) })
            .collect(),
        ..measured
    };
    let record_path = args.output.with_extension("importance.json");
    std::fs::write(&record_path, serde_json::to_string_pretty(&record)?)
        .with_context(|| format!("writing {}", record_path.display()))?;
    let (mut pruned_config, weights) = prune::apply(&config, &vs, &plan);
    pruned_config.name = args.name.clone().unwrap_or_else(|| format!("{}-pruned", config.name));
    let after = CostReport::new(&ModelConfig::Sana(pruned_config.clone()), (height, width), scale);
    pruned_config.description = format!(
        "{} pruned by sana-sr prune ({:?} importance, {} calibration pairs) from {} / {} to {} parameters / {} MACs at {width}x{height} x{scale}",
        config.name,
        measured.importance,
        measured.pairs,
        human(before.params),
        human(before.macs),
        human(after.params),
        human(after.macs)
    );
    let (pruned, pruned_vs) = prune::build(&pruned_config, weights, Device::Cpu)?;
    let kind = if args.half { Kind::Half } else { Kind::Float };
    pruned.save(&pruned_vs, &args.output, kind).with_context(|| format!("writing {}", args.output.display()))?;

    println!("{} written ({}), in {:.0} s", args.output.display(), pruned_config.name, started.elapsed().as_secs_f64());
    println!(
        "parameters {} -> {} ({:.1}%), MACs {} -> {} ({:.1}%) at {width}x{height} x{scale}",
        human(before.params),
        human(after.params),
        100.0 * after.params as f64 / before.params as f64,
        human(before.macs),
        human(after.macs),
        100.0 * after.macs as f64 / before.macs as f64
    );
    for (b, a) in before.networks.iter().zip(&after.networks) {
        println!("  {:12} {:>10} -> {:>10} parameters", b.name, human(b.cost.params), human(a.cost.params));
    }
    for (name, stage) in [("encoder", "encoder"), ("decoder", "decoder")] {
        let (b, a) = (before.stage(stage).unwrap_or_default(), after.stage(stage).unwrap_or_default());
        println!("  {name:12} {:>10} -> {:>10} MACs", human(b.macs), human(a.macs));
    }
    let dit = |r: &CostReport| r.stages.iter().filter(|s| s.name.starts_with("transformer")).map(|s| s.cost.macs).sum();
    println!("  {:12} {:>10} -> {:>10} MACs", "transformer", human(dit(&before)), human(dit(&after)));
    println!("removed: {}", summary(&removed));

    if let Some(dir) = &args.diffusers {
        sana_sr_pipeline::diffusers::save(&pruned, &pruned_vs, dir, kind)
            .with_context(|| format!("writing diffusers folders to {}", dir.display()))?;
        println!("{}: the pruned networks as diffusers folders", dir.display());
    }
    if args.time {
        time_both(model, vs, pruned, pruned_vs, (width, height), scale);
    }
    Ok(())
}

/// The model of `spec`, float32 on the CPU: a config JSON is built with random weights from `seed`.
fn load(spec: &str, seed: i64) -> anyhow::Result<(SrModel, nn::VarStore)> {
    let path = Path::new(spec);
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        let ModelConfig::Sana(config) = read_model_config(path)? else {
            bail!("{spec}: a peer network; only SANA-SR models are pruned");
        };
        sana_sr_core::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = SrModel::build(vs.root(), &config)?;
        return Ok((model, vs));
    }
    Ok(ModelSource::resolve(spec)?.load(Device::Cpu)?)
}

/// A target: `N`, `N` with K/M/G/T, or a percentage of `of`.
fn amount(text: &str, of: u64) -> anyhow::Result<u64> {
    let t = text.trim();
    let bad = || anyhow::anyhow!("{text:?}: expected a number (344M, 407.95G, 1.5e6) or a percentage (70%)");
    if let Some(share) = t.strip_suffix('%') {
        let share: f64 = share.trim().parse().map_err(|_| bad())?;
        if !(share > 0.0 && share < 100.0) {
            bail!("{text:?}: a percentage between 0 and 100");
        }
        return Ok((of as f64 * share / 100.0) as u64);
    }
    let (number, unit) = match t.chars().last() {
        Some(c @ ('K' | 'k' | 'M' | 'G' | 'T')) => (&t[..t.len() - 1], c),
        _ => (t, ' '),
    };
    let factor = match unit {
        'K' | 'k' => 1e3,
        'M' => 1e6,
        'G' => 1e9,
        'T' => 1e12,
        _ => 1.0,
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !(value.is_finite() && value > 0.0) {
        return Err(bad());
    }
    Ok((value * factor).round() as u64)
}

fn lcm(a: i64, b: i64) -> i64 {
    let gcd = |mut a: i64, mut b: i64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    a / gcd(a, b) * b
}

/// Counts of removed units by kind.
fn summary(removed: &[sana_sr_model::prune::Unit]) -> String {
    use sana_sr_model::prune::Unit;
    let count = |f: fn(&Unit) -> bool| removed.iter().filter(|u| f(u)).count();
    format!(
        "{} DiT blocks, {} self-attention heads, {} cross-attention heads, {} Mix-FFN channel groups, {} DC-AE blocks, {} DC-AE channel groups",
        count(|u| matches!(u, Unit::DitBlock(_))),
        count(|u| matches!(u, Unit::DitHead(..))),
        count(|u| matches!(u, Unit::DitCrossHead(..))),
        count(|u| matches!(u, Unit::DitFf(..))),
        count(|u| matches!(u, Unit::AeBlock(..))),
        count(|u| matches!(u, Unit::AeHidden(..)))
    )
}

/// One upscale of a random `size` image by each model, alternately, twice each; the faster of each.
fn time_both(model: SrModel, vs: nn::VarStore, pruned: SrModel, pruned_vs: nn::VarStore, size: (i64, i64), scale: u32) {
    let (w, h) = (size.0 as usize, size.1 as usize);
    let image = {
        let t = Tensor::rand([1, 3, h as i64, w as i64], (Kind::Float, Device::Cpu));
        sana_sr_data::tensor::to_image(&t).expect("an NCHW image")
    };
    let upscalers = [Upscaler::new(model, vs), Upscaler::new(pruned, pruned_vs)];
    let options = UpscaleOptions { scale: Some(scale), tile: None, ..Default::default() };
    let time = |u: &Upscaler, image: &Image| {
        let start = Instant::now();
        no_grad(|| u.upscale(image, &options)).expect("the model upscales");
        start.elapsed().as_secs_f64()
    };
    let mut best = [f64::INFINITY; 2];
    for _ in 0..2 {
        for (i, u) in upscalers.iter().enumerate() {
            best[i] = best[i].min(time(u, &image));
        }
    }
    println!(
        "CPU time of one untiled {w}x{h} x{scale} upscale (best of 2, alternating): unpruned {:.2} s, pruned {:.2} s, ratio {:.2}",
        best[0],
        best[1],
        best[0] / best[1]
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_numbers_or_shares() {
        assert_eq!(amount("344M", 0).unwrap(), 344_000_000);
        assert_eq!(amount("407.95G", 0).unwrap(), 407_950_000_000);
        assert_eq!(amount("1.5e6", 0).unwrap(), 1_500_000);
        assert_eq!(amount("70%", 1000).unwrap(), 700);
        assert!(amount("0", 1).is_err() && amount("150%", 1).is_err() && amount("x", 1).is_err());
        assert_eq!(lcm(4, 4), 4);
        assert_eq!(lcm(32, 3), 96);
    }
}

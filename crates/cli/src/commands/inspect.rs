//! `sana-sr inspect`: what one upscale with a model costs, parameters per network and MACs per stage and
//! DiT block, counted from the model's config (`sana_sr_pipeline::cost`), no weights loaded.

use std::path::Path;

use anyhow::Context;
use sana_sr_pipeline::cost::{read_model_config, CostReport, Sampling};
use sana_sr_pipeline::upscaler::check_options;
use sana_sr_pipeline::{ModelConfig, ModelSource, UpscaleOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a built-in name, a model file, a name in the models folder, or a model config JSON (what
    /// `train`'s `[model] config` names, e.g. crates/pipeline/configs/sana-sr-f32c32-600m.model.json, or a peer's).
    model: String,
    /// The LR image, WIDTHxHEIGHT (or one side for a square).
    #[arg(long, default_value = "128x128")]
    input: String,
    /// The upscaling factor (default: the model's).
    #[arg(short, long)]
    scale: Option<u32>,
    /// Sampler steps, as `upscale --steps` runs them (default: the model's own).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale, as `upscale --guidance` runs it (a model with a text encoder).
    #[arg(long, default_value_t = 1.0)]
    guidance: f64,
    /// Print one JSON object (`params`, `macs`, `networks`, `stages`, `modules`) instead of tables.
    #[arg(long)]
    json: bool,
    /// Also list every module (convs and blocks of the encoder and decoder, the DiT's embeddings).
    #[arg(long)]
    modules: bool,
}

/// What is counted, for the printed report (`sana_sr_model::cost` has the long form).
const COUNTED: &str = "Counted: linear and convolution layers and attention's matrix products, MACs = PyTorch \
FlopCounterMode's FLOPs / 2 (checked equal on DC-AE f32c32, Sana 600M/1600M, the Real-ESRGAN peers and Gemma-2); the \
input resize as its resampling products. Not counted: biases, norms, activations, gates, softmax, residual \
adds, shortcuts, pixel (un)shuffles (elementwise work). One untiled pass; tiles overlap and recompute a little.";

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = model_config(&args.model)?;
    let (width, height) = parse_size(&args.input)?;
    // The upscaler's own checks, so that what is counted is a run it would accept.
    let options = UpscaleOptions {
        scale: args.scale,
        tile: None,
        steps: args.steps,
        guidance: args.guidance,
        ..UpscaleOptions::default()
    };
    let scale = check_options(&config, &options)?;
    let sampling = Sampling { steps: options.steps, guidance: options.guidance };
    let report = CostReport::sampled(&config, (height, width), scale, sampling);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report, args.modules));
    }
    Ok(())
}

fn model_config(spec: &str) -> anyhow::Result<ModelConfig> {
    let path = Path::new(spec);
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return read_model_config(path).with_context(|| format!("reading the model config {spec}"));
    }
    Ok(ModelSource::resolve(spec)?.info()?.config)
}

/// `WIDTHxHEIGHT` or one side.
pub fn parse_size(text: &str) -> anyhow::Result<(i64, i64)> {
    let bad = || anyhow::anyhow!("--input {text:?}: expected WIDTHxHEIGHT (e.g. 128x128) or one side");
    let side = |s: &str| s.trim().parse::<i64>().ok().filter(|&n| (1..=1 << 16).contains(&n)).ok_or_else(bad);
    match text.split_once(['x', 'X']) {
        Some((w, h)) => Ok((side(w)?, side(h)?)),
        None => side(text).map(|s| (s, s)),
    }
}

/// `n` with a unit: 1.23 G, 45.6 M, 7.8 K.
pub fn human(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} G", n / 1e9),
        n if n >= 1e6 => format!("{:.2} M", n / 1e6),
        n if n >= 1e3 => format!("{:.2} K", n / 1e3),
        n => format!("{n}"),
    }
}

fn table(report: &CostReport, modules: bool) -> String {
    let (h, w) = report.input;
    let (oh, ow) = report.output;
    let mut out = format!(
        "{} ({}), {}x: {w}x{h} -> {ow}x{oh}\nparameters {} ({}), MACs {} ({})\n",
        report.model,
        report.architecture,
        report.scale,
        human(report.params),
        report.params,
        human(report.macs),
        report.macs
    );
    let networks: Vec<String> =
        report.networks.iter().map(|n| format!("{} {}", n.name, human(n.cost.params))).collect();
    out += &format!("parameters per network: {}\n\n", networks.join(", "));
    let rows = |title: &str, parts: &[sana_sr_model::cost::Part]| {
        let width = parts.iter().map(|p| p.name.len()).max().unwrap_or(0).max(title.len());
        let mut text = format!("{title:width$}  {:>10}  {:>10}  {:>6}\n", "params", "MACs", "MACs %");
        for p in parts {
            let share = 100.0 * p.cost.macs as f64 / report.macs.max(1) as f64;
            text += &format!(
                "{:width$}  {:>10}  {:>10}  {share:>5.1}%\n",
                p.name,
                human(p.cost.params),
                human(p.cost.macs)
            );
        }
        text + &format!(
            "{:width$}  {:>10}  {:>10}  {:>5.1}%\n",
            "total",
            human(report.params),
            human(report.macs),
            100.0
        )
    };
    out += &rows("stage", &report.stages);
    if modules {
        out += "\n";
        out += &rows("module", &report.modules);
    }
    for note in &report.notes {
        out += &format!("\nNote: {note}.");
    }
    out + "\n\n" + COUNTED + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_width_by_height() {
        assert_eq!(parse_size("128x96").unwrap(), (128, 96));
        assert_eq!(parse_size("256").unwrap(), (256, 256));
        assert!(parse_size("0x5").is_err() && parse_size("ax5").is_err() && parse_size("").is_err());
        assert_eq!(human(407_950_000_000), "407.95 G");
        assert_eq!(human(344_000_000), "344.00 M");
    }
}

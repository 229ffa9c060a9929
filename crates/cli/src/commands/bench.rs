//! `sana-sr bench`: times the real model configs (random weights) on the shapes of the paper's use, one case
//! per process so that peak memory is per case. `tools/bench/compare.py` runs the same cases through
//! diffusers/PyTorch in the same run and prints the ratio; the figures are in docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sana_sr_core::precision::{with_compute_kind, with_weights_cast_in_place, Precision};
use sana_sr_core::{nn, no_grad, Kind, Tensor};
use sana_sr_model::autoencoders::{AutoencoderDc, AutoencoderDcConfig};
use sana_sr_model::transformers::{SanaTransformer2DModel, SanaTransformerConfig};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The case to time (see --list).
    #[arg(long, required_unless_present_any = ["list", "write_configs"])]
    case: Option<String>,
    /// Print the case names.
    #[arg(long)]
    list: bool,
    /// Write the config.json of every benchmarked model into this folder (for the PyTorch side) and stop.
    #[arg(long, value_name = "DIR")]
    write_configs: Option<PathBuf>,
    /// CPU threads for libtorch.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=1024))]
    threads: i32,
    /// Timed repetitions after one warm-up; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    repeats: u16,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// What the convolutions and linear layers compute in, as `upscale --precision`.
    #[arg(long, default_value = "auto", value_parser = super::precision_arg)]
    precision: Precision,
}

enum Model {
    DcAe,
    Sana600m,
    Sana1600m,
}

enum Op {
    Encode,
    Decode,
    Forward,
}

/// (name, model, operation, spatial size of the input: pixels for encode, latent cells otherwise)
const CASES: [(&str, Model, Op, i64); 6] = [
    ("dcae-encode-512", Model::DcAe, Op::Encode, 512),
    ("dit-600m-16", Model::Sana600m, Op::Forward, 16),
    ("dit-600m-32", Model::Sana600m, Op::Forward, 32),
    ("dit-1600m-16", Model::Sana1600m, Op::Forward, 16),
    ("dit-1600m-32", Model::Sana1600m, Op::Forward, 32),
    ("dcae-decode-512", Model::DcAe, Op::Decode, 16),
];

/// Caption tokens of SANA's text encoder (Gemma-2 2B, 300 tokens), all valid.
const CAPTION_TOKENS: i64 = 300;

#[derive(Serialize)]
struct Report<'a> {
    case: &'a str,
    #[serde(rename = "impl")]
    implementation: &'static str,
    /// The compute precision `--precision` came to on the device.
    precision: &'static str,
    median_s: f64,
    times_s: Vec<f64>,
    peak_rss_mib: u64,
}

pub fn run(args: Args) -> Result<()> {
    if args.list {
        CASES.iter().for_each(|(name, ..)| println!("{name}"));
        return Ok(());
    }
    if let Some(dir) = &args.write_configs {
        return write_configs(dir);
    }
    let name = args.case.as_deref().expect("clap requires --case here");
    let Some((_, model, op, size)) = CASES.iter().find(|(n, ..)| *n == name) else {
        bail!("unknown case `{name}`; `sana-sr bench --list` prints them");
    };
    let device = sana_sr_core::parse_device(&args.device)?;
    // The shapes repeat, as in PyTorch's timing (tools/bench/reference.py): cuDNN times its algorithms for
    // each convolution during the warm-up and keeps the fastest.
    sana_sr_core::device::autotune_convolutions(device);
    sana_sr_core::set_num_threads(args.threads);
    sana_sr_core::manual_seed(0);

    let mut vs = nn::VarStore::new(device);
    let step: Box<dyn Fn() -> Tensor> = match (model, op) {
        (Model::DcAe, Op::Encode) => {
            let ae = AutoencoderDc::new(vs.root(), &AutoencoderDcConfig::dc_ae_f32c32_sana_1_0())?;
            let x = Tensor::randn([1, 3, *size, *size], (Kind::Float, device));
            Box::new(move || ae.encode(&x).expect("a 512² image fits the DC-AE"))
        }
        (Model::DcAe, Op::Decode) => {
            let config = AutoencoderDcConfig::dc_ae_f32c32_sana_1_0();
            let z = Tensor::randn([1, config.latent_channels, *size, *size], (Kind::Float, device));
            let ae = AutoencoderDc::new(vs.root(), &config)?;
            Box::new(move || ae.decode(&z).expect("the latent has the config's channels"))
        }
        (Model::Sana600m | Model::Sana1600m, Op::Forward) => {
            let config = transformer_config(model);
            let z = Tensor::randn([1, config.in_channels, *size, *size], (Kind::Float, device));
            let text = Tensor::randn([1, CAPTION_TOKENS, config.caption_channels], (Kind::Float, device));
            let mask = Tensor::ones([1, CAPTION_TOKENS], (Kind::Float, device));
            let t = Tensor::from_slice(&[999.0f32]).to_device(device);
            let dit = SanaTransformer2DModel::new(vs.root(), &config)?;
            Box::new(move || dit.forward(&z, &text, &t, Some(&mask), None).expect("inputs match the config"))
        }
        _ => unreachable!("every case pairs a model with an operation it has"),
    };

    vs.freeze();
    // As `upscale` runs: the weights converted to the precision at the first call, not held twice.
    let times = with_weights_cast_in_place(|| {
        with_compute_kind(args.precision.compute_kind(device), || {
            no_grad(|| {
                let _ = step(); // warm-up: allocator and oneDNN primitive caches
                (0..args.repeats)
                    .map(|_| {
                        let start = Instant::now();
                        let out = step();
                        let _ = out.sum(Kind::Float).double_value(&[]); // wait for the device
                        start.elapsed().as_secs_f64()
                    })
                    .collect::<Vec<_>>()
            })
        })
    });
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let report = Report {
        case: name,
        implementation: "sana-sr",
        precision: args.precision.resolved_name(device),
        median_s: sorted[sorted.len() / 2],
        times_s: times,
        peak_rss_mib: peak_rss_mib(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn transformer_config(model: &Model) -> SanaTransformerConfig {
    match model {
        Model::Sana600m => SanaTransformerConfig::sana_600m_1024px(),
        _ => SanaTransformerConfig::sana_1600m_1024px(),
    }
}

fn write_configs(dir: &Path) -> Result<()> {
    let save = |name: &str, json: String| -> Result<()> {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        std::fs::write(sub.join("config.json"), json).with_context(|| format!("writing {}", sub.display()))
    };
    save("dc-ae-f32c32-sana-1.0", serde_json::to_string_pretty(&AutoencoderDcConfig::dc_ae_f32c32_sana_1_0())?)?;
    save("sana-600m", serde_json::to_string_pretty(&transformer_config(&Model::Sana600m))?)?;
    save("sana-1600m", serde_json::to_string_pretty(&transformer_config(&Model::Sana1600m))?)?;
    Ok(())
}

/// Peak resident memory of this process (`VmHWM` of /proc/self/status).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

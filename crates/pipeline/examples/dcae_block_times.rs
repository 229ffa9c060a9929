//! Where a model's autoencoder spends its time, block by block: the DC-AE encoder on a random image of the
//! output size and the decoder on a random latent of the matching grid, whole (no tiles), timed between the
//! blocks' trace points; the mean of RUNS passes after one warm-up.
//!
//!     cargo run --release -p sana-sr-pipeline --example dcae_block_times -- [MODEL] [WIDTHxHEIGHT] [f32|bf16]
//!
//! Defaults: the built-in model, 1200x1000 (the speed photo's output), bf16. `upscale --profile` gives the
//! whole command's stages; this splits its encoder and decoder rows.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use sana_sr_core::precision::with_compute_kind;
use sana_sr_core::{no_grad, Device, Kind, Tensor};
use sana_sr_pipeline::registry::ModelSource;

fn main() -> Result<()> {
    // The binary's allocator settings: without them the blocks' times include the page faults of fresh buffers.
    sana_sr_core::allocator::reuse_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let source = ModelSource::resolve(args.first().map_or(sana_sr_pipeline::registry::DEFAULT_MODEL, |s| s))?;
    let size = args.get(1).map_or("1200x1000", |s| s);
    let (width, height) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<i64>().ok()?, h.parse::<i64>().ok()?)))
        .with_context(|| format!("`{size}` is not WIDTHxHEIGHT"))?;
    let kind = match args.get(2).map_or("bf16", |s| s) {
        "f32" => None,
        "bf16" => Some(Kind::BFloat16),
        other => bail!("`{other}` is not f32 or bf16"),
    };
    let runs: u32 = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);

    let (model, _weights) = source.load(Device::Cpu)?;
    let (latent_height, latent_width) = (model.vae.encoder.latent_size(height, width))
        .with_context(|| format!("the autoencoder cannot encode {width}x{height}"))?;
    let channels_last = |t: Tensor| t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
    let image = channels_last(Tensor::rand([1, 3, height, width], (Kind::Float, Device::Cpu)) * 2.0 - 1.0);
    let latent_shape = [1, model.vae.config.latent_channels, latent_height, latent_width];
    let latent = channels_last(Tensor::randn(latent_shape, (Kind::Float, Device::Cpu)));

    // (block, summed seconds) in the order the blocks run.
    let mut totals: Vec<(String, f64)> = Vec::new();
    for run in 0..=runs {
        no_grad(|| {
            with_compute_kind(kind, || {
                for side in ["encoder", "decoder"] {
                    let mut last = Instant::now();
                    let mut trace = |block: &str, _: &Tensor| {
                        let seconds = last.elapsed().as_secs_f64();
                        if run > 0 {
                            let name = format!("{side} {block}");
                            match totals.iter_mut().find(|(n, _)| *n == name) {
                                Some((_, total)) => *total += seconds,
                                None => totals.push((name, seconds)),
                            }
                        }
                        last = Instant::now();
                    };
                    let _ = match side {
                        "encoder" => model.vae.encoder.forward_traced(&image, &mut trace),
                        _ => model.vae.decoder.forward_traced(&latent, &mut trace),
                    };
                }
            })
        });
    }
    let all: f64 = totals.iter().map(|(_, s)| s).sum();
    println!(
        "{} at {width}x{height}, {}, mean of {runs}:",
        source.label(),
        if kind.is_some() { "bf16" } else { "f32" }
    );
    for (name, seconds) in &totals {
        println!("{:8.1} ms {:5.1}%  {name}", seconds / f64::from(runs) * 1e3, seconds / all * 100.0);
    }
    println!("{:8.1} ms         total", all / f64::from(runs) * 1e3);
    Ok(())
}

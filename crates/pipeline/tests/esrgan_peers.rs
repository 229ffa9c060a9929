//! The released peers, imported from their ncnn files, against the ncnn engine they ship with, on every Set5
//! and Set14 LR image: PSNR between the two 8-bit outputs at least 45 dB. Runs only when the files are there
//! (skips with a message otherwise):
//!
//! ```sh
//! scripts/fetch_peers.sh                      # imports both into the models folder ($SANA_SR_MODELS)
//! D=../shared/datasets; for m in realesrgan-x4plus realesr-general-x4v3; do
//!   P=$([ $m = realesrgan-x4plus ] || echo --param data/peers/package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.param)
//!   .venv/bin/python scripts/realesrgan_peer.py Set5=$D/Set5/LR_bicubic/X4 Set14=$D/Set14/LR_bicubic/X4 \
//!     --out data/peers/ncnn/$m $P
//! done
//! cargo test --release -p sana-sr-pipeline --test esrgan_peers -- --nocapture
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sana_sr_core::Device;
use sana_sr_data::io::read_image;
use sana_sr_data::Image;
use sana_sr_pipeline::{ModelSource, UpscaleOptions, Upscaler};

const MODELS: [&str; 2] = ["realesrgan-x4plus", "realesr-general-x4v3"];
const SETS: [&str; 2] = ["Set5", "Set14"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// PSNR between two images as 8-bit codes (each value rounded to the nearest of 0..=255).
fn psnr_8bit(a: &Image, b: &Image) -> f64 {
    assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
    let code = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as f64;
    let mse = a.data.iter().zip(&b.data).map(|(x, y)| (code(*x) - code(*y)).powi(2)).sum::<f64>() / a.data.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// `stem -> seconds` from the ncnn run's timings.csv.
fn ncnn_seconds(dir: &Path) -> HashMap<String, f64> {
    let text = std::fs::read_to_string(dir.join("timings.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn imported_peers_match_the_ncnn_engine_on_set5_and_set14() {
    let datasets = repo().join("../shared/datasets");
    for model in MODELS {
        let Ok(source) = ModelSource::resolve(model) else {
            println!("skipped {model}: not in the models folder (scripts/fetch_peers.sh imports it)");
            continue;
        };
        let upscaler = Upscaler::load(&source, Device::Cpu).unwrap();
        for set in SETS {
            let reference = repo().join("data/peers/ncnn").join(model).join(set);
            let lr_dir = datasets.join(set).join("LR_bicubic/X4");
            if !reference.is_dir() || !lr_dir.is_dir() {
                println!(
                    "skipped {model} on {set}: no {} or {} (see this test's doc)",
                    reference.display(),
                    lr_dir.display()
                );
                continue;
            }
            let seconds = ncnn_seconds(&reference);
            let mut lr_files: Vec<PathBuf> = std::fs::read_dir(&lr_dir).unwrap().map(|e| e.unwrap().path()).collect();
            lr_files.sort();
            let (mut worst, mut ours_total, mut ncnn_total) = (f64::INFINITY, 0.0, 0.0);
            for lr_path in lr_files {
                let stem = lr_path.file_stem().unwrap().to_string_lossy().into_owned();
                let lr = read_image(&lr_path).unwrap().to_rgb();
                let start = Instant::now();
                let ours = upscaler.upscale(&lr, &UpscaleOptions::default()).unwrap();
                let ours_seconds = start.elapsed().as_secs_f64();
                let theirs = read_image(reference.join(format!("{stem}.png"))).unwrap().to_rgb();
                let psnr = psnr_8bit(&ours, &theirs);
                let ncnn = seconds.get(&stem).copied().unwrap_or(f64::NAN);
                println!("{model} {set}/{stem}: {psnr:.2} dB; {ours_seconds:.2} s here, {ncnn:.2} s ncnn");
                worst = worst.min(psnr);
                ours_total += ours_seconds;
                ncnn_total += ncnn;
                assert!(psnr >= 45.0, "{model} {set}/{stem}: {psnr:.2} dB from the ncnn engine's output");
            }
            println!(
                "{model} {set}: worst {worst:.2} dB; {ours_total:.1} s here vs {ncnn_total:.1} s ncnn (ratio {:.2})",
                ours_total / ncnn_total
            );
        }
    }
}

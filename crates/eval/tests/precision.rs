//! Inference in bfloat16 (`--precision bf16`) against float32 on the benchmark sets (`shared/datasets`, beside the
//! repository), as a user gets them: 8-bit outputs of the built-in model, PSNR-Y with the sets' 4-pixel border.

use std::path::PathBuf;

use sana_sr_core::precision::Precision;
use sana_sr_core::Device;
use sana_sr_data::Image;
use sana_sr_eval::{dataset, inputs};
use sana_sr_metrics::psnr_y;
use sana_sr_pipeline::{ModelSource, UpscaleOptions, Upscaler};

fn datasets() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    assert!(dir.is_dir(), "benchmark sets expected at {} (shared/ beside the repository)", dir.display());
    dir
}

fn eight_bit(image: Image) -> Image {
    let data = image.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0).collect();
    Image::new(image.width, image.height, image.channels, data)
}

#[test]
fn bfloat16_inference_keeps_the_built_in_models_quality() {
    // bfloat16 keeps 8 significant bits: each layer's output moves by up to 2^-9 of its size, far below an 8-bit
    // level through the few layers of the built-in model. The bounds: the set's mean PSNR-Y against the ground
    // truth within 0.05 dB of float32's, and every bf16 output at least 40 dB from the f32 one (measured:
    // 0.002 dB at most, and 56.6 dB or more).
    let upscaler = Upscaler::load(&ModelSource::default_model(), Device::Cpu).unwrap();
    let run = |lr: &Image, precision| {
        eight_bit(upscaler.upscale(lr, &UpscaleOptions { precision, ..Default::default() }).unwrap())
    };
    for name in ["Set5", "Set14", "ImageNet-ValSR"] {
        let set = dataset::open(name, &datasets().join(name), 4).unwrap();
        let (mut f32_total, mut bf16_total, mut closest) = (0.0, 0.0, f64::INFINITY);
        for sample in &set.samples {
            let inputs = inputs::load(sample, 4).unwrap();
            let gt = inputs.gt.expect("the sets have ground truth");
            let (full, half) = (run(&inputs.lr, Precision::F32), run(&inputs.lr, Precision::Bf16));
            f32_total += psnr_y(&full, &gt, 4).unwrap();
            bf16_total += psnr_y(&half, &gt, 4).unwrap();
            let between = psnr_y(&half, &full, 4).unwrap();
            assert!(between < f64::INFINITY, "{name}/{}: bf16 changed nothing", sample.name);
            closest = closest.min(between);
        }
        let n = set.samples.len() as f64;
        let (f32_mean, bf16_mean) = (f32_total / n, bf16_total / n);
        println!("{name}: PSNR-Y f32 {f32_mean:.3} dB, bf16 {bf16_mean:.3} dB; bf16 vs f32 at least {closest:.1} dB");
        assert!((f32_mean - bf16_mean).abs() <= 0.05, "{name}: {f32_mean} vs {bf16_mean}");
        assert!(closest >= 40.0, "{name}: {closest} dB");
    }
}

//! Peer networks (Real-ESRGAN's generators) through the model file and the upscaler: tiles against the whole
//! image, sizes, alpha, progress, and what a peer file is refused for.

use sana_sr_core::{manual_seed, nn, no_grad, Device, Kind};
use sana_sr_data::tensor::to_tensor;
use sana_sr_data::Image;
use sana_sr_model::esrgan::{EsrganConfig, RrdbNetConfig, SrVggNetCompactConfig};
use sana_sr_pipeline::upscaler::forward_batch;
use sana_sr_pipeline::{
    EsrganModel, EsrganModelConfig, ModelConfig, ModelError, ModelSource, Network, UpscaleError, UpscaleOptions,
    Upscaler,
};

/// A random RRDBNet of 2 blocks.
fn tiny_rrdbnet_file(dir: &std::path::Path) -> std::path::PathBuf {
    let network =
        EsrganConfig::Rrdbnet(RrdbNetConfig { num_feat: 8, num_block: 2, num_grow_ch: 4, ..Default::default() });
    model_file(dir, "tiny-rrdbnet", network, 1.0)
}

/// A random peer with its conv weights multiplied by `gain`, saved as a model file.
fn model_file(dir: &std::path::Path, name: &str, network: EsrganConfig, gain: f64) -> std::path::PathBuf {
    manual_seed(3);
    let config = EsrganModelConfig { name: name.into(), description: "random".into(), network };
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Network::Esrgan(EsrganModel::build(vs.root(), &config).unwrap());
    no_grad(|| {
        for (key, mut t) in vs.variables() {
            if key.ends_with("weight") && t.dim() == 4 {
                let _ = t.f_mul_scalar_(gain).unwrap();
            }
        }
    });
    let path = dir.join(format!("{name}.safetensors"));
    model.save(&vs, &path, Kind::Float).unwrap();
    path
}

fn test_image(width: usize, height: usize, channels: usize) -> Image {
    let data = (0..width * height * channels)
        .map(|i| {
            let (x, y) = ((i / channels) % width, (i / channels) / width);
            let v = 0.5 + 0.3 * ((x as f32 * 0.37).sin() * (y as f32 * 0.21).cos()) + 0.1 * ((i % 7) as f32 / 7.0);
            v.clamp(0.0, 1.0)
        })
        .collect();
    Image::new(width, height, channels, data)
}

/// The weights' multiple over torch's initialisation in the seam test: at 1.0 the random net's far pixels
/// fade so fast that tiles equal the whole image (157 dB); at 2.4 every layer amplifies, a stress case for
/// the blending (the released networks are measured against the whole image in `esrgan_peers.rs`).
const GAIN: f64 = 2.4;

fn psnr(a: &Image, b: &Image) -> f64 {
    let mse = (to_tensor(a, Device::Cpu) - to_tensor(b, Device::Cpu)).square().mean(Kind::Double).double_value(&[]);
    10.0 * (1.0 / mse).log10()
}

#[test]
fn a_peer_runs_tiled_within_the_seam_bound_of_its_whole_output() {
    let dir = tempfile::tempdir().unwrap();
    // 24 convs with a gain above one: a receptive field of 25 LR pixels each side that far pixels really
    // reach, past the 10-pixel margin of the smallest tiles, so tiling changes the output.
    let network =
        EsrganConfig::SrvggnetCompact(SrVggNetCompactConfig { num_feat: 16, num_conv: 22, ..Default::default() });
    let path = model_file(dir.path(), "deep-vgg", network, GAIN);
    let source = ModelSource::resolve(path.to_str().unwrap()).unwrap();
    let upscaler = Upscaler::load(&source, Device::Cpu).unwrap();
    let image = test_image(150, 100, 3);
    let whole = upscaler.upscale(&image, &UpscaleOptions { scale: None, tile: None, ..Default::default() }).unwrap();
    assert_eq!((whole.width, whole.height, whole.channels), (600, 400, 3));
    let mut progress = Vec::new();
    // 64 LR pixels a tile (the smallest allowed): 4 x 3 tiles with 10-pixel margins.
    let tiled = upscaler
        .upscale_with_progress(&image, &UpscaleOptions { scale: None, tile: Some(256), ..Default::default() }, |p| {
            progress.push(p)
        })
        .unwrap();
    assert_eq!(progress.len(), 12, "{progress:?}");
    assert_eq!(progress.last().unwrap().done, progress.last().unwrap().total);
    // Told to stop after the first tile, it runs no other.
    let mut calls = 0;
    let stopped = upscaler.upscale_interruptible(
        &image,
        &UpscaleOptions { scale: None, tile: Some(256), ..Default::default() },
        |_| {
            calls += 1;
            std::ops::ControlFlow::Break(())
        },
    );
    assert!(matches!(stopped, Err(UpscaleError::Cancelled)), "{stopped:?}");
    assert_eq!(calls, 1);
    let fidelity = psnr(&tiled, &whole);
    println!("tiled vs whole: {fidelity:.1} dB");
    // Measured 58.1 dB on this net (its receptive field reaches past the margin, so tiles do differ; under a
    // quarter of an 8-bit step on average); a misplaced tile or an unblended seam costs tens of dB.
    assert!(fidelity > 50.0, "tiled vs whole: {fidelity:.1} dB");
}

#[test]
fn peers_keep_alpha_run_at_their_one_scale_and_refuse_small_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_rrdbnet_file(dir.path());
    let upscaler = Upscaler::load(&ModelSource::File(path), Device::Cpu).unwrap();
    let rgba = upscaler.upscale(&test_image(9, 7, 4), &UpscaleOptions::default()).unwrap();
    assert_eq!((rgba.width, rgba.height, rgba.channels), (36, 28, 4));
    let gray = upscaler.upscale(&test_image(5, 1, 1), &UpscaleOptions::default()).unwrap();
    assert_eq!((gray.width, gray.height, gray.channels), (20, 4, 3));
    assert!(rgba.data.iter().chain(&gray.data).all(|v| (0.0..=1.0).contains(v)));

    let err = upscaler
        .upscale(&test_image(8, 8, 3), &UpscaleOptions { scale: Some(2), tile: None, ..Default::default() })
        .unwrap_err();
    assert!(matches!(err, UpscaleError::Scale { scale: 2, .. }), "{err}");
    assert!(err.to_string().contains("[4]"), "{err}");
    let err = upscaler
        .upscale(&test_image(8, 8, 3), &UpscaleOptions { scale: None, tile: Some(200), ..Default::default() })
        .unwrap_err();
    assert!(matches!(err, UpscaleError::Tile { tile: 200, min: 256 }), "{err}");
    let err =
        upscaler.upscale(&test_image(8, 8, 3), &UpscaleOptions { steps: Some(4), ..Default::default() }).unwrap_err();
    assert!(matches!(err, UpscaleError::Steps(_)) && err.to_string().contains("takes no sampler steps"), "{err}");
}

#[test]
fn a_peer_file_lists_its_architecture_and_is_not_a_sana_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_rrdbnet_file(dir.path());
    let source = ModelSource::File(path.clone());
    let info = source.info().unwrap();
    assert!(matches!(info.config, ModelConfig::Esrgan(_)));
    assert_eq!(
        (info.config.architecture(), info.config.scales(), info.config.name()),
        ("RRDBNet", vec![4], "tiny-rrdbnet")
    );
    let (network, vs) = source.load_network(Device::Cpu).unwrap();
    assert_eq!(info.parameters as usize, vs.variables().values().map(|t| t.numel()).sum::<usize>());
    assert!(network.as_sana().is_none());

    let err = source.load(Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::NotSana { .. }), "{err}");
    assert!(err.to_string().contains("RRDBNet, a peer network"), "{err}");

    // The built-in model still loads as both.
    let builtin = ModelSource::default_model();
    assert_eq!(builtin.info().unwrap().config.architecture(), "SANA-SR");
    assert!(builtin.load_network(Device::Cpu).unwrap().0.as_sana().is_some());
}

#[test]
fn the_batch_forward_is_the_upscalers_whole_image_before_its_clamp() {
    // What the trainer's teachers run: the same numbers as `upscale` without tiles, for either kind of model.
    let dir = tempfile::tempdir().unwrap();
    let image = test_image(20, 14, 3);
    for source in [ModelSource::File(tiny_rrdbnet_file(dir.path())), ModelSource::default_model()] {
        let upscaler = Upscaler::load(&source, Device::Cpu).unwrap();
        let whole =
            upscaler.upscale(&image, &UpscaleOptions { scale: None, tile: None, ..Default::default() }).unwrap();
        let scale = upscaler.model.config().scale();
        let sr = no_grad(|| forward_batch(&upscaler.model, &to_tensor(&image, Device::Cpu), scale)).unwrap();
        assert_eq!(sr.size(), [1, 3, 14 * scale as i64, 20 * scale as i64]);
        let sr = ((sr + 1.0) / 2.0).clamp(0.0, 1.0);
        // A SANA-SR model works in [-1, 1] terms: the same numbers. A peer's [0, 1] output goes to [-1, 1] and
        // back here, `(2x - 1 + 1) / 2`: two roundings of at most 2^-24 each (at magnitudes up to 1), the /2 exact.
        let bound = if matches!(upscaler.model, Network::Sana(_)) { 0.0 } else { 2f64.powi(-23) };
        let diff = (sr - to_tensor(&whole, Device::Cpu)).abs().max().double_value(&[]);
        assert!(diff <= bound, "{}: {diff}", source.label());
    }
}

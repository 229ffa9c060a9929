//! The pipeline end to end on small models: sizes, channels, tiles against whole images, bad requests.

use std::path::Path;

use sana_sr_core::{manual_seed, nn, Device, Kind, Tensor};
use sana_sr_data::resize::interpolate::{interpolate, Mode, Target};
use sana_sr_data::resize::matlab::imresize_tensor;
use sana_sr_data::tensor::to_tensor;
use sana_sr_data::Image;
use sana_sr_model::autoencoders::AutoencoderDcConfig;
use sana_sr_model::esrgan::{EsrganConfig, RrdbNetConfig};
use sana_sr_pipeline::upscaler::{check_options, check_output_size, default_tile, DEFAULT_TILE};
use sana_sr_pipeline::{
    EsrganModelConfig, InputResize, ModelConfig, ModelSource, SrModel, SrModelConfig, UpscaleError, UpscaleOptions,
    Upscaler,
};

fn default_upscaler() -> Upscaler {
    Upscaler::load(&ModelSource::default_model(), Device::Cpu).expect("the built-in model loads")
}

/// A photo-like test image: smooth shading, an edge, and fine texture, values inside (0, 1).
fn test_image(width: usize, height: usize, channels: usize) -> Image {
    let mut data = Vec::with_capacity(width * height * channels);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
            let edge = if u + 0.5 * v > 0.6 { 0.25 } else { 0.0 };
            let texture = 0.08 * ((x as f32 * 1.3).sin() * (y as f32 * 0.7).cos());
            for c in 0..channels {
                let shade = 0.2 + 0.4 * u + 0.2 * v * (c as f32 + 1.0) / channels as f32;
                data.push((shade + edge + texture).clamp(0.02, 0.98));
            }
        }
    }
    Image::new(width, height, channels, data)
}

fn psnr(a: &Image, b: &Image) -> f64 {
    let mse = (to_tensor(a, Device::Cpu) - to_tensor(b, Device::Cpu)).square().mean(Kind::Double).double_value(&[]);
    10.0 * (1.0 / mse).log10()
}

#[test]
fn outputs_are_scale_times_larger_and_keep_alpha() {
    let upscaler = default_upscaler();
    let rgb = upscaler.upscale(&test_image(23, 17, 3), &UpscaleOptions::default()).unwrap();
    assert_eq!((rgb.width, rgb.height, rgb.channels), (92, 68, 3));
    assert!(rgb.data.iter().all(|v| (0.0..=1.0).contains(v)));

    let rgba = upscaler.upscale(&test_image(20, 12, 4), &UpscaleOptions::default()).unwrap();
    assert_eq!((rgba.width, rgba.height, rgba.channels), (80, 48, 4));
    // The default model is x4 only; the previous one, still built in, also upscales by 2 and 3.
    let err = upscaler
        .upscale(&test_image(8, 8, 3), &UpscaleOptions { scale: Some(2), tile: None, ..Default::default() })
        .unwrap_err();
    assert!(err.to_string().contains("scale 2 is not supported"), "{err}");
    let tiny = Upscaler::load(&ModelSource::resolve("sana-sr-tiny").unwrap(), Device::Cpu).unwrap();
    let x2 = tiny
        .upscale(&test_image(20, 12, 3), &UpscaleOptions { scale: Some(2), tile: None, ..Default::default() })
        .unwrap();
    assert_eq!((x2.width, x2.height), (40, 24));
    let gray = upscaler.upscale(&test_image(9, 8, 1), &UpscaleOptions::default()).unwrap();
    assert_eq!((gray.width, gray.height, gray.channels), (36, 32, 3));
}

#[test]
fn tiled_output_matches_the_whole_image() {
    // The tiling itself, on sana-sr-tiny, whose output stays close to its input resize, so that tiles and the
    // whole agree to ~60 dB. The default model changes more, and its linear attention spans each whole tile, so
    // what a tile holds matters more: on a photo 56 dB at the default 1024-pixel tile, 45 dB at 512 (the
    // command-line test checks the default model).
    let upscaler = Upscaler::load(&ModelSource::resolve("sana-sr-tiny").unwrap(), Device::Cpu).unwrap();
    let image = test_image(96, 72, 3);
    let whole = upscaler.upscale(&image, &UpscaleOptions { scale: None, tile: None, ..Default::default() }).unwrap();
    let mut progress = Vec::new();
    let tile = 4 * upscaler.model.as_sana().unwrap().config.pixels_per_token() as u32 * 2;
    let tiled = upscaler
        .upscale_with_progress(&image, &UpscaleOptions { scale: None, tile: Some(tile), ..Default::default() }, |p| {
            progress.push(p)
        })
        .unwrap();
    assert!(progress.len() > 3, "the image was not cut into tiles");
    assert_eq!(progress.last().unwrap().done, progress.last().unwrap().total);
    let fidelity = psnr(&tiled, &whole);
    // sana-sr-tiny measures about 60 dB (at most one 8-bit code apart); seams or misplaced tiles
    // would cost far more.
    assert!(fidelity > 45.0, "tiled vs whole: {fidelity:.1} dB");
}

#[test]
fn bad_requests_are_refused_with_what_was_wrong() {
    let upscaler = default_upscaler();
    let image = test_image(8, 8, 3);
    let err = upscaler.upscale(&image, &UpscaleOptions { scale: Some(8), ..Default::default() }).unwrap_err();
    assert!(matches!(err, UpscaleError::Scale { scale: 8, .. }), "{err}");
    assert!(err.to_string().contains("scale 8 is not supported"), "{err}");

    let empty = Image::new(0, 5, 3, vec![]);
    assert!(matches!(upscaler.upscale(&empty, &UpscaleOptions::default()), Err(UpscaleError::Empty { .. })));

    // Refused before any pixel is touched: the output size alone is over the limit.
    let huge = Image::new(6000, 5000, 1, vec![0.5; 6000 * 5000]);
    let err = upscaler.upscale(&huge, &UpscaleOptions::default()).unwrap_err();
    assert!(matches!(err, UpscaleError::TooLarge { width: 24000, height: 20000, .. }), "{err}");

    let err =
        upscaler.upscale(&image, &UpscaleOptions { scale: None, tile: Some(8), ..Default::default() }).unwrap_err();
    assert!(matches!(err, UpscaleError::Tile { tile: 8, .. }), "{err}");
}

#[test]
fn options_are_checked_from_the_config_before_an_image_is_at_hand() {
    let config = ModelSource::default_model().info().unwrap().config;
    assert_eq!(check_options(&config, &UpscaleOptions::default()).unwrap(), 4);
    assert_eq!(
        check_options(&config, &UpscaleOptions { scale: Some(4), tile: None, ..Default::default() }).unwrap(),
        4
    );
    let err = check_options(&config, &UpscaleOptions { scale: Some(3), tile: None, ..Default::default() }).unwrap_err();
    assert!(matches!(err, UpscaleError::Scale { scale: 3, .. }), "{err}");
    let err = check_options(&config, &UpscaleOptions { scale: None, tile: Some(8), ..Default::default() }).unwrap_err();
    assert!(matches!(err, UpscaleError::Tile { tile: 8, .. }), "{err}");
    let err = check_output_size(6000, 5000, 4).unwrap_err();
    assert!(matches!(err, UpscaleError::TooLarge { width: 24000, height: 20000, .. }), "{err}");
}

#[test]
fn an_interrupted_upscale_runs_no_tile_after_the_break() {
    let upscaler = Upscaler::load(&ModelSource::resolve("sana-sr-tiny").unwrap(), Device::Cpu).unwrap();
    let tile = 4 * upscaler.model.as_sana().unwrap().config.pixels_per_token() as u32;
    let options = UpscaleOptions { scale: None, tile: Some(tile), ..Default::default() };
    let mut seen = Vec::new();
    let result = upscaler.upscale_interruptible(&test_image(96, 72, 3), &options, |p| {
        seen.push(p);
        if p.done == 2 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    assert!(matches!(result, Err(UpscaleError::Cancelled)), "{result:?}");
    assert_eq!(seen.len(), 2, "tiles ran after the break: {seen:?}");
    assert!(seen[1].total > 2, "the image was not cut into tiles: {seen:?}");
}

#[test]
fn model_files_round_trip_and_refuse_other_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let source = ModelSource::default_model();
    let (model, vs) = source.load(Device::Cpu).unwrap();
    let path = dir.path().join("copy.safetensors");
    model.save(&vs, &path, Kind::Float).unwrap();
    let (copy, copy_vs) = SrModel::load(&path, Device::Cpu).unwrap();
    assert_eq!(copy.config, model.config);
    for (name, t) in vs.variables() {
        assert!(t.equal(&copy_vs.variables()[&name]), "{name} differs");
    }
    let info = ModelSource::resolve(path.to_str().unwrap()).unwrap().info().unwrap();
    assert_eq!(info.parameters as i64, SrModel::parameter_count(&vs));

    // A diffusers checkpoint of one network is not a whole model.
    let dc_ae = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/dc_ae/unshuffle/diffusion_pytorch_model.safetensors");
    let err = SrModel::load(&dc_ae, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("not a sana-sr model file") && err.contains("sana_sr_config"), "{err}");

    // A truncated file names itself and the problem.
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = SrModel::load(&truncated, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("truncated.safetensors") && err.contains("not a valid safetensors file"), "{err}");

    // Weights of another config: a shape mismatch that names the key.
    let mut other = model.config.clone();
    other.transformer.num_layers += 1;
    // A pruned model lists each block's widths: the new block repeats the last one's.
    if let Some(widths) = &mut other.transformer.block_widths {
        widths.push(*widths.last().unwrap());
    }
    let other_vs = nn::VarStore::new(Device::Cpu);
    let bigger = SrModel::build(other_vs.root(), &other).unwrap();
    let (tensors, _) = sana_sr_model::checkpoint::read_tensors_from_bytes(&bytes, &path).unwrap();
    let err = sana_sr_model::checkpoint::copy_into(&other_vs, tensors).unwrap_err().to_string();
    assert!(err.contains("missing key") && err.contains("transformer.transformer_blocks."), "{err}");
    drop(bigger);

    let err = ModelSource::resolve("no-such-model").unwrap_err().to_string();
    assert!(err.contains("no model named `no-such-model`") && err.contains("sana-sr-tiny"), "{err}");
}

#[test]
fn the_forward_pass_is_differentiable_for_training() {
    manual_seed(0);
    let (model, vs) = ModelSource::default_model().load(Device::Cpu).unwrap();
    let lr = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let out = model.forward(&lr).unwrap();
    assert_eq!(out.size(), [2, 3, 32, 32]);
    out.square().mean(Kind::Float).backward();
    let with_grad = vs.trainable_variables().iter().filter(|v| v.grad().defined()).count();
    assert_eq!(with_grad, vs.trainable_variables().len());
}

#[test]
fn mixed_precision_computes_in_bfloat16_and_gives_float32_gradients() {
    use sana_sr_core::precision::with_compute_kind;
    manual_seed(0);
    // A fixed model, not the default: how far bfloat16 turns the gradient depends on the weights (on this input
    // 0.959 for an earlier default, sana-sr-compact-pruned-gan-strong, 0.995-1.000 for the others), and this checks
    // the mechanism, not one model's sensitivity.
    let (model, mut vs) = ModelSource::resolve("sana-sr-compact").unwrap().load(Device::Cpu).unwrap();
    vs.float();
    let lr = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let weights = Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let variables = vs.trainable_variables();
    let pass = |kind: Option<Kind>| {
        for v in &variables {
            v.shallow_clone().zero_grad();
        }
        let out = with_compute_kind(kind, || model.forward(&lr)).unwrap();
        (&out.to_kind(Kind::Float) * &weights).sum(Kind::Float).backward();
        let grads: Vec<Tensor> = variables.iter().map(|v| v.grad().flatten(0, -1)).collect();
        assert!(variables.iter().all(|v| v.grad().kind() == Kind::Float), "gradients reach the f32 weights");
        (out.to_kind(Kind::Float), Tensor::cat(&grads, 0))
    };
    let (out32, grad32) = pass(None);
    let (out16, grad16) = pass(Some(Kind::BFloat16));
    let scale = out32.abs().max().double_value(&[]);
    let error = (&out16 - &out32).abs().max().double_value(&[]) / scale;
    // bfloat16 keeps 8 significant bits (relative step 2^-8 = 0.4%); through the networks' layers the output
    // stays within a few steps, and it must differ at all, or the layers did not compute in bfloat16.
    assert!(error < 0.02 && error > 1e-4, "relative output error {error}");
    let cosine = (&grad16 * &grad32).sum(Kind::Double).double_value(&[])
        / (grad16.norm().double_value(&[]) * grad32.norm().double_value(&[]));
    assert!(cosine > 0.99, "gradient direction {cosine}");
}

#[test]
fn an_upscaler_in_one_precision_converts_its_weights_and_refuses_another() {
    use sana_sr_core::precision::Precision;
    let image = test_image(40, 32, 3);
    let bf16 = UpscaleOptions { precision: Precision::Bf16, ..Default::default() };
    let want = default_upscaler().upscale(&image, &bf16).unwrap();
    let upscaler = default_upscaler().in_one_precision(Precision::Bf16);
    let conv_in = |u: &Upscaler| u.model.as_sana().unwrap().vae.decoder.conv_in.weight.kind();
    assert_eq!(conv_in(&upscaler), Kind::Float, "converted at the first upscale, not at load");
    let got = upscaler.upscale(&image, &bf16).unwrap();
    assert_eq!(got.data, want.data, "the same bf16 weights: the same output");
    assert_eq!(conv_in(&upscaler), Kind::BFloat16);
    let f32 = UpscaleOptions { precision: Precision::F32, ..Default::default() };
    let refused = upscaler.upscale(&image, &f32).unwrap_err();
    assert!(matches!(refused, UpscaleError::Precision { fixed: "bf16", asked: "f32" }), "{refused}");
    // Float32 only: nothing to convert, and float32 keeps running.
    let upscaler = default_upscaler().in_one_precision(Precision::F32);
    assert_eq!(upscaler.upscale(&image, &f32).unwrap().data, default_upscaler().upscale(&image, &f32).unwrap().data);
    assert_eq!(conv_in(&upscaler), Kind::Float);
}

#[test]
fn the_input_resize_is_the_one_the_model_config_names() {
    let mut upscaler = default_upscaler();
    let built_in = serde_json::to_value(&upscaler.model.as_sana().unwrap().config).unwrap();
    let config_with = |resize: Option<&str>| {
        let mut json = built_in.clone();
        match resize {
            Some(resize) => json["input_resize"] = resize.into(),
            None => drop(json.as_object_mut().unwrap().remove("input_resize")),
        }
        serde_json::from_value::<SrModelConfig>(json).unwrap()
    };
    // Model files from before the setting existed keep PyTorch's bicubic, which they were trained with.
    assert_eq!(config_with(None).input_resize, InputResize::PytorchBicubic);
    assert_eq!(config_with(Some("matlab_bicubic")).input_resize, InputResize::MatlabBicubic);

    let image = test_image(13, 11, 3);
    let lr = to_tensor(&image, Device::Cpu);
    let mut outputs = Vec::new();
    for resize in ["pytorch_bicubic", "matlab_bicubic"] {
        let model = upscaler.model.as_sana_mut().unwrap();
        model.config = config_with(Some(resize));
        let resized = model.resize_input(&lr, 44, 52);
        let expected = match model.config.input_resize {
            InputResize::PytorchBicubic => {
                interpolate(&lr, Target::Size { height: 44, width: 52 }, Mode::Bicubic).unwrap()
            }
            InputResize::MatlabBicubic => imresize_tensor(&lr, 44, 52).unwrap(),
        };
        assert!(resized.allclose(&expected.clamp(0.0, 1.0), 0.0, 0.0, false), "{resize}");
        outputs.push((resized, upscaler.upscale(&image, &UpscaleOptions::default()).unwrap()));
    }
    assert!((&outputs[0].0 - &outputs[1].0).abs().max().double_value(&[]) > 1e-3, "the two resizes differ");
    assert!(psnr(&outputs[0].1, &outputs[1].1) < 60.0, "the upscaler resized with the config's resize");
}

/// A new model that adds detail to its input starts with none: its output is the resized input itself, and
/// the first gradient reaches the layer that draws the detail.
#[test]
fn a_new_detail_model_starts_as_its_input_resize() {
    let (built_in, _) = ModelSource::default_model().load(Device::Cpu).unwrap();
    assert!(built_in.config.lr_skip);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SrModel::build(vs.root(), &built_in.config).unwrap();
    let lr = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let out = model.forward(&lr).unwrap();
    assert!(out.equal(&lr), "a new model adds detail before training");
    out.square().mean(Kind::Float).backward();
    let drawn = model.vae.decoder.output_layer();
    assert!(drawn.weight.grad().abs().max().double_value(&[]) > 0.0, "no gradient reaches the detail layer");
}

#[test]
fn the_default_tile_grows_as_the_model_narrows() {
    let full_size = AutoencoderDcConfig::dc_ae_f32c32_sana_1_0();
    // Its first stages: 128 channels at full resolution, 256 at half (64 a pixel), and the gated expansion of
    // its first EfficientViT stage, 2 * 2048 channels on the 1/8 grid (64 a pixel).
    assert_eq!(full_size.widest_activation(), 128.0);
    let ModelConfig::Sana(builtin) = ModelSource::default_model().info().unwrap().config else {
        panic!("the built-in model is a SANA-SR model")
    };
    // Its encoder's last stage: 2 * 512 gated channels on the 1/8 grid; sqrt(128 / 16) * 1024 = 2896, capped.
    assert_eq!(builtin.vae.widest_activation(), 16.0);
    assert_eq!(default_tile(&ModelConfig::Sana(builtin.clone())), 2048);
    let on = |vae: AutoencoderDcConfig| default_tile(&ModelConfig::Sana(SrModelConfig { vae, ..builtin.clone() }));
    assert_eq!(on(full_size.clone()), DEFAULT_TILE);
    // Half as wide at full resolution: widest 64, sqrt(2) * 1024.
    let mut half = full_size;
    half.encoder_block_out_channels[0] = 64;
    half.decoder_block_out_channels[0] = 64;
    assert_eq!(half.widest_activation(), 64.0);
    assert_eq!(on(half), 1448);
    let peer = EsrganModelConfig {
        name: "peer".into(),
        description: String::new(),
        network: EsrganConfig::Rrdbnet(RrdbNetConfig::default()),
    };
    assert_eq!(default_tile(&ModelConfig::Esrgan(peer)), DEFAULT_TILE);
}

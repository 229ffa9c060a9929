//! `sana-sr inspect`'s report against what the pipeline really computes: the MACs that the layers record
//! while `forward_batch` runs (the input resize aside, which the report counts as its own stage) and the
//! parameters of the loaded model, for the built-in model, a model config, and a peer.

use std::path::Path;

use sana_sr_core::{manual_seed, nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::Image;
use sana_sr_model::cost::count_macs;
use sana_sr_model::lr_stem::LrStemConfig;
use sana_sr_pipeline::cost::{read_model_config, CostReport, Sampling};
use sana_sr_pipeline::experts::{ExpertKind, ExpertsConfig};
use sana_sr_pipeline::sr_model::{SamplerConfig, Start};
use sana_sr_pipeline::upscaler::{forward_batch, UpscaleOptions, Upscaler};
use sana_sr_pipeline::SrModel;
use sana_sr_pipeline::{EsrganModel, EsrganModelConfig, ModelConfig, ModelSource, Network};

fn params(vs: &nn::VarStore) -> u64 {
    vs.variables()
        .iter()
        .filter(|(name, t)| t.is_floating_point() && !name.ends_with("running_mean") && !name.ends_with("running_var"))
        .map(|(_, t)| t.numel() as u64)
        .sum()
}

fn traced(network: &Network, input: (i64, i64), scale: u32) -> u64 {
    let lr = Tensor::rand([1, 3, input.0, input.1], (Kind::Float, Device::Cpu));
    count_macs(|| no_grad(|| forward_batch(network, &lr, scale).unwrap())).1
}

#[test]
fn the_report_counts_what_the_built_in_model_computes() {
    let (network, vs) = ModelSource::resolve("sana-sr-tiny").unwrap().load_network(Device::Cpu).unwrap();
    let config = network.config();
    // An odd size, so that the resized image is padded to whole tokens before the encoder.
    for (input, scale) in [((29, 23), 4), ((16, 16), 2)] {
        let report = CostReport::new(&config, input, scale);
        let resize = report.stage("input resize").unwrap().macs;
        assert!(resize > 0);
        assert_eq!(traced(&network, input, scale), report.macs - resize, "{input:?} x{scale}");
        assert_eq!(report.params, params(&vs));
        assert_eq!(report.output, (input.0 * scale as i64, input.1 * scale as i64));
    }
    let report = CostReport::new(&config, (128, 128), 4);
    let blocks = report.stages.iter().filter(|s| s.name.starts_with("transformer_blocks.")).count();
    assert_eq!(blocks, network.as_sana().unwrap().config.transformer.num_layers);
    let networks: u64 = report.networks.iter().map(|n| n.cost.params).sum();
    assert_eq!(networks, report.params);
}

#[test]
fn the_report_counts_the_lr_stem_every_step_and_every_expert() {
    let (network, _) = ModelSource::default_model().load_network(Device::Cpu).unwrap();
    let full = ExpertsConfig { kind: ExpertKind::Full, lora: None, boundaries: vec![0.5], bisection: None };
    // LoRA experts on every layer that can be adapted, so that each of the DiT's dense layers is counted.
    let lora = ExpertsConfig {
        kind: ExpertKind::Lora,
        lora: Some(serde_json::from_str(r#"{"rank": 3, "alpha": 3, "targets": ["*"]}"#).unwrap()),
        ..full.clone()
    };
    for (experts, note) in [(full, "experts by noise level"), (lora, "LoRA experts (rank 3) on one DiT")] {
        let mut config = network.as_sana().unwrap().config.clone();
        config.lr_stem = Some(LrStemConfig { channels: vec![4, 8, 8], strides: vec![2, 2, 2] });
        config.transformer.in_channels += 8;
        config.sampler = SamplerConfig { start: Start::Noise, steps: 3, shift: 3.0 };
        config.experts = Some(experts);
        manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let network = Network::Sana(SrModel::build(vs.root(), &config).unwrap());
        let config = network.config();
        let report = CostReport::new(&config, (20, 28), 4);
        let resize = report.stage("input resize").unwrap().macs;
        // The encoder does not run from noise; the stem, three DiT passes and the decoder do.
        assert_eq!(report.stage("encoder").unwrap().macs, 0);
        assert!(report.stage("lr stem").unwrap().macs > 0);
        assert_eq!(traced(&network, (20, 28), 4), report.macs - resize, "{note}");
        assert_eq!(report.params, params(&vs), "{note}");
        let networks: u64 = report.networks.iter().map(|n| n.cost.params).sum();
        assert_eq!(networks, report.params);
        assert!(report.notes.iter().any(|n| n.contains("3 step(s) from noise")), "{:?}", report.notes);
        let intervals = format!(
            "{note}, one {} per step: 0: sigma 0.500-1.000, 1: sigma 0.000-0.500",
            if note.starts_with("LoRA") { "adapter set" } else { "DiT" }
        );
        assert!(report.notes.iter().any(|n| n.contains(&intervals)), "{:?}", report.notes);
    }
}

#[test]
fn model_configs_are_read_and_the_real_stack_is_counted() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let ModelConfig::Sana(c) = read_model_config(&configs.join("sana-sr-f32c32-600m.model.json")).unwrap() else {
        panic!("a SANA-SR config")
    };
    let report = CostReport::new(&ModelConfig::Sana(c), (128, 128), 4);
    // DC-AE f32c32 (153.0 M + 159.2 M) and Sana 600M (591.7 M), as FlopCounterMode counts them in the model
    // crate's fixtures: 647.4 G to encode 512², 1046.1 G to decode, 157.8 G for the DiT on 16² latent cells.
    assert_eq!(report.stage("encoder").unwrap().macs, 647_449_804_800);
    assert_eq!(report.stage("decoder").unwrap().macs, 1_046_076_456_960);
    let dit: u64 = report
        .stages
        .iter()
        .filter(|s| s.name.starts_with("transformer ") || s.name.starts_with("transformer_"))
        .map(|s| s.cost.macs)
        .sum();
    assert_eq!(dit, 157_810_507_776);
    assert_eq!(report.params, 153_027_104 + 159_223_171 + 591_747_872 + 300 * 2304);
    assert!(read_model_config(&configs.join("missing.json")).is_err());
}

#[test]
fn the_report_counts_what_a_peer_computes() {
    let json = r#"{"name": "small", "architecture": "rrdbnet", "num_feat": 8, "num_block": 2, "num_grow_ch": 4}"#;
    let config: EsrganModelConfig = serde_json::from_str(json).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let network = Network::Esrgan(EsrganModel::build(vs.root(), &config).unwrap());
    for input in [(24, 30), (5, 7)] {
        let report = CostReport::new(&ModelConfig::Esrgan(config.clone()), input, 4);
        assert_eq!(traced(&network, input, 4), report.macs, "{input:?}");
        assert_eq!(report.params, params(&vs));
    }
}

#[test]
fn the_report_counts_a_text_encoders_one_prompt() {
    // The tiny SANA-SR stack of the assembly fixtures: Gemma-2 encodes the prompt once, on the first image.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sana_sr_stack");
    let parts = sana_sr_pipeline::assemble::Parts { pipeline: fixtures.join("pipeline"), lora: None, vae: None };
    let (model, vs) = sana_sr_pipeline::assemble::assemble(&parts, "tiny", 900, &|_| {}).unwrap();
    let config = ModelConfig::Sana(model.config.clone());
    let network = Network::Sana(model);
    let report = CostReport::new(&config, (12, 16), 4);
    let text = report.stage("text encoder").unwrap();
    assert!(text.macs > 0 && report.networks.iter().any(|n| n.name == "text_encoder" && n.cost == text));
    assert_eq!(report.params, params(&vs), "the text encoder's parameters, no stored condition");
    let resize = report.stage("input resize").unwrap().macs;
    assert_eq!(traced(&network, (12, 16), 4), report.macs - resize);
    assert_eq!(traced(&network, (12, 16), 4), report.macs - resize - text.macs, "the prompt's condition is kept");

    // Guided by tags, as `upscale --guidance` runs it: the DiT runs again on the empty prompt, which the text
    // encoder encodes too.
    let sampling = Sampling { steps: Some(2), guidance: 3.0 };
    let guided = CostReport::sampled(&config, (12, 16), 4, sampling);
    assert_eq!(guided.stage("text encoder").unwrap().macs, 2 * text.macs);
    let passes: u64 = ["transformer embeddings", "transformer output", "transformer, steps 2-2"]
        .into_iter()
        .map(|name| guided.stage(name).unwrap().macs)
        .chain(guided.stages.iter().filter(|s| s.name.starts_with("transformer_blocks.")).map(|s| s.cost.macs))
        .sum();
    assert_eq!(guided.stage("transformer, empty prompt (guidance)").unwrap().macs, passes);
    let upscaler = Upscaler::new(network, vs);
    let options = UpscaleOptions {
        tile: None,
        steps: sampling.steps,
        guidance: sampling.guidance,
        tags: Some("a cat".into()),
        ..UpscaleOptions::default()
    };
    let lr = Image::new(16, 12, 3, vec![0.5; 16 * 12 * 3]);
    let (_, counted) = count_macs(|| upscaler.upscale(&lr, &options).unwrap());
    assert_eq!(counted, guided.macs - guided.stage("input resize").unwrap().macs);
}

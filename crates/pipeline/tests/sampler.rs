//! The sampler: steps, starts, LinearSR's LR stem and SNR-based experts, on the built-in model and on
//! small random models built from its config.

use sana_sr_core::{manual_seed, nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::Image;
use sana_sr_model::layers::lora;
use sana_sr_model::lr_stem::LrStemConfig;
use sana_sr_pipeline::experts::{Bisection, ExpertKind, ExpertsConfig, PAPER_ANCHOR_SIGMA, PAPER_LOG_SNR_RANGE};
use sana_sr_pipeline::scheduler;
use sana_sr_pipeline::sr_model::Start;
use sana_sr_pipeline::upscaler::check_options;
use sana_sr_pipeline::{ModelSource, Network, SrModel, SrModelConfig, UpscaleError, UpscaleOptions, Upscaler};

fn built_in() -> (SrModel, nn::VarStore) {
    match ModelSource::default_model().load_network(Device::Cpu).unwrap() {
        (Network::Sana(model), vs) => (model, vs),
        _ => panic!("the built-in model is a SANA-SR model"),
    }
}

/// The built-in model's config with an LR stem (8 channels onto its f8 latent grid), a noise start and, if
/// asked, LinearSR's four experts of that kind (LoRA ones of rank 2 on the default layers).
fn linearsr_config(experts: Option<ExpertKind>) -> SrModelConfig {
    let mut config = built_in().0.config;
    config.name = "linearsr-test".into();
    // The built-in model adds its decoder's detail to the resized input, and a new model's detail starts at
    // zero: without the skip the output shows what the sampler did.
    config.lr_skip = false;
    config.lr_stem = Some(LrStemConfig { channels: vec![8, 8, 8], strides: vec![2, 2, 2] });
    config.transformer.in_channels += 8;
    config.sampler.start = Start::Noise;
    config.sampler.shift = 3.0;
    let bisection = Bisection { count: 4, anchor: PAPER_ANCHOR_SIGMA, log_snr: PAPER_LOG_SNR_RANGE };
    config.experts = experts.map(|kind| ExpertsConfig {
        kind,
        lora: (kind == ExpertKind::Lora).then(|| serde_json::from_str(r#"{"rank": 2, "alpha": 2}"#).unwrap()),
        boundaries: vec![],
        bisection: Some(bisection),
    });
    config
}

/// Gives LoRA experts' adapters random updates (they start at zero), so that the experts differ.
fn differ(vs: &nn::VarStore) {
    no_grad(|| {
        for (name, b) in vs.variables() {
            if name.contains(".lora_B.expert_") {
                b.shallow_clone().copy_(&(Tensor::randn(b.size(), (Kind::Float, Device::Cpu)) * 0.05));
            }
        }
    });
}

fn random_model(config: &SrModelConfig) -> (SrModel, nn::VarStore) {
    manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    (SrModel::build(vs.root(), config).unwrap(), vs)
}

fn image(width: usize, height: usize) -> Image {
    let data = (0..width * height * 3).map(|i| 0.1 + 0.8 * ((i * 37 % 101) as f32 / 101.0)).collect();
    Image::new(width, height, 3, data)
}

#[test]
fn one_step_from_the_lr_latent_is_the_one_step_pipeline_bit_for_bit() {
    let (model, _vs) = built_in();
    let lr = Tensor::rand([1, 3, 64, 48], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    no_grad(|| {
        let latent = model.encode(&lr).unwrap();
        // The one-step pipeline written out: the DiT's velocity at the model's timestep, one Euler step to 0.
        let c = &model.config;
        let timestep = Tensor::full([1], c.timestep * c.transformer.timestep_scale, (Kind::Float, Device::Cpu));
        let condition = model.condition.as_ref().unwrap().expand([1, -1, -1], false);
        let velocity = model.transformers[0].forward(&latent, &condition, &timestep, None, None).unwrap();
        let one_step = scheduler::clean_latent(&latent, &velocity, c.timestep / 1000.0);
        assert!(model.sample(&model.encode_lr(&lr).unwrap(), 1).unwrap().equal(&one_step));
        assert!(model.restore(&latent).unwrap().equal(&one_step));
    });
    // Through the upscaler too: `--steps 1` is the default.
    let upscaler = Upscaler::load(&ModelSource::default_model(), Device::Cpu).unwrap();
    let photo = image(30, 22);
    let default = upscaler.upscale(&photo, &UpscaleOptions::default()).unwrap();
    let one = upscaler.upscale(&photo, &UpscaleOptions { steps: Some(1), ..Default::default() }).unwrap();
    assert_eq!(default.data, one.data);
}

#[test]
fn steps_from_the_lr_latent_walk_evenly_down_from_the_model_timestep() {
    let (model, _vs) = built_in();
    let t = model.config.timestep;
    let schedule = model.schedule(4);
    assert_eq!(schedule.timesteps, [t, t * 0.75, t * 0.5, t * 0.25]);
    let sigmas: Vec<f64> = [1.0, 0.75, 0.5, 0.25, 0.0].iter().map(|f| t * f / 1000.0).collect();
    for (got, want) in schedule.sigmas.iter().zip(&sigmas) {
        assert!((got - want).abs() < 1e-15, "{:?}", schedule.sigmas);
    }
    // Four steps are four passes of the DiT at those timesteps, chained by the Euler update.
    let lr = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    no_grad(|| {
        let start = model.encode_lr(&lr).unwrap();
        let mut x = start.shallow_clone();
        for k in 0..4 {
            let v = model.velocity(&x, schedule.timesteps[k], schedule.sigmas[k]).unwrap();
            x = scheduler::euler_step(&x, &v, schedule.sigmas[k], schedule.sigmas[k + 1]);
        }
        let four = model.sample(&start, 4).unwrap();
        assert!(four.equal(&x));
        assert!(!four.equal(&model.sample(&start, 1).unwrap()), "more steps change the result");
    });
}

#[test]
fn a_noise_start_is_seeded_and_runs_in_tiles() {
    let (model, vs) = random_model(&linearsr_config(None));
    let upscaler = Upscaler::new(model, vs);
    let photo = image(40, 24);
    let run = |seed: u64, tile: Option<u32>| {
        upscaler.upscale(&photo, &UpscaleOptions { tile, steps: Some(2), seed, ..Default::default() }).unwrap()
    };
    let first = run(5, None);
    assert!(first.data == run(5, None).data, "the same seed gives the same image");
    assert!(first.data != run(6, None).data, "another seed another image");
    assert_eq!((first.width, first.height), (160, 96));
    // Tiles of 64 output pixels (8 tokens) cut the stem's features and the latent; the noise is drawn once for
    // the whole image before the DiT's tiles.
    let tiled = run(5, Some(64));
    assert_eq!((tiled.width, tiled.height), (160, 96));
}

#[test]
fn a_noise_start_follows_diffusers_schedule_and_the_stem_features_stay() {
    let (model, _vs) = random_model(&linearsr_config(None));
    let schedule = model.schedule(4);
    assert_eq!(schedule, scheduler::flow_match_schedule(4, 3.0));
    let lr = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    no_grad(|| {
        let encoded = model.encode_lr(&lr).unwrap();
        assert_eq!(encoded.size(), [1, 8, 4, 4], "a noise start encodes the stem's features only");
        let start = model.with_start_noise(encoded.shallow_clone(), 3);
        assert_eq!(start.size(), [1, 40, 4, 4]);
        assert!(start.narrow(1, 32, 8).equal(&encoded));
        let noise = start.narrow(1, 0, 32);
        let (mean, std) = (noise.mean(Kind::Double).double_value(&[]), noise.std(true).double_value(&[]));
        // 512 standard normal samples: mean within 4.5 standard errors (0.2), deviation within 0.15.
        assert!(mean.abs() < 0.2 && (std - 1.0).abs() < 0.15, "{mean} {std}");
        let out = model.sample(&start, 4).unwrap();
        assert_eq!(out.size(), [1, 32, 4, 4]);
    });
}

#[test]
fn each_step_runs_the_expert_of_its_noise_level() {
    for kind in [ExpertKind::Full, ExpertKind::Lora] {
        let (model, vs) = random_model(&linearsr_config(Some(kind)));
        differ(&vs);
        assert_eq!(model.transformers.len(), if kind == ExpertKind::Full { 4 } else { 1 });
        let router = model.router.as_ref().unwrap();
        let input = Tensor::randn([1, 40, 4, 4], (Kind::Float, Device::Cpu));
        no_grad(|| {
            let condition = model.condition.as_ref().unwrap().expand([1, -1, -1], false);
            let direct = |k: usize, t: f64| {
                let timestep =
                    Tensor::full([1], t * model.config.transformer.timestep_scale, (Kind::Float, Device::Cpu));
                let (dit, adapters) = match kind {
                    ExpertKind::Full => (&model.transformers[k], 0),
                    ExpertKind::Lora => (&model.transformers[0], k),
                };
                lora::with_active_expert(adapters, || dit.forward(&input, &condition, &timestep, None, None).unwrap())
            };
            for sigma in [0.95, 0.5, 0.1, 0.03] {
                let k = router.expert(sigma);
                let got = model.velocity(&input, sigma * 1000.0, sigma).unwrap();
                assert!(got.equal(&direct(k, sigma * 1000.0)), "{kind:?}, sigma {sigma}: expert {k}");
                let other = (k + 1) % 4;
                assert!(!got.equal(&direct(other, sigma * 1000.0)), "{kind:?}: the experts differ");
            }
            // A 4-step schedule from noise with shift 3 has sigmas 1, 0.858, 0.602, 0.009: experts 0, 0, 1, 3.
            let visited: Vec<usize> = model.schedule(4).sigmas[..4].iter().map(|&s| router.expert(s)).collect();
            assert_eq!(visited, [0, 0, 1, 3]);
        });
    }
}

#[test]
fn a_model_with_stem_and_experts_saves_and_loads_whole() {
    for kind in [ExpertKind::Full, ExpertKind::Lora] {
        let config = linearsr_config(Some(kind));
        let (model, vs) = random_model(&config);
        differ(&vs);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("linearsr.safetensors");
        model.save(&vs, &path, Kind::Float).unwrap();
        let names = vs.variables();
        assert!(names.keys().any(|n| n.starts_with("lr_stem.layers.2.")));
        match kind {
            ExpertKind::Full => {
                assert!(names.keys().any(|n| n.starts_with("experts.3.transformer_blocks.")));
                assert!(!names.keys().any(|n| n.starts_with("transformer.")), "experts replace the single DiT");
            }
            ExpertKind::Lora => {
                assert!(names.contains_key("transformer.transformer_blocks.0.attn1.to_q.lora_B.expert_3.weight"));
                assert!(!names.keys().any(|n| n.starts_with("experts.")), "one DiT, shared");
            }
        }
        let (loaded, _loaded_vs) = SrModel::load(&path, Device::Cpu).unwrap();
        assert_eq!(loaded.config, config);
        let lr = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        no_grad(|| assert!(loaded.forward(&lr).unwrap().equal(&model.forward(&lr).unwrap()), "{kind:?}"));
    }
}

#[test]
fn experts_made_from_a_model_compute_what_it_computed() {
    let (model, vs) = random_model(&linearsr_config(None));
    let lr = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    for kind in [ExpertKind::Full, ExpertKind::Lora] {
        let experts = linearsr_config(Some(kind)).experts.unwrap();
        let (split, split_vs) = model.with_experts(&vs, &experts).unwrap();
        no_grad(|| {
            let start = model.with_start_noise(model.encode_lr(&lr).unwrap(), 1);
            assert!(split.sample(&start, 4).unwrap().equal(&model.sample(&start, 4).unwrap()), "{kind:?}");
        });
        let extra = SrModel::parameter_count(&split_vs) - SrModel::parameter_count(&vs);
        let dit: i64 =
            vs.variables().iter().filter(|(n, _)| n.starts_with("transformer.")).map(|(_, t)| t.numel() as i64).sum();
        match kind {
            ExpertKind::Full => assert_eq!(extra, 3 * dit),
            ExpertKind::Lora => assert!(extra > 0 && extra < dit, "adapters: {extra} against a DiT of {dit}"),
        }
    }
}

#[test]
fn bad_sampler_requests_and_configs_are_refused() {
    let (model, _vs) = built_in();
    let config = sana_sr_pipeline::ModelConfig::Sana(model.config.clone());
    for steps in [0, 1001] {
        let err = check_options(&config, &UpscaleOptions { steps: Some(steps), ..Default::default() }).unwrap_err();
        assert!(matches!(err, UpscaleError::Steps(_)) && err.to_string().contains("1..=1000"), "{err}");
    }
    let mut noise_without_stem = model.config.clone();
    noise_without_stem.sampler.start = Start::Noise;
    let vs = nn::VarStore::new(Device::Cpu);
    let err = SrModel::build(vs.root(), &noise_without_stem).unwrap_err().to_string();
    assert!(err.contains("needs an LR stem"), "{err}");
    let mut stem_without_channels = linearsr_config(None);
    stem_without_channels.transformer.in_channels -= 8;
    let err = SrModel::build(vs.root(), &stem_without_channels).unwrap_err().to_string();
    assert!(err.contains("the LR stem adds 8"), "{err}");
    let mut bad_experts = linearsr_config(None);
    bad_experts.experts =
        Some(ExpertsConfig { kind: ExpertKind::Full, lora: None, boundaries: vec![1.5], bisection: None });
    let err = SrModel::build(vs.root(), &bad_experts).unwrap_err().to_string();
    assert!(err.contains("inside (0, 1)"), "{err}");
}

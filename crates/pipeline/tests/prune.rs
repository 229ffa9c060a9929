//! `sana-sr prune` end to end on small models: the pruned model computes what the unpruned one does with the
//! removed units zeroed, meets its budget, is a model file that loads and runs everywhere (whole and tiled,
//! with LoRA adapters, counted by `inspect`); a depth-pruned model's diffusers folders run in diffusers
//! (`tools/reference/check_pruned_diffusers.py`) as in sana-sr.

use std::path::{Path, PathBuf};

use sana_sr_core::compare::Deviation;
use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::tensor::to_tensor;
use sana_sr_data::Image;
use sana_sr_model::checkpoint;
use sana_sr_model::cost::count_macs;
use sana_sr_model::layers::lora::{self, LoraConfig};
use sana_sr_model::prune::Unit;
use sana_sr_pipeline::cost::{read_model_config, CostReport};
use sana_sr_pipeline::prune::{self, Calibration, Importance, PruneError, PruneOptions};
use sana_sr_pipeline::upscaler::forward_batch;
use sana_sr_pipeline::{diffusers, ModelConfig, ModelSource, SrModel, UpscaleOptions, Upscaler};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Smooth shading, an edge and texture, in (0, 1): `[n, 3, side, side]`.
fn photos(n: i64, side: i64) -> Tensor {
    let ramp = Tensor::linspace(0.0, 1.0, side, (Kind::Float, Device::Cpu));
    let (y, x) = (ramp.view([1, 1, side, 1]), ramp.view([1, 1, 1, side]));
    let images: Vec<Tensor> = (0..n)
        .map(|i| {
            let f = 3.0 + i as f64;
            let texture = (&x * (f * 7.0)).sin() * (&y * (f * 5.0)).cos() * 0.1;
            let edge = (&x + &y * 0.5).gt(0.6).to_kind(Kind::Float) * 0.2;
            let channels: Vec<Tensor> =
                (0..3).map(|c| &x * 0.4 + &y * (0.1 * c as f64 + 0.1) + &texture + &edge + 0.15).collect();
            Tensor::cat(&channels, 1)
        })
        .collect();
    Tensor::cat(&images, 0).clamp(0.02, 0.98)
}

fn calibration(n: i64, hr: i64, scale: i64) -> Calibration {
    let hr = photos(n, hr);
    let lr = sana_sr_data::resize::matlab::imresize_tensor(
        &hr,
        (hr.size()[2] / scale) as usize,
        (hr.size()[3] / scale) as usize,
    )
    .unwrap()
    .clamp(0.0, 1.0);
    Calibration { lr, hr }
}

fn options(macs: Option<u64>, params: Option<u64>, importance: Importance) -> PruneOptions {
    PruneOptions {
        target_params: params,
        target_macs: macs,
        input: (32, 32),
        scale: 4,
        importance,
        depth_only: false,
        channel_groups: 4,
    }
}

/// The built-in model pruned to 70% of its MACs at 32x32 by `importance`, written to `dir`.
fn pruned_builtin(dir: &Path, importance: Importance) -> (PathBuf, CostReport, CostReport) {
    let (model, vs) = ModelSource::resolve("sana-sr-tiny").unwrap().load(Device::Cpu).unwrap();
    let config = model.config.clone();
    let before = CostReport::new(&ModelConfig::Sana(config.clone()), (32, 32), 4);
    let options = options(Some(before.macs * 7 / 10), None, importance);
    let units = prune::units(&config, &options);
    let scores = prune::importance(&model, &vs, &units, &calibration(2, 64, 4), importance, |_, _| {}).unwrap();
    assert!(scores.iter().all(|s| s.is_finite() && *s >= 0.0));
    let (plan, removed) = prune::select(&config, &units, &scores, &options).unwrap();
    assert!(!removed.is_empty());
    let (pruned_config, weights) = prune::apply(&config, &vs, &plan);
    let (pruned, pruned_vs) = prune::build(&pruned_config, weights, Device::Cpu).unwrap();
    let path = dir.join("pruned.safetensors");
    pruned.save(&pruned_vs, &path, Kind::Float).unwrap();
    let after = CostReport::new(&ModelConfig::Sana(pruned_config), (32, 32), 4);
    (path, before, after)
}

#[test]
fn a_pruned_model_meets_its_budget_and_runs_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (path, before, after) = pruned_builtin(dir.path(), Importance::Taylor);
    assert!(after.macs <= before.macs * 7 / 10, "{} of {}", after.macs, before.macs);
    assert!(after.params < before.params);

    // The file loads by path as any model does; `inspect` counts what it computes.
    let (network, vs) = ModelSource::resolve(path.to_str().unwrap()).unwrap().load_network(Device::Cpu).unwrap();
    let lr = photos(1, 29).narrow(3, 0, 23);
    let report = CostReport::new(&network.config(), (29, 23), 4);
    let (_, traced) = count_macs(|| no_grad(|| forward_batch(&network, &lr, 4).unwrap()));
    assert_eq!(traced, report.macs - report.stage("input resize").unwrap().macs);
    let stored: u64 = vs.variables().values().map(|t| t.numel() as u64).sum();
    assert_eq!(stored, report.params);

    // Whole and tiled, as the unpruned model.
    let upscaler = Upscaler::new(network, vs);
    let image = sana_sr_data::tensor::to_image(&photos(1, 96).narrow(2, 0, 72)).unwrap();
    let whole = upscaler.upscale(&image, &UpscaleOptions { scale: None, tile: None, ..Default::default() }).unwrap();
    let tile = 4 * upscaler.model.as_sana().unwrap().config.pixels_per_token() as u32 * 2;
    let tiled =
        upscaler.upscale(&image, &UpscaleOptions { scale: None, tile: Some(tile), ..Default::default() }).unwrap();
    let mse = |a: &Image, b: &Image| {
        (to_tensor(a, Device::Cpu) - to_tensor(b, Device::Cpu)).square().mean(Kind::Double).double_value(&[])
    };
    assert!(10.0 * (1.0 / mse(&tiled, &whole)).log10() > 45.0);
    assert_eq!((whole.width, whole.height), (384, 288));

    // Per-block widths are sana-sr's: such a model cannot be written as diffusers folders.
    let folders = dir.path().join("folders");
    let err =
        diffusers::save(upscaler.model.as_sana().unwrap(), &nn::VarStore::new(Device::Cpu), &folders, Kind::Float)
            .unwrap_err();
    assert!(err.to_string().contains("per-block widths"), "{err}");

    // LoRA adapters attach to the pruned layers at their pruned widths, and change nothing until trained.
    let config: LoraConfig = serde_json::from_str(r#"{"rank": 2, "alpha": 2.0}"#).unwrap();
    let load = || -> Result<_, Box<dyn std::error::Error>> { Ok(SrModel::load(&path, Device::Cpu)?) };
    let ((model, _vs), adapters) = lora::with_adapters(&config, load).unwrap();
    assert!(!adapters.layers().is_empty());
    let (plain, _plain_vs) = SrModel::load(&path, Device::Cpu).unwrap();
    let x = photos(1, 32) * 2.0 - 1.0;
    let (a, b) = no_grad(|| (model.forward(&x).unwrap(), plain.forward(&x).unwrap()));
    assert!(a.equal(&b));
}

#[test]
fn the_pruned_model_computes_the_unpruned_one_with_its_units_zeroed() {
    let (model, vs) = ModelSource::resolve("sana-sr-tiny").unwrap().load(Device::Cpu).unwrap();
    let config = model.config.clone();
    let options = options(Some(1), None, Importance::Taylor);
    let units = prune::units(&config, &options);
    // Every other unit that can go, as a plan; then the same units zeroed in the unpruned model.
    let mut plan = sana_sr_model::prune::Plan::full(&config.transformer, &config.vae);
    let mut zeroed = Vec::new();
    for (n, unit) in units.iter().enumerate() {
        let keeps_a_head = match unit {
            Unit::DitHead(_, h) | Unit::DitCrossHead(_, h) => *h > 0,
            Unit::DitFf(_, r) | Unit::AeHidden(.., r) => r.start > 0,
            Unit::DitBlock(i) => *i == 1,
            Unit::AeBlock(..) => false,
        };
        if (n % 2 == 0 || unit.is_block()) && keeps_a_head && plan.keeps(unit) {
            plan.remove(unit);
            zeroed.push(unit.clone());
        }
    }
    let (pruned_config, weights) = prune::apply(&config, &vs, &plan);
    let (pruned, _pruned_vs) = prune::build(&pruned_config, weights, Device::Cpu).unwrap();
    let vars = vs.variables();
    no_grad(|| {
        for unit in &zeroed {
            let prefix = if matches!(unit, Unit::AeBlock(..) | Unit::AeHidden(..)) { "vae" } else { "transformer" };
            for slice in unit.readers(&config.transformer, &config.vae) {
                let _ = slice.of(&vars[&format!("{prefix}.{}", slice.var)]).zero_();
            }
        }
    });
    let x = photos(2, 48) * 2.0 - 1.0;
    let (want, got) = no_grad(|| (model.forward(&x).unwrap(), pruned.forward(&x).unwrap()));
    let deviation = Deviation::between(&got, &want).normalised();
    assert!(deviation < 1e-5, "{deviation}");
    assert!(pruned_config.transformer.num_layers < config.transformer.num_layers);
}

#[test]
fn both_importances_rank_and_targets_are_checked() {
    let (model, vs) = ModelSource::resolve("sana-sr-tiny").unwrap().load(Device::Cpu).unwrap();
    let config = model.config.clone();
    let depth = PruneOptions { depth_only: true, ..options(Some(1), None, Importance::Removal) };
    let units = prune::units(&config, &depth);
    assert!(units.iter().all(Unit::is_block));
    let cal = calibration(2, 32, 4);
    let removal = prune::importance(&model, &vs, &units, &cal, Importance::Removal, |_, _| {}).unwrap();
    let taylor = prune::importance(&model, &vs, &units, &cal, Importance::Taylor, |_, _| {}).unwrap();
    assert!(removal.iter().chain(&taylor).all(|s| s.is_finite() && *s >= 0.0));
    assert!(removal.iter().any(|&s| s > 0.0) && taylor.iter().any(|&s| s > 0.0));
    // The importances leave the model as it was (the units are zeroed and restored; no gradient is kept).
    let again = prune::importance(&model, &vs, &units, &cal, Importance::Removal, |_, _| {}).unwrap();
    assert_eq!(removal, again);
    assert!(vs
        .trainable_variables()
        .iter()
        .all(|t| !t.grad().defined() || t.grad().abs().max().double_value(&[]) == 0.0));

    // One MAC is out of reach; a target the model meets already is refused; no target at all too.
    let err = prune::select(&config, &units, &removal, &depth).unwrap_err();
    assert!(matches!(err, PruneError::Unreachable { .. }), "{err}");
    let met = PruneOptions { target_params: Some(u64::MAX), ..depth.clone() };
    let met = PruneOptions { target_macs: None, ..met };
    assert!(matches!(prune::select(&config, &units, &removal, &met), Err(PruneError::AlreadyMet { .. })));
    let none = PruneOptions { target_macs: None, ..depth };
    assert!(matches!(prune::select(&config, &units, &removal, &none), Err(PruneError::NoTarget)));
}

#[test]
fn a_depth_pruned_model_runs_in_diffusers_as_in_sana_sr() {
    // The fixture: `sana-sr prune --depth-only --diffusers` on a tiny random model, and diffusers' output on a
    // random image from tools/reference/check_pruned_diffusers.py (its docstring has the commands).
    let dir = fixtures().join("pruned_depth");
    let (model, _vs) = diffusers::load(&dir, Device::Cpu).unwrap();
    let ModelConfig::Sana(source) = read_model_config(&dir.join("source.model.json")).unwrap() else { panic!() };
    let pruned = &model.config;
    assert!(pruned.transformer.num_layers < source.transformer.num_layers);
    let blocks = |c: &sana_sr_pipeline::SrModelConfig| {
        c.vae.encoder_layers_per_block.iter().chain(&c.vae.decoder_layers_per_block).sum::<usize>()
    };
    assert!(blocks(pruned) < blocks(&source), "the fixture removes autoencoder blocks too");
    assert!(pruned.transformer.block_widths.is_none() && pruned.vae.decoder_block_hidden.is_none());

    let reference = checkpoint::read_tensors(&[dir.join("reference.safetensors")]).unwrap();
    let out = no_grad(|| {
        model.add_skip(
            model.decode(&model.restore(&model.encode(&reference["image"]).unwrap()).unwrap()).unwrap(),
            &reference["image"],
        )
    });
    // Both sides run the same float32 operations on the same weights; as the DC-AE parity suite bounds them.
    let deviation = Deviation::between(&out, &reference["output"]).normalised();
    assert!(deviation < 1e-4, "sana-sr vs diffusers: {deviation:.2e}");

    // The folders round-trip: written again, they read back to the same model.
    let copy = tempfile::tempdir().unwrap();
    let (model, vs) = diffusers::load(&dir, Device::Cpu).unwrap();
    diffusers::save(&model, &vs, copy.path(), Kind::Float).unwrap();
    let (again, _) = diffusers::load(copy.path(), Device::Cpu).unwrap();
    assert_eq!(again.config, model.config);
}

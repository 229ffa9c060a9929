//! The Rust DC-AE against diffusers' `AutoencoderDC`, with fixtures from
//! `tools/reference/make_dc_ae_fixtures.py`: three tiny random models that together use every block type and
//! option, compared module by module; the parameter names and shapes of the real SANA autoencoders; configs.

use sana_sr_model::checkpoint::Pretrained;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sana_sr_core::compare::{nudge_by_one_ulp, worst, Deviation};
use sana_sr_core::{no_grad, Device, Kind, Tensor};
use sana_sr_model::autoencoders::{AutoencoderDc, AutoencoderDcConfig, DcAeError};
use sana_sr_model::checkpoint;
use serde_json::Value;

/// Normalised error (`sana_sr_core::compare`: max |ours - diffusers| over max |diffusers|) allowed on every
/// module's output. Both sides run the same float32 ops on the same weights and differ only in the order in
/// which the CPU's BLAS / oneDNN kernels sum; each chained reduction of length K adds about sqrt(K)·u of the
/// magnitude summed (u = 2^-24; K <= 144 here, so ~7e-7), and the deepest output chains ~40 of them, some
/// through the linear attention's division by its key sums, which amplifies what reaches it: in the random
/// tiny models up to ~400x (every weight nudged by one ulp moves `encoder.down_blocks.1.0.attn` by 2.2e-6 in
/// the test below, by up to 2.2e-5 over random patterns), so a few ulps of reordering reach ~5e-5. Measured
/// on every setting of scripts/kernel_matrix.sh: at most 1.03e-5 (that module); one weight 1% wrong: 1.4e-3.
const BOUND: f64 = 1e-4;
const TINY: [&str; 3] = ["unshuffle", "lpb0_conv", "lpb0_unshuffle"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dc_ae")
}

fn read(dir: &Path, file: &str) -> HashMap<String, Tensor> {
    checkpoint::read_tensors(&[dir.join(file)]).unwrap()
}

fn normalised_error(got: &Tensor, want: &Tensor) -> f64 {
    Deviation::between(got, want).normalised()
}

/// Compares every traced output to the fixture, returning `(path, max error)` in execution order; fails on
/// any module the fixture has and the trace misses, or the reverse.
fn compare_traced(
    prefix: &str,
    expected: &HashMap<String, Tensor>,
    run: impl FnOnce(&mut dyn FnMut(&str, &Tensor)),
) -> Vec<(String, f64)> {
    let mut errors = Vec::new();
    run(&mut |name, output| {
        let key = format!("{prefix}.{name}");
        let want = expected.get(&key).unwrap_or_else(|| panic!("{key}: traced but not in the fixture"));
        errors.push((key, normalised_error(output, want)));
    });
    let traced: BTreeSet<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
    let recorded: BTreeSet<&str> = expected.keys().map(String::as_str).filter(|k| k.starts_with(prefix)).collect();
    assert_eq!(traced, recorded, "traced modules differ from the ones diffusers recorded");
    errors
}

/// Every module's normalised error against the fixture `name`, in execution order.
fn module_errors(name: &str, model: &AutoencoderDc) -> Vec<(String, f64)> {
    let dir = fixtures().join(name);
    let io = read(&dir, "io.safetensors");
    let intermediates = read(&dir, "intermediates.safetensors");
    no_grad(|| {
        let mut errors = compare_traced("encoder", &intermediates, |trace| {
            let _ = model.encoder.forward_traced(&io["image"], trace);
        });
        let latent = model.encode(&io["image"]).unwrap();
        errors.push(("latent".into(), normalised_error(&latent, &io["latent"])));
        errors.extend(compare_traced("decoder", &intermediates, |trace| {
            let _ = model.decoder.forward_traced(&io["latent"], trace);
        }));
        let reconstruction = model.decode(&io["latent"]).unwrap();
        errors.push(("reconstruction".into(), normalised_error(&reconstruction, &io["reconstruction"])));
        errors
    })
}

fn load_tiny(name: &str) -> (AutoencoderDc, sana_sr_core::nn::VarStore) {
    AutoencoderDc::from_pretrained(&fixtures().join(name), Device::Cpu).unwrap()
}

fn check_tiny_fixture(name: &str) {
    let (model, _vs) = load_tiny(name);
    let errors = module_errors(name, &model);
    for (key, error) in &errors {
        println!("{name:>15} {key:<40} normalised error {error:.3e}");
    }
    let (key, error) = worst(errors);
    assert!(error <= BOUND, "{name}: {key} differs from diffusers by {error:.3e} (normalised), over {BOUND:e}");
}

/// The bound is loose enough for rounding and tight enough for a bug: nudging every weight by one ulp
/// (a relative 2^-24 to 2^-23, what another kernel's rounding of the weights' products amounts to) stays within it;
/// moving one element of one mid-network layer by 1% of that layer's largest weight fails it.
#[test]
fn the_bound_passes_a_one_ulp_nudge_and_fails_one_wrong_weight() {
    let (model, vs) = load_tiny("unshuffle");
    no_grad(|| {
        for (_, mut w) in vs.variables().into_iter().filter(|(_, w)| w.is_floating_point()) {
            w.copy_(&nudge_by_one_ulp(&w));
        }
    });
    let (key, error) = worst(module_errors("unshuffle", &model));
    println!("every weight nudged by one ulp: worst {key} at {error:.3e}");
    assert!(error <= BOUND, "{key}: {error:e}");

    for layer in ["encoder.down_blocks.1.0.attn.to_v.weight", "decoder.up_blocks.0.1.conv1.weight"] {
        let (model, vs) = load_tiny("unshuffle");
        no_grad(|| {
            let w = &vs.variables()[layer];
            let step = 0.01 * w.abs().max().double_value(&[]);
            let _ = w.flatten(0, -1).get(0).f_add_scalar_(step).unwrap();
        });
        let (key, error) = worst(module_errors("unshuffle", &model));
        println!("{layer}[0] moved by 1%: worst {key} at {error:.3e}");
        assert!(error > BOUND, "one wrong weight in {layer} passes the bound ({error:e} at {key})");
    }
}

/// bf16 inference (`--precision bf16`: weight layers in bfloat16, norms and the attention sums in float32)
/// against diffusers' float32 latent and reconstruction. `--precision f16` rounds exactly the same tensors (every
/// weight layer's weight and input), keeping 11 significant bits where bf16 keeps 8; errors this small act
/// linearly, so bf16's error is about 2^3 = 8 times f16's, the ratio of the two roundings, whatever the depth
/// and the attention's amplification. The bound is 16 times f16's error; above 2 times it, or the layers did
/// not run in bf16 (a run in f32 or f16 gives a ratio near 0 or 1). Measured: ratios 8.1-9.7.
///
/// Not on `unshuffle`: its encoder's linear attention divides by key sums that nearly vanish in that random
/// model (the ~400x amplification of the bound above), so f16 already moves its latent by 7% (normalised) and
/// rounding errors there are far from linear (bf16/f16 ratios 1.7 on the latent, 125 on the reconstruction).
#[test]
fn bf16_inference_stays_within_eight_times_the_f16_rounding() {
    use sana_sr_core::precision::with_compute_kind;
    for name in ["lpb0_conv", "lpb0_unshuffle"] {
        let (model, _vs) = load_tiny(name);
        let io = read(&fixtures().join(name), "io.safetensors");
        let errors = |kind| {
            no_grad(|| {
                with_compute_kind(Some(kind), || {
                    let latent = model.encode(&io["image"]).unwrap();
                    let reconstruction = model.decode(&io["latent"]).unwrap();
                    [normalised_error(&latent, &io["latent"]), normalised_error(&reconstruction, &io["reconstruction"])]
                })
            })
        };
        let (half, bf16) = (errors(Kind::Half), errors(Kind::BFloat16));
        for (stage, (h, b)) in ["latent", "reconstruction"].into_iter().zip(half.into_iter().zip(bf16)) {
            println!("{name:>15} {stage:<15} bf16 {b:.3e}, f16 {h:.3e}, ratio {:.1}", b / h);
            assert!(b <= 16.0 * h, "{name}/{stage}: bf16 error {b:e} over 16 x f16's {h:e}");
            assert!(b > 2.0 * h, "{name}/{stage}: bf16 error {b:e} is not bf16's rounding (f16's is {h:e})");
        }
    }
}

#[test]
fn tiny_unshuffle_matches_diffusers_module_by_module() {
    check_tiny_fixture("unshuffle");
}

#[test]
fn tiny_first_stage_empty_conv_interpolate_matches_diffusers_module_by_module() {
    check_tiny_fixture("lpb0_conv");
}

#[test]
fn tiny_first_stage_empty_unshuffle_matches_diffusers_module_by_module() {
    check_tiny_fixture("lpb0_unshuffle");
}

fn real_configs() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("real_configs.json")).unwrap()).unwrap()
}

/// The built-in SANA configs build exactly diffusers' parameters: names, shapes and count.
#[test]
fn sana_f32c32_configs_have_diffusers_parameters() {
    let real = real_configs();
    for (name, config) in [
        ("dc-ae-f32c32-sana-1.0", AutoencoderDcConfig::dc_ae_f32c32_sana_1_0()),
        ("dc-ae-f32c32-sana-1.1", AutoencoderDcConfig::dc_ae_f32c32_sana_1_1()),
    ] {
        let reference = &real[name];
        let from_diffusers: AutoencoderDcConfig = serde_json::from_value(reference["config"].clone()).unwrap();
        assert_eq!(config, from_diffusers, "{name}: built-in config differs from diffusers'");

        let start = Instant::now();
        let vs = sana_sr_core::nn::VarStore::new(Device::Cpu);
        let _model = AutoencoderDc::new(vs.root(), &config).unwrap();
        println!("{name}: built with random init in {:.2} s", start.elapsed().as_secs_f64());

        let ours: BTreeMap<String, Vec<i64>> = vs.variables().into_iter().map(|(k, v)| (k, v.size())).collect();
        let theirs: BTreeMap<String, Vec<i64>> = reference["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t[0].as_str().unwrap().to_string(), serde_json::from_value(t[1].clone()).unwrap()))
            .collect();
        assert_eq!(ours, theirs, "{name}: state-dict names or shapes differ");
        let count: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(count, reference["num_parameters"].as_i64().unwrap(), "{name}: parameter count");
        println!("{name}: {count} parameters in {} tensors, as diffusers", ours.len());
    }
}

#[test]
fn default_config_is_diffusers_default() {
    let defaults: AutoencoderDcConfig = serde_json::from_value(real_configs()["defaults"]["config"].clone()).unwrap();
    assert_eq!(defaults, AutoencoderDcConfig::default());
    assert_eq!(serde_json::from_str::<AutoencoderDcConfig>("{}").unwrap(), AutoencoderDcConfig::default());
}

/// diffusers' `config.json` reads into the config and writes back with the same keys and values (strings
/// stay strings and lists stay lists), bar the diffusers version stamp.
#[test]
fn config_json_round_trips() {
    for name in TINY {
        let path = fixtures().join(name).join("config.json");
        let original: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let config: AutoencoderDcConfig = checkpoint::read_config(&path).unwrap();
        let mut written = serde_json::to_value(&config).unwrap();
        let mut original = original.as_object().unwrap().clone();
        original.remove("_diffusers_version");
        let written = written.as_object_mut().unwrap();
        for (key, value) in &original {
            assert_eq!(written.get(key), Some(value), "{name}: `{key}` changed in the round trip");
        }
        assert_eq!(written.len(), original.len(), "{name}: keys were added: {:?}", written.keys());
        assert_eq!(serde_json::from_value::<AutoencoderDcConfig>(Value::Object(written.clone())).unwrap(), config);
    }
}

/// A model saved by `save_pretrained` (batch-norm counters included) loads back to the same outputs.
#[test]
fn save_pretrained_round_trips() {
    let dir = fixtures().join("unshuffle");
    let (model, vs) = AutoencoderDc::from_pretrained(&dir, Device::Cpu).unwrap();
    let saved = tempfile::tempdir().unwrap();
    model.save_pretrained(&vs, saved.path(), Kind::Float).unwrap();
    let (reloaded, reloaded_vs) = AutoencoderDc::from_pretrained(saved.path(), Device::Cpu).unwrap();
    let (a, b) = (vs.variables(), reloaded_vs.variables());
    assert_eq!(a.len(), b.len());
    for (key, t) in &a {
        assert_eq!(t.kind(), b[key].kind(), "{key}");
        assert!(t.equal(&b[key]), "{key} changed in the round trip");
    }
    let image = &read(&dir, "io.safetensors")["image"];
    no_grad(|| assert!(model.encode(image).unwrap().equal(&reloaded.encode(image).unwrap())));
}

#[test]
fn bad_configs_and_inputs_are_errors() {
    let unsupported = r#"{"decoder_norm_types": "layer_norm"}"#;
    assert!(serde_json::from_str::<AutoencoderDcConfig>(unsupported).is_err());

    let vs = sana_sr_core::nn::VarStore::new(Device::Cpu);
    let short_list = AutoencoderDcConfig { encoder_layers_per_block: vec![2, 2], ..Default::default() };
    assert!(matches!(AutoencoderDc::new(vs.root(), &short_list), Err(DcAeError::Config(_))));
    let transformer = AutoencoderDcConfig { class_name: "SanaTransformer2DModel".into(), ..Default::default() };
    assert!(matches!(AutoencoderDc::new(vs.root(), &transformer), Err(DcAeError::Config(_))));

    let (model, _vs) = AutoencoderDc::from_pretrained(&fixtures().join("unshuffle"), Device::Cpu).unwrap();
    let opts = (Kind::Float, Device::Cpu);
    for bad_image in
        [Tensor::zeros([1, 3, 12, 18], opts), Tensor::zeros([1, 4, 12, 20], opts), Tensor::zeros([3, 12, 20], opts)]
    {
        assert!(matches!(model.encode(&bad_image), Err(DcAeError::Input { .. })), "{:?}", bad_image.size());
    }
    assert!(matches!(model.decode(&Tensor::zeros([1, 5, 3, 5], opts)), Err(DcAeError::Input { .. })));
}

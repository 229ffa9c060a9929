//! `SanaTransformer2DModel` against diffusers 0.42.1, block by block, on the tiny random models written by
//! `tools/reference/make_sana_transformer_fixtures.py`; and the released 600M/1600M configs' parameter lists.

use sana_sr_model::checkpoint::Pretrained;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::compare::{nudge_by_one_ulp, worst, Deviation};
use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_model::checkpoint::{read_config, read_tensors};
use sana_sr_model::transformers::{SanaTransformer2DModel, SanaTransformerConfig, SanaTransformerError};

/// Normalised error (`sana_sr_core::compare`: max |ours - diffusers| over max |diffusers|) allowed on every
/// stage. Both sides run the same float32 ops on the same weights and differ only in the order in which the
/// CPU's BLAS / oneDNN kernels sum; each chained reduction of length K adds about sqrt(K)·u of the magnitude
/// summed (u = 2^-24; K <= 256 here, the timestep embedding, so ~1e-6), and the output chains ~25 of them,
/// the linear attention's division by its key sums amplifying what reaches it: ~2e-5 at worst. Measured on
/// every setting of scripts/kernel_matrix.sh: at most 2.7e-7; every weight nudged by one ulp 4.9e-7; one
/// weight 1% wrong 3.8e-4 and more (the test below).
const BOUND: f64 = 2e-5;
const TINY: [&str; 3] = ["p1_plain", "p2_qknorm_posembed", "sprint"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sana_transformer")
}

fn tensors(path: PathBuf) -> HashMap<String, Tensor> {
    read_tensors(&[path]).expect("fixture tensors load")
}

fn normalised_error(got: &Tensor, want: &Tensor) -> f64 {
    Deviation::between(got, want).normalised()
}

struct Case {
    model: SanaTransformer2DModel,
    inputs: HashMap<String, Tensor>,
    expected: HashMap<String, Tensor>,
    vs: nn::VarStore,
}

impl Case {
    fn load(name: &str) -> Self {
        let dir = fixtures().join(name);
        let (model, vs) = SanaTransformer2DModel::from_pretrained(&dir, Device::Cpu).expect("fixture model loads");
        Case {
            model,
            inputs: tensors(dir.join("inputs.safetensors")),
            expected: tensors(dir.join("outputs.safetensors")),
            vs,
        }
    }

    fn input(&self, key: &str) -> &Tensor {
        &self.inputs[key]
    }

    fn forward(&self, mask: Option<&Tensor>) -> Result<Tensor, SanaTransformerError> {
        self.model.forward(
            self.input("hidden_states"),
            self.input("encoder_hidden_states"),
            self.input("timestep"),
            mask,
            self.inputs.get("guidance"),
        )
    }
}

/// Every stage's normalised error against the fixture, in execution order.
fn stage_errors(case: &Case) -> Vec<(String, f64)> {
    no_grad(|| {
        let (mut x, cond) = case
            .model
            .prepare(
                case.input("hidden_states"),
                case.input("encoder_hidden_states"),
                case.input("timestep"),
                Some(case.input("encoder_attention_mask")),
                case.inputs.get("guidance"),
            )
            .unwrap();
        let mut stages: Vec<(String, Tensor)> = vec![
            ("patch_embed".into(), x.shallow_clone()),
            ("timestep".into(), cond.timestep.shallow_clone()),
            ("embedded_timestep".into(), cond.embedded_timestep.shallow_clone()),
            ("caption".into(), cond.encoder_hidden_states.shallow_clone()),
        ];
        for (i, block) in case.model.transformer_blocks.iter().enumerate() {
            x = block.forward(&x, &cond);
            stages.push((format!("block_{i}"), x.shallow_clone()));
        }
        stages.push(("output".into(), case.model.finish(&x, &cond)));
        assert_eq!(stages.len(), case.expected.len(), "every recorded stage is compared");
        stages.iter().map(|(stage, got)| (stage.clone(), normalised_error(got, &case.expected[stage]))).collect()
    })
}

#[test]
fn every_stage_matches_diffusers() {
    for name in TINY {
        let errors = stage_errors(&Case::load(name));
        for (stage, err) in &errors {
            println!("{name:>20} {stage:<18} normalised error {err:.3e}");
        }
        let (stage, err) = worst(errors);
        assert!(err <= BOUND, "{name}/{stage}: normalised error {err:e} > {BOUND:e}");
    }
}

/// The bound is loose enough for rounding and tight enough for a bug: nudging every weight by one ulp
/// (a relative 2^-24 to 2^-23) stays within it; moving one element of one layer by 1% of that layer's largest weight
/// fails it.
#[test]
fn the_bound_passes_a_one_ulp_nudge_and_fails_one_wrong_weight() {
    let case = Case::load("p1_plain");
    no_grad(|| {
        for (_, mut w) in case.vs.variables().into_iter().filter(|(_, w)| w.is_floating_point()) {
            w.copy_(&nudge_by_one_ulp(&w));
        }
    });
    let (stage, err) = worst(stage_errors(&case));
    println!("every weight nudged by one ulp: worst {stage} at {err:.3e}");
    assert!(err <= BOUND, "{stage}: {err:e}");

    for layer in ["transformer_blocks.1.attn1.to_v.weight", "transformer_blocks.2.ff.conv_point.weight"] {
        let case = Case::load("p1_plain");
        no_grad(|| {
            let w = &case.vs.variables()[layer];
            let step = 0.01 * w.abs().max().double_value(&[]);
            let _ = w.flatten(0, -1).get(0).f_add_scalar_(step).unwrap();
        });
        let (stage, err) = worst(stage_errors(&case));
        println!("{layer}[0] moved by 1%: worst {stage} at {err:.3e}");
        assert!(err > BOUND, "one wrong weight in {layer} passes the bound ({err:e} at {stage})");
    }
}

#[test]
fn forward_matches_diffusers_and_the_mask_matters() {
    no_grad(|| {
        for name in TINY {
            let case = Case::load(name);
            let expected = &case.expected["output"];
            let out = case.forward(Some(case.input("encoder_attention_mask"))).unwrap();
            let err = normalised_error(&out, expected);
            println!("{name:>20} forward normalised error {err:.3e}");
            assert!(err <= BOUND, "{name}: {err:e}");
            // Without the mask the padded caption tokens are attended to: a clearly different result.
            let unmasked = case.forward(None).unwrap();
            let moved = normalised_error(&unmasked, expected);
            assert!(moved > 100.0 * BOUND, "{name}: the fixture's padding must be exercised ({moved:e})");
        }
    })
}

/// bf16 inference (`--precision bf16`: weight layers in bfloat16, norms and the attention sums in float32)
/// against the same float32 reference. Rounding a float32 to bf16 moves it by up to 2^15 ulps (8 of its 24
/// significant bits are kept), in a sign that looks random, and every weight layer rounds its weight and its
/// input. How far such moves reach the output is the network's own sensitivity, measured alongside: every
/// weight and input moved by one ulp in a random-looking pattern moves the output by `e1` (normalised). Errors
/// this small act linearly, so rounding to bf16 gives about 2^15·sqrt(2)·`e1`; the bound is 2^16·`e1`. The error
/// must also exceed float32's bound many times over, or the layers did not run in bf16.
#[test]
fn bf16_inference_stays_within_bf16_rounding_of_diffusers() {
    use sana_sr_core::precision::with_compute_kind;
    no_grad(|| {
        for name in TINY {
            let case = Case::load(name);
            let mask = case.input("encoder_attention_mask");
            let full = case.forward(Some(mask)).unwrap();
            let half = with_compute_kind(Some(Kind::BFloat16), || case.forward(Some(mask)).unwrap());
            let mut nudged = Case::load(name);
            for (_, mut w) in nudged.vs.variables().into_iter().filter(|(_, w)| w.is_floating_point()) {
                w.copy_(&nudge_by_one_ulp(&w));
            }
            for key in ["hidden_states", "encoder_hidden_states"] {
                let moved = nudge_by_one_ulp(nudged.input(key));
                nudged.inputs.insert(key.to_string(), moved);
            }
            let e1 = normalised_error(&nudged.forward(Some(mask)).unwrap(), &full);
            let err = normalised_error(&half, &case.expected["output"]);
            println!(
                "{name:>20} bf16 forward normalised error {err:.3e}, one-ulp sensitivity {e1:.3e}, ratio {:.0}",
                err / e1
            );
            assert!(err <= 65536.0 * e1, "{name}: {err:e} over 2^16 × {e1:e}");
            assert!(err > 10.0 * BOUND, "{name}: {err:e} is float32's error: the layers did not run in bf16");
        }
    })
}

#[test]
fn save_pretrained_then_from_pretrained_gives_the_same_model() {
    no_grad(|| {
        let case = Case::load("p2_qknorm_posembed");
        let dir = tempfile::tempdir().unwrap();
        case.model.save_pretrained(&case.vs, dir.path(), Kind::Float).unwrap();
        let (reloaded, _vs) = SanaTransformer2DModel::from_pretrained(dir.path(), Device::Cpu).unwrap();
        assert_eq!(reloaded.config, case.model.config);
        let mask = case.input("encoder_attention_mask");
        let again = reloaded
            .forward(
                case.input("hidden_states"),
                case.input("encoder_hidden_states"),
                case.input("timestep"),
                Some(mask),
                None,
            )
            .unwrap();
        assert!(again.equal(&case.forward(Some(mask)).unwrap()), "the reloaded model computes the same bits");
    })
}

#[test]
fn bad_inputs_are_errors() {
    no_grad(|| {
        let case = Case::load("sprint");
        let mask = case.input("encoder_attention_mask");
        let missing_guidance = case.model.forward(
            case.input("hidden_states"),
            case.input("encoder_hidden_states"),
            case.input("timestep"),
            Some(mask),
            None,
        );
        assert!(matches!(missing_guidance, Err(SanaTransformerError::Input(m)) if m.contains("guidance")));
        let one_timestep = Tensor::from_slice(&[0.5f32]);
        let err = case
            .model
            .forward(
                case.input("hidden_states"),
                case.input("encoder_hidden_states"),
                &one_timestep,
                Some(mask),
                case.inputs.get("guidance"),
            )
            .unwrap_err();
        assert!(err.to_string().contains("timestep must be [2]"), "{err}");
        let short_mask = mask.narrow(1, 0, 5);
        assert!(case.forward(Some(&short_mask)).is_err());
        let wrong_channels = case.input("hidden_states").narrow(1, 0, 3);
        let err = case
            .model
            .forward(
                &wrong_channels,
                case.input("encoder_hidden_states"),
                case.input("timestep"),
                Some(mask),
                case.inputs.get("guidance"),
            )
            .unwrap_err();
        assert!(err.to_string().contains("hidden_states must be [B, 4, H, W]"), "{err}");
    })
}

#[test]
fn configs_round_trip_through_json() {
    for name in TINY {
        let path = fixtures().join(name).join("config.json");
        let config: SanaTransformerConfig = read_config(&path).unwrap();
        let json = serde_json::to_value(&config).unwrap();
        // Every field the reference wrote comes back with its value (underscored keys are diffusers metadata).
        let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let reference: serde_json::Map<_, _> = reference
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(json, serde_json::Value::Object(reference), "{name}");
        assert_eq!(serde_json::from_value::<SanaTransformerConfig>(json).unwrap(), config);
    }
}

#[test]
fn unsupported_configs_are_errors() {
    let err = serde_json::from_str::<SanaTransformerConfig>(r#"{"qk_norm": "layer_norm"}"#).unwrap_err();
    assert!(err.to_string().contains("rms_norm_across_heads"), "{err}");
    let vs = nn::VarStore::new(Device::Cpu);
    let no_cross = SanaTransformerConfig { cross_attention_dim: None, ..tiny_config() };
    assert!(matches!(SanaTransformer2DModel::new(vs.root(), &no_cross), Err(SanaTransformerError::Config(_))));
    let wrong_cross = SanaTransformerConfig { cross_attention_dim: Some(8), ..tiny_config() };
    assert!(matches!(SanaTransformer2DModel::new(vs.root(), &wrong_cross), Err(SanaTransformerError::Config(_))));
}

fn tiny_config() -> SanaTransformerConfig {
    read_config(&fixtures().join("p1_plain")).unwrap()
}

#[derive(serde::Deserialize)]
struct RealConfig {
    config: SanaTransformerConfig,
    num_parameters: i64,
    parameters: Vec<(String, Vec<i64>)>,
}

fn real_configs() -> HashMap<String, RealConfig> {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("real_configs.json")).unwrap()).unwrap()
}

#[test]
fn defaults_are_the_reference_defaults() {
    let reference = &real_configs()["defaults"].config;
    assert_eq!(&SanaTransformerConfig::default(), reference);
    assert_eq!(&serde_json::from_str::<SanaTransformerConfig>("{}").unwrap(), reference);
}

/// Builds a released model and compares its variables with diffusers' parameters (names, shapes, count).
/// The variables are created in bfloat16 (the store's kind) to halve the cost.
fn check_released(name: &str, config: SanaTransformerConfig) {
    no_grad(|| {
        let reference = real_configs();
        let expected = &reference[name];
        assert_eq!(config, expected.config, "{name}: built-in config");
        let mut vs = nn::VarStore::new(Device::Cpu);
        vs.set_kind(Kind::BFloat16);
        SanaTransformer2DModel::new(vs.root(), &config).unwrap();
        let mut params: Vec<(String, Vec<i64>)> = vs.variables().into_iter().map(|(k, t)| (k, t.size())).collect();
        params.sort();
        let count: i64 = params.iter().map(|(_, shape)| shape.iter().product::<i64>()).sum();
        println!("{name}: {count} parameters in {} tensors", params.len());
        assert_eq!(count, expected.num_parameters, "{name}: parameter count");
        assert_eq!(params, expected.parameters, "{name}: parameter names and shapes");
    })
}

/// About 10 s and 1.2 GB.
#[test]
fn sana_600m_1024px_has_the_reference_parameters() {
    check_released("sana_600m_1024px", SanaTransformerConfig::sana_600m_1024px());
}

/// About 30 s and 3.2 GB on two cores, most of it the random init of 1.6 B values: the price of proving
/// that the official 1600M checkpoint loads, paid in every run.
#[test]
fn sana_1600m_1024px_has_the_reference_parameters() {
    check_released("sana_1600m_1024px", SanaTransformerConfig::sana_1600m_1024px());
}

//! SANA's text encoder against transformers 5.24.0: `Gemma2Model` layer by layer on the tiny random models,
//! the tokenizer's ids, and `SanaPipeline.encode_prompt`'s prompt embeddings, all written by
//! `tools/reference/make_gemma2_fixtures.py`; and the released gemma-2-2b-it config's parameter list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::compare::{nudge_by_one_ulp, worst, Deviation};
use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_model::checkpoint::{read_tensors, save_tensors, CheckpointError, Pretrained};
use sana_sr_model::layers::variables;
use sana_sr_model::text::{Gemma2Config, Gemma2Error, Gemma2Model, PromptStyle, PromptTokenizer, TextEncoder};

/// Normalised error (max |ours - transformers| over max |transformers|) allowed on every stage. Both sides run
/// the same float32 operations on the same weights and differ only in the order the CPU kernels sum in: a
/// reduction of length K adds about sqrt(K)·u (u = 2^-24, K <= 48 here, so ~4e-7) and a layer chains about
/// ten of them (two norms per half, attention's two products and softmax, the MLP's two), amplified by the
/// tanh soft-cap and the softmax's exponent by a few times: ~1e-5 after three layers. Measured on every
/// setting of scripts/kernel_matrix.sh: see the printout; every weight nudged by one ulp stays below; one
/// weight 1% wrong fails (the test below).
const BOUND: f64 = 2e-5;
const TINY: [&str; 2] = ["sliding_gqa", "full_mha_bf16"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma2")
}

fn tensors(path: PathBuf) -> HashMap<String, Tensor> {
    read_tensors(&[path]).expect("fixture tensors load")
}

struct Case {
    model: Gemma2Model,
    vs: nn::VarStore,
    inputs: HashMap<String, Tensor>,
    expected: HashMap<String, Tensor>,
}

impl Case {
    fn load(name: &str) -> Self {
        let dir = fixtures().join(name);
        let (model, vs) = Gemma2Model::from_pretrained(&dir, Device::Cpu).expect("fixture encoder loads");
        Case {
            model,
            vs,
            inputs: tensors(dir.join("inputs.safetensors")),
            expected: tensors(dir.join("outputs.safetensors")),
        }
    }

    fn forward(&self, mask: &Tensor) -> Result<Tensor, Gemma2Error> {
        no_grad(|| self.model.forward(&self.inputs["input_ids"], mask))
    }

    fn mask(&self) -> &Tensor {
        &self.inputs["attention_mask"]
    }

    /// Every stage's normalised error: the input of each layer, then the output.
    fn stage_errors(&self) -> Vec<(String, f64)> {
        let stages = no_grad(|| self.model.stages(&self.inputs["input_ids"], self.mask())).unwrap();
        assert_eq!(stages.len(), self.expected.len(), "every recorded stage is compared");
        let name =
            |i: usize| if i + 1 == stages.len() { "last_hidden_state".to_string() } else { format!("hidden_{i}") };
        stages
            .iter()
            .enumerate()
            .map(|(i, got)| (name(i), Deviation::between(got, &self.expected[&name(i)]).normalised()))
            .collect()
    }
}

#[test]
fn every_layer_matches_transformers() {
    for name in TINY {
        let errors = Case::load(name).stage_errors();
        for (stage, err) in &errors {
            println!("{name:>14} {stage:<18} normalised error {err:.3e}");
        }
        let (stage, err) = worst(errors);
        assert!(err <= BOUND, "{name}/{stage}: normalised error {err:e} > {BOUND:e}");
    }
}

/// Loose enough for rounding, tight enough for a bug: every weight nudged by one ulp passes, one element of
/// one projection moved by 1% of that projection's largest weight fails.
#[test]
fn the_bound_passes_a_one_ulp_nudge_and_fails_one_wrong_weight() {
    let case = Case::load("sliding_gqa");
    no_grad(|| {
        for (_, mut w) in case.vs.variables() {
            w.copy_(&nudge_by_one_ulp(&w));
        }
    });
    let (stage, err) = worst(case.stage_errors());
    println!("every weight nudged by one ulp: worst {stage} at {err:.3e}");
    assert!(err <= BOUND, "{stage}: {err:e}");

    for layer in ["layers.1.self_attn.k_proj.weight", "layers.2.mlp.up_proj.weight", "norm.weight"] {
        let case = Case::load("sliding_gqa");
        no_grad(|| {
            let w = &case.vs.variables()[layer];
            let step = 0.01 * w.abs().max().double_value(&[]);
            let _ = w.flatten(0, -1).get(0).f_add_scalar_(step).unwrap();
        });
        let (stage, err) = worst(case.stage_errors());
        println!("{layer}[0] moved by 1%: worst {stage} at {err:.3e}");
        assert!(err > BOUND, "one wrong weight in {layer} passes the bound ({err:e} at {stage})");
    }
}

#[test]
fn the_padding_mask_matters() {
    let case = Case::load("sliding_gqa");
    let padded_row = |t: &Tensor| t.get(1);
    let expected = &case.expected["last_hidden_state"];
    let unmasked = case.forward(&case.mask().ones_like()).unwrap();
    // Right padding: the real tokens of the padded row see no padding either way; the pad positions do.
    let valid = case.mask().get(1).sum(Kind::Int64).int64_value(&[]);
    let real = |t: &Tensor| padded_row(t).narrow(0, 0, valid);
    assert!(Deviation::between(&real(&unmasked), &real(expected)).normalised() <= BOUND);
    let pads = |t: &Tensor| padded_row(t).narrow(0, valid, 10 - valid);
    let moved = Deviation::between(&pads(&unmasked), &pads(expected)).normalised();
    assert!(moved > 100.0 * BOUND, "the fixture's padding must be exercised ({moved:e})");
}

/// The released text encoder loads as transformers builds it: every name and shape, 2.6 B parameters, counted
/// without allocating any.
#[test]
fn gemma_2_2b_it_has_the_reference_parameters() {
    #[derive(serde::Deserialize)]
    struct Real {
        config: serde_json::Value,
        num_parameters: u64,
        parameters: Vec<(String, Vec<i64>)>,
    }
    let real: Real =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("real_config.json")).unwrap()).unwrap();
    let config: Gemma2Config = serde_json::from_value(real.config).unwrap();
    assert_eq!(config.rope_base(), 10_000.0);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut planned = variables::planned_variables(|| Gemma2Model::new(vs.root(), &config)).unwrap();
    planned.sort();
    let count: u64 = planned.iter().map(|(_, shape)| shape.iter().product::<i64>() as u64).sum();
    println!("gemma-2-2b-it: {count} parameters in {} tensors", planned.len());
    assert_eq!(count, real.num_parameters);
    assert_eq!(planned, real.parameters);
}

/// A causal-LM folder (`model.` before every name, and its tied output head) loads into the same encoder.
#[test]
fn a_causal_lm_folder_loads_without_its_prefix_and_head() {
    let case = Case::load("sliding_gqa");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("sliding_gqa/config.json"), dir.path().join("config.json")).unwrap();
    let mut stored: HashMap<String, Tensor> =
        case.vs.variables().into_iter().map(|(k, t)| (format!("model.{k}"), t.to_kind(Kind::BFloat16))).collect();
    stored.insert("lm_head.weight".into(), case.vs.variables()["embed_tokens.weight"].to_kind(Kind::BFloat16));
    save_tensors(stored, &dir.path().join("model.safetensors"), HashMap::new(), false).unwrap();
    let (model, _vs) = Gemma2Model::from_pretrained(dir.path(), Device::Cpu).unwrap();
    let ids = &case.inputs["input_ids"];
    let rounded = no_grad(|| {
        for (_, mut w) in case.vs.variables() {
            w.copy_(&w.to_kind(Kind::BFloat16).to_kind(Kind::Float));
        }
        case.model.forward(ids, case.mask()).unwrap()
    });
    assert!(no_grad(|| model.forward(ids, case.mask())).unwrap().equal(&rounded));
}

#[test]
fn a_missing_weight_and_bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("full_mha_bf16/config.json"), dir.path().join("config.json")).unwrap();
    let mut stored = tensors(fixtures().join("full_mha_bf16/model.safetensors"));
    stored.remove("layers.1.mlp.gate_proj.weight");
    save_tensors(stored, &dir.path().join("model.safetensors"), HashMap::new(), false).unwrap();
    let err = Gemma2Model::from_pretrained(dir.path(), Device::Cpu).unwrap_err();
    assert!(
        matches!(&err, Gemma2Error::Checkpoint(CheckpointError::Keys { missing, .. })
        if missing == &["layers.1.mlp.gate_proj.weight".to_string()]),
        "{err}"
    );

    let case = Case::load("full_mha_bf16");
    let too_large = case.inputs["input_ids"].ones_like() * 400;
    let err = no_grad(|| case.model.forward(&too_large, case.mask())).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary of 400"), "{err}");
    let err = case.forward(&case.mask().narrow(1, 0, 4)).unwrap_err();
    assert!(err.to_string().contains("attention_mask must be"), "{err}");
}

#[test]
fn configs_read_both_layouts_and_refuse_what_is_not_gemma_2() {
    let legacy: Gemma2Config = serde_json::from_str(r#"{"rope_theta": 500.0, "num_hidden_layers": 4}"#).unwrap();
    assert_eq!(legacy.rope_base(), 500.0);
    let config = Gemma2Config { num_hidden_layers: 4, ..Default::default() };
    let types: Vec<_> = (0..4).map(|i| config.layer_type(i)).collect();
    use sana_sr_model::text::gemma2::LayerType::{FullAttention, SlidingAttention};
    assert_eq!(types, [SlidingAttention, FullAttention, SlidingAttention, FullAttention]);
    let tiny = serde_json::json!({"vocab_size": 8, "hidden_size": 4, "intermediate_size": 4, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 2});
    for (key, value, complaint) in [
        ("rope_parameters", serde_json::json!({"rope_type": "linear", "rope_theta": 1.0}), "rope_type `linear`"),
        ("hidden_activation", serde_json::json!("gelu"), "hidden_activation `gelu`"),
        ("num_key_value_heads", serde_json::json!(3), "not a multiple"),
        ("use_bidirectional_attention", serde_json::json!(true), "causal"),
        ("layer_types", serde_json::json!(["full_attention"]), "1 layer_types for 2 layers"),
        ("sliding_window", serde_json::Value::Null, "sliding_window"),
    ] {
        let mut json = tiny.clone();
        json[key] = value;
        let config: Gemma2Config = serde_json::from_value(json).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let err = Gemma2Model::new(vs.root(), &config).unwrap_err();
        assert!(err.to_string().contains(complaint), "{key}: {err}");
    }
}

fn tokenizer() -> PromptTokenizer {
    PromptTokenizer::from_folder(&fixtures().join("tokenizer")).unwrap()
}

#[test]
fn token_ids_equal_transformers() {
    #[derive(serde::Deserialize)]
    struct Tokens {
        max_length: usize,
        cases: Vec<TokenCase>,
    }
    #[derive(serde::Deserialize)]
    struct TokenCase {
        text: String,
        ids: Vec<i64>,
        mask: Vec<i64>,
    }
    let reference: Tokens =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tokenizer/tokens.json")).unwrap()).unwrap();
    let texts: Vec<String> = reference.cases.iter().map(|c| c.text.clone()).collect();
    let tokens = tokenizer().encode(&texts, reference.max_length).unwrap();
    for (row, case) in reference.cases.iter().enumerate() {
        assert_eq!(Vec::<i64>::try_from(tokens.ids.get(row as i64)).unwrap(), case.ids, "{:?}", case.text);
        assert_eq!(Vec::<i64>::try_from(tokens.mask.get(row as i64)).unwrap(), case.mask, "{:?}", case.text);
    }
}

#[test]
fn prompt_embeddings_equal_the_pipelines() {
    #[derive(serde::Deserialize)]
    struct Prompts {
        prompts: Vec<String>,
        max_length: usize,
        cases: Vec<PromptCase>,
    }
    #[derive(serde::Deserialize)]
    struct PromptCase {
        name: String,
        lowercase: bool,
        instruction: Option<Vec<String>>,
    }
    let reference: Prompts =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("prompts.json")).unwrap()).unwrap();
    let expected = tensors(fixtures().join("prompts.safetensors"));
    let prompts: Vec<&str> = reference.prompts.iter().map(String::as_str).collect();
    let (encoder, _vs) = Gemma2Model::from_pretrained(&fixtures().join("sliding_gqa"), Device::Cpu).unwrap();
    let mut text = TextEncoder { tokenizer: tokenizer(), encoder, style: PromptStyle::sana_sr() };
    for case in reference.cases {
        text.style =
            PromptStyle { max_length: reference.max_length, lowercase: case.lowercase, instruction: case.instruction };
        let (embeds, mask) = no_grad(|| text.encode(&prompts)).unwrap();
        assert!(mask.equal(&expected[&format!("{}.mask", case.name)]), "{}: mask", case.name);
        let err = Deviation::between(&embeds, &expected[&format!("{}.embeds", case.name)]).normalised();
        println!("{:>22}: normalised error {err:.3e}", case.name);
        assert!(err <= BOUND, "{}: {err:e}", case.name);
    }
}

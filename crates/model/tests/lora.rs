//! LoRA adapters: the update against its formula computed by hand, merging against the unmerged network on the
//! tiny DiT and DC-AE fixtures, adapter files, strict base loading, unmatched targets, and freezing.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use sana_sr_core::compare::Deviation;
use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_model::autoencoders::AutoencoderDc;
use sana_sr_model::checkpoint::{self, CheckpointError, Pretrained};
use sana_sr_model::layers::lora::{self, Adapters, LoraAdapter, LoraConfig, LoraError, Trainable};
use sana_sr_model::layers::{ConvConfig, Layer};
use sana_sr_model::transformers::SanaTransformer2DModel;

type AnyResult<T> = Result<T, Box<dyn Error>>;

/// Merged against unmerged weights, as a normalised error (`sana_sr_core::compare`): the merged network
/// rounds `W + s·BA` once per weight where the unmerged one rounds `W·x` and `B(A·x)` apart, a relative
/// change of about u = 2^-24 per weight, which the depth of these random networks carries to the output as it
/// carries the one-ulp weight nudge of the parity suites (5e-7 on the DiT, up to 2.2e-5 inside the DC-AE
/// encoder's first attention, ~3e-6 at its latent). Measured on every setting of scripts/kernel_matrix.sh: at
/// most 9.7e-7.
const MERGE_BOUND: f64 = 1e-5;
/// One layer against its formula by hand, as a normalised error: the same products summed in another order,
/// at most K·u of the magnitudes summed for K <= 27 terms (worst-case bound, ~1.6e-6), which are within a few
/// times the largest output.
const LAYER_BOUND: f64 = 1e-5;
/// Size of the B given to adapters in the tests: large enough to move every output by far more than the
/// tolerances (checked in each test), so that a merge that dropped or mis-shaped an update would fail.
const B_SIZE: f64 = 0.02;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

const DIT: &str = "sana_transformer/p1_plain";
const DC_AE: &str = "dc_ae/unshuffle";

fn normalised_error(got: &Tensor, want: &Tensor) -> f64 {
    Deviation::between(got, want).normalised()
}

fn config(rank: i64, alpha: f64, targets: &[&str]) -> LoraConfig {
    LoraConfig { rank, alpha, targets: targets.iter().map(|t| t.to_string()).collect() }
}

fn dit_with(config: &LoraConfig) -> AnyResult<(SanaTransformer2DModel, nn::VarStore, Adapters)> {
    let ((model, vs), adapters) = lora::with_adapters(config, || -> AnyResult<_> {
        Ok(SanaTransformer2DModel::from_pretrained(&fixture(DIT), Device::Cpu)?)
    })?;
    Ok((model, vs, adapters))
}

fn dit_inputs() -> HashMap<String, Tensor> {
    checkpoint::read_tensors(&[fixture(DIT).join("inputs.safetensors")]).unwrap()
}

fn dit_forward(model: &SanaTransformer2DModel, inputs: &HashMap<String, Tensor>) -> Tensor {
    model
        .forward(
            &inputs["hidden_states"],
            &inputs["encoder_hidden_states"],
            &inputs["timestep"],
            Some(&inputs["encoder_attention_mask"]),
            None,
        )
        .unwrap()
}

fn dc_ae_image() -> Tensor {
    checkpoint::read_tensors(&[fixture(DC_AE).join("io.safetensors")]).unwrap().remove("image").unwrap()
}

/// Values in [-1, 1] spread like random ones but the same in every run (the global random generator is shared
/// by the tests running in parallel): sines of multiples of the golden angle.
fn spread(like: &Tensor, seed: f64) -> Tensor {
    let index = Tensor::arange(like.numel() as i64, (Kind::Double, Device::Cpu));
    (index * 2.399_963_229_728_653 + seed).sin().reshape(like.size()).to_kind(like.kind())
}

/// Gives every adapter a nonzero B, and an A of the size of its initialisation, the same in every run.
fn perturb(adapters: &Adapters) {
    no_grad(|| {
        for (i, layer) in adapters.layers().iter().enumerate() {
            let LoraAdapter { a, b, .. } = &layer.adapter;
            let bound = 1.0 / (a.size()[1..].iter().product::<i64>() as f64).sqrt();
            a.shallow_clone().copy_(&(spread(a, i as f64) * bound));
            b.shallow_clone().copy_(&(spread(b, -(i as f64)) * B_SIZE));
        }
    })
}

#[test]
fn untrained_adapters_leave_the_dit_bit_identical() -> AnyResult<()> {
    let inputs = dit_inputs();
    let (plain, _) = SanaTransformer2DModel::from_pretrained(&fixture(DIT), Device::Cpu)?;
    let (adapted, vs, adapters) = dit_with(&LoraConfig { rank: 4, alpha: 4.0, targets: lora::default_targets() })?;
    // Three blocks, each with four projections in two attentions and two 1x1 convolutions in the Mix-FFN.
    assert_eq!(adapters.layers().len(), 30);
    let names = vs.variables();
    for layer in adapters.layers() {
        assert!(names.contains_key(&format!("{}.lora_A.weight", layer.path)), "{}", layer.path);
        assert!(names.contains_key(&format!("{}.lora_B.weight", layer.path)), "{}", layer.path);
        assert_eq!(layer.adapter.b.abs().max().double_value(&[]), 0.0, "{}: B starts at zero", layer.path);
        // PEFT's init of A: U(±1/sqrt(fan_in)), fan_in = in·k·k.
        let fan_in = layer.adapter.a.size()[1..].iter().product::<i64>() as f64;
        // As float32 stores it: the largest sample may round up to that, a hair above the real bound.
        let bound = (1.0 / fan_in.sqrt()) as f32 as f64;
        let largest = layer.adapter.a.abs().max().double_value(&[]);
        assert!(largest <= bound && largest > 0.5 * bound, "{}: |A| max {largest} against bound {bound}", layer.path);
    }
    assert!(names.contains_key("transformer_blocks.2.attn2.to_out.0.lora_B.weight"));
    assert!(names.contains_key("transformer_blocks.0.ff.conv_inverted.lora_A.weight"));
    assert!(!names.keys().any(|k| k.contains("conv_depth.lora")), "the depthwise conv is never adapted");
    no_grad(|| assert!(dit_forward(&adapted, &inputs).equal(&dit_forward(&plain, &inputs))));
    Ok(())
}

#[test]
fn merged_dit_equals_the_adapted_dit_and_saves_as_a_plain_checkpoint() -> AnyResult<()> {
    let inputs = dit_inputs();
    let (model, vs, adapters) =
        dit_with(&config(3, 6.0, &["attn1.*", "attn2.*", "ff.conv_inverted", "ff.conv_point"]))?;
    perturb(&adapters);
    no_grad(|| -> AnyResult<()> {
        let adapted = dit_forward(&model, &inputs);
        let expected = checkpoint::read_tensors(&[fixture(DIT).join("outputs.safetensors")])?.remove("output").unwrap();
        let moved = normalised_error(&adapted, &expected);
        println!("adapters move the DiT output by {moved:.3e} (normalised)");
        assert!(moved > 100.0 * MERGE_BOUND, "the adapters must change the output");

        adapters.merge();
        let merged = dit_forward(&model, &inputs);
        let in_place = normalised_error(&merged, &adapted);

        let dir = tempfile::tempdir()?;
        model.save_pretrained(&vs, dir.path(), Kind::Float)?;
        let saved = checkpoint::read_tensors(&[dir.path().join(checkpoint::WEIGHTS_FILE)])?;
        assert!(!saved.keys().any(|k| lora::is_adapter_variable(k)), "a base checkpoint holds no adapters");
        let (plain, _) = SanaTransformer2DModel::from_pretrained(dir.path(), Device::Cpu)?;
        let reloaded = normalised_error(&dit_forward(&plain, &inputs), &adapted);
        println!("DiT merged against adapted: {in_place:.3e} in place, {reloaded:.3e} reloaded without adapters");
        assert!(in_place <= MERGE_BOUND && reloaded <= MERGE_BOUND, "{in_place:e}, {reloaded:e}");
        Ok(())
    })
}

#[test]
fn merged_dc_ae_encoder_equals_the_adapted_encoder() -> AnyResult<()> {
    let image = dc_ae_image();
    let ((model, vs), adapters) = lora::with_adapters(&config(2, 4.0, &["encoder."]), || -> AnyResult<_> {
        Ok(AutoencoderDc::from_pretrained(&fixture(DC_AE), Device::Cpu)?)
    })?;
    let paths: Vec<&str> = adapters.layers().iter().map(|l| l.path.as_str()).collect();
    assert!(paths.iter().all(|p| p.starts_with("encoder.")), "{paths:?}");
    for grouped in ["conv_depth", "to_qkv_multiscale"] {
        assert!(!paths.iter().any(|p| p.contains(grouped)), "grouped convs are not adapted: {paths:?}");
    }
    // The 3x3 convs, the attention's linear projections and the 1x1 convs are all adapted.
    for kind in ["encoder.conv_in", "encoder.conv_out", "conv1", "attn.to_q", "attn.to_out", "conv_inverted"] {
        assert!(paths.iter().any(|p| p.contains(kind)), "{kind} in {paths:?}");
    }
    perturb(&adapters);
    no_grad(|| -> AnyResult<()> {
        let (plain, _) = AutoencoderDc::from_pretrained(&fixture(DC_AE), Device::Cpu)?;
        let adapted = model.encode(&image)?;
        let moved = normalised_error(&adapted, &plain.encode(&image)?);
        println!("adapters move the latent by {moved:.3e} (normalised)");
        assert!(moved > 100.0 * MERGE_BOUND, "the adapters must change the latent");

        adapters.merge();
        let in_place = normalised_error(&model.encode(&image)?, &adapted);
        let dir = tempfile::tempdir()?;
        model.save_pretrained(&vs, dir.path(), Kind::Float)?;
        let (merged, _) = AutoencoderDc::from_pretrained(dir.path(), Device::Cpu)?;
        let reloaded = normalised_error(&merged.encode(&image)?, &adapted);
        println!("DC-AE encoder merged against adapted: {in_place:.3e} in place, {reloaded:.3e} reloaded");
        assert!(in_place <= MERGE_BOUND && reloaded <= MERGE_BOUND, "{in_place:e}, {reloaded:e}");
        Ok(())
    })
}

/// One layer, named `layer`, with an adapter of rank 3 and alpha 6 (scale 2) and a nonzero B.
fn adapted_layer(build: impl FnOnce(&nn::VarStore) -> Layer) -> AnyResult<(nn::VarStore, Layer, Adapters)> {
    let vs = nn::VarStore::new(Device::Cpu);
    let (layer, adapters) = lora::with_adapters(&config(3, 6.0, &["layer"]), || Ok::<_, LoraError>(build(&vs)))?;
    perturb(&adapters);
    Ok((vs, layer, adapters))
}

#[test]
fn linear_adapter_follows_the_formula() -> AnyResult<()> {
    let (_vs, layer, adapters) = adapted_layer(|vs| Layer::linear(vs.root() / "layer", 5, 4, true))?;
    let adapter = layer.adapter.as_ref().unwrap();
    assert_eq!((adapter.a.size(), adapter.b.size()), (vec![3, 5], vec![4, 3]));
    let x = Tensor::randn([2, 7, 5], (Kind::Float, Device::Cpu));
    no_grad(|| {
        let (w, bias) = (&layer.weight, layer.bias.as_ref().unwrap());
        let want = x.matmul(&w.tr()) + bias + x.matmul(&adapter.a.tr()).matmul(&adapter.b.tr()) * 2.0;
        let err = normalised_error(&layer.forward(&x), &want);
        assert!(err <= LAYER_BOUND, "{err:e}");
        assert!(normalised_error(&want, &x.linear(w, Some(bias))) > 100.0 * LAYER_BOUND, "the adapter must matter");
        adapters.merge();
        assert!(normalised_error(&layer.forward(&x), &want) <= LAYER_BOUND);
    });
    Ok(())
}

#[test]
fn adapters_compute_in_bfloat16_under_mixed_precision_and_train_in_float32() -> AnyResult<()> {
    use sana_sr_core::precision::with_compute_kind;
    let (_vs, layer, _adapters) = adapted_layer(|vs| Layer::linear(vs.root() / "layer", 5, 4, true))?;
    let adapter = layer.adapter.as_ref().unwrap();
    let x = Tensor::randn([2, 7, 5], (Kind::Float, Device::Cpu));
    let want = no_grad(|| layer.forward(&x));
    let y = with_compute_kind(Some(Kind::BFloat16), || layer.forward(&x));
    assert_eq!(y.kind(), Kind::BFloat16);
    // bfloat16 keeps 8 significant bits (unit roundoff 2^-9 ≈ 2e-3): x, W, A and B rounded once each and
    // the output once, plus sums of K = 5 products, stay within about ten of its roundings.
    let err = normalised_error(&y.to_kind(Kind::Float), &want);
    assert!(err < 2e-2, "{err:e}");
    y.to_kind(Kind::Float).sum(Kind::Float).backward();
    for (name, t) in [("A", &adapter.a), ("B", &adapter.b), ("W", &layer.weight)] {
        assert!(t.grad().defined() && t.grad().kind() == Kind::Float, "{name} gets a float32 gradient");
        assert!(t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name}");
    }
    Ok(())
}

#[test]
fn conv_adapter_follows_the_formula_with_the_layer_stride_and_padding() -> AnyResult<()> {
    let cfg = ConvConfig { stride: 2, padding: 1, ..Default::default() };
    let (_vs, layer, adapters) = adapted_layer(|vs| Layer::conv2d(vs.root() / "layer", 3, 5, 3, cfg))?;
    let adapter = layer.adapter.as_ref().unwrap();
    assert_eq!((adapter.a.size(), adapter.b.size()), (vec![3, 3, 3, 3], vec![5, 3, 1, 1]));
    let x = Tensor::randn([2, 3, 7, 9], (Kind::Float, Device::Cpu));
    no_grad(|| {
        let base = x.conv2d(&layer.weight, layer.bias.as_ref(), [2, 2], [1, 1], [1, 1], 1);
        // The adapter by hand: the 3x3 patches at stride 2 of the zero-padded input, [N, 3·3·3, 4·5], times
        // A as a [rank, 27] matrix, times B as [5, rank], times alpha/rank.
        let patches = x.im2col([3, 3], [1, 1], [1, 1], [2, 2]);
        let update = adapter.b.flatten(1, -1).matmul(&adapter.a.flatten(1, -1).matmul(&patches)) * 2.0;
        let want = base.shallow_clone() + update.reshape([2, 5, 4, 5]);
        let err = normalised_error(&layer.forward(&x), &want);
        assert!(err <= LAYER_BOUND, "{err:e}");
        assert!(normalised_error(&want, &base) > 100.0 * LAYER_BOUND, "the adapter must matter");
        adapters.merge();
        assert!(normalised_error(&layer.forward(&x), &want) <= LAYER_BOUND);
    });
    Ok(())
}

#[test]
fn adapters_round_trip_through_their_own_file() -> AnyResult<()> {
    let inputs = dit_inputs();
    let targets = ["attn1.to_q", "attn2.to_v", "ff.conv_point"];
    let (model, vs, adapters) = dit_with(&config(2, 2.0, &targets))?;
    perturb(&adapters);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("adapters.safetensors");
    lora::save_adapters(&vs, &file, Kind::Float)?;

    let saved = checkpoint::read_tensors(std::slice::from_ref(&file))?;
    let mut keys: Vec<&str> = saved.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys.len(), 3 * 3 * 2, "three blocks, three layers, two factors");
    assert_eq!(keys[0], "transformer_blocks.0.attn1.to_q.lora_A.weight");
    assert_eq!(keys[1], "transformer_blocks.0.attn1.to_q.lora_B.weight");
    assert!(keys.contains(&"transformer_blocks.2.ff.conv_point.lora_B.weight"));
    assert!(keys.iter().all(|k| lora::is_adapter_variable(k)), "{keys:?}");

    // A fresh network, with fresh adapters (random A, zero B), takes the saved ones and computes the same.
    let (fresh, fresh_vs, _) = dit_with(&config(2, 2.0, &targets))?;
    no_grad(|| assert!(!dit_forward(&fresh, &inputs).equal(&dit_forward(&model, &inputs))));
    lora::load_adapters(&fresh_vs, &file)?;
    let fresh_variables = fresh_vs.variables();
    for (name, t) in vs.variables() {
        assert!(t.equal(&fresh_variables[&name]), "{name}");
    }
    no_grad(|| assert!(dit_forward(&fresh, &inputs).equal(&dit_forward(&model, &inputs))));

    // Strict: another rank, other targets, or a base checkpoint are refused.
    let (_, rank4_vs, _) = dit_with(&config(4, 4.0, &targets))?;
    let err = lora::load_adapters(&rank4_vs, &file).unwrap_err();
    assert!(matches!(err, LoraError::Checkpoint(CheckpointError::ShapeMismatch { .. })), "{err}");
    let (_, other_vs, _) = dit_with(&config(2, 2.0, &["attn1.to_q", "attn2.to_v"]))?;
    let err = lora::load_adapters(&other_vs, &file).unwrap_err();
    match &err {
        LoraError::Checkpoint(CheckpointError::Keys { missing, unexpected }) => {
            assert!(missing.is_empty());
            assert_eq!(unexpected.len(), 6, "{unexpected:?}");
        }
        other => panic!("expected a key mismatch, got {other}"),
    }
    let err = lora::load_adapters(&fresh_vs, &fixture(DIT)).unwrap_err();
    assert!(matches!(err, LoraError::Checkpoint(CheckpointError::Keys { .. })), "{err}");
    Ok(())
}

#[test]
fn base_checkpoints_load_strictly_and_leave_adapters_alone() -> AnyResult<()> {
    let layers = |vs: &nn::VarStore| {
        (Layer::linear(vs.root() / "proj", 3, 4, true), Layer::conv2d_same(vs.root() / "conv", 2, 2, 3, false))
    };
    let dir = tempfile::tempdir()?;
    let base_file = dir.path().join("base.safetensors");
    let plain = nn::VarStore::new(Device::Cpu);
    let _ = layers(&plain);
    checkpoint::save(&plain, &base_file, Kind::Float)?;

    let vs = nn::VarStore::new(Device::Cpu);
    let (_layers, adapters) =
        lora::with_adapters(&config(2, 2.0, &["proj", "conv"]), || Ok::<_, LoraError>(layers(&vs)))?;
    perturb(&adapters);
    let before: HashMap<String, Tensor> =
        vs.variables().into_iter().filter(|(k, _)| lora::is_adapter_variable(k)).map(|(k, t)| (k, t.copy())).collect();
    assert_eq!(before.len(), 4);
    checkpoint::load_into(&vs, &base_file)?;
    let after = vs.variables();
    for (name, t) in &before {
        assert!(t.equal(&after[name]), "{name} kept its value");
    }
    for (name, t) in plain.variables() {
        assert!(t.equal(&after[&name]), "{name} loaded");
    }

    // Base keys stay strict: a missing one, or an adapter key in a base checkpoint, is an error.
    let mut tensors = checkpoint::read_tensors(std::slice::from_ref(&base_file))?;
    let conv = tensors.remove("conv.weight").unwrap();
    let err = checkpoint::copy_into(&vs, tensors.iter().map(|(k, t)| (k.clone(), t.copy())).collect()).unwrap_err();
    let only_conv_missing =
        |missing: &[String], unexpected: &[String]| missing == ["conv.weight"] && unexpected.is_empty();
    assert!(
        matches!(&err, CheckpointError::Keys { missing, unexpected } if only_conv_missing(missing, unexpected)),
        "{err}"
    );
    tensors.insert("conv.weight".into(), conv);
    tensors.insert("proj.lora_A.weight".into(), Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)));
    let err = checkpoint::copy_into(&vs, tensors).unwrap_err();
    assert!(matches!(&err, CheckpointError::Keys { unexpected, .. } if unexpected == &["proj.lora_A.weight"]), "{err}");
    Ok(())
}

#[test]
fn targets_that_select_nothing_are_errors() {
    let dit_config = checkpoint::read_config(&fixture(DIT)).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let typo = config(4, 4.0, &["attn1.to_q", "attn1.to_qq", "conv_depth"]);
    let err =
        lora::with_adapters(&typo, || -> AnyResult<_> { Ok(SanaTransformer2DModel::new(vs.root(), &dit_config)?) })
            .unwrap_err();
    let err = err.downcast::<LoraError>().unwrap();
    match &*err {
        // `conv_depth` names only depthwise convolutions, which are never adapted.
        LoraError::UnmatchedTargets { patterns } => assert_eq!(patterns, &["attn1.to_qq", "conv_depth"]),
        other => panic!("expected unmatched targets, got {other}"),
    }
    assert!(err.to_string().contains("[attn1.to_qq, conv_depth]"), "{err}");

    // The build's own error comes first, and a failed or panicking build leaves no plan behind.
    let missing = lora::with_adapters(&typo, || -> AnyResult<_> {
        Ok(SanaTransformer2DModel::from_pretrained(Path::new("/nonexistent"), Device::Cpu)?)
    });
    assert!(missing.unwrap_err().to_string().contains("/nonexistent"));
    let panicked = std::panic::catch_unwind(|| {
        lora::with_adapters(&typo, || -> Result<(), LoraError> { panic!("a panicking build, as this test intends") })
    });
    assert!(panicked.is_err());
    let later = Layer::linear(vs.root() / "later" / "attn1" / "to_q", 2, 2, false);
    assert!(later.adapter.is_none(), "no plan is in force outside with_adapters");

    let nested = lora::with_adapters(&typo, || lora::with_adapters(&typo, || Ok::<_, LoraError>(())));
    assert!(matches!(nested, Err(LoraError::Nested)));
}

#[test]
fn freezing_trains_the_adapters_only() -> AnyResult<()> {
    use nn::OptimizerConfig;

    let inputs = dit_inputs();
    let (model, vs, adapters) = dit_with(&config(2, 2.0, &["attn1.to_q", "attn2.to_k", "ff.conv_inverted"]))?;
    // With B = 0 the gradient of A is zero too; a nonzero B makes both gradients nonzero.
    perturb(&adapters);
    lora::set_trainable(&vs, Trainable::Adapters)?;
    let mut optimizer = nn::AdamW { wd: 0.1, ..Default::default() }.build(&vs, 1e-2)?;
    let before: HashMap<String, Tensor> = vs.variables().into_iter().map(|(k, t)| (k, t.copy())).collect();

    optimizer.zero_grad();
    dit_forward(&model, &inputs).square().mean(Kind::Float).backward();
    let variables = vs.variables();
    for (name, t) in &variables {
        if lora::is_adapter_variable(name) {
            assert!(t.grad().defined() && t.grad().abs().max().double_value(&[]) > 0.0, "{name} has a gradient");
        } else {
            assert!(!t.grad().defined(), "{name} is frozen");
        }
    }
    optimizer.step();
    for (name, t) in &variables {
        let changed = !t.equal(&before[name]);
        assert_eq!(changed, lora::is_adapter_variable(name), "{name}: only adapters move, weight decay included");
    }

    lora::set_trainable(&vs, Trainable::All)?;
    optimizer.zero_grad();
    dit_forward(&model, &inputs).square().mean(Kind::Float).backward();
    for (name, t) in &vs.variables() {
        assert!(t.grad().defined(), "{name} trains in full fine-tuning");
    }

    let plain = nn::VarStore::new(Device::Cpu);
    let _ = Layer::linear(plain.root() / "proj", 2, 2, true);
    assert!(matches!(lora::set_trainable(&plain, Trainable::Adapters), Err(LoraError::NoAdapters)));
    Ok(())
}

/// The DiT fixture with 3 experts' adapters (rank 2, alpha 2) on its self-attention queries and Mix-FFN
/// outputs: built new (its checkpoint has no adapters, and expert adapters are loaded as strictly as the
/// weights), then given the checkpoint's weights.
fn dit_with_experts() -> AnyResult<(SanaTransformer2DModel, nn::VarStore)> {
    let (plain, plain_vs) = SanaTransformer2DModel::from_pretrained(&fixture(DIT), Device::Cpu)?;
    let vs = nn::VarStore::new(Device::Cpu);
    let model =
        lora::with_expert_adapters(&config(2, 2.0, &["attn1.to_q", "ff.conv_point"]), 3, || -> AnyResult<_> {
            Ok(SanaTransformer2DModel::new(vs.root(), &plain.config)?)
        })?;
    let weights = plain_vs.variables();
    no_grad(|| {
        for (name, var) in vs.variables() {
            if let Some(weight) = weights.get(&name) {
                var.shallow_clone().copy_(weight);
            }
        }
    });
    Ok((model, vs))
}

#[test]
fn expert_adapters_are_model_variables_that_start_as_the_shared_network() -> AnyResult<()> {
    let inputs = dit_inputs();
    let (plain, _) = SanaTransformer2DModel::from_pretrained(&fixture(DIT), Device::Cpu)?;
    let (experts, vs) = dit_with_experts()?;
    let names = vs.variables();
    let adapter_names: Vec<&String> = names.keys().filter(|n| lora::expert_of_variable(n).is_some()).collect();
    // Three blocks, two layers each, three experts, two factors.
    assert_eq!(adapter_names.len(), 3 * 2 * 3 * 2);
    assert_eq!(names["transformer_blocks.1.attn1.to_q.lora_A.expert_2.weight"].size(), [2, 24]);
    assert_eq!(names["transformer_blocks.0.ff.conv_point.lora_B.expert_0.weight"].size(), [24, 2, 1, 1]);
    assert!(!names.keys().any(|n| lora::is_adapter_variable(n)), "no adapter that trains and merges");
    no_grad(|| {
        let want = dit_forward(&plain, &inputs);
        for k in 0..3 {
            assert!(lora::with_active_expert(k, || dit_forward(&experts, &inputs)).equal(&want), "expert {k}");
        }
    });
    Ok(())
}

#[test]
fn each_expert_adds_its_own_update() -> AnyResult<()> {
    let inputs = dit_inputs();
    let (experts, vs) = dit_with_experts()?;
    let names = vs.variables();
    no_grad(|| {
        let before: Vec<Tensor> =
            (0..3).map(|k| lora::with_active_expert(k, || dit_forward(&experts, &inputs))).collect();
        for (i, (name, b)) in names.iter().filter(|(n, _)| n.contains("lora_B.expert_1.")).enumerate() {
            b.shallow_clone().copy_(&(spread(b, i as f64) * B_SIZE));
            assert_eq!(lora::expert_of_variable(name), Some(1));
        }
        let after: Vec<Tensor> =
            (0..3).map(|k| lora::with_active_expert(k, || dit_forward(&experts, &inputs))).collect();
        assert!(after[0].equal(&before[0]) && after[2].equal(&before[2]), "experts 0 and 2 are untouched");
        assert!(normalised_error(&after[1], &before[1]) > 100.0 * MERGE_BOUND, "expert 1 changed");
    });
    // One layer against the formula: expert 1's update alone is added to the layer's output.
    let vs = nn::VarStore::new(Device::Cpu);
    let layer = lora::with_expert_adapters(&config(3, 6.0, &["layer"]), 2, || {
        Ok::<_, LoraError>(Layer::linear(vs.root() / "layer", 5, 4, true))
    })?;
    assert_eq!(layer.experts.len(), 2);
    let x = Tensor::randn([2, 7, 5], (Kind::Float, Device::Cpu));
    no_grad(|| {
        for (k, expert) in layer.experts.iter().enumerate() {
            expert.a.shallow_clone().copy_(&(spread(&expert.a, k as f64) * 0.4));
            expert.b.shallow_clone().copy_(&(spread(&expert.b, -(k as f64)) * B_SIZE));
        }
        let base = x.linear(&layer.weight, layer.bias.as_ref());
        for (k, expert) in layer.experts.iter().enumerate() {
            let want = &base + x.matmul(&expert.a.tr()).matmul(&expert.b.tr()) * 2.0;
            let err = normalised_error(&lora::with_active_expert(k, || layer.forward(&x)), &want);
            assert!(err <= LAYER_BOUND, "expert {k}: {err:e}");
            assert!(normalised_error(&want, &base) > 100.0 * LAYER_BOUND, "the update must matter");
        }
    });
    Ok(())
}

#[test]
#[should_panic(expected = "with_active_expert")]
fn a_layer_with_expert_adapters_refuses_to_run_without_an_expert() {
    let vs = nn::VarStore::new(Device::Cpu);
    let layer = lora::with_expert_adapters(&config(2, 2.0, &["layer"]), 2, || {
        Ok::<_, LoraError>(Layer::linear(vs.root() / "layer", 3, 3, false))
    })
    .unwrap();
    let _ = layer.forward(&Tensor::zeros([1, 3], (Kind::Float, Device::Cpu)));
}

#[test]
fn expert_plans_do_not_nest_but_hold_training_adapters() -> AnyResult<()> {
    let plan = config(2, 2.0, &["layer"]);
    let nested =
        lora::with_expert_adapters(&plan, 2, || lora::with_expert_adapters(&plan, 2, || Ok::<_, LoraError>(())));
    assert!(matches!(nested, Err(LoraError::Nested)), "{nested:?}");
    let vs = nn::VarStore::new(Device::Cpu);
    let (layer, adapters) = lora::with_adapters(&plan, || {
        lora::with_expert_adapters(&plan, 2, || Ok::<_, LoraError>(Layer::linear(vs.root() / "layer", 3, 3, false)))
    })?;
    assert_eq!((adapters.layers().len(), layer.experts.len()), (1, 2));
    assert!(layer.adapter.is_some());
    Ok(())
}

//! SANA-SR from released parts: a tiny random diffusers Sana pipeline and a PEFT LoRA of its transformer, written
//! by tools/reference/make_sana_sr_stack_fixtures.py with the output of a Python forward pass of SANA-SR's one
//! step (the adapter unmerged, as PEFT runs it), against the assembled model's upscale.

use std::path::{Path, PathBuf};

use sana_sr_data::io::read_image;
use sana_sr_pipeline::assemble::{assemble, Parts, SANA_SR_TIMESTEP_INDEX};
use sana_sr_pipeline::{ModelError, UpscaleOptions, Upscaler};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sana_sr_stack")
}

fn parts(lora: bool) -> Parts {
    Parts {
        pipeline: fixtures().join("pipeline"),
        lora: lora.then(|| fixtures().join("lora/adapter_model.safetensors")),
        vae: None,
    }
}

fn assembled(parts: &Parts) -> Result<Upscaler, ModelError> {
    let (model, vs) = assemble(parts, "tiny", SANA_SR_TIMESTEP_INDEX, &|_| {})?;
    Ok(Upscaler::new(model, vs))
}

/// The reference output of a case, `[H, W, 3]` interleaved as the upscaler's images are.
fn reference(case: &str) -> Vec<f32> {
    let tensors = sana_sr_model::checkpoint::read_tensors(&[fixtures().join("reference.safetensors")]).unwrap();
    let nchw = &tensors[case];
    Vec::<f32>::try_from(nchw.squeeze_dim(0).permute([1, 2, 0]).contiguous().flatten(0, -1)).unwrap()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap()).unwrap()
}

#[test]
fn the_assembled_stack_equals_sana_sr_forward_pass() {
    // The same float32 operations as the reference's, many in other orders (the text encoder's attention, the
    // DiT's linear attention sums, the merged adapter: W + s·B·A once instead of W·x + s·B·(A·x)): each output
    // is a chain of a few hundred roundings of unit-scale values, which 2e-5 on [0, 1] bounds with a wide
    // margin (measured: under 1e-6).
    const BOUND: f32 = 2e-5;
    let (model, vs) = assemble(&parts(true), "tiny", SANA_SR_TIMESTEP_INDEX, &|_| {}).unwrap();
    let meta = meta();
    assert_eq!(model.config.timestep, meta["timestep"].as_f64().unwrap());
    assert_eq!(model.config.sigma, meta["sigma"].as_f64());
    let upscaler = Upscaler::new(model, vs);
    let lr = read_image(fixtures().join("lr.png")).unwrap();
    for (case, how) in meta["cases"].as_object().unwrap() {
        let options = UpscaleOptions {
            tags: how["tags"].as_str().map(str::to_string),
            guidance: how["guidance"].as_f64().unwrap(),
            tile: None,
            ..Default::default()
        };
        let out = upscaler.upscale(&lr, &options).unwrap();
        assert_eq!((out.width, out.height), (lr.width * 4, lr.height * 4));
        let difference = max_difference(&out.data, &reference(case));
        assert!(difference <= BOUND, "{case}: {difference}");
    }
    // The adapter matters: without it the output is another.
    let base = assembled(&parts(false)).unwrap().upscale(&lr, &UpscaleOptions { tile: None, ..Default::default() });
    assert!(max_difference(&base.unwrap().data, &reference("untagged")) > 1e-3);
}

/// The fixture's pipeline and adapter copied into a temporary folder, for a test to spoil.
fn copy_of_fixtures() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixtures().join("pipeline"), &dir.path().join("pipeline"));
    copy(&fixtures().join("lora"), &dir.path().join("lora"));
    dir
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let text = std::fs::read_to_string(path).unwrap().replace("-Infinity", "null");
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string(&value).unwrap()).unwrap();
}

fn error_of(parts: &Parts) -> String {
    format!("{}", assembled(parts).expect_err("the parts are refused"))
}

#[test]
fn adapters_that_are_not_plain_lora_of_the_transformer_are_refused_by_what_they_are() {
    let dir = copy_of_fixtures();
    let parts = Parts {
        pipeline: dir.path().join("pipeline"),
        lora: Some(dir.path().join("lora/adapter_model.safetensors")),
        vae: None,
    };
    let config = dir.path().join("lora/adapter_config.json");
    edit_json(&config, |c| c["use_dora"] = true.into());
    let error = error_of(&parts);
    assert!(error.contains("adapter_config.json") && error.contains("use_dora"), "{error}");

    // Fewer targets than the file holds adapters for: the file's extra keys are named.
    edit_json(&config, |c| {
        c["use_dora"] = false.into();
        c["target_modules"] = serde_json::json!(["to_q", "to_k", "to_v"]);
    });
    let error = error_of(&parts);
    assert!(error.contains("unexpected") && error.contains("to_out.0.lora_A.weight"), "{error}");

    edit_json(&config, |c| c["target_modules"] = ".*attn1.*".into());
    assert!(error_of(&parts).contains("regular expression"));

    std::fs::remove_file(&config).unwrap();
    let error = error_of(&parts);
    assert!(error.contains("adapter_config.json"), "{error}");
}

#[test]
fn pipelines_whose_parts_do_not_fit_are_refused_by_what_does_not_fit() {
    let dir = copy_of_fixtures();
    let pipeline = dir.path().join("pipeline");
    let parts = Parts { pipeline: pipeline.clone(), lora: None, vae: None };

    let scheduler = pipeline.join("scheduler/scheduler_config.json");
    edit_json(&scheduler, |c| c["use_karras_sigmas"] = true.into());
    let error = error_of(&parts);
    assert!(error.contains("scheduler_config.json") && error.contains("use_karras_sigmas"), "{error}");
    edit_json(&scheduler, |c| c["_class_name"] = "DDIMScheduler".into());
    assert!(error_of(&parts).contains("DDIMScheduler"));
    std::fs::copy(fixtures().join("pipeline/scheduler/scheduler_config.json"), &scheduler).unwrap();
    assert!(assembled(&parts).is_ok(), "the restored pipeline assembles");

    // A DC-AE of another latent width than the transformer's.
    let other_vae = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/dc_ae/unshuffle");
    let error = error_of(&Parts { vae: Some(other_vae), ..parts.clone() });
    assert!(error.contains("latent has 4"), "{error}");

    // A text encoder of another width than the transformer's captions.
    edit_json(&pipeline.join("transformer/config.json"), |c| c["caption_channels"] = 24.into());
    let error = error_of(&parts);
    assert!(error.contains("caption_channels 24"), "{error}");

    std::fs::remove_file(pipeline.join("text_encoder/model.safetensors")).unwrap();
    let error = error_of(&parts);
    assert!(error.contains("text_encoder"), "{error}");
}

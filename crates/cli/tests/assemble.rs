//! `sana-sr models assemble` then `sana-sr upscale --tags`, end to end, on the tiny random Sana pipeline and PEFT
//! LoRA of the pipeline crate's fixtures, against the Python forward pass of SANA-SR's one step written beside them
//! (tools/reference/make_sana_sr_stack_fixtures.py).

mod common;

use std::path::{Path, PathBuf};

use common::{sana_sr, stderr, stdout};
use sana_sr_data::io::read_image;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipeline/tests/fixtures/sana_sr_stack")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assemble(dir: &Path, output: &str, extra: &[&str]) -> std::process::Output {
    let (pipeline, lora) = (fixtures().join("pipeline"), fixtures().join("lora/adapter_model.safetensors"));
    let mut args = vec!["models", "assemble", "--pipeline", path(&pipeline), "--lora", path(&lora), "-o", output];
    args.extend(extra);
    sana_sr(&args, dir)
}

#[test]
fn an_assembled_sana_sr_upscales_as_its_python_forward_pass_to_the_8_bit_level() {
    let dir = tempfile::tempdir().unwrap();
    let out = assemble(dir.path(), "sana-sr-tiny.safetensors", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("timestep 249 (index 900), sigma 0.249792"), "{}", stdout(&out));

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap()).unwrap();
    let reference = sana_sr_model::checkpoint::read_tensors(&[fixtures().join("reference.safetensors")]).unwrap();
    let lr = fixtures().join("lr.png");
    for (case, how) in meta["cases"].as_object().unwrap() {
        let output = format!("{case}.png");
        let guidance = how["guidance"].as_f64().unwrap().to_string();
        let mut args =
            vec!["upscale", path(&lr), "--model", "sana-sr-tiny.safetensors", "-o", &output, "--guidance", &guidance];
        // The reference is float32; `auto` would be bf16 on a CPU with AMX.
        args.extend(["--precision", "f32"]);
        if let Some(tags) = how["tags"].as_str() {
            args.extend(["--tags", tags]);
        }
        let out = sana_sr(&args, dir.path());
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let sr = read_image(dir.path().join(&output)).unwrap();
        let want = reference[case.as_str()].squeeze_dim(0).permute([1, 2, 0]).contiguous().flatten(0, -1);
        let want = Vec::<f32>::try_from(want).unwrap();
        // The library's float output is within 2e-5 of the reference (the pipeline crate's test), 0.005 of an
        // 8-bit level: a pixel may round the other way only where the reference lies that close to a half level.
        let (mut worst, mut off) = (0.0f32, 0);
        for (got, want) in sr.data.iter().zip(&want) {
            let levels = (got * 255.0 - (want * 255.0).round()).abs();
            worst = worst.max(levels);
            off += usize::from(levels > 0.5);
        }
        assert!(worst <= 1.0 + 1e-3, "{case}: a pixel {worst} levels off");
        assert!(off * 1000 <= want.len(), "{case}: {off} of {} values off by a level", want.len());
    }
}

#[test]
fn assemble_never_writes_over_an_existing_file_or_into_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("model.safetensors");
    std::fs::write(&existing, b"keep me").unwrap();
    let out = assemble(dir.path(), "model.safetensors", &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--overwrite"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    let inside = fixtures().join("pipeline/model.safetensors");
    let out = assemble(dir.path(), path(&inside), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("into the input"), "{}", stderr(&out));
    assert!(!inside.exists());

    // A failed assembly (a timestep index past the scheduler's steps) leaves nothing behind.
    let out = assemble(dir.path(), "new.safetensors", &["--timestep-index", "1000"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("timestep index 1000"), "{}", stderr(&out));
    assert!(!dir.path().join("new.safetensors").exists());
}

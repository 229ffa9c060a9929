//! `sana-sr inspect`: the cost report as tables and as JSON, for the built-in model, a model config and a
//! peer model file; bad requests refused.

mod common;

use std::path::Path;

use common::{sana_sr, stderr};

fn json(args: &[&str], cwd: &Path) -> serde_json::Value {
    let out = sana_sr(args, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn the_built_in_model_and_a_config_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let report = json(&["inspect", "sana-sr-tiny", "--input", "128x96", "--json"], dir.path());
    assert_eq!(report["output"], serde_json::json!([384, 512]));
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages[0]["name"], "input resize");
    assert_eq!(stages.last().unwrap()["name"], "decoder");
    let sum: u64 = stages.iter().map(|s| s["macs"].as_u64().unwrap()).sum();
    assert_eq!(sum, report["macs"].as_u64().unwrap());

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline/configs/sana-sr-f32c32-600m.model.json");
    let report = json(&["inspect", config.to_str().unwrap(), "--json"], dir.path());
    assert_eq!(report["params"].as_u64().unwrap(), 904_689_347);
    let blocks = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("transformer_blocks."))
        .count();
    assert_eq!(blocks, 28);

    let out = sana_sr(&["inspect", "sana-sr-tiny", "--modules"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("transformer_blocks.3") && text.contains("vae.decoder.conv_out") && text.contains("Counted:"),
        "{text}"
    );
}

#[test]
fn a_peer_file_is_counted_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let config: sana_sr_pipeline::EsrganModelConfig =
        serde_json::from_str(r#"{"name": "small", "architecture": "srvggnet_compact", "num_feat": 8, "num_conv": 2}"#)
            .unwrap();
    let vs = sana_sr_core::nn::VarStore::new(sana_sr_core::Device::Cpu);
    let net = sana_sr_pipeline::Network::Esrgan(sana_sr_pipeline::EsrganModel::build(vs.root(), &config).unwrap());
    net.save(&vs, &models.join("small.safetensors"), sana_sr_core::Kind::Float).unwrap();
    let report = json(&["inspect", "small", "--input", "64", "--json"], dir.path());
    assert_eq!(report["architecture"], "SRVGGNetCompact");
    assert!(report["notes"][0].as_str().unwrap().contains("mirrored"));

    for (args, message) in [
        (vec!["inspect", "sana-sr-tiny", "--scale", "7"], "scale 7 is not supported"),
        (vec!["inspect", "sana-sr-tiny", "--guidance", "2"], "no text encoder"),
        (vec!["inspect", "sana-sr-tiny", "--steps", "0"], "outside 1..="),
        (vec!["inspect", "small", "--steps", "2"], "takes no sampler steps"),
        (vec!["inspect", "sana-sr-tiny", "--input", "12x"], "--input"),
        (vec!["inspect", "no-such-model"], "no model named"),
        (vec!["inspect", "missing.model.json"], "missing.model.json"),
    ] {
        let out = sana_sr(&args, dir.path());
        assert!(!out.status.success() && stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_model_with_an_lr_stem_steps_and_experts_is_counted_and_its_experts_listed() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/sana-sr-tiny.model.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tiny).unwrap()).unwrap();
    config["transformer"]["in_channels"] = serde_json::json!(24);
    config["lr_stem"] = serde_json::json!({"channels": [8, 8], "strides": [2, 2]});
    config["sampler"] = serde_json::json!({"start": "noise", "steps": 4, "shift": 3.0});
    config["experts"] =
        serde_json::json!({"kind": "full", "bisection": {"count": 4, "anchor": 0.125, "log_snr": [-8.88, 7.04]}});
    let path = dir.path().join("linearsr.model.json");
    std::fs::write(&path, config.to_string()).unwrap();

    let out = sana_sr(&["inspect", path.to_str().unwrap()], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "lr stem",
        "transformer, steps 2-4",
        "experts 2-4",
        "the sampler takes 4 step(s) from noise (flow shift 3)",
        "0: sigma 0.777-1.000, 1: sigma 0.125-0.777, 2: sigma 0.061-0.125, 3: sigma 0.000-0.061",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    let report = json(&["inspect", path.to_str().unwrap(), "--json"], dir.path());
    let stage = |name: &str| report["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(stage("encoder")["macs"], 0, "from noise the encoder does not run");
    // Steps 2-4 are three more passes of the first step's DiT.
    let first: u64 = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let name = s["name"].as_str().unwrap();
            name.starts_with("transformer_blocks.") || name == "transformer embeddings" || name == "transformer output"
        })
        .map(|s| s["macs"].as_u64().unwrap())
        .sum();
    assert_eq!(stage("transformer, steps 2-4")["macs"].as_u64().unwrap(), 3 * first);

    // `--steps` counts the run `upscale --steps` makes.
    let report = json(&["inspect", path.to_str().unwrap(), "--steps", "6", "--json"], dir.path());
    let stage = |name: &str| report["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(stage("transformer, steps 2-6")["macs"].as_u64().unwrap(), 5 * first);
}

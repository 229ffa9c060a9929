//! `sana-sr prune`: a small model from a config pruned to a budget on calibration photos, the pruned file
//! upscaled and inspected like any model, its importances reused; bad requests refused.

mod common;

use std::path::Path;

use common::{sana_sr, stderr};
use sana_sr_data::Image;

const CONFIG: &str = "../pipeline/tests/fixtures/pruned_depth/source.model.json";

/// A few photo-like PNGs in `dir`.
fn photos(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..3 {
        let (w, h) = (80 + 8 * i, 72);
        let data = (0..w * h * 3)
            .map(|k| {
                let (x, y, c) = ((k / 3) % w, (k / 3) / w, k % 3);
                (0.2 + 0.3 * x as f32 / w as f32 + 0.1 * c as f32 + 0.1 * ((x * (i + 2) + y) as f32 * 0.3).sin())
                    .clamp(0.0, 1.0)
            })
            .collect();
        sana_sr_data::io::save_image(&Image::new(w, h, 3, data), dir.join(format!("{i}.png"))).unwrap();
    }
}

fn report(args: &[&str], cwd: &Path) -> serde_json::Value {
    let out = sana_sr(args, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_model_is_pruned_to_its_budget_and_runs_like_any_model() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photos(&cwd.join("photos"));
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(CONFIG);
    let config = config.to_str().unwrap();
    let before = report(&["inspect", config, "--input", "32", "--json"], cwd);
    let target = before["macs"].as_u64().unwrap() * 7 / 10;
    let target = target.to_string();
    let args = [
        "prune",
        "--model",
        config,
        "--target-macs",
        &target,
        "--input",
        "32",
        "--calibration",
        "photos",
        "--pairs",
        "2",
        "--crop",
        "64",
        "--groups",
        "4",
        "-o",
        "small.safetensors",
    ];
    let out = sana_sr(&args, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("small.safetensors written") && text.contains("removed:"), "{text}");
    let after = report(&["inspect", "small.safetensors", "--input", "32", "--json"], cwd);
    assert!(after["macs"].as_u64().unwrap() <= target.parse::<u64>().unwrap());

    // The importances were written beside it; read back, they pick the same units for the same budget.
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("small.importance.json")).unwrap()).unwrap();
    assert_eq!(scores["importance"], "taylor");
    assert!(scores["units"].as_array().unwrap().iter().any(|u| u["removed"] == true));
    let mut again = args.to_vec();
    again.extend(["--importance-from", "small.importance.json", "--overwrite"]);
    *again.iter_mut().find(|a| **a == "small.safetensors").unwrap() = "again.safetensors";
    // Nothing is measured then, so no calibration photos are needed.
    *again.iter_mut().find(|a| **a == "photos").unwrap() = "no-such-folder";
    let out = sana_sr(&again, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(report(&["inspect", "again.safetensors", "--input", "32", "--json"], cwd)["macs"], after["macs"]);

    // It upscales like any model file.
    let out = sana_sr(&["upscale", "photos/0.png", "--model", "small.safetensors", "-o", "sr.png"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cwd.join("sr.png").exists());

    // An existing output, an unreachable or missing target, a peer-sized request are refused.
    for (extra, message) in [
        (vec!["--target-macs", "1", "-o", "small.safetensors"], "exists"),
        (vec!["--target-macs", "1", "-o", "tiny.safetensors"], "cannot reach the target"),
        (vec!["--target-macs", "150%", "-o", "x.safetensors"], "percentage"),
        (vec!["-o", "x.safetensors"], "--target-params"),
    ] {
        let mut args = vec![
            "prune",
            "--model",
            config,
            "--input",
            "32",
            "--calibration",
            "photos",
            "--pairs",
            "1",
            "--crop",
            "64",
        ];
        args.extend(extra);
        let out = sana_sr(&args, cwd);
        assert!(!out.status.success() && stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

//! `sana-sr train` end to end on a tiny model and pool: a run killed mid-way and resumed ends exactly where
//! the unbroken run ends (its U-Net discriminator's state included), with teachers too; LoRA fine-tuning trains
//! adapters only and `lora merge` gives the exported model.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sana_sr_core::{nn, Device, Kind, Tensor};
use sana_sr_model::checkpoint::read_tensors;
use sana_sr_model::esrgan::{EsrganConfig, SrVggNetCompactConfig};
use sana_sr_pipeline::{EsrganModel, EsrganModelConfig, Network, SrModel, SrModelConfig};

fn sana_sr(args: &[&str], cwd: &Path) -> Output {
    let out = common::sana_sr(args, cwd);
    assert!(out.status.success(), "{args:?} failed: {}", common::stderr(&out));
    out
}

/// Runs the binary expecting it to fail; its stderr.
fn sana_sr_fails(args: &[&str], cwd: &Path) -> String {
    let out = common::sana_sr(args, cwd);
    assert!(!out.status.success(), "{args:?} succeeded");
    common::stderr(&out)
}

/// A pool of small textured images, a tiny model and a training config, in `dir`.
fn setup(dir: &Path, steps: u64, niqe: bool) {
    sana_sr_train::testing::write_textured_pool(dir, 200, 196);
    let model = serde_json::to_string(&sana_sr_train::testing::tiny_model_config("test-tiny")).unwrap();
    std::fs::write(dir.join("model.json"), model).unwrap();
    let degradation = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/configs/realesrgan_x4plus.toml");
    // NIQE needs larger validation crops than training uses.
    let (val_data, val_train) = if niqe { ("val_crop = 192", "val_metric = \"niqe\"") } else { ("", "") };
    let config = format!(
        r#"
[model]
config = "model.json"
[data]
hr = ["pool"]
degradation = "{}"
crop = 96
batch = 2
workers = 1
val_images = 1
val_pairs = 2
{val_data}
[train]
steps = {steps}
{val_train}
trainable = "all"
seed = 3
grad_clip = 1.0
ema_decay = 0.9
checkpoint_every = 2
log_every = 1
threads = 1
[schedule]
base_lr = 1e-3
warmup_steps = 2
total_steps = {steps}
[loss]
pixel_l1 = 1.0
edge = 0.1
adversarial = 0.01
[discriminator]
kind = "unet"
width = 8
[esgf]
every_steps = 4
"#,
        degradation.display()
    );
    std::fs::write(dir.join("train.toml"), config).unwrap();
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    read_tensors(&[path.to_path_buf()]).unwrap()
}

/// The log without its timing column, which differs between runs.
fn log_without_speed(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("log.csv")).unwrap();
    text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

#[test]
fn a_killed_run_resumes_to_exactly_the_unbroken_result() {
    let dir = tempfile::tempdir().unwrap();
    let steps = 16;
    setup(dir.path(), steps, true);
    let cwd = dir.path();
    sana_sr(&["train", "--config", "train.toml", "--run", "unbroken", "--device", "cpu"], cwd);

    // Kill -9 the second run once it has written a checkpoint, wherever it then is.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sana-sr"))
        .args(["train", "--config", "train.toml", "--run", "killed", "--device", "cpu"])
        .current_dir(cwd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = cwd.join("killed/checkpoint.safetensors");
    let started = Instant::now();
    while !checkpoint.exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint was written");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    let logged = log_without_speed(&cwd.join("killed"));
    let last_step: u64 = logged.last().unwrap().split(',').next().unwrap().parse().unwrap();
    assert!(last_step < steps, "the run finished before it was killed; make it longer");
    assert!(!cwd.join("killed/model.safetensors").exists());
    assert!(cwd.join("killed/curves.png").is_file(), "a checkpoint draws the curves so far");

    // Without --resume the folder is refused; with it the run completes.
    let refused = sana_sr_fails(&["train", "--config", "train.toml", "--run", "killed", "--device", "cpu"], cwd);
    assert!(refused.contains("pass --resume"), "{refused}");
    sana_sr(&["train", "--config", "train.toml", "--run", "killed", "--device", "cpu", "--resume"], cwd);

    let (a, b) =
        (tensors(&cwd.join("unbroken/checkpoint.safetensors")), tensors(&cwd.join("killed/checkpoint.safetensors")));
    assert_eq!(a.len(), b.len());
    assert!(a.keys().any(|k| k.starts_with("adam.")) && a.keys().any(|k| k.starts_with("ema.")));
    assert!(a.keys().any(|k| k.starts_with("disc.")), "the discriminator is part of the state");
    // So are its power iteration's vectors, which change at every call without being trained.
    assert!(a.keys().any(|k| k.starts_with("disc.") && k.ends_with("weight_u")), "{:?}", a.keys());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs between the unbroken and the resumed run");
    }
    assert_eq!(log_without_speed(&cwd.join("unbroken")), log_without_speed(&cwd.join("killed")));
    let (a, b) = (tensors(&cwd.join("unbroken/model.safetensors")), tensors(&cwd.join("killed/model.safetensors")));
    assert!(a.iter().all(|(name, t)| t.equal(&b[name])), "the exported models differ");
    assert!(cwd.join("killed/curves.png").is_file());
    // ESGF followed NIQE here: the log's metric column holds finite NIQE values at the validation steps.
    let log = std::fs::read_to_string(cwd.join("killed/log.csv")).unwrap();
    assert!(log.lines().next().unwrap().contains("val_niqe"));
    let niqe: Vec<f64> = log.lines().skip(1).filter_map(|l| l.split(',').rev().nth(1)?.parse().ok()).collect();
    assert_eq!(niqe.len(), 4, "{log}");
    assert!(niqe.iter().all(|v| v.is_finite() && *v > 0.0), "{niqe:?}");
}

#[test]
fn a_paused_run_with_teachers_resumes_to_exactly_the_unbroken_result() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    setup(cwd, 6, false);
    // Two teachers, one of each kind: a random SANA-SR model (model.json's) and a random SRVGGNetCompact.
    let config: SrModelConfig =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("model.json")).unwrap()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    SrModel::build(vs.root(), &config).unwrap().save(&vs, &cwd.join("sana-teacher.safetensors"), Kind::Float).unwrap();
    let network =
        EsrganConfig::SrvggnetCompact(SrVggNetCompactConfig { num_feat: 4, num_conv: 2, ..Default::default() });
    let config = EsrganModelConfig { name: "peer".into(), description: String::new(), network };
    let vs = nn::VarStore::new(Device::Cpu);
    let peer = Network::Esrgan(EsrganModel::build(vs.root(), &config).unwrap());
    peer.save(&vs, &cwd.join("peer-teacher.safetensors"), Kind::Float).unwrap();
    let teachers = "[[teacher]]\nmodel = \"sana-teacher.safetensors\"\npixel_l1 = 0.5\n\
                    [[teacher]]\nmodel = \"peer-teacher.safetensors\"\npixel_l2 = 1.0\nedge = 0.2\n";
    let config = std::fs::read_to_string(cwd.join("train.toml")).unwrap() + teachers;
    std::fs::write(cwd.join("teachers.toml"), config).unwrap();

    sana_sr(&["train", "--config", "teachers.toml", "--run", "unbroken", "--device", "cpu"], cwd);
    sana_sr(&["train", "--config", "teachers.toml", "--run", "paused", "--device", "cpu", "--stop-after", "3"], cwd);
    assert!(!cwd.join("paused/model.safetensors").exists());
    sana_sr(&["train", "--config", "teachers.toml", "--run", "paused", "--device", "cpu", "--resume"], cwd);

    let (a, b) =
        (tensors(&cwd.join("unbroken/checkpoint.safetensors")), tensors(&cwd.join("paused/checkpoint.safetensors")));
    assert_eq!(a.len(), b.len());
    assert!(!a.keys().any(|k| k.contains("teacher")), "teachers are not part of the state");
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs between the unbroken and the resumed run");
    }
    let log = log_without_speed(&cwd.join("unbroken"));
    assert_eq!(log, log_without_speed(&cwd.join("paused")));
    assert_eq!(
        log[0],
        "step,lr,loss_l1,loss_edge,loss_adv,teacher_sana-teacher_l1,teacher_peer-teacher_l2,\
         teacher_peer-teacher_edge,loss,val_l1"
    );
    let (a, b) = (tensors(&cwd.join("unbroken/model.safetensors")), tensors(&cwd.join("paused/model.safetensors")));
    assert!(a.iter().all(|(name, t)| t.equal(&b[name])), "the exported models differ");
}

#[test]
fn lora_fine_tuning_changes_only_the_dit_and_merges_into_the_exported_model() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    setup(cwd, 2, false);
    sana_sr(&["train", "--config", "train.toml", "--run", "base", "--device", "cpu"], cwd);
    let base = cwd.join("base/model.safetensors");

    let config = std::fs::read_to_string(cwd.join("train.toml"))
        .unwrap()
        .replace("[model]\nconfig = \"model.json\"", &format!("[model]\nfrom = \"{}\"", base.display()))
        + "[lora]\nrank = 2\nalpha = 2.0\n";
    let config = config.replace("steps = 2\n", "steps = 4\n").replace("total_steps = 2", "total_steps = 4");
    std::fs::write(cwd.join("lora.toml"), config).unwrap();
    sana_sr(&["train", "--config", "lora.toml", "--run", "lora", "--device", "cpu"], cwd);

    let (before, after) = (tensors(&base), tensors(&cwd.join("lora/model.safetensors")));
    assert_eq!(before.keys().collect::<std::collections::BTreeSet<_>>(), after.keys().collect());
    let changed: Vec<&String> = before.keys().filter(|k| !before[*k].equal(&after[*k])).collect();
    assert!(!changed.is_empty(), "LoRA changed nothing");
    for name in &changed {
        assert!(name.starts_with("transformer.transformer_blocks."), "{name} is not under an adapter but changed");
        assert!(name.contains("attn") || name.contains(".ff."), "{name}");
    }

    // Merging the chosen snapshot's adapters by hand gives the exported model.
    let snapshots: Vec<PathBuf> =
        std::fs::read_dir(cwd.join("lora/snapshots")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(snapshots.iter().all(|p| p.to_string_lossy().ends_with(".lora.safetensors")));
    let snapshot = snapshots.iter().find(|p| p.to_string_lossy().contains("step_0000004")).unwrap();
    let merged = cwd.join("merged.safetensors");
    sana_sr(
        &[
            "lora",
            "merge",
            "--config",
            "lora.toml",
            "--adapters",
            snapshot.to_str().unwrap(),
            "-o",
            merged.to_str().unwrap(),
        ],
        cwd,
    );
    let merged = tensors(&merged);
    // One validation (step 4): no knee yet, so the run exported the best, step 4.
    for (name, t) in &after {
        assert!(t.equal(&merged[name]), "{name}: merge differs from the exported model");
    }
}

#[test]
fn mixed_precision_training_follows_the_float32_run() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    setup(cwd, 2, false);
    let config = std::fs::read_to_string(cwd.join("train.toml")).unwrap();
    std::fs::write(cwd.join("bf16.toml"), config.replace("[train]\n", "[train]\nprecision = \"bf16\"\n")).unwrap();
    sana_sr(&["train", "--config", "train.toml", "--run", "f32", "--device", "cpu"], cwd);
    let out = sana_sr(&["train", "--config", "bf16.toml", "--run", "bf16", "--device", "cpu"], cwd);
    assert!(String::from_utf8_lossy(&out.stderr).contains("meant for GPUs"), "a bf16 run on the CPU says it is slow");
    // The first step's losses (same weights, same batch): equal to bfloat16's precision, yet not identical.
    let first_loss = |run: &str| -> f64 {
        let text = std::fs::read_to_string(cwd.join(run).join("log.csv")).unwrap();
        let (header, row) = (text.lines().next().unwrap(), text.lines().nth(1).unwrap());
        let column = header.split(',').position(|c| c == "loss").unwrap();
        row.split(',').nth(column).unwrap().parse().unwrap()
    };
    let (f32_loss, bf16_loss) = (first_loss("f32"), first_loss("bf16"));
    let relative = (bf16_loss - f32_loss).abs() / f32_loss;
    assert!(relative < 0.01 && relative > 0.0, "first losses {f32_loss} (f32) and {bf16_loss} (bf16)");
    let (a, b) = (tensors(&cwd.join("f32/checkpoint.safetensors")), tensors(&cwd.join("bf16/checkpoint.safetensors")));
    for (name, t) in &a {
        assert_eq!(t.kind(), b[name].kind(), "{name}: the bf16 run keeps float32 state");
    }
}

#[test]
fn training_on_a_missing_gpu_fails_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 2, false);
    let err = sana_sr_fails(&["train", "--config", "train.toml", "--run", "gpu", "--device", "cuda:7"], dir.path());
    assert!(err.contains("CUDA") && err.lines().count() == 1, "{err}");
    assert!(!dir.path().join("gpu").exists(), "nothing is created for a run that cannot start");
}

#[test]
fn a_pause_before_the_first_step_is_refused() {
    // Steps count from 1, so `--stop-after 0` would never pause and silently train the whole run.
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 2, false);
    let err = sana_sr_fails(&["train", "--config", "train.toml", "--run", "zero", "--stop-after", "0"], dir.path());
    assert!(err.contains("--stop-after") && err.contains("0"), "{err}");
    assert!(!dir.path().join("zero").exists());
}

#[test]
fn an_unknown_teacher_fails_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 2, false);
    let config = std::fs::read_to_string(dir.path().join("train.toml")).unwrap()
        + "[[teacher]]\nmodel = \"realesrgan-x9000\"\npixel_l1 = 1.0\n";
    std::fs::write(dir.path().join("teacher.toml"), config).unwrap();
    let err = sana_sr_fails(&["train", "--config", "teacher.toml", "--run", "bad", "--device", "cpu"], dir.path());
    assert!(err.contains("teacher `realesrgan-x9000`: no model named") && err.lines().count() == 1, "{err}");
    assert!(!dir.path().join("bad").exists(), "nothing is created for a run that cannot start");
}

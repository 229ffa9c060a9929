//! Hostile inputs and faults from outside the program (docs/decisions.md, "Limits on input-sized
//! allocations"): no file is lost, nothing panics or hangs, and a refused input costs little memory. Each
//! test reproduces a case a user's machine can produce.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{photo, sana_sr, sana_sr_peak_kib, sana_sr_within, stderr};
use sana_sr_core::Tensor;
use sana_sr_model::checkpoint::{read_tensors_from_bytes, save_tensors};
use sana_sr_pipeline::registry::BUILTIN_MODELS;
use sana_sr_pipeline::sr_model::CONFIG_METADATA_KEY;

/// How long a command that should fail at once may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(120);

/// Memory a refused input may cost above the binary's own (libtorch alone maps several hundred MB).
const REFUSAL_BUDGET_KIB: u64 = 200 * 1024;

#[test]
fn an_input_is_never_replaced_through_a_link_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    std::fs::create_dir(&s).unwrap();
    let real = photo(&s, "real.png", 12, 10);
    std::os::unix::fs::symlink("real.png", s.join("link.png")).unwrap();
    let before = std::fs::read(&real).unwrap();
    // The link as input, its target as output; and the other way round.
    for (input, output) in [("s/link.png", "s/real.png"), ("s/real.png", "s/link.png")] {
        let out = sana_sr(&["upscale", input, "-o", output, "--overwrite", "--device", "cpu"], dir.path());
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("is an input; refusing to replace it"), "{}", stderr(&out));
        assert_eq!(std::fs::read(&real).unwrap(), before, "the input was replaced");
        assert!(s.join("link.png").is_symlink());
    }
}

/// A LoRA run's config whose base is `base` (a pool folder need not exist to merge).
fn lora_config(dir: &Path, base: &str) -> PathBuf {
    let config = format!(
        "[model]\nfrom = \"{base}\"\n[data]\nhr = [\"pool\"]\ndegradation = \"d.toml\"\ncrop = 96\nbatch = 2\nval_images = 1\nval_pairs = 1\n\
         [train]\nsteps = 2\ntrainable = \"all\"\nseed = 0\nema_decay = 0.9\ncheckpoint_every = 2\n\
         [schedule]\nbase_lr = 1e-3\nwarmup_steps = 0\ntotal_steps = 2\n[lora]\nrank = 2\nalpha = 2.0\n"
    );
    let path = dir.join("lora.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn lora_merge_never_writes_over_what_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(cwd.join("adapters.safetensors"), b"the adapters").unwrap();
    std::fs::write(cwd.join("base.safetensors"), b"the base model").unwrap();
    std::os::unix::fs::symlink("adapters.safetensors", cwd.join("alias.safetensors")).unwrap();
    lora_config(cwd, "base.safetensors");
    let cases = [
        ("adapters.safetensors", "adapters.safetensors", "adapter file"),
        ("adapters.safetensors", "alias.safetensors", "adapter file"),
        ("adapters.safetensors", "./base.safetensors", "base model"),
        ("adapters.safetensors", "lora.toml", "config"),
    ];
    for (adapters, output, what) in cases {
        let args =
            ["lora", "merge", "--config", "lora.toml", "--adapters", adapters, "--output", output, "--overwrite"];
        let out = sana_sr(&args, cwd);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!("is the {what}")), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read(cwd.join("adapters.safetensors")).unwrap(), b"the adapters");
    assert_eq!(std::fs::read(cwd.join("base.safetensors")).unwrap(), b"the base model");
}

/// The built-in sana-sr-compact written to `dir/name` after `edit` changed its config and tensors: unpruned,
/// so that every block has the config's widths and a deeper config asks for blocks the file lacks.
fn edited_model(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value, &mut HashMap<String, Tensor>),
) -> PathBuf {
    let built_in = BUILTIN_MODELS.iter().find(|m| m.name == "sana-sr-compact").unwrap();
    let (mut tensors, mut metadata) = read_tensors_from_bytes(built_in.bytes, Path::new("built-in")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&metadata[CONFIG_METADATA_KEY]).unwrap();
    edit(&mut config, &mut tensors);
    metadata.insert(CONFIG_METADATA_KEY.into(), config.to_string());
    let path = dir.join(name);
    save_tensors(tensors, &path, metadata, true).unwrap();
    path
}

/// Peak memory of `sana-sr --version`: what the binary costs before it does anything (`None` where it
/// cannot be measured).
fn baseline_kib(cwd: &Path) -> Option<u64> {
    let (out, kib) = sana_sr_peak_kib(&["--version"], cwd);
    assert!(out.status.success());
    kib
}

/// Runs `args`, which must fail with a line containing `expected`, without a panic, within the memory
/// budget above `baseline`.
fn refused_cheaply(args: &[&str], cwd: &Path, expected: &str, baseline: Option<u64>) {
    let (out, kib) = sana_sr_peak_kib(args, cwd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(expected), "{args:?}: expected {expected:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let (Some(kib), Some(baseline)) = (kib, baseline) else {
        eprintln!("no /usr/bin/time: the memory of {args:?} is not measured");
        return;
    };
    assert!(
        kib.saturating_sub(baseline) < REFUSAL_BUDGET_KIB,
        "{args:?} peaked at {} MiB, {} MiB over the binary's own {} MiB",
        kib / 1024,
        kib.saturating_sub(baseline) / 1024,
        baseline / 1024
    );
}

#[test]
fn a_model_config_larger_than_its_weights_is_refused_before_any_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "cat.png", 12, 10);
    let baseline = baseline_kib(cwd);
    // 10^12 condition tokens (4 TB) panicked in the tensor backend; 2^24 (2 GB) cost 6.7 GB before the
    // stored shapes were compared; a thousand DiT blocks in a file of two is refused from the header.
    let tokens =
        |n: u64| move |c: &mut serde_json::Value, _: &mut HashMap<String, Tensor>| c["condition_tokens"] = n.into();
    let cases = [
        (
            edited_model(cwd, "tera.safetensors", tokens(1_000_000_000_000)),
            "`condition_tokens` is 1000000000000, outside",
        ),
        (edited_model(cwd, "mega.safetensors", tokens(1 << 24)), "`condition_tokens` is 16777216, outside"),
        (
            edited_model(cwd, "shape.safetensors", tokens(1 << 20)),
            "weight `condition` has shape [1, 4, 32] in the checkpoint but the model expects [1, 1048576, 32]",
        ),
        (
            edited_model(cwd, "deep.safetensors", |c, _| c["transformer"]["num_layers"] = 1000.into()),
            "the config asks for over 10000 variables the checkpoint does not store ([transformer.transformer_blocks.4.",
        ),
    ];
    for (model, expected) in &cases {
        let args = ["upscale", "cat.png", "-o", "out.png", "--device", "cpu", "-m", model.to_str().unwrap()];
        refused_cheaply(&args, cwd, expected, baseline);
    }
    assert!(!cwd.join("out.png").exists());
}

#[test]
fn numerically_broken_models_are_refused_at_load_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "cat.png", 12, 10);
    let nan = edited_model(cwd, "nan.safetensors", |_, t| {
        for tensor in t.values_mut() {
            let _ = tensor.fill_(f64::NAN);
        }
    });
    let inf = edited_model(cwd, "inf.safetensors", |_, t| {
        let _ = t.get_mut("condition").unwrap().get(0).get(1).fill_(f64::INFINITY);
    });
    let zero = edited_model(cwd, "zero.safetensors", |c, _| c["vae"]["scaling_factor"] = 0.0.into());
    for (model, expected) in [
        (&nan, "NaN or infinite value(s)"),
        (&inf, "weight `condition` holds 32 NaN or infinite value(s)"),
        (&zero, "`scaling_factor` must be a positive number, not 0"),
    ] {
        let out =
            sana_sr(&["upscale", "cat.png", "-o", "out.png", "--device", "cpu", "-m", model.to_str().unwrap()], cwd);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{expected}: {}", stderr(&out));
    }
    assert!(!cwd.join("out.png").exists());
}

#[test]
fn a_header_of_600_000_tensors_gives_one_short_line() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "cat.png", 12, 10);
    let model = edited_model(cwd, "many.safetensors", |_, t| {
        for i in 0..600_000 {
            t.insert(format!("junk.{i}"), Tensor::zeros([0], (sana_sr_core::Kind::Float, sana_sr_core::Device::Cpu)));
        }
    });
    let out = sana_sr(&["upscale", "cat.png", "--device", "cpu", "-m", model.to_str().unwrap()], cwd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}", &err[..err.len().min(2000)]);
    assert!(err.len() < 4_000, "{} bytes of error", err.len());
    assert!(err.contains("600000 unexpected key(s) [junk.0, junk.1, "), "{err}");
}

#[test]
fn models_that_are_folders_devices_or_fifos_get_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "cat.png", 12, 10);
    std::fs::create_dir(cwd.join("folder.safetensors")).unwrap();
    fifo(&cwd.join("pipe.safetensors"));
    for (model, what) in
        [("folder.safetensors", "a folder"), ("/dev/urandom", "a device"), ("pipe.safetensors", "a FIFO")]
    {
        let out = sana_sr_within(&["upscale", "cat.png", "--device", "cpu", "-m", model], cwd, HANG);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(what) && stderr(&out).contains("not a regular file"), "{}", stderr(&out));
        let out = sana_sr_within(&["models", "export", model, "-o", "out.safetensors"], cwd, HANG);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
    }
}

fn fifo(path: &Path) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_fifo_as_an_input_photo_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "cat.png", 12, 10);
    fifo(&cwd.join("pipe.png"));
    let out = sana_sr_within(&["upscale", "pipe.png", "cat.png", "-o", "sharp", "--device", "cpu"], cwd, HANG);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("pipe.png") && stderr(&out).contains("a FIFO"), "{}", stderr(&out));
    assert!(cwd.join("sharp/cat_x4.png").is_file(), "the batch goes on");
    let out = sana_sr_within(&["data", "make-pairs", "pipe.png", "--out", "pairs"], cwd, HANG);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("a FIFO"), "{}", stderr(&out));
}

#[test]
fn a_truncated_jpeg_is_an_error_not_grey() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let jpeg = photo(cwd, "cat.jpg", 64, 48);
    let bytes = std::fs::read(&jpeg).unwrap();
    std::fs::write(cwd.join("half.jpg"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = sana_sr(&["upscale", "half.jpg", "--device", "cpu"], cwd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("half.jpg` is truncated"), "{}", stderr(&out));
    assert!(!cwd.join("half_x4.png").exists());
}

/// A PNG of `side x side` 16-bit RGB pixels, all zero: 600 MB of samples deflated to under a megabyte.
fn zero_png(path: &Path, side: u32) {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let header = [&side.to_be_bytes()[..], &side.to_be_bytes(), &[16, 2, 0, 0, 0]].concat();
    chunk(&mut png, b"IHDR", &header);
    let mut deflated = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; 1 + side as usize * 6];
    for _ in 0..side {
        deflated.write_all(&row).unwrap();
    }
    chunk(&mut png, b"IDAT", &deflated.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    std::fs::write(path, png).unwrap();
}

#[test]
fn an_output_over_the_pixel_limit_is_refused_from_the_header_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    zero_png(&cwd.join("huge.png"), 10_000);
    assert!(std::fs::metadata(cwd.join("huge.png")).unwrap().len() < 2 << 20);
    let baseline = baseline_kib(cwd);
    let expected = "the output would be 40000x40000 = 1600000000 pixels, over the limit of 100000000 pixels (--max-pixels raises it)";
    refused_cheaply(&["upscale", "huge.png", "--device", "cpu"], cwd, expected, baseline);
    // The limit is the option's: a small image over a small limit is refused, then done when raised.
    photo(cwd, "cat.png", 20, 14);
    let out = sana_sr(&["upscale", "cat.png", "--device", "cpu", "--max-pixels", "4000"], cwd);
    assert!(stderr(&out).contains("80x56 = 4480 pixels, over the limit of 4000 pixels"), "{}", stderr(&out));
    let out = sana_sr(&["upscale", "cat.png", "--device", "cpu", "--max-pixels", "4480"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn control_characters_of_a_model_description_are_escaped_in_the_models_table() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::create_dir(cwd.join("models")).unwrap();
    edited_model(&cwd.join("models"), "odd.safetensors", |c, _| {
        c["description"] = "first line\nsecond line \u{1b}[31mred\u{1b}[0m".into();
    });
    let out = sana_sr(&["models"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(!table.contains('\u{1b}'), "{table:?}");
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("first line")).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(rows[0].contains(r"first line\nsecond line \u{1b}[31mred"), "{table}");
    assert!(!table.lines().any(|l| l.starts_with("second line")), "{table}");
}

#[test]
fn thread_counts_out_of_range_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    for threads in ["0", "-1", "2147483648"] {
        let out = sana_sr(&["bench", "--case", "dit-600m-16", &format!("--threads={threads}")], cwd);
        assert_eq!(out.status.code(), Some(2), "{threads}: {}", stderr(&out));
        assert!(stderr(&out).contains("--threads"), "{}", stderr(&out));
    }
    let config = lora_config(cwd, "base.safetensors");
    let text = std::fs::read_to_string(&config).unwrap().replace("[train]\n", "[train]\nthreads = 2147483648\n");
    std::fs::write(&config, text).unwrap();
    let out = sana_sr(&["train", "--config", "lora.toml", "--run", "run", "--device", "cpu"], cwd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("threads = 2147483648 and [data] workers = 2 must be at most 1024"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
}

/// A set `sets/mine` of `n` pairs (48-pixel LR, large enough for NIQE at x4), the LR of `broken` of them
/// corrupt.
fn eval_set(cwd: &Path, n: usize, broken: usize) {
    for folder in ["sets/mine/gt", "sets/mine/lq"] {
        std::fs::create_dir_all(cwd.join(folder)).unwrap();
    }
    for i in 0..n {
        photo(&cwd.join("sets/mine/gt"), &format!("p{i}.png"), 192, 192);
        let lq = photo(&cwd.join("sets/mine/lq"), &format!("p{i}.png"), 48, 48);
        if i < broken {
            std::fs::write(lq, b"\x89PNG\r\n\x1a\nbroken").unwrap();
        }
    }
}

#[test]
fn eval_lists_the_images_it_could_not_score_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    eval_set(cwd, 3, 2);
    let out = sana_sr(&["eval", "--datasets", "sets", "--sets", "mine", "--out", "scores"], cwd);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for name in ["mine/p0: ", "mine/p1: "] {
        assert!(err.lines().any(|l| l.starts_with(name)), "no line for {name}:\n{err}");
    }
    assert!(err.contains("2 images could not be scored (listed above)"), "{err}");
}

#[test]
fn eval_checks_folder_methods_and_option_sizes_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    eval_set(cwd, 1, 0);
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--datasets", "sets", "--sets", "mine", "--out", "scores"];
        args.extend_from_slice(extra);
        sana_sr(&args, cwd)
    };
    let out = eval(&["--method", "folder:missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing is not a folder"), "{}", stderr(&out));
    std::fs::create_dir(cwd.join("outputs")).unwrap();
    let out = eval(&["--method", "folder:outputs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("has no outputs for set mine: outputs/mine is not a folder"), "{}", stderr(&out));
    // A panel cell of 100000 pixels (a 1 TB panel, after all the work) is out of the option's range.
    let out = eval(&["--panel-cell", "100000"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--panel-cell"), "{}", stderr(&out));
    // In range but too large a panel altogether: refused before any image is scored.
    let out = eval(&["--panel-cell", "2048", "--panel-images", "64"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("over the limit of 100000000 pixels (--max-pixels raises it"), "{}", stderr(&out));
    assert!(!cwd.join("scores").exists(), "nothing was written");
}

#[test]
fn a_second_eval_into_the_same_folder_does_not_replace_the_first_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    eval_set(cwd, 1, 0);
    let args = ["eval", "--datasets", "sets", "--sets", "mine", "--out", "scores"];
    let out = sana_sr(&args, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = std::fs::read_to_string(cwd.join("scores/quality.csv")).unwrap();
    std::fs::write(cwd.join("scores/quality.csv"), b"an earlier evaluation").unwrap();
    let out = sana_sr(&args, cwd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let refusal = "holds an evaluation already (pass --resume to continue it, --overwrite to replace it)";
    assert!(stderr(&out).contains(refusal), "{}", stderr(&out));
    assert_eq!(std::fs::read(cwd.join("scores/quality.csv")).unwrap(), b"an earlier evaluation");
    let out = sana_sr(&[&args[..], &["--overwrite"]].concat(), cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = std::fs::read_to_string(cwd.join("scores/quality.csv")).unwrap();
    // The same scores (the seconds column aside, which differs from run to run).
    let without_seconds = |csv: &str| -> Vec<String> {
        csv.lines().map(|l| l.split(',').enumerate().filter(|(i, _)| *i != 5).map(|(_, c)| c).collect()).collect()
    };
    assert_eq!(without_seconds(&again), without_seconds(&first));
    // Resumed, the recorded scores are reused as they are, seconds included: the same table to the digit.
    let out = sana_sr(&[&args[..], &["--resume"]].concat(), cwd);
    assert!(out.status.success() && stderr(&out).contains("resuming: 1 scores recorded"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(cwd.join("scores/quality.csv")).unwrap(), again);
}

#[test]
fn degrade_options_are_bounded_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::create_dir(cwd.join("hr")).unwrap();
    photo(&cwd.join("hr"), "a.png", 300, 300);
    for (option, value) in [("--crop", "100000"), ("--seeds", "100000000"), ("--seeds", "0"), ("--images", "0")] {
        let out = sana_sr(&["degrade", "--input", "hr", "--output", "grid.png", option, value], cwd);
        assert_eq!(out.status.code(), Some(2), "{option} {value}: {}", stderr(&out));
        assert!(stderr(&out).contains(option), "{}", stderr(&out));
    }
    let out = sana_sr(&["degrade", "--input", "hr", "--output", "grid.png", "--crop", "4096", "--seeds", "256"], cwd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("over the limit of 100000000 pixels (--max-pixels raises it"), "{}", stderr(&out));
    let out = sana_sr(&["data", "make-pairs", "hr", "--out", "pairs", "--variants", "0"], cwd);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!cwd.join("grid.png").exists() && !cwd.join("pairs").exists());
}

/// Whether the process `pid` has started its interrupt thread (so that a signal is handled, not fatal).
fn handles_interrupts(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.flatten().any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "interrupts"))
}

#[test]
fn sigterm_ends_an_upscale_cleanly_and_stale_temporary_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "big.png", 256, 256);
    std::fs::create_dir(cwd.join("sharp")).unwrap();
    // A temporary file a SIGKILLed run left: its process is gone.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let stale = cwd.join(format!("sharp/.sana-sr-{}-AbCdEf.part", gone.id()));
    gone.wait().unwrap();
    std::fs::write(&stale, b"half an image").unwrap();

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sana-sr"))
        .args(["upscale", "big.png", "-o", "sharp", "--device", "cpu"])
        .current_dir(cwd)
        .env("SANA_SR_MODELS", cwd.join("models"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !handles_interrupts(child.id()) {
        assert!(started.elapsed() < HANG, "the interrupt thread never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signals the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted by SIGTERM"), "{}", stderr(&out));
    assert!(!cwd.join("sharp/big_x4.png").exists());

    // The next run into the folder removes the stale file, and leaves none of its own.
    photo(cwd, "small.png", 8, 8);
    let out = sana_sr(&["upscale", "small.png", "-o", "sharp", "--device", "cpu"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<String> = std::fs::read_dir(cwd.join("sharp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names, ["small_x4.png"]);
}

#[test]
fn a_glob_over_a_link_cycle_ends() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::create_dir(cwd.join("loop")).unwrap();
    photo(&cwd.join("loop"), "a.png", 8, 8);
    std::os::unix::fs::symlink(".", cwd.join("loop/again")).unwrap();
    std::os::unix::fs::symlink(".", cwd.join("loop/and-again")).unwrap();
    let out = sana_sr_within(&["upscale", "loop/**/*.png", "-o", "sharp", "--device", "cpu"], cwd, HANG);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("upscaled 1 of 1 image(s)"), "{}", stderr(&out));
    assert!(cwd.join("sharp/a_x4.png").is_file());
}

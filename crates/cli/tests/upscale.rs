//! `sana-sr upscale` end to end: files, folders and globs, exit codes, never clobbering, bad inputs.

mod common;

use std::path::Path;

use common::{photo, sana_sr, stderr};
use sana_sr_data::io::read_image;

#[test]
fn upscales_a_file_next_to_itself_and_never_replaces_it_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let input = photo(dir.path(), "cat.png", 20, 14);
    let before = std::fs::read(&input).unwrap();

    let out = sana_sr(&["upscale", "cat.png", "--device", "cpu"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let sr = read_image(dir.path().join("cat_x4.png")).unwrap();
    assert_eq!((sr.width, sr.height), (80, 56));
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input was touched");

    // A second run refuses to replace the output, keeps it byte for byte, and says so.
    let first = std::fs::read(dir.path().join("cat_x4.png")).unwrap();
    let out = sana_sr(&["upscale", "cat.png", "-m", "sana-sr-tiny", "-s", "2", "-o", "cat_x4.png"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cat_x4.png exists already (pass --overwrite"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path().join("cat_x4.png")).unwrap(), first);

    let out = sana_sr(
        &["upscale", "cat.png", "-m", "sana-sr-tiny", "-s", "2", "-o", "cat_x4.png", "--overwrite"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_image(dir.path().join("cat_x4.png")).unwrap().width, 40);

    // No temporary files are left beside the outputs.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // An input is never an output, even with --overwrite.
    let out = sana_sr(&["upscale", "cat.png", "-o", "cat.png", "--overwrite"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is an input; refusing to replace it"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn a_batch_goes_on_past_bad_files_and_the_exit_code_says_some_failed() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    photo(&photos, "a.png", 16, 16);
    photo(&photos, "b.jpg", 12, 10);
    std::fs::write(photos.join("corrupt.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let good = std::fs::read(photos.join("a.png")).unwrap();
    std::fs::write(photos.join("truncated.png"), &good[..good.len() / 2]).unwrap();
    std::fs::write(photos.join("notes.txt"), "not an image").unwrap();

    let out = sana_sr(&["upscale", "photos", "missing.png", "-o", "sharp", "--format", "webp"], dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for line in ["photos/corrupt.png: ", "photos/truncated.png: ", "missing.png: no such file or folder"] {
        assert!(err.lines().any(|l| l.starts_with("error: ") && l.contains(line)), "no line for {line}:\n{err}");
    }
    assert!(err.contains("3 of 5 image(s) failed"), "{err}");
    let a = read_image(dir.path().join("sharp/a_x4.webp")).unwrap();
    assert_eq!((a.width, a.height), (64, 64));
    assert!(dir.path().join("sharp/b_x4.webp").is_file());
    assert!(!dir.path().join("sharp/corrupt_x4.webp").exists());

    // Quoted globs are expanded by the program; a pattern matching nothing is an error line.
    let out = sana_sr(
        &["upscale", "photos/[ab].*", "nothing*.png", "-m", "sana-sr-tiny", "-s", "2", "-o", "globbed"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing*.png: no files match this pattern"), "{}", stderr(&out));
    assert!(dir.path().join("globbed/a_x2.png").is_file() && dir.path().join("globbed/b_x2.png").is_file());
}

#[test]
fn tiles_and_whole_images_agree_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    photo(dir.path(), "wide.png", 72, 40);
    // The seam bound is float32's (`auto` would be bf16 on a CPU with AMX).
    let whole = sana_sr(&["upscale", "wide.png", "--tile", "0", "-o", "whole.png", "--precision", "f32"], dir.path());
    assert!(whole.status.success(), "{}", stderr(&whole));
    let tiled = sana_sr(&["upscale", "wide.png", "--tile", "128", "-o", "tiled.png", "--precision", "f32"], dir.path());
    assert!(tiled.status.success(), "{}", stderr(&tiled));
    let (a, b) = (read_image(dir.path().join("whole.png")).unwrap(), read_image(dir.path().join("tiled.png")).unwrap());
    assert_eq!((a.width, a.height), (b.width, b.height));
    let mse = a.data.iter().zip(&b.data).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.data.len() as f64;
    let psnr = 10.0 * (1.0 / mse).log10();
    assert!(psnr > 45.0, "tiled vs whole through the CLI: {psnr:.1} dB");
}

#[test]
fn bad_arguments_get_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    photo(dir.path(), "x.png", 8, 8);
    let cases: &[(&[&str], &str)] = &[
        (
            &["upscale", "x.png", "-s", "16"],
            "scale 16 is not supported by model `sana-sr-compact-pruned-gan-extrapolated`",
        ),
        (&["upscale", "x.png", "--model", "nope"], "no model named `nope`"),
        (&["upscale", "x.png", "--model", "x.png"], "x.png: not a valid safetensors file"),
        (&["upscale", "x.png", "--tile", "8"], "tile size 8 is too small"),
        (&["upscale", "x.png", "--steps", "0"], "0 sampler steps are outside 1..=1000"),
        (&["upscale", "x.png", "--device", "cuda:7"], "CUDA"),
    ];
    for (args, expected) in cases {
        let out = sana_sr(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    assert!(!dir.path().join("x_x4.png").exists());
}

#[test]
fn models_lists_the_built_in_default_and_local_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::write(dir.path().join("models/broken.safetensors"), b"nope").unwrap();
    // A local file whose name starts with the default's is not the default.
    let export = sana_sr(
        &["models", "export", "sana-sr-tiny", "-o", "models/sana-sr-compact-pruned-gan-extrapolated-old.safetensors"],
        dir.path(),
    );
    assert!(export.status.success(), "{}", stderr(&export));
    let out = sana_sr(&["models"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("*sana-sr-compact-pruned-gan-extrapolated (built in)"), "{text}");
    for other in [
        "sana-sr-compact-pruned-gan-real",
        "sana-sr-compact-pruned-clean",
        "sana-sr-compact-pruned",
        "sana-sr-compact",
        "sana-sr-tiny",
    ] {
        assert!(text.contains(&format!(" {other} (built in)")), "{other}: {text}");
    }
    let starred: Vec<&str> = text.lines().filter(|l| l.starts_with('*') && !l.starts_with("* the default")).collect();
    assert!(starred.len() == 1 && text.contains(" sana-sr-compact-pruned-gan-extrapolated-old "), "{text}");
    assert!(text.contains("broken") && text.contains("unreadable"), "{text}");
}

#[test]
fn a_listing_whose_reader_stops_early_ends_quietly() {
    // `sana-sr models | head -1`: the reader is gone before the listing is written (the read end is closed
    // as soon as the process starts, long before it has read its models), so every write finds a broken pipe.
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sana-sr"))
        .arg("models")
        .current_dir(dir.path())
        .env("SANA_SR_MODELS", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && stderr(&out).is_empty(), "{:?}: {}", out.status, stderr(&out));
}

#[test]
fn an_exported_model_upscales_like_its_source_and_shows_its_description() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline/models/sana-sr-tiny.safetensors");
    let source = source.to_str().unwrap();
    let export = ["models", "export", source, "-o", "models/mine.safetensors", "--description", "my own export"];
    let out = sana_sr(&export, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let again = sana_sr(&export, dir.path());
    assert!(!again.status.success() && stderr(&again).contains("--overwrite"), "{}", stderr(&again));
    let exported = std::fs::read(dir.path().join("models/mine.safetensors")).unwrap();
    let onto_itself = ["models", "export", "models/mine.safetensors", "-o", "models/./mine.safetensors", "--overwrite"];
    let out = sana_sr(&onto_itself, dir.path());
    assert!(!out.status.success() && stderr(&out).contains("would replace the input"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path().join("models/mine.safetensors")).unwrap(), exported);

    let listed = String::from_utf8_lossy(&sana_sr(&["models"], dir.path()).stdout).into_owned();
    assert!(listed.contains("mine") && listed.contains("my own export"), "{listed}");
    photo(dir.path(), "cat.png", 20, 14);
    for (model, output) in [("sana-sr-tiny", "built-in.png"), ("mine", "exported.png")] {
        let out = sana_sr(&["upscale", "cat.png", "-m", model, "-o", output, "--device", "cpu"], dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (a, b) =
        (read_image(dir.path().join("built-in.png")).unwrap(), read_image(dir.path().join("exported.png")).unwrap());
    assert_eq!(a.data, b.data, "the built-in model's float16 weights survive an export unchanged");

    // A new name goes into the file (the name evaluations label the model by); a bad one is refused before
    // anything is written.
    let renamed = sana_sr(&["models", "export", "mine", "-o", "renamed.safetensors", "--name", "tiny-2"], dir.path());
    assert!(renamed.status.success(), "{}", stderr(&renamed));
    let written = sana_sr_pipeline::ModelSource::File(dir.path().join("renamed.safetensors"));
    assert_eq!(written.load_network(sana_sr_core::Device::Cpu).unwrap().0.name(), "tiny-2");
    let bad = sana_sr(&["models", "export", "mine", "-o", "bad.safetensors", "--name", "a/b"], dir.path());
    assert!(!bad.status.success() && stderr(&bad).contains("cannot be a model name"), "{}", stderr(&bad));
    assert!(!dir.path().join("bad.safetensors").exists());
}

#[test]
fn a_mix_of_two_models_is_written_as_a_model_named_by_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    let parts = ["sana-sr-compact-pruned-gan-real=0.5", "sana-sr-compact-pruned-gan-extrapolated=0.5"];
    let mix = [&["models", "mix"], &parts[..]].concat();
    let command = [&mix[..], &["-o", "models/between.safetensors"]].concat();
    let out = sana_sr(&command, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&sana_sr(&["models"], dir.path()).stdout).into_owned();
    assert!(
        listed.contains(" between ") && listed.contains("a mix of sana-sr-compact-pruned-gan-real=0.5"),
        "{listed}"
    );
    photo(dir.path(), "cat.png", 20, 14);
    let upscaled = sana_sr(&["upscale", "cat.png", "-m", "between", "-o", "cat-x4.png", "--device", "cpu"], dir.path());
    assert!(upscaled.status.success(), "{}", stderr(&upscaled));

    let written = std::fs::read(dir.path().join("models/between.safetensors")).unwrap();
    let float32 = sana_sr(&[&mix[..], &["-o", "between32.safetensors", "--float32"]].concat(), dir.path());
    assert!(float32.status.success() && String::from_utf8_lossy(&float32.stdout).contains("float32"));
    let size = std::fs::metadata(dir.path().join("between32.safetensors")).unwrap().len() as f64;
    assert!(size > 1.9 * written.len() as f64, "{size} bytes in float32 against {} in float16", written.len());
    let again = sana_sr(&command, dir.path());
    assert!(!again.status.success() && stderr(&again).contains("--overwrite"), "{}", stderr(&again));
    let onto_input = ["models", "mix", "models/between.safetensors=2", "sana-sr-compact-pruned-gan-real=-1"];
    let out = sana_sr(&[&onto_input[..], &["-o", "models/./between.safetensors", "--overwrite"]].concat(), dir.path());
    assert!(!out.status.success() && stderr(&out).contains("would replace the input"), "{}", stderr(&out));
    for (bad, message) in [
        (["sana-sr-compact-pruned-gan-real", "sana-sr-tiny=1"], "is not NAME|PATH=WEIGHT"),
        (["sana-sr-compact-pruned-gan-real=half", "sana-sr-tiny=1"], "`half` in"),
        (["sana-sr-compact-pruned-gan-real=0.5", "sana-sr-tiny=0.5"], "not the same network"),
    ] {
        let out = sana_sr(
            &[&["models", "mix"], &bad[..], &["-o", "models/between.safetensors", "--overwrite"]].concat(),
            dir.path(),
        );
        assert!(!out.status.success() && stderr(&out).contains(message), "{message}: {}", stderr(&out));
    }
    assert_eq!(
        std::fs::read(dir.path().join("models/between.safetensors")).unwrap(),
        written,
        "refused mixes write nothing"
    );
}

#[test]
fn a_profile_shows_where_the_time_went() {
    let dir = tempfile::tempdir().unwrap();
    photo(dir.path(), "a.png", 20, 14);
    photo(dir.path(), "b.png", 12, 18);
    let out = sana_sr(&["upscale", "a.png", "b.png", "--device", "cpu", "--profile", "--quiet"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    let seconds = |stage: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(stage))
            .unwrap_or_else(|| panic!("{stage}: {text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let stages = [
        "load",
        "read",
        "resize",
        "condition",
        "encoder",
        "transformer",
        "decoder",
        "tiles",
        "output",
        "write",
        "other",
    ];
    let staged: f64 = stages.iter().map(|s| seconds(s)).sum();
    // The stages add up to the total (each printed rounded to the millisecond).
    assert!((staged - seconds("total")).abs() <= 0.0005 * (stages.len() + 1) as f64, "{text}");
    assert!(seconds("encoder") > 0.0 && seconds("decoder") > 0.0, "{text}");
    assert!(text.contains("peak memory"), "{text}");
    // Loading libtorch alone touches thousands of pages.
    let faults: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("page faults")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no page faults line: {text}"));
    assert!(faults > 1000, "{text}");
}

#[test]
fn tags_and_guidance_on_a_model_without_a_text_encoder_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    photo(dir.path(), "a.png", 20, 14);
    for flags in [&["--tags", "building, sign"][..], &["--guidance", "4.5"][..]] {
        let args: Vec<&str> = ["upscale", "a.png", "--device", "cpu", "--quiet"].iter().chain(flags).copied().collect();
        let out = sana_sr(&args, dir.path());
        assert!(!out.status.success());
        assert!(stderr(&out).contains("has no text encoder"), "{flags:?}: {}", stderr(&out));
        assert!(!dir.path().join("a_x4.png").exists(), "nothing is written");
    }
}

#[test]
fn precision_runs_the_layers_in_bfloat16_and_refuses_names_it_has_not() {
    let dir = tempfile::tempdir().unwrap();
    photo(dir.path(), "cat.png", 40, 32);
    for precision in ["f32", "bf16"] {
        let output = format!("{precision}.png");
        let out = sana_sr(&["upscale", "cat.png", "--precision", precision, "-o", &output], dir.path());
        assert!(out.status.success(), "{precision}: {}", stderr(&out));
    }
    let (full, half) =
        (read_image(dir.path().join("f32.png")).unwrap(), read_image(dir.path().join("bf16.png")).unwrap());
    let mse =
        half.data.iter().zip(&full.data).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / full.data.len() as f64;
    let psnr = -10.0 * mse.log10();
    assert!(psnr > 40.0 && psnr.is_finite(), "bf16 against f32: {psnr} dB");
    let out = sana_sr(&["upscale", "cat.png", "--precision", "fp16"], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("one of auto, f32, bf16, f16"), "{}", stderr(&out));
}

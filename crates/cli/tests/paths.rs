//! Commands run outside the repository, as a user runs them: the evaluation sets found where they are said
//! to be, nothing written into the current folder unasked, built-in models named like any other.

mod common;

use common::{photo, sana_sr, sana_sr_env, stderr};
use sana_sr_data::io::{read_image, sniff_format};

#[test]
fn eval_finds_the_sets_by_option_or_environment_and_says_when_neither() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    for half in ["gt", "lq"] {
        std::fs::create_dir_all(cwd.join("sets/mine").join(half)).unwrap();
    }
    photo(&cwd.join("sets/mine/gt"), "a.png", 64, 64);
    photo(&cwd.join("sets/mine/lq"), "a.png", 16, 16);

    let out = sana_sr(&["eval", "--sets", "mine", "--out", "scores"], cwd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no folder of evaluation sets: pass --datasets DIR or set SANA_SR_DATASETS"),
        "{}",
        stderr(&out)
    );
    let out = sana_sr(&["eval", "--datasets", "nowhere", "--sets", "mine", "--out", "scores"], cwd);
    assert!(stderr(&out).contains("the evaluation sets folder nowhere is not a folder"), "{}", stderr(&out));
    assert!(!cwd.join("scores").exists());

    let sets = cwd.join("sets");
    let out = sana_sr_env(
        &["eval", "--sets", "mine", "--out", "scores"],
        cwd,
        &[("SANA_SR_DATASETS", sets.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cwd.join("scores/quality.csv").is_file());
}

#[test]
fn degrade_writes_only_where_asked_in_the_format_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::create_dir(cwd.join("hr")).unwrap();
    photo(&cwd.join("hr"), "a.png", 96, 96);
    let small = ["--crop", "80", "--seeds", "1"];

    let out = sana_sr(&[&["degrade", "--input", "hr"][..], &small].concat(), cwd);
    assert_eq!(out.status.code(), Some(2), "the output must be named: {}", stderr(&out));
    assert!(stderr(&out).contains("--output"), "{}", stderr(&out));
    let out = sana_sr(&[&["degrade", "--input", "hr", "-o", "deg.gif"][..], &small].concat(), cwd);
    assert!(stderr(&out).contains("GIF is not a format sana-sr writes"), "{}", stderr(&out));

    let out = sana_sr(&[&["degrade", "--input", "hr", "-o", "deg.jpg"][..], &small].concat(), cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sniff_format(&cwd.join("deg.jpg")), Some(image::ImageFormat::Jpeg), "JPEG bytes in a .jpg");
    let mut names: Vec<_> = std::fs::read_dir(cwd).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["deg.jpg", "hr"], "nothing else is written");
}

#[test]
fn a_built_in_model_is_exported_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = sana_sr(&["models", "export", "sana-sr-tiny", "-o", "tiny.safetensors"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    photo(cwd, "cat.png", 12, 10);
    let out = sana_sr(&["upscale", "cat.png", "-m", "tiny.safetensors", "-s", "2", "-o", "cat2.png"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_image(cwd.join("cat2.png")).unwrap().width, 24);
}

#[test]
fn commands_that_make_folders_are_told_where() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(cwd.join("train.toml"), "").unwrap();
    for (args, option) in [
        (&["eval", "--datasets", ".", "--sets", "Set5"][..], "--out"),
        (&["train", "--config", "train.toml"][..], "--run"),
        (&["data", "build-pool", "--root", ".", "--extra", "."][..], "--out"),
    ] {
        let out = sana_sr(args, cwd);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(option), "{args:?}: {}", stderr(&out));
    }
    let names: Vec<_> = std::fs::read_dir(cwd).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["train.toml"], "nothing is written unasked");
}

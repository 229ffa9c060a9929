//! Hostile inputs and faults from outside the program (docs/decisions.md, "Limits on input-sized
//! allocations"): no file is lost, nothing panics or hangs, and a refused input costs little memory. Each
//! test reproduces a case a user's machine can produce.

mod common;

use std::path::{Path, PathBuf};

use common::{sana_sr, stderr};
use sana_sr_data::io::save_image;
use sana_sr_data::Image;

fn photo(dir: &Path, name: &str, width: usize, height: usize) -> PathBuf {
    let data = (0..width * height * 3).map(|i| (i % 97) as f32 / 96.0).collect();
    let path = dir.join(name);
    save_image(&Image::new(width, height, 3, data), &path).unwrap();
    path
}

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

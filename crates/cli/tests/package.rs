//! `scripts/package.sh`: the packaged binary runs from a fresh folder with the checkout's libtorch out of
//! reach. The CPU-only variant is packaged (with `gzip -1`): the full one differs only by the CUDA
//! libraries it copies, gigabytes that would cost CI minutes and that no CPU-only machine can load anyway.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::photo;
use sana_sr_data::io::read_image;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The RUNPATH/RPATH entries of an ELF file, as `readelf -d` prints them.
fn search_paths(file: &Path) -> Vec<String> {
    let out = Command::new("readelf").arg("-d").arg(file).output().expect("readelf runs");
    assert!(out.status.success(), "readelf {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
        .flat_map(|l| {
            l.split('[').nth(1).unwrap_or("").trim_end_matches(']').split(':').map(String::from).collect::<Vec<_>>()
        })
        .collect()
}

/// The checkout's libtorch and virtualenv, as real folders: what the packaged binary must not need.
fn checkout_libraries() -> Vec<PathBuf> {
    [".libtorch", ".venv"].iter().filter_map(|p| repo().join(p).canonicalize().ok()).collect()
}

/// Whether `unshare` can make a private mount namespace here (user namespaces may be off).
fn can_hide_folders() -> bool {
    Command::new("unshare").args(["-rm", "true"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_packaged_binary_runs_from_a_fresh_folder_without_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    let out = Command::new(repo().join("scripts/package.sh"))
        .args(["--cpu-only", "--fast", "--binary", env!("CARGO_BIN_EXE_sana-sr"), "--out"])
        .arg(&dist)
        .output()
        .expect("the script runs");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "package.sh failed:\n{log}");
    let tarball = std::fs::read_dir(&dist).unwrap().next().expect("a tarball").unwrap().path();
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("sana-sr-") && name.ends_with("-linux-x86_64-cpu.tar.gz"), "{name}");

    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let untar = Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&fresh).status().unwrap();
    assert!(untar.success());
    let root = fresh.join(name.trim_end_matches(".tar.gz"));
    let binary = root.join("sana-sr");

    // Every search path is inside the package, relative to the file itself.
    assert_eq!(search_paths(&binary), ["$ORIGIN/lib"]);
    let libs: Vec<PathBuf> = std::fs::read_dir(root.join("lib")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(libs.iter().any(|l| l.ends_with("libtorch_cpu.so")), "{libs:?}");
    assert!(!libs.iter().any(|l| l.ends_with("libtorch_cuda.so")), "the CPU variant leaves CUDA out: {libs:?}");
    for lib in &libs {
        assert_eq!(search_paths(lib), ["$ORIGIN"], "{}", lib.display());
    }

    // Run from the fresh folder with no environment, and where user namespaces allow it, with the checkout's
    // libtorch and virtualenv hidden under empty folders in a private mount namespace (what renaming them
    // would do, without touching them for anything else running from the checkout).
    photo(&fresh, "cat.png", 12, 10);
    let hidden = checkout_libraries();
    let mut script = String::from("set -e\n");
    if can_hide_folders() {
        for folder in &hidden {
            script += &format!("mount -t tmpfs none '{}'\n", folder.display());
        }
        script += &format!("test ! -e '{}'/.libtorch/lib\n", repo().display());
    } else {
        eprintln!("no user namespaces here: the checkout's libraries are not hidden, only the environment cleared");
    }
    script += "exec ./sana-sr-*/sana-sr upscale cat.png -o cat_x4.png --device cpu\n";
    let mut command = if can_hide_folders() { Command::new("unshare") } else { Command::new("sh") };
    if can_hide_folders() {
        command.args(["-rm", "sh"]);
    }
    let run = command
        .arg("-c")
        .arg(&script)
        .current_dir(&fresh)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &fresh)
        .output()
        .unwrap();
    assert!(run.status.success(), "the packaged binary failed:\n{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(read_image(fresh.join("cat_x4.png")).unwrap().width, 48);
}

//! What the command-line tests share: the binary, run in a folder of the test's own. Every test file compiles
//! this module and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sana_sr_data::io::save_image;
use sana_sr_data::Image;

/// A `width` x `height` RGB test photo (a repeating ramp) written as `dir/name`.
pub fn photo(dir: &Path, name: &str, width: usize, height: usize) -> PathBuf {
    let data = (0..width * height * 3).map(|i| (i % 97) as f32 / 96.0).collect();
    let path = dir.join(name);
    save_image(&Image::new(width, height, 3, data), &path).unwrap();
    path
}

/// `sana-sr ARGS` run in `cwd`, its models folder `cwd/models` and no folder of evaluation sets, so that a
/// user's own never leak in.
pub fn sana_sr(args: &[&str], cwd: &Path) -> Output {
    sana_sr_env(args, cwd, &[])
}

/// [`sana_sr`] with environment variables set.
pub fn sana_sr_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sana-sr"))
        .args(args)
        .current_dir(cwd)
        .env("SANA_SR_MODELS", cwd.join("models"))
        .env_remove("SANA_SR_DATASETS")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// What a run wrote to stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a run wrote to stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sana-sr ARGS` as [`sana_sr`] runs it, failing the test if it has not ended within `limit` (a hang).
pub fn sana_sr_within(args: &[&str], cwd: &Path, limit: std::time::Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sana-sr"))
        .args(args)
        .current_dir(cwd)
        .env("SANA_SR_MODELS", cwd.join("models"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let started = std::time::Instant::now();
    while child.try_wait().expect("the child can be waited for").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("sana-sr {args:?} hung: still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("the output is read")
}

/// `sana-sr ARGS` as [`sana_sr`] runs it, and its peak resident memory in KiB, measured by `/usr/bin/time`
/// (`None` where there is none). Not by `wait4` on the child: a child spawned from this process records this
/// process's own peak as its own when it execs (the kernel keeps the larger of the two), and this test
/// process holds hundreds of megabytes of its own.
pub fn sana_sr_peak_kib(args: &[&str], cwd: &Path) -> (Output, Option<u64>) {
    const MARK: &str = "peak-rss-kib=";
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return (sana_sr(args, cwd), None);
    }
    let mut out = Command::new(time)
        .args(["-f", &format!("{MARK}%M"), env!("CARGO_BIN_EXE_sana-sr")])
        .args(args)
        .current_dir(cwd)
        .env("SANA_SR_MODELS", cwd.join("models"))
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let (rest, peak) = text.rsplit_once(MARK).expect("time reports the peak");
    // `time` adds a line of its own for a failed command.
    let rest = rest.trim_end_matches(|c| c != '\n').lines().filter(|l| !l.starts_with("Command exited with"));
    out.stderr = rest.map(|l| format!("{l}\n")).collect::<String>().into_bytes();
    (out, peak.trim().parse().ok())
}

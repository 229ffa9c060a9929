//! What the command-line tests share: the binary, run in a folder of the test's own. Every test file compiles
//! this module and uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `sana-sr ARGS` run in `cwd`, its models folder `cwd/models`, so that a user's own models never leak in.
pub fn sana_sr(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sana-sr"))
        .args(args)
        .current_dir(cwd)
        .env("SANA_SR_MODELS", cwd.join("models"))
        .output()
        .expect("the binary runs")
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

/// `sana-sr ARGS` as [`sana_sr`] runs it, and its peak resident memory in KiB (`ru_maxrss` of this child
/// alone, from `wait4`).
// The child is reaped by `wait4`, which `Child::wait` cannot stand in for: it alone reports the peak.
#[allow(clippy::zombie_processes)]
pub fn sana_sr_peak_kib(args: &[&str], cwd: &Path) -> (Output, u64) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sana-sr"))
        .args(args)
        .current_dir(cwd)
        .env("SANA_SR_MODELS", cwd.join("models"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).unwrap();
        out
    });
    let mut err = Vec::new();
    stderr.read_to_end(&mut err).unwrap();
    let out = reader.join().unwrap();
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value for wait4 to fill; the pid is this test's own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    (Output { status, stdout: out, stderr: err }, usage.ru_maxrss as u64)
}

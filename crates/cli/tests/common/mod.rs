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

//! Link settings of the `sana-sr` binary that tch's own build cannot give it.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set; run scripts/setup.sh (it is read from .cargo/config.toml)");
        return;
    };
    // Resolve the `.libtorch` link so the binary keeps working when copied out of the repo.
    let lib = PathBuf::from(libtorch).join("lib").canonicalize().expect("LIBTORCH/lib exists");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());

    // Nothing in our code calls into libtorch_cuda.so directly: its static initialisers register the CUDA
    // backend. The default `--as-needed` therefore drops it and CUDA is silently unavailable at run time,
    // so it is linked explicitly with `--no-as-needed` (crates/cli/tests/linking.rs checks it is NEEDED).
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

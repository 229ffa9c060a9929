//! Link settings of the `sana-sr` binary that tch's own build cannot give it.

include!("../../build/libtorch_rpath.rs");

fn main() {
    let Some(lib) = link_libtorch_rpath() else { return };
    // Nothing in our code calls into libtorch_cuda.so directly: its static initialisers register the CUDA
    // backend. The default `--as-needed` therefore drops it and CUDA is silently unavailable at run time,
    // so it is linked explicitly with `--no-as-needed` (crates/cli/tests/linking.rs checks it is NEEDED).
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

//! The binary must carry libtorch_cuda.so as a NEEDED library, or `--device cuda` could never work.

use std::process::Command;

#[test]
fn binary_links_libtorch_cuda() {
    let libtorch_lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch/lib");
    if !libtorch_lib.join("libtorch_cuda.so").exists() {
        eprintln!("this libtorch has no CUDA library; nothing to check");
        return;
    }
    let out = Command::new("readelf").args(["-d", env!("CARGO_BIN_EXE_sana-sr")]).output().expect("readelf runs");
    assert!(out.status.success(), "readelf failed: {}", String::from_utf8_lossy(&out.stderr));
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(dynamic.contains("Shared library: [libtorch_cuda.so]"), "libtorch_cuda.so is not NEEDED:\n{dynamic}");
}

//! The binary does not link libtorch's CUDA backend (it is loaded at start-up where an NVIDIA driver is, by
//! `sana_sr_core::device`), and says why CUDA is missing when asked for it.

mod common;

use std::process::Command;

use common::{photo, sana_sr, stderr};

#[test]
fn binary_leaves_the_cuda_backend_to_start_up() {
    let out = Command::new("readelf").args(["-d", env!("CARGO_BIN_EXE_sana-sr")]).output().expect("readelf runs");
    assert!(out.status.success(), "readelf failed: {}", String::from_utf8_lossy(&out.stderr));
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(dynamic.contains("Shared library: [libtorch_cpu.so]"), "libtorch_cpu.so is not NEEDED:\n{dynamic}");
    assert!(!dynamic.contains("libtorch_cuda.so"), "libtorch_cuda.so is NEEDED:\n{dynamic}");

    if sana_sr_core::device::cuda_backend() == Err("no NVIDIA driver found") {
        let dir = tempfile::tempdir().unwrap();
        photo(dir.path(), "cat.png", 12, 10);
        let out = sana_sr(&["upscale", "cat.png", "-o", "out.png", "--device", "cuda"], dir.path());
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("CUDA is not available on this machine (no NVIDIA driver found)"),
            "{}",
            stderr(&out)
        );
    }
}

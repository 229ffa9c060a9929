//! Link settings of the `sana-sr` binary that tch's own build cannot give it. libtorch's CUDA backend is not
//! among them: `sana_sr_core::device` loads it at start-up where an NVIDIA driver is (docs/decisions.md).

include!("../../build/libtorch_rpath.rs");

fn main() {
    link_libtorch_rpath();
}

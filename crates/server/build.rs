//! The tests of this crate run against libtorch: give them its rpath.

include!("../../build/libtorch_rpath.rs");

fn main() {
    link_libtorch_rpath();
}

//! libtorch's CUDA backend, loaded after libtorch itself (as the start-up constructor of
//! `sana_sr_core::device` loads it where an NVIDIA driver is), registers CUDA: a CUDA tensor then fails for
//! want of a driver or GPU, no longer for want of a CUDA backend. One test in its own process, so that no
//! other test has loaded the backend first.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use sana_sr_core::device::{cuda_backend, load_cuda_backend};
use sana_sr_core::{Device, Kind, Tensor};

fn cuda_tensor_error() -> Option<String> {
    Tensor::f_zeros([1], (Kind::Float, Device::Cuda(0))).err().map(|e| e.to_string())
}

#[test]
fn the_cuda_backend_loads_after_libtorch_and_registers_cuda() {
    assert_ne!(cuda_backend(), Err("the CUDA backend was not looked for"), "the start-up constructor ran");
    if cuda_backend().is_ok() {
        // Loaded at start-up: a CUDA tensor is made, or fails for want of a GPU.
        if let Some(error) = cuda_tensor_error() {
            assert!(!error.contains("'CUDA' backend"), "{error}");
        }
        return;
    }
    let before = cuda_tensor_error().expect("no CUDA backend, no CUDA tensor");
    assert!(before.contains("'CUDA' backend"), "{before}");
    if let Err(reason) = load_cuda_backend() {
        // A libtorch built without CUDA has nothing to load.
        assert!(reason.contains("libtorch_cuda.so"), "{reason}");
        return;
    }
    let after = cuda_tensor_error().expect("no driver here (the start-up constructor found none)");
    eprintln!("before loading: {before}\nafter: {after}");
    assert!(!after.contains("'CUDA' backend") && after.contains("NVIDIA driver"), "{after}");
}

//! Parsing `--device cpu|cuda|cuda:N` into a device, with a clear error where the machine has no CUDA; and
//! loading libtorch's CUDA backend where it can run.
//!
//! The CUDA backend (`libtorch_cuda.so` and the CUDA libraries it needs) is not linked: nothing calls into it,
//! its static initialisers register CUDA with libtorch, and loading it costs every start a tenth of a second
//! and 350 MB of resident memory (docs/decisions.md). So it is loaded before `main`, by a constructor of this
//! crate, on machines whose NVIDIA driver (`libcuda.so.1`) loads — before anything can ask libtorch about
//! CUDA, which caches its first answer.

use std::ffi::{c_char, CStr};
use std::sync::OnceLock;

use tch::{Cuda, Device};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected `cpu`, `cuda` or `cuda:N`")]
    Unknown(String),
    #[error("device `{0}` asked for, but CUDA is not available on this machine ({why})", why = cuda_backend().err().unwrap_or("no NVIDIA GPU found"))]
    NoCuda(String),
    #[error("device `{name}` asked for, but this machine has {count} CUDA device(s)")]
    NoSuchGpu { name: String, count: i64 },
}

/// Parses a device name and checks that the device exists here.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    let index = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or_else(|| DeviceError::Unknown(name.to_string()))?,
    };
    if !Cuda::is_available() {
        return Err(DeviceError::NoCuda(name.to_string()));
    }
    let count = Cuda::device_count();
    if index as i64 >= count {
        return Err(DeviceError::NoSuchGpu { name: name.to_string(), count });
    }
    Ok(Device::Cuda(index))
}

/// What became of the CUDA backend at start-up: loaded, or why not (no NVIDIA driver, or the driver without
/// libtorch's CUDA libraries beside libtorch, as in the CPU-only package).
pub fn cuda_backend() -> Result<(), &'static str> {
    match CUDA_BACKEND.get() {
        Some(Ok(())) => Ok(()),
        Some(Err(reason)) => Err(reason),
        None => Err("the CUDA backend was not looked for"),
    }
}

static CUDA_BACKEND: OnceLock<Result<(), String>> = OnceLock::new();

/// Runs before `main` (and before any test), after libtorch's own initialisers. Where glibc's `dlinfo` is
/// missing (builds for other systems), nothing looks for the backend.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[link_section = ".init_array"]
static LOAD_CUDA_BACKEND: extern "C" fn() = load_cuda_backend_at_start;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" fn load_cuda_backend_at_start() {
    // SAFETY: dlopen with a NUL-terminated name; the handle is only tested for null and never closed.
    let driver = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    let loaded = match driver.is_null() {
        true => Err("no NVIDIA driver found".to_string()),
        false => load_cuda_backend(),
    };
    let _ = CUDA_BACKEND.set(loaded);
}

/// Loads `libtorch_cuda.so` from the folder `libtorch_cpu.so` was loaded from. Public for the test that
/// loads it on a machine without a driver, to see that it registers CUDA with libtorch.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn load_cuda_backend() -> Result<(), String> {
    // SAFETY: `RTLD_NOLOAD` only looks the library up; `RTLD_DI_ORIGIN` writes a NUL-terminated path of at
    // most PATH_MAX bytes into the buffer, which is that long.
    let folder = unsafe {
        let cpu = libc::dlopen(c"libtorch_cpu.so".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if cpu.is_null() {
            return Err("libtorch_cpu.so is not loaded".into());
        }
        let mut origin = [0 as c_char; libc::PATH_MAX as usize];
        if libc::dlinfo(cpu, libc::RTLD_DI_ORIGIN, origin.as_mut_ptr().cast()) != 0 {
            return Err(format!("cannot tell where libtorch_cpu.so is: {}", dl_error()));
        }
        CStr::from_ptr(origin.as_ptr()).to_string_lossy().into_owned()
    };
    let path = format!("{folder}/libtorch_cuda.so\0");
    // SAFETY: a NUL-terminated path; the library stays loaded for the life of the process.
    let cuda = unsafe { libc::dlopen(path.as_ptr().cast(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    match cuda.is_null() {
        true => Err(format!("the NVIDIA driver is here, but libtorch's CUDA backend did not load: {}", dl_error())),
        false => Ok(()),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated message, read before any other dl call.
    unsafe {
        let message = libc::dlerror();
        match message.is_null() {
            true => "unknown error".into(),
            false => CStr::from_ptr(message).to_string_lossy().into_owned(),
        }
    }
}

/// On a GPU, lets cuDNN time its convolution algorithms for each new shape and keep the fastest: worth it
/// where shapes repeat (training crops), at the cost of bit-for-bit reproducibility on the GPU.
pub fn autotune_convolutions(device: Device) {
    if device.is_cuda() {
        Cuda::cudnn_set_benchmark(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_unknown_names() {
        assert_eq!(parse_device("cpu"), Ok(Device::Cpu));
        assert_eq!(parse_device("tpu"), Err(DeviceError::Unknown("tpu".into())));
        assert_eq!(parse_device("cuda:x"), Err(DeviceError::Unknown("cuda:x".into())));
    }

    #[test]
    fn cuda_is_refused_clearly_without_a_gpu() {
        if Cuda::is_available() {
            assert!(parse_device("cuda").is_ok());
        } else {
            let err = parse_device("cuda").unwrap_err();
            assert_eq!(err, DeviceError::NoCuda("cuda".into()));
            assert!(err.to_string().contains("CUDA is not available"));
        }
    }
}

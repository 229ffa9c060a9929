//! Parsing `--device cpu|cuda|cuda:N` into a device, with a clear error where the machine has no CUDA.

use tch::{Cuda, Device};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected `cpu`, `cuda` or `cuda:N`")]
    Unknown(String),
    #[error("device `{0}` asked for, but CUDA is not available on this machine (no NVIDIA GPU or driver found)")]
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

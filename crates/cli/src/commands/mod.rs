//! One module per subcommand: its clap `Args` and a `run`.

pub mod bench;
pub mod data;
pub mod degrade;
pub mod eval;
pub mod lora;
pub mod models;
pub mod train;
pub mod upscale;

use sana_sr_core::Device;

/// A `--device` value: `auto` is the first GPU when libtorch sees one, else the CPU; anything else as
/// [`sana_sr_core::parse_device`] reads it.
pub fn device_arg(name: &str) -> anyhow::Result<Device> {
    Ok(if name == "auto" { Device::cuda_if_available() } else { sana_sr_core::parse_device(name)? })
}

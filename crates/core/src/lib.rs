//! The tensor backend of sana-sr.
//!
//! Everything above this crate names tensors, dtypes and devices through these re-exports, so that the
//! backend (libtorch through tch today) is chosen in one place; see `docs/decisions.md` for why tch.

pub mod allocator;
pub mod compare;
pub mod device;
pub mod fs;
pub mod fuzz;
pub mod interrupt;
pub mod precision;
pub mod profile;

pub use device::{parse_device, DeviceError};
pub use tch::{manual_seed, nn, no_grad, set_num_threads, Device, Kind, Tensor};

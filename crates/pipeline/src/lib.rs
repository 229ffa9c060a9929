//! SANA-SR's one-step super-resolution: the LR image, resized to the output size, is encoded by the DC-AE into
//! a compact latent; the linear-attention DiT runs once at a fixed timestep and its velocity gives the clean
//! latent (flow matching); the DC-AE decodes it. Large images run in overlapping tiles. The same model may
//! sample in several Euler steps ([`scheduler`]), and a LinearSR model starts from noise with the LR image
//! entering through a stem and runs one of its SNR-based [`experts`] per step.
//!
//! [`Upscaler`] is the whole job in a few lines (see its example); [`SrModel`] is the differentiable model the
//! trainer uses; [`ModelSource`] finds built-in and local models. A model file may also hold a peer network,
//! one of Real-ESRGAN's released generators ([`network`]), which the upscaler runs directly on the LR image.

pub mod assemble;
pub mod condition;
pub mod cost;
pub mod diffusers;
pub mod experts;
pub mod mix;
pub mod network;
pub mod prune;
pub mod registry;
pub mod scheduler;
pub mod sr_model;
pub mod tiling;
pub mod upscaler;

pub use network::{EsrganModel, EsrganModelConfig, ModelConfig, Network};
pub use registry::{ModelSource, RegistryError, DEFAULT_MODEL};
pub use sr_model::{InputResize, ModelError, SrModel, SrModelConfig};
pub use upscaler::{Progress, UpscaleError, UpscaleOptions, Upscaler};

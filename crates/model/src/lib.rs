//! The networks of SANA-SR, equal to diffusers' `AutoencoderDC` and `SanaTransformer2DModel` number for
//! number and loading their checkpoints.
//!
//! ```
//! use std::path::Path;
//! use sana_sr_core::{no_grad, Device, Kind, Tensor};
//! use sana_sr_model::autoencoders::AutoencoderDc;
//! use sana_sr_model::checkpoint::Pretrained;
//!
//! // Any diffusers `AutoencoderDC` folder (config.json + diffusion_pytorch_model.safetensors); a tiny one here.
//! let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dc_ae/unshuffle");
//! let (ae, _weights) = AutoencoderDc::from_pretrained(&dir, Device::Cpu)?;
//! let image = Tensor::rand([1, 3, 32, 48], (Kind::Float, Device::Cpu)) * 2.0 - 1.0; // NCHW in [-1, 1]
//! let latent = no_grad(|| ae.encode(&image))?;
//! assert_eq!(latent.size(), [1, ae.config.latent_channels, 8, 12]); // this config compresses 4x
//! let restored = no_grad(|| ae.decode(&latent))?;
//! assert_eq!(restored.size(), image.size());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod autoencoders;
pub mod checkpoint;
pub mod cost;
pub mod esrgan;
pub mod layers;
pub mod lr_stem;
pub mod prune;
pub mod text;
pub mod transformers;

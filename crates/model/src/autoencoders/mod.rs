//! Autoencoders between images and the latent space of the diffusion model; SANA uses the DC-AE.

pub mod autoencoder_dc;
pub mod channel_norm;
pub mod dc_ae_blocks;
pub mod dc_ae_config;
pub mod multiscale_linear_attention;

pub use autoencoder_dc::{AutoencoderDc, DcAeError, Decoder, Encoder};
pub use dc_ae_config::{AutoencoderDcConfig, BlockType, PerStage, Side, SideConfig};

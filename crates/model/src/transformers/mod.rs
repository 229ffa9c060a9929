//! SANA's linear-attention DiT (diffusers `SanaTransformer2DModel`), its config and building blocks.

pub mod attention;
pub mod config;
pub mod embeddings;
pub mod sana_transformer;

pub use config::{BlockWidths, QkNorm, SanaTransformerConfig};
pub use sana_transformer::{
    mask_to_bias, BlockConditioning, SanaTransformer2DModel, SanaTransformerBlock, SanaTransformerError,
};

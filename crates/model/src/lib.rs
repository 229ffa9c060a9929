//! The networks of SANA-SR, equal to diffusers' `AutoencoderDC` and `SanaTransformer2DModel` number for
//! number and loading their checkpoints.

pub mod autoencoders;
pub mod checkpoint;
pub mod layers;
pub mod transformers;

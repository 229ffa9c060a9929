//! Building blocks shared by the DC-AE and the DiT.

mod activation;
mod glumbconv;
mod layer;
pub mod lora;
mod norm;
pub mod variables;

pub use activation::Activation;
pub use glumbconv::GluMbConv;
pub use layer::{ConvConfig, Layer, Op};
pub use norm::{BatchNorm2d, LayerNorm, RmsNorm};

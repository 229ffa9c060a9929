//! Building blocks shared by the DC-AE and the DiT.

mod activation;
pub mod fresh;
mod glumbconv;
mod layer;
mod linear_attention;
pub mod lora;
mod norm;
pub mod variables;

pub use activation::Activation;
pub use glumbconv::GluMbConv;
pub use layer::{ConvConfig, Layer, Op};
pub use linear_attention::{linear_attention, NORMALISER_EPS};
pub use norm::{BatchNorm2d, LayerNorm, RmsNorm};

//! Activation functions by their diffusers names (`get_activation`), so configs deserialize directly.

use sana_sr_core::Tensor;
use serde::{Deserialize, Serialize};

use super::fresh;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[serde(alias = "swish")]
    Silu,
    Relu,
    Relu6,
    Gelu,
    Mish,
}

impl Activation {
    pub fn forward(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Silu => x.silu(),
            Activation::Relu => x.relu(),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Gelu => x.gelu("none"),
            Activation::Mish => x.mish(),
        }
    }

    /// [`Self::forward`] of a fresh intermediate, written over it where [`fresh`] allows.
    pub fn forward_fresh(self, x: Tensor) -> Tensor {
        match self {
            Activation::Silu => fresh::silu(x),
            Activation::Relu => fresh::relu(x),
            _ => self.forward(&x),
        }
    }
}

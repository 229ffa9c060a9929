//! Normalisations of the reference: RMSNorm (diffusers `normalization.RMSNorm`), LayerNorm and
//! inference-mode BatchNorm2d.

use sana_sr_core::{nn, Kind, Tensor};

use super::{fresh, variables};

/// RMS norm over the last dimension, computed in float32 as diffusers does, with an optional affine
/// weight and bias.
#[derive(Debug)]
pub struct RmsNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    eps: f64,
}

impl RmsNorm {
    pub fn new(p: nn::Path, dim: i64, eps: f64, elementwise_affine: bool, bias: bool) -> Self {
        let weight = elementwise_affine.then(|| variables::var(&p, "weight", &[dim], nn::Init::Const(1.0)));
        let bias = (elementwise_affine && bias).then(|| variables::var(&p, "bias", &[dim], nn::Init::Const(0.0)));
        Self { weight, bias, eps }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let input_kind = x.kind();
        let dim = *x.size().last().expect("an RMS norm needs at least one dimension");
        // The reference's steps in float32, with the sum of squares taken by torch's vector-norm kernel and the
        // float32 weight and bias applied in one pass: torch's own `rms_norm` reduces the short rows of
        // channels-last activations with a slower generic kernel (tools/bench/rms_norm_ops.py). The norm is
        // squared back, one rounding (a relative 2^-24) more than the reference's mean of squares.
        let x_float = x.to_kind(Kind::Float);
        let norm = x_float.norm_scalaropt_dim_dtype(2.0, [-1], true, Kind::Float);
        let scale = (norm.square() / dim as f64 + self.eps).rsqrt();
        // A float32 input is the caller's; a converted copy is ours to scale in place.
        let x = if input_kind == Kind::Float { x_float * scale } else { fresh::mul(x_float, &scale) };
        let x = match &self.weight {
            None => return x.to_kind(input_kind),
            Some(w) if w.kind() == Kind::Float => {
                return match &self.bias {
                    Some(b) => fresh::addcmul(x, b, w),
                    None => fresh::mul(x, w),
                }
            }
            // Half-precision weights pull the activations down to their dtype, as in the reference.
            Some(w) => x.to_kind(w.kind()) * w,
        };
        match &self.bias {
            Some(b) => x + b,
            None => x,
        }
    }

    /// RMS norm across the channels of an NCHW tensor (channels moved last and back).
    pub fn forward_channels(&self, x: &Tensor) -> Tensor {
        self.forward(&x.movedim([1], [-1])).movedim([-1], [1])
    }
}

/// Layer norm over the last dimension (torch `nn.LayerNorm`); in its weights' kind, so that under mixed
/// precision a bfloat16 input is normalised in float32 as autocast does.
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    dim: i64,
    eps: f64,
}

impl LayerNorm {
    pub fn new(p: nn::Path, dim: i64, eps: f64, elementwise_affine: bool, bias: bool) -> Self {
        let weight = elementwise_affine.then(|| variables::var(&p, "weight", &[dim], nn::Init::Const(1.0)));
        let bias = (elementwise_affine && bias).then(|| variables::var(&p, "bias", &[dim], nn::Init::Const(0.0)));
        Self { weight, bias, dim, eps }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let x = in_kind_of(x, self.weight.as_ref());
        x.layer_norm([self.dim], self.weight.as_ref(), self.bias.as_ref(), self.eps, true)
    }
}

/// Batch norm of NCHW activations with the stored running statistics (inference mode; the reference
/// checkpoints are only ever run in eval mode).
#[derive(Debug)]
pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    /// torch's int64 step counter; unused in eval mode but part of every saved state dict, so it is kept
    /// to make the variable names equal the checkpoint's keys.
    pub num_batches_tracked: Tensor,
    eps: f64,
}

impl BatchNorm2d {
    pub fn new(p: nn::Path, dim: i64, eps: f64) -> Self {
        Self {
            weight: variables::var(&p, "weight", &[dim], nn::Init::Const(1.0)),
            bias: variables::var(&p, "bias", &[dim], nn::Init::Const(0.0)),
            running_mean: variables::zeros_no_train(&p, "running_mean", &[dim]),
            running_var: variables::ones_no_train(&p, "running_var", &[dim]),
            num_batches_tracked: variables::counter(&p, "num_batches_tracked"),
            eps,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        in_kind_of(x, Some(&self.weight)).batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            false,
            0.1,
            self.eps,
            false,
        )
    }
}

/// `x` cast to `weight`'s kind where they differ (a bfloat16 activation meeting float32 weights under mixed
/// precision).
fn in_kind_of(x: &Tensor, weight: Option<&Tensor>) -> Tensor {
    match weight {
        Some(w) if w.kind() != x.kind() => x.to_kind(w.kind()),
        _ => x.shallow_clone(),
    }
}

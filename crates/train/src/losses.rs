//! The training objective of one-step SR: pixel L1/L2, an edge loss, a latent MSE, and an optional
//! adversarial loss against a discriminator (`crate::discriminator`; Real-ESRGAN trains its generator with L1 +
//! perceptual + GAN; the perceptual network's weights are not available here, the edge loss stands in
//! for its push towards sharp detail).

use sana_sr_core::{Kind, Tensor};
use serde::{Deserialize, Serialize};

/// Weights of the loss terms (`[loss]` in a training config); a zero weight switches a term off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossWeights {
    /// Mean absolute error of the SR image against HR (images in [-1, 1]).
    pub pixel_l1: f64,
    /// Mean squared error of the SR image against HR.
    pub pixel_l2: f64,
    /// L1 between the Sobel gradients of SR and HR: rewards edges in the right place and strength.
    pub edge: f64,
    /// MSE between the restored latent and the HR image's latent (the encoder's own, not differentiated):
    /// for fine-tuning a DiT on a fixed autoencoder; meaningless when the encoder trains from scratch.
    pub latent_mse: f64,
    /// Generator term of the adversarial loss; 0 trains no discriminator.
    pub adversarial: f64,
    /// Flow matching: MSE between the DiT's velocity on the HR latent noised to a sampled noise level and the
    /// true velocity `noise - x0` (what trains a model whose sampler starts from noise; see
    /// `[train] expert` for the noise levels).
    pub flow_matching: f64,
    /// L1 of the autoencoder's reconstruction of the HR image: what makes the encoder's HR latent the one the
    /// decoder turns back into the photo, which the flow-matching target presumes. Both terms need a model
    /// without `lr_skip` (the trainer refuses one with it).
    pub autoencoder: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            pixel_l1: 1.0,
            pixel_l2: 0.0,
            edge: 0.0,
            latent_mse: 0.0,
            adversarial: 0.0,
            flow_matching: 0.0,
            autoencoder: 0.0,
        }
    }
}

/// The names of the terms as logged, in the order [`LossWeights::weights`] returns them.
pub const TERMS: [&str; 7] = ["loss_l1", "loss_l2", "loss_edge", "loss_latent", "loss_adv", "loss_flow", "loss_ae"];

impl LossWeights {
    pub fn weights(&self) -> [f64; 7] {
        [
            self.pixel_l1,
            self.pixel_l2,
            self.edge,
            self.latent_mse,
            self.adversarial,
            self.flow_matching,
            self.autoencoder,
        ]
    }

    /// Whether a weighted term scores the pipeline's output image (pixel, edge and adversarial terms; the
    /// latent, flow-matching and autoencoder terms do not need it).
    pub fn on_output(&self) -> bool {
        [self.pixel_l1, self.pixel_l2, self.edge, self.adversarial].iter().any(|&w| w > 0.0)
    }
}

pub fn l1(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).abs().mean(Kind::Float)
}

pub fn l2(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).square().mean(Kind::Float)
}

/// The student's SR image `sr` as it is compared with a teacher's image `target` (both in [-1, 1] terms; the
/// target clamped to [-1, 1], as the upscaler clamps what it outputs): clamped too where the target is
/// saturated, so that overshoot which the clamp removes from both images costs nothing, and as it is
/// elsewhere, so that the gradient always pulls it towards an unsaturated target (a clamp everywhere would
/// stop the gradient wherever the student overshoots). For a student equal to its teacher, it is the target.
pub fn seen_as_target(sr: &Tensor, target: &Tensor) -> Tensor {
    sr.where_self(&target.abs().lt(1.0), &sr.clamp(-1.0, 1.0))
}

/// Horizontal and vertical Sobel responses of every channel, `[N, 2C, H, W]` (zero padding).
pub fn sobel(x: &Tensor) -> Tensor {
    let channels = x.size()[1];
    let gx = [-1.0f32, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
    let gy = [-1.0f32, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0];
    let kernel = Tensor::cat(&[Tensor::from_slice(&gx), Tensor::from_slice(&gy)], 0)
        .view([2, 1, 3, 3])
        .repeat([channels, 1, 1, 1])
        .to_kind(x.kind())
        .to_device(x.device());
    x.conv2d(&kernel, None::<Tensor>, [1, 1], [1, 1], [1, 1], channels)
}

pub fn edge(a: &Tensor, b: &Tensor) -> Tensor {
    l1(&sobel(a), &sobel(b))
}

/// Non-saturating GAN losses (softplus form of the binary cross-entropy): the generator wants its
/// images called real; the discriminator wants real called real and generated called fake.
pub fn generator_adversarial(fake_logits: &Tensor) -> Tensor {
    (-fake_logits).softplus().mean(Kind::Float)
}

pub fn discriminator_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Tensor {
    (-real_logits).softplus().mean(Kind::Float) + fake_logits.softplus().mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::Device;

    #[test]
    fn sobel_of_a_ramp_is_constant_inside() {
        // f(x, y) = 2x: by hand the horizontal response is (1 + 2 + 1) * (f(x+1) - f(x-1)) = 4 * 4 = 16.
        let ramp = (Tensor::arange(6, (Kind::Float, Device::Cpu)) * 2.0).view([1, 1, 1, 6]).repeat([1, 1, 5, 1]);
        let g = sobel(&ramp);
        assert_eq!(g.size(), [1, 2, 5, 6]);
        let inner = g.narrow(2, 1, 3).narrow(3, 1, 4);
        assert_eq!(inner.get(0).get(0).eq(16.0).all().int64_value(&[]), 1);
        assert_eq!(inner.get(0).get(1).eq(0.0).all().int64_value(&[]), 1);
        assert_eq!(edge(&ramp, &ramp).double_value(&[]), 0.0);
    }

    #[test]
    fn a_teachers_clamp_hides_only_overshoot_past_a_saturated_target() {
        let raw = Tensor::from_slice(&[1.5f32, 0.3, -1.2, 0.9]);
        let target = raw.clamp(-1.0, 1.0);
        // The teacher's own raw output, as the student would see it: exactly its clamped image.
        assert!(seen_as_target(&raw, &target).equal(&target));
        // A student overshooting an unsaturated target keeps its value, and so its gradient.
        let sr = Tensor::from_slice(&[1.5f32, 1.4, -0.5, 0.9]).set_requires_grad(true);
        let seen = seen_as_target(&sr, &target);
        assert_eq!(Vec::<f32>::try_from(&seen).unwrap(), [1.0, 1.4, -0.5, 0.9]);
        l1(&seen, &target).backward();
        assert_eq!(Vec::<f32>::try_from(&sr.grad()).unwrap(), [0.0, 0.25, 0.25, 0.0]);
    }

    #[test]
    fn adversarial_losses_match_the_cross_entropy() {
        let logits = Tensor::from_slice(&[2.0f32, -1.0, 0.0]);
        // -log(sigmoid(x)) averaged, by hand: softplus(-2) = 0.126928, softplus(1) = 1.313262, softplus(0) = ln 2;
        // the bound is the precision of those six-decimal constants (5e-7 each), float32's rounding far under it.
        let want = (0.126928 + 1.313262 + std::f64::consts::LN_2) / 3.0;
        assert!((generator_adversarial(&logits).double_value(&[]) - want).abs() < 1e-5);
        let d = discriminator_loss(&logits, &logits).double_value(&[]);
        let want_fake = (2.126928 + 0.313262 + std::f64::consts::LN_2) / 3.0;
        assert!((d - want - want_fake).abs() < 1e-5);
    }
}

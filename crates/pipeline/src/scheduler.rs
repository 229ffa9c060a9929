//! Flow matching, the diffusion formulation of SANA (rectified flow; diffusers
//! `FlowMatchEulerDiscreteScheduler`, which SANA's pipelines use with `prediction_type="flow_prediction"`).
//!
//! A noisy latent at noise level `sigma` in [0, 1] is the straight line `x_t = (1 - sigma) x0 + sigma noise`, and
//! the model predicts its velocity `v = noise - x0`. The clean latent follows in one Euler step to `sigma = 0`:
//! `x0 = x_t - sigma v`. The one-step SR pipeline treats the LR latent as `x_t` at a fixed timestep (the OSEDiff
//! recipe), so this file is the only place where the formula lives; the trainer uses the same functions.

use sana_sr_core::Tensor;

/// Timesteps run from 0 (clean) to this value (pure noise), as in every SANA config.
pub const NUM_TRAIN_TIMESTEPS: f64 = 1000.0;

/// The noise level of a timestep in `[0, NUM_TRAIN_TIMESTEPS]`: `sigma = t / 1000`.
pub fn sigma(timestep: f64) -> f64 {
    timestep / NUM_TRAIN_TIMESTEPS
}

/// The noisy latent on the straight path from `x0` to `noise`: `(1 - sigma) x0 + sigma noise`.
pub fn add_noise(x0: &Tensor, noise: &Tensor, sigma: f64) -> Tensor {
    x0 * (1.0 - sigma) + noise * sigma
}

/// The velocity the model is trained to predict at any point of that path: `noise - x0`.
pub fn velocity(x0: &Tensor, noise: &Tensor) -> Tensor {
    noise - x0
}

/// The clean latent from a noisy one and the predicted velocity: `x0 = x_t - sigma v`.
pub fn clean_latent(x_t: &Tensor, velocity: &Tensor, sigma: f64) -> Tensor {
    x_t - velocity * sigma
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::{Device, Kind};

    #[test]
    fn one_euler_step_with_the_true_velocity_recovers_the_clean_latent() {
        let x0 = Tensor::randn([2, 4, 3, 5], (Kind::Double, Device::Cpu));
        let noise = Tensor::randn([2, 4, 3, 5], (Kind::Double, Device::Cpu));
        for t in [1.0, 250.0, 500.0, 999.0, 1000.0] {
            let s = sigma(t);
            let x_t = add_noise(&x0, &noise, s);
            let recovered = clean_latent(&x_t, &velocity(&x0, &noise), s);
            let err = (recovered - &x0).abs().max().double_value(&[]);
            assert!(err < 1e-12, "t={t}: {err}");
        }
    }

    #[test]
    fn the_path_runs_from_the_clean_latent_to_the_noise() {
        let x0 = Tensor::from_slice(&[1.0f64, -2.0]);
        let noise = Tensor::from_slice(&[3.0f64, 0.5]);
        assert_eq!(Vec::<f64>::try_from(add_noise(&x0, &noise, 0.0)).unwrap(), [1.0, -2.0]);
        assert_eq!(Vec::<f64>::try_from(add_noise(&x0, &noise, 1.0)).unwrap(), [3.0, 0.5]);
        // sigma = 0.25 by hand: 0.75 * 1 + 0.25 * 3 = 1.5, 0.75 * -2 + 0.25 * 0.5 = -1.375.
        assert_eq!(Vec::<f64>::try_from(add_noise(&x0, &noise, sigma(250.0))).unwrap(), [1.5, -1.375]);
    }
}

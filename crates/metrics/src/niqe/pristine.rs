//! NIQE's pristine model, shipped in the crate (see data/README.md for its origin).

use safetensors::{Dtype, SafeTensors};
use std::sync::OnceLock;

const BYTES: &[u8] = include_bytes!("../../data/niqe_pris_params.safetensors");

pub(super) struct Pristine {
    /// Mean of the 36 features over the pristine corpus.
    pub mu: Vec<f64>,
    /// Their 36x36 covariance, row-major.
    pub cov: Vec<f64>,
    /// The 7x7 window of the local mean and deviation.
    pub window: [[f64; 7]; 7],
}

pub(super) fn model() -> &'static Pristine {
    static MODEL: OnceLock<Pristine> = OnceLock::new();
    MODEL.get_or_init(|| {
        let tensors = SafeTensors::deserialize(BYTES).expect("the shipped NIQE parameters are valid safetensors");
        let read = |name: &str, len: usize| -> Vec<f64> {
            let view = tensors.tensor(name).expect("the shipped NIQE parameters hold every tensor");
            assert_eq!((view.dtype(), view.shape().iter().product::<usize>()), (Dtype::F64, len), "{name}");
            view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
        };
        let flat = read("gaussian_window", 49);
        Pristine {
            mu: read("mu_pris_param", 36),
            cov: read("cov_pris_param", 36 * 36),
            window: std::array::from_fn(|i| std::array::from_fn(|j| flat[i * 7 + j])),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn shipped_model_loads() {
        let model = super::model();
        assert_eq!(model.mu.len(), 36);
        let window_sum: f64 = model.window.iter().flatten().sum();
        assert!((window_sum - 1.0).abs() < 1e-12);
        // A covariance is symmetric.
        assert!((0..36).all(|i| (0..36).all(|j| model.cov[i * 36 + j] == model.cov[j * 36 + i])));
    }
}

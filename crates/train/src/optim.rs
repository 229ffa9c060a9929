//! AdamW, gradient clipping and an EMA of the weights, written over plain tensors so that their whole state
//! can be checkpointed and restored (libtorch's optimizers, as tch exposes them, cannot save their moments).
//!
//! The update is torch's `optim.AdamW` (Loshchilov & Hutter, decoupled weight decay) step for step:
//! `p -= lr * wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//!  p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.

use std::collections::{BTreeMap, HashMap};

use sana_sr_core::{no_grad, Kind, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// torch's defaults.
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// AdamW over named parameters; the moments are kept per name.
#[derive(Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    params: BTreeMap<String, Tensor>,
    exp_avg: BTreeMap<String, Tensor>,
    exp_avg_sq: BTreeMap<String, Tensor>,
    /// Steps taken (torch's per-parameter `step`, equal for all here).
    pub steps: u64,
}

impl AdamW {
    /// Optimises `params` (shallow copies of the trainable variables) with zeroed moments.
    pub fn new(params: impl IntoIterator<Item = (String, Tensor)>, config: AdamWConfig) -> Self {
        let params: BTreeMap<String, Tensor> = params.into_iter().collect();
        let zeros = |p: &Tensor| p.zeros_like().to_kind(Kind::Float);
        let exp_avg = params.iter().map(|(k, p)| (k.clone(), zeros(p))).collect();
        let exp_avg_sq = params.iter().map(|(k, p)| (k.clone(), zeros(p))).collect();
        Self { config, params, exp_avg, exp_avg_sq, steps: 0 }
    }

    /// One update at learning rate `lr` from the parameters' current gradients (parameters without a
    /// gradient are left alone, as torch does).
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.config;
        let t = self.steps as i32;
        let (correction1, correction2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        no_grad(|| {
            for (name, param) in &self.params {
                let grad = param.grad();
                if !grad.defined() {
                    continue;
                }
                let grad = grad.to_kind(Kind::Float);
                let (m, v) = (&self.exp_avg[name], &self.exp_avg_sq[name]);
                let mut p32 = param.to_kind(Kind::Float);
                p32 *= 1.0 - lr * weight_decay;
                m.shallow_clone().copy_(&(m * beta1 + &grad * (1.0 - beta1)));
                v.shallow_clone().copy_(&(v * beta2 + grad.square() * (1.0 - beta2)));
                let denom = v.sqrt() / correction2.sqrt() + eps;
                p32 -= m / denom * (lr / correction1);
                param.shallow_clone().copy_(&p32);
            }
        });
    }

    pub fn zero_grad(&mut self) {
        for param in self.params.values() {
            let mut grad = param.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
    }

    /// Scales the gradients so that their global L2 norm is at most `max_norm` (torch's
    /// `clip_grad_norm_`, `max_norm / (norm + 1e-6)`); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self.params.values().map(Tensor::grad).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let squares: Vec<Tensor> = grads.iter().map(|g| g.to_kind(Kind::Float).square().sum(Kind::Float)).collect();
        let norm = Tensor::stack(&squares, 0).sum(Kind::Float).sqrt().double_value(&[]);
        let factor = max_norm / (norm + 1e-6);
        if factor < 1.0 {
            no_grad(|| {
                for grad in &grads {
                    let _ = grad.shallow_clone().f_mul_scalar_(factor).expect("an in-place scale of a gradient");
                }
            });
        }
        norm
    }

    /// The moments, named `exp_avg.<param>` and `exp_avg_sq.<param>`, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let named = |prefix: &str, map: &BTreeMap<String, Tensor>| {
            map.iter().map(|(k, t)| (format!("{prefix}.{k}"), t.shallow_clone())).collect::<Vec<_>>()
        };
        let mut state = named("exp_avg", &self.exp_avg);
        state.extend(named("exp_avg_sq", &self.exp_avg_sq));
        state
    }

    /// Restores moments saved by [`Self::state`] after `steps` steps; every moment must be present.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<(), String> {
        for (prefix, map) in [("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)] {
            for (name, moment) in map {
                let key = format!("{prefix}.{name}");
                let saved = tensors.get(&key).ok_or_else(|| format!("optimizer state `{key}` is missing"))?;
                if saved.size() != moment.size() {
                    return Err(format!(
                        "optimizer state `{key}` has shape {:?}, not {:?}",
                        saved.size(),
                        moment.size()
                    ));
                }
                no_grad(|| moment.shallow_clone().copy_(saved));
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// An exponential moving average of the weights (`ema = decay * ema + (1 - decay) * w` after each step):
/// what is validated and shipped, smoother than the raw weights.
#[derive(Debug)]
pub struct Ema {
    pub decay: f64,
    /// Named averages, float32, on the weights' device.
    pub averages: BTreeMap<String, Tensor>,
}

impl Ema {
    pub fn new(weights: &HashMap<String, Tensor>, decay: f64) -> Self {
        let averages = weights
            .iter()
            .filter(|(_, t)| t.is_floating_point())
            .map(|(k, t)| (k.clone(), t.detach().to_kind(Kind::Float).copy()))
            .collect();
        Self { decay, averages }
    }

    pub fn update(&mut self, weights: &HashMap<String, Tensor>) {
        no_grad(|| {
            for (name, average) in &self.averages {
                let w = weights[name].to_kind(Kind::Float);
                average.shallow_clone().copy_(&(average * self.decay + w * (1.0 - self.decay)));
            }
        });
    }

    /// Copies the averages into `weights` (e.g. the variables of a model to validate or save).
    pub fn copy_to(&self, weights: &HashMap<String, Tensor>) {
        no_grad(|| {
            for (name, average) in &self.averages {
                weights[name].shallow_clone().copy_(average);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::Device;

    /// torch 2.11.0, `torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)` on
    /// `p = [1.0, -2.0, 0.5]` with the gradients `[0.3, -0.1, 2.0]`, `[0.1, 0.2, -1.0]`, `[-0.5, 0.0, 0.25]`
    /// in three steps (float64).
    const TORCH_ADAMW: [[f64; 3]; 3] = [
        [0.8990000033333332, -1.898000009999999, 0.3995000005],
        [0.8109946121538623, -1.9327123603784888, 0.37246679670193156],
        [0.828221038682674, -1.9590795545738768, 0.3445298643071584],
    ];

    #[test]
    fn adamw_matches_torch() {
        let p = Tensor::from_slice(&[1.0f64, -2.0, 0.5]).set_requires_grad(true);
        let mut opt = AdamW::new([("p".to_string(), p.shallow_clone())], AdamWConfig::default());
        for (grad, want) in [[0.3, -0.1, 2.0], [0.1, 0.2, -1.0], [-0.5, 0.0, 0.25]].iter().zip(TORCH_ADAMW) {
            opt.zero_grad();
            (&p * Tensor::from_slice(grad)).sum(Kind::Double).backward();
            opt.step(0.1);
            let got = Vec::<f64>::try_from(&p.detach()).unwrap();
            for (g, w) in got.iter().zip(want) {
                // The moments are float32: each step rounds a handful of times on values of order 1 (u = 2^-24
                // ≈ 6e-8), three steps stay within ~20u ≈ 1.2e-6 of the weights, which are at most 2.
                assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn clipping_scales_the_global_norm() {
        let a = Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let b = Tensor::zeros([1], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut opt =
            AdamW::new([("a".into(), a.shallow_clone()), ("b".into(), b.shallow_clone())], AdamWConfig::default());
        // Gradients (3, 0) and (4): norm 5, exact in float32; the clipped gradients 0.6 and 0.8 are one or two
        // float32 roundings (u = 2^-24) away from their decimal values.
        ((&a * Tensor::from_slice(&[3.0f32, 0.0])).sum(Kind::Float) + (&b * 4.0).sum(Kind::Float)).backward();
        assert!((opt.clip_grad_norm(10.0) - 5.0).abs() < 1e-6);
        assert!((a.grad().double_value(&[0]) - 3.0).abs() < 1e-6, "no clipping below the limit");
        assert!((opt.clip_grad_norm(1.0) - 5.0).abs() < 1e-6);
        assert!((a.grad().double_value(&[0]) - 0.6).abs() < 1e-5 && (b.grad().double_value(&[0]) - 0.8).abs() < 1e-5);
    }

    #[test]
    fn state_round_trips() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut opt = AdamW::new([("p".to_string(), p.shallow_clone())], AdamWConfig::default());
        (&p * 3.0).sum(Kind::Float).backward();
        opt.step(0.01);
        let saved: HashMap<String, Tensor> = opt.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
        let q = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut restored = AdamW::new([("p".to_string(), q.shallow_clone())], AdamWConfig::default());
        restored.load_state(&saved, opt.steps).unwrap();
        for ((_, a), (_, b)) in opt.state().iter().zip(restored.state().iter()) {
            assert!(a.equal(b));
        }
        let mut missing = saved;
        missing.remove("exp_avg_sq.p");
        assert!(restored.load_state(&missing, 1).unwrap_err().contains("exp_avg_sq.p"));
    }

    #[test]
    fn ema_moves_towards_the_weights() {
        let w = HashMap::from([("w".to_string(), Tensor::from_slice(&[0.0f32, 10.0]))]);
        let mut ema = Ema::new(&w, 0.9);
        let moved = HashMap::from([("w".to_string(), Tensor::from_slice(&[1.0f32, 0.0]))]);
        ema.update(&moved);
        let got = Vec::<f32>::try_from(&ema.averages["w"]).unwrap();
        // 0.9·w + 0.1·w' in float32: two or three roundings of values up to 10 (u = 2^-24), under 2e-6.
        assert!((got[0] - 0.1).abs() < 2e-6 && (got[1] - 9.0).abs() < 2e-6, "{got:?}");
    }
}

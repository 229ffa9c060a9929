//! The learning-rate schedule: linear warm-up, then cosine decay to a floor.
//!
//! Warm-up keeps the first updates of a freshly initialised adapter (or of Adam's still-empty moment
//! estimates) small; the cosine decay anneals towards `min_lr` rather than zero so that a run extended past
//! `total_steps` keeps learning slowly instead of freezing. A pure function of the step, so a resumed run
//! needs no scheduler state.

use serde::{Deserialize, Serialize};

/// The `[schedule]` table of a training config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// The peak learning rate, reached at the end of warm-up.
    pub base_lr: f64,
    /// The floor the cosine decays to. Default 0.
    #[serde(default)]
    pub min_lr: f64,
    /// Steps of linear warm-up. Default 0: none.
    #[serde(default)]
    pub warmup_steps: u64,
    /// The step at which the decay reaches `min_lr`; later steps stay there.
    pub total_steps: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("schedule needs 0 <= min_lr ({min_lr}) <= base_lr ({base_lr}), both finite")]
    BadRates { base_lr: f64, min_lr: f64 },
    #[error("schedule.warmup_steps ({warmup_steps}) exceeds schedule.total_steps ({total_steps})")]
    WarmupTooLong { warmup_steps: u64, total_steps: u64 },
}

impl LrSchedule {
    /// Checks the values a TOML file may have got wrong.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let (base_lr, min_lr) = (self.base_lr, self.min_lr);
        if !(base_lr.is_finite() && min_lr.is_finite() && 0.0 <= min_lr && min_lr <= base_lr) {
            return Err(ScheduleError::BadRates { base_lr, min_lr });
        }
        if self.warmup_steps > self.total_steps {
            return Err(ScheduleError::WarmupTooLong {
                warmup_steps: self.warmup_steps,
                total_steps: self.total_steps,
            });
        }
        Ok(())
    }

    /// The learning rate of optimizer step `step` (counted from 0), with W = `warmup_steps` and
    /// T = `total_steps`:
    ///
    /// - `step < W`: `base_lr · (step + 1) / W`, so the first step already learns and step W−1 reaches
    ///   `base_lr`;
    /// - `W <= step < T`: `min_lr + (base_lr − min_lr) · (1 + cos(π · (step − W) / (T − W))) / 2`, the closed
    ///   form of torch's `CosineAnnealingLR(T_max = T − W, eta_min = min_lr)` at `T_cur = step − W`;
    /// - `step >= T`: `min_lr`.
    pub fn lr(&self, step: u64) -> f64 {
        let (warmup, total) = (self.warmup_steps, self.total_steps);
        if step < warmup {
            self.base_lr * (step + 1) as f64 / warmup as f64
        } else if step < total {
            let progress = (step - warmup) as f64 / (total - warmup) as f64;
            self.min_lr + (self.base_lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
        } else {
            self.min_lr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> LrSchedule {
        LrSchedule { base_lr: 1e-4, min_lr: 1e-5, warmup_steps: 100, total_steps: 1100 }
    }

    fn assert_close(got: f64, expected: f64) {
        // Rounding only: 1e-18 is about 70 ulp of 1e-4.
        assert!((got - expected).abs() <= 1e-18, "{got} vs {expected}");
    }

    #[test]
    fn warmup_rises_linearly_to_the_base_rate() {
        let s = schedule();
        assert_close(s.lr(0), 1e-6);
        assert_close(s.lr(49), 5e-5);
        assert_close(s.lr(99), 1e-4);
    }

    #[test]
    fn cosine_decay_matches_the_annealing_formula() {
        // By hand, min + (base − min)(1 + cos(π t/1000))/2 with base 1e-4, min 1e-5:
        // t = 0: 1e-4; t = 250: 1e-5 + 9e-5 · 0.8535533905932737 = 8.681980515339464e-5;
        // t = 500: 5.5e-5; t = 750: 1e-5 + 9e-5 · 0.14644660940672627 = 2.3180194846605367e-5; t = 1000: 1e-5.
        let s = schedule();
        assert_close(s.lr(100), 1e-4);
        assert_close(s.lr(350), 8.681980515339464e-5);
        assert_close(s.lr(600), 5.5e-5);
        assert_close(s.lr(850), 2.3180194846605367e-5);
        assert_close(s.lr(1099), 1e-5 + 9e-5 * (1.0 + (std::f64::consts::PI * 0.999).cos()) / 2.0);
        assert_eq!(s.lr(1100), 1e-5);
        assert_eq!(s.lr(1_000_000), 1e-5);
    }

    #[test]
    fn decay_never_rises_and_never_leaves_its_bounds() {
        let s = schedule();
        let rates: Vec<f64> = (100..=1200).map(|step| s.lr(step)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]));
        assert!(rates.iter().all(|&lr| (1e-5..=1e-4).contains(&lr)));
    }

    #[test]
    fn without_warmup_the_first_step_uses_the_base_rate() {
        let s = LrSchedule { warmup_steps: 0, ..schedule() };
        assert_eq!(s.lr(0), 1e-4);
        assert_close(s.lr(550), 5.5e-5);
    }

    #[test]
    fn reads_from_toml_and_is_checked() {
        let s: LrSchedule = toml::from_str("base_lr = 1e-4\ntotal_steps = 1000").unwrap();
        assert_eq!(s, LrSchedule { base_lr: 1e-4, min_lr: 0.0, warmup_steps: 0, total_steps: 1000 });
        assert_eq!(s.validate(), Ok(()));
        let inverted = LrSchedule { min_lr: 1e-3, ..schedule() };
        assert!(inverted.validate().unwrap_err().to_string().contains("min_lr (0.001)"));
        let long = LrSchedule { warmup_steps: 2000, ..schedule() };
        assert_eq!(long.validate(), Err(ScheduleError::WarmupTooLong { warmup_steps: 2000, total_steps: 1100 }));
        assert!(toml::from_str::<LrSchedule>("base_lr = 1e-4").is_err(), "total_steps is required");
    }
}

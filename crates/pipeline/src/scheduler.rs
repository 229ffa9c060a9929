//! Flow matching, the diffusion formulation of SANA (rectified flow; diffusers
//! `FlowMatchEulerDiscreteScheduler`, which SANA's pipelines use with `prediction_type="flow_prediction"`).
//!
//! A noisy latent at noise level `sigma` in [0, 1] is the straight line `x_t = (1 - sigma) x0 + sigma noise`, and
//! the model predicts its velocity `v = noise - x0`. The clean latent follows in one Euler step to `sigma = 0`:
//! `x0 = x_t - sigma v`. The one-step SR pipeline treats the LR latent as `x_t` at a fixed timestep (the OSEDiff
//! recipe); several steps walk down a schedule of noise levels with the same Euler update ([`euler_step`]), either
//! from there or from pure noise ([`flow_match_schedule`], diffusers' schedule). This file is the only place where
//! these formulas live; the pipeline and the trainer use the same functions.

use sana_sr_core::Tensor;
use serde::Deserialize;

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

/// One Euler step of the flow ODE from noise level `sigma` down to `next`: `x - (sigma - next) v`, which is
/// diffusers' `sample + (sigma_next - sigma) * model_output`. A last step to `next = 0` is [`clean_latent`]
/// itself, operation for operation, so a one-step sampler gives the one-step pipeline's output bit for bit.
pub fn euler_step(x: &Tensor, velocity: &Tensor, sigma: f64, next: f64) -> Tensor {
    if next == 0.0 {
        clean_latent(x, velocity, sigma)
    } else {
        x - velocity * (sigma - next)
    }
}

/// The log signal-to-noise ratio of noise level `sigma`: `x_t = (1 - sigma) x0 + sigma noise` has
/// `SNR = (1 - sigma)^2 / sigma^2`, so `lambda = 2 ln((1 - sigma) / sigma)`; +inf at 0, -inf at 1.
pub fn log_snr(sigma: f64) -> f64 {
    2.0 * ((1.0 - sigma) / sigma).ln()
}

/// The noise level of log-SNR `lambda`, the inverse of [`log_snr`]: `sigma = 1 / (1 + e^(lambda / 2))`.
pub fn sigma_of_log_snr(lambda: f64) -> f64 {
    1.0 / (1.0 + (lambda / 2.0).exp())
}

/// Noise levels and timesteps of an `steps`-step sampler from pure noise.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// `steps + 1` noise levels, from the first step's down to a final 0.
    pub sigmas: Vec<f64>,
    /// The timestep the model sees at each step (`sigma * 1000`).
    pub timesteps: Vec<f64>,
}

/// What diffusers' `FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)` gives after
/// `set_timesteps(steps)` (its default options: no dynamic shifting, no Karras/exponential/beta sigmas, no
/// terminal stretch), computed with its roundings: the training sigmas `shift·s / (1 + (shift-1)·s)` of
/// `s = t/1000, t = 1000..1` in float32 give `sigma_max` and `sigma_min`; `steps` timesteps spaced evenly between
/// them in float64 are divided by 1000 and shifted *again* (diffusers shifts both when the scheduler is built and
/// when the steps are set), then stored in float32, with a 0 appended.
pub fn flow_match_schedule(steps: usize, shift: f64) -> Schedule {
    // torch's float32 arithmetic with Python-float scalars: each scalar is rounded to float32 as it is.
    let shifted32 = |s: f32| -> f32 { shift as f32 * s / (1.0 + (shift - 1.0) as f32 * s) };
    let n = NUM_TRAIN_TIMESTEPS;
    // The training schedule's extremes, as torch computes them in float32 (`t / 1000` then the shift).
    let sigma_max = f64::from(shifted32(1.0)); // t = 1000 over 1000, exact in float32
    let sigma_min = f64::from(shifted32(1.0f32 / n as f32));
    let (first, last) = (sigma_max * n, sigma_min * n);
    let sigmas: Vec<f64> = (0..steps)
        .map(|i| {
            // numpy's linspace: start + i·step, the last point exactly `last`.
            let t = if i + 1 == steps && steps > 1 {
                last
            } else {
                first + i as f64 * if steps > 1 { (last - first) / (steps - 1) as f64 } else { 0.0 }
            };
            let s = t / n;
            f64::from((shift * s / (1.0 + (shift - 1.0) * s)) as f32)
        })
        .collect();
    // diffusers multiplies the float32 sigmas by 1000 in float32.
    let timesteps = sigmas.iter().map(|&s| f64::from(s as f32 * n as f32)).collect();
    Schedule { sigmas: sigmas.into_iter().chain([0.0]).collect(), timesteps }
}

/// The scheduler of a diffusers pipeline folder (`scheduler/scheduler_config.json`), as far as a one-step model
/// built from it reads it: where a training timestep index lies. SANA's pipelines ship one of two classes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "_class_name")]
pub enum DiffusersScheduler {
    /// SANA 1.0's: DPM-Solver++ on flow-matching sigmas, `flow_shift` 3 for the 1024px models.
    #[serde(rename = "DPMSolverMultistepScheduler")]
    DpmSolver {
        #[serde(default)]
        use_flow_sigmas: bool,
        #[serde(default = "no_shift")]
        flow_shift: f64,
        #[serde(default = "thousand")]
        num_train_timesteps: f64,
        #[serde(flatten)]
        options: ScheduleOptions,
    },
    #[serde(rename = "FlowMatchEulerDiscreteScheduler")]
    FlowMatchEuler {
        #[serde(default = "no_shift")]
        shift: f64,
        #[serde(default = "thousand")]
        num_train_timesteps: f64,
        #[serde(flatten)]
        options: ScheduleOptions,
    },
}

/// The options that replace a scheduler's sigmas by others; none is supported, so each must be off.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ScheduleOptions {
    #[serde(default)]
    use_karras_sigmas: bool,
    #[serde(default)]
    use_exponential_sigmas: bool,
    #[serde(default)]
    use_beta_sigmas: bool,
    #[serde(default)]
    use_lu_lambdas: bool,
    #[serde(default)]
    use_dynamic_shifting: bool,
    #[serde(default)]
    invert_sigmas: bool,
    #[serde(default)]
    shift_terminal: Option<f64>,
}

/// No shift of the noise levels: diffusers' default.
pub(crate) fn no_shift() -> f64 {
    1.0
}

fn thousand() -> f64 {
    NUM_TRAIN_TIMESTEPS
}

impl DiffusersScheduler {
    /// The timestep the DiT sees and the noise level the step uses at `index` after diffusers'
    /// `set_timesteps(steps)`, as SANA-SR's training code takes them (`scheduler.timesteps[index]`,
    /// `scheduler.sigmas[index]`), in the scheduler's own roundings: DPM-Solver computes its flow sigmas in float64
    /// (numpy's `linspace(1, 1/1000, steps + 1)`, `1 - alpha`, the shift, reversed), gives the timesteps as
    /// `sigma · 1000` *truncated to integers* and the sigmas in float32, so the two disagree (SANA-SR's index 900
    /// of 1000 at flow shift 3: timestep 249, sigma 0.249792); the flow-matching Euler scheduler keeps both in
    /// float32 ([`flow_match_schedule`]).
    pub fn point(&self, steps: usize, index: usize) -> Result<(f64, f64), String> {
        let (options, train) = match self {
            Self::DpmSolver { options, num_train_timesteps, .. }
            | Self::FlowMatchEuler { options, num_train_timesteps, .. } => (options, *num_train_timesteps),
        };
        let unsupported = [
            ("use_karras_sigmas", options.use_karras_sigmas),
            ("use_exponential_sigmas", options.use_exponential_sigmas),
            ("use_beta_sigmas", options.use_beta_sigmas),
            ("use_lu_lambdas", options.use_lu_lambdas),
            ("use_dynamic_shifting", options.use_dynamic_shifting),
            ("invert_sigmas", options.invert_sigmas),
            ("shift_terminal", options.shift_terminal.is_some()),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, on)| *on) {
            return Err(format!("the scheduler's `{name}` changes its sigmas in a way sana-sr does not follow"));
        }
        if train != NUM_TRAIN_TIMESTEPS {
            return Err(format!("the scheduler has {train} training timesteps; SANA's have {NUM_TRAIN_TIMESTEPS}"));
        }
        if index >= steps {
            return Err(format!("timestep index {index} is not among the {steps} steps (0..{steps})"));
        }
        match *self {
            Self::DpmSolver { use_flow_sigmas: false, .. } => Err(
                "the DPM-Solver scheduler has no `use_flow_sigmas`: a variance-preserving schedule, not SANA's flow \
                 matching"
                    .into(),
            ),
            Self::DpmSolver { flow_shift, .. } => {
                check_shift(flow_shift)?;
                // Index i of the reversed array is entry `steps - i` of the linspace, whose last entry is exact.
                let j = steps - index;
                let alpha = match j == steps {
                    true => 1.0 / train,
                    false => j as f64 * ((1.0 / train - 1.0) / steps as f64) + 1.0,
                };
                let s = 1.0 - alpha;
                let sigma = flow_shift * s / (1.0 + (flow_shift - 1.0) * s);
                Ok(((sigma * train).trunc(), f64::from(sigma as f32)))
            }
            Self::FlowMatchEuler { shift, .. } => {
                check_shift(shift)?;
                let schedule = flow_match_schedule(steps, shift);
                Ok((schedule.timesteps[index], schedule.sigmas[index]))
            }
        }
    }
}

fn check_shift(shift: f64) -> Result<(), String> {
    match shift.is_finite() && shift > 0.0 {
        true => Ok(()),
        false => Err(format!("the scheduler's shift {shift} is not a positive number")),
    }
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

    #[test]
    fn schedules_equal_diffusers_flow_match_euler_scheduler() {
        // tools/reference/make_schedule_fixtures.py. The schedule repeats diffusers' operations in its precisions,
        // so every value should be the same float32; one float32 ulp (2^-24 relative) is allowed for a
        // different order of the float64 operations of numpy's `linspace`.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/flow_match/schedules.json");
        let cases: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(cases.len(), 15);
        let floats = |v: &serde_json::Value| -> Vec<f64> { serde_json::from_value(v.clone()).unwrap() };
        for case in &cases {
            let (shift, steps) = (case["shift"].as_f64().unwrap(), case["steps"].as_u64().unwrap() as usize);
            let got = flow_match_schedule(steps, shift);
            for (name, got, want) in [
                ("sigmas", &got.sigmas, floats(&case["sigmas"])),
                ("timesteps", &got.timesteps, floats(&case["timesteps"])),
            ] {
                assert_eq!(got.len(), want.len(), "shift {shift}, {steps} steps: {name}");
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= w.abs() * 2f64.powi(-24),
                        "shift {shift}, {steps} steps: {name} {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn log_snr_is_zero_at_half_noise_and_inverts() {
        assert_eq!(log_snr(0.5), 0.0);
        // sigma = 0.2: SNR = 0.8^2 / 0.2^2 = 16.
        assert!((log_snr(0.2) - 16f64.ln()).abs() < 1e-15);
        for sigma in [1e-4, 0.061, 0.125, 0.5, 0.777, 0.9999] {
            assert!((sigma_of_log_snr(log_snr(sigma)) - sigma).abs() < 1e-14 * sigma.max(1e-2), "{sigma}");
        }
        assert!(log_snr(0.9) < log_snr(0.1), "more noise, lower SNR");
    }

    #[test]
    fn euler_steps_follow_a_straight_path_exactly() {
        // On the straight path the true velocity is constant, so any split of [sigma, 0] into Euler steps lands
        // on x0 (up to the roundings of a few float64 operations).
        let x0 = Tensor::randn([2, 3, 4], (Kind::Double, Device::Cpu));
        let noise = Tensor::randn([2, 3, 4], (Kind::Double, Device::Cpu));
        let v = velocity(&x0, &noise);
        let mut x = add_noise(&x0, &noise, 0.9);
        for (sigma, next) in [(0.9, 0.6), (0.6, 0.25), (0.25, 0.0)] {
            x = euler_step(&x, &v, sigma, next);
            let on_path = add_noise(&x0, &noise, next);
            assert!((&x - on_path).abs().max().double_value(&[]) < 1e-14);
        }
        // A step to 0 is the one-step formula itself.
        let x_t = add_noise(&x0, &noise, 0.5);
        assert!(euler_step(&x_t, &v, 0.5, 0.0).equal(&clean_latent(&x_t, &v, 0.5)));
    }

    #[test]
    fn training_points_equal_diffusers_schedulers() {
        // tools/reference/make_sana_sr_stack_fixtures.py: `timesteps[i]` and `sigmas[i]` after
        // `set_timesteps(1000)`. The computation repeats diffusers' float64 operations in their order, so the
        // integer timesteps must be equal and the float32 sigmas equal to a float32 ulp (2^-23 relative, for the
        // float32 rounding of the Euler scheduler's shift).
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sana_sr_stack/schedulers.json");
        let cases =
            sana_sr_model::checkpoint::read_config::<Vec<serde_json::Value>>(std::path::Path::new(path)).unwrap();
        assert_eq!(cases.len(), 5);
        for case in &cases {
            let scheduler: DiffusersScheduler = serde_json::from_value(case["config"].clone()).unwrap();
            let steps = case["steps"].as_u64().unwrap() as usize;
            let points: Vec<(usize, f64, f64)> = serde_json::from_value(case["points"].clone()).unwrap();
            for (index, timestep, sigma) in points {
                let (t, s) = scheduler.point(steps, index).unwrap();
                assert!(
                    (t - timestep).abs() <= timestep * 2f64.powi(-23),
                    "{scheduler:?} at {index}: timestep {t} vs {timestep}"
                );
                assert!((s - sigma).abs() <= sigma * 2f64.powi(-23), "{scheduler:?} at {index}: sigma {s} vs {sigma}");
            }
        }
    }

    #[test]
    fn schedulers_sana_sr_cannot_follow_are_refused_by_option() {
        let read = |json: &str| serde_json::from_str::<DiffusersScheduler>(json).unwrap();
        let karras = read(
            r#"{"_class_name": "DPMSolverMultistepScheduler", "use_flow_sigmas": true, "use_karras_sigmas": true}"#,
        );
        assert!(karras.point(1000, 900).unwrap_err().contains("use_karras_sigmas"));
        let vp = read(r#"{"_class_name": "DPMSolverMultistepScheduler"}"#);
        assert!(vp.point(1000, 900).unwrap_err().contains("use_flow_sigmas"));
        let euler = read(r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0}"#);
        assert!(euler.point(1000, 1000).unwrap_err().contains("index 1000"));
        assert!(serde_json::from_str::<DiffusersScheduler>(r#"{"_class_name": "DDIMScheduler"}"#).is_err());
    }
}

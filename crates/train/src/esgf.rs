//! ESGF, early-stopping guided fine-tuning (LinearSR, arXiv 2510.08771).
//!
//! Fine-tuning a linear-attention SR model first improves a validation metric, then plateaus, then
//! diverges. ESGF measures the metric every [`EsgfConfig::every_steps`] steps, keeps the checkpoint at the
//! *knee* of the curve (where the gains flatten out) and stops once the run is past the knee and no longer
//! improving, or as soon as it diverges, instead of spending steps on a model that only gets worse.
//!
//! The knee is found by Kneedle (Satopää et al., "Finding a 'Kneedle' in a Haystack", ICDCS workshops 2011):
//! normalise x and y to [0, 1], turn the curve into a rising one (gain), subtract the line between its ends,
//! and take the maximum of that difference curve. [`EarlyStopping`] runs it on the *running best* of the
//! metric rather than on a moving average: the running best is monotone as Kneedle assumes, ignores a
//! divergence tail that would otherwise stretch the normalisation, and its knee always falls on an
//! evaluation reported as [`Decision::NewBest`], whose checkpoint the trainer kept.

use serde::{Deserialize, Serialize};

/// Which way a validation metric improves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Lower is better: a validation loss, LPIPS, DISTS, NIQE.
    #[default]
    Minimize,
    /// Higher is better: PSNR, SSIM.
    Maximize,
}

impl Goal {
    /// Whether `value` is strictly better than `than`.
    fn is_better(self, value: f64, than: f64) -> bool {
        match self {
            Goal::Minimize => value < than,
            Goal::Maximize => value > than,
        }
    }

    /// Whether `value` is worse than `best` by more than `margin` times `|best|`.
    fn is_spike(self, value: f64, best: f64, margin: f64) -> bool {
        let allowance = margin * best.abs();
        match self {
            Goal::Minimize => value > best + allowance,
            Goal::Maximize => value < best - allowance,
        }
    }
}

/// The knee of a curve, as found by [`kneedle`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Knee {
    /// Index of the knee in the points given.
    pub index: usize,
    /// How far the normalised gain curve rises above the line between its ends there, in (0, 1]: how
    /// pronounced the knee is.
    pub difference: f64,
}

/// The least rise above the chord that counts as a knee: normalised values are in [0, 1], where rounding
/// leaves a straight line a few 1e-17 off its chord.
pub const MIN_KNEE_DIFFERENCE: f64 = 1e-12;

/// Kneedle: the point of a curve of diminishing returns after which further x buys little.
///
/// `points` are `(x, y)` with x ascending. The curve is expected to improve fast and then flatten: convex
/// and falling for [`Goal::Minimize`] (kneed's `curve="convex", direction="decreasing"`), concave and
/// rising for [`Goal::Maximize`] (`curve="concave", direction="increasing"`). x and y are normalised to
/// [0, 1], y is turned into a gain (`1 - y` when minimising), and the knee is the first maximum of
/// `gain - x`. This is Kneedle without its sensitivity threshold, which only decides whether a local
/// maximum is to be reported before the curve has been seen whole.
///
/// None for fewer than three points, a constant x or y, or a curve that never rises above the line
/// between its ends (no diminishing returns yet; a rise under [`MIN_KNEE_DIFFERENCE`] is rounding).
pub fn kneedle(points: &[(f64, f64)], goal: Goal) -> Option<Knee> {
    debug_assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "kneedle needs x ascending");
    if points.len() < 3 {
        return None;
    }
    let (x_first, x_last) = (points[0].0, points[points.len() - 1].0);
    let (y_min, y_max) =
        points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| (lo.min(y), hi.max(y)));
    if x_last <= x_first || y_max <= y_min {
        return None;
    }
    let mut knee: Option<Knee> = None;
    for (index, &(x, y)) in points.iter().enumerate() {
        let x = (x - x_first) / (x_last - x_first);
        let y = (y - y_min) / (y_max - y_min);
        let gain = match goal {
            Goal::Minimize => 1.0 - y,
            Goal::Maximize => y,
        };
        let difference = gain - x;
        if knee.is_none_or(|k| difference > k.difference) {
            knee = Some(Knee { index, difference });
        }
    }
    knee.filter(|k| k.difference >= MIN_KNEE_DIFFERENCE)
}

/// ESGF settings, the `[esgf]` table of a training config; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EsgfConfig {
    /// Which way the validation metric improves. Default: minimize (a validation loss).
    pub goal: Goal,
    /// Validate every this many training steps. Default 500: LinearSR's curves turn over within a few
    /// thousand steps, so this resolves the knee to a few evaluations while a validation pass stays a small
    /// part of the training time.
    pub every_steps: u64,
    /// Evaluations without a new best, once a knee exists, before stopping. Default 5: long enough to ride
    /// out validation noise, short against the plateau.
    pub patience: usize,
    /// A value worse than the best so far by more than this fraction of `|best|` is a spike. Default 0.1:
    /// validation noise on a fixed set stays well within 10%, a diverging model does not.
    pub divergence_margin: f64,
    /// Spikes in a row that mean divergence. Default 3: one bad evaluation is noise, three are a trend.
    pub divergence_patience: usize,
}

impl Default for EsgfConfig {
    fn default() -> Self {
        EsgfConfig {
            goal: Goal::Minimize,
            every_steps: 500,
            patience: 5,
            divergence_margin: 0.1,
            divergence_patience: 3,
        }
    }
}

impl EsgfConfig {
    /// Checks the values a TOML file may have got wrong.
    pub fn validate(&self) -> Result<(), EsgfError> {
        let invalid = |field, expected| Err(EsgfError::InvalidConfig { field, expected });
        if self.every_steps == 0 {
            return invalid("every_steps", "at least 1");
        }
        if self.patience == 0 {
            return invalid("patience", "at least 1");
        }
        if !(self.divergence_margin.is_finite() && self.divergence_margin >= 0.0) {
            return invalid("divergence_margin", "a finite fraction >= 0");
        }
        if self.divergence_patience == 0 {
            return invalid("divergence_patience", "at least 1");
        }
        Ok(())
    }

    /// Whether training step `step` (counted from 1) ends with a validation.
    pub fn is_validation_step(&self, step: u64) -> bool {
        step > 0 && step.is_multiple_of(self.every_steps)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EsgfError {
    #[error("esgf.{field} must be {expected}")]
    InvalidConfig { field: &'static str, expected: &'static str },
    #[error("validation at step {step} comes after one at step {last}: steps must increase")]
    StepNotIncreasing { step: u64, last: u64 },
}

/// One validation: the metric at a training step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub step: u64,
    pub value: f64,
}

/// Why [`EarlyStopping`] ended the run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum StopReason {
    /// The metric was NaN or infinite at `step`.
    NotFinite { step: u64 },
    /// The metric was a spike ([`EsgfConfig::divergence_margin`]) for
    /// [`EsgfConfig::divergence_patience`] evaluations in a row, the first at `since`.
    Diverged { since: u64 },
    /// No new best for [`EsgfConfig::patience`] evaluations, and the curve has its knee at step `knee`.
    PastKnee { knee: u64 },
}

/// What the trainer should do after a validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    Continue,
    /// The best value so far: keep this step's checkpoint, it may turn out to be the knee.
    NewBest,
    /// Stop training; keep the checkpoint of [`EarlyStopping::knee`].
    Stop(StopReason),
}

/// The ESGF state machine, fed each validation through [`EarlyStopping::observe`].
///
/// Its state is the validation history and the stop, if any; everything else is derived from them, so a
/// run resumed from the serialized state decides exactly as the uninterrupted run would, provided the
/// format gives floats back bit for bit: TOML does, serde_json only with its `float_roundtrip` feature
/// (without it, parsing may be off by an ulp).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    config: EsgfConfig,
    /// The finite evaluations, steps ascending.
    history: Vec<Evaluation>,
    stopped: Option<StopReason>,
}

impl EarlyStopping {
    pub fn new(config: EsgfConfig) -> Result<Self, EsgfError> {
        config.validate()?;
        Ok(EarlyStopping { config, history: Vec::new(), stopped: None })
    }

    pub fn config(&self) -> &EsgfConfig {
        &self.config
    }

    /// The finite evaluations seen so far.
    pub fn history(&self) -> &[Evaluation] {
        &self.history
    }

    pub fn stopped(&self) -> Option<StopReason> {
        self.stopped
    }

    /// Takes the metric measured at `step` and says what to do. Once stopped, it repeats the stop and
    /// records nothing more.
    pub fn observe(&mut self, step: u64, value: f64) -> Result<Decision, EsgfError> {
        if let Some(reason) = self.stopped {
            return Ok(Decision::Stop(reason));
        }
        if let Some(last) = self.history.last().filter(|last| step <= last.step) {
            return Err(EsgfError::StepNotIncreasing { step, last: last.step });
        }
        if !value.is_finite() {
            return Ok(self.stop(StopReason::NotFinite { step }));
        }
        let best = self.best();
        self.history.push(Evaluation { step, value });
        let Some(best) = best.filter(|best| !self.config.goal.is_better(value, best.value)) else {
            return Ok(Decision::NewBest);
        };
        let since_best = self.history.iter().filter(|e| e.step > best.step).count();
        let spikes = self
            .history
            .iter()
            .rev()
            .take_while(|e| self.config.goal.is_spike(e.value, best.value, self.config.divergence_margin))
            .count();
        if spikes >= self.config.divergence_patience {
            let since = self.history[self.history.len() - spikes].step;
            return Ok(self.stop(StopReason::Diverged { since }));
        }
        match self.knee() {
            Some(knee) if since_best >= self.config.patience => Ok(self.stop(StopReason::PastKnee { knee: knee.step })),
            _ => Ok(Decision::Continue),
        }
    }

    /// The same validation history judged under `config`: what a run would have decided with those settings
    /// from the start (a resumed run takes its config's settings, not the checkpoint's). A stop for a
    /// non-finite metric stands, since that value is not in the history.
    pub fn replayed(&self, config: EsgfConfig) -> Result<Self, EsgfError> {
        let mut replayed = Self::new(config)?;
        for e in &self.history {
            if let Decision::Stop(_) = replayed.observe(e.step, e.value)? {
                break;
            }
        }
        if let Some(reason @ StopReason::NotFinite { .. }) = self.stopped {
            replayed.stopped = Some(reason);
        }
        Ok(replayed)
    }

    fn stop(&mut self, reason: StopReason) -> Decision {
        self.stopped = Some(reason);
        Decision::Stop(reason)
    }

    /// The best evaluation so far (the first, on ties).
    pub fn best(&self) -> Option<Evaluation> {
        self.history
            .iter()
            .copied()
            .reduce(|best, e| if self.config.goal.is_better(e.value, best.value) { e } else { best })
    }

    /// The knee of the running best so far: the checkpoint to keep. None until the curve has bent (see
    /// [`kneedle`]); a metric that never improves has none, and the step limit ends such a run.
    pub fn knee(&self) -> Option<Evaluation> {
        let mut best = f64::NAN;
        let running_best: Vec<(f64, f64)> = self
            .history
            .iter()
            .map(|e| {
                if best.is_nan() || self.config.goal.is_better(e.value, best) {
                    best = e.value;
                }
                (e.step as f64, best)
            })
            .collect();
        kneedle(&running_best, self.config.goal).map(|knee| self.history[knee.index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn curve(xs: impl IntoIterator<Item = f64>, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        xs.into_iter().map(|x| (x, f(x))).collect()
    }

    fn steps(from: u64, to: u64, every: u64) -> impl Iterator<Item = f64> {
        (from..=to).step_by(every as usize).map(|s| s as f64)
    }

    fn knee_x(points: &[(f64, f64)], goal: Goal) -> f64 {
        points[kneedle(points, goal).expect("a knee").index].0
    }

    /// Feeds `(step, value)` pairs until a stop; returns every decision.
    fn run(esgf: &mut EarlyStopping, points: &[(u64, f64)]) -> Vec<(u64, Decision)> {
        let mut decisions = Vec::new();
        for &(step, value) in points {
            let decision = esgf.observe(step, value).unwrap();
            decisions.push((step, decision));
            if matches!(decision, Decision::Stop(_)) {
                break;
            }
        }
        decisions
    }

    fn config(goal: Goal, every_steps: u64) -> EsgfConfig {
        EsgfConfig { goal, every_steps, ..EsgfConfig::default() }
    }

    #[test]
    fn inverse_curve_has_its_knee_at_the_square_root_of_its_end() {
        // On [1, L] the normalised difference of y = 1/x is (x-1)(L-x)/(x(L-1)) ∝ L+1 - x - L/x, whose
        // maximum is at x = √L; for L = 100 the integer maximum is exactly 10 (9 and 11 give less).
        let points = curve(steps(1, 100, 1), |x| 1.0 / x);
        assert_eq!(knee_x(&points, Goal::Minimize), 10.0);
        // The same curve mirrored into a rising one has the same knee.
        let rising = curve(steps(1, 100, 1), |x| -1.0 / x);
        assert_eq!(knee_x(&rising, Goal::Maximize), 10.0);
    }

    #[test]
    fn exponential_decay_knee_is_where_its_slope_matches_the_chord() {
        // y = e^(-x/τ) on [0, L]: the normalised slope equals the chord's where x* = τ ln(L / (τ (1 - e^(-L/τ)))).
        // The difference curve is concave, so its grid maximum is a neighbour of x*: within one grid step.
        let (tau, length) = (20.0_f64, 200.0_f64);
        let expected = tau * (length / (tau * (1.0 - (-length / tau).exp()))).ln();
        let points = curve(steps(0, 200, 1), |x| (-x / tau).exp());
        let knee = knee_x(&points, Goal::Minimize);
        assert!((knee - expected).abs() < 1.0, "knee {knee}, x* {expected}");
    }

    #[test]
    fn piecewise_linear_curves_have_their_knee_at_the_break() {
        let loss = curve(steps(0, 5000, 100), |x| 1.0 - 0.9 * x.min(1200.0) / 1200.0);
        assert_eq!(knee_x(&loss, Goal::Minimize), 1200.0);
        let psnr = curve(steps(0, 5000, 100), |x| 20.0 + 6.0 * x.min(3000.0) / 3000.0);
        assert_eq!(knee_x(&psnr, Goal::Maximize), 3000.0);
    }

    #[test]
    fn curves_without_a_bend_have_no_knee() {
        assert_eq!(kneedle(&curve(steps(0, 10, 1), |x| 1.0 - x), Goal::Minimize), None, "a straight line");
        assert_eq!(kneedle(&curve(steps(0, 10, 1), |_| 0.5), Goal::Minimize), None, "a constant");
        assert_eq!(kneedle(&curve(steps(0, 10, 1), |x| 1.0 - x * x), Goal::Minimize), None, "accelerating");
        assert_eq!(kneedle(&[(0.0, 1.0), (1.0, 0.0)], Goal::Minimize), None, "two points");
    }

    #[test]
    fn kneedle_agrees_with_the_kneed_package() {
        // Python kneed 0.9.0 (numpy 2.4.6, scipy 1.17.1), default S=1.0 and interp_method="interp1d":
        //   x = np.arange(1, 101);                  KneeLocator(x, 1.0/x, curve="convex", direction="decreasing")
        //   x = np.arange(0, 20001, 500);           KneeLocator(x, 0.2 + 0.3*np.exp(-x/3000.0), curve="convex", direction="decreasing")
        //   x = np.arange(500, 20001, 500);         KneeLocator(x, 22.0 + 1.5*np.log(x/250.0), curve="concave", direction="increasing")
        // gave .knee = 10, 5500, 5500 and max(.y_difference) = 0.8181818181818181, 0.566190781742527,
        // 0.39362325718807367 (at the knee in each case).
        let cases = [
            (curve(steps(1, 100, 1), |x| 1.0 / x), Goal::Minimize, 10.0, 0.8181818181818181),
            (
                curve(steps(0, 20000, 500), |x| 0.2 + 0.3 * (-x / 3000.0).exp()),
                Goal::Minimize,
                5500.0,
                0.566190781742527,
            ),
            (
                curve(steps(500, 20000, 500), |x| 22.0 + 1.5 * (x / 250.0).ln()),
                Goal::Maximize,
                5500.0,
                0.39362325718807367,
            ),
        ];
        for (points, goal, kneed_x, kneed_difference) in cases {
            let knee = kneedle(&points, goal).unwrap();
            assert_eq!(points[knee.index].0, kneed_x);
            assert!((knee.difference - kneed_difference).abs() < 1e-12, "{} vs {kneed_difference}", knee.difference);
        }
    }

    #[test]
    fn stops_past_the_knee_after_patience_evaluations_without_improvement() {
        // Improves linearly to step 1200, then is flat: the knee is 1200, the last new best; five more
        // evaluations (1300..=1700) without a new best stop the run at 1700.
        let points: Vec<(u64, f64)> =
            (100..=5000).step_by(100).map(|s| (s, 1.0 - 0.9 * s.min(1200) as f64 / 1200.0)).collect();
        let mut esgf = EarlyStopping::new(config(Goal::Minimize, 100)).unwrap();
        let decisions = run(&mut esgf, &points);
        assert_eq!(decisions.last(), Some(&(1700, Decision::Stop(StopReason::PastKnee { knee: 1200 }))));
        assert!(decisions.iter().filter(|(s, _)| *s <= 1200).all(|(_, d)| *d == Decision::NewBest));
        assert!(decisions.iter().filter(|(s, _)| (1300..1700).contains(s)).all(|(_, d)| *d == Decision::Continue));
        assert_eq!(esgf.knee(), Some(Evaluation { step: 1200, value: 1.0 - 0.9 }));
        assert_eq!(esgf.best().map(|b| b.step), Some(1200));
    }

    /// A run stopped by patience 5 and replayed under patience 20 is running again, and replaying it under its
    /// own settings gives back the same state; a stop for a NaN stands under any settings.
    #[test]
    fn a_replayed_history_is_judged_by_the_new_settings() {
        let points: Vec<(u64, f64)> =
            (100..=1700).step_by(100).map(|s| (s, 1.0 - 0.9 * s.min(1200) as f64 / 1200.0)).collect();
        let mut esgf = EarlyStopping::new(config(Goal::Minimize, 100)).unwrap();
        run(&mut esgf, &points);
        assert!(esgf.stopped().is_some());
        let patient = esgf.replayed(EsgfConfig { patience: 20, ..config(Goal::Minimize, 100) }).unwrap();
        assert_eq!((patient.stopped(), patient.history()), (None, esgf.history()));
        assert_eq!(esgf.replayed(esgf.config().clone()).unwrap(), esgf);

        let mut diverged = EarlyStopping::new(config(Goal::Minimize, 100)).unwrap();
        run(&mut diverged, &[(100, 1.0), (200, f64::NAN)]);
        let replayed = diverged.replayed(EsgfConfig { patience: 20, ..config(Goal::Minimize, 100) }).unwrap();
        assert_eq!(replayed.stopped(), Some(StopReason::NotFinite { step: 200 }));
    }

    #[test]
    fn noisy_psnr_curve_finds_the_knee_within_one_evaluation() {
        // PSNR rising 6 dB to a break at step 3000 then flat, plus Gaussian noise of 0.1 dB: the knee of the
        // running best lands within one evaluation (±500 steps) of the break, on a new-best step. Seed 7 finds
        // 3000 exactly; over seeds 0..200 the worst was one evaluation off.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let noise = Normal::new(0.0, 0.1).unwrap();
        let points: Vec<(u64, f64)> = (500..=30000)
            .step_by(500)
            .map(|s| (s, 20.0 + 6.0 * s.min(3000) as f64 / 3000.0 + noise.sample(&mut rng)))
            .collect();
        let mut esgf = EarlyStopping::new(EsgfConfig { patience: 10, ..config(Goal::Maximize, 500) }).unwrap();
        let decisions = run(&mut esgf, &points);
        let knee = esgf.knee().unwrap();
        assert!(knee.step.abs_diff(3000) <= 500, "knee at {}", knee.step);
        assert!(decisions.contains(&(knee.step, Decision::NewBest)), "the knee's checkpoint was kept");
        assert!(matches!(esgf.stopped(), Some(StopReason::PastKnee { knee: k }) if k == knee.step));
    }

    #[test]
    fn divergence_stops_after_k_consecutive_spikes() {
        // A loss still falling slowly, so patience never runs out, that jumps 50% above its best from step
        // 3000 on: spikes at 3000, 3100, 3200 stop the run at 3200. Two earlier spikes that recover do not.
        let loss = |s: u64| 0.2 + 0.3 * (-(s as f64) / 800.0).exp();
        let points: Vec<(u64, f64)> = (100..=6000)
            .step_by(100)
            .map(|s| match s {
                1500 | 1600 => (s, loss(s) * 1.5),
                s if s >= 3000 => (s, loss(2900) * 1.5),
                s => (s, loss(s)),
            })
            .collect();
        let mut esgf = EarlyStopping::new(config(Goal::Minimize, 100)).unwrap();
        let decisions = run(&mut esgf, &points);
        assert_eq!(decisions.last(), Some(&(3200, Decision::Stop(StopReason::Diverged { since: 3000 }))));
        assert_eq!(esgf.best().map(|b| b.step), Some(2900));
        // A worse value within the margin is no spike.
        let mut calm = EarlyStopping::new(config(Goal::Minimize, 100)).unwrap();
        let within = [(100, 1.0), (200, 1.09), (300, 1.09), (400, 1.09)];
        assert!(run(&mut calm, &within).iter().all(|(_, d)| !matches!(d, Decision::Stop(_))));
    }

    #[test]
    fn psnr_divergence_counts_drops_as_spikes() {
        let mut esgf = EarlyStopping::new(config(Goal::Maximize, 1)).unwrap();
        let points = [(1, 25.0), (2, 26.0), (3, 23.0), (4, 22.0), (5, 21.0)];
        assert_eq!(run(&mut esgf, &points).last(), Some(&(5, Decision::Stop(StopReason::Diverged { since: 3 }))));
    }

    #[test]
    fn nan_or_infinity_stops_at_once_and_the_stop_sticks() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut esgf = EarlyStopping::new(EsgfConfig::default()).unwrap();
            assert_eq!(esgf.observe(500, 0.5), Ok(Decision::NewBest));
            assert_eq!(esgf.observe(1000, bad), Ok(Decision::Stop(StopReason::NotFinite { step: 1000 })));
            assert_eq!(esgf.observe(1500, 0.1), Ok(Decision::Stop(StopReason::NotFinite { step: 1000 })));
            assert_eq!(esgf.history().len(), 1);
        }
    }

    #[test]
    fn steps_must_increase() {
        let mut esgf = EarlyStopping::new(EsgfConfig::default()).unwrap();
        esgf.observe(500, 1.0).unwrap();
        let error = esgf.observe(500, 0.9).unwrap_err();
        assert_eq!(error, EsgfError::StepNotIncreasing { step: 500, last: 500 });
        assert!(error.to_string().contains("step 500"), "{error}");
    }

    #[test]
    fn a_metric_that_never_improves_has_no_knee_and_does_not_stop() {
        let mut esgf = EarlyStopping::new(config(Goal::Minimize, 1)).unwrap();
        let flat: Vec<(u64, f64)> = (1..=20).map(|s| (s, 1.0)).collect();
        assert!(run(&mut esgf, &flat).iter().skip(1).all(|(_, d)| *d == Decision::Continue));
        assert_eq!(esgf.knee(), None);
    }

    #[test]
    fn a_resumed_run_decides_exactly_as_an_uninterrupted_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let noise = Normal::new(0.0, 0.01).unwrap();
        let points: Vec<(u64, f64)> =
            (1..=200).map(|i| (i * 250, 0.3 + 0.5 * (-(i as f64) / 10.0).exp() + noise.sample(&mut rng))).collect();
        let mut whole = EarlyStopping::new(config(Goal::Minimize, 250)).unwrap();
        let expected = run(&mut whole, &points);
        assert!(expected.len() > 20, "the run stops after the resume point");

        let mut first = EarlyStopping::new(config(Goal::Minimize, 250)).unwrap();
        let decisions = run(&mut first, &points[..20]);
        // Both formats round-trip f64 exactly (serde_json through its `float_roundtrip` feature).
        let through_json: EarlyStopping = serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        let through_toml: EarlyStopping = toml::from_str(&toml::to_string(&first).unwrap()).unwrap();
        for mut resumed in [through_json, through_toml] {
            let mut decisions = decisions.clone();
            decisions.extend(run(&mut resumed, &points[20..]));
            assert_eq!(decisions, expected);
            assert_eq!(resumed, whole);
        }
    }

    #[test]
    fn config_reads_from_toml_with_defaults_and_is_checked() {
        let defaults: EsgfConfig = toml::from_str("").unwrap();
        assert_eq!(defaults, EsgfConfig::default());
        let psnr: EsgfConfig = toml::from_str("goal = \"maximize\"\npatience = 3").unwrap();
        assert_eq!(psnr, EsgfConfig { goal: Goal::Maximize, patience: 3, ..EsgfConfig::default() });
        assert!(toml::from_str::<EsgfConfig>("patiense = 3").is_err(), "a misspelt key is refused");
        let zero = EarlyStopping::new(EsgfConfig { patience: 0, ..EsgfConfig::default() }).unwrap_err();
        assert_eq!(zero.to_string(), "esgf.patience must be at least 1");
        let negative = EsgfConfig { divergence_margin: -0.1, ..EsgfConfig::default() };
        assert!(negative.validate().is_err());
        assert!(EsgfConfig { every_steps: 0, ..EsgfConfig::default() }.validate().is_err());
        assert!(EsgfConfig { divergence_patience: 0, ..EsgfConfig::default() }.validate().is_err());
    }

    #[test]
    fn validation_steps_are_multiples_of_the_interval() {
        let config = EsgfConfig { every_steps: 500, ..EsgfConfig::default() };
        let due: Vec<u64> = (0..=1600).filter(|&s| config.is_validation_step(s)).collect();
        assert_eq!(due, [500, 1000, 1500]);
    }
}

//! LinearSR's SNR-based experts: K DiTs, each trained on and run for one interval of noise levels, chosen by a
//! fixed rule on the step's noise level (no learned gate; one expert per step, so a step costs one dense pass).
//!
//! The intervals come either as explicit boundaries or from hierarchical bisection in log-SNR space
//! ([`scheduler::log_snr`]): an anchor splits a high-noise "structure" regime from a low-noise "refinement"
//! regime, then each part is halved in log-SNR, again until there are K. LinearSR's four experts split at
//! t = 0.223 / 0.875 / 0.939 of its convention (t = 1 is clean data), i.e. sigma = 0.777 / 0.125 / 0.061 here
//! (sigma = 1 is noise), with the anchor at sigma = 0.125; its naive baseline splits evenly at 0.25 / 0.5 / 0.75.
//! The paper's log-SNR range is not stated in what is known of it: [`PAPER_LOG_SNR_RANGE`] is the range whose
//! bisection gives back its published boundaries.

use sana_sr_model::layers::lora::{self, LoraConfig};
use serde::{Deserialize, Serialize};

use crate::scheduler;

/// The log-SNR range that, halved around LinearSR's anchor (sigma 0.125), gives its boundaries 0.777 and 0.061
/// to the three decimals it publishes them with (reconstructed from them: the midpoints of the two halves are
/// `log_snr(0.777)` and `log_snr(0.061)`).
pub const PAPER_LOG_SNR_RANGE: [f64; 2] = [-8.88, 7.04];

/// LinearSR's anchor between its structure and refinement regimes, as a noise level.
pub const PAPER_ANCHOR_SIGMA: f64 = 0.125;

/// How the experts' weights are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpertKind {
    /// K full copies of the DiT, stored under `experts.{k}.` with diffusers' keys after it.
    Full,
    /// One DiT (under `transformer.`) shared by K LoRA adapter sets, one per expert, on the layers that
    /// [`ExpertsConfig::lora`] selects: `<layer>.lora_A.expert_{k}.weight` and `lora_B` beside each weight.
    /// A step costs the DiT and one adapter set; the file holds the DiT once.
    Lora,
}

/// Intervals from hierarchical bisection in log-SNR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bisection {
    /// Number of experts: a power of two, at least 2.
    pub count: usize,
    /// The first split, as a noise level.
    pub anchor: f64,
    /// The log-SNR range that is split, `[low, high]`; the anchor's log-SNR lies inside it.
    pub log_snr: [f64; 2],
}

/// A model's experts, in its config: `{"kind": "full", "boundaries": [0.75, 0.5, 0.25]}`,
/// `{"kind": "full", "bisection": {"count": 4, "anchor": 0.125, "log_snr": [-8.88, 7.04]}}` or
/// `{"kind": "lora", "lora": {"rank": 8, "alpha": 8}, "boundaries": [0.5]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpertsConfig {
    pub kind: ExpertKind,
    /// The adapters of LoRA experts (rank, alpha, targets as a LoRA fine-tuning's); only with `kind = "lora"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// Noise levels where one expert hands over to the next, in (0, 1); any order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boundaries: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bisection: Option<Bisection>,
}

impl ExpertsConfig {
    /// The boundaries as noise levels, from the highest down, after checking the config.
    pub fn sigma_boundaries(&self) -> Result<Vec<f64>, String> {
        match (self.kind, &self.lora) {
            (ExpertKind::Lora, None) => return Err("LoRA experts need a `lora` section (rank, alpha)".into()),
            (ExpertKind::Full, Some(_)) => return Err("full experts take no `lora` section".into()),
            _ => {}
        }
        let mut sigmas = match (&self.boundaries[..], &self.bisection) {
            ([], Some(b)) => b.boundaries()?,
            ([_, ..], None) => self.boundaries.clone(),
            _ => return Err("experts need either `boundaries` or a `bisection`, not both or neither".into()),
        };
        if let Some(bad) = sigmas.iter().find(|s| !(**s > 0.0 && **s < 1.0)) {
            return Err(format!("expert boundary {bad} is not a noise level inside (0, 1)"));
        }
        sigmas.sort_by(|a, b| b.total_cmp(a));
        if sigmas.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("expert boundaries {sigmas:?} repeat a value"));
        }
        Ok(sigmas)
    }

    /// Number of experts.
    pub fn count(&self) -> Result<usize, String> {
        Ok(self.sigma_boundaries()?.len() + 1)
    }

    /// The routing rule of these experts.
    pub fn router(&self) -> Result<Router, String> {
        Ok(Router { boundaries: self.sigma_boundaries()? })
    }

    /// Whether the model variable `name` may train while expert `k` trains alone: not if it belongs to
    /// another expert, nor, with LoRA experts, if it is the DiT that every expert shares.
    pub fn trains_with_expert(&self, name: &str, k: usize) -> bool {
        match self.kind {
            ExpertKind::Full => match name.strip_prefix("experts.").and_then(|rest| rest.split_once('.')) {
                Some((j, _)) => j == k.to_string(),
                None => true,
            },
            ExpertKind::Lora => !name.starts_with("transformer.") || lora::expert_of_variable(name) == Some(k),
        }
    }
}

impl Bisection {
    /// The K - 1 boundaries as noise levels (any order).
    fn boundaries(&self) -> Result<Vec<f64>, String> {
        let [low, high] = self.log_snr;
        if !(self.count >= 2 && self.count.is_power_of_two() && self.count <= 64) {
            return Err(format!("a bisection needs a power-of-two count of experts from 2 to 64, not {}", self.count));
        }
        let anchor = scheduler::log_snr(self.anchor);
        if !(low.is_finite() && high.is_finite() && low < anchor && anchor < high) {
            return Err(format!(
                "the anchor's log-SNR {anchor:.3} (sigma {}) must lie inside the range [{low}, {high}]",
                self.anchor
            ));
        }
        // Interval edges in log-SNR, ascending; each round inserts every interval's midpoint.
        let mut edges = vec![low, anchor, high];
        while edges.len() - 1 < self.count {
            let mut finer = Vec::with_capacity(2 * edges.len() - 1);
            for w in edges.windows(2) {
                finer.extend([w[0], (w[0] + w[1]) / 2.0]);
            }
            finer.push(high);
            edges = finer;
        }
        Ok(edges[1..edges.len() - 1].iter().map(|&l| scheduler::sigma_of_log_snr(l)).collect())
    }
}

/// Which expert runs a step: a pure function of the step's noise level.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    /// From the highest noise level down.
    boundaries: Vec<f64>,
}

impl Router {
    /// The expert for noise level `sigma`: 0 for the noisiest interval, counting up towards the clean end. A
    /// boundary itself belongs to the noisier expert: expert k covers `[b_{k+1}, b_k)` (expert 0 up to and
    /// including 1, the last down to 0).
    pub fn expert(&self, sigma: f64) -> usize {
        self.boundaries.iter().take_while(|&&b| b > sigma).count()
    }

    /// The `[low, high]` noise levels of each expert, expert 0 first.
    pub fn intervals(&self) -> Vec<(f64, f64)> {
        let edges: Vec<f64> = [1.0].into_iter().chain(self.boundaries.iter().copied()).chain([0.0]).collect();
        edges.windows(2).map(|w| (w[1], w[0])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper() -> ExpertsConfig {
        let bisection = Bisection { count: 4, anchor: PAPER_ANCHOR_SIGMA, log_snr: PAPER_LOG_SNR_RANGE };
        ExpertsConfig { kind: ExpertKind::Full, lora: None, boundaries: vec![], bisection: Some(bisection) }
    }

    #[test]
    fn bisection_gives_back_linearsr_boundaries() {
        let sigmas = paper().sigma_boundaries().unwrap();
        // In LinearSR's convention t = 1 - sigma: 0.223, 0.875, 0.939, to its three decimals.
        let t: Vec<f64> = sigmas.iter().map(|s| 1.0 - s).collect();
        for (got, want) in t.iter().zip([0.223, 0.875, 0.939]) {
            assert!((got - want).abs() < 0.0005, "{t:?}");
        }
        // The anchor is exact; the outer boundaries are the log-SNR midpoints of the two halves.
        assert_eq!(sigmas[1], scheduler::sigma_of_log_snr(scheduler::log_snr(0.125)));
        let mid = |a: f64, b: f64| scheduler::sigma_of_log_snr((a + b) / 2.0);
        assert_eq!(sigmas[0], mid(-8.88, scheduler::log_snr(0.125)));
    }

    #[test]
    fn two_experts_split_at_the_anchor_and_eight_halve_again() {
        let mut config = paper();
        config.bisection.as_mut().unwrap().count = 2;
        let two = config.sigma_boundaries().unwrap();
        assert_eq!(two.len(), 1);
        assert!((two[0] - 0.125).abs() < 1e-12);
        config.bisection.as_mut().unwrap().count = 8;
        let eight = config.sigma_boundaries().unwrap();
        assert_eq!(eight.len(), 7);
        let four = paper().sigma_boundaries().unwrap();
        assert!(four.iter().all(|b| eight.iter().any(|e| (e - b).abs() < 1e-12)), "{four:?} within {eight:?}");
        // Equal steps in log-SNR.
        let lambdas: Vec<f64> = eight.iter().map(|&s| scheduler::log_snr(s)).collect();
        let (low, anchor) = (-8.88, scheduler::log_snr(0.125));
        for (i, l) in lambdas[..3].iter().enumerate() {
            assert!((l - (low + (anchor - low) * (i + 1) as f64 / 4.0)).abs() < 1e-9, "{lambdas:?}");
        }
    }

    #[test]
    fn routing_at_and_around_every_boundary() {
        let uniform =
            ExpertsConfig { kind: ExpertKind::Full, lora: None, boundaries: vec![0.25, 0.75, 0.5], bisection: None };
        let router = uniform.router().unwrap();
        assert_eq!(router.intervals(), [(0.75, 1.0), (0.5, 0.75), (0.25, 0.5), (0.0, 0.25)]);
        for (k, (low, high)) in router.intervals().into_iter().enumerate() {
            let below = |x: f64| x - 1e-12;
            assert_eq!(router.expert(high.min(1.0)), if k == 0 { 0 } else { k - 1 }, "at the top of {k}");
            assert_eq!(router.expert(below(high)), k, "just under the top of {k}");
            assert_eq!(router.expert(low + 1e-12), k, "just over the bottom of {k}");
            assert_eq!(router.expert((low + high) / 2.0), k);
        }
        assert_eq!(router.expert(1.0), 0);
        assert_eq!(router.expert(0.0), 3);
        let paper = paper().router().unwrap();
        for (sigma, k) in [(0.95, 0), (0.78, 0), (0.776, 1), (0.3, 1), (0.126, 1), (0.1, 2), (0.062, 2), (0.06, 3)] {
            assert_eq!(paper.expert(sigma), k, "sigma {sigma}");
        }
    }

    #[test]
    fn bad_splits_are_refused_naming_the_problem() {
        let with =
            |boundaries: Vec<f64>| ExpertsConfig { kind: ExpertKind::Full, lora: None, boundaries, bisection: None };
        assert!(with(vec![]).sigma_boundaries().unwrap_err().contains("either"));
        assert!(with(vec![0.5, 1.0]).sigma_boundaries().unwrap_err().contains("inside (0, 1)"));
        assert!(with(vec![0.5, 0.5]).sigma_boundaries().unwrap_err().contains("repeat"));
        let mut three = paper();
        three.bisection.as_mut().unwrap().count = 3;
        assert!(three.sigma_boundaries().unwrap_err().contains("power-of-two"));
        let mut outside = paper();
        outside.bisection.as_mut().unwrap().anchor = 0.0001;
        assert!(outside.sigma_boundaries().unwrap_err().contains("must lie inside"));
        let mut both = paper();
        both.boundaries = vec![0.5];
        assert!(both.sigma_boundaries().unwrap_err().contains("not both"));
        let json = r#"{"kind": "full", "boundaries": [0.5], "gate": "learned"}"#;
        assert!(serde_json::from_str::<ExpertsConfig>(json).unwrap_err().to_string().contains("gate"));
        let read = |json: &str| serde_json::from_str::<ExpertsConfig>(json).unwrap().sigma_boundaries();
        assert!(read(r#"{"kind": "lora", "boundaries": [0.5]}"#).unwrap_err().contains("need a `lora` section"));
        let lora = r#""lora": {"rank": 4, "alpha": 4}, "boundaries": [0.5]"#;
        assert!(read(&format!(r#"{{"kind": "full", {lora}}}"#)).unwrap_err().contains("take no `lora`"));
        assert_eq!(read(&format!(r#"{{"kind": "lora", {lora}}}"#)).unwrap(), [0.5]);
    }

    #[test]
    fn an_expert_trains_alone_on_its_own_variables() {
        let full = ExpertsConfig { kind: ExpertKind::Full, lora: None, boundaries: vec![0.5], bisection: None };
        assert!(full.trains_with_expert("experts.1.transformer_blocks.0.attn1.to_q.weight", 1));
        assert!(!full.trains_with_expert("experts.0.transformer_blocks.0.attn1.to_q.weight", 1));
        assert!(!full.trains_with_expert("experts.10.proj_out.weight", 1));
        assert!(full.trains_with_expert("lr_stem.layers.0.weight", 1));
        let lora = ExpertsConfig {
            kind: ExpertKind::Lora,
            lora: Some(serde_json::from_str(r#"{"rank": 2, "alpha": 2}"#).unwrap()),
            ..full
        };
        assert!(lora.trains_with_expert("transformer.transformer_blocks.0.attn1.to_q.lora_B.expert_1.weight", 1));
        assert!(!lora.trains_with_expert("transformer.transformer_blocks.0.attn1.to_q.lora_B.expert_0.weight", 1));
        assert!(!lora.trains_with_expert("transformer.transformer_blocks.0.attn1.to_q.weight", 1), "the shared DiT");
        assert!(lora.trains_with_expert("condition", 1));
    }
}

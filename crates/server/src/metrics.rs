//! `GET /metrics`: the service in Prometheus' text format: jobs waiting, jobs by how they ended, and the
//! seconds a job runs per output megapixel.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
    Cancelled,
    /// Refused with 429: the queue was full.
    Rejected,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    queue: Gauge,
    jobs: Family<OutcomeLabel, Counter>,
    seconds_per_megapixel: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sana_sr");
        let queue = Gauge::default();
        let jobs = Family::<OutcomeLabel, Counter>::default();
        // 0.05 s to ~100 s per megapixel: a GPU's speed to a small CPU's on the largest model.
        let seconds_per_megapixel = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register("queue_length", "Jobs waiting for a worker, uploads being read included", queue.clone());
        registry.register("jobs", "Jobs by how they ended", jobs.clone());
        registry.register(
            "seconds_per_megapixel",
            "Seconds a job ran (decode, upscale, encode) per megapixel of its output",
            seconds_per_megapixel.clone(),
        );
        Self { registry, queue, jobs, seconds_per_megapixel }
    }
}

impl Metrics {
    pub fn ended(&self, outcome: Outcome) {
        self.jobs.get_or_create(&OutcomeLabel { outcome: outcome.label() }).inc();
    }

    pub fn seconds_per_megapixel(&self, seconds: f64) {
        self.seconds_per_megapixel.observe(seconds);
    }

    /// The text exposition, with the queue's length as it is now.
    pub fn render(&self, queue_length: usize) -> String {
        self.queue.set(queue_length as i64);
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String does not fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_the_queue_outcomes_and_speed() {
        let metrics = Metrics::default();
        metrics.ended(Outcome::Done);
        metrics.ended(Outcome::Rejected);
        metrics.ended(Outcome::Rejected);
        metrics.seconds_per_megapixel(0.7);
        let text = metrics.render(3);
        assert!(text.contains("sana_sr_queue_length 3"), "{text}");
        assert!(text.contains("sana_sr_jobs_total{outcome=\"done\"} 1"), "{text}");
        assert!(text.contains("sana_sr_jobs_total{outcome=\"rejected\"} 2"), "{text}");
        assert!(text.contains("sana_sr_seconds_per_megapixel_count 1"), "{text}");
    }
}

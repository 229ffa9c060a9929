//! Training SANA-SR models.
//!
//! - [`schedule`]: the learning rate as a function of the step (linear warm-up, cosine decay to a floor).

pub mod schedule;

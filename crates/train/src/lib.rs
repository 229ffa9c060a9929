//! Training SANA-SR models.
//!
//! - [`esgf`]: early-stopping guided fine-tuning: the knee of the validation curve and the onset of
//!   divergence decide which checkpoint to keep and when to stop.
//! - [`schedule`]: the learning rate as a function of the step (linear warm-up, cosine decay to a floor).
//! - [`log`]: the CSV training log that survives resume, and its PNG plot.
//! - [`teacher`]: frozen models whose outputs are targets beside the HR image (distillation).
//! - [`testing`]: a textured pool and a tiny model for tests of training, here and in the command line's.

pub mod config;
pub mod discriminator;
pub mod esgf;
pub mod log;
pub mod losses;
pub mod optim;
pub mod schedule;
pub mod teacher;
pub mod testing;
pub mod trainer;

//! The evaluation harness of sana-sr: the benchmark sets ([`dataset`]), their inputs ([`inputs`]), the
//! methods compared ([`method`]), the scoring loop ([`harness`]), its per-image record ([`record`]) and its outputs ([`report`],
//! [`panel`]).

pub mod dataset;
pub mod harness;
pub mod inputs;
pub mod method;
pub mod panel;
pub mod record;
pub mod report;

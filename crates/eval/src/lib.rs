//! The evaluation harness of sana-sr: the benchmark sets ([`dataset`]), their inputs ([`inputs`]), the
//! methods compared ([`method`]), MATLAB's 8-bit bicubic ([`matlab_uint8`]), the scoring loop ([`harness`]) and its outputs ([`report`], [`panel`]).

pub mod dataset;
pub mod harness;
pub mod inputs;
pub mod matlab_uint8;
pub mod method;
pub mod panel;
pub mod report;

//! Resizing: MATLAB-compatible `imresize` (what every SR benchmark makes its LR images with, and what NIQE
//! uses) and torch-style interpolation (what the Real-ESRGAN degradation pipeline uses).

pub mod interpolate;
pub mod matlab;

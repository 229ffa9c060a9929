//! Data of sana-sr: images in and out, resizing, degradations and training pairs.

pub mod image;
pub mod resize;

pub use image::Image;

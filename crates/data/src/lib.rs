//! Data of sana-sr: images in and out, resizing, degradations and training pairs.

pub mod image;

pub use image::Image;

//! Data of sana-sr: images in and out, resizing, degradations and training pairs.

pub mod degradations;
pub mod image;
pub mod io;
pub mod loader;
pub mod metadata;
pub mod pairs;
pub mod pool;
pub mod resize;
pub mod sets;
pub mod tensor;
mod tiff_fields;
mod webp;

pub use image::Image;

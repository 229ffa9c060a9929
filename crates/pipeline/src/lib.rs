//! The one-step super-resolution pipeline.

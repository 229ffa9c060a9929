//! The benchmark and test sets of `shared/datasets`, by folder name: the one list the training pool (which
//! must never take an image from them) and the evaluation harness (which scores on them) share.

/// The sets `sana-sr eval` scores on (SunHays80 is left out: it is the training set).
pub const EVAL_SETS: [&str; 8] =
    ["Set5", "Set14", "CBSD68", "ImageNet-ValSR", "RealSR-LR4", "RealSet65", "RealSet80", "RealSRSet+5images"];

/// Further benchmark sets that are not evaluated here but are never training data either.
pub const OTHER_TEST_SETS: [&str; 3] = ["DIV2K_valid_HR", "Urban100", "Manga109"];

/// Every benchmark and test set: never training data.
pub fn test_sets() -> impl Iterator<Item = &'static str> {
    EVAL_SETS.into_iter().chain(OTHER_TEST_SETS)
}

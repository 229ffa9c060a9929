//! Evaluation sets on disk: which images a set has, where each one's LR input comes from and whether it has
//! a ground truth.
//!
//! Three layouts occur in the benchmark folders (`shared/datasets`):
//! - **paired**: an HR folder (`HR/`, `GT/`, `gt/`, …) beside an LR folder (`LR_bicubic/X4/`, `LQ/`, `lq/`,
//!   …), matched by file stem; an LR stem may carry the EDSR-style scale suffix (`babyx4` ↔ `baby`);
//! - **HR only**, a flat folder (CBSD68): the LR input is made from the HR image by the field's convention,
//!   mod-crop to a multiple of the scale then MATLAB bicubic downscaling;
//! - **LR only**, a flat folder of real low-quality photos (RealSR, RealSet65, …): no-reference metrics only.
//!
//! A flat folder does not say whether it holds HR or LR images, so each set names its [`FlatRole`]; the
//! sets this project evaluates on are listed in [`KNOWN_SETS`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sana_sr_data::io::has_image_extension;
use sana_sr_data::sets::EVAL_SETS;

/// What the images of a flat (unpaired) folder are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlatRole {
    /// Ground-truth images: LR inputs are made by downscaling them.
    HighResolution,
    /// Low-quality inputs without ground truth.
    LowResolution,
}

/// What the flat folder of each of [`EVAL_SETS`] holds, in that list's order: the benchmark photos, then
/// the real low-quality photos. Paired folders ignore the role.
const FLAT_ROLES: [FlatRole; EVAL_SETS.len()] = {
    use FlatRole::{HighResolution as Hr, LowResolution as Lr};
    [Hr, Hr, Hr, Hr, Lr, Lr, Lr, Lr]
};

/// The evaluation sets of `shared/datasets` ([`EVAL_SETS`]) and what their flat folders hold.
pub const KNOWN_SETS: &[(&str, FlatRole)] = &{
    let mut sets = [("", FlatRole::HighResolution); EVAL_SETS.len()];
    let mut i = 0;
    while i < sets.len() {
        sets[i] = (EVAL_SETS[i], FLAT_ROLES[i]);
        i += 1;
    }
    sets
};

/// Sub-folders that hold ground truth in a paired layout, most specific first (matched case-insensitively).
const HR_DIRS: &[&str] = &["HR", "GT", "GTmod4", "target"];
/// Sub-folders that hold the x4 inputs in a paired layout, most specific first (matched case-insensitively).
const LR_DIRS: &[&str] = &["LR_bicubic/X4", "LRbicx4", "LR", "LQ", "input"];

/// Where a sample's LR input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LrSource {
    /// An LR image file shipped with the set.
    File(PathBuf),
    /// Made from the HR image: mod-crop to a multiple of the scale, then MATLAB bicubic downscaling.
    BicubicFromHr,
}

/// One image of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The image's name in reports and file names: the HR file stem, or the LR stem without GT.
    pub name: String,
    pub lr: LrSource,
    pub hr: Option<PathBuf>,
}

impl Sample {
    /// The stem an external tool run over the LR inputs names its output after: the LR file's stem, or the
    /// sample name when the LR image is generated (that is the name `--export-lr` writes it under).
    pub fn lr_stem(&self) -> &str {
        match &self.lr {
            LrSource::File(path) => path.file_stem().and_then(|s| s.to_str()).unwrap_or(&self.name),
            LrSource::BicubicFromHr => &self.name,
        }
    }
}

/// An evaluation set: its name and its samples, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalSet {
    pub name: String,
    pub samples: Vec<Sample>,
    /// Files of the set that could not be used (an LR without HR, or the reverse), with the reason.
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("set folder {path} cannot be listed: {source}")]
    List { path: PathBuf, source: std::io::Error },
    #[error("set folder {path} holds no images")]
    Empty { path: PathBuf },
    #[error("unknown set {name:?} (known: {known})")]
    Unknown { name: String, known: String },
    #[error("set folder {path} is not one of the known sets, so it needs ground truth and LR sub-folders (gt/ and lq/, or HR/ and LR_bicubic/X4/; `sana-sr data make-pairs` writes such a set)")]
    UnpairedCustom { path: PathBuf },
}

/// The role of a known set's flat folder.
pub fn known_role(name: &str) -> Result<FlatRole, DatasetError> {
    KNOWN_SETS.iter().find(|(known, _)| *known == name).map(|(_, role)| *role).ok_or_else(|| DatasetError::Unknown {
        name: name.to_owned(),
        known: KNOWN_SETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
    })
}

/// Lists the set `name` in folder `dir`: a known set as [`known_role`] says, any other only when it is paired,
/// since a flat folder does not say whether it holds HR or LR images.
pub fn open(name: &str, dir: &Path, scale: usize) -> Result<EvalSet, DatasetError> {
    match known_role(name) {
        Ok(role) => discover(name, dir, role, scale),
        Err(_) if find_subdir(dir, HR_DIRS).is_some() && find_subdir(dir, LR_DIRS).is_some() => {
            discover(name, dir, FlatRole::LowResolution, scale)
        }
        Err(_) if dir.is_dir() => Err(DatasetError::UnpairedCustom { path: dir.to_path_buf() }),
        Err(unknown) => Err(unknown),
    }
}

/// Lists the set in folder `dir` under `name`, detecting its layout; `flat_role` says what a flat folder
/// holds. `scale` is the SR factor, used to recognise LR stems such as `babyx4`.
pub fn discover(name: &str, dir: &Path, flat_role: FlatRole, scale: usize) -> Result<EvalSet, DatasetError> {
    let hr_dir = find_subdir(dir, HR_DIRS);
    let lr_dir = find_subdir(dir, LR_DIRS);
    let set = match (hr_dir, lr_dir) {
        (Some(hr_dir), Some(lr_dir)) => paired(name, &hr_dir, &lr_dir, scale)?,
        _ => {
            let samples = images_in(dir)?
                .into_iter()
                .map(|(stem, path)| match flat_role {
                    FlatRole::HighResolution => Sample { name: stem, lr: LrSource::BicubicFromHr, hr: Some(path) },
                    FlatRole::LowResolution => Sample { name: stem, lr: LrSource::File(path), hr: None },
                })
                .collect();
            EvalSet { name: name.to_owned(), samples, skipped: Vec::new() }
        }
    };
    if set.samples.is_empty() {
        return Err(DatasetError::Empty { path: dir.to_path_buf() });
    }
    Ok(set)
}

/// Pairs HR and LR files by stem; an LR stem may end in the scale suffix (`x4`, `_x4`, `_LR4`).
fn paired(name: &str, hr_dir: &Path, lr_dir: &Path, scale: usize) -> Result<EvalSet, DatasetError> {
    let mut hr = images_in(hr_dir)?;
    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    for (lr_stem, lr_path) in images_in(lr_dir)? {
        match hr_stem_of(&lr_stem, scale).into_iter().find_map(|stem| hr.remove_entry(&stem)) {
            Some((stem, hr_path)) => {
                samples.push(Sample { name: stem, lr: LrSource::File(lr_path), hr: Some(hr_path) })
            }
            None => skipped.push(format!("{}: no ground truth in {}", lr_path.display(), hr_dir.display())),
        }
    }
    skipped.extend(hr.values().map(|path| format!("{}: no LR input in {}", path.display(), lr_dir.display())));
    samples.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(EvalSet { name: name.to_owned(), samples, skipped })
}

/// The HR stems an LR stem may belong to, most likely first.
fn hr_stem_of(lr_stem: &str, scale: usize) -> Vec<String> {
    let suffixes = [format!("x{scale}"), format!("_x{scale}"), format!("_LR{scale}"), format!("_lr{scale}")];
    std::iter::once(lr_stem.to_owned())
        .chain(suffixes.iter().filter_map(|suffix| lr_stem.strip_suffix(suffix.as_str()).map(str::to_owned)))
        .collect()
}

/// The first of `candidates` (relative paths, matched case-insensitively component by component) that is
/// a folder under `dir`.
fn find_subdir(dir: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().find_map(|candidate| {
        candidate.split('/').try_fold(dir.to_path_buf(), |path, component| {
            let entries = std::fs::read_dir(&path).ok()?;
            entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.eq_ignore_ascii_case(component))
            })
        })
    })
}

/// The image files directly in `dir`, by stem (sorted). Other files (README.md, .DS_Store) are ignored.
fn images_in(dir: &Path) -> Result<BTreeMap<String, PathBuf>, DatasetError> {
    let list_error = |source| DatasetError::List { path: dir.to_path_buf(), source };
    let mut images = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        let is_image = has_image_extension(&path);
        if let (true, true, Some(stem)) = (is_image, path.is_file(), path.file_stem().and_then(|s| s.to_str())) {
            images.insert(stem.to_owned(), path.clone());
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    #[test]
    fn edsr_benchmark_layout_pairs_by_stem_without_scale_suffix() {
        let root = tempfile::tempdir().unwrap();
        for name in ["HR/baby.png", "HR/bird.png", "HR/lonely.png", "LR_bicubic/X4/babyx4.png"] {
            touch(&root.path().join(name));
        }
        touch(&root.path().join("LR_bicubic/X4/birdx4.png"));
        touch(&root.path().join("LR_bicubic/X4/strayx4.png"));
        touch(&root.path().join("README.md"));
        let set = discover("Set5", root.path(), FlatRole::HighResolution, 4).unwrap();
        let names: Vec<_> = set.samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["baby", "bird"]);
        assert_eq!(set.samples[0].lr, LrSource::File(root.path().join("LR_bicubic/X4/babyx4.png")));
        assert_eq!(set.samples[0].hr, Some(root.path().join("HR/baby.png")));
        assert_eq!(set.samples[0].lr_stem(), "babyx4");
        assert_eq!(set.skipped.len(), 2, "{:?}", set.skipped);
        assert!(set.skipped.iter().any(|s| s.contains("strayx4.png") && s.contains("no ground truth")));
        assert!(set.skipped.iter().any(|s| s.contains("lonely.png") && s.contains("no LR input")));
    }

    #[test]
    fn gt_lq_layout_pairs_equal_stems() {
        let root = tempfile::tempdir().unwrap();
        for name in ["gt/a.png", "gt/b.png", "lq/a.png", "lq/b.png"] {
            touch(&root.path().join(name));
        }
        let set = discover("ImageNet-ValSR", root.path(), FlatRole::LowResolution, 4).unwrap();
        assert_eq!(set.samples.len(), 2);
        assert!(set.samples.iter().any(|s| s.hr.is_some()));
        assert_eq!(set.samples[1].hr, Some(root.path().join("gt/b.png")));
        assert!(set.skipped.is_empty());
    }

    #[test]
    fn flat_folders_follow_their_role() {
        let root = tempfile::tempdir().unwrap();
        for name in ["2.JPG", "1.png", "notes.txt", "README.md"] {
            touch(&root.path().join(name));
        }
        fs::create_dir(root.path().join("sub")).unwrap();
        let hr = discover("CBSD68", root.path(), FlatRole::HighResolution, 4).unwrap();
        assert_eq!(hr.samples.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(hr.samples[0].lr, LrSource::BicubicFromHr);
        assert_eq!(hr.samples[0].lr_stem(), "1");
        assert!(hr.samples.iter().all(|s| s.hr.is_some()));
        let lr = discover("RealSet65", root.path(), FlatRole::LowResolution, 4).unwrap();
        assert_eq!(lr.samples[1].lr, LrSource::File(root.path().join("2.JPG")));
        assert!(lr.samples.iter().all(|s| s.hr.is_none()));
    }

    #[test]
    fn empty_or_missing_folders_are_errors() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(discover("x", root.path(), FlatRole::LowResolution, 4), Err(DatasetError::Empty { .. })));
        assert!(matches!(
            discover("x", &root.path().join("absent"), FlatRole::LowResolution, 4),
            Err(DatasetError::List { .. })
        ));
        assert!(matches!(known_role("Urban100"), Err(DatasetError::Unknown { .. })));
        assert_eq!(known_role("CBSD68").unwrap(), FlatRole::HighResolution);
    }

    #[test]
    fn a_set_of_ones_own_must_be_paired() {
        let root = tempfile::tempdir().unwrap();
        for name in ["held-out/gt/a.png", "held-out/lq/a.png", "flat/a.png", "CBSD68/a.png"] {
            touch(&root.path().join(name));
        }
        let set = open("held-out", &root.path().join("held-out"), 4).unwrap();
        assert_eq!(set.samples[0].hr, Some(root.path().join("held-out/gt/a.png")));
        assert!(matches!(open("flat", &root.path().join("flat"), 4), Err(DatasetError::UnpairedCustom { .. })));
        assert!(matches!(open("absent", &root.path().join("absent"), 4), Err(DatasetError::Unknown { .. })));
        let known = open("CBSD68", &root.path().join("CBSD68"), 4).unwrap();
        assert_eq!(known.samples[0].lr, LrSource::BicubicFromHr);
    }
}

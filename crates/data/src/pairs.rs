//! Paired test sets made by the degradation pipeline: centre crops of HR photos in `gt/` and their degraded
//! LR images in `lq/`, the layout (and the recipe) of ResShift's ImageNet-ValSR, so that `sana-sr eval`
//! can score a model on photos and degradations of one's choosing — for instance on the photos a training
//! run held out, under the degradation it trained with, to tell fitting the training data from
//! generalising beyond it.

use std::path::{Path, PathBuf};

use sana_sr_core::Device;

use crate::degradations::pipeline::pair_rng;
use crate::degradations::{Degradation, DegradeError};
use crate::io::{read_image, write_image, Encoding, IoError, WriteOptions};
use crate::tensor::{to_image, to_tensor};

/// How [`write_pairs`] makes its pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairOptions {
    /// Side of the centre HR crop (a multiple of the degradation's scale).
    pub crop: usize,
    /// Degraded versions of each photo (each its own draw); more than one names them `<stem>_<k>`.
    pub variants: usize,
    /// Pair `i` (photos in the given order, their variants in turn) is drawn by `pair_rng(seed, i)`.
    pub seed: u64,
    /// Replace pairs already in the output folder (otherwise a folder holding any is an error).
    pub overwrite: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    #[error(
        "crop {crop} must be a multiple of the scale {scale} and at least {min} (the degradation's smallest input)"
    )]
    Crop { crop: usize, scale: usize, min: usize },
    #[error("at least one variant per photo is needed")]
    NoVariants,
    #[error("`{0}` already holds images; choose another folder or allow overwriting")]
    NotEmpty(PathBuf),
    #[error("cannot create `{path}`: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("degrading `{path}`: {source}")]
    Degrade { path: PathBuf, source: DegradeError },
}

/// What [`write_pairs`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PairsReport {
    /// Pairs written, by name (the file stem in both folders).
    pub written: Vec<String>,
    /// Photos smaller than the crop.
    pub too_small: Vec<PathBuf>,
}

/// Writes `out_dir/gt/<name>.png` (the centre `crop x crop` of each source) and `out_dir/lq/<name>.png` (its
/// degradation, 8-bit as the pipeline rounds it), for every source and variant.
pub fn write_pairs(
    sources: &[PathBuf],
    out_dir: &Path,
    degradation: &Degradation,
    options: &PairOptions,
) -> Result<PairsReport, PairsError> {
    let scale = degradation.config().scale as usize;
    let min = degradation.min_hr_size() as usize;
    if !options.crop.is_multiple_of(scale) || options.crop < min {
        return Err(PairsError::Crop { crop: options.crop, scale, min });
    }
    if options.variants == 0 {
        return Err(PairsError::NoVariants);
    }
    let (gt_dir, lq_dir) = (out_dir.join("gt"), out_dir.join("lq"));
    for dir in [&gt_dir, &lq_dir] {
        if !options.overwrite && holds_files(dir) {
            return Err(PairsError::NotEmpty(dir.clone()));
        }
        std::fs::create_dir_all(dir).map_err(|source| PairsError::Folder { path: dir.clone(), source })?;
    }
    let png = WriteOptions { encoding: Encoding::Png { sixteen_bit: false }, overwrite: options.overwrite };
    let mut report = PairsReport::default();
    for (photo, source) in sources.iter().enumerate() {
        let image = read_image(source)?.to_rgb();
        let (w, h) = (image.width, image.height);
        let Some(hr) = image.crop(
            w.saturating_sub(options.crop) / 2,
            h.saturating_sub(options.crop) / 2,
            options.crop,
            options.crop,
        ) else {
            report.too_small.push(source.clone());
            continue;
        };
        let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let hr_tensor = to_tensor(&hr, Device::Cpu);
        for variant in 0..options.variants {
            let index = (photo * options.variants + variant) as u64;
            let degrade_error = |e| PairsError::Degrade { path: source.clone(), source: e };
            let lr = degradation.degrade(&hr_tensor, &mut pair_rng(options.seed, index)).map_err(degrade_error)?;
            let lr = to_image(&lr).map_err(|_| degrade_error(DegradeError::Shape(lr.size())))?;
            let name = if options.variants == 1 { stem.clone() } else { format!("{stem}_{variant}") };
            write_image(&hr, gt_dir.join(format!("{name}.png")), &png)?;
            write_image(&lr, lq_dir.join(format!("{name}.png")), &png)?;
            report.written.push(name);
        }
    }
    Ok(report)
}

fn holds_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::degradations::RealEsrganConfig;
    use crate::Image;

    /// A 130x110 photo with structure everywhere (so crops and degradations differ visibly).
    fn photo(dir: &Path, name: &str) -> PathBuf {
        let (w, h) = (130, 110);
        let data = (0..w * h * 3)
            .map(|i| (((i / 3) % w) as f32 * 0.37 + ((i / 3) / w) as f32 * 0.11 + (i % 3) as f32).sin() * 0.5 + 0.5);
        let path = dir.join(name);
        write_image(
            &Image::new(w, h, 3, data.collect()),
            &path,
            &WriteOptions { encoding: Encoding::Png { sixteen_bit: false }, overwrite: false },
        )
        .unwrap();
        path
    }

    fn options(variants: usize) -> PairOptions {
        PairOptions { crop: 96, variants, seed: 7, overwrite: false }
    }

    #[test]
    fn pairs_are_centre_crops_and_their_seeded_degradations() {
        let dir = tempfile::tempdir().unwrap();
        let sources = [photo(dir.path(), "a.png"), photo(dir.path(), "b.png")];
        let degradation = Degradation::new(RealEsrganConfig::default()).unwrap();
        let out = dir.path().join("pairs");
        let report = write_pairs(&sources, &out, &degradation, &options(2)).unwrap();
        assert_eq!(report.written, ["a_0", "a_1", "b_0", "b_1"]);

        let source = read_image(&sources[1]).unwrap();
        let centre = source.crop(17, 7, 96, 96).unwrap();
        let gt = read_image(out.join("gt/b_1.png")).unwrap();
        assert_eq!(gt.data, centre.to_8bit().data);
        let expected = degradation.degrade(&to_tensor(&gt, Device::Cpu), &mut pair_rng(7, 3)).unwrap();
        let lq = read_image(out.join("lq/b_1.png")).unwrap();
        assert_eq!((lq.width, lq.height), (24, 24));
        let expected = to_image(&expected).unwrap();
        let worst = lq.data.iter().zip(&expected.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        // Both are 8-bit levels (the draw ends by rounding to them; the file stores them), computed in this one
        // process: k/255 written as float32 two ways, at most an ulp or two (u = 2^-24) apart.
        assert!(worst < 1e-6, "the stored LR differs from the draw by {worst}");
        let other = read_image(out.join("lq/b_0.png")).unwrap();
        assert_ne!(lq.data, other.data, "each variant is its own draw");
    }

    #[test]
    fn refuses_to_mix_with_earlier_pairs_and_reports_small_photos() {
        let dir = tempfile::tempdir().unwrap();
        let sources = [photo(dir.path(), "a.png")];
        let degradation = Degradation::new(RealEsrganConfig::default()).unwrap();
        let out = dir.path().join("pairs");
        write_pairs(&sources, &out, &degradation, &options(1)).unwrap();
        let before = std::fs::read(out.join("lq/a.png")).unwrap();
        let again = PairOptions { seed: 8, ..options(1) };
        assert!(matches!(write_pairs(&sources, &out, &degradation, &again), Err(PairsError::NotEmpty(_))));
        assert_eq!(std::fs::read(out.join("lq/a.png")).unwrap(), before, "nothing was replaced");
        write_pairs(&sources, &out, &degradation, &PairOptions { overwrite: true, ..again }).unwrap();
        assert_ne!(std::fs::read(out.join("lq/a.png")).unwrap(), before);

        let big = PairOptions { crop: 128, ..options(1) };
        let report = write_pairs(&sources, &dir.path().join("big"), &degradation, &big).unwrap();
        assert_eq!(report.too_small, sources);
        assert!(report.written.is_empty());
        let odd = PairOptions { crop: 98, ..options(1) };
        assert!(matches!(write_pairs(&sources, &out, &degradation, &odd), Err(PairsError::Crop { .. })));
        let tiny = PairOptions { crop: 16, ..options(1) };
        assert!(matches!(write_pairs(&sources, &out, &degradation, &tiny), Err(PairsError::Crop { .. })));
    }
}

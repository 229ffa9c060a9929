//! A sample's images as the metrics see them: the LR input and the ground truth, both RGB.
//!
//! Conventions of the x4 benchmarks (EDSR/basicsr): a gray image is replicated into RGB (basicsr reads with
//! OpenCV's `IMREAD_COLOR`, which does the same; Set14's `bridge.png` is gray); an HR image is mod-cropped
//! to a multiple of the scale (top-left corner kept) before an LR image is made from it by MATLAB's 8-bit
//! bicubic ([`sana_sr_data::resize::matlab::imresize_uint8`]); and with a shipped
//! LR image the ground truth is cropped to exactly `scale` times the LR size, as basicsr's
//! `PairedImageDataset` does, so SR and GT line up pixel for pixel.

use std::path::{Path, PathBuf};

use sana_sr_data::io::{read_image, write_image, Encoding, IoError, WriteOptions};
use sana_sr_data::resize::matlab::{imresize_uint8, ResizeError};
use sana_sr_data::Image;

use crate::dataset::{EvalSet, LrSource, Sample};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the scale factor must be at least 1, not {0}")]
    Scale(usize),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Resize(#[from] ResizeError),
    #[error(
        "{path}: ground truth {gt_width}x{gt_height} is smaller than {scale}x its LR input {lr_width}x{lr_height}"
    )]
    GroundTruthTooSmall {
        path: PathBuf,
        gt_width: usize,
        gt_height: usize,
        lr_width: usize,
        lr_height: usize,
        scale: usize,
    },
    #[error("{name}: its LR input is made from the ground truth, but it has none")]
    NoGroundTruth { name: String },
    #[error("{path}: {width}x{height} is smaller than the scale {scale}")]
    TooSmall { path: PathBuf, width: usize, height: usize, scale: usize },
}

/// The LR input and, where the set has one, the ground truth of a sample.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub lr: Image,
    pub gt: Option<Image>,
}

/// `image` cropped to the largest multiple of `scale` in each dimension (top-left corner kept).
pub fn mod_crop(image: &Image, scale: usize) -> Image {
    let (width, height) = (image.width - image.width % scale, image.height - image.height % scale);
    image.crop(0, 0, width, height).expect("a mod-crop lies inside the image")
}

/// Reads (or makes) the inputs of `sample` for x`scale` SR.
pub fn load(sample: &Sample, scale: usize) -> Result<Inputs, InputError> {
    if scale == 0 {
        return Err(InputError::Scale(scale));
    }
    let gt = sample.hr.as_deref().map(|path| read_rgb(path, scale)).transpose()?;
    match (&sample.lr, gt) {
        (LrSource::BicubicFromHr, None) => Err(InputError::NoGroundTruth { name: sample.name.clone() }),
        (LrSource::BicubicFromHr, Some(gt)) => {
            let gt = mod_crop(&gt, scale);
            Ok(Inputs { lr: imresize_uint8(&gt, 1.0 / scale as f64)?, gt: Some(gt) })
        }
        (LrSource::File(path), gt) => {
            let lr = read_rgb(path, 1)?;
            let gt = gt.map(|gt| crop_to_lr(gt, &lr, scale, sample.hr.as_deref().unwrap_or(path))).transpose()?;
            Ok(Inputs { lr, gt })
        }
    }
}

/// Writes the LR input of every sample of `set` to `<dir>/<set>/<lr stem>.png`: the exact inputs the
/// harness evaluates, for external tools (generated LR images exist nowhere else). Returns the errors, one
/// line per sample that could not be written.
pub fn export_lr(set: &EvalSet, dir: &Path, scale: usize) -> Vec<String> {
    let options = WriteOptions { encoding: Encoding::Png { sixteen_bit: false }, overwrite: true };
    let out = dir.join(&set.name);
    let mut errors = Vec::new();
    if let Err(err) = std::fs::create_dir_all(&out) {
        return vec![format!("{}: cannot create: {err}", out.display())];
    }
    for sample in &set.samples {
        let written = load(sample, scale)
            .and_then(|inputs| Ok(write_image(&inputs.lr, out.join(format!("{}.png", sample.lr_stem())), &options)?));
        if let Err(err) = written {
            errors.push(format!("{}/{}: {err}", set.name, sample.name));
        }
    }
    errors
}

/// Reads an image as RGB, refusing one smaller than `min_side` pixels a side.
fn read_rgb(path: &Path, min_side: usize) -> Result<Image, InputError> {
    let image = read_image(path)?.to_rgb();
    if image.width < min_side || image.height < min_side {
        return Err(InputError::TooSmall {
            path: path.to_path_buf(),
            width: image.width,
            height: image.height,
            scale: min_side,
        });
    }
    Ok(image)
}

fn crop_to_lr(gt: Image, lr: &Image, scale: usize, path: &Path) -> Result<Image, InputError> {
    let (width, height) = (lr.width * scale, lr.height * scale);
    gt.crop(0, 0, width, height).ok_or_else(|| InputError::GroundTruthTooSmall {
        path: path.to_path_buf(),
        gt_width: gt.width,
        gt_height: gt.height,
        lr_width: lr.width,
        lr_height: lr.height,
        scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_data::io::save_image;

    fn ramp(width: usize, height: usize, channels: usize) -> Image {
        let n = width * height * channels;
        Image::new(width, height, channels, (0..n).map(|i| (i % 251) as f32 / 250.0).collect())
    }

    #[test]
    fn generated_lr_comes_from_the_mod_cropped_gray_promoted_ground_truth() {
        let dir = tempfile::tempdir().unwrap();
        let hr = dir.path().join("hr.png");
        save_image(&ramp(18, 13, 1), &hr).unwrap();
        let sample = Sample { name: "hr".into(), lr: LrSource::BicubicFromHr, hr: Some(hr) };
        let inputs = load(&sample, 4).unwrap();
        let gt = inputs.gt.unwrap();
        assert_eq!((gt.width, gt.height, gt.channels), (16, 12, 3));
        assert_eq!((inputs.lr.width, inputs.lr.height, inputs.lr.channels), (4, 3, 3));
    }

    #[test]
    fn shipped_lr_crops_the_ground_truth_to_scale_times_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let (hr, lr) = (dir.path().join("a.png"), dir.path().join("ax4.png"));
        save_image(&ramp(10, 9, 3), &hr).unwrap();
        save_image(&ramp(2, 2, 3), &lr).unwrap();
        let sample = Sample { name: "a".into(), lr: LrSource::File(lr.clone()), hr: Some(hr.clone()) };
        let gt = load(&sample, 4).unwrap().gt.unwrap();
        assert_eq!((gt.width, gt.height), (8, 8));

        save_image(&ramp(3, 2, 3), dir.path().join("wide.png")).unwrap();
        let too_wide = Sample { name: "a".into(), lr: LrSource::File(dir.path().join("wide.png")), hr: Some(hr) };
        assert!(matches!(load(&too_wide, 4), Err(InputError::GroundTruthTooSmall { .. })));
        assert!(matches!(load(&sample, 0), Err(InputError::Scale(0))), "a zero scale is an error, not a panic");
    }

    #[test]
    fn missing_and_corrupt_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Sample { name: "m".into(), lr: LrSource::File(dir.path().join("m.png")), hr: None };
        assert!(load(&missing, 4).unwrap_err().to_string().contains("m.png"));
        std::fs::write(dir.path().join("c.png"), b"\x89PNG broken").unwrap();
        let corrupt = Sample { name: "c".into(), lr: LrSource::BicubicFromHr, hr: Some(dir.path().join("c.png")) };
        assert!(load(&corrupt, 4).unwrap_err().to_string().contains("c.png"));
        let no_gt = Sample { name: "n".into(), lr: LrSource::BicubicFromHr, hr: None };
        assert!(matches!(load(&no_gt, 4), Err(InputError::NoGroundTruth { .. })));
    }
}

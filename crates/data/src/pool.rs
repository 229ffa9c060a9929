//! The HR training pool: source photographs, downscaled, as PNG.
//!
//! The sources are JPEG photographs (Debian wallpaper packages, SunHays80). Their 8x8 block artefacts and
//! chroma subsampling would become "ground truth" the model learns to reproduce; downscaling by at least 2
//! with MATLAB's antialiased bicubic `imresize` averages them away (the usual DIV2K/Flickr2K preparation).

use std::path::{Path, PathBuf};

use crate::io::{read_image, write_image, Encoding, IoError, WriteOptions};
use crate::resize::matlab::{imresize, ResizeError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolOptions {
    /// Downscale factor, at least 2.
    pub downscale: f64,
    /// Photos whose downscaled shorter side is below this are left out (they cannot give a crop).
    pub min_side: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { downscale: 2.0, min_side: 256 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("downscale factor {0} is below 2, too little to hide JPEG blocks")]
    Downscale(f64),
    #[error("`{0}` is in a test set; test images never go into the training pool")]
    TestSet(PathBuf),
    #[error("two sources would both become `{0}`")]
    NameClash(PathBuf),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("resizing `{path}`: {source}")]
    Resize { path: PathBuf, source: ResizeError },
    #[error("cannot create the pool folder `{path}`: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
}

/// What [`build_pool`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PoolReport {
    pub written: Vec<PathBuf>,
    /// Already in the pool from an earlier run (building is idempotent).
    pub kept: Vec<PathBuf>,
    /// Sources too small after downscaling.
    pub too_small: Vec<PathBuf>,
}

/// Writes `out_dir/<source file stem>.png` for every source: RGB, downscaled by `options.downscale`.
/// Existing outputs are kept, so an interrupted build resumes.
pub fn build_pool(sources: &[PathBuf], out_dir: &Path, options: &PoolOptions) -> Result<PoolReport, PoolError> {
    if options.downscale.is_nan() || options.downscale < 2.0 {
        return Err(PoolError::Downscale(options.downscale));
    }
    if let Some(test) = sources.iter().find(|p| is_test_image(p)) {
        return Err(PoolError::TestSet(test.clone()));
    }
    let mut outputs = std::collections::BTreeSet::new();
    for source in sources {
        let output = output_path(source, out_dir);
        if !outputs.insert(output.clone()) {
            return Err(PoolError::NameClash(output));
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|source| PoolError::Folder { path: out_dir.into(), source })?;
    let mut report = PoolReport::default();
    for source in sources {
        let output = output_path(source, out_dir);
        if output.exists() {
            report.kept.push(output);
            continue;
        }
        let image = read_image(source)?.to_rgb();
        let small = imresize(&image, 1.0 / options.downscale)
            .map_err(|e| PoolError::Resize { path: source.clone(), source: e })?;
        if small.width.min(small.height) < options.min_side {
            report.too_small.push(source.clone());
            continue;
        }
        write_image(
            &small,
            &output,
            &WriteOptions { encoding: Encoding::Png { sixteen_bit: false }, overwrite: false },
        )?;
        report.written.push(output);
    }
    Ok(report)
}

/// `out_dir/<name>.png`, the name being the file stem, or for a KDE wallpaper package
/// (`<Name>/contents/images/<W>x<H>.jpg`) the wallpaper's name.
fn output_path(source: &Path, out_dir: &Path) -> PathBuf {
    let components: Vec<_> = source.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let name = match components.as_slice() {
        [.., name, contents, images, _] if contents == "contents" && images == "images" => name.clone(),
        _ => source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    out_dir.join(format!("{name}.png"))
}

/// Whether `path` lies in a folder named like one of the test sets.
fn is_test_image(path: &Path) -> bool {
    path.components().any(|c| crate::sets::test_sets().any(|set| c.as_os_str() == set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::read_image;
    use crate::Image;

    #[test]
    fn builds_idempotently_and_refuses_test_sets() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("photo.jpg");
        let data = (0..64 * 48 * 3).map(|i| (i % 97) as f32 / 96.0).collect();
        let options = WriteOptions { encoding: Encoding::Jpeg { quality: 80 }, overwrite: false };
        write_image(&Image::new(64, 48, 3, data), &source, &options).unwrap();
        let out = dir.path().join("pool");
        let options = PoolOptions { downscale: 2.0, min_side: 16 };
        let report = build_pool(std::slice::from_ref(&source), &out, &options).unwrap();
        assert_eq!(report.written, vec![out.join("photo.png")]);
        let pooled = read_image(out.join("photo.png")).unwrap();
        assert_eq!((pooled.width, pooled.height, pooled.channels), (32, 24, 3));
        let again = build_pool(std::slice::from_ref(&source), &out, &options).unwrap();
        assert_eq!((again.written.len(), again.kept.len()), (0, 1));

        let strict = PoolOptions { min_side: 25, ..options };
        let other = dir.path().join("other");
        assert_eq!(build_pool(std::slice::from_ref(&source), &other, &strict).unwrap().too_small, vec![source.clone()]);
        assert!(matches!(
            build_pool(std::slice::from_ref(&source), &out, &PoolOptions { downscale: 1.5, ..options }),
            Err(PoolError::Downscale(_))
        ));
        let kde = PathBuf::from("wallpapers/Path/contents/images/2560x1600.jpg");
        assert_eq!(output_path(&kde, &out), out.join("Path.png"));
        let clash = [source.clone(), dir.path().join("elsewhere/photo.png")];
        assert!(matches!(build_pool(&clash, &out, &options), Err(PoolError::NameClash(_))));
        let test_image = PathBuf::from("../shared/datasets/Set14/baboon.png");
        assert!(matches!(build_pool(&[test_image], &out, &options), Err(PoolError::TestSet(_))));
    }
}

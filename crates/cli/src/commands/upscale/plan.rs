//! Where each input's output goes and how it is encoded. `-o` is a file when its extension names an image
//! format (and it does not end in `/`) and a folder otherwise; a file name and a `--format` that disagree are an error, as is a format
//! option the output's format has no use for.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sana_sr_core::fs::FileKey;
use sana_sr_data::io::{image_format_of_extension, Encoding};

use crate::commands::inputs::{Failure, Input};

/// An output format `--format` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Png,
    Jpg,
    Webp,
    Tiff,
    Bmp,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpg => "jpg",
            Self::Webp => "webp",
            Self::Tiff => "tiff",
            Self::Bmp => "bmp",
        }
    }

    /// The format a file name's extension asks for; an error for an image format sana-sr does not write.
    fn of_file(path: &Path) -> anyhow::Result<Self> {
        Ok(match Encoding::for_path(path)? {
            Encoding::Png { .. } => Self::Png,
            Encoding::Jpeg { .. } => Self::Jpg,
            Encoding::Webp { .. } => Self::Webp,
            Encoding::Tiff { .. } => Self::Tiff,
            Encoding::Bmp => Self::Bmp,
        })
    }

    /// The encoding of an output from an input stored at more than 8 bits (`high_bit_depth`) or not:
    /// PNG and TIFF keep 16 bits; JPEG at `quality` (95 unless given); WebP lossy at `quality`, lossless
    /// without one.
    pub fn encoding(self, quality: Option<u8>, high_bit_depth: bool) -> Encoding {
        match self {
            Self::Png => Encoding::Png { sixteen_bit: high_bit_depth },
            Self::Jpg => Encoding::Jpeg { quality: quality.unwrap_or(95) },
            Self::Webp => Encoding::Webp { quality },
            Self::Tiff => Encoding::Tiff { sixteen_bit: high_bit_depth },
            Self::Bmp => Encoding::Bmp,
        }
    }
}

/// Where outputs go.
#[derive(Debug)]
pub enum Target {
    /// Beside each input.
    Beside,
    /// Into this folder (made if missing), mirroring the sub-folders inputs were found in.
    Folder(PathBuf),
    /// This one file.
    File(PathBuf),
}

/// The target `-o` names and the output format, checked against `--format`, `--quality` and the number of
/// inputs; a target folder is made here.
pub fn target(
    out: Option<&Path>,
    format: Option<Format>,
    quality: Option<u8>,
    inputs: usize,
) -> anyhow::Result<(Target, Format)> {
    let (target, format) = match out {
        None => (Target::Beside, format.unwrap_or(Format::Png)),
        Some(out) if out.as_os_str() == "-" => {
            bail!("writing to standard output (`-o -`) is not supported: name a file or a folder")
        }
        // A trailing slash says folder, whatever the name.
        Some(file) if image_format_of_extension(file).is_some() && !file.as_os_str().as_bytes().ends_with(b"/") => {
            let named = Format::of_file(file)?;
            if let Some(format) = format.filter(|f| *f != named) {
                bail!(
                    "-o {} names a {} file but --format asks for {}: give one of them",
                    file.display(),
                    named.extension().to_ascii_uppercase(),
                    format.extension().to_ascii_uppercase()
                );
            }
            if inputs > 1 {
                bail!("{inputs} inputs cannot all go to the one file {}: give a folder", file.display());
            }
            (Target::File(file.to_path_buf()), named)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
            (Target::Folder(dir.to_path_buf()), format.unwrap_or(Format::Png))
        }
    };
    if quality.is_some() && !matches!(format, Format::Jpg | Format::Webp) {
        bail!("--quality is for JPEG and WebP outputs; {} is lossless", format.extension().to_ascii_uppercase());
    }
    Ok((target, format))
}

/// One image to do: where it comes from and where it goes.
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
}

/// The jobs of `inputs`. An output is named `STEM_xSCALE.EXT`; inputs that would share it (`photo.png`
/// and `photo.jpg`) are told apart by their extension (`photo_png_x4.png`, `photo_jpg_x4.png`). An output
/// still claimed twice, or that is an input (under any name: a link to it, or its target), is refused.
pub fn jobs(inputs: Vec<Input>, target: &Target, format: Format, scale: u32) -> (Vec<Job>, Vec<Failure>) {
    let output = |input: &Input, keep_extension: bool| -> PathBuf {
        let path = &input.path;
        let name = |ext: &str| {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let tag = match path.extension() {
                Some(e) if keep_extension => format!("_{}", e.to_string_lossy().to_ascii_lowercase()),
                _ => String::new(),
            };
            format!("{stem}{tag}_x{scale}.{ext}")
        };
        match target {
            Target::File(file) => file.clone(),
            Target::Beside => path.with_file_name(name(format.extension())),
            Target::Folder(dir) => dir.join(&input.subfolder).join(name(format.extension())),
        }
    };
    let mut sharing: HashMap<FileKey, usize> = HashMap::new();
    for input in &inputs {
        *sharing.entry(FileKey::of(&output(input, false))).or_default() += 1;
    }
    let input_set: std::collections::HashSet<FileKey> = inputs.iter().map(|i| FileKey::of(&i.path)).collect();
    let mut claimed: HashMap<FileKey, PathBuf> = HashMap::new();
    let mut jobs = Vec::new();
    let mut failures = Vec::new();
    for input in inputs {
        let shared = sharing[&FileKey::of(&output(&input, false))] > 1;
        let output = output(&input, shared);
        let key = FileKey::of(&output);
        let shown = input.path.display();
        if input_set.contains(&key) {
            failures.push(Failure::new(
                shown,
                format!("its output {} is an input; refusing to replace it", output.display()),
            ));
        } else if let Some(first) = claimed.get(&key) {
            failures.push(Failure::new(
                shown,
                format!(
                    "its output {} is also the output of {}; rename one or use another folder",
                    output.display(),
                    first.display()
                ),
            ));
        } else {
            claimed.insert(key, input.path.clone());
            jobs.push(Job { input: input.path, output });
        }
    }
    (jobs, failures)
}

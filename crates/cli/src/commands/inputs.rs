//! The photos a command is pointed at: files, folders and glob patterns, as `upscale` and `data make-pairs`
//! take them.

use std::path::{Path, PathBuf};

use sana_sr_core::fs::FileKey;
use sana_sr_data::io::has_image_extension;

/// The image files named by the arguments, in order, each once; and a line for every argument that names
/// none.
pub fn expand_inputs(args: &[String]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if path.is_dir() {
            let mut images: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && has_image_extension(p))
                    .collect(),
                Err(err) => {
                    failures.push(format!("{arg}: cannot list the folder: {err}"));
                    continue;
                }
            };
            if images.is_empty() {
                failures.push(format!("{arg}: no PNG, JPEG or WebP images in this folder"));
            }
            images.sort();
            files.extend(images);
        } else if path.exists() {
            files.push(path.to_path_buf());
        } else if arg.contains(['*', '?', '[']) {
            match glob::glob(arg) {
                Ok(paths) => {
                    let matched: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
                    if matched.is_empty() {
                        failures.push(format!("{arg}: no files match this pattern"));
                    }
                    files.extend(matched);
                }
                Err(err) => failures.push(format!("{arg}: bad pattern: {err}")),
            }
        } else {
            failures.push(format!("{arg}: no such file or folder"));
        }
    }
    // One file named twice (two spellings, a link and its target) is done once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(FileKey::of(f)));
    (files, failures)
}

//! The photos a command is pointed at: files, folders and glob patterns, as `upscale` and `data make-pairs`
//! take them.

use std::path::{Path, PathBuf};

use sana_sr_core::fs::FileKey;
use sana_sr_data::io::{has_image_extension, read_metadata, sniff_format};
use sana_sr_data::metadata::SOFTWARE_MARKER;

/// How arguments are expanded into files.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expand {
    /// Folders are walked into their sub-folders too (`upscale -r`).
    pub recursive: bool,
    /// Files found in folders or by patterns that an earlier `upscale` wrote ([`is_earlier_output`]) are
    /// left out; a file named on its own is always taken.
    pub skip_earlier_outputs: bool,
}

/// One file to work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    /// Its folder relative to the folder argument it was found in (empty for a file named on its own or
    /// found by a pattern): an output folder mirrors it.
    pub subfolder: PathBuf,
}

/// An argument, or a file, that cannot be worked on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub input: String,
    pub error: String,
}

impl Failure {
    pub fn new(input: impl std::fmt::Display, error: impl Into<String>) -> Self {
        Self { input: input.to_string(), error: error.into() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.input, self.error)
    }
}

/// What the arguments name.
#[derive(Debug, Default)]
pub struct Found {
    /// The image files, in order, each once.
    pub inputs: Vec<Input>,
    /// One for every argument that names none.
    pub failures: Vec<Failure>,
    /// How many earlier outputs were left out ([`Expand::skip_earlier_outputs`]).
    pub earlier_outputs: usize,
}

/// Whether `path` is an output of an earlier `upscale`: named `STEM_xN.EXT` as outputs are named by default,
/// or carrying the [`SOFTWARE_MARKER`] (an output renamed since).
pub fn is_earlier_output(path: &Path) -> bool {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let named = stem.rsplit_once("_x").is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    named
        || read_metadata(path)
            .ok()
            .and_then(|m| m.software())
            .is_some_and(|s| s.split_whitespace().next() == Some(SOFTWARE_MARKER))
}

/// Whether a file found in a folder is taken as an image: by its extension, or by its content when its
/// extension says nothing (a photo named `IMG_0001`); an image in a format sana-sr does not read is taken
/// too, so that it gets its error line rather than vanishing.
fn looks_like_image(path: &Path) -> bool {
    has_image_extension(path) || sniff_format(path).is_some()
}

/// The image files named by the arguments (see [`Found`]).
pub fn expand_inputs(args: &[String], how: Expand) -> Found {
    let mut found = Found::default();
    let take = |path: PathBuf, subfolder: PathBuf, named: bool, found: &mut Found| {
        if !named && how.skip_earlier_outputs && is_earlier_output(&path) {
            found.earlier_outputs += 1;
        } else {
            found.inputs.push(Input { path, subfolder });
        }
    };
    for arg in args {
        let path = Path::new(arg);
        if arg == "-" {
            found.failures.push(Failure::new(arg, "reading standard input is not supported: name the file"));
        } else if path.is_dir() {
            let images = match folder_images(path, how.recursive) {
                Ok(images) => images,
                Err(err) => {
                    found.failures.push(Failure::new(arg, format!("cannot list the folder: {err}")));
                    continue;
                }
            };
            if images.is_empty() {
                let deep = if how.recursive { " or its sub-folders" } else { " (-r looks into sub-folders)" };
                found.failures.push(Failure::new(arg, format!("no images in this folder{deep}")));
            }
            for image in images {
                let subfolder = image.parent().and_then(|p| p.strip_prefix(path).ok()).unwrap_or(Path::new(""));
                take(image.clone(), subfolder.to_path_buf(), false, &mut found);
            }
        } else if path.exists() {
            take(path.to_path_buf(), PathBuf::new(), true, &mut found);
        } else if arg.contains(['*', '?', '[']) {
            match glob::Pattern::new(arg) {
                Ok(pattern) => {
                    let matched = glob_files(arg, &pattern);
                    if matched.is_empty() {
                        found.failures.push(Failure::new(arg, "no files match this pattern"));
                    }
                    for file in matched {
                        take(file, PathBuf::new(), false, &mut found);
                    }
                }
                Err(err) => found.failures.push(Failure::new(arg, format!("bad pattern: {err}"))),
            }
        } else {
            found.failures.push(Failure::new(arg, "no such file or folder"));
        }
    }
    // One file named twice (two spellings, a link and its target) is done once.
    let mut seen = std::collections::HashSet::new();
    found.inputs.retain(|f| seen.insert(FileKey::of(&f.path)));
    found
}

/// The images in `folder`, sorted; in its sub-folders too when `recursive`, each folder once however many
/// links lead to it.
fn folder_images(folder: &Path, recursive: bool) -> std::io::Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    let mut visited = std::collections::HashSet::new();
    let mut pending = vec![folder.to_path_buf()];
    let mut first = true;
    while let Some(dir) = pending.pop() {
        if !visited.insert(FileKey::of(&dir)) {
            continue;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // The folder named is an error; a sub-folder that cannot be listed is passed by.
            Err(err) if first => return Err(err),
            Err(_) => continue,
        };
        first = false;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() {
                if recursive {
                    pending.push(path);
                }
            } else if path.is_file() && looks_like_image(&path) {
                images.push(path);
            }
        }
    }
    images.sort();
    Ok(images)
}

/// The files matching `pattern` (`text` as given), sorted. The folder before the first wildcard is walked
/// — as deep as the pattern's components reach, or without a limit under `**` — each folder once, however
/// many links lead to it: a link back up the tree (`loop/self -> .`) would make `**` endless.
fn glob_files(text: &str, pattern: &glob::Pattern) -> Vec<PathBuf> {
    let components: Vec<&str> = text.split('/').collect();
    let literal = components.iter().take_while(|c| !c.contains(['*', '?', '['])).count();
    let base = components[..literal].join("/");
    let depth = if text.contains("**") { usize::MAX } else { components.len() - literal };
    let options = glob::MatchOptions { require_literal_separator: true, ..glob::MatchOptions::new() };
    let start = match (base.is_empty(), text.starts_with('/')) {
        (true, true) => PathBuf::from("/"),
        (true, false) => PathBuf::new(),
        (false, _) => PathBuf::from(&base),
    };
    let mut visited = std::collections::HashSet::new();
    let mut found = Vec::new();
    let mut pending = vec![(start, 0)];
    while let Some((folder, level)) = pending.pop() {
        let listed = if folder.as_os_str().is_empty() { Path::new(".") } else { folder.as_path() };
        let Ok(meta) = std::fs::metadata(listed) else { continue };
        if !visited.insert(FileKey::of(listed)) || !meta.is_dir() || level >= depth {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(listed) else { continue };
        for entry in entries.flatten() {
            let path = folder.join(entry.file_name());
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if meta.is_dir() {
                pending.push((path, level + 1));
            } else if meta.is_file() && pattern.matches_path_with(&path, options) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[PathBuf], root: &Path) -> Vec<String> {
        paths.iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect()
    }

    #[test]
    fn patterns_match_as_deep_as_they_reach_and_links_back_up_end() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["a.png", "sub/b.png", "sub/deeper/c.png", "sub/notes.txt"] {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), b"x").unwrap();
        }
        // Two links back up: endless for a walk that follows them blindly.
        std::os::unix::fs::symlink(".", root.join("sub/self")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/deeper/up")).unwrap();
        let glob = |p: &str| {
            let text = format!("{}/{p}", root.display());
            names(&glob_files(&text, &glob::Pattern::new(&text).unwrap()), root)
        };
        assert_eq!(glob("*.png"), ["a.png"]);
        assert_eq!(glob("sub/*.png"), ["sub/b.png"]);
        assert_eq!(glob("*/*.png"), ["sub/b.png"]);
        let all = glob("**/*.png");
        assert_eq!(all.len(), 3, "{all:?}");
        for file in ["a.png", "b.png", "c.png"] {
            assert!(all.iter().any(|p| p.ends_with(file)), "{file}: {all:?}");
        }
    }
}

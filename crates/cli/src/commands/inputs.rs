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
            match glob::Pattern::new(arg) {
                Ok(pattern) => {
                    let matched = glob_files(arg, &pattern);
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

//! The per-image score record of an evaluation, `images.jsonl` in its output folder: one JSON object per
//! (set, image, method), appended and flushed as soon as the image is scored.
//!
//! It serves two ends. An evaluation that is stopped (a kill, a closed laptop, hours of a slow peer on the
//! real sets) keeps every score it reached, and `eval --resume` scores only what is missing. And an image
//! that two sets share (RealSet80 holds 50 of RealSet65's photos) is super-resolved once per method.
//! Both rest on one key per score: a SHA-256 of what decides it — the method's fingerprint (its name,
//! weights and tiling) or, for a method whose output is not a function of the LR pixels alone (another
//! tool's folder), its name with the set and image; the scoring conventions; and the LR and ground-truth
//! pixels. A score is reused only when that key matches, so a retrained model under the same name, other
//! tiles or another crop is scored afresh.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use sana_sr_data::Image;

/// The file's name in an evaluation's output folder.
pub const RECORD_FILE: &str = "images.jsonl";

/// The scores of one SR image, and the seconds it took (`None` when the method recorded none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub psnr_y: Option<f64>,
    pub ssim_y: Option<f64>,
    pub niqe: f64,
    pub seconds: Option<f64>,
}

/// One line of the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub set: String,
    pub image: String,
    pub method: String,
    /// Hex SHA-256 of everything the scores depend on (see the module documentation).
    pub key: String,
    #[serde(flatten)]
    pub scores: Scores,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}, line {line}: not a score record ({reason})")]
    Malformed { path: PathBuf, line: usize, reason: String },
}

/// The record of one evaluation: the scores it holds by key (read back bit for bit: serde_json parses floats
/// exactly with its `float_roundtrip` feature, not by default), and the file new ones are appended to.
#[derive(Debug)]
pub struct Record {
    path: PathBuf,
    file: File,
    scores: HashMap<String, Scores>,
}

impl Record {
    /// A new, empty record at `path` (an existing file there is emptied: the caller decided to replace it).
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let io = |source| RecordError::Io { path: path.to_path_buf(), source };
        let file = File::create(path).map_err(io)?;
        Ok(Self { path: path.to_path_buf(), file, scores: HashMap::new() })
    }

    /// The record at `path` with the scores it already holds (none if the file does not exist), open for
    /// appending. A last line cut short (the process was killed while writing it) is dropped; a malformed
    /// line anywhere else is an error, since the file is then not one this harness wrote.
    pub fn resume(path: &Path) -> Result<Self, RecordError> {
        let io = |source| RecordError::Io { path: path.to_path_buf(), source };
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(io(err)),
        };
        let mut scores = HashMap::new();
        let mut kept_bytes = 0;
        for (index, line) in text.split_inclusive(|&byte| byte == b'\n').enumerate() {
            // Only the last line can lack its newline: the one being written when the process was killed.
            let Some(body) = line.strip_suffix(b"\n") else { break };
            let entry: Entry = serde_json::from_slice(body).map_err(|err| RecordError::Malformed {
                path: path.to_path_buf(),
                line: index + 1,
                reason: err.to_string(),
            })?;
            scores.insert(entry.key, entry.scores);
            kept_bytes += line.len();
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        // The cut-short line goes, so the next entry starts on a line of its own.
        file.set_len(kept_bytes as u64).map_err(io)?;
        Ok(Self { path: path.to_path_buf(), file, scores })
    }

    /// The scores recorded under `key`, if any.
    pub fn get(&self, key: &str) -> Option<Scores> {
        self.scores.get(key).copied()
    }

    /// Records `entry`: appended to the file and flushed before this returns.
    pub fn add(&mut self, entry: Entry) -> Result<(), RecordError> {
        let io = |source| RecordError::Io { path: self.path.clone(), source };
        let line = serde_json::to_string(&entry).expect("a score record serialises") + "\n";
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.flush().map_err(io)?;
        self.scores.insert(entry.key, entry.scores);
        Ok(())
    }

    /// How many scores the record holds.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

/// A digest of an evaluation's inputs for one image: the scoring conventions (`conventions`, any text that
/// changes when they do) and the LR and ground-truth pixels.
pub fn input_digest(conventions: &str, lr: &Image, gt: Option<&Image>) -> Sha256 {
    let mut digest = Sha256::new();
    digest.update(conventions.as_bytes());
    for image in std::iter::once(lr).chain(gt) {
        digest.update(format!("|{}x{}x{}|", image.width, image.height, image.channels).as_bytes());
        for value in &image.data {
            digest.update(value.to_le_bytes());
        }
    }
    digest
}

/// The key of one method's score of one image: `inputs` (from [`input_digest`]) with `identity`, which
/// names the method and whatever else its output depends on.
pub fn key(inputs: &Sha256, identity: &str) -> String {
    let digest = inputs.clone().chain_update(b"|method|").chain_update(identity.as_bytes()).finalize();
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, niqe: f64) -> Entry {
        let scores = Scores { psnr_y: Some(25.5), ssim_y: None, niqe, seconds: Some(0.125) };
        Entry { set: "Set,5".into(), image: "bird \"1\"".into(), method: "model".into(), key: key.into(), scores }
    }

    #[test]
    fn entries_survive_a_resume_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECORD_FILE);
        let mut record = Record::create(&path).unwrap();
        record.add(entry("a", 14.555492691718976)).unwrap();
        record.add(entry("b", 7.0)).unwrap();
        drop(record);
        let record = Record::resume(&path).unwrap();
        assert_eq!(record.len(), 2);
        assert_eq!(record.get("a"), Some(entry("a", 14.555492691718976).scores));
        assert_eq!(record.get("c"), None);
    }

    #[test]
    fn a_line_cut_short_by_a_kill_is_dropped_and_the_next_entry_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECORD_FILE);
        let mut record = Record::create(&path).unwrap();
        record.add(entry("a", 4.0)).unwrap();
        drop(record);
        let whole = serde_json::to_string(&entry("b", 5.0)).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&whole.as_bytes()[..whole.len() / 2]).unwrap();
        drop(file);

        let mut record = Record::resume(&path).unwrap();
        assert_eq!((record.len(), record.get("b")), (1, None));
        record.add(entry("c", 6.0)).unwrap();
        drop(record);
        let record = Record::resume(&path).unwrap();
        assert_eq!(record.len(), 2);
        assert_eq!(record.get("c").map(|s| s.niqe), Some(6.0));
    }

    #[test]
    fn a_malformed_line_before_the_last_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECORD_FILE);
        let good = serde_json::to_string(&entry("a", 4.0)).unwrap();
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let err = Record::resume(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains(RECORD_FILE), "{err}");
    }

    #[test]
    fn keys_change_with_pixels_conventions_and_identity() {
        let lr = Image::new(2, 1, 3, vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5]);
        let mut other = lr.clone();
        other.data[5] = 0.50001;
        let base = key(&input_digest("x4", &lr, None), "m");
        assert_eq!(base, key(&input_digest("x4", &lr.clone(), None), "m"));
        assert_ne!(base, key(&input_digest("x4", &other, None), "m"));
        assert_ne!(base, key(&input_digest("x3", &lr, None), "m"));
        assert_ne!(base, key(&input_digest("x4", &lr, Some(&lr)), "m"));
        assert_ne!(base, key(&input_digest("x4", &lr, None), "n"));
    }
}

//! Writing files atomically: the one writer every file sana-sr produces (images, reports, checkpoints) goes
//! through, so that a crash never leaves a half-written file and an existing file is replaced only when asked.
//!
//! The content is written into a temporary file in the destination folder (a rename is only atomic within
//! one file system), flushed and fsynced, then renamed into place.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    #[error("`{path}` exists already; pass overwrite to replace it")]
    Exists { path: PathBuf },
    #[error("cannot write `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The `write` closure failed; its error is kept as given.
    #[error("cannot write `{path}`: {source}")]
    Content { path: PathBuf, source: io::Error },
}

/// Writes `path` through `write` into a temporary file beside it, then renames it into place.
///
/// With `overwrite` false an existing `path` is refused ([`AtomicWriteError::Exists`]), before writing and
/// again at the rename (which never replaces a file that appeared meanwhile). The temporary file is removed
/// on any failure. The finished file gets the permissions any new file would (0666 less the umask), not the
/// temporary file's private 0600.
pub fn write_atomically(
    path: &Path,
    overwrite: bool,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let io_error = |source| AtomicWriteError::Io { path: path.to_path_buf(), source };
    if !overwrite && path.exists() {
        return Err(AtomicWriteError::Exists { path: path.to_path_buf() });
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temporary = tempfile::Builder::new()
        .prefix(".sana-sr-")
        .suffix(".part")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(folder)
        .map_err(io_error)?;
    {
        let mut writer = BufWriter::new(temporary.as_file());
        write(&mut writer).map_err(|source| AtomicWriteError::Content { path: path.to_path_buf(), source })?;
        writer.flush().map_err(io_error)?;
    }
    temporary.as_file().sync_all().map_err(io_error)?;
    if overwrite {
        temporary.persist(path).map_err(|e| io_error(e.error))?;
    } else {
        temporary.persist_noclobber(path).map_err(|e| match e.error.kind() {
            io::ErrorKind::AlreadyExists => AtomicWriteError::Exists { path: path.to_path_buf() },
            _ => io_error(e.error),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn leftovers(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".part"))
            .collect()
    }

    #[test]
    fn writes_and_refuses_to_clobber_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomically(&path, false, |w| w.write_all(b"one")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let refused = write_atomically(&path, false, |w| w.write_all(b"two")).unwrap_err();
        assert!(matches!(refused, AtomicWriteError::Exists { .. }), "{refused}");
        assert!(refused.to_string().contains("exists"), "{refused}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomically(&path, true, |w| w.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.txt");
        let failed = write_atomically(&path, false, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(matches!(failed, AtomicWriteError::Content { .. }) && failed.to_string().contains("boom"), "{failed}");
        assert!(!path.exists());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn new_files_get_the_umask_permissions_not_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.txt");
        write_atomically(&path, false, |w| w.write_all(b"x")).unwrap();
        // Compare with a file created the ordinary way under the same umask.
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&plain));
    }
}

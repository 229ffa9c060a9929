//! Files as sana-sr reads and writes them.
//!
//! Writing is atomic: the one writer every file sana-sr produces (images, reports, checkpoints) goes
//! through [`write_atomically`], so that a crash never leaves a half-written file and an existing file is
//! replaced only when asked. The content is written into a temporary file in the destination folder (a
//! rename is only atomic within one file system), flushed and fsynced, then renamed into place. The
//! temporary file is named `.sana-sr-<pid>-<random>.part`: an interrupt removes the process's own
//! ([`crate::interrupt`]), and a file left by a killed process (SIGKILL, power loss) is recognised by its
//! name, its process being gone, and removed by the next write into that folder.
//!
//! Reading goes through [`open_file`], which refuses anything but a regular file before it could block
//! (a FIFO opened for reading waits for a writer) or fail obscurely (a folder or a device mapped into
//! memory), and whole-file reads of text through [`read_text`], under a stated size limit.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// The largest text file (a config, a list, an ncnn `.param`) read whole: 64 MiB, a thousand times the
/// largest config sana-sr ships.
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// Name parts of the temporary files of [`write_atomically`].
const TEMP_PREFIX: &str = ".sana-sr-";
const TEMP_SUFFIX: &str = ".part";

/// A temporary file without a process id in its name (written before names carried one) is taken as
/// stale when it has not been written for this long.
const LEGACY_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

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

/// What identifies a file when paths are compared: the device and inode of an existing file (so that a
/// symbolic link, a hard link or another spelling of it compares equal), else the [`resolved`] path of
/// a file still to be written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileKey {
    Inode { device: u64, inode: u64 },
    Path(PathBuf),
}

impl FileKey {
    pub fn of(path: &Path) -> Self {
        match std::fs::metadata(path) {
            Ok(meta) => Self::Inode { device: meta.dev(), inode: meta.ino() },
            Err(_) => Self::Path(resolved(path)),
        }
    }
}

/// Whether `a` and `b` are the same file (see [`FileKey`]): writing to one replaces the other.
pub fn same_file(a: &Path, b: &Path) -> bool {
    FileKey::of(a) == FileKey::of(b)
}

/// `path` with its folder resolved (symbolic links, `..`), so that two spellings of one file compare equal
/// whether or not the file exists yet. The last component is kept as it is.
pub fn resolved(path: &Path) -> PathBuf {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = folder.canonicalize().unwrap_or_else(|_| folder.to_path_buf());
    folder.join(path.file_name().unwrap_or_default())
}

/// Opens `path` for reading if it is a regular file (after symbolic links); a folder, FIFO, socket or
/// device is an [`io::ErrorKind::InvalidInput`] error saying which it is. The file is opened
/// non-blocking and checked through its handle, so a FIFO put in its place meanwhile cannot block either.
pub fn open_file(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let kind = file.metadata()?.file_type();
    let what = if kind.is_file() {
        return Ok(file);
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{what}, not a regular file")))
}

/// The text of `path`, a regular file ([`open_file`]) of at most [`MAX_TEXT_BYTES`].
pub fn read_text(path: &Path) -> io::Result<String> {
    let file = open_file(path)?;
    let size = file.metadata()?.len();
    if size > MAX_TEXT_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes, over the limit of {} MiB for a text file", MAX_TEXT_BYTES >> 20),
        ));
    }
    let mut text = String::with_capacity(size as usize);
    // `take` bounds a file that grows while it is read.
    file.take(MAX_TEXT_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TEXT_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "grew past the text file limit while read"));
    }
    Ok(text)
}

/// Writes `path` through `write` into a temporary file beside it, then renames it into place.
///
/// With `overwrite` false an existing `path` is refused ([`AtomicWriteError::Exists`]), before writing and
/// again at the rename (which never replaces a file that appeared meanwhile). The temporary file is removed
/// on any failure, and on an interrupt ([`crate::interrupt`]). The finished file gets the permissions any
/// new file would (0666 less the umask), not the temporary file's private 0600. The first write of the
/// process into a folder removes the temporary files that killed processes left there.
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
    remove_stale_once(folder);
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    let temporary = crate::interrupt::unfinished(|| {
        tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(TEMP_SUFFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(folder)
    })
    .map_err(io_error)?;
    let result = (|| {
        {
            let mut writer = BufWriter::new(temporary.as_file());
            write(&mut writer).map_err(|source| AtomicWriteError::Content { path: path.to_path_buf(), source })?;
            writer.flush().map_err(io_error)?;
        }
        temporary.as_file().sync_all().map_err(io_error)?;
        Ok(())
    })();
    let temporary_path = temporary.path().to_path_buf();
    let persisted = result.and_then(|()| {
        if overwrite {
            temporary.persist(path).map(drop).map_err(|e| io_error(e.error))
        } else {
            temporary.persist_noclobber(path).map(drop).map_err(|e| match e.error.kind() {
                io::ErrorKind::AlreadyExists => AtomicWriteError::Exists { path: path.to_path_buf() },
                _ => io_error(e.error),
            })
        }
    });
    crate::interrupt::finished(&temporary_path);
    persisted
}

/// Whether `name` is a temporary file of [`write_atomically`] whose writer is gone: its process id names
/// no running process, or (a name from before ids were in names) it is older than [`LEGACY_TEMP_AGE`].
pub fn is_stale_temporary(name: &str, modified: Option<SystemTime>) -> bool {
    let Some(middle) = name.strip_prefix(TEMP_PREFIX).and_then(|rest| rest.strip_suffix(TEMP_SUFFIX)) else {
        return false;
    };
    match middle.split_once('-').and_then(|(pid, _)| pid.parse::<i32>().ok()).filter(|&pid| pid > 0) {
        Some(pid) => !process_exists(pid),
        None => modified.and_then(|m| m.elapsed().ok()).is_some_and(|age| age > LEGACY_TEMP_AGE),
    }
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes the stale temporary files ([`is_stale_temporary`]) in `folder`, once per folder and process;
/// returns the paths removed.
pub fn remove_stale_temporaries(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
        if entry.file_type().is_ok_and(|t| t.is_file()) && is_stale_temporary(name, modified) {
            let path = entry.path();
            if std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed
}

fn remove_stale_once(folder: &Path) {
    static CLEANED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let key = folder.canonicalize().unwrap_or_else(|_| folder.to_path_buf());
    let first = CLEANED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner()).insert(key);
    if first {
        remove_stale_temporaries(folder);
    }
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
    fn a_link_and_its_target_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.png");
        std::fs::write(&real, b"x").unwrap();
        std::os::unix::fs::symlink("real.png", dir.path().join("link.png")).unwrap();
        std::fs::hard_link(&real, dir.path().join("hard.png")).unwrap();
        assert!(same_file(&dir.path().join("link.png"), &real));
        assert!(same_file(&dir.path().join("hard.png"), &real));
        assert!(same_file(&dir.path().join("./sub/../real.png"), &real) || !dir.path().join("sub").exists());
        assert!(!same_file(&dir.path().join("new.png"), &real));
        // Files still to be written compare by their resolved path.
        assert!(same_file(&dir.path().join("new.png"), &dir.path().join(".").join("new.png")));
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // A FIFO with no writer would block a plain open: this returns at once with a clear error.
        let refused = open_file(&fifo).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
        assert!(refused.to_string().contains("FIFO"), "{refused}");
        assert!(open_file(dir.path()).unwrap_err().to_string().contains("a folder"));
        assert!(open_file(Path::new("/dev/urandom")).unwrap_err().to_string().contains("a device"));
        assert!(read_text(&fifo).is_err());
        std::fs::write(dir.path().join("a.toml"), "x = 1").unwrap();
        assert_eq!(read_text(&dir.path().join("a.toml")).unwrap(), "x = 1");
    }

    #[test]
    fn text_files_over_the_limit_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        File::create(&big).unwrap().set_len(MAX_TEXT_BYTES + 1).unwrap();
        let refused = read_text(&big).unwrap_err();
        assert!(refused.to_string().contains("over the limit of 64 MiB"), "{refused}");
    }

    /// The id of a process that has ended.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn temporary_files_of_ended_processes_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!(".sana-sr-{}-abc123.part", dead_pid()));
        let live = dir.path().join(format!(".sana-sr-{}-abc123.part", std::process::id()));
        let legacy = dir.path().join(".sana-sr-Xy12ab.part");
        let other = dir.path().join("photo.part");
        for path in [&stale, &live, &legacy, &other] {
            std::fs::write(path, b"half").unwrap();
        }
        // A legacy name (no process id) counts as stale only when it is a day old.
        assert!(!is_stale_temporary(".sana-sr-Xy12ab.part", Some(SystemTime::now())));
        assert!(is_stale_temporary(".sana-sr-Xy12ab.part", Some(SystemTime::now() - 2 * LEGACY_TEMP_AGE)));
        write_atomically(&dir.path().join("a.txt"), false, |w| w.write_all(b"one")).unwrap();
        assert!(!stale.exists(), "the ended process's file is removed");
        assert!(live.exists() && legacy.exists() && other.exists(), "a running process's file is kept");
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

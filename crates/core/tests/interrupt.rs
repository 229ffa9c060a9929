//! SIGINT and SIGTERM while a file is being written: the temporary file is removed, the destination is not
//! created, a line says what was done, and the exit code is 130 or 143. The test runs itself as the child
//! process (`CHILD` set), which installs the handler and blocks in the middle of a write; without the test
//! harness (`harness = false`), since the handler must be installed by the main thread before any other
//! thread exists, as `sana-sr`'s `main` does.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD: &str = "SANA_SR_INTERRUPT_TEST_DIR";

fn parts(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".part"))
        .collect()
}

fn interrupt_mid_write(signal: i32) -> (Option<i32>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Both written: the first file, and the second's temporary file.
    while !dir.path().join("first.txt").exists() || parts(dir.path()).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "the child never started writing");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), dir)
}

fn main() {
    match std::env::var_os(CHILD) {
        Some(dir) => child_writes_forever(Path::new(&dir)),
        None => {
            sigint_and_sigterm_remove_the_half_written_file_and_exit_130_and_143();
            println!("test sigint_and_sigterm_remove_the_half_written_file_and_exit_130_and_143 ... ok");
        }
    }
}

fn sigint_and_sigterm_remove_the_half_written_file_and_exit_130_and_143() {
    for (signal, code, name) in [(libc::SIGINT, 130, "SIGINT"), (libc::SIGTERM, 143, "SIGTERM")] {
        let (status, stderr, dir) = interrupt_mid_write(signal);
        assert_eq!(status, Some(code), "{stderr}");
        assert!(stderr.contains(&format!("interrupted by {name}: 1 of 2 files written")), "{stderr}");
        assert!(stderr.contains("the unfinished ") && stderr.contains(".part removed"), "{stderr}");
        assert!(parts(dir.path()).is_empty(), "{:?}", parts(dir.path()));
        assert!(dir.path().join("first.txt").is_file() && !dir.path().join("second.txt").exists());
    }
}

/// The child: installs the handler, writes one file, then hangs in the middle of a second.
fn child_writes_forever(dir: &Path) {
    sana_sr_core::interrupt::install().unwrap();
    sana_sr_core::fs::write_atomically(&dir.join("first.txt"), false, |w| w.write_all(b"done")).unwrap();
    sana_sr_core::interrupt::set_done("1 of 2 files written");
    let _ = sana_sr_core::fs::write_atomically(&dir.join("second.txt"), false, |w| {
        w.write_all(b"half")?;
        w.flush()?;
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}

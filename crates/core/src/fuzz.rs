//! A bounded mutation fuzzer for the readers of hostile files (images, model files, ncnn files), run by
//! tests on the stable toolchain: no coverage instrumentation, so the feedback is the outcome itself — an
//! input whose outcome (its error message with the numbers taken out, or success) is new joins the pool,
//! which carries the search past a first check into the ones behind it.
//!
//! Each execution runs the target on a mutated input under `catch_unwind`: a panic is a crash, saved as
//! `crash-<hash>` in the harness's folder (beside its seeds) so that the next run replays it as a
//! regression; an execution that takes longer than [`Options::hang`] is saved as `hang-<hash>` and ends
//! the process (a hang cannot be interrupted from inside), and one that aborts the process (a failed
//! allocation) is saved as `crash-abort` by a SIGABRT handler on its way out. Every run replays the
//! folder's files first.
//!
//! A run lasts [`Options::seconds`], or `SANA_SR_FUZZ_SECONDS` when set (the long runs of
//! `docs/fuzzing.md`); the short default keeps `cargo test` quick.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Environment variable that sets the seconds of a run.
pub const SECONDS_ENV: &str = "SANA_SR_FUZZ_SECONDS";

/// How a harness runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds of mutation after the replay (overridden by [`SECONDS_ENV`]).
    pub seconds: f64,
    /// An execution longer than this is a hang.
    pub hang: Duration,
    /// Inputs are cut to this many bytes after mutation.
    pub max_len: usize,
    /// Most inputs the pool keeps (the seeds and the inputs of new outcomes).
    pub max_pool: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { seconds: 3.0, hang: Duration::from_secs(60), max_len: 1 << 20, max_pool: 2_000 }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub executions: u64,
    pub seconds: f64,
    /// Distinct outcomes seen.
    pub outcomes: usize,
    /// Files written for new crashes (replayed crashes are in `replay_failures`).
    pub crashes: Vec<PathBuf>,
    /// Files of the folder that still crash (`crash-*` regressions not yet fixed, or seeds).
    pub replay_failures: Vec<PathBuf>,
    /// The slowest execution.
    pub slowest: Duration,
}

impl Report {
    /// One line for the record: executions, rate, outcomes, crashes.
    pub fn summary(&self, name: &str) -> String {
        format!(
            "fuzz {name}: {} executions in {:.0} s ({:.0}/s), {} outcomes, {} new crashes, {} replayed failures, slowest {:.2} s",
            self.executions,
            self.seconds,
            self.executions as f64 / self.seconds.max(1e-9),
            self.outcomes,
            self.crashes.len(),
            self.replay_failures.len(),
            self.slowest.as_secs_f64()
        )
    }
}

/// A small, fast, seedable generator (xorshift64*), so that a run is reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Integers that break size arithmetic: zero, one, powers of two and their neighbours, the extremes.
pub const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    255,
    256,
    65_535,
    65_536,
    (1 << 24) - 1,
    1 << 24,
    i32::MAX as u64,
    1 << 31,
    u32::MAX as u64,
    1 << 32,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

/// One to four generic mutations of `input` (bits, bytes, interesting integers in either byte order,
/// deletions, duplications, insertions, truncation, a splice with `other`).
pub fn mutate_bytes(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = *rng.pick(&[0, 1, 0x7F, 0x80, 0xFF]);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data[i] = data[i].wrapping_add((rng.below(33) as u8).wrapping_sub(16));
            }
            3 if len >= 8 => {
                let width = *rng.pick(&[2usize, 4, 8]);
                let i = rng.below(len - width + 1);
                let value = *rng.pick(INTERESTING);
                let bytes = if rng.chance(2) { value.to_le_bytes() } else { value.to_be_bytes() };
                let bytes = if rng.chance(2) { &bytes[..width] } else { &bytes[8 - width..] };
                data[i..i + width].copy_from_slice(bytes);
            }
            4 if len > 1 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64.min(len - start))).min(len);
                data.drain(start..end);
            }
            5 if len > 1 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(256.min(len - start))).min(len);
                let chunk = data[start..end].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            6 => {
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            7 if len > 0 => data.truncate(rng.below(len)),
            8 if !other.is_empty() => {
                let (cut, from) = (rng.below(len + 1), rng.below(other.len()));
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    data[i] = rng.next_u64() as u8;
                }
            }
        }
    }
    data
}

/// The input being executed and where to save it if the process aborts, for [`save_on_abort`].
static RUNNING_INPUT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static RUNNING_LEN: AtomicUsize = AtomicUsize::new(0);
static ABORT_FILE: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

/// SIGABRT handler: writes the input being executed to [`ABORT_FILE`] (only async-signal-safe calls), then
/// returns, and the abort goes on.
extern "C" fn save_on_abort(_: libc::c_int) {
    let (path, input, len) =
        (ABORT_FILE.load(Ordering::SeqCst), RUNNING_INPUT.load(Ordering::SeqCst), RUNNING_LEN.load(Ordering::SeqCst));
    if path.is_null() || input.is_null() {
        return;
    }
    const NOTE: &[u8] = b"fuzz: the process is aborting; the input being executed is saved as crash-abort\n";
    // SAFETY: open/write/close are async-signal-safe; `path` is a leaked C string and `input` the live
    // buffer of the execution in progress.
    unsafe {
        let fd = libc::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
        if fd >= 0 {
            libc::write(fd, input.cast(), len);
            libc::close(fd);
        }
        libc::write(2, NOTE.as_ptr().cast(), NOTE.len());
    }
}

/// `text` with its digits taken out, so that outcomes differing only in numbers count as one.
fn outcome_class(text: &str) -> String {
    let mut class = String::with_capacity(text.len().min(200));
    for c in text.chars().take(200) {
        if !c.is_ascii_digit() {
            class.push(c);
        }
    }
    class
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Runs `target` on the files of `folder` (seeds and earlier findings), then on mutations of them for the
/// run's seconds. `target` returns the outcome (e.g. `Ok` or the error's message); `mutate`, when given,
/// is a structure-aware mutator tried for half of the mutations (`None` from it falls back to bytes).
pub fn run(
    folder: &Path,
    options: &Options,
    mut mutate: impl FnMut(&mut Rng, &[u8]) -> Option<Vec<u8>>,
    mut target: impl FnMut(&[u8]) -> String,
) -> Report {
    let seconds = std::env::var(SECONDS_ENV).ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(options.seconds);
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", folder.display());

    // A silent panic hook for the run: panics are findings, reported once each below.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let current: Arc<Mutex<(Instant, Vec<u8>, bool)>> = Arc::new(Mutex::new((Instant::now(), Vec::new(), false)));
    let watchdog = spawn_watchdog(folder.to_path_buf(), options.hang, Arc::clone(&current));
    let abort_file = std::ffi::CString::new(folder.join("crash-abort").to_string_lossy().as_bytes()).expect("a path");
    ABORT_FILE.store(abort_file.into_raw(), Ordering::SeqCst);
    // SAFETY: installs a handler that only makes async-signal-safe calls.
    unsafe { libc::signal(libc::SIGABRT, save_on_abort as *const () as libc::sighandler_t) };

    let mut report = Report::default();
    let mut seen = HashSet::new();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut crashed = HashSet::new();
    let mut execute = |input: &[u8], report: &mut Report| -> Result<String, String> {
        *current.lock().unwrap() = (Instant::now(), input.to_vec(), true);
        RUNNING_LEN.store(input.len(), Ordering::SeqCst);
        RUNNING_INPUT.store(input.as_ptr().cast_mut(), Ordering::SeqCst);
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target(input)));
        let took = started.elapsed();
        RUNNING_INPUT.store(std::ptr::null_mut(), Ordering::SeqCst);
        current.lock().unwrap().2 = false;
        report.executions += 1;
        report.slowest = report.slowest.max(took);
        outcome.map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into())
        })
    };

    for file in &files {
        let input = std::fs::read(file).expect("the harness's files are readable");
        match execute(&input, &mut report) {
            Ok(outcome) => {
                seen.insert(outcome_class(&outcome));
                pool.push(input);
            }
            Err(message) => {
                eprintln!("{}: still crashes: {message}", file.display());
                report.replay_failures.push(file.clone());
            }
        }
    }
    assert!(!pool.is_empty(), "every file in {} crashes", folder.display());

    let mut rng = Rng::new(hash_of(folder.to_string_lossy().as_bytes()) ^ u64::from(std::process::id()));
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        let parent = rng.below(pool.len());
        let other = rng.below(pool.len());
        let mut input = if rng.chance(2) { mutate(&mut rng, &pool[parent]) } else { None }
            .unwrap_or_else(|| mutate_bytes(&mut rng, &pool[parent], &pool[other]));
        input.truncate(options.max_len);
        match execute(&input, &mut report) {
            Ok(outcome) => {
                if seen.insert(outcome_class(&outcome)) && pool.len() < options.max_pool {
                    pool.push(input);
                }
            }
            Err(message) => {
                let class = outcome_class(&message);
                let path = folder.join(format!("crash-{:016x}", hash_of(&input)));
                if crashed.insert(class) {
                    std::fs::write(&path, &input).expect("the crash is saved");
                    eprintln!("crash saved as {}: {message}", path.display());
                    report.crashes.push(path);
                }
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.outcomes = seen.len();
    current.lock().unwrap().2 = false;
    drop(watchdog);
    // SAFETY: restores the default action; the leaked path stays valid for a late signal.
    unsafe { libc::signal(libc::SIGABRT, libc::SIG_DFL) };
    std::panic::set_hook(previous_hook);
    report
}

/// Ends the process when one execution runs past `hang`, saving its input first.
fn spawn_watchdog(folder: PathBuf, hang: Duration, current: Arc<Mutex<(Instant, Vec<u8>, bool)>>) -> Watchdog {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let guard = current.lock().unwrap_or_else(|e| e.into_inner());
            let (since, input, running) = &*guard;
            if *running && since.elapsed() > hang {
                let path = folder.join(format!("hang-{:016x}", hash_of(input)));
                let _ = std::fs::write(&path, input);
                eprintln!("hang: one execution ran past {hang:?}; its input is saved as {}", path.display());
                std::process::abort();
            }
        }
    });
    Watchdog { stop }
}

struct Watchdog {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_target_is_caught_saved_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seed"), b"hello").unwrap();
        let options = Options { seconds: 0.5, ..Options::default() };
        let target = |input: &[u8]| {
            assert!(!input.contains(&b'!'), "a bang");
            format!("{} bytes", input.len())
        };
        // Inserting random bytes finds a '!' in well under a second.
        let report = run(dir.path(), &options, |_, _| None, target);
        assert_eq!(report.crashes.len(), 1, "{}", report.summary("test"));
        assert!(report.executions > 100 && report.outcomes >= 1);
        let report = run(dir.path(), &Options { seconds: 0.0, ..options }, |_, _| None, target);
        assert_eq!(report.replay_failures.len(), 1, "the saved crash is replayed");
    }

    #[test]
    fn mutations_are_reproducible_from_the_seed() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(
                mutate_bytes(&mut a, b"some input bytes", b"other"),
                mutate_bytes(&mut b, b"some input bytes", b"other")
            );
        }
    }
}

//! Where the time of a piece of work goes (`sana-sr upscale --profile`): code marks its stages with [`stage`],
//! and [`profiled`] returns, beside the work's result, the seconds each stage took on this thread. A stage's
//! time is its own: a stage inside another counts for itself only, so the stages add up to at most the wall
//! time of the work. Outside [`profiled`], [`stage`] only runs its closure.

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Seconds per stage, in the order the stages first ended.
pub type Stages = Vec<(&'static str, Duration)>;

struct Profile {
    stages: Stages,
    /// Per open stage, the time its nested stages took (to be taken off its own).
    nested: Vec<Duration>,
}

thread_local! {
    static PROFILE: RefCell<Option<Profile>> = const { RefCell::new(None) };
}

/// Runs `work` and returns its result with the time of every [`stage`] it ran on this thread. Profiles do not
/// nest: an inner call's stages are its own.
pub fn profiled<T>(work: impl FnOnce() -> T) -> (T, Stages) {
    let outer = PROFILE.with_borrow_mut(|p| p.replace(Profile { stages: Vec::new(), nested: Vec::new() }));
    let out = work();
    let profile = PROFILE.with_borrow_mut(|p| std::mem::replace(p, outer)).expect("the profile is in force");
    (out, profile.stages)
}

/// Runs `f` as the stage `name` of the work being [`profiled`], if any. On a GPU the device is synchronised
/// before the clock stops, so that a stage is charged with the kernels it queued.
pub fn stage<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    if !PROFILE.with_borrow(Option::is_some) {
        return f();
    }
    PROFILE.with_borrow_mut(|p| p.as_mut().expect("checked").nested.push(Duration::ZERO));
    let started = Instant::now();
    let out = f();
    if tch::Cuda::is_available() {
        (0..tch::Cuda::device_count()).for_each(tch::Cuda::synchronize);
    }
    let elapsed = started.elapsed();
    PROFILE.with_borrow_mut(|p| {
        let p = p.as_mut().expect("a profile outlives its stages");
        let nested = p.nested.pop().expect("pushed above");
        if let Some(parent) = p.nested.last_mut() {
            *parent += elapsed;
        }
        let own = elapsed.saturating_sub(nested);
        match p.stages.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += own,
            None => p.stages.push((name, own)),
        }
    });
    out
}

/// The most memory this process has held at once (Linux's `VmHWM`), where the system says.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The kernel's work for this process so far, where the system says: the page faults served without I/O (each
/// a page touched for the first time, what a one-shot run pays for every new buffer past the heap's high-water
/// mark) and the seconds of system time.
pub fn kernel_work() -> Option<(u64, f64)> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct it is given; it is read only when the call succeeds.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful call above.
        let usage = unsafe { usage.assume_init() };
        let system = usage.ru_stime.tv_sec as f64 + usage.ru_stime.tv_usec as f64 * 1e-6;
        Some((usage.ru_minflt as u64, system))
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_count_their_own_time_and_add_up_to_at_most_the_work() {
        let started = Instant::now();
        let ((), stages) = profiled(|| {
            stage("outer", || {
                std::thread::sleep(Duration::from_millis(10));
                stage("inner", || std::thread::sleep(Duration::from_millis(200)));
            });
            stage("inner", || std::thread::sleep(Duration::from_millis(5)));
        });
        let wall = started.elapsed();
        let names: Vec<&str> = stages.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["inner", "outer"], "in the order they ended, each once");
        let time = |name| stages.iter().find(|(n, _)| *n == name).unwrap().1;
        assert!(time("inner") >= Duration::from_millis(205), "{stages:?}");
        assert!(time("outer") >= Duration::from_millis(10), "{stages:?}");
        // Counting the inner stage inside the outer one too would add 200 ms over the wall time.
        assert!(time("inner") + time("outer") <= wall, "{stages:?} in {wall:?}");
        assert_eq!(stage("alone", || 7), 7, "without a profile a stage just runs");
        assert!(peak_resident_bytes().is_some_and(|b| b > 0) || !cfg!(target_os = "linux"));
    }
}

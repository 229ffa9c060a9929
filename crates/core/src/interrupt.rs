//! Interrupts: SIGINT (Ctrl-C) and SIGTERM end sana-sr cleanly. The file being written is abandoned (its
//! temporary file removed, the destination untouched), one line says what was done, and the exit code is
//! the shell's for the signal: 130 for SIGINT, 143 for SIGTERM.
//!
//! [`install`] blocks both signals in the calling thread, which every thread started later inherits (the
//! tensor backend's worker threads included), and waits for them in a thread of its own (`sigwait`), so the
//! cleanup runs as ordinary code rather than in a signal handler. Files being written register themselves
//! through [`unfinished`] and [`finished`] ([`crate::fs::write_atomically`] does), and commands say what
//! they have done so far through [`set_done`]. SIGKILL cannot be caught: the temporary file it leaves is
//! removed by the next write into its folder ([`crate::fs::remove_stale_temporaries`]).
//!
//! A long-running command with work of its own to wind down (`sana-sr serve`: stop accepting, finish or
//! cancel its jobs) takes the next signal with [`on_next_interrupt`]; a second signal ends the process as
//! above, so that an impatient second Ctrl-C still works.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written, removed on an interrupt.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// What the command has done so far, in words, for the interrupt's line.
static DONE: Mutex<String> = Mutex::new(String::new());

/// What the next signal runs instead of ending the process ([`on_next_interrupt`]), given its name.
type Handler = Box<dyn FnOnce(&'static str) + Send>;
static HANDLER: Mutex<Option<Handler>> = Mutex::new(None);

/// Blocks SIGINT and SIGTERM in this thread and those it starts, and handles them in a thread of its own.
/// Call it once, at start-up, before other threads exist. A process that never calls it keeps the default
/// behaviour (and no cleanup on interrupts).
pub fn install() -> io::Result<()> {
    // SAFETY: plain libc calls on a zeroed, then initialised, signal set owned by this function.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let code = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if code != 0 {
            return Err(io::Error::from_raw_os_error(code));
        }
        set
    };
    std::thread::Builder::new().name("interrupts".into()).spawn(move || loop {
        let mut signal = 0;
        // SAFETY: `set` is an initialised signal set; `signal` receives the number.
        if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
            on_signal(signal);
        }
    })?;
    Ok(())
}

/// The next SIGINT or SIGTERM runs `handler` (with `"SIGINT"` or `"SIGTERM"`, on the interrupt thread)
/// instead of ending the process; the one after that ends it as usual. Needs [`install`].
pub fn on_next_interrupt(handler: impl FnOnce(&'static str) + Send + 'static) {
    *HANDLER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(handler));
}

/// Runs `create`, which makes a temporary file, and registers the file for removal on an interrupt; with
/// the registry locked throughout, so that an interrupt sees either no file or a registered one.
pub fn unfinished(create: impl FnOnce() -> io::Result<tempfile::NamedTempFile>) -> io::Result<tempfile::NamedTempFile> {
    let mut registry = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    let file = create()?;
    registry.push(file.path().to_path_buf());
    Ok(file)
}

/// The temporary file `path` is gone (renamed into place or removed): no interrupt needs to remove it.
pub fn finished(path: &Path) {
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| p != path);
}

/// Says what the command has done so far ("3 of 10 images upscaled"), for the line an interrupt prints.
pub fn set_done(done: impl Into<String>) {
    *DONE.lock().unwrap_or_else(|e| e.into_inner()) = done.into();
}

/// The line an interrupt prints: the signal, what was done, and the temporary files `removed`.
pub fn interrupted_line(signal: &str, done: &str, removed: &[PathBuf]) -> String {
    let mut line = format!("interrupted by {signal}");
    if !done.is_empty() {
        line.push_str(&format!(": {done}"));
    }
    if removed.is_empty() {
        line.push_str("; no file was half-written");
    } else {
        let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        line.push_str(&format!("; the unfinished {} removed", names.join(", ")));
    }
    line
}

fn on_signal(signal: i32) {
    let name = if signal == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
    let handler = HANDLER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(handler) = handler {
        handler(name);
        return;
    }
    // Held until the process ends: no new temporary file can appear after this point.
    let registry = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    let removed: Vec<PathBuf> = registry.iter().filter(|path| std::fs::remove_file(path).is_ok()).cloned().collect();
    let done = DONE.lock().map(|d| d.clone()).unwrap_or_default();
    eprintln!("\n{}", interrupted_line(name, &done, &removed));
    // `_exit`, not `exit`: other threads may be inside the tensor backend, whose static destructors `exit`
    // would run underneath them.
    // SAFETY: ends the process; nothing runs after it.
    unsafe { libc::_exit(128 + signal) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_takes_the_next_signal_once() {
        let (sender, receiver) = std::sync::mpsc::channel();
        on_next_interrupt(move |name| sender.send(name).unwrap());
        // Without the handler this would end the test process with code 143.
        on_signal(libc::SIGTERM);
        assert_eq!(receiver.try_recv(), Ok("SIGTERM"));
        assert!(HANDLER.lock().unwrap().is_none(), "the handler is used once; the next signal ends the process");
    }
}

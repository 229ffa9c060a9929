//! Jobs: what was asked, where each one is (a [`Snapshot`] that clients poll or stream), its result, and
//! their expiry.
//!
//! A job's id is 128 random bits from the operating system's generator: a client can reach only the jobs
//! whose ids it was given, and no id is ever a file name chosen by a client.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use sana_sr_pipeline::{Progress, UpscaleOptions};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The error of a job cancelled because the service is stopping.
pub const SHUTTING_DOWN: &str = "cancelled: the server is shutting down";

/// The error of a job its client cancelled.
pub const CANCELLED: &str = "cancelled";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobId([u8; 16]);

impl JobId {
    pub fn random() -> Self {
        let mut bytes = [0; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// 32 lower-case hex digits, as [`JobId`] prints.
impl FromStr for JobId {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(());
        }
        let mut bytes = [0; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| ())?;
        }
        Ok(Self(bytes))
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl State {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// As the API spells it.
impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        })
    }
}

/// What a job is asked to do, checked when it was submitted.
#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub model: String,
    pub scale: u32,
    /// Largest tile side in output pixels.
    pub tile: u32,
    /// The result's format, as a file extension (`png`, `jpg`, `webp`).
    pub format: String,
    pub input: Size,
    pub output: Size,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Size {
    pub width: u64,
    pub height: u64,
}

impl Spec {
    pub fn options(&self) -> UpscaleOptions {
        UpscaleOptions { scale: Some(self.scale), tile: Some(self.tile), ..Default::default() }
    }
}

/// Seconds spent waiting for a worker and running, so far.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    pub queued_seconds: f64,
    pub running_seconds: f64,
}

/// Where a job is: what `GET /api/jobs/{id}` answers and each server-sent event carries.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub id: JobId,
    pub state: State,
    /// Tiles done of the tiles in all, over all stages (0 of 0 until the job runs).
    pub progress: ProgressJson,
    pub timings: Timings,
    pub error: Option<String>,
    #[serde(flatten)]
    pub spec: Spec,
    /// Where the result is, once there is one.
    pub result: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProgressJson {
    pub done: usize,
    pub total: usize,
}

/// A finished job's encoded image: a file in the service's folder, removed when the job is dropped.
#[derive(Debug)]
pub struct Output {
    pub path: tempfile::TempPath,
    pub content_type: &'static str,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub spec: Spec,
    /// The name the upload came with, for the result's download name (never a path on this machine).
    pub file_name: String,
    /// Cancelled by `DELETE`, by the shutdown, or when the job is forgotten.
    pub cancel: CancellationToken,
    snapshot: watch::Sender<Snapshot>,
    clock: Mutex<Clock>,
    output: Mutex<Option<Arc<Output>>>,
}

#[derive(Debug)]
struct Clock {
    submitted: Instant,
    started: Option<Instant>,
    ended: Option<Instant>,
}

impl Job {
    pub fn new(spec: Spec, file_name: String) -> Arc<Self> {
        let id = JobId::random();
        let snapshot = Snapshot {
            id,
            state: State::Queued,
            progress: ProgressJson::default(),
            timings: Timings::default(),
            error: None,
            spec: spec.clone(),
            result: None,
        };
        Arc::new(Self {
            id,
            spec,
            file_name,
            cancel: CancellationToken::new(),
            snapshot: watch::channel(snapshot).0,
            clock: Mutex::new(Clock { submitted: Instant::now(), started: None, ended: None }),
            output: Mutex::new(None),
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    pub fn state(&self) -> State {
        self.snapshot.borrow().state
    }

    /// Snapshots as they change, the current one first.
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.subscribe()
    }

    pub fn output(&self) -> Option<Arc<Output>> {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// When the job ended, if it has.
    pub fn ended(&self) -> Option<Instant> {
        self.clock.lock().unwrap_or_else(|e| e.into_inner()).ended
    }

    /// A worker has taken the job; false (and nothing changes) when it was cancelled meanwhile.
    pub fn start(&self) -> bool {
        if self.cancel.is_cancelled() {
            self.cancelled();
            return false;
        }
        self.clock.lock().unwrap_or_else(|e| e.into_inner()).started = Some(Instant::now());
        self.update(|s| s.state = State::Running);
        true
    }

    pub fn progress(&self, progress: Progress) {
        self.update(|s| s.progress = ProgressJson { done: progress.done, total: progress.total });
    }

    pub fn finish(&self, output: Output) {
        *self.output.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(output));
        let result = format!("/api/jobs/{}/result", self.id);
        self.end(State::Done, None, Some(result));
    }

    pub fn fail(&self, error: String) {
        self.end(State::Failed, Some(error), None);
    }

    /// Asks the job to stop; one that has not started yet ends here, a running one at its next tile (its
    /// worker then calls [`Self::cancelled`]).
    pub fn cancel(&self, reason: &str) {
        self.update(|s| {
            if !s.state.is_final() && s.error.is_none() {
                s.error = Some(reason.to_string());
            }
        });
        self.cancel.cancel();
        if self.state() == State::Queued {
            self.cancelled();
        }
    }

    /// The job stopped without a result.
    pub fn cancelled(&self) {
        let reason = self.snapshot.borrow().error.clone().unwrap_or_else(|| CANCELLED.to_string());
        self.end(State::Cancelled, Some(reason), None);
    }

    fn end(&self, state: State, error: Option<String>, result: Option<String>) {
        {
            let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
            if clock.ended.is_some() {
                return;
            }
            clock.ended = Some(Instant::now());
        }
        self.update(|s| {
            s.state = state;
            s.error = error;
            s.result = result;
        });
    }

    /// Changes the snapshot (timings brought up to date) and tells those who watch.
    fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        let timings = self.clock.lock().unwrap_or_else(|e| e.into_inner()).timings();
        self.snapshot.send_modify(|snapshot| {
            change(snapshot);
            snapshot.timings = timings;
        });
    }
}

impl Clock {
    fn timings(&self) -> Timings {
        let now = Instant::now();
        let started = self.started.unwrap_or(self.ended.unwrap_or(now));
        Timings {
            queued_seconds: (started - self.submitted).as_secs_f64(),
            running_seconds: self.started.map_or(0.0, |s| (self.ended.unwrap_or(now) - s).as_secs_f64()),
        }
    }
}

/// The jobs a client can still reach.
#[derive(Debug, Default)]
pub struct JobStore {
    jobs: Mutex<HashMap<JobId, Arc<Job>>>,
}

impl JobStore {
    pub fn insert(&self, job: Arc<Job>) {
        self.lock().insert(job.id, job);
    }

    pub fn get(&self, id: JobId) -> Option<Arc<Job>> {
        self.lock().get(&id).cloned()
    }

    /// Forgets the job; its result file goes once no download holds it.
    pub fn remove(&self, id: JobId) -> Option<Arc<Job>> {
        self.lock().remove(&id)
    }

    pub fn all(&self) -> Vec<Arc<Job>> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the jobs that ended more than `keep` ago.
    pub fn expire(&self, keep: Duration) {
        self.lock().retain(|_, job| job.ended().is_none_or(|ended| ended.elapsed() <= keep));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Expires finished jobs every so often (a tenth of the keeping time, between 1 and 60 seconds).
pub async fn expire_forever(state: Arc<AppState>) {
    let keep = state.config.keep_results;
    let every = (keep / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        state.jobs.expire(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        let size = Size { width: 8, height: 8 };
        Spec { model: "m".into(), scale: 4, tile: 1024, format: "png".into(), input: size, output: size }
    }

    #[test]
    fn ids_are_random_and_parse_back_from_their_text_only() {
        let (a, b) = (JobId::random(), JobId::random());
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(a.to_string().parse::<JobId>(), Ok(a));
        for bad in ["", "../etc/passwd", &a.to_string().to_uppercase(), &format!("{a}0"), "g".repeat(32).as_str()] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_queued_job_cancels_at_once_and_keeps_its_reason() {
        let job = Job::new(spec(), "a.png".into());
        job.cancel(SHUTTING_DOWN);
        let snapshot = job.snapshot();
        assert_eq!(snapshot.state, State::Cancelled);
        assert_eq!(snapshot.error.as_deref(), Some(SHUTTING_DOWN));
        assert_eq!(serde_json::to_value(snapshot.state).unwrap(), State::Cancelled.to_string());
        // A running one ends when its worker says so.
        let job = Job::new(spec(), "b.png".into());
        assert!(job.start());
        job.cancel(CANCELLED);
        assert_eq!(job.state(), State::Running);
        assert!(job.cancel.is_cancelled());
        job.cancelled();
        assert_eq!(job.state(), State::Cancelled);
        // An ended job stays as it ended, and one cancelled before its worker took it does not start.
        job.fail("late".into());
        assert_eq!(job.state(), State::Cancelled);
        assert!(!job.start());
        assert_eq!(job.state(), State::Cancelled);
    }

    #[test]
    fn only_jobs_ended_longer_ago_than_the_keeping_time_expire() {
        let store = JobStore::default();
        let (running, ended) = (Job::new(spec(), "a".into()), Job::new(spec(), "b".into()));
        assert!(running.start());
        ended.fail("x".into());
        store.insert(running.clone());
        store.insert(ended.clone());
        store.expire(Duration::from_secs(60));
        assert_eq!(store.len(), 2);
        std::thread::sleep(Duration::from_millis(20));
        store.expire(Duration::from_millis(10));
        assert!(store.get(running.id).is_some() && store.get(ended.id).is_none());
    }
}

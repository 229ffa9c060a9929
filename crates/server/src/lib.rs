//! `sana-sr serve`: one process that keeps a model loaded and upscales photos for many users, over HTTP and
//! from a web page.
//!
//! A request uploads a photo ([`upload`]), which is checked from its header (pixel count, format) and becomes
//! a job ([`jobs`]) in a bounded queue; a fixed number of workers ([`queue`]) run the jobs one at a time each,
//! in tiles, so that memory is bounded by workers × tile whatever the number of requests; the result waits,
//! encoded, in a file of the server's own until it is fetched, deleted or expires. The routes, their errors and
//! the page are in [`api`], [`error`] and [`page`]; the Prometheus figures in [`metrics`].

pub mod api;
pub mod auth;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod page;
pub mod queue;
pub mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sana_sr_core::{precision::Precision, Device};
use sana_sr_pipeline::ModelSource;
pub use tokio_util::sync::CancellationToken;

use crate::jobs::{JobId, JobStore, State};
use crate::metrics::Metrics;
use crate::models::Catalogue;
use crate::queue::Queue;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The model a job runs when it names none; loaded before the service answers.
    pub model: ModelSource,
    pub device: Device,
    /// What the networks compute in (`sana-sr upscale --precision`).
    pub precision: Precision,
    /// Jobs that run at once, each on one image in tiles.
    pub workers: usize,
    /// Jobs that may wait for a worker (uploads in progress included); past it a request gets 429.
    pub max_queue: usize,
    /// The largest upload, in bytes; past it a request gets 413.
    pub max_upload_bytes: u64,
    /// When set, every API route wants `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// How long a finished job and its result are kept after it ends.
    pub keep_results: Duration,
    /// How long running jobs may go on after a shutdown begins before they are cancelled.
    pub shutdown_grace: Duration,
    /// Where the service makes its own temporary folder (uploads waiting for a worker, results).
    pub temp_dir: PathBuf,
}

impl Config {
    /// The defaults of `sana-sr serve`, with `model` on `device`.
    pub fn new(model: ModelSource, device: Device) -> Self {
        Self {
            model,
            device,
            precision: Precision::Auto,
            workers: 1,
            max_queue: 16,
            max_upload_bytes: 50 << 20,
            token: None,
            keep_results: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(30),
            temp_dir: std::env::temp_dir(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("cannot load the model: {0}")]
    Model(#[from] sana_sr_pipeline::RegistryError),
    #[error("cannot make the service's temporary folder in {path}: {source}")]
    TempDir { path: PathBuf, source: std::io::Error },
    #[error("the service failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What the service shared between its routes, its workers and its shutdown.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub models: Catalogue,
    pub jobs: JobStore,
    pub queue: Queue,
    pub metrics: Metrics,
    /// Set when a shutdown begins: new jobs get 503.
    pub stopping: CancellationToken,
    /// The service's own folder; removed, with anything left in it, when the service ends.
    pub files: tempfile::TempDir,
}

/// How each job that was still known when the service stopped ended: every accepted job that was not
/// deleted or expired, finished or cancelled, none left queued or running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub jobs: Vec<(JobId, State)>,
}

impl Report {
    /// One line: how many jobs ended each way.
    pub fn summary(&self) -> String {
        let count = |state| self.jobs.iter().filter(|(_, s)| *s == state).count();
        format!(
            "{} jobs known at shutdown: {} done, {} failed, {} cancelled",
            self.jobs.len(),
            count(State::Done),
            count(State::Failed),
            count(State::Cancelled)
        )
    }
}

impl AppState {
    /// Checks `config`, starts the workers with its model loaded (blocking: seconds) and makes the service's
    /// folder.
    pub fn new(config: Config) -> Result<Arc<Self>, ServeError> {
        if config.workers == 0 {
            return Err(ServeError::Zero("the number of workers"));
        }
        if config.max_queue == 0 {
            return Err(ServeError::Zero("the queue length"));
        }
        let files = tempfile::Builder::new()
            .prefix("sana-sr-serve-")
            .tempdir_in(&config.temp_dir)
            .map_err(|source| ServeError::TempDir { path: config.temp_dir.clone(), source })?;
        let models = Catalogue::new(&config.model)?;
        let default = models.default_model();
        let queue = Queue::new(
            config.workers,
            config.max_queue,
            &default.entry.name,
            &default.source,
            config.device,
            config.precision,
        )?;
        Ok(Arc::new(Self {
            models,
            queue,
            jobs: JobStore::default(),
            metrics: Metrics::default(),
            stopping: CancellationToken::new(),
            files,
            config,
        }))
    }
}

/// Serves `state` on `listener` until `shutdown` is cancelled, then stops accepting, cancels the jobs still
/// waiting, gives the running ones [`Config::shutdown_grace`] to finish before cancelling them, and reports
/// how every job ended.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<Report, ServeError> {
    let expiry = tokio::spawn(jobs::expire_forever(state.clone()));
    let app = api::router(state.clone());
    let stop_accepting = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { stop_accepting.cancelled().await }).await
    });

    shutdown.cancelled().await;
    state.stopping.cancel();
    for job in state.jobs.all() {
        if job.state() == State::Queued {
            job.cancel(jobs::SHUTTING_DOWN);
        }
    }
    if tokio::time::timeout(state.config.shutdown_grace, state.queue.idle()).await.is_err() {
        for job in state.jobs.all() {
            job.cancel(jobs::SHUTTING_DOWN);
        }
        state.queue.idle().await;
    }
    expiry.abort();
    let _ = expiry.await;
    // Every job has ended, so every event stream has too; connections still open are idle ones, which the
    // graceful shutdown closes. A client that keeps a download open is not waited for long.
    match tokio::time::timeout(Duration::from_secs(5), http).await {
        Ok(served) => served.expect("the HTTP task does not panic")?,
        Err(_) => eprintln!("serve: connections still open after the jobs ended were closed"),
    }
    let mut jobs: Vec<(JobId, State)> = state.jobs.all().iter().map(|job| (job.id, job.state())).collect();
    jobs.sort_by_key(|(id, _)| id.to_string());
    Ok(Report { jobs })
}

/// [`serve`] on a runtime of its own, for a caller without one (the command line).
pub fn serve_blocking(
    config: Config,
    listener: std::net::TcpListener,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> Result<Report, ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let state = AppState::new(config)?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        on_ready(address);
        serve(state, listener, shutdown).await
    })
}

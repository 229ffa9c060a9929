//! The bounded queue and its workers.
//!
//! A request takes a place in the queue ([`Queue::reserve`]) before its upload is read, so a full queue is
//! a 429 that costs no upload; the place is held until a worker takes the job. The workers are threads of
//! their own, each holding its own copy of the models it has run (a libtorch module may be used by one
//! thread at a time), and a job waits for one of them: at most `workers` jobs decode, upscale and encode at
//! once, so memory is bounded by workers × (models + image + tile) and the disk by the queue × the largest
//! upload, never by the number of requests.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use sana_sr_core::{precision::Precision, Device};
use sana_sr_data::io::{read_image_and_metadata, write_image_with_metadata, Encoding, ReadOptions, WriteOptions};
use sana_sr_data::metadata::software_marker;
use sana_sr_pipeline::{ModelSource, RegistryError, UpscaleError, UpscaleOptions, Upscaler};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::jobs::{Job, Output};
use crate::metrics::Outcome;
use crate::AppState;

#[derive(Debug)]
pub struct Queue {
    places: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    workers_count: usize,
    max_queue: usize,
    tasks: TaskTracker,
    /// How long the last job ran, in milliseconds: what a 429's `Retry-After` is reckoned from.
    last_job_millis: AtomicU64,
    /// To the worker threads, which end when it is dropped.
    work: mpsc::Sender<Work>,
}

/// A job for a worker thread, and where its result goes.
struct Work {
    job: Arc<Job>,
    model: ModelSource,
    input: tempfile::TempPath,
    folder: PathBuf,
    done: oneshot::Sender<Result<Output, JobError>>,
}

/// A place in the queue, given back when a worker takes the job (or the request fails).
#[derive(Debug)]
pub struct Place {
    _held: OwnedSemaphorePermit,
}

impl Queue {
    /// The queue and `workers` threads, each with `model` (named `name`) loaded on `device` (blocking:
    /// seconds per worker), upscaling in `precision`.
    pub fn new(
        workers: usize,
        max_queue: usize,
        name: &str,
        model: &ModelSource,
        device: Device,
        precision: Precision,
    ) -> Result<Self, crate::ServeError> {
        let (work, receiver) = mpsc::channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..workers {
            let loaded = HashMap::from([(name.to_string(), load(model, device, precision)?)]);
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work_forever(&receiver, loaded, device, precision))?;
        }
        Ok(Self {
            places: Arc::new(Semaphore::new(max_queue)),
            workers: Arc::new(Semaphore::new(workers)),
            workers_count: workers,
            max_queue,
            tasks: TaskTracker::new(),
            last_job_millis: AtomicU64::new(1000),
            work,
        })
    }

    /// A place in the queue, or `None` when it is full.
    pub fn reserve(&self) -> Option<Place> {
        self.places.clone().try_acquire_owned().ok().map(|permit| Place { _held: permit })
    }

    /// Jobs waiting for a worker, uploads being read included.
    pub fn len(&self) -> usize {
        self.max_queue - self.places.available_permits()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When a refused client may try again: about when the workers will have taken a job off a full queue
    /// (the last job's time over the workers), 1 to 60 seconds.
    pub fn retry_after_seconds(&self) -> u64 {
        let workers = self.workers_count.max(1) as u64;
        (self.last_job_millis.load(Ordering::Relaxed) / workers).div_ceil(1000).clamp(1, 60)
    }

    /// Runs `job` with `model` when a worker is free; `input` is its upload, removed when the job ends.
    pub fn start(
        &self,
        state: Arc<AppState>,
        job: Arc<Job>,
        model: ModelSource,
        input: tempfile::TempPath,
        place: Place,
    ) {
        let (workers, work) = (self.workers.clone(), self.work.clone());
        self.tasks.spawn(async move {
            let worker = tokio::select! {
                worker = workers.acquire_owned() => worker.expect("the worker semaphore is never closed"),
                () = job.cancel.cancelled() => {
                    state.metrics.ended(Outcome::Cancelled);
                    return;
                }
            };
            drop(place);
            if !job.start() {
                state.metrics.ended(Outcome::Cancelled);
                return;
            }
            let started = Instant::now();
            let (done, result) = oneshot::channel();
            let folder = state.files.path().to_path_buf();
            let sent = work.send(Work { job: job.clone(), model, input, folder, done });
            let result = match sent {
                Ok(()) => result.await.unwrap_or(Err(JobError::WorkerGone)),
                Err(_) => Err(JobError::WorkerGone),
            };
            drop(worker);
            state.queue.last_job_millis.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            match result {
                Ok(output) => {
                    let megapixels = (job.spec.output.width * job.spec.output.height) as f64 / 1e6;
                    state.metrics.seconds_per_megapixel(started.elapsed().as_secs_f64() / megapixels.max(1e-6));
                    state.metrics.ended(Outcome::Done);
                    job.finish(output);
                }
                Err(JobError::Upscale(UpscaleError::Cancelled)) => {
                    state.metrics.ended(Outcome::Cancelled);
                    job.cancelled();
                }
                Err(error) => {
                    state.metrics.ended(Outcome::Failed);
                    job.fail(error.to_string());
                }
            }
        });
    }

    /// Waits until no job is queued or running. Meant for the shutdown: afterwards new jobs still run, but
    /// the next call does not wait for them unless they are running already.
    pub async fn idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("{0}")]
    Read(String),
    #[error("{0}")]
    Upscale(#[from] UpscaleError),
    #[error("cannot encode the result: {0}")]
    Write(sana_sr_data::io::IoError),
    #[error("cannot load the model: {0}")]
    Load(sana_sr_pipeline::RegistryError),
    #[error("the worker stopped: {0}")]
    Panicked(String),
    #[error("no worker took the job (the server is stopping)")]
    WorkerGone,
}

/// A worker's upscaler: the service runs in one precision, so its weights are converted rather than held twice.
fn load(model: &ModelSource, device: Device, precision: Precision) -> Result<Upscaler, RegistryError> {
    Ok(Upscaler::load(model, device)?.in_one_precision(precision))
}

/// A worker thread: takes jobs until the queue is dropped, loading each model the first time a job names it.
fn work_forever(
    receiver: &Mutex<mpsc::Receiver<Work>>,
    mut loaded: HashMap<String, Upscaler>,
    device: Device,
    precision: Precision,
) {
    loop {
        let next = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(Work { job, model, input, folder, done }) = next else { return };
        let name = job.spec.model.clone();
        let upscaler = match loaded.entry(name) {
            std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                load(&model, device, precision).map(|upscaler| entry.insert(upscaler)).map_err(JobError::Load)
            }
        };
        // A panic fails the job, not the worker.
        let result = upscaler.and_then(|upscaler| {
            catch_unwind(AssertUnwindSafe(|| run(&job, upscaler, precision, &input, &folder)))
                .unwrap_or_else(|panic| Err(JobError::Panicked(format!("{panic:?}"))))
        });
        drop(input);
        let _ = done.send(result);
    }
}

/// One job on a worker's thread: decode, upscale (stopping at the next tile once cancelled), encode with the
/// upload's colour profile, EXIF and resolution carried over as `upscale` carries them.
fn run(job: &Job, upscaler: &Upscaler, precision: Precision, input: &Path, folder: &Path) -> Result<Output, JobError> {
    let (image, metadata) = read_image_and_metadata(input, &ReadOptions::default())
        .map_err(|error| JobError::Read(crate::upload::as_upload(&error, input, &job.file_name)))?;
    let options = UpscaleOptions { precision, ..job.spec.options() };
    let upscaled = upscaler.upscale_interruptible(&image, &options, |progress| {
        job.progress(progress);
        if job.cancel.is_cancelled() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    drop(image);
    if job.cancel.is_cancelled() {
        return Err(UpscaleError::Cancelled.into());
    }
    // The name is the job's random id: nothing a client sent becomes a path.
    let path = folder.join(format!("{}.{}", job.id, job.spec.format));
    let encoding = Encoding::from_path(&path).expect("the format was checked when the job was submitted");
    // JPEG has no alpha channel.
    let upscaled = if matches!(encoding, Encoding::Jpeg { .. }) { upscaled.to_rgb() } else { upscaled };
    let software = software_marker(job.spec.scale, &job.spec.model);
    let metadata = metadata.upscaled(upscaled.width as u32, upscaled.height as u32, job.spec.scale, &software);
    write_image_with_metadata(&upscaled, &path, &WriteOptions { encoding, overwrite: false }, &metadata)
        .map_err(JobError::Write)?;
    let path = tempfile::TempPath::try_from_path(&path)
        .map_err(|source| JobError::Write(sana_sr_data::io::IoError::Write { path, source }))?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(Output { path, content_type: crate::upload::content_type(&job.spec.format), bytes })
}

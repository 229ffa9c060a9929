//! The routes: the page, the job API, the model list, health and metrics.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use futures_util::Stream;
use tokio_util::io::ReaderStream;

use crate::error::ApiError;
use crate::jobs::{Job, JobId, Snapshot, CANCELLED};
use crate::metrics::Outcome;
use crate::{auth, page, upload, AppState};

/// Room for the form around the file: field headers and the option fields.
const FORM_OVERHEAD: u64 = 64 << 10;

pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = usize::try_from(state.config.max_upload_bytes.saturating_add(FORM_OVERHEAD)).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/api/jobs", post(submit))
        .route("/api/jobs/{id}", get(status).delete(delete))
        .route("/api/jobs/{id}/events", get(events))
        .route("/api/jobs/{id}/result", get(result))
        .route("/api/models", get(models))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new().route("/", get(page::index)).route("/healthz", get(healthz)).merge(api).with_state(state)
}

/// `POST /api/jobs`: a multipart form (the file in `image`; `model`, `scale`, `tile`, `format`) to a queued
/// job, `202 {"id": ...}`.
async fn submit(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse, ApiError> {
    if state.stopping.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    // Before the upload is read: a full queue costs no upload.
    let Some(place) = state.queue.reserve() else {
        state.metrics.ended(Outcome::Rejected);
        return Err(ApiError::QueueFull { queue: state.queue.len(), retry_after: state.queue.retry_after_seconds() });
    };
    let form = form.map_err(|rejection| ApiError::BadForm(rejection.body_text()))?;
    let upload = upload::receive(form, state.files.path()).await?;
    // Reading a header blocks; a client gone meanwhile leaves the upload to the closure, which drops it,
    // and its file, when it ends.
    let checking = state.clone();
    let (upload, checked) = tokio::task::spawn_blocking(move || {
        let checked = upload::check(&upload, &checking.models);
        (upload, checked)
    })
    .await
    .map_err(|panic| ApiError::Internal(format!("checking the upload failed: {panic}")))?;
    let (spec, model) = checked?;
    if state.stopping.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let job = Job::new(spec, upload.file_name);
    state.jobs.insert(job.clone());
    state.queue.start(state.clone(), job.clone(), model, upload.file, place);
    let location = format!("/api/jobs/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(serde_json::json!({ "id": job.id }))))
}

fn find(state: &AppState, id: &str) -> Result<Arc<Job>, ApiError> {
    id.parse::<JobId>().ok().and_then(|id| state.jobs.get(id)).ok_or_else(|| ApiError::NoJob(id.to_string()))
}

/// `GET /api/jobs/{id}`: state, progress, timings, error.
async fn status(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Snapshot>, ApiError> {
    Ok(Json(find(&state, &id)?.snapshot()))
}

/// `GET /api/jobs/{id}/events`: the job's snapshot as server-sent events (`event: job`), one now and one at
/// each change, until it has ended.
async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // The current snapshot at once, then one per change; the stream ends after the job's last one.
    let first = Some((find(&state, &id)?.watch(), true));
    let stream = futures_util::stream::unfold(first, |next| async move {
        let (mut changes, first) = next?;
        if !first {
            changes.changed().await.ok()?;
        }
        let snapshot = changes.borrow_and_update().clone();
        let event = Event::default().event("job").json_data(&snapshot).expect("a snapshot serializes");
        Some((Ok(event), (!snapshot.state.is_final()).then_some((changes, false))))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /api/jobs/{id}/result`: the upscaled image, once the job is done.
async fn result(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find(&state, &id)?;
    let output =
        job.output().ok_or_else(|| ApiError::NoResult(format!("job `{id}` is {}: it has no result", job.state())))?;
    // Open before answering: the file stays readable for this download even if the job expires meanwhile.
    let file = tokio::fs::File::open(&output.path).await?;
    let stem = job.file_name.rsplit_once('.').map_or(job.file_name.as_str(), |(stem, _)| stem);
    let name = format!("{stem}_x{}.{}", job.spec.scale, job.spec.format);
    Ok((
        [
            (header::CONTENT_TYPE, output.content_type.to_string()),
            (header::CONTENT_LENGTH, output.bytes.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        Body::from_stream(ReaderStream::new(file)),
    )
        .into_response())
}

/// `DELETE /api/jobs/{id}`: cancels a queued or running job and forgets it (and its result).
async fn delete(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Snapshot>, ApiError> {
    let job = find(&state, &id)?;
    state.jobs.remove(job.id);
    job.cancel(CANCELLED);
    Ok(Json(job.snapshot()))
}

/// `GET /api/models`: the models a job may name, the result formats and the upload limit.
async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "models": state.models.list(),
        "formats": upload::FORMATS,
        "max_upload_bytes": state.config.max_upload_bytes,
    }))
}

/// `GET /healthz`: 200 while the server takes jobs, 503 once it is shutting down.
async fn healthz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.stopping.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

/// `GET /metrics`: Prometheus' text format (OpenMetrics).
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(state.queue.len()),
    )
}

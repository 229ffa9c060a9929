//! The API's errors: a JSON body `{"error": MESSAGE, "status": CODE}` with the status that says what went
//! wrong, so that a script can tell a bad request from a busy server.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the form cannot be read, or lacks the image.
    #[error("{0}")]
    BadForm(String),
    /// 401
    #[error("this server wants `Authorization: Bearer TOKEN` with its token")]
    Unauthorized,
    /// 404
    #[error("no job `{0}` (never made, deleted, or expired)")]
    NoJob(String),
    /// 409: the job has no result (yet, or ever).
    #[error("{0}")]
    NoResult(String),
    /// 413: the upload, or its pixel count, is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: the file is not an image sana-sr reads.
    #[error("{0}")]
    NotAnImage(String),
    /// 422: an option the model or the server does not take.
    #[error("{0}")]
    BadOption(String),
    /// 429, with the seconds after which to try again.
    #[error("the queue is full ({queue} jobs waiting); try again in {retry_after} s")]
    QueueFull { queue: usize, retry_after: u64 },
    /// 503
    #[error("the server is shutting down")]
    ShuttingDown,
    /// 500
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadForm(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NoJob(_) => StatusCode::NOT_FOUND,
            Self::NoResult(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotAnImage(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadOption(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(error: std::io::Error) -> Self {
        Self::Internal(format!("the server cannot store the upload: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({ "error": self.to_string(), "status": status.as_u16() }));
        let mut response = (status, body).into_response();
        if let Self::QueueFull { retry_after, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
        }
        if let Self::Unauthorized = self {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

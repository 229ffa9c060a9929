//! `--token`: every API route wants `Authorization: Bearer TOKEN`; the page itself and `/healthz` do not
//! (the page asks for the token, and a load balancer's health check has none).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// Lets the request through when the server has no token or the request carries it.
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.token {
        let given =
            request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // In constant time, so that the answer's timing says nothing about how much of a guess was right.
        if !given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes()))) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

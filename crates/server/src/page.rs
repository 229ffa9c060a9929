//! The web page at `/`: one HTML file with its CSS and JavaScript inline (`page/index.html`), compiled into
//! the binary, so that users need no build step and no other file. It talks to the API like any client.

use axum::http::header;
use axum::response::{Html, IntoResponse};

const INDEX: &str = include_str!("page/index.html");

pub async fn index() -> impl IntoResponse {
    (
        [
            // Everything the page needs is inline or from this server; images are shown from blob: URLs.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(INDEX),
    )
}

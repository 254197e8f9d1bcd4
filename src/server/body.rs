//! Request bodies read whole, within a size and a time limit: what the HTTP ingest
//! endpoints share before they parse.

use axum::body::{Body, Bytes};
use std::time::Duration;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(
        "the body did not arrive within {} (server.handshake_timeout)",
        humantime::format_duration(*.0)
    )]
    Late(Duration),
    /// Over the limit; the caller names the setting.
    #[error("the body is over {0} bytes")]
    TooLarge(usize),
}

/// The whole body, at most `max` bytes, arriving within `wait`.
pub async fn read(body: Body, max: usize, wait: Duration) -> Result<Bytes, BodyError> {
    tokio::time::timeout(wait, axum::body::to_bytes(body, max))
        .await
        .map_err(|_| BodyError::Late(wait))?
        .map_err(|_| BodyError::TooLarge(max))
}

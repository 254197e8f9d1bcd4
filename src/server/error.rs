//! HTTP errors: one type, mapped once to `{"error": code, "detail": ...}` responses
//! (docs/http-api.md). Storage failures are mapped here and nowhere else: what the caller can
//! fix becomes a 400/404 naming it; anything else is a 503 with `Retry-After` and no
//! database text in the body (the log has it).

use crate::storage::StorageError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The `error` code of an HTTP error body; each has one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    /// A well-formed query the data cannot answer (an aggregate a value type lacks).
    InvalidQuery,
    Unauthorized,
    Forbidden,
    NotFound,
    /// The request conflicts with the resource's state (a terminal command, docs/commands.md).
    Conflict,
    TooLarge,
    /// A bound on open work was reached (`[commands] max_open`, ...).
    TooMany,
    Unavailable,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidQuery => "invalid_query",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::TooMany => "too_many",
            Self::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::InvalidQuery => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooMany => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("{}: {detail}", kind.as_str())]
pub struct ApiError {
    pub kind: ErrorKind,
    pub detail: String,
    /// Seconds for `Retry-After` on 503 (1 when not set).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, detail)
    }
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, detail)
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::DeviceExists(_)
            | StorageError::UnknownTarget(_)
            | StorageError::DuplicateTarget(_)
            | StorageError::Conflict(_)
            | StorageError::AlertRuleExists(_) => Self::bad_request(e.to_string()),
            StorageError::NoSuchDevice(name) => Self::not_found(format!("no device {name}")),
            StorageError::NoSuchAlertRule(_) => Self::not_found(e.to_string()),
            StorageError::InvalidQuery(detail) => Self::new(ErrorKind::InvalidQuery, detail),
            StorageError::TooManyCommands(_) => Self::new(ErrorKind::TooMany, e.to_string()),
            other => {
                tracing::warn!(error = %crate::domain::untrusted(&other.to_string()), "storage error answering an HTTP request");
                Self::unavailable("storage is unavailable; retry later (the hub's log says why)")
            }
        }
    }
}

/// A history read refused for its size or shape: 400; storage failures as above.
impl From<crate::storage::history::HistoryError> for ApiError {
    fn from(e: crate::storage::history::HistoryError) -> Self {
        match e {
            crate::storage::history::HistoryError::Storage(e) => e.into(),
            e => Self::bad_request(e.to_string()),
        }
    }
}

/// A refused `/v1/readings` query string: 400, naming the parameter.
impl From<super::readings_params::QueryError> for ApiError {
    fn from(e: super::readings_params::QueryError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.kind.as_str(), "detail": self.detail});
        let mut resp = (self.kind.status(), Json(body)).into_response();
        resp.extensions_mut()
            .insert(super::refusals::Refusal(self.detail));
        if self.kind == ErrorKind::Unavailable {
            resp.headers_mut().insert(
                "retry-after",
                axum::http::HeaderValue::from(self.retry_after.unwrap_or(1)),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_what_the_caller_can_do_without_database_text() {
        let e = ApiError::from(StorageError::NoSuchDevice("d1".into()));
        assert_eq!(
            (e.kind, e.detail.as_str()),
            (ErrorKind::NotFound, "no device d1")
        );
        let e = ApiError::from(StorageError::UnknownTarget("ghost".into()));
        assert_eq!(e.kind, ErrorKind::BadRequest);
        assert!(e.detail.contains("ghost"), "{}", e.detail);
        let e = ApiError::from(StorageError::DeviceExists("d1".into()));
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let secret = "relation \"readings\" does not exist at line 948";
        let e = ApiError::from(StorageError::Db(sqlx::Error::Protocol(secret.into())));
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(!e.detail.contains("readings"), "{}", e.detail);
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "1");
    }
}

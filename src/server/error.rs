//! HTTP errors: one type, mapped once to `{"error": code, "detail": ...}` responses
//! (docs/http-api.md). Storage failures are mapped here and nowhere else: what the caller can
//! fix becomes a 400/404 naming it; anything else is a 503 with `Retry-After` and no
//! database text in the body (the log has it). [`json_errors`] gives the errors no handler
//! wrote (no such route, a method a route lacks, a body over its limit, a query string or
//! path the extractors refuse) the same JSON shape.

use crate::storage::StorageError;
use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
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
    /// The route exists, the method does not (`Allow` names the ones that do).
    MethodNotAllowed,
    /// A body of a type the route does not read (JSON without `Content-Type: application/json`).
    UnsupportedMediaType,
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
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType => "unsupported_media_type",
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
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
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
            StorageError::NoSuchAlertRule(_)
            | StorageError::NotFiring
            | StorageError::NoSuchSilence(_) => Self::not_found(e.to_string()),
            StorageError::TooManySilences(_) => Self::new(ErrorKind::TooMany, e.to_string()),
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

/// A JSON body the extractor refused: 413 over the body limit, 415 without a JSON content
/// type, else 400 naming what is wrong (axum's 422 for a well-formed body of the wrong shape
/// is a 400 here, as every other refused field is).
impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let kind = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::UnsupportedMediaType,
            _ => ErrorKind::BadRequest,
        };
        Self::new(kind, e.body_text())
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

/// The most bytes of a framework-written error text carried over into `detail`.
const MAX_FRAMEWORK_DETAIL: usize = 1024;

/// Middleware: an error response that is not JSON (axum's own 404, 405, 413, extractor
/// rejections) is rewritten as `{"error", "detail"}` with the code of its status; JSON errors
/// (ours, InfluxDB's shapes on `/api/v2/write` and `/query`) pass untouched.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_FRAMEWORK_DETAIL)
        .await
        .unwrap_or_default();
    let kind = match status {
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorKind::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::UnsupportedMediaType,
        StatusCode::UNAUTHORIZED => ErrorKind::Unauthorized,
        StatusCode::FORBIDDEN => ErrorKind::Forbidden,
        s if s.is_server_error() => ErrorKind::Unavailable,
        _ => ErrorKind::BadRequest,
    };
    let detail = match String::from_utf8_lossy(&text).trim() {
        "" => match kind {
            ErrorKind::NotFound => "no such route; see docs/http-api.md".to_owned(),
            ErrorKind::MethodNotAllowed => {
                let allow = parts
                    .headers
                    .get(header::ALLOW)
                    .and_then(|v| v.to_str().ok());
                format!("this route takes {}", allow.unwrap_or("other methods"))
            }
            _ => status.canonical_reason().unwrap_or("refused").to_owned(),
        },
        t => t.to_owned(),
    };
    let mut out = ApiError::new(kind, detail).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
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

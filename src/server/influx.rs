//! InfluxDB's write endpoints (docs/protocol.md §5), so Telegraf and InfluxDB client libraries
//! feed the hub: `POST /api/v2/write?bucket=B&precision=ns|us|ms|s` and
//! `POST /write?db=B&precision=...` (1.x).
//!
//! The token is `Authorization: Token T` or `Bearer T` (1.x also `?p=T` or basic auth
//! with the token as password) and must be a device's. The body (`Content-Encoding: gzip`
//! allowed, inflated at most to `http.max_write_bytes`) is parsed by
//! [`crate::protocol::line`] and goes through the ingest pipeline like any message: all or
//! nothing, answered `204` after commit. Errors use InfluxDB's JSON shape,
//! `{"code": "invalid", "message": "line 3: ..."}`, so its clients print them.

use super::HubState;
use super::authn::{AuthError, DeviceCaller};
use super::body::{self, BodyError};
use crate::ingest::Sender;
use crate::protocol::ingest::{DeviceMessage, ErrorCode, Reply};
use crate::protocol::line::{Precision, parse_body};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

/// An answer in InfluxDB's error shape.
#[derive(Debug)]
pub struct WriteError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl WriteError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
}

impl IntoResponse for WriteError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.code, "message": self.message});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        resp
    }
}

/// The version InfluxDB 1.x clients are told (`X-Influxdb-Version`).
pub const VERSION: &str = "1.8-compatible (telehub)";

/// `GET`/`HEAD /ping`: what InfluxDB 1.x clients (the `influx` shell) call before writing.
pub async fn ping() -> Response {
    (StatusCode::NO_CONTENT, [("x-influxdb-version", VERSION)]).into_response()
}

/// `POST /api/v2/write` and `POST /write`.
pub async fn write(
    State(hub): State<Arc<HubState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, WriteError> {
    let precision = match q.get("precision").map(String::as_str) {
        None | Some("") => Precision::Nanoseconds,
        Some(p) => Precision::parse(p).ok_or_else(|| {
            WriteError::invalid(format!(
                "precision {p:?}: expected ns, us, ms or s (1.x also n, u, m, h)"
            ))
        })?,
    };
    let caller = authenticate(&hub, &headers, &q).await?;
    let text = read_body(&hub, &headers, body).await?;
    let max = hub.settings.http.max_write_readings;
    let readings = parse_body(&text, precision, &hub.ingest.limits(max))
        .map_err(|e| WriteError::invalid(e.to_string()))?;
    let from = Sender {
        device: &caller.device,
        gateway_for: &caller.gateway_for,
        transport: crate::domain::Transport::Line,
    };
    let message = DeviceMessage { id: None, readings };
    match hub.ingest.accept_parsed(from, message).await.await {
        Reply::Ack { .. } => Ok(StatusCode::NO_CONTENT),
        Reply::Nack { error, detail, .. } => Err(match error {
            ErrorCode::RateLimited => {
                WriteError::new(StatusCode::TOO_MANY_REQUESTS, "too many requests", detail)
            }
            ErrorCode::Unavailable => {
                WriteError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
            }
            ErrorCode::ForbiddenDevice => {
                WriteError::new(StatusCode::FORBIDDEN, "forbidden", detail)
            }
            _ => WriteError::invalid(detail),
        }),
    }
}

/// The device whose token the request carries, answered in InfluxDB's error shape.
async fn authenticate(
    hub: &HubState,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<DeviceCaller, WriteError> {
    let token = token_of(headers, q);
    DeviceCaller::authenticate(hub, token.as_deref())
        .await
        .map_err(|e| {
            let unauthorized =
                |m: &str| WriteError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
            match e {
                AuthError::MissingToken => unauthorized(
                    "missing token: send `Authorization: Token <device token>` (1.x: also ?p=)",
                ),
                AuthError::UnknownToken => unauthorized("unknown or revoked token"),
                AuthError::Storage(e) => {
                    tracing::warn!(error = %e, "storage error authenticating a write");
                    WriteError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "storage is unavailable; retry later",
                    )
                }
                AuthError::NotADevice => WriteError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "writes need a device token; viewer and admin tokens cannot send readings",
                ),
            }
        })
}

/// `Authorization: Token T` / `Bearer T` / `Basic base64(user:T)`, or 1.x `?p=T`.
pub(super) fn token_of(headers: &HeaderMap, q: &HashMap<String, String>) -> Option<String> {
    if let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    {
        let (scheme, rest) = h.split_once(' ')?;
        let rest = rest.trim();
        return match scheme.to_ascii_lowercase().as_str() {
            "token" | "bearer" => Some(rest.to_owned()),
            "basic" => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()?;
                let pair = String::from_utf8(raw).ok()?;
                pair.split_once(':').map(|(_, p)| p.to_owned())
            }
            _ => None,
        };
    }
    q.get("p").filter(|p| !p.is_empty()).cloned()
}

/// The body as text: at most `http.max_write_bytes`, inflated first when gzipped (never
/// past the limit, so a small bomb cannot make the hub inflate gigabytes).
async fn read_body(hub: &HubState, headers: &HeaderMap, body: Body) -> Result<String, WriteError> {
    let max = hub.settings.http.max_write_bytes;
    let too_large = || {
        WriteError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request too large",
            format!("the body is over {max} bytes (http.max_write_bytes); send smaller batches"),
        )
    };
    let wait = hub.settings.server.handshake_timeout;
    let raw = body::read(body, max, wait).await.map_err(|e| match e {
        BodyError::TooLarge(_) => too_large(),
        BodyError::Late(_) => WriteError::invalid(e.to_string()),
    })?;
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let bytes = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| WriteError::invalid(format!("the gzip body cannot be inflated: {e}")))?;
        if out.len() > max {
            return Err(too_large());
        }
        out
    } else {
        raw.to_vec()
    };
    String::from_utf8(bytes).map_err(|_| WriteError::invalid("the body is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_every_place_influx_clients_put_them() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            m
        };
        let none = HashMap::new();
        assert_eq!(token_of(&h("Token th_a"), &none).as_deref(), Some("th_a"));
        assert_eq!(token_of(&h("Bearer th_b"), &none).as_deref(), Some("th_b"));
        let basic = base64::engine::general_purpose::STANDARD.encode("user:th_c");
        assert_eq!(
            token_of(&h(&format!("Basic {basic}")), &none).as_deref(),
            Some("th_c")
        );
        let q = HashMap::from([("p".to_owned(), "th_d".to_owned())]);
        assert_eq!(token_of(&HeaderMap::new(), &q).as_deref(), Some("th_d"));
        assert_eq!(token_of(&HeaderMap::new(), &none), None);
    }
}

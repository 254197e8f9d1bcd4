//! Desired configurations over HTTP (protocol.md §14, docs/device-config.md). For
//! operators: `PUT /v1/devices/NAME/config` (operator; `If-Match` → 409), `GET
//! /v1/devices/NAME/config` and `GET /v1/devices/NAME/config/history` (viewer). For HTTP
//! devices: `GET /v1/config?known=N&wait=DUR` (long-poll: `200` a newer desired version,
//! else `204`) and `PUT /v1/config/reported`. Bodies are checked by
//! [`crate::devconfig::request`]; what happens to a version is [`crate::devconfig`]'s business.

use super::authn::{Authenticated, DeviceCaller, Operator, Viewer};
use super::{ApiError, HubState};
use crate::commands::request::parse_wait;
use crate::devconfig::ConfigError;
use crate::devconfig::device::Known;
use crate::devconfig::request::{parse_body, parse_if_match};
use crate::domain::DeviceName;
use crate::protocol::commands::ConfigDocument;
use crate::storage::devconfig::{ConfigRow, HistoryRow};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use std::sync::Arc;

pub fn routes() -> Router<Arc<HubState>> {
    Router::new()
        .route("/v1/devices/{name}/config", put(set).get(show))
        .route("/v1/devices/{name}/config/history", get(history))
        .route("/v1/config", get(next))
        .route("/v1/config/reported", put(reported))
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid(d) => ApiError::bad_request(d),
            ConfigError::TooLarge(d) => ApiError::too_large(d),
            ConfigError::NoSuchDevice(_) => ApiError::not_found(e.to_string()),
            ConfigError::VersionMismatch { .. } => {
                ApiError::new(super::error::ErrorKind::Conflict, e.to_string())
            }
            ConfigError::Ahead { .. } => ApiError::bad_request(e.to_string()),
            ConfigError::Storage(s) => s.into(),
        }
    }
}

fn device_of(name: &str) -> Result<DeviceName, ApiError> {
    DeviceName::parse(name).map_err(|_| {
        ApiError::not_found(format!(
            "no device {}",
            name.chars().take(64).collect::<String>()
        ))
    })
}

/// A device token's caller (403 for any other token).
fn for_devices(p: crate::auth::Principal) -> Result<DeviceCaller, ApiError> {
    DeviceCaller::of(p).map_err(|_| {
        ApiError::forbidden(
            "this is for device tokens: a device takes and reports its own configuration; operators use /v1/devices/NAME/config",
        )
    })
}

/// The config object with its version as the `ETag` (what `If-Match` takes).
fn with_etag(row: ConfigRow) -> Response {
    let etag = format!("\"{}\"", row.version);
    ([(header::ETAG, etag)], Json(row)).into_response()
}

/// `PUT /v1/devices/NAME/config` (operator) with `{"desired": {…}}` → `200` the config.
async fn set(
    State(hub): State<Arc<HubState>>,
    Operator(p): Operator,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let device = device_of(&name)?;
    let desired = parse_body(&body)?;
    let if_match = match headers.get(header::IF_MATCH) {
        Some(h) => Some(parse_if_match(h.to_str().unwrap_or(""))?),
        None => None,
    };
    let by = hub.store.token_label(p.token_id()).await?;
    let row = hub
        .devconfig
        .set(&device, &desired, if_match, by.as_deref())
        .await?;
    Ok(with_etag(row))
}

/// `GET /v1/devices/NAME/config` (viewer).
async fn show(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(with_etag(hub.devconfig.get(&device_of(&name)?).await?))
}

/// `GET /v1/devices/NAME/config/history` (viewer): newest first.
async fn history(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    Path(name): Path<String>,
) -> Result<Json<Vec<HistoryRow>>, ApiError> {
    Ok(Json(hub.devconfig.history(&device_of(&name)?).await?))
}

/// `GET /v1/config?known=N&wait=DUR` (device; `wait` at most 60 s): `200 {"version",
/// "desired"}` once the desired version is newer than `known` (default 0), else `204`.
async fn next(
    State(hub): State<Arc<HubState>>,
    Authenticated(p): Authenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let caller = for_devices(p)?;
    let (mut known, mut wait) = (0, None);
    for (k, v) in form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "known" => {
                known = v.parse().map_err(|_| {
                    ApiError::bad_request("known: expected the version the device has, e.g. 3")
                })?
            }
            "wait" => wait = parse_wait(Some(&v))?,
            "token" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{}`; expected known, wait",
                    other.chars().take(32).collect::<String>()
                )));
            }
        }
    }
    let mut feed = hub
        .devconfig
        .attach(&caller.device.name, Known::Version(known))
        .await;
    let wait = wait.unwrap_or_default();
    tokio::select! {
        _ = hub.shutdown.cancelled() => Ok(StatusCode::NO_CONTENT.into_response()),
        doc = tokio::time::timeout(wait, feed.next()) => match doc {
            Ok(doc) => Ok(Json(doc.to_value("desired")).into_response()),
            Err(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        },
    }
}

/// `PUT /v1/config/reported` (device) with `{"version": N, "state": {…}}` → `200` the
/// device's config.
async fn reported(
    State(hub): State<Arc<HubState>>,
    Authenticated(p): Authenticated,
    body: String,
) -> Result<Response, ApiError> {
    let caller = for_devices(p)?;
    let v: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let doc =
        ConfigDocument::from_value(v, "state").map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(with_etag(
        hub.devconfig.report(&caller.device.name, &doc).await?,
    ))
}

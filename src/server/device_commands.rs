//! Commands for devices over HTTP (docs/commands.md): `GET /v1/commands/next?wait=20s`
//! (long-poll: `200` the oldest deliverable command, now `sent`, or `204`), `POST
//! /v1/commands/ID/ack` and `POST /v1/commands/ID/result` — device tokens, each for its
//! own commands (a gateway's: also those of the devices it acts for).

use super::authn::Authenticated;
use super::{ApiError, HubState};
use crate::auth::Principal;
use crate::commands::request::parse_wait;
use crate::domain::DeviceName;
use crate::protocol::commands::CommandAnswer;
use crate::storage::commands::CommandRow;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The devices a device token answers for: its own, and a gateway's targets.
fn devices_of(p: Principal) -> Result<Vec<DeviceName>, ApiError> {
    match p {
        Principal::Device {
            device,
            gateway_for,
            ..
        } => Ok(std::iter::once(device.name)
            .chain(gateway_for.into_keys())
            .collect()),
        _ => Err(ApiError::forbidden(
            "this is for device tokens: devices take and answer their own commands",
        )),
    }
}

/// `GET /v1/commands/next?wait=DUR` (device; `wait` at most 60 s, default none).
pub async fn next(
    State(hub): State<Arc<HubState>>,
    Authenticated(p): Authenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let devices = devices_of(p)?;
    let mut wait = None;
    for (k, v) in form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "wait" => wait = parse_wait(Some(&v))?,
            "token" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{}`; expected wait",
                    other.chars().take(32).collect::<String>()
                )));
            }
        }
    }
    let mut attached = hub.commands.attach(devices).await;
    let wait = wait
        .unwrap_or_default()
        .max(std::time::Duration::from_millis(50));
    tokio::select! {
        _ = hub.shutdown.cancelled() => Ok(StatusCode::NO_CONTENT.into_response()),
        c = tokio::time::timeout(wait, attached.commands.recv()) => match c {
            Ok(Some(row)) => Ok(Json(row.as_ref().clone()).into_response()),
            _ => Ok(StatusCode::NO_CONTENT.into_response()),
        },
    }
}

/// `POST /v1/commands/ID/ack` (device): `200` the command, now `received`.
pub async fn ack(
    State(hub): State<Arc<HubState>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<CommandRow>, ApiError> {
    let devices = devices_of(p)?;
    let may = |d: &str| devices.iter().any(|x| x.as_str() == d);
    Ok(Json(hub.commands.ack(&id, may).await?))
}

/// `POST /v1/commands/ID/result` (device) with `{"status", "result", "error"}`: `200`
/// the command as stored (also when it had already ended: nothing changes).
pub async fn result(
    State(hub): State<Arc<HubState>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    body: String,
) -> Result<Json<CommandRow>, ApiError> {
    let devices = devices_of(p)?;
    let answer = CommandAnswer::parse(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    let may = |d: &str| devices.iter().any(|x| x.as_str() == d);
    Ok(Json(hub.commands.answer(&id, answer, may).await?))
}

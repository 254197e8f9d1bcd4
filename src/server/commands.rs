//! Commands over HTTP (docs/commands.md): create (one device, or a list of them), list,
//! show and cancel. Creating and canceling need an operator (or admin) token; reading
//! a viewer's. Bodies are checked by [`crate::commands::request`]; what the dispatcher
//! does with a command is [`crate::commands`]' business.

use super::authn::{Operator, Viewer};
use super::{ApiError, HubState};
use crate::commands::CommandError;
use crate::commands::request::{Spec, parse_devices, parse_wait};
use crate::domain::{DeviceName, Labels, Timestamp, parse_time_arg};
use crate::storage::StorageError;
use crate::storage::commands::{CommandFilter, CommandRow, CommandState};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value as JsonValue, json};
use std::sync::Arc;

/// Commands one listing returns by default, and at most.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

pub fn routes() -> Router<Arc<HubState>> {
    Router::new()
        .route("/v1/devices/{name}/commands", post(create_one))
        .route("/v1/commands", post(create_bulk).get(list))
        .route("/v1/commands/{id}", get(show).delete(cancel))
        .route("/v1/commands/next", get(super::device_commands::next))
        .route("/v1/commands/{id}/ack", post(super::device_commands::ack))
        .route(
            "/v1/commands/{id}/result",
            post(super::device_commands::result),
        )
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Invalid(detail) => ApiError::bad_request(detail),
            CommandError::NotFound(_) => ApiError::not_found(e.to_string()),
            CommandError::NotYours(_) => ApiError::forbidden(e.to_string()),
            CommandError::Terminal { .. } | CommandError::NotSent(_) => {
                ApiError::new(super::error::ErrorKind::Conflict, e.to_string())
            }
            CommandError::Storage(s) => s.into(),
        }
    }
}

/// The body of a create request, before it is checked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    params: Option<JsonValue>,
    ttl: Option<String>,
    wait: Option<String>,
    devices: Option<Vec<String>>,
    labels: Option<JsonValue>,
}

fn body_of(text: &str) -> Result<CreateBody, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn spec_of(hub: &HubState, b: &CreateBody) -> Result<Spec, ApiError> {
    let settings = &hub.settings.commands;
    Ok(Spec::parse(
        &b.name,
        b.params.clone(),
        b.ttl.as_deref(),
        settings,
    )?)
}

/// `POST /v1/devices/NAME/commands` (operator): `201` with the command; with `wait`,
/// once it is terminal or the wait is over.
async fn create_one(
    State(hub): State<Arc<HubState>>,
    _o: Operator,
    Path(name): Path<String>,
    body: String,
) -> Result<Response, ApiError> {
    let device = DeviceName::parse(&name)
        .map_err(|_| ApiError::not_found(format!("no device {}", clip(&name))))?;
    let b = body_of(&body)?;
    if b.devices.is_some() || b.labels.is_some() {
        return Err(ApiError::bad_request(
            "devices and labels belong in POST /v1/commands; here the path names the device",
        ));
    }
    let spec = spec_of(&hub, &b)?;
    let wait = parse_wait(b.wait.as_deref())?;
    let mut row = hub
        .commands
        .create(std::slice::from_ref(&device), &spec)
        .await
        .map_err(unknown_device)?
        .pop()
        .expect("one command per device");
    if let Some(wait) = wait {
        row = hub.commands.wait_terminal(&row.id, wait).await?;
    }
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// `POST /v1/commands` (operator) with `devices` or `labels`: one command each, all or
/// none → `201 {"ids": [...]}` in the order given (by labels: in name order).
async fn create_bulk(
    State(hub): State<Arc<HubState>>,
    _o: Operator,
    body: String,
) -> Result<Response, ApiError> {
    let b = body_of(&body)?;
    if b.wait.is_some() {
        return Err(ApiError::bad_request(
            "wait: only for one device (POST /v1/devices/NAME/commands)",
        ));
    }
    let max_bulk = hub.settings.commands.max_bulk;
    let devices = match (&b.devices, &b.labels) {
        (Some(d), None) => parse_devices(d, max_bulk)?,
        (None, Some(labels)) => labelled(&hub, labels, max_bulk).await?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `devices` (a list of names) or `labels`",
            ));
        }
    };
    let spec = spec_of(&hub, &b)?;
    let rows = hub
        .commands
        .create(&devices, &spec)
        .await
        .map_err(unknown_device)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    Ok((StatusCode::CREATED, Json(json!({"ids": ids}))).into_response())
}

/// The devices carrying every label of `labels` (a JSON object, not empty), at most
/// `max_bulk` of them; none is an empty list.
async fn labelled(
    hub: &HubState,
    labels: &JsonValue,
    max_bulk: usize,
) -> Result<Vec<DeviceName>, ApiError> {
    let selector = Labels::from_json(labels).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if selector.is_empty() {
        return Err(ApiError::bad_request(
            "labels: give at least one label, e.g. {\"site\": \"plant-a\"}",
        ));
    }
    let devices = hub.store.devices_labelled(&selector).await?;
    if devices.len() > max_bulk {
        return Err(ApiError::bad_request(format!(
            "labels: {} devices carry these labels; one request may address at most {max_bulk} (commands.max_bulk)",
            devices.len()
        )));
    }
    Ok(devices)
}

/// An unknown device named by a create request is a 404 naming it.
fn unknown_device(e: CommandError) -> ApiError {
    match e {
        CommandError::Storage(StorageError::NoSuchDevice(d)) => {
            ApiError::not_found(format!("no device {d}"))
        }
        other => other.into(),
    }
}

/// `GET /v1/commands?device=D&state=S&from=T&limit=N&cursor=C` (viewer): newest first.
async fn list(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    RawQuery(q): RawQuery,
) -> Result<Json<JsonValue>, ApiError> {
    let mut f = CommandFilter {
        limit: DEFAULT_LIMIT,
        ..CommandFilter::default()
    };
    let now = Timestamp::now();
    for (k, v) in form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        let bad = |what: &str| ApiError::bad_request(format!("{k}: {what}"));
        match k.as_ref() {
            "device" => {
                let d = DeviceName::parse(&v).map_err(|e| bad(&e.to_string()))?;
                if hub.store.find_device(&d).await?.is_none() {
                    return Err(ApiError::not_found(format!("no device {d}")));
                }
                f.device = Some(d);
            }
            "state" => {
                let states: Vec<_> = CommandState::ALL.iter().map(|s| s.as_str()).collect();
                f.state = Some(
                    CommandState::parse(&v)
                        .ok_or_else(|| bad(&format!("expected one of {}", states.join(", "))))?,
                );
            }
            "from" => f.from = Some(parse_time_arg(&v, now).map_err(|e| bad(&e.to_string()))?),
            "limit" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad(&format!("expected 1 to {MAX_LIMIT}")))?;
            }
            "cursor" => {
                f.before = Some(
                    v.parse()
                        .ok()
                        .filter(|n: &i64| *n > 0)
                        .ok_or_else(|| bad("not a cursor this API gave"))?,
                );
            }
            "token" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{}`",
                    clip(other)
                )));
            }
        }
    }
    let rows = hub.store.list_commands(&f).await?;
    let next = (rows.len() as i64 == f.limit)
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(json!({"commands": rows, "next_cursor": next})))
}

/// `GET /v1/commands/ID` (viewer).
async fn show(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    Path(id): Path<String>,
) -> Result<Json<CommandRow>, ApiError> {
    Ok(Json(hub.commands.get(&id).await?))
}

/// `DELETE /v1/commands/ID` (operator): `200` the canceled command, `409` when it is
/// already terminal.
async fn cancel(
    State(hub): State<Arc<HubState>>,
    _o: Operator,
    Path(id): Path<String>,
) -> Result<Json<CommandRow>, ApiError> {
    Ok(Json(hub.commands.cancel(&id).await?))
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

//! A device as the HTTP API shows it ([`DeviceOut`], one shape for `GET /v1/devices` and
//! every answer that returns a device), `PATCH /v1/devices/NAME` (admin): its gateway
//! list, description and location (docs/http-api.md "Devices"), and `PUT
//! /v1/devices/NAME/labels` (admin): its labels (protocol.md §14).

use super::authn::Admin;
use super::{ApiError, HubState};
use crate::domain::{Description, DeviceName, Labels, Location, Timestamp, Transport};
use crate::storage::identity::{AboutEdit, GatewayEdit};
use crate::storage::{DeviceFilter, DeviceRow, Latest};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{patch, put};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<HubState>> {
    Router::new()
        .route("/v1/devices/{name}", patch(edit))
        .route("/v1/devices/{name}/labels", put(set_labels))
}

/// One device of `GET /v1/devices`.
#[derive(Serialize)]
pub struct DeviceOut {
    name: String,
    online: bool,
    /// The transport it last used (since this hub started).
    transport: Option<Transport>,
    last_seen: Option<Timestamp>,
    sensors: Vec<String>,
    latest: BTreeMap<String, Latest>,
    gateway_for: Vec<String>,
    description: Option<String>,
    location: Option<Location>,
    labels: Labels,
    /// Whether it applied its desired configuration; `null`: it has none.
    in_sync: Option<bool>,
}

impl DeviceOut {
    pub fn of(hub: &HubState, d: DeviceRow) -> Self {
        Self {
            online: hub.sessions.is_online(&d.name)
                || hub
                    .mqtt
                    .as_ref()
                    .is_some_and(|m| m.online_elsewhere(&d.name)),
            transport: hub.sessions.presence().transport(&d.name),
            name: d.name,
            last_seen: d.last_seen,
            sensors: d.sensors,
            latest: d.latest,
            gateway_for: d.gateway_for,
            description: d.description,
            location: d.location,
            labels: d.labels,
            in_sync: d.in_sync,
        }
    }
}

/// A `PATCH` body: each field present replaces that field; `null` clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    gateway_for: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    location: Option<Option<Location>>,
}

/// A field that is present (its value may be `null`), as opposed to absent.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `PATCH /v1/devices/NAME` (admin) → `200` the device.
async fn edit(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
    Path(name): Path<String>,
    body: Result<Json<Edit>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DeviceOut>, ApiError> {
    let name = DeviceName::parse(&name).map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    let Json(req) = body?;
    let bad = |e: crate::domain::AboutError| ApiError::bad_request(e.to_string());
    let about = AboutEdit {
        description: match req.description {
            Some(Some(d)) => Some(Some(Description::parse(&d).map_err(bad)?)),
            Some(None) => Some(None),
            None => None,
        },
        location: match req.location {
            Some(Some(l)) => Some(Some(l.check().map_err(bad)?)),
            Some(None) => Some(None),
            None => None,
        },
    };
    let gateway = match req.gateway_for {
        Some(list) => Some(
            list.iter()
                .map(|t| {
                    DeviceName::parse(t)
                        .map_err(|e| ApiError::bad_request(format!("gateway_for: {t:?} {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    if let Some(list) = gateway {
        let edit = GatewayEdit {
            replace: Some(list),
            ..GatewayEdit::default()
        };
        hub.store.edit_gateway(&name, &edit).await?;
    }
    if about.description.is_some() || about.location.is_some() {
        hub.store.edit_about(&name, &about).await?;
    }
    device_out(&hub, &name).await
}

/// `PUT /v1/devices/NAME/labels` (admin) with `{"site": "plant-a", …}`: replaces the
/// device's labels → `200` the device.
async fn set_labels(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
    Path(name): Path<String>,
    body: String,
) -> Result<Json<DeviceOut>, ApiError> {
    let name = DeviceName::parse(&name).map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    let body: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let labels = Labels::from_json(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let epoch = hub.store.set_labels(&name, &labels).await?;
    // Rules with labels now match as the device's labels say.
    hub.alerts.rules_changed(epoch).await;
    hub.sessions.presence().labels_changed();
    device_out(&hub, &name).await
}

/// Device `name` as `/v1/devices` shows it (404 when it does not exist or is revoked).
async fn device_out(hub: &HubState, name: &DeviceName) -> Result<Json<DeviceOut>, ApiError> {
    let row = hub
        .store
        .list_devices_where(DeviceFilter::Named(name))
        .await?
        .into_iter()
        .find(|d| !d.revoked)
        .ok_or_else(|| ApiError::not_found(format!("no device {name}")))?;
    Ok(Json(DeviceOut::of(hub, row)))
}

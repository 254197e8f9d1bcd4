//! The HTTP API (docs/http-api.md): devices, history (raw with cursors, or buckets),
//! health, readiness and metrics. `/v1/readings` parameters are parsed by
//! `server::readings_params`.

use super::authn::{Admin, Viewer};
use super::devices::DeviceOut;
use super::paging::{Page, PageRequest};
pub use super::readings_params::{
    MIN_DOWNSAMPLED_POINTS, QueryError, ReadingsQuery, encode_cursor,
};
use super::series_read::{Points, series_points};
use super::{ApiError, HubState};
use crate::domain::{DeviceName, Labels, SensorName, parse_pair};
use crate::storage::DeviceFilter;
use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

pub fn routes() -> Router<Arc<HubState>> {
    Router::new()
        .route("/v1/devices", get(devices).post(add_device))
        .route("/v1/devices/{name}", axum::routing::delete(revoke_device))
        .route("/v1/readings", get(readings))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

/// `GET /v1/devices[?label=KEY:VALUE]...[&limit=N&cursor=C]` (viewer): every device not
/// revoked, or those carrying every label asked for; with `limit`, one page of them by
/// name and a `Link` to the next (`server::paging`).
async fn devices(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let query = uri.query();
    let selector = label_selector(query)?;
    let page: PageRequest<String> =
        PageRequest::from_query(query, hub.settings.limits.max_page_size, None)?;
    let rows = hub
        .store
        .list_devices_where(DeviceFilter::Labelled(&selector))
        .await?;
    let rows = rows.into_iter().filter(|d| !d.revoked).collect();
    let page = page.page(rows, |d| d.name.clone());
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|d| DeviceOut::of(&hub, d))
            .collect(),
        next: page.next,
    }
    .respond(&uri))
}

/// The `label=KEY:VALUE` parameters of a query string (every one must match).
fn label_selector(query: Option<&str>) -> Result<Labels, ApiError> {
    let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "label")
        .map(|(_, v)| parse_pair(&v, ':'))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request(format!("label: {e}")))?;
    Labels::from_pairs(pairs).map_err(|e| ApiError::bad_request(format!("label: {e}")))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    name: String,
    #[serde(default)]
    gateway_for: Vec<String>,
    /// Add the `gateway_for` devices that do not exist (without a token).
    #[serde(default)]
    create_missing: bool,
}

/// `POST /v1/devices` (admin): `{"name": ..., "gateway_for": [...]}` → `201 {"name", "token"}`.
async fn add_device(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
    body: Result<Json<NewDevice>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let name =
        DeviceName::parse(&req.name).map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    let targets = req
        .gateway_for
        .iter()
        .map(|t| {
            DeviceName::parse(t)
                .map_err(|e| ApiError::bad_request(format!("gateway_for: {t:?} {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let token = hub
        .store
        .add_gateway(&name, &targets, req.create_missing)
        .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(serde_json::json!({"name": name, "token": token})),
    )
        .into_response())
}

/// `DELETE /v1/devices/{name}` (admin): revokes the device and closes its sockets.
async fn revoke_device(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let name = DeviceName::parse(&name).map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    hub.store.revoke_device(&name).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /v1/readings` (viewer): raw points with a cursor, buckets, or a downsampled series.
async fn readings(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    q: ReadingsQuery,
) -> Result<Response, ApiError> {
    let Some(sensor) = &q.sensor else {
        return super::fleet::device_readings(&hub, &q).await;
    };
    let series = match hub.store.find_series(&q.device, sensor).await? {
        None => return Err(ApiError::not_found(format!("no device {}", q.device))),
        Some(None) => {
            return Err(ApiError::not_found(format!(
                "device {} has no sensor {sensor}",
                q.device
            )));
        }
        Some(Some(id)) => id,
    };
    let (points, next_cursor) = series_points(&hub, &q, series).await?;
    Ok(Json(ReadingsOut {
        device: &q.device,
        sensor,
        points,
        next_cursor,
    })
    .into_response())
}

#[derive(Serialize)]
struct ReadingsOut<'a> {
    device: &'a DeviceName,
    sensor: &'a SensorName,
    points: Points,
    next_cursor: Option<String>,
}

/// `/readyz`: 200 while storage answers, whatever the broker's state (the hub still
/// ingests over WebSocket, and taking it out of a load balancer would cut those devices
/// off too); 503 when storage does not. The JSON body lists both.
async fn ready(State(hub): State<Arc<HubState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let mqtt = hub.mqtt.as_ref().map(|m| m.broker());
    let storage_problem = match tokio::time::timeout(Duration::from_secs(2), hub.store.ping()).await
    {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: storage is not reachable");
            Some("storage is not reachable (the hub's log says why)")
        }
        Err(_) => Some("storage did not answer within 2 s"),
    };
    match storage_problem {
        None => Ok(Json(serde_json::json!({
            "ready": true,
            "storage": {"ok": true, "backend": hub.store.backend()},
            "mqtt": mqtt,
        }))),
        Some(detail) => {
            let broker = mqtt.map_or(String::new(), |m| format!("; mqtt: {}", m.detail));
            Err(ApiError::unavailable(format!("{detail}{broker}")))
        }
    }
}

async fn metrics(State(hub): State<Arc<HubState>>, _v: Viewer) -> impl IntoResponse {
    hub.metrics
        .write_queue_depth
        .set(hub.ingest.queued() as i64);
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        hub.metrics.render(),
    )
}

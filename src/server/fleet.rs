//! Fleet reads (docs/http-api.md "Fleet reads"): `/v1/readings?device=D` without `sensor`
//! (every series of the device, one object each) and `GET /v1/export` (every series of
//! the devices a pattern matches, streamed as CSV or NDJSON in constant memory through
//! [`crate::export`]).

use super::api::{Points, ReadingsQuery, series_points};
use super::authn::Viewer;
use super::readings_params::QueryError;
use super::{ApiError, HubState};
use crate::domain::{Segment, SensorName, Timestamp, parse_time_arg};
use crate::export::{self, ExportFormat, Selection};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

pub fn routes() -> Router<Arc<HubState>> {
    Router::new().route("/v1/export", get(export_readings))
}

#[derive(Serialize)]
struct SeriesOut {
    sensor: SensorName,
    unit: Option<String>,
    points: Points,
    next_cursor: Option<String>,
}

/// `/v1/readings?device=D` without `sensor`: `{"device", "series": [{"sensor", "unit",
/// "points", "next_cursor"}]}`, sensors in name order, each read as `sensor=` would be.
pub(super) async fn device_readings(
    hub: &HubState,
    q: &ReadingsQuery,
) -> Result<Response, ApiError> {
    let dev = hub
        .store
        .find_device(&q.device)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {}", q.device)))?;
    let mut series = hub.store.series_of(&dev).await?;
    series.sort_by(|a, b| a.sensor.cmp(&b.sensor));
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let (points, next_cursor) = series_points(hub, q, s.id).await?;
        out.push(SeriesOut {
            sensor: s.sensor,
            unit: s.unit,
            points,
            next_cursor,
        });
    }
    Ok(Json(serde_json::json!({"device": q.device, "series": out})).into_response())
}

/// `GET /v1/export?device=PATTERN[&sensor=S][&from=T][&to=T][&format=csv|ndjson]`.
async fn export_readings(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (sel, format) = parse(uri.query().unwrap_or(""), Timestamp::now())?;
    let series = export::series(&hub.store, &sel).await?;
    if series.is_empty() && sel.devices.exact().is_some() {
        return Err(ApiError::not_found(format!(
            "no device {} with readings{}",
            sel.devices,
            sel.sensor
                .as_ref()
                .map(|s| format!(" of sensor {s}"))
                .unwrap_or_default()
        )));
    }
    let ahead = hub.settings.http.export_pages_ahead;
    let chunks = export::spawn(hub.store.clone(), sel, series, format, ahead);
    // The body ends with the channel; a storage failure mid-way aborts the response.
    let stream = futures_util::stream::unfold(chunks, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let content_type = match format {
        ExportFormat::Csv => "text/csv; charset=utf-8",
        ExportFormat::Ndjson => "application/x-ndjson",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The export's parameters; every refusal names the parameter.
fn parse(query: &str, now: Timestamp) -> Result<(Selection, ExportFormat), QueryError> {
    let (mut device, mut sensor, mut from, mut to, mut format) = (None, None, None, None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "token" => continue,
            "device" => &mut device,
            "sensor" => &mut sensor,
            "from" => &mut from,
            "to" => &mut to,
            "format" => &mut format,
            other => return Err(QueryError::Unknown(other.chars().take(32).collect())),
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(QueryError::Twice(match k.as_ref() {
                "device" => "device",
                "sensor" => "sensor",
                "from" => "from",
                "to" => "to",
                _ => "format",
            }));
        }
    }
    let device = device.ok_or(QueryError::Missing("device"))?;
    let devices = Segment::parse(&device).map_err(|e| QueryError::Value(format!("device: {e}")))?;
    let sensor = sensor
        .map(|s| SensorName::parse(&s))
        .transpose()
        .map_err(|e| QueryError::Value(format!("sensor: {e}")))?;
    let time = |param, t: &str| {
        parse_time_arg(t, now).map_err(|source| QueryError::Time { param, source })
    };
    let to = to.map(|t| time("to", &t)).transpose()?.unwrap_or(now);
    let from = match from {
        Some(f) => time("from", &f)?,
        None => to.saturating_sub(Duration::from_secs(24 * 3600)),
    };
    if from >= to {
        return Err(QueryError::Empty);
    }
    let format = match format.as_deref() {
        None | Some("csv") => ExportFormat::Csv,
        Some("ndjson") | Some("json") => ExportFormat::Ndjson,
        Some(_) => return Err(QueryError::Value("format: expected csv or ndjson".into())),
    };
    Ok((
        Selection {
            devices,
            sensor,
            from,
            to,
        },
        format,
    ))
}

//! Fleet reads (docs/http-api.md "Fleet reads"): `/v1/readings?device=D` without `sensor`
//! (every series of the device, one object each) and `GET /v1/export` (every series of
//! the devices a pattern matches, streamed as CSV or NDJSON in constant memory through
//! [`crate::export`]).

use super::authn::Viewer;
use super::readings_params::{QueryError, ReadingsQuery};
use super::series_read::{Points, series_points};
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
    const PARAMS: [&str; 5] = ["device", "sensor", "from", "to", "format"];
    let mut values: [Option<String>; 5] = Default::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "token" {
            continue;
        }
        let Some(i) = PARAMS.iter().position(|p| *p == k) else {
            return Err(QueryError::Unknown(k.chars().take(32).collect()));
        };
        if values[i].replace(v.into_owned()).is_some() {
            return Err(QueryError::Twice(PARAMS[i]));
        }
    }
    let [device, sensor, from, to, format] = values;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap()
    }

    #[test]
    fn a_pattern_a_sensor_a_range_and_a_format_are_read_and_mistakes_named() {
        let (sel, format) = parse(
            "device=line-3-*&sensor=t&from=-1h&format=ndjson&token=x",
            now(),
        )
        .unwrap();
        assert!(sel.devices.matches("line-3-press") && !sel.devices.matches("line-4-a"));
        assert_eq!(sel.sensor.map(|s| s.to_string()), Some("t".into()));
        assert_eq!(sel.to, now());
        assert_eq!(format, ExportFormat::Ndjson);
        let e = |q: &str| parse(q, now()).err().expect("refused").to_string();
        assert!(e("sensor=t").contains("device"));
        assert!(e("device=a&device=b").contains("twice"));
        assert!(e("device=a&form=csv").contains("unknown parameter `form`"));
        assert!(e("device=a&format=xml").contains("csv or ndjson"));
        assert!(e("device=a&from=now").contains("before"));
        assert!(e("device=a/b").contains("device"));
    }

    proptest! {
        #[test]
        fn any_query_string_is_read_or_refused_without_a_panic(q in ".{0,80}") {
            if let Ok((sel, _)) = parse(&q, now()) {
                prop_assert!(sel.from < sel.to);
            }
        }
    }
}

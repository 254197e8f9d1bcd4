//! The HTTP API (contract §4): devices, history (raw with cursors, or buckets),
//! health, readiness and metrics. Query strings are parsed into typed values here.

use super::authn::{Admin, Viewer};
use super::{ApiError, HubState};
use crate::domain::{DeviceName, SensorName, Timestamp, parse_duration, parse_time_arg};
use crate::storage::{Agg, Bucket, Point, RangeQuery};
use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
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

#[derive(Serialize)]
struct DeviceOut {
    name: String,
    online: bool,
    last_seen: Option<Timestamp>,
    sensors: Vec<String>,
    latest: std::collections::BTreeMap<String, crate::storage::Latest>,
}

async fn devices(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
) -> Result<Json<Vec<DeviceOut>>, ApiError> {
    let rows = hub.store.list_devices().await?;
    Ok(Json(
        rows.into_iter()
            .filter(|d| !d.revoked)
            .map(|d| DeviceOut {
                online: hub.sessions.is_online(&d.name)
                    || hub
                        .mqtt
                        .as_ref()
                        .is_some_and(|m| m.online_elsewhere(&d.name)),
                name: d.name,
                last_seen: d.last_seen,
                sensors: d.sensors,
                latest: d.latest,
            })
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    name: String,
    #[serde(default)]
    gateway_for: Vec<String>,
}

/// `POST /v1/devices` (admin): `{"name": ..., "gateway_for": [...]}` → `201 {"name", "token"}`.
async fn add_device(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
    body: Result<Json<NewDevice>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
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
    let token = hub.store.add_device(&name, &targets).await?;
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

/// `/v1/readings` parameters, parsed.
#[derive(Debug)]
pub struct ReadingsQuery {
    pub device: DeviceName,
    pub sensor: SensorName,
    pub from: Timestamp,
    pub to: Timestamp,
    pub limit: usize,
    pub after: Option<Timestamp>,
    pub buckets: Option<(Duration, Agg)>,
    /// Downsample raw points to at most this many (M4), for charts.
    pub max_points: Option<usize>,
}

/// `max_points` below this cannot hold two M4 columns (four points each).
pub const MIN_DOWNSAMPLED_POINTS: usize = 8;

impl ReadingsQuery {
    /// Parses a query string; every error names the parameter and what is expected.
    pub fn parse(query: &str, now: Timestamp, max_points: usize) -> Result<Self, String> {
        let (mut device, mut sensor, mut from, mut to, mut limit, mut cursor, mut every, mut agg) =
            (None, None, None, None, None, None, None, None);
        let mut downsample = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "device" => &mut device,
                "sensor" => &mut sensor,
                "from" => &mut from,
                "to" => &mut to,
                "limit" => &mut limit,
                "cursor" => &mut cursor,
                "every" => &mut every,
                "agg" => &mut agg,
                "max_points" => &mut downsample,
                "token" => continue,
                other => {
                    return Err(format!(
                        "unknown parameter `{}`",
                        other.chars().take(32).collect::<String>()
                    ));
                }
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(format!("parameter `{k}` given twice"));
            }
        }
        let device = DeviceName::parse(&device.ok_or("missing parameter `device`")?)
            .map_err(|e| format!("device: {e}"))?;
        let sensor = SensorName::parse(&sensor.ok_or("missing parameter `sensor`")?)
            .map_err(|e| format!("sensor: {e}"))?;
        let to = to
            .map(|t| parse_time_arg(&t, now))
            .transpose()
            .map_err(|e| format!("to: {e}"))?
            .unwrap_or(now);
        let from = match from {
            Some(f) => parse_time_arg(&f, now).map_err(|e| format!("from: {e}"))?,
            None => to.saturating_sub(Duration::from_secs(24 * 3600)),
        };
        if from >= to {
            return Err("from must be before to".into());
        }
        let downsample = match downsample {
            None => None,
            Some(_) if limit.is_some() || cursor.is_some() || every.is_some() || agg.is_some() => {
                return Err(
                    "max_points cannot be combined with limit, cursor, every or agg".into(),
                );
            }
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (MIN_DOWNSAMPLED_POINTS..=max_points).contains(&n) => Some(n),
                _ => {
                    return Err(format!(
                        "max_points: expected a whole number from {MIN_DOWNSAMPLED_POINTS} to {max_points}"
                    ));
                }
            },
        };
        let limit = match limit {
            None => max_points,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=max_points).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "limit: expected a whole number from 1 to {max_points}"
                    ));
                }
            },
        };
        let after = cursor
            .map(|c| decode_cursor(&c).ok_or("cursor: not a cursor this hub issued"))
            .transpose()?;
        let buckets = match (every, agg) {
            (None, None) => None,
            (Some(e), a) => {
                let every = parse_duration(&e).map_err(|e| format!("every: {e}"))?;
                if every.as_micros() < 1 {
                    return Err("every: must be at least 1µs".into());
                }
                let agg = match a {
                    None => Agg::Avg,
                    Some(a) => Agg::parse(&a)
                        .ok_or("agg: expected avg, min, max, sum, count, first or last")?,
                };
                Some((every, agg))
            }
            (None, Some(_)) => return Err("agg needs every (e.g. every=1m&agg=avg)".into()),
        };
        Ok(Self {
            device,
            sensor,
            from,
            to,
            limit,
            after,
            buckets,
            max_points: downsample,
        })
    }
}

pub fn encode_cursor(ts: Timestamp) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ts:{}", ts.as_micros()))
}

fn decode_cursor(c: &str) -> Option<Timestamp> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    Some(Timestamp::from_micros(s.strip_prefix("ts:")?.parse().ok()?))
}

async fn readings(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let http = &hub.settings.http;
    let q = ReadingsQuery::parse(
        q.as_deref().unwrap_or(""),
        Timestamp::now(),
        http.max_points,
    )
    .map_err(ApiError::bad_request)?;
    let series = match hub.store.find_series(&q.device, &q.sensor).await? {
        None => return Err(ApiError::not_found(format!("no device {}", q.device))),
        Some(None) => {
            return Err(ApiError::not_found(format!(
                "device {} has no sensor {}",
                q.device, q.sensor
            )));
        }
        Some(Some(id)) => id,
    };
    let range = RangeQuery {
        series,
        from: q.from,
        to: q.to,
        after: q.after,
        limit: q.limit,
    };
    let reply = |points, next_cursor| {
        Json(ReadingsOut {
            device: &q.device,
            sensor: &q.sensor,
            points,
            next_cursor,
        })
        .into_response()
    };
    if let Some((every, agg)) = q.buckets {
        let every_us = every.as_micros().min(i64::MAX as u128) as i64;
        let n = (q.to.as_micros() - q.from.as_micros()) / every_us;
        if n as usize > http.max_buckets {
            return Err(ApiError::bad_request(format!(
                "{n} buckets; at most {} per query: use a larger `every` or a shorter range",
                http.max_buckets
            )));
        }
        let range = RangeQuery {
            limit: http.max_buckets + 1,
            after: None,
            ..range
        };
        let buckets = hub.store.query_buckets(range, every_us, agg).await?;
        return Ok(reply(Points::Buckets(buckets), None));
    }
    if let Some(n) = q.max_points {
        let points = hub.store.downsample(range, n).await?;
        return Ok(reply(Points::Raw(points), None));
    }
    let points = hub.store.query_points(range).await?;
    let next = (points.len() == q.limit)
        .then(|| points.last().map(|p| encode_cursor(p.ts)))
        .flatten();
    Ok(reply(Points::Raw(points), next))
}

#[derive(Serialize)]
struct ReadingsOut<'a> {
    device: &'a DeviceName,
    sensor: &'a SensorName,
    points: Points,
    next_cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Points {
    Raw(Vec<Point>),
    Buckets(Vec<Bucket>),
}

/// `/readyz`: 200 while storage answers, whatever the broker's state (the hub still
/// ingests over WebSocket, and taking it out of a load balancer would cut those devices
/// off too); 503 when storage does not. The JSON body lists both.
async fn ready(State(hub): State<Arc<HubState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let mqtt = hub.mqtt.as_ref().map(|m| m.broker());
    let storage = match tokio::time::timeout(Duration::from_secs(2), hub.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: storage is not reachable");
            Err("storage is not reachable (the hub's log says why)".to_owned())
        }
        Err(_) => Err("storage did not answer within 2 s".to_owned()),
    };
    match storage {
        Ok(()) => Ok(Json(serde_json::json!({
            "ready": true,
            "storage": {"ok": true, "backend": hub.store.backend()},
            "mqtt": mqtt,
        }))),
        Err(detail) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-21T12:00:00Z").unwrap()
    }

    #[test]
    fn parses_a_bucket_query() {
        let q = ReadingsQuery::parse("device=b-1&sensor=t&from=-1h&every=1m&agg=max", now(), 100)
            .unwrap();
        assert_eq!(q.buckets, Some((Duration::from_secs(60), Agg::Max)));
        assert_eq!(q.to, now());
        assert_eq!(q.limit, 100);
    }

    #[test]
    fn explains_bad_parameters() {
        let e = |q: &str| ReadingsQuery::parse(q, now(), 100).unwrap_err();
        assert!(e("sensor=t").contains("device"));
        assert!(e("device=a&sensor=t&limit=0").contains("limit"));
        assert!(e("device=a&sensor=t&limit=101").contains("limit"));
        assert!(e("device=a&sensor=t&from=now").contains("before"));
        assert!(e("device=a&sensor=t&agg=avg").contains("every"));
        assert!(e("device=a&sensor=t&every=1m&agg=median").contains("agg"));
        assert!(e("device=a&sensor=t&cursor=zzz").contains("cursor"));
        assert!(e("device=a&sensor=t&form=1").contains("unknown parameter"));
        assert!(e("device=a&device=b&sensor=t").contains("twice"));
        assert!(e("device=a&sensor=t&max_points=4").contains("max_points"));
        assert!(e("device=a&sensor=t&max_points=101").contains("max_points"));
        assert!(e("device=a&sensor=t&max_points=50&limit=5").contains("combined"));
        assert!(e("device=a&sensor=t&max_points=50&every=1m").contains("combined"));
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(now())), Some(now()));
    }

    proptest! {
        #[test]
        fn arbitrary_query_strings_never_panic(s in "\\PC{0,120}") {
            let _ = ReadingsQuery::parse(&s, now(), 1000);
        }
    }
}

//! Alerts over HTTP (docs/protocol.md §9): current alerts and events (viewer), rules (admin).
//! `GET /v1/alerts` lists every series not ok — `firing`, and thresholds `pending` —
//! with its severity, value and `since`, who acknowledged it and which silence covers
//! it: what a dashboard's alert strip shows.

use super::authn::{Admin, Viewer};
use super::{ApiError, HubState};
use crate::alerts::rules::Rule;
use crate::alerts::silences::Silences;
use crate::domain::{AlertEvent, Timestamp, parse_time_arg};
use crate::storage::alerts::AlertStateRow;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;

/// Events one request returns at most.
const MAX_EVENTS: i64 = 10_000;

pub fn routes() -> Router<Arc<HubState>> {
    Router::new()
        .route("/v1/alerts", get(current))
        .route("/v1/alerts/events", get(events))
        .route("/v1/alert-rules", get(rules).post(add_rule))
        .route("/v1/alert-rules/{name}", delete(remove_rule))
}

/// One entry of `GET /v1/alerts`: the stored state and the silence covering it.
#[derive(serde::Serialize)]
struct Current {
    #[serde(flatten)]
    row: AlertStateRow,
    silenced_by: Option<i64>,
}

async fn current(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
) -> Result<Json<Vec<Current>>, ApiError> {
    let now = Timestamp::now();
    let silences = Silences::of(&hub.store.active_silences(now).await?);
    let rows = hub.store.alert_states().await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| Current {
                silenced_by: silences.covering(
                    &row.key.rule,
                    &row.key.device,
                    row.key.sensor.as_deref(),
                    now,
                ),
                row,
            })
            .collect(),
    ))
}

/// `?from=T&to=T` (cli.md times; default the last 24 h), `limit` (default and most 10,000).
async fn events(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<AlertEvent>>, ApiError> {
    let now = Timestamp::now();
    let (mut from, mut to, mut limit) = (None, now, MAX_EVENTS);
    for (k, v) in form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        let time =
            || parse_time_arg(&v, now).map_err(|e| ApiError::bad_request(format!("{k}: {e}")));
        match k.as_ref() {
            "from" => from = Some(time()?),
            "to" => to = time()?,
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_EVENTS).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("limit: expected 1 to {MAX_EVENTS}"))
                    })?
            }
            "token" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{}`",
                    other.chars().take(32).collect::<String>()
                )));
            }
        }
    }
    let from = from.unwrap_or(to.saturating_sub(Duration::from_secs(24 * 3600)));
    Ok(Json(hub.store.alert_events(from, to, limit).await?))
}

async fn rules(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let rows = hub.store.alert_rules().await?;
    Ok(Json(
        rows.iter()
            .filter_map(|r| serde_json::from_str(&r.spec).ok())
            .collect(),
    ))
}

/// `POST /v1/alert-rules` (admin): a protocol.md §9 rule → `201` with the rule as stored, once this
/// hub's engine evaluates with it.
async fn add_rule(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
    body: String,
) -> Result<Response, ApiError> {
    let rule = Rule::from_json(&body)
        .and_then(|r| r.check_new(hub.settings.alerts.min_repeat).map(|()| r))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let max = hub.settings.alerts.max_rules;
    if hub.store.alert_rule_count().await? >= max as i64 {
        return Err(ApiError::bad_request(format!(
            "at most {max} alert rules (alerts.max_rules); remove some first"
        )));
    }
    hub.store
        .add_alert_rules(&[(rule.name.clone(), rule.spec_json())])
        .await?;
    let epoch = hub.store.alert_rules_epoch().await?;
    hub.alerts.rules_changed(epoch).await;
    Ok((StatusCode::CREATED, Json(&rule.spec)).into_response())
}

async fn remove_rule(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    hub.store.delete_alert_rule(&name).await?;
    hub.alerts
        .rules_changed(hub.store.alert_rules_epoch().await?)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

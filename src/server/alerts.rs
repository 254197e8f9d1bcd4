//! Alerts over HTTP (docs/protocol.md §9): current alerts and events (viewer), rules (admin).
//! `GET /v1/alerts` lists every series not ok — `firing`, and thresholds `pending` —
//! with its severity, value and `since`, who acknowledged it and which silence covers
//! it: what a dashboard's alert strip shows.

use super::authn::{Admin, Viewer};
use super::paging::{Page, PageRequest};
use super::{ApiError, HubState};
use crate::alerts::rules::Rule;
use crate::alerts::silences::Silences;
use crate::domain::{Timestamp, parse_time_arg};
use crate::storage::alerts::AlertStateRow;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;

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

/// `GET /v1/alerts[?limit=N&cursor=C]`: pages by (rule, device, sensor).
async fn current(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    type Key = (String, String, Option<String>);
    let page: PageRequest<Key> =
        PageRequest::from_query(uri.query(), hub.settings.limits.max_page_size, None)?;
    let now = Timestamp::now();
    let silences = Silences::of(&hub.store.active_silences(now).await?);
    let rows = hub.store.alert_states().await?;
    let page = page.page(rows, |r| {
        (
            r.key.rule.clone(),
            r.key.device.clone(),
            r.key.sensor.clone(),
        )
    });
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|row| Current {
                silenced_by: silences.covering(
                    &row.key.rule,
                    &row.key.device,
                    row.key.sensor.as_deref(),
                    now,
                ),
                row,
            })
            .collect::<Vec<_>>(),
        next: page.next,
    }
    .respond(&uri))
}

/// `?from=T&to=T` (cli.md times; default the last 24 h), by id; `limit` (default and
/// most `[limits] max_page_size`) and `cursor` as `server::paging` says.
async fn events(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    let max = hub.settings.limits.max_page_size;
    let page: PageRequest<i64> = PageRequest::from_query(uri.query(), max, Some(max))?;
    let (mut from, mut to) = (None, now);
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let time =
            || parse_time_arg(&v, now).map_err(|e| ApiError::bad_request(format!("{k}: {e}")));
        match k.as_ref() {
            "from" => from = Some(time()?),
            "to" => to = time()?,
            "limit" | "cursor" | "token" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{}`",
                    other.chars().take(32).collect::<String>()
                )));
            }
        }
    }
    let from = from.unwrap_or(to.saturating_sub(Duration::from_secs(24 * 3600)));
    let limit = page.limit.unwrap_or(max);
    // One more than the page: whether another follows.
    let rows = hub
        .store
        .alert_events(from, to, page.after, limit as i64 + 1)
        .await?;
    Ok(page.page(rows, |e| e.id).respond(&uri))
}

/// `GET /v1/alert-rules[?limit=N&cursor=C]` (admin): the rules as stored, by name.
async fn rules(
    State(hub): State<Arc<HubState>>,
    _a: Admin,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let page: PageRequest<String> =
        PageRequest::from_query(uri.query(), hub.settings.limits.max_page_size, None)?;
    let rows = hub.store.alert_rules().await?;
    let page = page.page(rows, |r| r.name.clone());
    Ok(Page {
        items: page
            .items
            .iter()
            .filter_map(|r| serde_json::from_str(&r.spec).ok())
            .collect::<Vec<serde_json::Value>>(),
        next: page.next,
    }
    .respond(&uri))
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

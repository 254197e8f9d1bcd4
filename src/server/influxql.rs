//! `GET`/`POST /query` (docs/grafana.md): InfluxDB 1.x's read endpoint, so
//! Grafana's InfluxDB data source, the `influx` shell and InfluxDB client libraries read
//! the hub's history.
//!
//! Transport only: parameters from the URL and (POST) a form body, the viewer token from
//! wherever InfluxDB clients put it (`Authorization: Token`/`Bearer`/basic auth's
//! password, `?p=`, `?token=`), the text parsed by [`crate::protocol::influxql`] and
//! answered by [`crate::influxql`]. A query that does not parse is `400 {"error":
//! "error parsing query: …"}`; a statement that fails gets its error in its result.

use super::HubState;
use super::authn::{AuthError, principal_of};
use super::body;
use crate::domain::Timestamp;
use crate::influxql::{Context, Epoch, QueryLimits, answer};
use crate::protocol::influxql::parse;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// An answer in InfluxDB 1.x's error shape, `{"error": "…"}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"error": message.into()});
    (
        status,
        [("x-influxdb-version", super::influx::VERSION)],
        axum::Json(body),
    )
        .into_response()
}

/// `GET` or `POST /query`.
pub async fn query(
    State(hub): State<Arc<HubState>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Response {
    let http = &hub.settings.http;
    let mut params: HashMap<String, String> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if method == Method::POST && is_form(&headers) {
        let wait = hub.settings.server.handshake_timeout;
        // The form holds the query and a few short parameters.
        let max = http.max_query_bytes.saturating_add(4096);
        match body::read(body, max, wait).await {
            Ok(b) => params.extend(form_urlencoded::parse(&b).into_owned()),
            Err(body::BodyError::TooLarge(_)) => return too_large(http.max_query_bytes),
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
    let mut token = super::influx::token_of(&headers, &params);
    if token.is_none() {
        token = params.get("token").filter(|t| !t.is_empty()).cloned();
    }
    match principal_of(&hub, token.as_deref()).await {
        Ok(p) if p.can_view() => {}
        Ok(_) => {
            return error(
                StatusCode::FORBIDDEN,
                "/query needs a viewer, operator or admin token; device tokens may only write",
            );
        }
        Err(AuthError::Storage(e)) => {
            tracing::warn!(error = %e, "storage error authenticating a query");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage is unavailable; retry later",
            );
        }
        Err(AuthError::MissingToken) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing token: send the viewer token as the password (-password, p=, basic auth) or `Authorization: Token <token>`",
            );
        }
        Err(_) => return error(StatusCode::UNAUTHORIZED, "unknown or revoked token"),
    }
    let Some(text) = params.get("q").filter(|q| !q.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing required parameter \"q\"");
    };
    if text.len() > http.max_query_bytes {
        return too_large(http.max_query_bytes);
    }
    let epoch = match params.get("epoch").map(String::as_str) {
        None | Some("") => None,
        Some(e) => match Epoch::parse(e) {
            Some(e) => Some(e),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "epoch: expected ns, u, ms, s, m or h",
                );
            }
        },
    };
    let statements = match parse(text) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("error parsing query: {e}")),
    };
    let ctx = Context {
        store: &hub.store,
        now: Timestamp::now(),
        epoch,
        limits: QueryLimits {
            max_series: http.max_query_series,
            max_points: http.max_query_points,
            max_buckets: http.max_buckets,
        },
        db: params.get("db").cloned(),
    };
    let results = answer(&ctx, &statements).await;
    let body = json!({ "results": results });
    let text = match params.get("pretty").map(String::as_str) {
        Some("true") => serde_json::to_string_pretty(&body),
        _ => serde_json::to_string(&body),
    }
    .unwrap_or_default();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE.as_str(), "application/json"),
            ("x-influxdb-version", super::influx::VERSION),
        ],
        text,
    )
        .into_response()
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the query is over {max} bytes (http.max_query_bytes)"),
    )
}

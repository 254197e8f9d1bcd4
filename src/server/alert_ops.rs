//! What operators do to alerts over HTTP (contract §16): `POST /v1/alerts/ack`, and
//! `POST`, `GET` and `DELETE` of `/v1/silences`. Acting needs an operator (or admin)
//! token, listing a viewer's. Bodies are parsed by [`crate::alerts::silences`]; the
//! engine stores an acknowledgement and announces its event; a silence is stored here
//! and the engine reads it again before the answer.

use super::authn::{Operator, Viewer};
use super::paging::PageRequest;
use super::{ApiError, HubState};
use crate::alerts::RequestError;
use crate::alerts::silences::{AckRequest, SilenceRequest};
use crate::auth::Principal;
use crate::domain::{AlertEvent, Timestamp};
use crate::storage::alert_acks::NewAck;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Arc<HubState>> {
    Router::new()
        .route("/v1/alerts/ack", post(acknowledge))
        .route("/v1/silences", post(add_silence).get(silences))
        .route("/v1/silences/{id}", delete(remove_silence))
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Stopped => ApiError::unavailable(e.to_string()),
            RequestError::Storage(s) => s.into(),
        }
    }
}

/// The name of the token acting (`by`).
async fn token_name(hub: &HubState, p: &Principal) -> Result<String, ApiError> {
    let id = p.token_id();
    Ok(hub
        .store
        .token_label(id)
        .await?
        .unwrap_or_else(|| format!("token-{id}")))
}

/// `POST /v1/alerts/ack` (operator): `200` with the stored `acknowledged` event; `404`
/// when that alert is not firing.
async fn acknowledge(
    State(hub): State<Arc<HubState>>,
    Operator(p): Operator,
    body: String,
) -> Result<Json<AlertEvent>, ApiError> {
    let req =
        AckRequest::from_json(body.as_bytes()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ack = NewAck {
        key: req.key,
        by: token_name(&hub, &p).await?,
        comment: req.comment,
        ts: Timestamp::now(),
    };
    Ok(Json(hub.alerts.acknowledge(ack).await?))
}

/// `POST /v1/silences` (operator): `201 {"id"}`, once this hub's engine judges events by it.
async fn add_silence(
    State(hub): State<Arc<HubState>>,
    Operator(p): Operator,
    body: String,
) -> Result<Response, ApiError> {
    let bad = |e: crate::alerts::silences::OperatorError| ApiError::bad_request(e.to_string());
    let req = SilenceRequest::from_json(body.as_bytes()).map_err(bad)?;
    let by = token_name(&hub, &p).await?;
    let now = Timestamp::now();
    let new = req.to_new(&by, now).map_err(bad)?;
    let id = hub
        .store
        .add_silence(&new, now, hub.settings.alerts.max_silences)
        .await?;
    hub.alerts.silences_changed().await;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

/// `GET /v1/silences[?limit=N&cursor=C]` (viewer): the active silences, oldest (lowest
/// id) first.
async fn silences(
    State(hub): State<Arc<HubState>>,
    _v: Viewer,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let page: PageRequest<i64> =
        PageRequest::from_query(uri.query(), hub.settings.limits.max_page_size, None)?;
    let rows = hub.store.active_silences(Timestamp::now()).await?;
    Ok(page.page(rows, |s| s.id).respond(&uri))
}

/// `DELETE /v1/silences/ID` (operator): `204`; alerts still firing under it are announced
/// once. `404` when no active silence has that id.
async fn remove_silence(
    State(hub): State<Arc<HubState>>,
    _o: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let missing = || {
        ApiError::not_found(format!(
            "no active silence {}; GET /v1/silences lists them",
            id.chars().take(24).collect::<String>()
        ))
    };
    let id: i64 = id.parse().map_err(|_| missing())?;
    hub.store.end_silence(id, Timestamp::now()).await?;
    hub.alerts.silences_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

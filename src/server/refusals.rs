//! Refused WebSocket handshakes in the log: a device or dashboard turned away before the
//! upgrade (401, 403, 503) gets one warning line with the peer, the path, the status and
//! the reason it was also told, so "my device can't connect" can be read from the log.

use super::listener::ConnInfo;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// The detail of an error response, attached by [`super::ApiError`] for this log.
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

/// Middleware for the socket routes: logs every refused handshake.
pub async fn log_refused(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.peer.to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        let reason = resp
            .extensions()
            .get::<Refusal>()
            .map(|r| r.0.as_str())
            .unwrap_or("");
        tracing::warn!(
            %peer,
            %path,
            status = status.as_u16(),
            reason,
            "handshake refused"
        );
    }
    resp
}

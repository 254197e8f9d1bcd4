//! Ingest over HTTP (docs/protocol.md §4): `POST /v1/ingest` with a protocol.md §2 message or a SenML pack
//! as the body, for devices and collectors that cannot hold a WebSocket.
//!
//! The body goes through the same ingest pipeline as a socket's frame
//! ([`crate::ingest::Pipeline::accept`]): same tokens, validation, rate limits,
//! idempotency, and the answer only after commit. Status codes: `200` with the protocol.md §2 ack,
//! `400` with the protocol.md §2 nack object, `413` over `ingest.max_frame_bytes`, `429` and `503`
//! (also with the nack object) with `Retry-After`. Authentication failures are http-api.md errors.

use super::authn::DeviceCaller;
use super::body::{self, BodyError};
use super::{ApiError, HubState};
use crate::ingest::Sender;
use crate::protocol::ingest::{ErrorCode, Reply};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `POST /v1/ingest`.
pub async fn post(
    State(hub): State<Arc<HubState>>,
    caller: DeviceCaller,
    body: Body,
) -> Result<Response, ApiError> {
    let max = hub.settings.ingest.max_frame_bytes;
    let wait = hub.settings.server.handshake_timeout;
    let bytes = body::read(body, max, wait).await.map_err(|e| match e {
        BodyError::TooLarge(_) => ApiError::too_large(format!(
            "{e} (ingest.max_frame_bytes); send fewer readings per request"
        )),
        BodyError::Late(_) => ApiError::bad_request(e.to_string()),
    })?;
    let reply = match std::str::from_utf8(&bytes) {
        Ok(text) => {
            let from = Sender {
                device: &caller.device,
                gateway_for: &caller.gateway_for,
                transport: crate::domain::Transport::Http,
            };
            hub.ingest.accept(from, text).await.await
        }
        Err(_) => hub.ingest.refuse(crate::protocol::ingest::Refusal {
            id: None,
            code: ErrorCode::InvalidJson,
            detail: "the body is not UTF-8 text".into(),
        }),
    };
    Ok(answer(&reply))
}

/// The HTTP status a reply goes out with.
fn status(reply: &Reply) -> StatusCode {
    match reply {
        Reply::Ack { .. } => StatusCode::OK,
        Reply::Nack { error, .. } => match error {
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        },
    }
}

fn answer(reply: &Reply) -> Response {
    let status = status(reply);
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        reply.to_json(),
    )
        .into_response();
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reply_has_its_status() {
        let nack = |error| Reply::Nack {
            nack: Some(1),
            error,
            detail: String::new(),
        };
        let ack = Reply::Ack {
            ack: Some(1),
            stored: 2,
        };
        assert_eq!(status(&ack), StatusCode::OK);
        assert_eq!(
            status(&nack(ErrorCode::InvalidReading)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&nack(ErrorCode::ForbiddenDevice)),
            StatusCode::BAD_REQUEST
        );
        let limited = answer(&nack(ErrorCode::RateLimited));
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            status(&nack(ErrorCode::Unavailable)),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

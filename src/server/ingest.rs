//! Device sockets (`GET /v1/ingest`, contract §2).
//!
//! Per connection, one task: it reads a frame and hands its text to the ingest
//! pipeline ([`crate::ingest::Pipeline::accept`]: parse, authorise, rate-limit, store).
//! Replies are queued in arrival order and written as soon as each commit is
//! answered, so one reply per message goes out in order, while later messages are
//! already being read (pipelining, at most `max_inflight_messages`). When the writer
//! queue is full, the task stops reading — backpressure reaches the device's TCP window.

use super::authn::Authenticated;
use super::limits::HandshakeSlot;
use super::listener::ConnInfo;
use super::ws::{self, Beat, Heartbeat};
use super::{ApiError, HubState};
use crate::auth::{DeviceRef, Principal};
use crate::domain::DeviceName;
use crate::ingest::{ReplyFuture, Sender};
use crate::protocol::ingest::{ErrorCode, Reply};
use crate::sessions::SessionGuard;
use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;

/// Authenticates (401 before any upgrade), then upgrades to a device socket.
pub async fn upgrade(
    _slot: HandshakeSlot,
    State(hub): State<Arc<HubState>>,
    Authenticated(principal): Authenticated,
    conn: Option<Extension<ConnInfo>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Principal::Device {
        token_id,
        ref device,
        ..
    } = principal
    else {
        return Err(ApiError::forbidden(
            "/v1/ingest needs a device token; viewer and admin tokens cannot send readings",
        ));
    };
    let session = hub.sessions.register(token_id, Some(device.name.clone()));
    let task = hub.tasks.token();
    let ws = ws::configure(ws, &hub.settings.ingest);
    Ok(ws.on_upgrade(move |socket| async move {
        let (_task, _conn) = (task, conn);
        let gauge = hub.metrics.connection_gauge("ingest");
        gauge.inc();
        let peer = _conn
            .as_ref()
            .map(|c| c.0.peer.to_string())
            .unwrap_or_default();
        let device = principal_name(&principal).to_owned();
        tracing::info!(%device, %peer, "device connected");
        let span = tracing::debug_span!("ingest", %device, %peer);
        let closed = tracing::Instrument::instrument(
            DeviceSocket::new(hub, principal, session).run(socket),
            span,
        )
        .await;
        match closed {
            Some((code, reason)) => {
                tracing::info!(%device, %peer, close_code = code, reason, "device disconnected")
            }
            None => {
                tracing::info!(%device, %peer, reason = "connection lost", "device disconnected")
            }
        }
        gauge.dec();
    }))
}

fn principal_name(p: &Principal) -> &str {
    match p {
        Principal::Device { device, .. } => device.name.as_str(),
        _ => "",
    }
}

struct DeviceSocket {
    hub: Arc<HubState>,
    device: DeviceRef,
    gateway_for: HashMap<DeviceName, DeviceRef>,
    session: SessionGuard,
    /// Replies not yet written, in arrival order.
    replies: FuturesOrdered<ReplyFuture>,
    /// Consecutive `rate_limited` replies sent.
    rate_limited_run: u32,
}

impl DeviceSocket {
    fn new(hub: Arc<HubState>, principal: Principal, session: SessionGuard) -> Self {
        let Principal::Device {
            device,
            gateway_for,
            ..
        } = principal
        else {
            unreachable!("checked before upgrade")
        };
        Self {
            hub,
            device,
            gateway_for,
            session,
            replies: FuturesOrdered::new(),
            rate_limited_run: 0,
        }
    }

    /// Serves the socket until it closes: the close code and reason sent, or `None` when
    /// the connection was lost without a close.
    async fn run(mut self, mut socket: WebSocket) -> Option<(u16, &'static str)> {
        let mut heartbeat = Heartbeat::new(&self.hub.settings.ingest);
        let max_inflight = self.hub.settings.ingest.max_inflight_messages;
        let shutdown = self.hub.shutdown.clone();
        let revoked = self.session.revoked().clone();
        let (code, reason) = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break (ws::GOING_AWAY, "hub shutting down"),
                _ = revoked.cancelled() => break (ws::POLICY, "token revoked"),
                Some(reply) = self.replies.next(), if !self.replies.is_empty() => {
                    if self.write_replies(&mut socket, reply).await.is_err() {
                        return None;
                    }
                    if self.rate_limited_run >= self.hub.settings.limits.abuse_close_after {
                        break (ws::POLICY, "rate limit exceeded persistently");
                    }
                }
                msg = socket.recv(), if self.replies.len() < max_inflight => {
                    heartbeat.heard();
                    match msg {
                        Some(Ok(Message::Text(text))) => self.handle_text(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => break (ws::UNSUPPORTED, "binary frames are not accepted; send JSON text"),
                        Some(Ok(Message::Close(_))) | None => break (ws::NORMAL, ""),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => match ws::close_code_for(e) {
                            Some(c) => break c,
                            None => return None,
                        },
                    }
                }
                beat = heartbeat.next() => match beat {
                    Beat::Idle => break (ws::NORMAL, "idle timeout"),
                    Beat::Ping => if socket.send(Message::Ping(Default::default())).await.is_err() { return None },
                },
            }
        };
        // Answer what was already read (each is committed or refused by now or soon).
        let grace = self.hub.settings.server.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while let Some(reply) = self.replies.next().await {
                if self.write_replies(&mut socket, reply).await.is_err() {
                    break;
                }
            }
        })
        .await;
        ws::close(&mut socket, code, reason).await;
        Some((code, reason))
    }

    /// Writes `first` and every other reply already resolved, then flushes once.
    async fn write_replies(
        &mut self,
        socket: &mut WebSocket,
        first: Reply,
    ) -> Result<(), axum::Error> {
        let mut next = Some(first);
        while let Some(reply) = next {
            match &reply {
                Reply::Nack {
                    error: ErrorCode::RateLimited,
                    ..
                } => self.rate_limited_run += 1,
                _ => self.rate_limited_run = 0,
            }
            socket.feed(Message::Text(reply.to_json().into())).await?;
            next = self.replies.next().now_or_never().flatten();
        }
        socket.flush().await
    }

    async fn handle_text(&mut self, text: &str) {
        let from = Sender {
            device: &self.device,
            gateway_for: &self.gateway_for,
        };
        let reply = self.hub.ingest.accept(from, text).await;
        self.replies.push_back(reply);
    }
}

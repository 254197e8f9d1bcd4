//! Device sockets (`GET /v1/ingest`, contract §2).
//!
//! Per connection, one task: it reads a frame, parses it into a typed message,
//! authorises every reading's device, and hands the readings to the storage writer.
//! Replies are queued in arrival order and written as soon as each commit is
//! answered, so one reply per message goes out in order, while later messages are
//! already being read (pipelining, at most `max_inflight_messages`). When the writer
//! queue is full, the task stops reading — backpressure reaches the device's TCP window.

use super::authn::Authenticated;
use super::limits::HandshakeSlot;
use super::listener::ConnInfo;
use super::sessions::SessionGuard;
use super::ws::{self, Beat, Heartbeat};
use super::{ApiError, HubState};
use crate::auth::{DeviceRef, Principal};
use crate::domain::{DeviceName, Reading, Timestamp};
use crate::protocol::ingest::{
    DeviceMessage, ErrorCode, ParseLimits, Refusal, Reply, parse_message,
};
use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::future::BoxFuture;
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
        let span = tracing::debug_span!("ingest", device = %principal_name(&principal), %peer);
        let _ = tracing::Instrument::instrument(
            DeviceSocket::new(hub, principal, session).run(socket),
            span,
        )
        .await;
        gauge.dec();
    }))
}

fn principal_name(p: &Principal) -> &str {
    match p {
        Principal::Device { device, .. } => device.name.as_str(),
        _ => "",
    }
}

/// A reading with the device it is stored for.
pub type Row = (DeviceRef, Reading);

/// A reply that resolves once its message is committed or refused.
pub type PendingReply = BoxFuture<'static, Reply>;

struct DeviceSocket {
    hub: Arc<HubState>,
    device: DeviceRef,
    gateway_for: HashMap<DeviceName, DeviceRef>,
    session: SessionGuard,
    pending: FuturesOrdered<PendingReply>,
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
            pending: FuturesOrdered::new(),
            rate_limited_run: 0,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let mut heartbeat = Heartbeat::new(&self.hub.settings.ingest);
        let max_inflight = self.hub.settings.ingest.max_inflight_messages;
        let shutdown = self.hub.shutdown.clone();
        let revoked = self.session.revoked().clone();
        let (code, reason) = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break (ws::GOING_AWAY, "hub shutting down"),
                _ = revoked.cancelled() => break (ws::POLICY, "token revoked"),
                Some(reply) = self.pending.next(), if !self.pending.is_empty() => {
                    if self.write_replies(&mut socket, reply).await.is_err() {
                        return;
                    }
                    if self.rate_limited_run >= self.hub.settings.limits.abuse_close_after {
                        break (ws::POLICY, "rate limit exceeded persistently");
                    }
                }
                msg = socket.recv(), if self.pending.len() < max_inflight => {
                    heartbeat.heard();
                    match msg {
                        Some(Ok(Message::Text(text))) => self.handle_text(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => break (ws::UNSUPPORTED, "binary frames are not accepted; send JSON text"),
                        Some(Ok(Message::Close(_))) | None => break (ws::NORMAL, ""),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => match ws::close_code_for(e) {
                            Some(c) => break c,
                            None => return,
                        },
                    }
                }
                beat = heartbeat.next() => match beat {
                    Beat::Idle => break (ws::NORMAL, "idle timeout"),
                    Beat::Ping => if socket.send(Message::Ping(Default::default())).await.is_err() { return },
                },
            }
        };
        // Answer what was already read (each is committed or refused by now or soon).
        let grace = self.hub.settings.server.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while let Some(reply) = self.pending.next().await {
                if self.write_replies(&mut socket, reply).await.is_err() {
                    break;
                }
            }
        })
        .await;
        ws::close(&mut socket, code, reason).await;
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
            next = self.pending.next().now_or_never().flatten();
        }
        socket.flush().await
    }

    async fn handle_text(&mut self, text: &str) {
        let reply = accept_message(&self.hub, &self.device, &self.gateway_for, text).await;
        self.pending.push_back(reply);
    }
}

/// The ingest path shared by every transport (WebSocket, MQTT): [`check_message`], then
/// queue the readings for the storage writer (waiting while its queue is full), and
/// return the reply, which resolves once the readings are committed or refused.
pub async fn accept_message(
    hub: &HubState,
    device: &DeviceRef,
    gateway_for: &HashMap<DeviceName, DeviceRef>,
    text: &str,
) -> PendingReply {
    match check_message(hub, device, gateway_for, text) {
        Ok((id, rows)) => {
            let n = rows.len();
            let done = hub.writer.submit(rows).await;
            let metrics = hub.metrics.clone();
            async move {
                match done.await {
                    Ok(Ok(stored)) => {
                        metrics.acks.inc();
                        metrics.readings_ingested.inc_by(n as u64);
                        Reply::Ack { ack: id, stored }
                    }
                    Ok(Err(e)) => refuse(
                        &metrics,
                        Refusal {
                            id,
                            code: ErrorCode::Unavailable,
                            detail: e.0,
                        },
                    ),
                    Err(_) => refuse(
                        &metrics,
                        Refusal {
                            id,
                            code: ErrorCode::Unavailable,
                            detail: "the hub is shutting down; resend".into(),
                        },
                    ),
                }
            }
            .boxed()
        }
        Err(r) => futures_util::future::ready(refuse(&hub.metrics, r)).boxed(),
    }
}

/// Takes the readings from each target device's rate budget (`[limits]`).
fn within_rate(
    hub: &HubState,
    (id, rows): (Option<u64>, Vec<Row>),
) -> Result<(Option<u64>, Vec<Row>), Refusal> {
    let mut per_device: Vec<(i64, usize)> = Vec::new();
    for (d, _) in &rows {
        match per_device.iter_mut().find(|(id, _)| *id == d.id) {
            Some((_, n)) => *n += 1,
            None => per_device.push((d.id, 1)),
        }
    }
    if per_device
        .iter()
        .all(|&(device, n)| hub.limits.readings(device, n))
    {
        Ok((id, rows))
    } else {
        let rate = hub.limits.settings.device_readings_per_second;
        Err(Refusal {
            id,
            code: ErrorCode::RateLimited,
            detail: format!(
                "more than {rate} readings/s for this device; slow down and resend later"
            ),
        })
    }
}

/// The checks every transport applies before storage: parse `text` (§2 object or SenML
/// pack), authorise each reading's device (`device` itself, or one of `gateway_for`),
/// and take the readings from the devices' rate budgets. Returns the message `id` and the rows to store; a refusal is not counted here.
pub fn check_message(
    hub: &HubState,
    device: &DeviceRef,
    gateway_for: &HashMap<DeviceName, DeviceRef>,
    text: &str,
) -> Result<(Option<u64>, Vec<Row>), Refusal> {
    let limits = ParseLimits {
        max_readings: hub.settings.ingest.max_readings_per_message,
        max_clock_skew: hub.settings.ingest.max_clock_skew,
        now: Timestamp::now(),
    };
    parse_message(text, &limits)
        .and_then(|m| authorise(device, gateway_for, m))
        .and_then(|ok| within_rate(hub, ok))
}

/// Resolves each reading's device: `device` itself, or one it is a gateway for.
fn authorise(
    device: &DeviceRef,
    gateway_for: &HashMap<DeviceName, DeviceRef>,
    m: DeviceMessage,
) -> Result<(Option<u64>, Vec<Row>), Refusal> {
    let id = m.id;
    let rows = m
        .readings
        .into_iter()
        .map(|r| {
            let dev = match r.device {
                None => device.clone(),
                Some(d) if d == device.name => device.clone(),
                Some(d) => gateway_for.get(&d).cloned().ok_or_else(|| Refusal {
                    id,
                    code: ErrorCode::ForbiddenDevice,
                    detail: format!("device {d}: this token may not send readings for it"),
                })?,
            };
            Ok((dev, r.reading))
        })
        .collect::<Result<_, _>>()?;
    Ok((id, rows))
}

fn refuse(metrics: &crate::metrics::Metrics, r: Refusal) -> Reply {
    metrics.nack(r.code);
    Reply::refused(r)
}

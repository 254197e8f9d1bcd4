//! Dashboard sockets (`GET /v1/live`, contract §3): viewer token and `Origin` checked
//! before the upgrade; then one task per client reads subscribe/unsubscribe commands
//! (answering `resume`) and, when its socket can take them, reads the client's readings
//! from the hub-wide history into as few frames as possible, flushing once.

use super::authn::Viewer;
use super::limits::HandshakeSlot;
use super::listener::ConnInfo;
use super::ws::{self, Beat, Heartbeat};
use super::{ApiError, HubState};
use crate::domain::{StatusEvent, Timestamp};
use crate::live::history::Resume;
use crate::live::{Batch, LiveClient};
use crate::protocol::live::{
    ClientCommand, error_frame, frames, parse_command, resumed_frame, status_frame,
};
use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::SinkExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Checks the token and the browser origin, then upgrades to a live-feed socket.
pub async fn upgrade(
    _slot: HandshakeSlot,
    State(hub): State<Arc<HubState>>,
    Viewer(principal): Viewer,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    check_origin(&hub, &headers)?;
    let session = hub.sessions.register(principal.token_id(), None);
    let task = hub.tasks.token();
    let ws = ws::configure(ws, &hub.settings.ingest);
    Ok(ws.on_upgrade(move |socket| async move {
        let (_task, _conn) = (task, conn);
        let gauge = hub.metrics.connection_gauge("live");
        gauge.inc();
        let client = hub.live.register();
        run(hub, client, session.revoked().clone(), socket).await;
        drop(session);
        gauge.dec();
    }))
}

/// A request without `Origin` (not a browser) passes; a browser's must be the hub's own
/// origin (`scheme://Host`) or one of `allowed_origins`.
fn check_origin(hub: &HubState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let scheme = if hub.settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let own = format!("{scheme}://{host}");
    if origin.eq_ignore_ascii_case(&own)
        || hub
            .settings
            .server
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "origin {origin:?} is not allowed; add it to server.allowed_origins"
        )))
    }
}

async fn run(
    hub: Arc<HubState>,
    mut client: LiveClient,
    revoked: tokio_util::sync::CancellationToken,
    mut socket: WebSocket,
) {
    let mut heartbeat = Heartbeat::new(&hub.settings.ingest);
    let shutdown = hub.shutdown.clone();
    let mut last_write: Option<Instant> = None;
    let (code, reason) = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break (ws::GOING_AWAY, "hub shutting down"),
            _ = revoked.cancelled() => break (ws::POLICY, "token revoked"),
            () = client.ready() => {
                pace(&hub, last_write).await;
                let Batch { status, lagged, readings } = client.take(hub.settings.live.client_queue);
                if status.is_empty() && lagged == 0 && readings.is_empty() {
                    continue; // nothing matched this client's patterns
                }
                last_write = Some(Instant::now());
                let live = &hub.settings.live;
                let frames = frames(hub.live.epoch(), status, lagged, &readings, live.max_readings_per_frame);
                match tokio::time::timeout(hub.settings.live.stuck_timeout, write_all(&mut socket, frames)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::info!("closing a dashboard socket that stopped reading");
                        break (ws::POLICY, "too slow");
                    }
                }
            }
            msg = socket.recv() => {
                heartbeat.heard();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let answer = match handle_command(&hub, &mut client, text.as_str()) {
                            Ok(answer) => answer,
                            Err(detail) => Some(error_frame(&detail)),
                        };
                        if let Some(answer) = answer
                            && socket.send(Message::Text(answer.into())).await.is_err()
                        {
                            return;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => break (ws::UNSUPPORTED, "binary frames are not accepted"),
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
    ws::close(&mut socket, code, reason).await;
}

/// The longest a socket waits for its turn to write.
const MAX_PACE: Duration = Duration::from_millis(250);

/// This socket's share of the hub-wide frame budget: `clients / max_frames_per_second`.
fn frame_interval(clients: usize, max_frames_per_second: u32) -> Duration {
    Duration::from_secs_f64(clients as f64 / f64::from(max_frames_per_second.max(1))).min(MAX_PACE)
}

/// Under load, waits out the rest of this socket's frame interval since its last write,
/// so the next take finds more and its frames carry more readings. A socket that has not
/// written for a whole interval writes at once.
async fn pace(hub: &HubState, last: Option<Instant>) {
    let interval = frame_interval(hub.live.clients(), hub.settings.live.max_frames_per_second);
    if let Some(due) = last.map(|t| t + interval)
        && Instant::now() < due
    {
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Carries out a command; the answer to send, if any (`resumed`), or what was wrong.
fn handle_command(
    hub: &HubState,
    client: &mut LiveClient,
    text: &str,
) -> Result<Option<String>, String> {
    let max = hub.settings.live.max_patterns;
    match parse_command(text, max)? {
        ClientCommand::Subscribe { patterns, resume } => {
            if client.pattern_count() + patterns.len() > max {
                return Err(format!(
                    "at most {max} patterns per client; unsubscribe some first"
                ));
            }
            // Tell the new subscriber which matching devices are online right now.
            for device in hub.sessions.online_devices() {
                if patterns.iter().any(|p| p.matches_device(device.as_str())) {
                    client.queue.push(status_frame(&StatusEvent {
                        device,
                        online: true,
                        ts: Timestamp::now(),
                    }));
                }
            }
            let resume = resume.as_ref().map(|r| (r.epoch.as_str(), r.offset));
            Ok(match client.subscribe(patterns, resume) {
                None => None,
                Some(Resume::Resumed) => Some(resumed_frame(None)),
                Some(Resume::NotResumed { epoch, offset }) => {
                    Some(resumed_frame(Some((&epoch, offset))))
                }
            })
        }
        ClientCommand::Unsubscribe(patterns) => {
            client.unsubscribe(&patterns);
            Ok(None)
        }
        ClientCommand::Alerts(on) => {
            client.set_alerts(on);
            Ok(None)
        }
    }
}

async fn write_all(socket: &mut WebSocket, frames: Vec<bytes::Bytes>) -> Result<(), axum::Error> {
    for f in frames {
        let text = Utf8Bytes::try_from(f).expect("frames are UTF-8 JSON");
        socket.feed(Message::Text(text)).await?;
    }
    socket.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_budget_is_shared_by_all_sockets() {
        assert!(frame_interval(1, 50_000) <= Duration::from_micros(20));
        assert_eq!(frame_interval(1_000, 50_000), Duration::from_millis(20));
        assert_eq!(frame_interval(1_000_000, 50_000), MAX_PACE);
    }
}

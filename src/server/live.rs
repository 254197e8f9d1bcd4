//! Dashboard sockets (`GET /v1/live`, docs/protocol.md §3): viewer token and `Origin` checked
//! before the upgrade; then one task per client reads subscribe/unsubscribe commands
//! (answering `resume`) and, when its socket can take them, reads the client's readings
//! from the hub-wide replay buffer into as few frames as possible, flushing once.
//!
//! Like device sockets, an idle one should cost little: its registrations are one box
//! built before the upgrade, and writing, answering, pinging and closing run as boxed
//! futures, so the idle task's future holds only what waiting needs.

use super::authn::Viewer;
use super::heartbeat::Beat;
use super::limits::HandshakeSlot;
use super::listener::ConnInfo;
use super::origin::Origins;
use super::ws;
use super::{ApiError, HubState};
use crate::domain::{StatusEvent, Timestamp};
use crate::live::replay::Resume;
use crate::live::{Batch, LiveClient};
use crate::protocol::live::{
    ClientCommand, error_frame, frames, parse_command, resumed_frame, status_frame,
};
use crate::sessions::SessionGuard;
use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::SinkExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::task::task_tracker::TaskTrackerToken;

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
    let ws = ws::configure(ws, &hub.settings.live.socket());
    let socket = Box::new(LiveSocket {
        _task: hub.tasks.token(),
        hub,
        session,
        _conn: conn,
    });
    Ok(ws.on_upgrade(move |ws| socket.serve(ws)))
}

/// One dashboard socket's registrations, boxed once before the upgrade (so the task's
/// future holds a pointer, not copies of them).
struct LiveSocket {
    hub: Arc<HubState>,
    session: SessionGuard,
    /// Holds the connection's place under the connection caps.
    _conn: Option<Extension<ConnInfo>>,
    /// Shutdown waits for this socket.
    _task: TaskTrackerToken,
}

impl LiveSocket {
    /// The socket's task. Not an `async fn`, for the reason given at the device
    /// socket's `serve`: the block borrows `socket` in place instead of copying it.
    #[allow(clippy::manual_async_fn)] // an `async fn` would hold `socket` twice
    fn serve(self: Box<Self>, mut socket: WebSocket) -> impl Future<Output = ()> + Send {
        async move {
            let gauge = self.hub.metrics.connection_gauge("live");
            gauge.inc();
            let mut client = self.hub.live.register();
            run(&self.hub, &mut client, self.session.closing(), &mut socket).await;
            gauge.dec();
        }
    }
}

/// A request without `Origin` (not a browser) passes; a browser's must be allowed by
/// [`Origins`].
fn check_origin(hub: &HubState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origins = Origins {
        scheme: if hub.settings.tls.is_some() {
            "https"
        } else {
            "http"
        },
        allowed: &hub.settings.server.allowed_origins,
        dashboard_url: &hub.settings.alerts.dashboard_url,
    };
    if origins.allow(origin, host) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "origin {:?} is not allowed; add it to server.allowed_origins (a page reached by a host name, not an address, must be listed)",
            crate::domain::untrusted(origin)
        )))
    }
}

async fn run(
    hub: &HubState,
    client: &mut LiveClient,
    closing: &tokio_util::sync::CancellationToken,
    socket: &mut WebSocket,
) {
    let (slot, mut heartbeat) = hub.live_beat.join();
    let mut tick = std::pin::pin!(slot.notified());
    let mut last_write: Option<Instant> = None;
    let (code, reason) = loop {
        tokio::select! {
            biased;
            _ = closing.cancelled() => break ws::closing_reason(&hub.shutdown),
            () = client.ready() => {
                match Box::pin(deliver(hub, client, socket, &mut last_write)).await {
                    Ok(()) => {}
                    Err(None) => return,
                    Err(Some(close)) => break close,
                }
            }
            msg = socket.recv() => {
                heartbeat.heard();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let answer = match handle_command(hub, client, text.as_str()) {
                            Ok(answer) => answer,
                            Err(refused) => Some(error_frame(&refused.to_string())),
                        };
                        if let Some(answer) = answer
                            && Box::pin(socket.send(Message::Text(answer.into()))).await.is_err()
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
            () = tick.as_mut() => {
                tick.set(slot.notified());
                match heartbeat.beat() {
                    Beat::Idle => break (ws::NORMAL, "idle timeout"),
                    Beat::Ping => if ws::ping(socket).await.is_err() { return },
                }
            }
        }
    };
    Box::pin(ws::close(socket, code, reason)).await;
}

/// Writes what this client's patterns matched since its last write, paced under load.
/// `Err(None)`: the connection is gone; `Err(Some(close))`: close it so.
async fn deliver(
    hub: &HubState,
    client: &mut LiveClient,
    socket: &mut WebSocket,
    last_write: &mut Option<Instant>,
) -> Result<(), Option<(u16, &'static str)>> {
    pace(hub, *last_write).await;
    let Batch {
        status,
        lagged,
        readings,
    } = client.take(hub.settings.live.client_queue);
    if status.is_empty() && lagged == 0 && readings.is_empty() {
        return Ok(()); // nothing matched this client's patterns
    }
    *last_write = Some(Instant::now());
    let live = &hub.settings.live;
    let frames = frames(
        hub.live.epoch(),
        status,
        lagged,
        &readings,
        live.max_readings_per_frame,
    );
    match tokio::time::timeout(live.stuck_timeout, write_all(socket, frames)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(None),
        Err(_) => {
            tracing::info!("closing a dashboard socket that stopped reading");
            Err(Some((ws::POLICY, "too slow")))
        }
    }
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

/// Why a dashboard's command was refused; the client is told in an `error` frame.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    /// Not a command (`protocol::live::parse_command` says why).
    #[error("{0}")]
    Malformed(String),
    #[error("at most {0} patterns per client; unsubscribe some first")]
    TooManyPatterns(usize),
}

/// Carries out a command; the answer to send, if any (`resumed`), or what was wrong.
fn handle_command(
    hub: &HubState,
    client: &mut LiveClient,
    text: &str,
) -> Result<Option<String>, CommandError> {
    let max = hub.settings.live.max_patterns;
    match parse_command(text, max).map_err(CommandError::Malformed)? {
        ClientCommand::Subscribe { patterns, resume } => {
            if client.pattern_count() + patterns.len() > max {
                return Err(CommandError::TooManyPatterns(max));
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
        ClientCommand::Commands(on) => {
            client.set_commands(on);
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
    fn an_idle_dashboard_socket_task_stays_small() {
        let serve =
            crate::server::ws::returned_size(|(s, ws): (Box<LiveSocket>, WebSocket)| s.serve(ws));
        eprintln!(
            "dashboard socket: serve future {serve} B, WebSocket {} B",
            size_of::<WebSocket>()
        );
        assert!(
            serve <= 1088,
            "the dashboard socket's future is {serve} bytes"
        );
    }

    #[test]
    fn the_frame_budget_is_shared_by_all_sockets() {
        assert!(frame_interval(1, 50_000) <= Duration::from_micros(20));
        assert_eq!(frame_interval(1_000, 50_000), Duration::from_millis(20));
        assert_eq!(frame_interval(1_000_000, 50_000), MAX_PACE);
    }
}

//! Device sockets (`GET /v1/ingest`, docs/protocol.md §2).
//!
//! Per connection, one task: it reads a frame and hands its text to the ingest
//! pipeline ([`crate::ingest::Pipeline::accept`]: parse, authorise, rate-limit, store).
//! Replies are queued in arrival order and written as soon as each commit is
//! answered, so one reply per message goes out in order, while later messages are
//! already being read (pipelining, at most `max_inflight_messages`). When the writer
//! queue is full, the task stops reading — backpressure reaches the device's TCP window.
//!
//! An idle socket should cost little: its state is one box built before the upgrade (so
//! the task's future holds a pointer, not copies of it), the reply queue is allocated
//! only while replies are owed, and everything done rarely (handling a message, writing
//! replies, pinging, closing) runs as a boxed future, so the idle future stays small
//! (see the size test below).
//!
//! Commands (docs/commands.md): a device that connected with `?commands=1` is attached
//! to its commands ([`crate::commands::device`]) and gets each as a `{"command": …}`
//! frame; `command_ack` and `command_result` frames go to the same module, one at a time,
//! and its answer (`result_stored`, or a nack) takes its place in the reply queue. A device
//! that did not opt in is never sent a command frame.
//!
//! Desired configuration (protocol.md §14): a device with `?commands=1` also takes its
//! configurations ([`crate::devconfig::device`]): `{"config": …}` on connect when it is
//! behind, then on every change; any device's `config_reported` is stored, one at a
//! time, and answered `{"config_stored": N}` in its place in the reply queue.

use super::authn::{Authenticated, DeviceCaller};
use super::heartbeat::Beat;
use super::limits::HandshakeSlot;
use super::listener::ConnInfo;
use super::replies::Owed;
use super::replies::Replies;
use super::ws;
use super::{ApiError, HubState};
use crate::auth::DeviceRef;
use crate::commands::device::{Attachment, CommandFrame};
use crate::devconfig::device::Known;
use crate::devconfig::gateway::Feeds;
use crate::domain::DeviceName;
use crate::ingest::Sender;
use crate::protocol::commands::ConfigDocument;
use crate::protocol::frames::{DeviceFrame, HubFrame};
use crate::protocol::ingest::{ErrorCode, Reply};
use crate::sessions::SessionGuard;
use crate::storage::commands::CommandRow;
use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use futures_util::FutureExt;
use futures_util::SinkExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;

/// Authenticates (401 before any upgrade), then upgrades to a device socket.
pub async fn upgrade(
    _slot: HandshakeSlot,
    State(hub): State<Arc<HubState>>,
    Authenticated(principal): Authenticated,
    conn: Option<Extension<ConnInfo>>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let commands = opts_in_to_commands(query.as_deref())?;
    // Checked here, after the upgrade's headers, as `/v1/ingest` always answered: 401
    // before them, 403 after.
    let DeviceCaller {
        token_id,
        device,
        gateway_for,
    } = DeviceCaller::of(principal)?;
    let session = hub.sessions.register(token_id, Some(device.name.clone()));
    let ws = ws::configure(ws, &hub.settings.ingest.socket());
    let mut socket = Box::new(DeviceSocket {
        _task: hub.tasks.token(),
        hub,
        device,
        gateway_for,
        session,
        conn: conn.map(|Extension(c)| c),
        replies: Replies::default(),
        rate_limited_run: 0,
        attachment: None,
        config: None,
        answers_for: None,
    });
    if commands {
        // Before the handshake completes: a command created once the device sees itself
        // connected is dispatched to this socket, never past it (to MQTT, say).
        socket.attach().await;
    }
    Ok(ws.on_upgrade(move |ws| socket.serve(ws)))
}

/// One device socket's state, boxed once before the upgrade.
struct DeviceSocket {
    hub: Arc<HubState>,
    device: DeviceRef,
    gateway_for: HashMap<DeviceName, DeviceRef>,
    session: SessionGuard,
    /// The connection (its peer address, and its place under the connection caps).
    conn: Option<ConnInfo>,
    /// Shutdown waits for this socket.
    _task: TaskTrackerToken,
    replies: Replies,
    /// Consecutive `rate_limited` replies sent.
    rate_limited_run: u32,
    /// Its commands, while it is connected (only when it asked for them).
    attachment: Option<Attachment>,
    /// Its desired configurations, while it is connected (only when it asked for commands).
    config: Option<Box<Feeds>>,
    /// The devices this connection answers commands for, built at its first answer.
    answers_for: Option<Arc<[DeviceName]>>,
}

/// `?commands=1` (or `true`): the device takes commands on this socket; absent, `0` or
/// `false`: it never gets a command frame.
fn opts_in_to_commands(query: Option<&str>) -> Result<bool, ApiError> {
    let mut on = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "commands" {
            on = match v.as_ref() {
                "1" | "true" => true,
                "0" | "false" => false,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "commands: {:?}; expected 1 (take commands) or 0",
                        other.chars().take(16).collect::<String>()
                    )));
                }
            };
        }
    }
    Ok(on)
}

/// The next desired configuration for this connection (and, for a gateway, the device
/// it is for); never, when it takes none.
async fn next_config(feed: &mut Option<Box<Feeds>>) -> (Option<DeviceName>, Arc<ConfigDocument>) {
    match feed {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// The next command handed to this connection; never, when it takes none.
async fn next_command(attachment: &mut Option<Attachment>) -> Arc<CommandRow> {
    match attachment {
        Some(a) => match a.commands.recv().await {
            Some(row) => row,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl DeviceSocket {
    /// The socket's task: counts and logs the connection around [`DeviceSocket::run`].
    ///
    /// Not an `async fn`: one would move `socket` from its argument into a local, and
    /// the future would hold both (a WebSocket is ~370 bytes); the block borrows it in place.
    #[allow(clippy::manual_async_fn)] // an `async fn` would hold `socket` twice
    fn serve(mut self: Box<Self>, mut socket: WebSocket) -> impl Future<Output = ()> + Send {
        async move {
            let gauge = self.hub.metrics.connection_gauge("ingest");
            gauge.inc();
            let device = self.device.name.clone();
            tracing::info!(%device, peer = %self.peer(), "device connected");
            let span = tracing::debug_span!("ingest", %device, peer = %self.peer());
            match self.run(&mut socket).instrument(span).await {
                Some((code, reason)) => {
                    tracing::info!(%device, peer = %self.peer(), close_code = code, reason, "device disconnected")
                }
                None => {
                    tracing::info!(%device, peer = %self.peer(), reason = "connection lost", "device disconnected")
                }
            }
            gauge.dec();
        }
    }

    fn peer(&self) -> String {
        self.conn
            .as_ref()
            .map(|c| c.peer.to_string())
            .unwrap_or_default()
    }

    /// Serves the socket until it closes: the close code and reason sent, or `None` when
    /// the connection was lost without a close.
    async fn run(&mut self, socket: &mut WebSocket) -> Option<(u16, &'static str)> {
        let hub = self.hub.clone();
        let (slot, mut heartbeat) = hub.ingest_beat.join();
        let mut tick = std::pin::pin!(slot.notified());
        let max_inflight = self.hub.settings.ingest.max_inflight_messages;
        let closing = self.session.closing().clone();
        let (code, reason) = loop {
            tokio::select! {
                biased;
                _ = closing.cancelled() => break ws::closing_reason(&self.hub.shutdown),
                Some(reply) = self.replies.next(), if !self.replies.is_empty() => {
                    if Box::pin(self.write_replies(socket, reply)).await.is_err() {
                        return None;
                    }
                    if self.rate_limited_run >= self.hub.settings.limits.abuse_close_after {
                        break (ws::POLICY, "rate limit exceeded persistently");
                    }
                }
                row = next_command(&mut self.attachment) => {
                    if Box::pin(self.send_command(socket, &row)).await.is_err() {
                        return None;
                    }
                }
                (device, doc) = next_config(&mut self.config) => {
                    let doc = doc.as_ref().clone();
                    let frame = HubFrame::Config { device, doc }.to_json();
                    if Box::pin(socket.send(Message::Text(frame.into()))).await.is_err() {
                        return None;
                    }
                }
                msg = socket.recv(), if self.replies.len() < max_inflight => {
                    heartbeat.heard();
                    match msg {
                        Some(Ok(Message::Text(text))) => Box::pin(self.handle_text(text.as_str())).await,
                        Some(Ok(Message::Binary(_))) => break (ws::UNSUPPORTED, "binary frames are not accepted; send JSON text"),
                        Some(Ok(Message::Close(_))) | None => break (ws::NORMAL, ""),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => match ws::close_code_for(e) {
                            Some(c) => break c,
                            None => return None,
                        },
                    }
                }
                () = tick.as_mut() => {
                    tick.set(slot.notified());
                    match heartbeat.beat() {
                        Beat::Idle => break (ws::NORMAL, "idle timeout"),
                        Beat::Ping => {
                            // Quiet for a while: free the reply queue until the next message.
                            self.replies.release_if_empty();
                            if ws::ping(socket).await.is_err() {
                                return None;
                            }
                        }
                    }
                }
            }
        };
        // Commands handed over from here on wait for the next connection.
        self.attachment = None;
        self.config = None;
        Box::pin(self.close(socket, code, reason)).await;
        Some((code, reason))
    }

    /// Answers what was already read (each is committed or refused by now or soon),
    /// within the shutdown grace, then sends the close frame.
    async fn close(&mut self, socket: &mut WebSocket, code: u16, reason: &'static str) {
        let grace = self.hub.settings.server.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while let Some(reply) = self.replies.next().await {
                if self.write_replies(socket, reply).await.is_err() {
                    break;
                }
            }
        })
        .await;
        ws::close(socket, code, reason).await;
    }

    /// Writes `first` and every other reply already resolved, then flushes once.
    async fn write_replies(
        &mut self,
        socket: &mut WebSocket,
        first: Option<HubFrame>,
    ) -> Result<(), axum::Error> {
        let mut next = Some(first);
        while let Some(reply) = next {
            match &reply {
                Some(HubFrame::Reply(Reply::Nack {
                    error: ErrorCode::RateLimited,
                    ..
                })) => self.rate_limited_run += 1,
                Some(HubFrame::Reply(_)) => self.rate_limited_run = 0,
                _ => {}
            }
            if let Some(frame) = reply {
                socket.feed(Message::Text(frame.to_json().into())).await?;
            }
            next = self.replies.next_ready();
        }
        socket.flush().await
    }

    /// Writes a command the dispatcher handed this connection (already stored `sent`).
    async fn send_command(
        &mut self,
        socket: &mut WebSocket,
        row: &CommandRow,
    ) -> Result<(), axum::Error> {
        let Some(command) = row.to_device_command(!self.gateway_for.is_empty()) else {
            tracing::warn!(id = %row.id.chars().take(64).collect::<String>(), "a stored command makes no command frame; skipped");
            return Ok(());
        };
        socket
            .send(Message::Text(HubFrame::Command(command).to_json().into()))
            .await
    }

    /// The device and, for a gateway, those it acts for.
    /// Attaches the socket to its devices' commands and configurations (detached when
    /// it is dropped, upgraded or not).
    async fn attach(&mut self) {
        let devices = self.answers_for().to_vec();
        let config = &self.hub.devconfig;
        let feeds = if self.gateway_for.is_empty() {
            Feeds::Device(Box::pin(config.attach(&self.device.name, Known::Reported)).await)
        } else {
            Box::pin(config.attach_gateway(&devices)).await
        };
        self.config = Some(Box::new(feeds));
        self.attachment = Some(Box::pin(self.hub.commands.attach(devices)).await);
    }

    fn answers_for(&mut self) -> Arc<[DeviceName]> {
        let (device, gateway_for) = (&self.device, &self.gateway_for);
        self.answers_for
            .get_or_insert_with(|| {
                std::iter::once(device.name.clone())
                    .chain(gateway_for.keys().cloned())
                    .collect()
            })
            .clone()
    }

    /// One frame from the device: parsed once, then a message goes to the ingest
    /// pipeline and a command frame to the commands module; each answer is queued.
    async fn handle_text(&mut self, text: &str) {
        let from = Sender {
            device: &self.device,
            gateway_for: &self.gateway_for,
            transport: crate::domain::Transport::Ws,
        };
        let command = match self.hub.ingest.parse_frame(text) {
            Ok(DeviceFrame::Message(m)) => {
                let reply = self.hub.ingest.accept_parsed(from, m).await;
                return self.replies.push(reply);
            }
            Err(r) => {
                let reply = self.hub.ingest.refused(from, r);
                return self
                    .replies
                    .push(futures_util::future::ready(reply).boxed());
            }
            Ok(DeviceFrame::ConfigReported { device, doc }) => {
                // Stored one at a time, in order, like command answers; a gateway
                // reports for the devices it acts for.
                let device = device.unwrap_or_else(|| self.device.name.clone());
                let answer = if self.answers_for().contains(&device) {
                    self.hub.devconfig.on_reported(device, doc).await
                } else {
                    HubFrame::Reply(Reply::Nack {
                        nack: None,
                        error: ErrorCode::ForbiddenDevice,
                        detail: format!(
                            "config_reported: this token may not act for device {device}"
                        ),
                    })
                };
                let answer = futures_util::future::ready(Some(answer)).boxed();
                return self.replies.push_owed(Owed::Frame(answer));
            }
            Ok(DeviceFrame::CommandAck(id)) => CommandFrame::Ack(id),
            Ok(DeviceFrame::CommandResult { id, answer }) => CommandFrame::Result { id, answer },
        };
        // Taken one at a time, in order (an answer after its acknowledgement), while
        // earlier messages' replies still wait for their commits.
        let answers_for = self.answers_for();
        let answer = self.hub.commands.on_frame(command, answers_for).await;
        let answer = futures_util::future::ready(answer).boxed();
        self.replies.push_owed(Owed::Frame(answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ws::returned_size;

    #[test]
    fn an_idle_device_socket_task_stays_small() {
        let serve = returned_size(|(s, ws): (Box<DeviceSocket>, WebSocket)| s.serve(ws));
        let run = returned_size(|(mut s, mut ws): (DeviceSocket, WebSocket)| async move {
            s.run(&mut ws).await;
        });
        eprintln!(
            "device socket: serve future {serve} B, run future {run} B, state {} B (boxed), WebSocket {} B",
            size_of::<DeviceSocket>(),
            size_of::<WebSocket>()
        );
        assert!(serve <= 1024, "the device socket's future is {serve} bytes");
    }
}

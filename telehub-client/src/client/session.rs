//! One open socket. Sends queued readings as messages with increasing `id`s while
//! fewer than `max_inflight` are unanswered, reads the replies (which come in order)
//! and settles the oldest message with each ([`super::flow`] decides what a reply
//! means). Ends when the socket fails (the driver puts what is in flight back and
//! reconnects), or when a drain finishes or expires.
//!
//! With commands on, a `{"command": …}` frame is handed to [`super::commands`] and
//! acknowledged at once; answers go out when handlers finish, again after
//! `resend_after`, and on every new session, until `result_stored`.

use super::address::{Ws, describe};
use super::commands::CommandSide;
use super::flow::{Flow, Next, Verdict};
use super::{ClientConfig, Mode, Shared};
use crate::protocol::frames::{DeviceFrame, HubFrame};
use crate::protocol::ingest::Reply;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How a session ended.
#[derive(Debug, PartialEq)]
pub(super) enum End {
    /// Draining, and everything was acked or refused: the socket was closed cleanly.
    Drained,
    /// Stopped, or the drain deadline passed.
    Stopped,
    /// The connection failed (the reason is for logs): reconnect and resend.
    Lost(String),
}

/// A close handshake waits this long at most.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

pub(super) struct Session<'a> {
    ws: Ws,
    shared: &'a Shared,
    cfg: &'a ClientConfig,
    next_id: &'a mut u64,
    flow: Flow<'a>,
    /// Since when the oldest unanswered message has waited (restarted by every reply).
    waiting_since: Option<Instant>,
    last_heard: Instant,
    /// Whether any reply arrived (the connection worked).
    pub replied: bool,
    /// Command frames to send (acknowledgements), oldest first.
    outgoing: Vec<DeviceFrame>,
}

impl<'a> Session<'a> {
    pub fn new(ws: Ws, shared: &'a Shared, cfg: &'a ClientConfig, next_id: &'a mut u64) -> Self {
        if let Some(c) = &shared.commands {
            c.book().connected();
        }
        Self {
            ws,
            shared,
            cfg,
            next_id,
            flow: Flow::new(shared, cfg),
            waiting_since: None,
            last_heard: Instant::now(),
            replied: false,
            outgoing: Vec::new(),
        }
    }

    pub async fn run(&mut self, mode: &mut watch::Receiver<Mode>) -> End {
        loop {
            let now = Instant::now();
            let deadline = match *mode.borrow_and_update() {
                Mode::Stop => return End::Stopped,
                Mode::Drain { deadline } => Some(deadline),
                Mode::Run => None,
            };
            if let Some(d) = deadline {
                if now >= d {
                    return End::Stopped;
                }
                if self.shared.outbox().is_empty() {
                    self.close().await;
                    return End::Drained;
                }
            }
            let commands_due = match self.send_command_frames(deadline).await {
                Ok(t) => t,
                Err(reason) => return End::Lost(reason),
            };
            let next_send = match self.send_ready(deadline).await {
                Ok(t) => t,
                Err(reason) => return End::Lost(reason),
            };
            let wake_at = earliest(next_send, self.flow.hold_until.filter(|h| *h > now));
            let wake_at = earliest(wake_at, commands_due);
            let reply_by = self.waiting_since.map(|t| t + self.cfg.reply_timeout);
            let idle_by = self.last_heard + self.cfg.idle_timeout;
            let can_send_more = self.flow.can_send_more(now);
            tokio::select! {
                frame = self.ws.next() => {
                    if let Err(reason) = self.on_frame(frame) {
                        return End::Lost(reason);
                    }
                }
                changed = mode.changed() => if changed.is_err() {
                    return End::Stopped;
                },
                _ = self.shared.wake.notified(), if can_send_more => {}
                _ = command_done(self.shared.commands.as_deref()) => {}
                _ = self.shared.reconnect.notified() => {
                    self.close().await;
                    return End::Lost("reconnecting, as asked".into());
                }
                _ = sleep_until_some(wake_at) => {}
                _ = sleep_until_some(deadline) => {}
                _ = sleep_until_some(reply_by) => {
                    return End::Lost(format!("no reply within {}", human(self.cfg.reply_timeout)));
                }
                _ = sleep_until(idle_by) => {
                    return End::Lost(format!("nothing heard from the hub for {}", human(self.cfg.idle_timeout)));
                }
            }
        }
    }

    /// Sends every message that is due and fits in the window; returns when the next
    /// one will be due (linger), if that is known.
    async fn send_ready(&mut self, deadline: Option<Instant>) -> Result<Option<Instant>, String> {
        let mut sent = false;
        let next = loop {
            let now = Instant::now();
            let (frame, first) = match self
                .flow
                .next_message(self.next_id, deadline.is_some(), now)
            {
                Next::Send { body, first, .. } => (body, first),
                Next::Wait(t) => break t,
            };
            if first {
                self.waiting_since = Some(now);
            }
            let limit = self.write_limit(deadline);
            match tokio::time::timeout(limit, self.ws.feed(Message::Text(frame.into()))).await {
                Ok(Ok(())) => sent = true,
                Ok(Err(e)) => return Err(describe(e)),
                Err(_) => return Err(format!("a write was stuck for {}", human(limit))),
            }
        };
        if sent {
            let limit = self.write_limit(deadline);
            match tokio::time::timeout(limit, self.ws.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(describe(e)),
                Err(_) => return Err(format!("a write was stuck for {}", human(limit))),
            }
        }
        Ok(next)
    }

    /// Sends the acknowledgements owed and the answers due; returns when the next
    /// answer is due again.
    async fn send_command_frames(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Instant>, String> {
        let Some(side) = self.shared.commands.as_deref() else {
            return Ok(None);
        };
        let mut frames = std::mem::take(&mut self.outgoing);
        let next_due = {
            let mut book = side.book();
            frames.extend(book.due(Instant::now(), &side.cfg));
            book.next_due(&side.cfg)
        };
        if frames.is_empty() {
            return Ok(next_due);
        }
        let limit = self.write_limit(deadline);
        let write = async {
            for f in frames {
                self.ws.feed(Message::Text(f.to_json().into())).await?;
            }
            self.ws.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => Ok(next_due),
            Ok(Err(e)) => Err(describe(e)),
            Err(_) => Err(format!("a write was stuck for {}", human(limit))),
        }
    }

    /// A write may take `reply_timeout`, but never past the drain deadline.
    fn write_limit(&self, deadline: Option<Instant>) -> Duration {
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        self.cfg
            .reply_timeout
            .min(left)
            .max(Duration::from_millis(1))
    }

    fn on_frame(&mut self, frame: Option<Result<Message, WsError>>) -> Result<(), String> {
        self.last_heard = Instant::now();
        match frame {
            None => Err("the hub closed the connection".into()),
            Some(Err(e)) => Err(describe(e)),
            Some(Ok(Message::Text(t))) => self.on_reply(t.as_str()),
            Some(Ok(Message::Close(Some(f)))) => Err(format!(
                "the hub closed the connection ({} {})",
                u16::from(f.code),
                f.reason
            )),
            Some(Ok(Message::Close(None))) => Err("the hub closed the connection".into()),
            Some(Ok(_)) => Ok(()),
        }
    }

    fn on_reply(&mut self, text: &str) -> Result<(), String> {
        let reply = match HubFrame::parse(text).map_err(|e| e.to_string())? {
            HubFrame::Reply(r) => r,
            other => {
                self.on_command_frame(other);
                return Ok(());
            }
        };
        // Messages always carry an id: a `nack` without one is about a command frame.
        if let Reply::Nack {
            nack: None,
            error,
            detail,
        } = &reply
        {
            tracing::debug!(code = error.as_str(), %detail, "the hub refused a command frame");
            return Ok(());
        }
        let (id, verdict) = match reply {
            Reply::Ack { ack, .. } => (ack, Verdict::Acked),
            Reply::Nack {
                nack,
                error,
                detail,
            } => (
                nack,
                Verdict::Refused {
                    error,
                    detail,
                    retry_after: None,
                },
            ),
        };
        let left = self.flow.settle(id, verdict).map_err(|e| e.to_string())?;
        self.waiting_since = (left > 0).then(Instant::now);
        self.replied = true;
        Ok(())
    }

    /// A frame about commands or configuration from the hub.
    fn on_command_frame(&mut self, frame: HubFrame) {
        let Some(side) = &self.shared.commands else {
            tracing::debug!("a command frame for a client that takes no commands; ignored");
            return;
        };
        match frame {
            HubFrame::Command(c) => {
                let id = c.id.clone();
                if side.take(c) {
                    self.outgoing.push(DeviceFrame::CommandAck(id));
                }
            }
            HubFrame::ResultStored(id) => side.book().stored(&id),
            HubFrame::Config { device, doc } => match side.apply_config(&doc) {
                // A gateway's report names the device the configuration was for.
                Some(report) => self.outgoing.push(DeviceFrame::ConfigReported {
                    device,
                    doc: report,
                }),
                None => tracing::debug!("a configuration for a client without a handler; ignored"),
            },
            HubFrame::ConfigStored(v) => {
                tracing::debug!(version = v, "configuration report stored")
            }
            HubFrame::Reply(_) => {}
        }
    }

    /// Sends a close frame and waits briefly for the hub's.
    async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            if self.ws.close(None).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}

pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Resolves when a command handler finished; never without commands.
async fn command_done(side: Option<&CommandSide>) {
    match side {
        Some(s) => s.done.notified().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `t`, or forever when there is no `t`.
pub(super) async fn sleep_until_some(t: Option<Instant>) {
    match t {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

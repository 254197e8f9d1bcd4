//! One open socket. Sends queued readings as messages with increasing `id`s while
//! fewer than `max_inflight` are unanswered, reads the replies (which come in order)
//! and settles the oldest message with each ([`super::flow`] decides what a reply
//! means). Ends when the socket fails (the driver puts what is in flight back and
//! reconnects), or when a drain finishes or expires.

use super::address::{Ws, describe};
use super::flow::{Flow, Next, Verdict};
use super::{ClientConfig, Mode, Shared};
use crate::protocol::ingest::Reply;
use crate::protocol::ingest::encode::parse_reply;
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
}

impl<'a> Session<'a> {
    pub fn new(ws: Ws, shared: &'a Shared, cfg: &'a ClientConfig, next_id: &'a mut u64) -> Self {
        Self {
            ws,
            shared,
            cfg,
            next_id,
            flow: Flow::new(shared, cfg),
            waiting_since: None,
            last_heard: Instant::now(),
            replied: false,
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
            let next_send = match self.send_ready(deadline).await {
                Ok(t) => t,
                Err(reason) => return End::Lost(reason),
            };
            let wake_at = earliest(next_send, self.flow.hold_until.filter(|h| *h > now));
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
        let (id, verdict) = match parse_reply(text).map_err(|e| e.to_string())? {
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

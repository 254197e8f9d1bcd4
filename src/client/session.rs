//! One open socket. Sends queued readings as messages with increasing `id`s while
//! fewer than `max_inflight` are unanswered, reads the replies (which come in order)
//! and settles the oldest message with each: `ack` → acked; `nack` → see
//! [`super::triage`]: resend later (nothing new is sent for a backoff delay, then one
//! message at a time until an ack), or give up only the readings the hub named and
//! resend the rest. Ends when the socket fails (the driver puts what is in flight back
//! and reconnects), or when a drain finishes or expires.

use super::address::{Ws, describe};
use super::backoff::Backoff;
use super::outbox::Ready;
use super::triage::{Triage, triage};
use super::{ClientConfig, ClientEvent, Mode, Shared};
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
    /// After a "resend later" refusal: no new message before this, and then one
    /// message at a time (`probing`) until one is acked.
    hold_until: Option<Instant>,
    probing: bool,
    retry: Backoff,
    /// Readings per message; lowered when the hub says `too_many_readings`.
    max_batch: usize,
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
            hold_until: None,
            probing: false,
            retry: Backoff::new(cfg.backoff),
            max_batch: cfg.max_batch,
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
            let wake_at = earliest(next_send, self.hold_until.filter(|h| *h > now));
            let reply_by = self.waiting_since.map(|t| t + self.cfg.reply_timeout);
            let idle_by = self.last_heard + self.cfg.idle_timeout;
            let can_send_more = self.hold_until.is_none_or(|h| h <= now)
                && self.shared.outbox().inflight_messages() < self.window();
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
            if self.hold_until.is_some_and(|h| h > now) {
                break None;
            }
            let frame = {
                let mut ob = self.shared.outbox();
                let idle = ob.inflight_messages() == 0;
                if !idle && ob.inflight_messages() >= self.window() {
                    break None;
                }
                match ob.ready(self.max_batch, self.cfg.linger, deadline.is_some(), now) {
                    Ready::Empty => break None,
                    Ready::At(t) => break Some(t),
                    Ready::Now => {}
                }
                let id = *self.next_id;
                *self.next_id += 1;
                let frame = ob.take_frame(id, self.max_batch, self.cfg.max_message_bytes);
                frame.map(|f| (f, idle))
            };
            let Some((frame, idle)) = frame else {
                break None;
            };
            if idle {
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

    /// Messages that may await a reply at once.
    fn window(&self) -> usize {
        if self.probing {
            1
        } else {
            self.cfg.max_inflight
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
        let reply = parse_reply(text).map_err(|e| e.to_string())?;
        let id = match &reply {
            Reply::Ack { ack, .. } => *ack,
            Reply::Nack { nack, .. } => *nack,
        };
        let now = Instant::now();
        let mut ob = self.shared.outbox();
        let msg = ob.settle(id).map_err(|e| e.to_string())?;
        self.waiting_since = (ob.inflight_messages() > 0).then_some(now);
        self.replied = true;
        let n = msg.readings.len();
        let (error, detail) = match reply {
            Reply::Ack { .. } => {
                ob.count_acked(n);
                self.retry.reset();
                self.probing = false;
                return Ok(());
            }
            Reply::Nack { error, detail, .. } => (error, detail),
        };
        match triage(error, &detail, msg.readings) {
            Triage::ResendLater(readings) => {
                ob.requeue(readings, now);
                drop(ob);
                let delay = self.retry.next_delay();
                self.hold_until = Some(now + delay);
                self.probing = true;
                tracing::debug!(code = error.as_str(), %detail, ?delay, "hub asked to resend later");
            }
            Triage::Smaller { resend, max_batch } => {
                ob.requeue(resend, now);
                self.max_batch = self.max_batch.min(max_batch).max(1);
                tracing::debug!(%detail, max_batch = self.max_batch, "hub wants smaller messages");
            }
            Triage::Refuse { refused, resend } => {
                ob.count_nacked(refused.len());
                ob.requeue(resend, now);
                drop(ob);
                tracing::warn!(readings = refused.len(), code = error.as_str(), %detail, "hub refused readings");
                self.shared.emit(ClientEvent::Refused {
                    readings: refused.len(),
                    error,
                    detail,
                });
            }
        }
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

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
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

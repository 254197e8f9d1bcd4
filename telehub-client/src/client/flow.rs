//! What both transports decide the same way: when the next message may go out (the
//! in-flight window, linger, and the pause after a "resend later" answer), how large it
//! is, and what an answer does to the outbox — `ack` → acked; a refusal → see
//! [`super::triage`]: resend later (nothing new is sent for a backoff delay, then one
//! message at a time until an ack), send again in smaller messages, or give up only the
//! readings the hub named and resend the rest.

use super::outbox::{Mismatch, Ready};
use super::triage::{Triage, triage};
use super::{ClientConfig, ClientEvent, Shared, Transport};
use crate::backoff::Backoff;
use crate::protocol::ingest::ErrorCode;
use crate::protocol::ingest::encode::FrameBuilder;
use crate::protocol::line::LineBuilder;
use std::time::Duration;
use tokio::time::Instant;

/// The hub's answer about one message.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    Acked,
    Refused {
        error: ErrorCode,
        detail: String,
        /// How long the hub asked us to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
}

/// What [`Flow::next_message`] found.
pub(super) enum Next {
    /// Send this message now; `first`: nothing else was awaiting an answer.
    Send { id: u64, body: String, first: bool },
    /// Nothing to send before this instant (`None`: before new readings or an answer).
    Wait(Option<Instant>),
}

pub(super) struct Flow<'a> {
    shared: &'a Shared,
    cfg: &'a ClientConfig,
    /// After a "resend later" answer: no new message before this, and then one
    /// message at a time (`probing`) until one is acked.
    pub hold_until: Option<Instant>,
    probing: bool,
    retry: Backoff,
    /// Readings per message; lowered when the hub says the messages are too large.
    max_batch: usize,
}

impl<'a> Flow<'a> {
    pub fn new(shared: &'a Shared, cfg: &'a ClientConfig) -> Self {
        Self {
            shared,
            cfg,
            hold_until: None,
            probing: false,
            retry: Backoff::new(cfg.backoff),
            max_batch: cfg.max_batch,
        }
    }

    /// Messages that may await an answer at once.
    fn window(&self) -> usize {
        if self.probing {
            1
        } else {
            self.cfg.max_inflight
        }
    }

    /// Whether new readings could go out now (not paused, the window not full).
    pub fn can_send_more(&self, now: Instant) -> bool {
        self.hold_until.is_none_or(|h| h <= now)
            && self.shared.outbox().inflight_messages() < self.window()
    }

    /// Takes the next message that is due and fits in the window off the queue, with
    /// id `*next_id` (then incremented). `flush`: send what there is (draining).
    pub fn next_message(&mut self, next_id: &mut u64, flush: bool, now: Instant) -> Next {
        if self.hold_until.is_some_and(|h| h > now) {
            return Next::Wait(None);
        }
        let mut ob = self.shared.outbox();
        let first = ob.inflight_messages() == 0;
        if !first && ob.inflight_messages() >= self.window() {
            return Next::Wait(None);
        }
        match ob.ready(self.max_batch, self.cfg.linger, flush, now) {
            Ready::Empty => return Next::Wait(None),
            Ready::At(t) => return Next::Wait(Some(t)),
            Ready::Now => {}
        }
        let id = *next_id;
        let (batch, bytes) = (self.max_batch, self.cfg.max_message_bytes);
        let body = match self.cfg.transport {
            Transport::WebSocket | Transport::Http => {
                ob.take_message(id, FrameBuilder::new(Some(id), batch, bytes))
            }
            Transport::Line => ob.take_message(id, LineBuilder::new(batch, bytes)),
        };
        match body {
            Some(body) => {
                *next_id += 1;
                Next::Send { id, body, first }
            }
            None => Next::Wait(None),
        }
    }

    /// Settles the oldest message in flight (`id`: the answer's, when it names one) with
    /// `verdict`; returns how many messages still await an answer.
    pub fn settle(&mut self, id: Option<u64>, verdict: Verdict) -> Result<usize, Mismatch> {
        let now = Instant::now();
        let mut ob = self.shared.outbox();
        let msg = ob.settle(id)?;
        let left = ob.inflight_messages();
        let (error, detail, retry_after) = match verdict {
            Verdict::Acked => {
                ob.count_acked(msg.readings.len());
                self.retry.reset();
                self.probing = false;
                return Ok(left);
            }
            Verdict::Refused {
                error,
                detail,
                retry_after,
            } => (error, detail, retry_after),
        };
        match triage(error, &detail, msg.readings) {
            Triage::ResendLater(readings) => {
                ob.requeue(readings, now);
                drop(ob);
                let delay = self.pause(now, retry_after);
                tracing::debug!(code = error.as_str(), detail = %crate::domain::untrusted(&detail), ?delay, "hub asked to resend later");
            }
            Triage::Smaller { resend, max_batch } => {
                ob.requeue(resend, now);
                self.max_batch = self.max_batch.min(max_batch).max(1);
                tracing::debug!(detail = %crate::domain::untrusted(&detail), max_batch = self.max_batch, "hub wants smaller messages");
            }
            Triage::Refuse { refused, resend } => {
                ob.count_nacked(refused.len());
                ob.requeue(resend, now);
                drop(ob);
                tracing::warn!(readings = refused.len(), code = error.as_str(), detail = %crate::domain::untrusted(&detail), "hub refused readings");
                self.shared.emit(ClientEvent::Refused {
                    readings: refused.len(),
                    error,
                    detail,
                });
            }
        }
        Ok(left)
    }

    /// Sends nothing new for the next backoff delay (at least `at_least`), then one
    /// message at a time until an ack; returns the delay.
    pub fn pause(&mut self, now: Instant, at_least: Option<Duration>) -> Duration {
        let delay = self.retry.next_delay().max(at_least.unwrap_or_default());
        self.hold_until = Some(now + delay);
        self.probing = true;
        delay
    }
}

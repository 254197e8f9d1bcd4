//! The HTTP transports' loop: takes due messages off the outbox ([`Flow`]) and posts
//! each as its own request, up to `max_inflight` at once. Answers are settled in the
//! order the messages were sent (a [`FuturesOrdered`]), as a socket's replies are.
//!
//! A request that got no answer about its message (connection refused, timeout, 5xx,
//! 401) is handled like a lost socket: every request still in flight is abandoned and
//! its readings put back (the hub dedupes what it committed anyway), nothing is sent for
//! a backoff delay, and then one request at a time until one is answered. "Connected"
//! means the last request was answered; each return to that after a failure, once any
//! request had been answered, counts as a reconnect.

use super::address::ConnectFailure;
use super::flow::{Flow, Next};
use super::http::HttpLink;
use super::session::{earliest, sleep_until_some};
use super::{ClientConfig, ClientEvent, Mode, Shared};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use std::sync::atomic::Ordering;
use tokio::sync::watch;
use tokio::time::Instant;

/// Runs until stopped, drained, past the drain deadline, or given up.
pub(super) async fn run(
    shared: &Shared,
    cfg: &ClientConfig,
    link: &HttpLink,
    mode: &mut watch::Receiver<Mode>,
) {
    let mut flow = Flow::new(shared, cfg);
    let mut next_id = 1u64;
    let mut inflight = FuturesOrdered::new();
    let mut up = false;
    let mut answered_once = false;
    loop {
        let now = Instant::now();
        let deadline = match *mode.borrow_and_update() {
            Mode::Stop => break,
            Mode::Drain { deadline } => Some(deadline),
            Mode::Run => None,
        };
        if deadline.is_some_and(|d| now >= d || shared.outbox().is_empty()) {
            break;
        }
        let next_send = loop {
            match flow.next_message(&mut next_id, deadline.is_some(), now) {
                Next::Send { id, body, .. } => inflight.push_back(link.post(id, body)),
                Next::Wait(t) => break t,
            }
        };
        let wake_at = earliest(next_send, flow.hold_until.filter(|h| *h > now));
        let can_send_more = flow.can_send_more(now);
        tokio::select! {
            Some((id, answer)) = inflight.next() => match answer {
                Ok(verdict) => {
                    if !up {
                        up = true;
                        if answered_once {
                            shared.reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        answered_once = true;
                        shared.connected.store(true, Ordering::Relaxed);
                        shared.emit(ClientEvent::Connected);
                    }
                    if let Err(e) = flow.settle(Some(id), verdict) {
                        tracing::error!(error = %e, "an answer for a message not in flight");
                    }
                }
                Err(failure) => {
                    inflight = FuturesOrdered::new();
                    shared.outbox().requeue_inflight(Instant::now());
                    if failed(shared, cfg, &mut flow, failure, &mut up) {
                        break;
                    }
                }
            },
            changed = mode.changed() => if changed.is_err() {
                break;
            },
            _ = shared.wake.notified(), if can_send_more => {}
            _ = sleep_until_some(wake_at) => {}
            _ = sleep_until_some(deadline) => {}
        }
    }
    drop(inflight);
    shared.outbox().requeue_inflight(Instant::now());
    shared.connected.store(false, Ordering::Relaxed);
}

/// Reports a failed request and pauses; `true`: give up (retrying cannot help).
fn failed(
    shared: &Shared,
    cfg: &ClientConfig,
    flow: &mut Flow<'_>,
    failure: ConnectFailure,
    up: &mut bool,
) -> bool {
    let delay = flow.pause(Instant::now(), failure.retry_after);
    let reason = failure.reason;
    tracing::debug!(%reason, ?delay, "request failed");
    if std::mem::take(up) {
        shared.connected.store(false, Ordering::Relaxed);
        shared.emit(ClientEvent::Disconnected {
            reason: reason.clone(),
        });
    } else {
        shared.emit(ClientEvent::ConnectFailed {
            reason: reason.clone(),
            retry_in: delay,
        });
    }
    if failure.permanent && cfg.give_up_when_permanent {
        tracing::debug!(%reason, "giving up: retrying cannot help");
        shared.emit(ClientEvent::GaveUp { reason });
        return true;
    }
    false
}

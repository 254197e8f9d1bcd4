//! The notification sender: delivers the durable outbox (one row per event and target,
//! written with the event: a webhook by its URL, an email target by its key) with a
//! bounded pool of deliveries (POSTs, SMTP sessions) in flight.
//!
//! Each pass claims due rows — only a series' oldest undelivered event per webhook, so
//! events arrive in order per series — under a lease (`2 × post_timeout`): a hub that
//! dies mid-POST leaves them to be retried when the lease ends, by itself after a restart
//! or by another hub of the cluster. A 2xx deletes the row; a failure schedules the next
//! attempt with exponential backoff and jitter; a row older than `retry_for` is dropped
//! (logged and counted). At least once: receivers dedupe on the event `id`.
//!
//! Wakes on the engine's notify (a new event), when a POST ends, and every
//! `poll_interval` (retries due, rows of other hubs). Ends at shutdown; POSTs in flight
//! are abandoned and retried after their lease.

use super::email::{EmailError, Mailer};
use super::webhook;
use crate::backoff::{BackoffConfig, Jitter};
use crate::config::{AlertSettings, Webhook};
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::storage::alerts::OutboxItem;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct Sender {
    pub store: Store,
    pub settings: AlertSettings,
    pub metrics: Arc<Metrics>,
    pub key: Vec<u8>,
    pub wake: Arc<Notify>,
    pub shutdown: CancellationToken,
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    #[error(transparent)]
    Post(#[from] webhook::PostError),
    #[error(transparent)]
    Email(#[from] EmailError),
}

/// A delivery's outcome: the row, and why it failed.
type Outcome = (OutboxItem, Result<(), Failed>);

/// Where an outbox row goes.
enum Target {
    Hook(Webhook),
    Mail(Arc<Mailer>),
}

impl Sender {
    pub async fn run(self) {
        let client = match webhook::client(self.settings.post_timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "alerts: cannot build the webhook client; webhooks are off");
                return;
            }
        };
        let mailers = self.mailers();
        let mut inflight: JoinSet<Outcome> = JoinSet::new();
        let mut poll = tokio::time::interval(self.settings.poll_interval);
        loop {
            let free = self.settings.senders.saturating_sub(inflight.len());
            if free > 0 {
                self.claim(&client, &mailers, &mut inflight, free).await;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = poll.tick() => {
                    if let Ok(n) = self.store.outbox_pending().await {
                        self.metrics.alerts.pending.set(n);
                    }
                }
                Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                    if let Ok(outcome) = done {
                        self.settle(outcome).await;
                    }
                }
            }
        }
        inflight.abort_all();
    }

    /// A mailer per `[[alerts.email]]` target, by its outbox key; a target that cannot be
    /// built is logged and left out (its rows are dropped as unconfigured).
    fn mailers(&self) -> HashMap<String, Arc<Mailer>> {
        let mut out = HashMap::new();
        for t in &self.settings.email {
            match Mailer::new(t, self.settings.post_timeout) {
                Ok(m) => {
                    out.insert(t.key(), Arc::new(m));
                }
                Err(e) => {
                    tracing::error!(target = %t.key(), error = %e, "alerts: email target is off")
                }
            }
        }
        out
    }

    async fn claim(
        &self,
        client: &reqwest::Client,
        mailers: &HashMap<String, Arc<Mailer>>,
        inflight: &mut JoinSet<Outcome>,
        free: usize,
    ) {
        let now = Timestamp::now();
        let lease = now.saturating_add(self.settings.post_timeout * 2);
        let items = match self.store.claim_outbox(now, lease, free as i64).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: cannot read the webhook outbox; retrying");
                return;
            }
        };
        for item in items {
            let target = match self.hook(&item.url) {
                Some(hook) => Target::Hook(hook),
                None => match mailers.get(&item.url) {
                    Some(m) => Target::Mail(m.clone()),
                    None => {
                        // Not configured any more: nothing can send it.
                        tracing::warn!(url = %webhook::loggable(&item.url), event = item.event.id, "alerts: notification target no longer configured; notification dropped");
                        self.metrics.alerts.expired.inc();
                        let _ = self.store.outbox_done(item.id).await;
                        continue;
                    }
                },
            };
            match target {
                Target::Hook(hook) => {
                    let body = webhook::body(&item.event, hook.format);
                    let signature = webhook::sign(&self.key, &body);
                    let (client, timeout) = (client.clone(), self.settings.post_timeout);
                    inflight.spawn(async move {
                        let r = webhook::post(&client, &hook, body, &signature, timeout).await;
                        (item, r.map_err(Failed::from))
                    });
                }
                Target::Mail(mailer) => {
                    inflight.spawn(async move {
                        let r = mailer.send(&item.event).await;
                        (item, r.map_err(Failed::from))
                    });
                }
            }
        }
    }

    fn hook(&self, url: &str) -> Option<Webhook> {
        self.settings
            .webhooks
            .iter()
            .find(|w| w.url == url)
            .cloned()
    }

    async fn settle(&self, (item, result): Outcome) {
        let m = &self.metrics.alerts;
        let url = webhook::loggable(&item.url);
        let stored = match result {
            Ok(()) => {
                m.sent.inc();
                self.store.outbox_done(item.id).await
            }
            Err(why) => {
                m.failed.inc();
                let now = Timestamp::now();
                let age = Duration::from_micros(
                    (now.as_micros() - item.created.as_micros()).max(0) as u64,
                );
                if age >= self.settings.retry_for {
                    m.expired.inc();
                    tracing::warn!(url = %url, event = item.event.id, attempts = item.attempts + 1, why = %why, "alerts: notification given up after retry_for");
                    self.store.outbox_done(item.id).await
                } else {
                    let delay = backoff(&self.settings, item.attempts);
                    tracing::info!(url = %url, event = item.event.id, why = %why, retry_in = ?delay, "alerts: notification failed; will retry");
                    self.store
                        .outbox_retry(item.id, now.saturating_add(delay))
                        .await
                }
            }
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "alerts: cannot update the webhook outbox; the row is retried after its lease");
        }
        // The series' next event may now be due.
        self.wake.notify_one();
    }
}

/// `retry_backoff × 2^attempts`, at most `retry_backoff_max`, times a random 50–100 %.
pub fn backoff(s: &AlertSettings, attempts: i64) -> Duration {
    let cfg = BackoffConfig {
        initial: s.retry_backoff,
        max: s.retry_backoff_max,
    };
    let attempts = u32::try_from(attempts.clamp(0, 20)).expect("0..=20");
    cfg.delay(Jitter::Equal, attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_with_jitter() {
        let s = AlertSettings::default();
        for (attempts, full) in [(0, 1), (1, 2), (3, 8), (30, 300)] {
            let d = backoff(&s, attempts);
            let full = Duration::from_secs(full);
            assert!(d >= full / 2 && d <= full, "{attempts}: {d:?}");
        }
    }
}

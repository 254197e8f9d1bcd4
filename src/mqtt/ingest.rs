//! MQTT ingest: a publish on `ingest_topic` is a §2 message from the device its last
//! topic level names. The worker looks the device up (cached), then takes the same
//! path as a WebSocket message ([`accept_message`]): parse, validate, storage writer.
//!
//! At QoS 1/2 a message is acknowledged to the broker once its readings are committed,
//! or once it is refused for good (bad payload, unknown or revoked device: counted in
//! `telehub_mqtt_refused_total{reason}` and logged, never stored). While storage is
//! unavailable, messages are kept and retried after `writer.retry_backoff`; the broker
//! holds back further messages meanwhile (its in-flight window is full). A redelivered
//! message stores nothing twice: readings are identified by (device, sensor, ts).

use super::MqttSettings;
use super::devices::{DeviceCache, Lookup};
use crate::auth::DeviceRef;
use crate::domain::DeviceName;
use crate::protocol::ingest::{ErrorCode, Reply};
use crate::server::HubState;
use crate::server::ingest::accept_message;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use rumqttc::{AsyncClient, Publish};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One message's outcome.
enum Outcome {
    Stored(usize),
    /// Storage is unavailable: keep it and try again (the device, when already looked up).
    Retry(Option<DeviceRef>),
    Refused {
        reason: &'static str,
        detail: String,
    },
}

type Done = (Publish, Outcome);

/// Owns the device cache and the messages being stored.
pub struct Worker {
    hub: Arc<HubState>,
    client: AsyncClient,
    devices: DeviceCache,
    revocation_check: Duration,
    max_inflight: usize,
    pending: FuturesOrdered<BoxFuture<'static, Done>>,
    retry: VecDeque<(Publish, Option<DeviceRef>)>,
    log: LogLimiter,
}

impl Worker {
    pub fn new(hub: Arc<HubState>, client: AsyncClient, s: &MqttSettings) -> Self {
        Self {
            hub,
            client,
            devices: DeviceCache::new(s.device_cache_size, s.unknown_device_ttl),
            revocation_check: s.revocation_check,
            max_inflight: s.ingest_inflight,
            pending: FuturesOrdered::new(),
            retry: VecDeque::new(),
            log: LogLimiter::default(),
        }
    }

    /// Runs until the hub shuts down (or the connection task is gone), then finishes
    /// storing and acknowledging what it took, within the shutdown grace.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Publish>) {
        let shutdown = self.hub.shutdown.clone();
        let mut revocations = tokio::time::interval(self.revocation_check);
        let mut retry_at: Option<Instant> = None;
        loop {
            let room = self.pending.len() < self.max_inflight;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some((p, outcome)) = self.pending.next(), if !self.pending.is_empty() => match outcome {
                    Outcome::Retry(dev) => {
                        self.retry.push_back((p, dev));
                        retry_at.get_or_insert(Instant::now() + self.hub.settings.writer.retry_backoff);
                    }
                    done => self.finish(&p, done).await,
                },
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() && room => {
                    retry_at = None;
                    while let Some((p, dev)) = self.retry.pop_front() {
                        match dev {
                            Some(d) => self.submit(p, d).await,
                            None => self.accept(p).await,
                        }
                    }
                }
                msg = rx.recv(), if room && self.retry.is_empty() => match msg {
                    Some(p) => self.accept(p).await,
                    None => break,
                },
                _ = revocations.tick() => self.devices.check_revocations(&self.hub.store).await,
            }
        }
        let grace = self.hub.settings.server.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while let Some((p, outcome)) = self.pending.next().await {
                // A message not stored is left unacknowledged: a kept session gets it again.
                if !matches!(outcome, Outcome::Retry(_)) {
                    self.finish(&p, outcome).await;
                }
            }
        })
        .await;
    }

    /// Checks topic, size and device, then queues the readings for the writer.
    async fn accept(&mut self, p: Publish) {
        let name = p.topic.rsplit('/').next().unwrap_or_default();
        let Ok(name) = DeviceName::parse(name) else {
            return self.refuse_now(
                p,
                "bad_topic",
                "the last topic level is not a valid device name".into(),
            );
        };
        let max = self.hub.settings.ingest.max_frame_bytes;
        if p.payload.len() > max {
            let detail = format!(
                "{} bytes; at most {max} (ingest.max_frame_bytes)",
                p.payload.len()
            );
            return self.refuse_now(p, "too_large", detail);
        }
        if std::str::from_utf8(&p.payload).is_err() {
            return self.refuse_now(
                p,
                ErrorCode::InvalidJson.as_str(),
                "the payload is not UTF-8 text".into(),
            );
        }
        let device = match self.devices.lookup(&self.hub.store, &name).await {
            Ok(Lookup::Active(d)) => d,
            Ok(Lookup::Revoked) => {
                return self.refuse_now(p, "revoked_device", format!("device {name} is revoked"));
            }
            Ok(Lookup::Unknown) => {
                let detail = format!("no device {name}; add it with `telehub device add {name}`");
                return self.refuse_now(p, "unknown_device", detail);
            }
            Err(e) => {
                tracing::warn!(error = %e, "mqtt ingest: cannot look up device {name}; will retry");
                let outcome = Outcome::Retry(None);
                self.pending
                    .push_back(futures_util::future::ready((p, outcome)).boxed());
                return;
            }
        };
        self.submit(p, device).await;
    }

    /// Hands the message to the shared ingest path; waits while the writer queue is full.
    async fn submit(&mut self, p: Publish, device: DeviceRef) {
        let text = std::str::from_utf8(&p.payload).expect("checked in accept");
        let reply = accept_message(&self.hub, &device, &HashMap::new(), text).await;
        self.pending.push_back(
            async move {
                let outcome = match reply.await {
                    Reply::Ack { stored, .. } => Outcome::Stored(stored),
                    Reply::Nack {
                        error: ErrorCode::Unavailable,
                        ..
                    } => Outcome::Retry(Some(device)),
                    Reply::Nack { error, detail, .. } => Outcome::Refused {
                        reason: error.as_str(),
                        detail,
                    },
                };
                (p, outcome)
            }
            .boxed(),
        );
    }

    fn refuse_now(&mut self, p: Publish, reason: &'static str, detail: String) {
        let outcome = Outcome::Refused { reason, detail };
        self.pending
            .push_back(futures_util::future::ready((p, outcome)).boxed());
    }

    /// Counts, logs and acknowledges a message stored or refused for good.
    async fn finish(&mut self, p: &Publish, outcome: Outcome) {
        let m = &self.hub.metrics.mqtt;
        match outcome {
            Outcome::Stored(n) => {
                m.ingested.inc_by(n as u64);
            }
            Outcome::Retry(_) => return,
            Outcome::Refused { reason, detail } => {
                m.refuse(reason);
                if self.log.allow() {
                    tracing::warn!(topic = %p.topic, reason, %detail, suppressed = self.log.take_suppressed(), "mqtt ingest: message refused, nothing stored");
                }
            }
        }
        // Waits if the request channel is full; the event loop never waits on us.
        if self.client.ack(p).await.is_err() {
            tracing::debug!("mqtt ingest: connection task gone; acknowledgement not sent");
        }
    }
}

/// At most one warning a second; the rest are counted and reported with the next one.
#[derive(Default)]
struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return false;
        }
        self.last = Some(now);
        true
    }
    fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

//! MQTT ingest: a publish on `ingest_topic` is a protocol.md §2 message from the device its last
//! topic level names. The worker looks the device up (cached), then applies the same
//! checks as a WebSocket message ([`crate::ingest::Pipeline::check`]: parse, validate,
//! authorise, rate-limit) and
//! hands the readings to the same storage writer.
//!
//! Messages that are already waiting when the worker looks are checked one by one and
//! handed to the writer together (one write request, up to `writer.max_batch_rows`
//! rows): each message is still all-or-nothing, and a request costs the writer the same
//! whether it holds one message or a thousand.
//!
//! At QoS 1/2 a message is acknowledged to the broker once its readings are committed,
//! or once it is refused for good (bad payload, unknown or revoked device: counted in
//! `telehub_mqtt_refused_total{reason}` and logged, never stored), in arrival order.
//! While storage is unavailable, messages are kept and retried after
//! `writer.retry_backoff`, and no new ones are taken meanwhile. A redelivered message
//! stores nothing twice: readings are identified by (device, sensor, ts).

use super::Context;
use super::devices::{DeviceCache, Lookup};
use super::{LogLimiter, MqttSettings};
use crate::auth::DeviceRef;
use crate::domain::DeviceName;
use crate::ingest::{Row, Sender};
use crate::protocol::ingest::ErrorCode;
use crate::storage::writer::WriteFailed;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use rumqttc::{AsyncClient, Publish};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One message's outcome.
enum Outcome {
    Stored(usize),
    /// Storage is unavailable: keep it and try again (the device, when already looked up).
    Retry(Option<DeviceRef>),
    Refused {
        code: ErrorCode,
        detail: String,
    },
}

/// Outcomes of messages handed over together, in arrival order.
type Done = Vec<(Received, Outcome)>;

/// An ingest publish and the broker connection (counted from 1) it arrived on: an
/// acknowledgement only makes sense on that connection (after a reconnect the broker
/// may reuse the packet id for another message).
pub struct Received {
    pub connection: u64,
    pub publish: Publish,
}

/// Checked messages not yet handed to the writer.
#[derive(Default)]
struct Group {
    messages: Vec<(Received, DeviceRef, usize)>,
    rows: Vec<Row>,
}

/// Owns the device cache and the messages being stored.
pub struct Worker {
    hub: Context,
    client: AsyncClient,
    devices: DeviceCache,
    revocation_check: Duration,
    max_inflight: usize,
    /// Messages taken and not yet acknowledged (in `group` and `outcomes`).
    inflight: usize,
    group: Group,
    outcomes: FuturesOrdered<BoxFuture<'static, Done>>,
    retry: VecDeque<(Received, Option<DeviceRef>)>,
    /// The current broker connection.
    connection: Arc<AtomicU64>,
    log: LogLimiter,
}

impl Worker {
    pub fn new(
        hub: Context,
        client: AsyncClient,
        s: &MqttSettings,
        connection: Arc<AtomicU64>,
    ) -> Self {
        Self {
            hub,
            client,
            devices: DeviceCache::new(s.device_cache_size, s.unknown_device_ttl),
            revocation_check: s.revocation_check,
            max_inflight: s.ingest_inflight,
            inflight: 0,
            group: Group::default(),
            outcomes: FuturesOrdered::new(),
            retry: VecDeque::new(),
            connection,
            log: LogLimiter::default(),
        }
    }

    /// Runs until the hub shuts down (or the connection task is gone), then finishes
    /// storing and acknowledging what it took, within the shutdown grace.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Received>) {
        let shutdown = self.hub.shutdown.clone();
        let mut revocations = tokio::time::interval(self.revocation_check);
        let mut retry_at: Option<Instant> = None;
        loop {
            let room = self.inflight < self.max_inflight;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(done) = self.outcomes.next(), if !self.outcomes.is_empty() => {
                    for (p, outcome) in done {
                        self.inflight -= 1;
                        match outcome {
                            Outcome::Retry(dev) => {
                                self.retry.push_back((p, dev));
                                retry_at.get_or_insert(Instant::now() + self.hub.retry_backoff);
                            }
                            done => self.finish(&p, done).await,
                        }
                    }
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() && room => {
                    retry_at = None;
                    while let Some((p, dev)) = self.retry.pop_front() {
                        self.accept(p, dev).await;
                    }
                    self.flush().await;
                }
                msg = rx.recv(), if room && self.retry.is_empty() => {
                    let Some(p) = msg else { break };
                    self.accept(p, None).await;
                    // Take what else is waiting, then hand it all to the writer at once.
                    while self.inflight < self.max_inflight
                        && self.group.rows.len() < self.hub.max_batch_rows
                        && let Ok(p) = rx.try_recv()
                    {
                        self.accept(p, None).await;
                    }
                    self.flush().await;
                }
                _ = revocations.tick() => self.devices.check_revocations(&self.hub.store).await,
            }
        }
        self.flush().await;
        let grace = self.hub.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while let Some(done) = self.outcomes.next().await {
                for (p, outcome) in done {
                    // A message not stored is left unacknowledged: a kept session gets it again.
                    if !matches!(outcome, Outcome::Retry(_)) {
                        self.finish(&p, outcome).await;
                    }
                }
            }
        })
        .await;
    }

    /// Checks topic, size, device and payload; adds the message to the group, or
    /// settles its outcome (after the group, to keep acknowledgements in order).
    async fn accept(&mut self, p: Received, known: Option<DeviceRef>) {
        self.inflight += 1;
        let device = match known {
            Some(d) => d,
            None => match self.device_of(&p.publish).await {
                Ok(d) => d,
                Err(outcome) => return self.settle(p, outcome).await,
            },
        };
        let max = self.hub.max_payload_bytes;
        let text = match std::str::from_utf8(&p.publish.payload) {
            _ if p.publish.payload.len() > max => {
                let detail = format!(
                    "{} bytes; at most {max} (ingest.max_frame_bytes)",
                    p.publish.payload.len()
                );
                return self.settle(p, refused(ErrorCode::TooLarge, detail)).await;
            }
            Ok(t) => t,
            Err(_) => {
                let detail = "the payload is not UTF-8 text".to_owned();
                return self
                    .settle(p, refused(ErrorCode::InvalidJson, detail))
                    .await;
            }
        };
        let from = Sender {
            device: &device,
            gateway_for: &HashMap::new(),
            transport: crate::domain::Transport::Mqtt,
        };
        match self.hub.ingest.check(from, text) {
            Ok((_, mut rows)) => {
                self.group.messages.push((p, device, rows.len()));
                self.group.rows.append(&mut rows);
            }
            Err(r) => {
                self.hub.metrics.nack(r.code);
                self.settle(p, refused(r.code, r.detail)).await;
            }
        }
    }

    /// The device the topic names, if it may send readings.
    async fn device_of(&mut self, p: &Publish) -> Result<DeviceRef, Outcome> {
        let name = p.topic.rsplit('/').next().unwrap_or_default();
        let Ok(name) = DeviceName::parse(name) else {
            let detail = "the last topic level is not a valid device name".into();
            return Err(refused(ErrorCode::BadTopic, detail));
        };
        match self.devices.lookup(&self.hub.store, &name).await {
            Ok(Lookup::Active(d)) => Ok(d),
            Ok(Lookup::Revoked) => Err(refused(
                ErrorCode::RevokedDevice,
                format!("device {name} is revoked"),
            )),
            Ok(Lookup::Unknown) => {
                let detail = format!("no device {name}; add it with `telehub device add {name}`");
                Err(refused(ErrorCode::UnknownDevice, detail))
            }
            Err(e) => {
                tracing::warn!(error = %e, device = %name, "mqtt ingest: cannot look up a device; will retry");
                Err(Outcome::Retry(None))
            }
        }
    }

    /// Queues an outcome known now, after the messages already in the group.
    async fn settle(&mut self, p: Received, outcome: Outcome) {
        self.flush().await;
        self.outcomes
            .push_back(futures_util::future::ready(vec![(p, outcome)]).boxed());
    }

    /// Hands the group to the storage writer (waiting while its queue is full).
    async fn flush(&mut self) {
        if self.group.messages.is_empty() {
            return;
        }
        let Group { messages, rows } = std::mem::take(&mut self.group);
        // One write request per message, so a reading of the wrong type (protocol.md §8) refuses
        // only its own message; the writer still commits them together.
        let mut rows = rows.into_iter();
        let mut pending = Vec::with_capacity(messages.len());
        for (p, dev, k) in messages {
            let done = self
                .hub
                .ingest
                .submit(rows.by_ref().take(k).collect())
                .await;
            pending.push((p, dev, k, done));
        }
        let metrics = self.hub.metrics.clone();
        let ingest = self.hub.ingest.clone();
        self.outcomes.push_back(
            async move {
                let mut out = Vec::with_capacity(pending.len());
                for (p, dev, k, done) in pending {
                    let outcome = match done.await {
                        Ok(Ok(_)) => {
                            ingest.heard(&dev.name, crate::domain::Transport::Mqtt);
                            metrics.acks.inc();
                            metrics.readings_ingested.inc_by(k as u64);
                            Outcome::Stored(k)
                        }
                        Ok(Err(WriteFailed::WrongType(detail))) => {
                            refused(ErrorCode::InvalidReading, detail)
                        }
                        _ => Outcome::Retry(Some(dev)),
                    };
                    out.push((p, outcome));
                }
                out
            }
            .boxed(),
        );
    }

    /// Counts, logs and acknowledges a message stored or refused for good.
    async fn finish(&mut self, received: &Received, outcome: Outcome) {
        let p = &received.publish;
        let m = &self.hub.metrics.mqtt;
        match outcome {
            Outcome::Stored(n) => {
                m.ingested.inc_by(n as u64);
            }
            Outcome::Retry(_) => return,
            Outcome::Refused { code, detail } => {
                let reason = code.as_str();
                m.refuse(reason);
                if self.log.allow() {
                    tracing::warn!(topic = %crate::domain::untrusted(&p.topic), reason, detail = %crate::domain::untrusted(&detail), suppressed = self.log.take_suppressed(), "mqtt ingest: message refused, nothing stored");
                }
            }
        }
        if received.connection != self.connection.load(Ordering::Acquire) {
            // Received on an earlier connection: the broker sends it again (kept session)
            // or has forgotten it (clean session); this packet id may now be another's.
            return;
        }
        // Waits if the request channel is full; the event loop never waits on us.
        if self.client.ack(p).await.is_err() {
            tracing::debug!("mqtt ingest: connection task gone; acknowledgement not sent");
        }
    }
}

fn refused(code: ErrorCode, detail: String) -> Outcome {
    Outcome::Refused { code, detail }
}

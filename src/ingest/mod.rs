//! The ingest pipeline, whatever the transport: parse → authorise → rate-limit →
//! submit to the storage writer → reply once committed.
//!
//! A transport (WebSocket in `server::ingest`, MQTT in `mqtt::ingest`, the coming HTTP
//! ingest) turns its frames into text and hands each message to [`Pipeline::accept`]
//! (or [`Pipeline::check`] then [`Pipeline::submit`] to group several messages into one
//! write). Every refusal is a typed [`Refusal`] with an [`ErrorCode`] from one
//! vocabulary, counted once here.
//!
//! Each committed message is reported to [`Presence`] with the transport it came over
//! (a reading for another device than the sender: `gateway`).
//!
//! May use: `domain`, `protocol`, `auth`, `config`, `storage` (the writer handle),
//! `metrics`, `presence`. Used by the transports.

mod nack_log;
pub mod rate;

use crate::auth::DeviceRef;
use crate::config::{IngestSettings, LimitSettings};
use crate::domain::{DeviceName, Reading, Timestamp, Transport};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::protocol::frames::DeviceFrame;
use crate::protocol::ingest::{
    DeviceMessage, ErrorCode, ParseLimits, Refusal, Reply, parse_message,
};
use crate::storage::writer::{WriteFailed, WriterHandle};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use nack_log::NackLog;
use rate::DeviceRates;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A reading with the device it is stored for.
pub type Row = (DeviceRef, Reading);

/// A reply that resolves once its message is committed or refused.
pub type ReplyFuture = BoxFuture<'static, Reply>;

/// A message that passed every check: the `id` to echo and the rows to store.
pub type Checked = (Option<u64>, Vec<Row>);

/// The devices a sender may store readings for: itself, and those it is a gateway for;
/// and the transport it sends over.
#[derive(Clone, Copy)]
pub struct Sender<'a> {
    pub device: &'a DeviceRef,
    pub gateway_for: &'a HashMap<DeviceName, DeviceRef>,
    pub transport: Transport,
}

impl Sender<'_> {
    /// The devices of `rows`, each once, with the transport its readings came over.
    fn heard(&self, rows: &[Row]) -> Vec<(DeviceName, Transport)> {
        let mut heard: Vec<(DeviceName, Transport)> = Vec::new();
        for (d, _) in rows {
            if !heard.iter().any(|(h, _)| *h == d.name) {
                let t = if d.id == self.device.id {
                    self.transport
                } else {
                    Transport::Gateway
                };
                heard.push((d.name.clone(), t));
            }
        }
        heard
    }
}

/// Shared by every transport of one hub.
pub struct Pipeline {
    writer: WriterHandle,
    metrics: Arc<Metrics>,
    presence: Arc<Presence>,
    rates: DeviceRates,
    nacks: Arc<NackLog>,
    max_readings: usize,
    max_clock_skew: Duration,
}

impl Pipeline {
    pub fn new(
        ingest: &IngestSettings,
        limits: &LimitSettings,
        writer: WriterHandle,
        metrics: Arc<Metrics>,
        presence: Arc<Presence>,
    ) -> Self {
        Self {
            writer,
            metrics,
            presence,
            rates: DeviceRates::new(limits),
            nacks: Arc::default(),
            max_readings: ingest.max_readings_per_message,
            max_clock_skew: ingest.max_clock_skew,
        }
    }

    /// The checks every transport applies before storage: parse `text` (protocol.md §2 object or
    /// SenML pack), authorise each reading's device, and take the readings from the
    /// devices' rate budgets. A refusal is not counted here (see [`Pipeline::refuse`]).
    pub fn check(&self, from: Sender<'_>, text: &str) -> Result<Checked, Refusal> {
        let message = parse_message(text, &self.limits(self.max_readings))?;
        self.check_parsed(from, message)
    }

    /// The limits and clock a transport parses its own message format against (the line
    /// protocol); `max_readings` is that transport's bound for one request.
    pub fn limits(&self, max_readings: usize) -> ParseLimits {
        ParseLimits {
            max_readings,
            max_clock_skew: self.max_clock_skew,
            now: Timestamp::now(),
        }
    }

    /// The checks after parsing: authorise each reading's device and take the readings
    /// from the devices' rate budgets.
    pub fn check_parsed(&self, from: Sender<'_>, m: DeviceMessage) -> Result<Checked, Refusal> {
        let (id, rows) = authorise(from, m)?;
        self.within_rate(id, &rows)?;
        Ok((id, rows))
    }

    /// [`Pipeline::check`], then queue the readings for the storage writer (waiting
    /// while its queue is full); the reply resolves once they are committed or refused.
    pub async fn accept(&self, from: Sender<'_>, text: &str) -> ReplyFuture {
        let checked = self.check(from, text);
        self.store_checked(from, checked).await
    }

    /// Parses one frame of a device socket (a readings message, or a command or
    /// configuration frame: [`DeviceFrame`]) against this pipeline's limits.
    pub fn parse_frame(&self, text: &str) -> Result<DeviceFrame, Refusal> {
        DeviceFrame::parse(text, &self.limits(self.max_readings))
    }

    /// The reply to a frame refused before it reached the pipeline (counted and logged
    /// as every refusal is).
    pub fn refused(&self, from: Sender<'_>, r: Refusal) -> Reply {
        self.nacks.record(from.device.name.as_str(), &r);
        self.refuse(r)
    }

    /// [`Pipeline::accept`] for a message a transport parsed itself.
    pub async fn accept_parsed(&self, from: Sender<'_>, m: DeviceMessage) -> ReplyFuture {
        let checked = self.check_parsed(from, m);
        self.store_checked(from, checked).await
    }

    async fn store_checked(
        &self,
        from: Sender<'_>,
        checked: Result<Checked, Refusal>,
    ) -> ReplyFuture {
        let (id, rows) = match checked {
            Ok(ok) => ok,
            Err(r) => {
                return futures_util::future::ready(self.refused(from, r)).boxed();
            }
        };
        let n = rows.len();
        let heard = from.heard(&rows);
        let done = self.submit(rows).await;
        let metrics = self.metrics.clone();
        let presence = self.presence.clone();
        let (nacks, device) = (self.nacks.clone(), from.device.name.clone());
        async move {
            let failed = match done.await {
                Ok(Ok(stored)) => {
                    presence.heard(heard.iter().map(|(d, t)| (d, *t)));
                    metrics.acks.inc();
                    metrics.readings_ingested.inc_by(n as u64);
                    return Reply::Ack { ack: id, stored };
                }
                Ok(Err(e)) => e,
                Err(_) => WriteFailed::Unavailable("the hub is shutting down; resend".into()),
            };
            let r = refusal_of(id, failed);
            metrics.nack(r.code);
            nacks.record(device.as_str(), &r);
            Reply::refused(r)
        }
        .boxed()
    }

    /// Queues checked rows for the storage writer (waiting while its queue is full);
    /// the receiver resolves after commit.
    pub async fn submit(&self, rows: Vec<Row>) -> oneshot::Receiver<Result<usize, WriteFailed>> {
        self.writer.submit(rows).await
    }

    /// Counts a refusal and turns it into the reply a device socket sends.
    pub fn refuse(&self, r: Refusal) -> Reply {
        self.metrics.nack(r.code);
        Reply::refused(r)
    }

    /// Readings of `device` that came over `transport` (outside [`Pipeline::accept`])
    /// were stored.
    pub fn heard(&self, device: &DeviceName, transport: Transport) {
        self.presence.heard([(device, transport)]);
    }

    /// Requests waiting for the storage writer.
    pub fn queued(&self) -> usize {
        self.writer.queued()
    }

    /// Drops rate state of idle devices (called once a minute by the hub).
    pub fn forget_idle(&self) {
        self.rates.forget_idle();
    }

    fn within_rate(&self, id: Option<u64>, rows: &[Row]) -> Result<(), Refusal> {
        let mut per_device: Vec<(i64, usize)> = Vec::new();
        for (d, _) in rows {
            match per_device.iter_mut().find(|(id, _)| *id == d.id) {
                Some((_, n)) => *n += 1,
                None => per_device.push((d.id, 1)),
            }
        }
        if per_device
            .iter()
            .all(|&(device, n)| self.rates.take(device, n))
        {
            return Ok(());
        }
        let rate = self.rates.per_second;
        Err(Refusal {
            id,
            code: ErrorCode::RateLimited,
            detail: format!(
                "more than {rate} readings/s for this device; slow down and resend later"
            ),
        })
    }
}

/// The refusal a device gets for a write that was not committed.
pub fn refusal_of(id: Option<u64>, failed: WriteFailed) -> Refusal {
    let (code, detail) = match failed {
        WriteFailed::Unavailable(d) => (ErrorCode::Unavailable, d),
        WriteFailed::WrongType(d) => (ErrorCode::InvalidReading, d),
    };
    Refusal { id, code, detail }
}

/// Resolves each reading's device: the sender itself, or one it is a gateway for.
fn authorise(from: Sender<'_>, m: DeviceMessage) -> Result<Checked, Refusal> {
    let id = m.id;
    let rows = m
        .readings
        .into_iter()
        .map(|r| {
            let dev = match r.device {
                None => from.device.clone(),
                Some(d) if d == from.device.name => from.device.clone(),
                Some(d) => from.gateway_for.get(&d).cloned().ok_or_else(|| Refusal {
                    id,
                    code: ErrorCode::ForbiddenDevice,
                    detail: format!("device {d}: this token may not send readings for it"),
                })?,
            };
            Ok((dev, r.reading))
        })
        .collect::<Result<_, _>>()?;
    Ok((id, rows))
}

//! The store-and-forward buffer of one port, owned by its forwarder task.
//!
//! Readings are batched per device (a refusal of one device's readings never drops
//! another's) into open batches; a batch is sealed into a [`Message`] when it is
//! full or has waited `linger`. A sealed message stays in the queue, and in the
//! state file when there is one, until the hub answers it: acked or refused messages
//! leave, everything else is sent again after a reconnect. The queue holds at most
//! `capacity` readings; when full, new lines are dropped (and counted), never the
//! readings already waiting.

use super::journal::Journal;
use super::message::Message;
use super::stats::PortStats;
use crate::domain::{DeviceName, Reading};
use crate::protocol::ingest::DeviceReading;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Readings held at most (open batches and queue).
    pub capacity: usize,
    /// Readings per message at most.
    pub batch: usize,
    pub linger: Duration,
    /// Messages sent and unanswered at most.
    pub max_inflight: usize,
}

struct OpenBatch {
    device: Option<DeviceName>,
    readings: Vec<Reading>,
    since: Instant,
}

pub struct Outbox {
    limits: OutboxLimits,
    open: Vec<OpenBatch>,
    queue: VecDeque<Message>,
    held: usize,
    inflight: usize,
    next_id: u64,
    journal: Option<Journal>,
    stats: Arc<PortStats>,
}

impl Outbox {
    /// A buffer starting with `recovered` (from the state file) queued for sending.
    pub fn new(
        limits: OutboxLimits,
        journal: Option<Journal>,
        recovered: Vec<Message>,
        stats: Arc<PortStats>,
    ) -> Self {
        let next_id = recovered.iter().map(|m| m.id + 1).max().unwrap_or(1);
        let o = Self {
            limits,
            open: Vec::new(),
            held: recovered.iter().map(|m| m.readings.len()).sum(),
            queue: recovered.into(),
            inflight: 0,
            next_id,
            journal,
            stats,
        };
        o.update_gauge();
        o
    }

    /// Readings held (open batches and queue).
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Adds one line's readings; `false` (nothing added) when they do not fit.
    pub fn add(&mut self, readings: Vec<DeviceReading>, now: Instant) -> bool {
        if self.held + readings.len() > self.limits.capacity {
            return false;
        }
        self.held += readings.len();
        for r in readings {
            let i = match self.open.iter().position(|b| b.device == r.device) {
                Some(i) => i,
                None => {
                    self.open.push(OpenBatch {
                        device: r.device,
                        readings: Vec::with_capacity(self.limits.batch.min(64)),
                        since: now,
                    });
                    self.open.len() - 1
                }
            };
            self.open[i].readings.push(r.reading);
            if self.open[i].readings.len() >= self.limits.batch {
                self.seal(i);
            }
        }
        self.update_gauge();
        true
    }

    /// When the oldest open batch is due to be sealed.
    pub fn next_seal(&self) -> Option<Instant> {
        self.open.iter().map(|b| b.since + self.limits.linger).min()
    }

    /// Seals the batches that waited `linger` (all of them with `force`).
    pub fn seal_due(&mut self, now: Instant, force: bool) {
        let mut i = 0;
        while i < self.open.len() {
            if force || self.open[i].since + self.limits.linger <= now {
                self.seal(i);
            } else {
                i += 1;
            }
        }
    }

    fn seal(&mut self, i: usize) {
        let b = self.open.swap_remove(i);
        let m = Message {
            id: self.take_id(),
            device: b.device,
            readings: b.readings,
            sent_at: None,
        };
        if let Some(j) = &mut self.journal {
            j.add(&m);
        }
        self.queue.push_back(m);
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// The next message to write to the connection, marked as sent at `now`; `None`
    /// when nothing waits or `max_inflight` messages are unanswered.
    pub fn next_to_send(&mut self, now: Instant) -> Option<&Message> {
        if self.inflight >= self.limits.max_inflight {
            return None;
        }
        let m = self.queue.iter_mut().find(|m| m.sent_at.is_none())?;
        m.sent_at = Some(now);
        self.inflight += 1;
        Some(m)
    }

    /// When the oldest unanswered message was sent.
    pub fn oldest_inflight(&self) -> Option<Instant> {
        self.queue.iter().filter_map(|m| m.sent_at).min()
    }

    pub fn inflight(&self) -> usize {
        self.inflight
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.queue
            .iter()
            .position(|m| m.id == id && m.sent_at.is_some())
    }

    /// The hub answered `id` for good (stored or refused): it leaves the buffer.
    pub fn complete(&mut self, id: u64) -> Option<Message> {
        let m = self.queue.remove(self.position(id)?)?;
        self.inflight -= 1;
        self.held -= m.readings.len();
        if let Some(j) = &mut self.journal {
            j.done(m.id, &self.queue);
        }
        self.update_gauge();
        Some(m)
    }

    /// The hub asked for `id` again later (`unavailable`, `rate_limited`).
    pub fn retry(&mut self, id: u64) {
        if let Some(i) = self.position(id) {
            self.queue[i].sent_at = None;
            self.inflight -= 1;
        }
    }

    /// Replaces `id` by two messages holding its halves, to be sent in its place;
    /// `false` (nothing changed) when it holds a single reading.
    pub fn split(&mut self, id: u64) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        if self.queue[i].readings.len() < 2 {
            return false;
        }
        let mut first = self.queue.remove(i).expect("found");
        self.inflight -= 1;
        let second = first.readings.split_off(first.readings.len() / 2);
        let halves = [first.readings, second].map(|readings| Message {
            id: self.take_id(),
            device: first.device.clone(),
            readings,
            sent_at: None,
        });
        for (k, m) in halves.into_iter().enumerate() {
            if let Some(j) = &mut self.journal {
                j.add(&m);
            }
            self.queue.insert(i + k, m);
        }
        if let Some(j) = &mut self.journal {
            j.done(first.id, &self.queue);
        }
        true
    }

    /// The connection dropped: every unanswered message will be sent again.
    pub fn requeue_inflight(&mut self) {
        self.queue.iter_mut().for_each(|m| m.sent_at = None);
        self.inflight = 0;
    }

    /// Makes the state file durable (called periodically and on exit).
    pub fn sync(&mut self) {
        if let Some(j) = &mut self.journal {
            j.sync();
        }
    }

    /// The hub said `too_many_readings`: lowers the batch size and splits `id` in
    /// halves, or completes it (returned) when it holds a single reading.
    pub fn complete_or_split(&mut self, id: u64) -> Option<Message> {
        let n = self.queue.get(self.position(id)?)?.readings.len();
        if self.split(id) {
            self.limits.batch = self.limits.batch.min(n / 2).max(1);
            None
        } else {
            self.complete(id)
        }
    }

    fn update_gauge(&self) {
        self.stats.buffered.store(self.held as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SensorName, Timestamp};

    fn outbox(batch: usize, capacity: usize) -> Outbox {
        let limits = OutboxLimits {
            capacity,
            batch,
            linger: Duration::from_millis(100),
            max_inflight: 2,
        };
        Outbox::new(limits, None, Vec::new(), Arc::default())
    }

    fn line(device: Option<&str>, n: usize) -> Vec<DeviceReading> {
        (0..n)
            .map(|i| DeviceReading {
                device: device.map(|d| DeviceName::parse(d).unwrap()),
                reading: Reading {
                    sensor: SensorName::parse(&format!("s{i}")).unwrap(),
                    value: (i as f64).into(),
                    ts: Timestamp::from_micros(1),
                    unit: None,
                },
            })
            .collect()
    }

    #[test]
    fn batches_per_device_and_seals_when_full_or_lingered() {
        let t0 = Instant::now();
        let mut o = outbox(3, 100);
        assert!(o.add(line(None, 2), t0));
        assert!(o.add(line(Some("b"), 1), t0));
        assert!(o.add(line(None, 2), t0));
        // The gateway's batch filled (3) and was sealed; one of its readings is open.
        let m = o.next_to_send(t0).unwrap();
        assert_eq!((m.device.clone(), m.readings.len()), (None, 3));
        assert_eq!(o.next_seal(), Some(t0 + Duration::from_millis(100)));
        o.seal_due(t0 + Duration::from_millis(100), false);
        let m = o.next_to_send(t0).unwrap();
        assert_eq!(m.readings.len(), 1);
        assert!(o.next_to_send(t0).is_none(), "max_inflight 2");
        assert_eq!(o.held(), 5);
    }

    #[test]
    fn only_answered_messages_leave_and_the_rest_is_resent_in_order() {
        let t0 = Instant::now();
        let mut o = outbox(1, 100);
        for _ in 0..3 {
            o.add(line(None, 1), t0);
        }
        let a = o.next_to_send(t0).unwrap().id;
        let b = o.next_to_send(t0).unwrap().id;
        assert!(o.complete(a).is_some());
        o.requeue_inflight();
        assert_eq!(o.next_to_send(t0).unwrap().id, b);
        o.retry(b);
        assert_eq!(o.next_to_send(t0).unwrap().id, b);
        assert_eq!(o.held(), 2);
        assert!(o.complete(a).is_none(), "answered twice");
    }

    #[test]
    fn a_full_buffer_refuses_new_lines_whole() {
        let mut o = outbox(10, 3);
        assert!(o.add(line(None, 2), Instant::now()));
        assert!(!o.add(line(None, 2), Instant::now()));
        assert_eq!(o.held(), 2);
    }

    #[test]
    fn split_sends_the_halves_in_place() {
        let t0 = Instant::now();
        let mut o = outbox(4, 100);
        o.add(line(None, 4), t0);
        let id = o.next_to_send(t0).unwrap().id;
        assert!(o.split(id));
        assert_eq!(o.inflight(), 0);
        let a = o.next_to_send(t0).unwrap();
        assert_eq!(a.readings[0].sensor.as_str(), "s0");
        assert_eq!(a.readings.len(), 2);
        let a = a.id;
        assert!(o.complete(a).is_some());
        let b = o.next_to_send(t0).unwrap().id;
        o.complete(b);
        assert!(o.is_empty());
    }
}

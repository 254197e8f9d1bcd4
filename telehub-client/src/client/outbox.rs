//! The store-and-forward buffer: every reading not yet acked, in two parts — the
//! queue (not sent, or to be sent again) and the in-flight messages (sent, waiting
//! for their reply, oldest first). Together they hold at most `capacity` readings.
//!
//! Accounting: each reading taken in is counted once in `generated` and later once
//! in `acked`, `nacked` or `dropped`; until then it is pending.

use super::Stats;
use crate::protocol::ingest::DeviceReading;
use crate::protocol::ingest::encode::FrameBuilder;
use crate::protocol::line::LineBuilder;
use std::collections::VecDeque;
use tokio::time::{Duration, Instant};

/// A message on the wire, waiting for its reply.
#[derive(Debug)]
pub(super) struct Inflight {
    pub id: u64,
    pub readings: Vec<DeviceReading>,
}

/// A message being filled with readings: a protocol.md §2 frame or a line-protocol body.
pub(super) trait MessageBuilder {
    /// Adds `r` when it fits; `false`: the message is full and `r` was not added.
    fn push(&mut self, r: &DeviceReading) -> bool;
    fn len(&self) -> usize;
    fn finish(self) -> String;
}

impl MessageBuilder for FrameBuilder {
    fn push(&mut self, r: &DeviceReading) -> bool {
        FrameBuilder::push(self, r)
    }
    fn len(&self) -> usize {
        FrameBuilder::len(self)
    }
    fn finish(self) -> String {
        FrameBuilder::finish(self)
    }
}

impl MessageBuilder for LineBuilder {
    fn push(&mut self, r: &DeviceReading) -> bool {
        LineBuilder::push(self, r)
    }
    fn len(&self) -> usize {
        LineBuilder::len(self)
    }
    fn finish(self) -> String {
        LineBuilder::finish(self)
    }
}

/// When the queue wants its next message sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ready {
    Now,
    At(Instant),
    Empty,
}

/// A reply that does not answer the oldest message in flight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Mismatch {
    #[error("a reply arrived with no message in flight")]
    NothingInFlight,
    #[error("a reply for message {got} arrived while message {expected} was the oldest in flight")]
    WrongId { got: u64, expected: u64 },
}

#[derive(Debug)]
pub(super) struct Outbox {
    capacity: usize,
    queue: VecDeque<DeviceReading>,
    /// The first `requeued` queued readings were put back (in their original order):
    /// later put-backs go after them, so the queue stays oldest first.
    requeued: usize,
    /// When the queue last became non-empty (for `linger`).
    oldest: Option<Instant>,
    inflight: VecDeque<Inflight>,
    inflight_readings: usize,
    stats: Stats,
    closed: bool,
    /// Bumped on every change, so the persister saves only when needed.
    version: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            queue: VecDeque::new(),
            requeued: 0,
            oldest: None,
            inflight: VecDeque::new(),
            inflight_readings: 0,
            stats: Stats::default(),
            closed: false,
            version: 0,
        }
    }

    /// Readings saved by an earlier run: counted as generated, newest kept when too many.
    pub fn restore(&mut self, readings: Vec<DeviceReading>, now: Instant) {
        for r in readings {
            self.push(r, now);
        }
        self.requeued = self.queue.len();
    }

    /// Takes in one reading; when full, drops the oldest unsent one (or, with every
    /// buffered reading in flight, this one).
    pub fn push(&mut self, r: DeviceReading, now: Instant) {
        self.stats.generated += 1;
        self.version += 1;
        if self.len() >= self.capacity {
            self.stats.dropped += 1;
            if self.queue.pop_front().is_none() {
                return;
            }
            self.requeued = self.requeued.saturating_sub(1);
        }
        if self.queue.is_empty() {
            self.oldest = Some(now);
        }
        self.queue.push_back(r);
    }

    /// Unacked readings: queued and in flight.
    pub fn len(&self) -> usize {
        self.queue.len() + self.inflight_readings
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn inflight_messages(&self) -> usize {
        self.inflight.len()
    }

    pub fn close(&mut self) {
        self.closed = true;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether a message should go out now: a full batch, a reading that waited
    /// `linger`, or anything at all while `flush` (draining).
    pub fn ready(&self, max_batch: usize, linger: Duration, flush: bool, now: Instant) -> Ready {
        let Some(oldest) = self.oldest.filter(|_| !self.queue.is_empty()) else {
            return Ready::Empty;
        };
        if flush || self.queue.len() >= max_batch || self.requeued > 0 {
            return Ready::Now;
        }
        let due = oldest + linger;
        if due <= now {
            Ready::Now
        } else {
            Ready::At(due)
        }
    }

    /// Moves the oldest queued readings that fit into one protocol.md §2 frame `id` in flight,
    /// and returns its text; `None` when the queue is empty.
    #[cfg(test)]
    pub fn take_frame(&mut self, id: u64, max_batch: usize, max_bytes: usize) -> Option<String> {
        self.take_message(id, FrameBuilder::new(Some(id), max_batch, max_bytes))
    }

    /// Moves the oldest queued readings that fit into `frame` in flight as message
    /// `id`, and returns its text; `None` when the queue is empty.
    pub fn take_message(&mut self, id: u64, mut frame: impl MessageBuilder) -> Option<String> {
        for r in &self.queue {
            if !frame.push(r) {
                break;
            }
        }
        if frame.len() == 0 {
            return None;
        }
        let readings: Vec<_> = self.queue.drain(..frame.len()).collect();
        self.requeued = self.requeued.saturating_sub(readings.len());
        if self.queue.is_empty() {
            self.oldest = None;
        }
        self.inflight_readings += readings.len();
        self.inflight.push_back(Inflight { id, readings });
        Some(frame.finish())
    }

    /// Takes the oldest message in flight off, for the reply `reply_id` (`None`: the
    /// hub could not read the id, which still answers the oldest message).
    pub fn settle(&mut self, reply_id: Option<u64>) -> Result<Inflight, Mismatch> {
        let front = self.inflight.front().ok_or(Mismatch::NothingInFlight)?;
        if let Some(got) = reply_id.filter(|got| *got != front.id) {
            return Err(Mismatch::WrongId {
                got,
                expected: front.id,
            });
        }
        let m = self.inflight.pop_front().expect("checked above");
        self.inflight_readings -= m.readings.len();
        self.version += 1;
        Ok(m)
    }

    pub fn count_acked(&mut self, n: usize) {
        self.stats.acked += n as u64;
    }

    pub fn count_nacked(&mut self, n: usize) {
        self.stats.nacked += n as u64;
    }

    /// Puts readings back to be sent again, before everything not yet sent.
    pub fn requeue(&mut self, readings: Vec<DeviceReading>, now: Instant) {
        if readings.is_empty() {
            return;
        }
        let at = self.requeued.min(self.queue.len());
        let n = readings.len();
        if at == 0 {
            for r in readings.into_iter().rev() {
                self.queue.push_front(r);
            }
        } else {
            let tail = self.queue.split_off(at);
            self.queue.extend(readings);
            self.queue.extend(tail);
        }
        self.requeued = at + n;
        self.oldest = Some(self.oldest.map_or(now, |o| o.min(now)));
        self.version += 1;
    }

    /// After a lost connection: every message in flight goes back to be resent.
    pub fn requeue_inflight(&mut self, now: Instant) {
        let all: Vec<_> = self.inflight.drain(..).flat_map(|m| m.readings).collect();
        self.inflight_readings = 0;
        self.requeue(all, now);
    }

    /// Every unacked reading, in flight first, for saving.
    pub fn snapshot(&self) -> Vec<DeviceReading> {
        self.inflight
            .iter()
            .flat_map(|m| m.readings.iter())
            .chain(self.queue.iter())
            .cloned()
            .collect()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            pending: self.len() as u64,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Reading, SensorName, Timestamp};

    fn r(i: i64) -> DeviceReading {
        DeviceReading {
            device: None,
            reading: Reading {
                sensor: SensorName::parse("t").unwrap(),
                value: (i as f64).into(),
                ts: Timestamp::from_micros(1_700_000_000_000_000 + i),
                unit: None,
            },
        }
    }

    fn values(rs: &[DeviceReading]) -> Vec<i64> {
        rs.iter()
            .map(|r| r.reading.value.as_f64().unwrap() as i64)
            .collect()
    }

    fn queued(o: &Outbox) -> Vec<i64> {
        values(&o.queue.iter().cloned().collect::<Vec<_>>())
    }

    /// generated = acked + nacked + dropped + pending, always.
    fn balanced(o: &Outbox) -> bool {
        let s = o.stats();
        s.generated == s.acked + s.nacked + s.dropped + s.pending
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_it() {
        let now = Instant::now();
        let mut o = Outbox::new(3);
        for i in 0..5 {
            o.push(r(i), now);
            assert!(balanced(&o));
        }
        assert_eq!(queued(&o), [2, 3, 4]);
        let s = o.stats();
        assert_eq!((s.generated, s.dropped, s.pending), (5, 2, 3));
    }

    #[test]
    fn readings_in_flight_are_never_dropped() {
        let now = Instant::now();
        let mut o = Outbox::new(3);
        (0..3).for_each(|i| o.push(r(i), now));
        o.take_frame(1, 2, 64 * 1024).unwrap();
        o.push(r(3), now); // drops 2, the oldest unsent
        assert_eq!(queued(&o), [3]);
        o.take_frame(2, 2, 64 * 1024).unwrap();
        o.push(r(4), now); // everything is in flight: the new reading goes
        assert_eq!(o.stats().dropped, 2);
        assert_eq!(o.len(), 3);
        assert!(balanced(&o));
    }

    #[test]
    fn acks_settle_in_order_and_wrong_ids_are_refused() {
        let now = Instant::now();
        let mut o = Outbox::new(100);
        (0..4).for_each(|i| o.push(r(i), now));
        o.take_frame(7, 2, 64 * 1024).unwrap();
        o.take_frame(8, 2, 64 * 1024).unwrap();
        assert_eq!(
            o.settle(Some(8)).unwrap_err(),
            Mismatch::WrongId {
                got: 8,
                expected: 7
            }
        );
        let m = o.settle(Some(7)).unwrap();
        o.count_acked(m.readings.len());
        let m = o.settle(None).unwrap();
        o.count_nacked(m.readings.len());
        assert_eq!(o.settle(Some(9)).unwrap_err(), Mismatch::NothingInFlight);
        let s = o.stats();
        assert_eq!((s.acked, s.nacked, s.pending), (2, 2, 0));
        assert!(balanced(&o));
    }

    #[test]
    fn put_back_readings_go_first_and_keep_their_order() {
        let now = Instant::now();
        let mut o = Outbox::new(100);
        (0..6).for_each(|i| o.push(r(i), now));
        o.take_frame(1, 2, 64 * 1024).unwrap(); // 0,1
        o.take_frame(2, 2, 64 * 1024).unwrap(); // 2,3
        let first = o.settle(Some(1)).unwrap(); // refused "resend later"
        o.requeue(first.readings, now);
        assert_eq!(queued(&o), [0, 1, 4, 5]);
        o.requeue_inflight(now); // connection lost with 2,3 in flight
        assert_eq!(queued(&o), [0, 1, 2, 3, 4, 5]);
        assert_eq!(o.inflight_messages(), 0);
        assert_eq!(values(&o.snapshot()), [0, 1, 2, 3, 4, 5]);
        assert_eq!(
            o.ready(100, Duration::from_secs(60), false, now),
            Ready::Now
        );
        assert!(balanced(&o));
    }

    #[test]
    fn linger_waits_for_a_full_batch_unless_flushing() {
        let t0 = Instant::now();
        let mut o = Outbox::new(100);
        let linger = Duration::from_millis(200);
        assert_eq!(o.ready(3, linger, false, t0), Ready::Empty);
        o.push(r(0), t0);
        assert_eq!(o.ready(3, linger, false, t0), Ready::At(t0 + linger));
        assert_eq!(o.ready(3, linger, true, t0), Ready::Now);
        assert_eq!(o.ready(3, linger, false, t0 + linger), Ready::Now);
        o.push(r(1), t0);
        o.push(r(2), t0);
        assert_eq!(o.ready(3, linger, false, t0), Ready::Now);
    }

    #[test]
    fn frames_respect_the_byte_budget() {
        let now = Instant::now();
        let mut o = Outbox::new(1000);
        (0..500).for_each(|i| o.push(r(i), now));
        let frame = o.take_frame(1, 1000, 1024).unwrap();
        assert!(frame.len() <= 1024);
        let sent = o.inflight.front().unwrap().readings.len();
        assert!(sent > 1 && sent < 500, "{sent}");
        assert_eq!(o.len(), 500);
    }

    #[test]
    fn restored_readings_are_counted_and_bounded() {
        let now = Instant::now();
        let mut o = Outbox::new(3);
        o.restore((0..5).map(r).collect(), now);
        let s = o.stats();
        assert_eq!((s.generated, s.dropped, s.pending), (5, 2, 3));
        assert_eq!(queued(&o), [2, 3, 4]);
        assert!(balanced(&o));
    }
}

//! The hub-wide replay buffer of committed readings (docs/protocol.md §3: "the hub's live history",
//! sized by `live.history`; the word history is kept for long-range storage): one ring
//! shared by every dashboard client, each client a [`Cursor`] into it (like tokio's
//! broadcast channel or the LMAX disruptor), instead of a copy per client.
//!
//! Every reading gets an offset, `1, 2, 3, ...` in commit order, within an epoch that is
//! random per start. The ring holds whole committed batches ([`Chunk`]s), the batch's
//! readings as the writer published them plus their JSON objects, serialized once, on
//! first read, and shared by every reader. It is bounded in readings and in age
//! (whichever is reached first): memory is bounded by the replay buffer whatever the number
//! of clients, since a client holds only its cursor.
//!
//! Owner: the fan-out task appends and evicts (write lock; see [`super::LiveHub`]); each
//! client's socket task reads from its own cursor (read lock). A cursor is moved by its
//! client, under the read lock, and by an eviction that passes it, under the write lock,
//! which adds what the client lost to its `lagged` count: so the count is exact.
//!
//! Channel: `appended` (a `watch` of the offset the next reading will get); sender: this
//! replay buffer (on every append); receivers: the clients' socket tasks, woken to read.

use crate::domain::{CommittedBatch, StoredReading};
use crate::protocol::live::{Pattern, reading_object};
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A client's position: the offset of the next reading it will read, and the readings
/// it lost (that matched its patterns) since it last read.
#[derive(Debug, Default)]
pub struct Cursor {
    next: AtomicU64,
    lagged: AtomicU64,
}

impl Cursor {
    pub fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    pub fn add_lagged(&self, n: u64) {
        self.lagged.fetch_add(n, Ordering::AcqRel);
    }

    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Acquire)
    }
}

/// One committed batch in the ring.
struct Chunk {
    /// The offset of the batch's first reading.
    first: u64,
    at: Instant,
    batch: CommittedBatch,
    /// The batch's reading objects, concatenated, and where each ends.
    encoded: OnceLock<(Bytes, Vec<u32>)>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.first + self.batch.len() as u64
    }

    fn encoded(&self, bytes: &AtomicUsize) -> &(Bytes, Vec<u32>) {
        self.encoded.get_or_init(|| {
            let mut json = Vec::new();
            let mut ends = Vec::with_capacity(self.batch.len());
            for s in self.batch.iter() {
                json.extend_from_slice(&reading_object(s));
                ends.push(u32::try_from(json.len()).expect("a batch's JSON fits 4 GiB"));
            }
            bytes.fetch_add(json.len(), Ordering::Relaxed);
            (Bytes::from(json), ends)
        })
    }

    fn object(&self, i: usize, bytes: &AtomicUsize) -> Bytes {
        let (json, ends) = self.encoded(bytes);
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        json.slice(start..ends[i] as usize)
    }

    fn encoded_len(&self) -> usize {
        self.encoded.get().map_or(0, |(j, _)| j.len())
    }
}

fn matches(patterns: &[Pattern], s: &StoredReading) -> bool {
    patterns
        .iter()
        .any(|p| p.matches(s.device.as_str(), s.reading.sensor.as_str()))
}

struct Ring {
    chunks: VecDeque<Chunk>,
    /// The offset the next reading appended will get.
    next: u64,
    /// Readings held.
    len: usize,
}

impl Ring {
    fn oldest(&self) -> u64 {
        self.chunks.front().map_or(self.next, |c| c.first)
    }
}

/// What a client read: readings with their offsets, and what it lost before them.
#[derive(Debug, Default)]
pub struct Read {
    pub readings: Vec<(u64, Bytes)>,
    pub lagged: u64,
}

/// The answer to a resume request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Everything after the requested offset is still held: it will be replayed.
    Resumed,
    /// Not possible; the client goes on live after `offset` in `epoch`.
    NotResumed { epoch: String, offset: u64 },
}

/// The shared replay buffer; see the module documentation.
pub struct ReplayBuffer {
    ring: RwLock<Ring>,
    epoch: String,
    max_readings: usize,
    max_age: Duration,
    /// Bytes of JSON serialized so far for the chunks held.
    encoded_bytes: AtomicUsize,
    appended: watch::Sender<u64>,
}

impl ReplayBuffer {
    pub fn new(max_readings: usize, max_age: Duration) -> Self {
        Self::with_epoch(
            format!("{:016x}", rand::random::<u64>()),
            max_readings,
            max_age,
        )
    }

    pub fn with_epoch(epoch: String, max_readings: usize, max_age: Duration) -> Self {
        Self {
            ring: RwLock::new(Ring {
                chunks: VecDeque::new(),
                next: 1,
                len: 0,
            }),
            epoch,
            max_readings,
            max_age,
            encoded_bytes: AtomicUsize::new(0),
            appended: watch::Sender::new(1),
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Wakes when readings are appended (see the module documentation).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// A cursor at the end: it will read what is appended from now on.
    pub fn cursor_at_end(&self) -> Cursor {
        Cursor {
            next: AtomicU64::new(self.ring.read().next),
            lagged: AtomicU64::new(0),
        }
    }

    /// Appends `batches` (each reading gets the next offset), then evicts whatever is
    /// beyond the bounds at `now`. Before a chunk goes, `evicting` sees it (its first
    /// offset and readings), under the write lock: it moves the cursors still inside it.
    pub fn append(
        &self,
        batches: &[CommittedBatch],
        now: Instant,
        mut evicting: impl FnMut(u64, &[StoredReading]),
    ) {
        let mut ring = self.ring.write();
        for b in batches.iter().filter(|b| !b.is_empty()) {
            let first = ring.next;
            ring.next += b.len() as u64;
            ring.len += b.len();
            ring.chunks.push_back(Chunk {
                first,
                at: now,
                batch: b.clone(),
                encoded: OnceLock::new(),
            });
        }
        while let Some(c) = ring.chunks.front() {
            let too_many = ring.len > self.max_readings;
            let too_old = now.saturating_duration_since(c.at) > self.max_age;
            if !(too_many || too_old) {
                break;
            }
            evicting(c.first, &c.batch);
            self.encoded_bytes
                .fetch_sub(c.encoded_len(), Ordering::Relaxed);
            ring.len -= c.batch.len();
            ring.chunks.pop_front();
        }
        let next = ring.next;
        drop(ring);
        self.appended.send_if_modified(|n| {
            let changed = *n != next;
            *n = next;
            changed
        });
    }

    /// For a chunk being evicted (`first`, `readings`): moves `cursor` past it when it is
    /// inside, counting the readings that match `patterns` as lagged.
    pub fn pass(cursor: &Cursor, patterns: &[Pattern], first: u64, readings: &[StoredReading]) {
        let end = first + readings.len() as u64;
        let at = cursor.next();
        if at >= end {
            return;
        }
        let skip = at.saturating_sub(first) as usize;
        let lost = readings[skip..]
            .iter()
            .filter(|s| matches(patterns, s))
            .count() as u64;
        cursor.add_lagged(lost);
        cursor.next.store(end, Ordering::Release);
    }

    /// Reads at most `limit` readings matching `patterns` from `cursor`, and moves it
    /// past everything it looked at.
    pub fn read(&self, cursor: &Cursor, patterns: &[Pattern], limit: usize) -> Read {
        let ring = self.ring.read();
        let mut at = cursor.next().max(ring.oldest());
        let mut out = Read {
            readings: Vec::new(),
            lagged: cursor.lagged.swap(0, Ordering::AcqRel),
        };
        let start = ring.chunks.partition_point(|c| c.end() <= at);
        'chunks: for c in ring.chunks.range(start..) {
            for (i, s) in c.batch.iter().enumerate().skip((at - c.first) as usize) {
                if out.readings.len() == limit {
                    break 'chunks;
                }
                let offset = c.first + i as u64;
                if matches(patterns, s) {
                    out.readings
                        .push((offset, c.object(i, &self.encoded_bytes)));
                }
                at = offset + 1;
            }
        }
        cursor.next.store(at, Ordering::Release);
        out
    }

    /// Places `cursor` just after `offset` of `epoch` when everything after it is still
    /// held; otherwise at the end.
    pub fn resume(&self, cursor: &Cursor, epoch: &str, offset: u64) -> Resume {
        let ring = self.ring.read();
        let held = epoch == self.epoch && offset + 1 >= ring.oldest() && offset < ring.next;
        if held {
            cursor.next.store(offset + 1, Ordering::Release);
            Resume::Resumed
        } else {
            cursor.next.store(ring.next, Ordering::Release);
            Resume::NotResumed {
                epoch: self.epoch.clone(),
                offset: ring.next - 1,
            }
        }
    }

    /// Moves `cursor` to the end (live from now on).
    pub fn skip_to_end(&self, cursor: &Cursor) {
        let ring = self.ring.read();
        cursor.next.store(ring.next, Ordering::Release);
    }

    /// Readings held, bytes held (approximately), the oldest offset held, and the offset
    /// the next reading will get.
    pub fn stats(&self) -> Stats {
        let ring = self.ring.read();
        Stats {
            readings: ring.len,
            bytes: self.encoded_bytes.load(Ordering::Relaxed)
                + ring.len * std::mem::size_of::<StoredReading>()
                + ring.chunks.len() * std::mem::size_of::<Chunk>(),
            oldest: ring.oldest(),
            next: ring.next,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub readings: usize,
    pub bytes: usize,
    pub oldest: u64,
    pub next: u64,
}

#[cfg(test)]
mod tests;

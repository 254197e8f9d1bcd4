//! Counters of one bridged port, written by its reader and forwarder tasks and read
//! by the periodic log line, the exit summary and tests.

use crate::protocol::ingest::ErrorCode;
use crate::protocol::serial::LineErrorKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Lock-free counters; every field only grows except `buffered`.
#[derive(Debug, Default)]
pub struct PortStats {
    /// Complete lines read from the port (good and bad, not counting empty ones).
    pub lines_read: AtomicU64,
    /// Refused lines by reason ([`LineErrorKind::index`]); never forwarded.
    bad_lines: [AtomicU64; LineErrorKind::ALL.len()],
    /// Partial lines dropped because the port closed mid-line.
    pub incomplete_lines: AtomicU64,
    /// Readings taken from good lines.
    pub readings_read: AtomicU64,
    /// Readings acked by the hub.
    pub forwarded: AtomicU64,
    /// Readings refused by the hub, by error code (`ErrorCode::ALL` order); not resent.
    refused: [AtomicU64; ErrorCode::ALL.len()],
    /// Readings dropped because the buffer was full.
    pub dropped: AtomicU64,
    /// Readings held now (waiting for a batch, for the hub, or for an ack).
    pub buffered: AtomicU64,
    /// Connections to the hub made after the first.
    pub reconnects: AtomicU64,
    /// Times the port was opened again after it vanished.
    pub reopens: AtomicU64,
}

/// A copy of the counters at one moment; printed as JSON on exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub lines_read: u64,
    /// Non-zero reasons only.
    pub bad_lines: BTreeMap<&'static str, u64>,
    pub incomplete_lines: u64,
    pub readings_read: u64,
    pub forwarded: u64,
    pub refused: BTreeMap<&'static str, u64>,
    pub dropped: u64,
    pub buffered: u64,
    pub reconnects: u64,
    pub reopens: u64,
}

impl PortStats {
    pub fn bad_line(&self, kind: LineErrorKind) {
        self.bad_lines[kind.index()].fetch_add(1, Relaxed);
    }

    pub fn refused(&self, code: ErrorCode, readings: usize) {
        let i = ErrorCode::ALL.iter().position(|c| *c == code).unwrap_or(0);
        self.refused[i].fetch_add(readings as u64, Relaxed);
    }

    pub fn bad_lines_total(&self) -> u64 {
        self.bad_lines.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let nonzero = |names: &mut dyn Iterator<Item = &'static str>, counts: &[AtomicU64]| {
            names
                .zip(counts)
                .map(|(n, c)| (n, c.load(Relaxed)))
                .filter(|(_, c)| *c > 0)
                .collect()
        };
        StatsSnapshot {
            lines_read: self.lines_read.load(Relaxed),
            bad_lines: nonzero(
                &mut LineErrorKind::ALL.iter().map(|k| k.as_str()),
                &self.bad_lines,
            ),
            incomplete_lines: self.incomplete_lines.load(Relaxed),
            readings_read: self.readings_read.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            refused: nonzero(
                &mut ErrorCode::ALL.iter().map(|c| c.as_str()).chain(["other"]),
                &self.refused,
            ),
            dropped: self.dropped.load(Relaxed),
            buffered: self.buffered.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            reopens: self.reopens.load(Relaxed),
        }
    }
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

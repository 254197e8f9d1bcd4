//! The optional state file of a port: sealed messages not yet answered by the hub, so
//! that a restart of the bridge resends them instead of losing them.
//!
//! An append-only log of `M <protocol.md §2 message JSON>` (sealed) and `D <id>` (answered)
//! lines; replaying it gives the unanswered messages. It is rewritten with only
//! those once enough `D` lines have piled up, so its size stays bounded by the
//! buffer. Records are written at once (they survive a crash of the bridge) and
//! synced to disk every second and on exit (they survive power loss after that).

use super::append_file::AppendFile;
use super::message::Message;
use super::uplink::encode_message;
use crate::domain::Timestamp;
use crate::protocol::ingest::{ParseLimits, parse_message};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

/// `D` lines tolerated before the file is rewritten.
const COMPACT_AFTER: usize = 4096;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "state file {path}: {source}; check the path and its permissions, or leave --state-file out"
)]
pub struct JournalError {
    path: String,
    source: std::io::Error,
}

impl JournalError {
    pub(super) fn new(path: &Path, source: std::io::Error) -> Self {
        Self {
            path: path.display().to_string(),
            source,
        }
    }
}

pub struct Journal {
    file: AppendFile,
    done_lines: usize,
}

impl Journal {
    /// Opens (or creates) the file and returns the messages it holds, in order.
    pub fn open(path: &Path) -> Result<(Self, Vec<Message>), JournalError> {
        let unacked = match File::open(path) {
            Ok(f) => replay(BufReader::new(f), path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(JournalError::new(path, e)),
        };
        let file = AppendFile::create(path, unacked.iter().map(line), "unacked readings")
            .map_err(|e| JournalError::new(path, e))?;
        let journal = Self {
            file,
            done_lines: 0,
        };
        Ok((journal, unacked))
    }

    pub fn add(&mut self, m: &Message) {
        self.file.append(&line(m));
    }

    /// Records that `id` was answered; rewrites the file when it has grown enough.
    pub fn done(&mut self, id: u64, live: &VecDeque<Message>) {
        self.file.append(&format!("D {id}"));
        self.done_lines += 1;
        if self.done_lines >= COMPACT_AFTER.max(live.len()) {
            self.file.rewrite(live.iter().map(line));
            self.done_lines = 0;
        }
    }

    pub fn sync(&mut self) {
        self.file.sync();
    }
}

/// A sealed message's line.
fn line(m: &Message) -> String {
    format!("M {}", encode_message(m.id, m.device.as_ref(), &m.readings))
}

/// The unanswered messages of a log; unreadable lines (a write cut by a crash) are skipped.
fn replay(reader: impl BufRead, path: &Path) -> Vec<Message> {
    let limits = ParseLimits {
        max_readings: usize::MAX,
        max_clock_skew: Duration::from_secs(100 * 365 * 86_400),
        now: Timestamp::now(),
    };
    let mut unacked: Vec<Message> = Vec::new();
    let mut skipped = 0usize;
    for line in reader.lines() {
        let Ok(line) = line else {
            skipped += 1;
            continue;
        };
        if let Some(json) = line.strip_prefix("M ") {
            match parse_message(json, &limits) {
                Ok(m) if m.id.is_some() && !m.readings.is_empty() => unacked.push(Message {
                    id: m.id.unwrap_or_default(),
                    device: m.readings[0].device.clone(),
                    readings: m.readings.into_iter().map(|r| r.reading).collect(),
                    sent_at: None,
                }),
                _ => skipped += 1,
            }
        } else if let Some(id) = line.strip_prefix("D ").and_then(|s| s.parse::<u64>().ok()) {
            unacked.retain(|m| m.id != id);
        } else if !line.is_empty() {
            skipped += 1;
        }
    }
    if skipped > 0 {
        tracing::warn!(state_file = %path.display(), skipped, "skipped unreadable lines of the state file (a write cut short by a crash?)");
    }
    if !unacked.is_empty() {
        let readings: usize = unacked.iter().map(|m| m.readings.len()).sum();
        tracing::info!(state_file = %path.display(), messages = unacked.len(), readings, "resending unacked readings from the state file");
    }
    unacked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceName, Reading, SensorName};
    use std::io::Write;

    fn message(id: u64, device: Option<&str>) -> Message {
        Message {
            id,
            device: device.map(|d| DeviceName::parse(d).unwrap()),
            readings: vec![Reading {
                sensor: SensorName::parse("t").unwrap(),
                value: (id as f64).into(),
                ts: Timestamp::from_micros(1_700_000_000_000_000 + id as i64),
                unit: None,
            }],
            sent_at: None,
        }
    }

    #[test]
    fn a_reopened_file_holds_exactly_the_unanswered_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.state");
        let (mut j, unacked) = Journal::open(&path).unwrap();
        assert!(unacked.is_empty());
        let mut live = VecDeque::new();
        for id in 1..=3 {
            let m = message(id, (id == 2).then_some("pump-3"));
            j.add(&m);
            live.push_back(m);
        }
        live.pop_front();
        j.done(1, &live);
        drop(j);
        // A crash in the middle of a write leaves a partial line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"M {\"id\":9,\"readi")
            .unwrap();
        let (_j, unacked) = Journal::open(&path).unwrap();
        assert_eq!(unacked, Vec::from(live));
    }

    #[test]
    fn the_file_is_compacted_once_answers_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let (mut j, _) = Journal::open(&path).unwrap();
        let live = VecDeque::from([message(0, None)]);
        j.add(&live[0]);
        for id in 1..=COMPACT_AFTER as u64 {
            j.add(&message(id, None));
            j.done(id, &live);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}

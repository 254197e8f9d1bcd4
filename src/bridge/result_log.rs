//! The command results of a port that the hub has not confirmed, kept beside the state
//! file (`STATE_FILE.results`), so that a restart of the bridge between a device's `!res`
//! and the hub's `result_stored` sends the result again instead of losing it (the hub
//! stores a result once, however often it comes).
//!
//! An append-only log of `R <command_result frame JSON>` (a device answered) and `S <id>`
//! (the hub stored it) lines; replaying it gives the results still to send, oldest
//! first. It is rewritten with only those once enough `S` lines have piled up.
//!
//! Owns [`ResultLog`]. Kept by [`super::commands::Relay`]; the file mechanics are
//! [`super::append_file`]'s.

use super::append_file::AppendFile;
use super::journal::JournalError;
use crate::domain::Timestamp;
use crate::protocol::commands::CommandId;
use crate::protocol::frames::DeviceFrame;
use crate::protocol::ingest::ParseLimits;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `S` lines tolerated before the file is rewritten.
const COMPACT_AFTER: usize = 1024;

pub struct ResultLog {
    file: AppendFile,
    stored_lines: usize,
}

/// Where the results of the port whose state file is `state_file` are kept.
pub fn path_beside(state_file: &Path) -> PathBuf {
    let mut p = state_file.as_os_str().to_owned();
    p.push(".results");
    PathBuf::from(p)
}

impl ResultLog {
    /// Opens (or creates) the file and returns the results it holds, oldest first, at
    /// most `capacity` (the newest kept).
    pub fn open(path: &Path, capacity: usize) -> Result<(Self, Vec<DeviceFrame>), JournalError> {
        let mut pending = match std::fs::File::open(path) {
            Ok(f) => replay(BufReader::new(f), path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => VecDeque::new(),
            Err(e) => return Err(JournalError::new(path, e)),
        };
        while pending.len() > capacity {
            pending.pop_front();
        }
        let file = AppendFile::create(
            path,
            pending.iter().map(line),
            "command results the hub has not confirmed",
        )
        .map_err(|e| JournalError::new(path, e))?;
        let log = Self {
            file,
            stored_lines: 0,
        };
        Ok((log, pending.into()))
    }

    /// A device's result, to keep until the hub stores it.
    pub fn add(&mut self, result: &DeviceFrame) {
        self.file.append(&line(result));
    }

    /// The hub stored result `id`; `live` are the results still unconfirmed.
    pub fn stored<'a>(&mut self, id: &CommandId, live: impl Iterator<Item = &'a DeviceFrame>) {
        self.file.append(&format!("S {id}"));
        self.stored_lines += 1;
        if self.stored_lines >= COMPACT_AFTER {
            self.file.rewrite(live.map(line));
            self.stored_lines = 0;
        }
    }

    pub fn sync(&mut self) {
        self.file.sync();
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

fn line(result: &DeviceFrame) -> String {
    format!("R {}", result.to_json())
}

/// The results of a log not yet stored; unreadable lines (a write cut by a crash) are
/// skipped. A result given twice (the device answered a resent command) is kept once.
fn replay(reader: impl BufRead, path: &Path) -> VecDeque<DeviceFrame> {
    let limits = ParseLimits {
        max_readings: 0,
        max_clock_skew: Duration::ZERO,
        now: Timestamp::now(),
    };
    let mut pending: VecDeque<DeviceFrame> = VecDeque::new();
    let mut skipped = 0usize;
    for line in reader.lines() {
        let Ok(line) = line else {
            skipped += 1;
            continue;
        };
        if let Some(json) = line.strip_prefix("R ") {
            match DeviceFrame::parse(json, &limits) {
                Ok(f @ DeviceFrame::CommandResult { .. }) => {
                    let id = result_id(&f).cloned();
                    pending.retain(|p| result_id(p) != id.as_ref());
                    pending.push_back(f);
                }
                _ => skipped += 1,
            }
        } else if let Some(id) = line.strip_prefix("S ") {
            match CommandId::parse(id) {
                Ok(id) => pending.retain(|p| result_id(p) != Some(&id)),
                Err(_) => skipped += 1,
            }
        } else if !line.is_empty() {
            skipped += 1;
        }
    }
    if skipped > 0 {
        tracing::warn!(results_file = %path.display(), skipped, "skipped unreadable lines of the results file (a write cut short by a crash?)");
    }
    if !pending.is_empty() {
        tracing::info!(results_file = %path.display(), results = pending.len(), "sending command results the hub had not confirmed");
    }
    pending
}

fn result_id(f: &DeviceFrame) -> Option<&CommandId> {
    match f {
        DeviceFrame::CommandResult { id, .. } => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::commands::{CommandAnswer, CommandStatus};
    use std::io::Write;

    fn result(id: &str) -> DeviceFrame {
        DeviceFrame::CommandResult {
            id: CommandId::parse(id).unwrap(),
            answer: CommandAnswer {
                status: CommandStatus::Ok,
                result: serde_json::json!({"id": id}).as_object().cloned(),
                error: None,
            },
        }
    }

    #[test]
    fn a_reopened_log_holds_exactly_the_results_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_beside(&dir.path().join("port.state"));
        let (mut log, pending) = ResultLog::open(&path, 8).unwrap();
        assert!(pending.is_empty());
        let all = [result("c_1"), result("c_2"), result("c_3")];
        for r in &all {
            log.add(r);
        }
        log.add(&all[1]);
        log.stored(&CommandId::parse("c_1").unwrap(), all[1..].iter());
        drop(log);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"R {\"command_result\": \"c_9\", \"sta")
            .unwrap();
        let (_log, pending) = ResultLog::open(&path, 8).unwrap();
        assert_eq!(pending, vec![all[2].clone(), all[1].clone()]);
        let (_log, pending) = ResultLog::open(&path, 1).unwrap();
        assert_eq!(pending, vec![all[1].clone()], "the newest within capacity");
    }

    #[test]
    fn the_log_is_rewritten_once_stored_lines_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let (mut log, _) = ResultLog::open(&path, 8).unwrap();
        let keep = result("c_keep");
        log.add(&keep);
        for i in 0..COMPACT_AFTER {
            let r = result(&format!("c_{i}"));
            log.add(&r);
            log.stored(result_id(&r).unwrap(), std::iter::once(&keep));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("c_keep"), "{text}");
    }
}

//! `[ingest]` and `[live]`: device socket limits and the dashboard feed's bounds.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    pub max_frame_bytes: usize,
    pub max_readings_per_message: usize,
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Messages a device may have awaiting their reply before the hub stops reading its socket.
    pub max_inflight_messages: usize,
    /// Per-connection WebSocket read buffer, kept for the socket's life (tungstenite's
    /// default of 128 KiB is far too large). A frame larger than it grows it; bursts are
    /// read ahead in 8 KiB chunks underneath (`server::read_ahead`), so a small buffer
    /// does not mean a syscall per buffer-full.
    pub read_buffer_bytes: usize,
    /// Per-connection write buffer; frames are flushed once this much is queued or the socket is idle.
    pub write_buffer_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveSettings {
    /// Readings one dashboard socket takes from the history per write at most.
    pub client_queue: usize,
    /// The hub-wide history of committed readings every client reads from (and resumes
    /// from): a client that falls out of it is told `lagged`.
    pub history: HistorySettings,
    /// A client whose socket does not take a write for this long is closed with 1008 "too slow".
    #[serde(with = "humantime_serde")]
    pub stuck_timeout: Duration,
    pub max_patterns: usize,
    /// Readings per frame at most when a client's writer drains its queue.
    pub max_readings_per_frame: usize,
    /// Committed batches the fan-out may fall behind the writer before it drops some.
    pub committed_backlog: usize,
    /// Frames per second that all dashboard sockets together aim to stay under. A socket
    /// that wrote less than `clients / max_frames_per_second` ago (at most 250 ms) waits
    /// out the rest and sends everything queued meanwhile in one go: under load each
    /// frame carries more readings; an idle socket, or a lone one, writes at once.
    pub max_frames_per_second: u32,
}

/// `[live.history]`: bounded in readings and in age, whichever is reached first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySettings {
    pub readings: usize,
    #[serde(with = "humantime_serde")]
    pub age: Duration,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            readings: 1_000_000,
            age: Duration::from_secs(60),
        }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_readings_per_message: 1000,
            max_clock_skew: Duration::from_secs(300),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_inflight_messages: 64,
            read_buffer_bytes: 512,
            write_buffer_bytes: 4 * 1024,
        }
    }
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            client_queue: 1024,
            history: HistorySettings::default(),
            stuck_timeout: Duration::from_secs(10),
            max_patterns: 256,
            max_readings_per_frame: 500,
            committed_backlog: 1024,
            max_frames_per_second: 50_000,
        }
    }
}

impl IngestSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_frame_bytes < 256
            || self.max_readings_per_message == 0
            || self.max_inflight_messages == 0
        {
            return Err(
                "ingest.max_frame_bytes must be ≥ 256, and max_readings_per_message and max_inflight_messages ≥ 1".into(),
            );
        }
        if self.ping_interval.is_zero() || self.idle_timeout <= self.ping_interval {
            return Err(
                "ingest.idle_timeout must be longer than ingest.ping_interval (> 0)".into(),
            );
        }
        Ok(())
    }
}

impl LiveSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.client_queue == 0
            || self.max_patterns == 0
            || self.max_readings_per_frame == 0
            || self.max_frames_per_second == 0
        {
            return Err(
                "live.client_queue, live.max_patterns, live.max_readings_per_frame and live.max_frames_per_second must be ≥ 1".into(),
            );
        }
        if self.history.readings == 0 || self.history.age.is_zero() {
            return Err("live.history.readings and live.history.age must be > 0".into());
        }
        if self.history.readings > 100_000_000 {
            return Err("live.history.readings is at most 100,000,000".into());
        }
        Ok(())
    }
}

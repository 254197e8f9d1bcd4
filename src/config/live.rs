//! `[live]`: the dashboard feed's bounds: the replay buffer every dashboard socket reads
//! from (`live.history`), each socket's queue, frames, buffers and heartbeat, and the
//! channels that carry committed batches and device status to the fan-out.

use super::{SettingError, SocketSettings};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveSettings {
    /// Readings one dashboard socket takes from the replay buffer per write at most.
    pub client_queue: usize,
    /// The replay buffer: the hub-wide window of committed readings every client reads
    /// from (and resumes from); a client that falls out of it is told `lagged`. The key
    /// keeps the contract's name, `live.history` ("the hub's live history").
    pub history: ReplayBufferSettings,
    /// A client whose socket does not take a write for this long is closed with 1008 "too slow".
    #[serde(with = "humantime_serde")]
    pub stuck_timeout: Duration,
    pub max_patterns: usize,
    /// Readings per frame at most when a client's writer drains its queue.
    pub max_readings_per_frame: usize,
    /// Committed batches the fan-out may fall behind the writer before it drops some.
    pub committed_backlog: usize,
    /// Device status events (online/offline) the fan-out, MQTT and the alert engine may
    /// each fall behind the session registry before some are dropped for it. Until this
    /// key existed, `committed_backlog` sized this channel too (same default).
    pub status_backlog: usize,
    /// Frames per second that all dashboard sockets together aim to stay under. A socket
    /// that wrote less than `clients / max_frames_per_second` ago (at most 250 ms) waits
    /// out the rest and sends everything queued meanwhile in one go: under load each
    /// frame carries more readings; an idle socket, or a lone one, writes at once.
    pub max_frames_per_second: u32,
    /// Each dashboard socket's WebSocket read buffer (it reads only small requests).
    /// These five keys used to be taken from `[ingest]`; their defaults are the same.
    pub read_buffer_bytes: usize,
    /// Each dashboard socket's write buffer; a frame is flushed once this much is queued.
    pub write_buffer_bytes: usize,
    /// Frames a dashboard may send (subscribe requests) larger than this close its socket (1009).
    pub max_frame_bytes: usize,
    /// How often the hub pings a dashboard socket.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A dashboard socket that sent nothing (not even a pong) for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

/// `[live.history]`: the replay buffer's bounds, in readings and in age, whichever is
/// reached first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayBufferSettings {
    pub readings: usize,
    #[serde(with = "humantime_serde")]
    pub age: Duration,
}

impl Default for ReplayBufferSettings {
    fn default() -> Self {
        Self {
            readings: 1_000_000,
            age: Duration::from_secs(60),
        }
    }
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            client_queue: 1024,
            history: ReplayBufferSettings::default(),
            stuck_timeout: Duration::from_secs(10),
            max_patterns: 256,
            max_readings_per_frame: 500,
            committed_backlog: 1024,
            status_backlog: 1024,
            max_frames_per_second: 50_000,
            read_buffer_bytes: 512,
            write_buffer_bytes: 4 * 1024,
            max_frame_bytes: 64 * 1024,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl LiveSettings {
    /// Dashboard sockets' buffers, frame bound and heartbeat.
    pub fn socket(&self) -> SocketSettings {
        socket_settings!(self)
    }

    pub fn validate(&self) -> Result<(), SettingError> {
        if self.client_queue == 0
            || self.max_patterns == 0
            || self.max_readings_per_frame == 0
            || self.max_frames_per_second == 0
            || self.committed_backlog == 0
            || self.status_backlog == 0
        {
            return Err(SettingError::Rule(
                "live.client_queue, live.max_patterns, live.max_readings_per_frame, live.max_frames_per_second, live.committed_backlog and live.status_backlog must be ≥ 1",
            ));
        }
        if self.history.readings == 0 || self.history.age.is_zero() {
            return Err(SettingError::Rule(
                "live.history.readings and live.history.age must be > 0",
            ));
        }
        if self.history.readings > 100_000_000 {
            return Err(SettingError::Rule(
                "live.history.readings is at most 100,000,000",
            ));
        }
        if self.max_frame_bytes < 256 {
            return Err(SettingError::Rule("live.max_frame_bytes must be ≥ 256"));
        }
        if self.ping_interval.is_zero() || self.idle_timeout <= self.ping_interval {
            return Err(SettingError::Rule(
                "live.idle_timeout must be longer than live.ping_interval (> 0)",
            ));
        }
        Ok(())
    }
}

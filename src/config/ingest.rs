//! `[ingest]`: device sockets' limits, buffers and heartbeat.

use super::{SettingError, SocketSettings};
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
    /// Each device socket's WebSocket read buffer, kept for the socket's life (tungstenite's
    /// default of 128 KiB is far too large). A frame larger than it grows it; bursts are
    /// read ahead in 8 KiB chunks underneath (`server::read_ahead`), so a small buffer
    /// does not mean a syscall per buffer-full.
    pub read_buffer_bytes: usize,
    /// Each device socket's write buffer; frames are flushed once this much is queued or the socket is idle.
    pub write_buffer_bytes: usize,
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

impl IngestSettings {
    /// Device sockets' buffers, frame bound and heartbeat.
    pub fn socket(&self) -> SocketSettings {
        socket_settings!(self)
    }

    pub fn validate(&self) -> Result<(), SettingError> {
        if self.max_frame_bytes < 256
            || self.max_readings_per_message == 0
            || self.max_inflight_messages == 0
        {
            return Err(SettingError::Rule(
                "ingest.max_frame_bytes must be ≥ 256, and max_readings_per_message and max_inflight_messages ≥ 1",
            ));
        }
        if self.ping_interval.is_zero() || self.idle_timeout <= self.ping_interval {
            return Err(SettingError::Rule(
                "ingest.idle_timeout must be longer than ingest.ping_interval (> 0)",
            ));
        }
        Ok(())
    }
}

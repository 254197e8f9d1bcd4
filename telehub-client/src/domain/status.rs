//! Device presence: a device came online or went offline, and the transports it reaches
//! the hub over.

use super::{DeviceName, Timestamp};
use serde::{Deserialize, Serialize};

/// A device came online or went offline (a WebSocket opened or closed, or a reading over a
/// connectionless transport arrived after, or was last heard longer ago than, the presence
/// timeout).
#[derive(Debug, Clone)]
pub struct StatusEvent {
    pub device: DeviceName,
    pub online: bool,
    pub ts: Timestamp,
}

/// How a device's readings reached the hub (`transport` in `/v1/devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Its own WebSocket (`/v1/ingest`): online while the socket is open.
    Ws,
    /// `POST /v1/ingest`.
    Http,
    /// The InfluxDB line protocol (`/write`, `/api/v2/write`).
    Line,
    /// An MQTT publish.
    Mqtt,
    /// Another device that is its gateway (the serial bridge, say), on any transport.
    Gateway,
}

impl Transport {
    /// Whether the device holds a connection while online (otherwise it is online for the
    /// presence timeout after each reading).
    pub fn is_connected(self) -> bool {
        self == Transport::Ws
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Http => "http",
            Transport::Line => "line",
            Transport::Mqtt => "mqtt",
            Transport::Gateway => "gateway",
        }
    }
}

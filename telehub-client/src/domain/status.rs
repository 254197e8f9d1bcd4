//! Device presence: a device came online or went offline.

use super::{DeviceName, Timestamp};

/// A device came online or went offline (its first socket opened, its last closed).
#[derive(Debug, Clone)]
pub struct StatusEvent {
    pub device: DeviceName,
    pub online: bool,
    pub ts: Timestamp,
}

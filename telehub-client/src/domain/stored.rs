//! What the storage writer committed: readings as stored, for the live feed, MQTT
//! egress and other consumers of the commit stream.

use super::{DeviceName, Reading};
use std::sync::Arc;

/// A reading as committed.
#[derive(Debug, Clone)]
pub struct StoredReading {
    pub device: DeviceName,
    pub reading: Reading,
}

/// What one commit newly stored, in arrival order per device.
pub type CommittedBatch = Arc<Vec<StoredReading>>;

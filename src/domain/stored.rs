//! What the storage writer hands on after a commit: the readings it newly stored.
//!
//! Owns [`StoredReading`] and [`CommittedBatch`], the values the live feed, MQTT egress
//! and the cluster link receive. Uses only the rest of [`crate::domain`].

use super::{DeviceName, Reading};
use std::sync::Arc;

/// A reading as committed, for the live feed, MQTT egress and others.
#[derive(Debug, Clone)]
pub struct StoredReading {
    pub device: DeviceName,
    pub reading: Reading,
}

/// What one commit newly stored, in arrival order per device.
pub type CommittedBatch = Arc<Vec<StoredReading>>;

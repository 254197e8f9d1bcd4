//! A sealed batch of the store-and-forward buffer: what the outbox queues, the journal
//! keeps across restarts and the forwarder sends.
//!
//! Owns [`Message`]. Uses only `domain`; [`super::outbox`] and [`super::journal`] both
//! use it, so neither needs the other's types.

use crate::domain::{DeviceName, Reading};
use tokio::time::Instant;

/// A sealed batch: one protocol.md §2 message for one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: u64,
    /// `None`: the gateway's own readings (no `device` field).
    pub device: Option<DeviceName>,
    pub readings: Vec<Reading>,
    /// When it was written to the current connection; `None` while waiting to be sent.
    pub sent_at: Option<Instant>,
}

//! Domain types: the typed values every untrusted input is parsed into at the edge.
//!
//! Owns the name rules (devices, sensors), units, timestamps and the validated
//! [`Reading`], and what a commit stored ([`StoredReading`], [`CommittedBatch`]).
//! Nothing outside this module constructs these types without going through their
//! parsers, so the rest of the hub can rely on them being valid. The bottom layer: it
//! uses nothing else of the crate.

mod name;
mod stored;
mod time;

pub use name::{DeviceName, NameError, SensorName, Unit};
pub use stored::{CommittedBatch, StoredReading};
pub use time::{EARLIEST_DEVICE_TS, TimeError, Timestamp, parse_duration, parse_time_arg};

/// One validated sensor reading, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub sensor: SensorName,
    /// Always finite.
    pub value: f64,
    pub ts: Timestamp,
    pub unit: Option<Unit>,
}

//! Domain types: the typed values every untrusted input is parsed into at the edge.
//!
//! Owns the name rules (devices, sensors), `DEVICE/SENSOR` patterns (one type, the live
//! feed's and the alert rules' grammars), units, timestamps, values (protocol.md §8) and the
//! validated [`Reading`], and what an operator says about a device ([`Description`],
//! [`Location`]) and the [`Labels`] it carries. Nothing outside this module constructs these types without going
//! through their parsers, so the rest of the hub can rely on them being valid.
//! Also what flows after storage: [`StoredReading`] and [`CommittedBatch`] (the commit
//! stream), [`StatusEvent`] (device presence) and [`AlertEvent`] (alert changes).
//! And [`untrusted`]: how a value someone else chose may appear in a log line.
//!
//! May use: nothing else in the crate (layer 1).

mod about;
mod alert;
mod labels;
mod name;
mod pattern;
mod status;
mod stored;
mod time;
mod untrusted;
mod value;

pub use about::{AboutError, Description, Location, MAX_DESCRIPTION_CHARS};
pub use alert::{AlertEvent, AlertState};
pub use labels::{
    LabelError, LabelKey, LabelValue, Labels, MAX_LABEL_KEY_CHARS, MAX_LABEL_VALUE_CHARS,
    MAX_LABELS, PRESENCE_TIMEOUT, PRESENCE_TIMEOUT_RANGE, parse_pair,
};
pub use name::{DeviceName, NameError, SensorName, Unit};
pub use pattern::{Pattern, PatternError, PatternWhy, Segment, SegmentError};
pub use status::{StatusEvent, Transport};
pub use stored::{CommittedBatch, StoredReading};
pub use time::{EARLIEST_DEVICE_TS, TimeError, Timestamp, parse_duration, parse_time_arg};
pub use untrusted::{MAX_LOGGED_CHARS, Untrusted, untrusted};
pub use value::{MAX_MAGNITUDE, MAX_TEXT_BYTES, Text, Value, ValueError, ValueKind};

/// One validated sensor reading, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub sensor: SensorName,
    pub value: Value,
    pub ts: Timestamp,
    pub unit: Option<Unit>,
}

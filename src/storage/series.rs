//! The writer's cache of time series: id, unit, value type and the newest committed
//! timestamp per (device, sensor), and the ids of string values. Only the writer task owns it; it changes only after a commit.
//!
//! The newest timestamp lets the writer tell *fresh* rows (newer than anything stored:
//! they cannot be duplicates, so they are inserted in bulk) from rows that may repeat
//! a stored reading (resends, late data: inserted so as to learn which were new).
//!
//! Owns [`SeriesCache`], [`SeriesKey`] and [`SeriesState`]; the commit path
//! ([`super::commit`]) reads it and the writer applies what a commit learned. Uses only
//! [`crate::domain`].

use crate::domain::{SensorName, Text, Unit, ValueKind};
use std::collections::HashMap;

/// A series' identity before it has an id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub device_id: i64,
    pub sensor: SensorName,
}

/// What the writer knows of a committed series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesState {
    pub id: i64,
    pub unit: Option<Unit>,
    /// The type of its values; an empty series takes the type of its next reading.
    pub kind: ValueKind,
    /// Newest stored timestamp (µs), `i64::MIN` when the series is empty.
    pub max_ts: i64,
}

impl SeriesState {
    /// The type its readings must have, when it holds any.
    pub fn fixed_kind(&self) -> Option<ValueKind> {
        (self.max_ts != i64::MIN).then_some(self.kind)
    }
}

/// Committed series state, bounded: when full, it is cleared and refilled on demand.
#[derive(Debug, Default)]
pub struct SeriesCache {
    map: HashMap<SeriesKey, SeriesState>,
    /// Ids of committed string values (`text_values`); they never change.
    texts: HashMap<Text, i64>,
    capacity: usize,
}

impl SeriesCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            texts: HashMap::new(),
            capacity: capacity.max(1),
        }
    }
    pub fn get(&self, key: &SeriesKey) -> Option<&SeriesState> {
        self.map.get(key)
    }
    /// The id of a committed string value, when known.
    pub fn text_id(&self, text: &Text) -> Option<i64> {
        self.texts.get(text).copied()
    }
    /// Remembers the ids of string values a commit stored or looked up.
    pub fn apply_texts(&mut self, texts: impl IntoIterator<Item = (Text, i64)>) {
        for (t, id) in texts {
            if self.texts.len() >= self.capacity && !self.texts.contains_key(&t) {
                self.texts.clear();
            }
            self.texts.insert(t, id);
        }
    }
    /// Applies what a committed transaction learned.
    pub fn apply(&mut self, updates: impl IntoIterator<Item = (SeriesKey, SeriesState)>) {
        for (k, v) in updates {
            if self.map.len() >= self.capacity && !self.map.contains_key(&k) {
                self.map.clear();
            }
            self.map.insert(k, v);
        }
    }
}

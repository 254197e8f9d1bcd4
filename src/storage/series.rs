//! The writer's cache of time series: id, unit and the newest committed timestamp
//! per (device, sensor). Only the writer task owns it; it changes only after a commit.
//!
//! The newest timestamp lets the writer tell *fresh* rows (newer than anything stored:
//! they cannot be duplicates, so they are inserted in bulk) from rows that may repeat
//! a stored reading (resends, late data: inserted so as to learn which were new).
//!
//! Owns [`SeriesCache`], [`SeriesKey`] and [`SeriesState`]; the commit path
//! ([`super::commit`]) reads it and the writer applies what a commit learned. Uses only
//! [`crate::domain`].

use crate::domain::{SensorName, Unit};
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
    /// Newest stored timestamp (µs), `i64::MIN` when the series is empty.
    pub max_ts: i64,
}

/// Committed series state, bounded: when full, it is cleared and refilled on demand.
#[derive(Debug, Default)]
pub struct SeriesCache {
    map: HashMap<SeriesKey, SeriesState>,
    capacity: usize,
}

impl SeriesCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }
    pub fn get(&self, key: &SeriesKey) -> Option<&SeriesState> {
        self.map.get(key)
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

//! A batch of readings as one writer transaction stores it: rows grouped by series,
//! type checks, the split into fresh and possibly repeated rows, and what the writer
//! learns once it is committed ([`AfterCommit`]).
//!
//! Owns [`Batch`] and [`AfterCommit`]. Pure: the statements that store a batch are
//! [`super::commit`]'s. Uses [`super::series`], [`super::open_buckets`] and
//! [`crate::domain`].

use super::RowValues;
use super::open_buckets::{OpenBuckets, Staged};
use super::series::{SeriesCache, SeriesKey, SeriesState};
use crate::auth::DeviceRef;
use crate::domain::{Reading, SensorName, Text, Timestamp, Unit, Value, ValueKind};
use std::collections::HashMap;

/// One row of a batch: its series (an index into [`Batch`]'s series), time and value as
/// stored (a number, 0/1 for a boolean, a `text_values` id for a string), its type, and
/// where it came from (the request, and its position there).
#[derive(Debug)]
struct BatchRow {
    key: usize,
    ts: i64,
    value: f64,
    kind: ValueKind,
    /// A string value whose id is not known yet.
    text: Option<Text>,
    request: usize,
    position: usize,
}

/// A batch of readings as one transaction writes it.
#[derive(Default)]
pub(crate) struct Batch {
    /// Distinct series of the batch, the unit it carries for each, and what is known of
    /// each (`None` until resolved).
    keys: Vec<(SeriesKey, Option<Unit>, Option<SeriesState>)>,
    rows: Vec<BatchRow>,
    /// Devices of the batch, for `last_seen`, and the commit time.
    pub(super) touched: Vec<i64>,
    pub(super) now_us: i64,
    /// Write every open rollup bucket (idle writer, shutdown, or no holding back).
    pub(super) flush_rollups: bool,
    /// What this transaction does to the rollups, once staged.
    pub(super) staged: Option<Staged>,
    /// Per request: why it was refused (a reading of another type than its series').
    refused: Vec<Option<String>>,
    /// String values this transaction stored or looked up, with their ids.
    pub(super) texts: Vec<(Text, i64)>,
    /// `[limits] max_series_per_device`.
    max_series: usize,
}

impl Batch {
    /// Groups `rows` (request index, position in it, device, reading) by series;
    /// `flush_rollups` writes every open rollup bucket.
    pub fn new<'a>(
        cache: &SeriesCache,
        rows: impl Iterator<Item = (usize, usize, &'a DeviceRef, &'a Reading)>,
        requests: usize,
        flush_rollups: bool,
        max_series: usize,
    ) -> Self {
        let mut index: HashMap<(i64, &SensorName), usize> = HashMap::new();
        let (mut keys, mut out, mut touched) = (Vec::new(), Vec::new(), Vec::new());
        for (request, position, dev, r) in rows {
            let k = *index.entry((dev.id, &r.sensor)).or_insert_with(|| {
                let key = SeriesKey {
                    device_id: dev.id,
                    sensor: r.sensor.clone(),
                };
                let state = cache.get(&key).cloned();
                keys.push((key, None, state));
                if !touched.contains(&dev.id) {
                    touched.push(dev.id);
                }
                keys.len() - 1
            });
            if r.unit.is_some() {
                keys[k].1 = r.unit.clone();
            }
            let (value, text) = match &r.value {
                Value::Number(v) => (*v, None),
                Value::Bool(b) => (f64::from(u8::from(*b)), None),
                Value::Text(t) => match cache.text_id(t) {
                    Some(id) => (id as f64, None),
                    None => (f64::NAN, Some(t.clone())),
                },
            };
            out.push(BatchRow {
                key: k,
                ts: r.ts.as_micros(),
                value,
                kind: r.value.kind(),
                text,
                request,
                position,
            });
        }
        Self {
            keys,
            rows: out,
            touched,
            now_us: Timestamp::now().as_micros(),
            flush_rollups,
            staged: None,
            refused: vec![None; requests],
            texts: Vec::new(),
            max_series,
        }
    }

    /// Why each request was refused, if it was (in request order).
    pub fn refusals(&self) -> Vec<Option<String>> {
        self.refused.clone()
    }

    fn accepted(&self, r: &BatchRow) -> bool {
        self.refused[r.request].is_none()
    }

    /// The devices of the series `keys` (indexes into the batch's series), each once.
    pub(super) fn devices_of(&self, keys: &[usize]) -> Vec<i64> {
        let mut out: Vec<i64> = keys.iter().map(|&k| self.keys[k].0.device_id).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether an accepted request has a reading of series `key`.
    pub(super) fn needed(&self, key: usize) -> bool {
        self.rows.iter().any(|r| r.key == key && self.accepted(r))
    }

    /// Refuses, in request order, every request that would give its device more than
    /// `max_series` series. `new` are the series not stored yet (indexes into the batch's
    /// series), `count` how many each of their devices has. A refused request creates none.
    pub(super) fn limit_new_series(&mut self, new: &[usize], mut count: HashMap<i64, usize>) {
        let mut is_new = vec![false; self.keys.len()];
        for &k in new {
            is_new[k] = true;
        }
        // Per request: its first reading of each new series (key, position).
        let mut needs: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.refused.len()];
        for r in self.rows.iter().filter(|r| is_new[r.key]) {
            if !needs[r.request].iter().any(|(k, _)| *k == r.key) {
                needs[r.request].push((r.key, r.position));
            }
        }
        let mut admitted = vec![false; self.keys.len()];
        for (request, keys) in needs.into_iter().enumerate() {
            if self.refused[request].is_some() {
                continue;
            }
            let fresh: Vec<(usize, usize)> =
                keys.into_iter().filter(|(k, _)| !admitted[*k]).collect();
            let mut after = count.clone();
            let over = fresh.iter().find(|(k, _)| {
                let n = after.entry(self.keys[*k].0.device_id).or_default();
                *n += 1;
                *n > self.max_series
            });
            if let Some(&(k, position)) = over {
                self.refused[request] = Some(format!(
                    "readings[{position}].sensor: {} would be a new series, and a device may have at most {} \
                     (`[limits] max_series_per_device`); send this reading under an existing sensor name, \
                     or ask the hub's operator to raise the limit",
                    self.keys[k].0.sensor, self.max_series
                ));
                continue;
            }
            count = after;
            for (k, _) in fresh {
                admitted[k] = true;
            }
        }
    }

    /// Refuses every request with a reading whose type is not its series' (a series
    /// that holds readings keeps its type; an empty one takes the type of its first
    /// accepted reading, so refusing a request may change it: repeat until stable).
    /// Returns the series whose stored type must change.
    pub(super) fn check_kinds(&mut self) -> Vec<(i64, ValueKind)> {
        // A series left unresolved is one only refused requests name (a new series past
        // the device's limit): it has no type, and none of its rows is looked at.
        loop {
            let mut kinds: Vec<Option<ValueKind>> = (self.keys.iter())
                .map(|k| k.2.as_ref().and_then(SeriesState::fixed_kind))
                .collect();
            for r in self
                .rows
                .iter()
                .filter(|r| self.refused[r.request].is_none())
            {
                kinds[r.key].get_or_insert(r.kind);
            }
            let mut changed = false;
            for r in &self.rows {
                if self.refused[r.request].is_some() {
                    continue;
                }
                let want = kinds[r.key].expect("an accepted row gave its series a kind");
                if want != r.kind {
                    let sensor = &self.keys[r.key].0.sensor;
                    self.refused[r.request] = Some(format!(
                        "readings[{}].value: sensor {sensor} holds {want} values and this is a {}; \
                         send a {want}, or use another sensor name",
                        r.position, r.kind
                    ));
                    changed = true;
                }
            }
            if !changed {
                let mut retyped = Vec::new();
                for (k, kind) in self.keys.iter_mut().zip(kinds) {
                    let Some(s) = k.2.as_mut() else { continue };
                    if let Some(kind) = kind.filter(|kind| *kind != s.kind) {
                        s.kind = kind;
                        retyped.push((s.id, kind));
                    }
                }
                return retyped;
            }
        }
    }

    /// Distinct string values of accepted rows whose ids are not known yet.
    pub(super) fn unknown_texts(&self) -> Vec<Text> {
        let mut out: Vec<Text> = Vec::new();
        for r in self.rows.iter().filter(|r| self.accepted(r)) {
            if let Some(t) = &r.text
                && !out.contains(t)
            {
                out.push(t.clone());
            }
        }
        out
    }

    /// Stores the ids learned by [`Batch::unknown_texts`]'s lookups in their rows.
    pub(super) fn fill_text_ids(&mut self) {
        if self.texts.is_empty() {
            return;
        }
        let ids: HashMap<&Text, i64> = self.texts.iter().map(|(t, id)| (t, *id)).collect();
        for r in &mut self.rows {
            if let Some(id) = r.text.as_ref().and_then(|t| ids.get(t)) {
                r.value = *id as f64;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Series not yet known to the cache, with the unit this batch carries for them and
    /// the type of their first reading in it.
    pub(super) fn unresolved(&self) -> Vec<(usize, SeriesKey, Option<String>, ValueKind)> {
        (self.keys.iter().enumerate())
            .filter(|(_, k)| k.2.is_none())
            .map(|(i, k)| {
                let unit = k.1.as_ref().map(|u| u.as_str().to_owned());
                let kind = self.rows.iter().find(|r| r.key == i).map(|r| r.kind);
                (i, k.0.clone(), unit, kind.unwrap_or(ValueKind::Number))
            })
            .collect()
    }

    pub(super) fn resolve(&mut self, index: usize, id: i64, kind: ValueKind, max_ts: Option<i64>) {
        let unit = self.keys[index].1.clone();
        self.keys[index].2 = Some(SeriesState {
            id,
            unit,
            kind,
            max_ts: max_ts.unwrap_or(i64::MIN),
        });
    }

    /// Known series whose unit this batch changes: (series id, new unit).
    pub(super) fn unit_changes(&self) -> Vec<(i64, String)> {
        self.keys
            .iter()
            .filter_map(|(_, unit, state)| {
                let (unit, state) = (unit.as_ref()?, state.as_ref()?);
                (state.unit.as_ref() != Some(unit)).then(|| (state.id, unit.as_str().to_owned()))
            })
            .collect()
    }

    /// Newest stored time per series, as known before this batch.
    fn newest(&self) -> Vec<i64> {
        (self.keys.iter())
            .map(|k| k.2.as_ref().map_or(i64::MIN, |s| s.max_ts))
            .collect()
    }

    /// Splits rows into *fresh* ones (newer than anything stored or earlier in the batch,
    /// so certainly new) and ones that may repeat a stored reading, with their row index.
    pub(super) fn split_rows(&self) -> (Vec<RowValues>, Vec<(usize, RowValues)>) {
        let mut newest = self.newest();
        let (mut fresh, mut maybe) = (Vec::with_capacity(self.rows.len()), Vec::new());
        for (i, r) in self.rows.iter().enumerate() {
            if !self.accepted(r) {
                continue;
            }
            let series = self.keys[r.key]
                .2
                .as_ref()
                .expect("series resolved before split")
                .id;
            let v = RowValues {
                series,
                ts: r.ts,
                value: r.value,
            };
            if r.ts > newest[r.key] {
                newest[r.key] = r.ts;
                fresh.push(v);
            } else {
                maybe.push((i, v));
            }
        }
        // Key order, (series, ts): each series' fresh rows already rise in time. Inserts
        // then walk the index in order, as a sorted bulk load does.
        fresh.sort_by_key(|r| r.series);
        (fresh, maybe)
    }

    /// Inserted flags in row order, given which maybe-rows (by row index) were inserted.
    pub(super) fn inserted_flags(
        &self,
        maybe: &[(usize, RowValues)],
        maybe_inserted: &[bool],
    ) -> Vec<bool> {
        let mut flags: Vec<bool> = self.rows.iter().map(|r| self.accepted(r)).collect();
        for ((i, _), ok) in maybe.iter().zip(maybe_inserted) {
            flags[*i] = *ok;
        }
        flags
    }

    /// What the writer applies to its state once this batch is committed.
    pub fn after_commit(self) -> AfterCommit {
        let mut newest = self.newest();
        for r in self
            .rows
            .iter()
            .filter(|r| self.refused[r.request].is_none())
        {
            newest[r.key] = newest[r.key].max(r.ts);
        }
        let series = (self.keys.into_iter().zip(newest))
            .filter_map(|((key, unit, state), max_ts)| {
                let mut s = state?;
                s.max_ts = max_ts;
                if unit.is_some() {
                    s.unit = unit;
                }
                Some((key, s))
            })
            .collect();
        AfterCommit {
            series,
            texts: self.texts,
            staged: self.staged,
        }
    }
}

/// What a committed batch changes in the writer's own state.
pub(crate) struct AfterCommit {
    /// Series ids, units and newest times, for the [`SeriesCache`].
    series: Vec<(SeriesKey, SeriesState)>,
    /// Ids of string values, for the [`SeriesCache`].
    texts: Vec<(Text, i64)>,
    /// The rollup changes, for the [`OpenBuckets`].
    staged: Option<Staged>,
}

impl AfterCommit {
    pub fn apply(self, cache: &mut SeriesCache, open: Option<&mut OpenBuckets>) {
        cache.apply(self.series);
        cache.apply_texts(self.texts);
        if let (Some(open), Some(staged)) = (open, self.staged) {
            open.apply(staged);
        }
    }
}

//! The commit path: one transaction for a batch of the writer's requests, top to bottom.
//!
//! 1. [`Batch::new`] groups the rows by series, using the writer's series cache.
//! 2. In one transaction ([`store_batch`]): resolve the series the cache does not know and
//!    store unit changes; insert the rows — *fresh* ones (newer than anything stored)
//!    in bulk, in key order, the ones that may repeat a stored reading so as to learn
//!    which were new (those a compressed block already holds are not inserted); stage the rollups of what was inserted ([`OpenBuckets::stage`]);
//!    then end the transaction with [`CommitTx::finish`]: write the rollup rows and, when
//!    they change, the horizons; touch `last_seen` of every device of the batch — and, when
//!    no row of the batch may repeat a stored one, insert the fresh rows there too (the
//!    common case: PostgreSQL then sends one statement for all of it); commit.
//! 3. Afterwards the writer applies [`super::batch::AfterCommit`] to its own state
//!    (series cache, open rollup buckets). A failed commit changes neither.
//!
//! The sequence is written once, over [`CommitTx`]: the statements of one transaction.
//! Each backend implements it (`super::sqlite_commit`, `super::pg_commit`) and
//! [`super::committer`] picks the backend and runs the sequence on it.
//!
//! Owns [`CommitTx`], [`store_batch`] and the SQL both backends share here. Uses
//! [`super::batch`], [`super::rollup`], [`super::open_buckets`] and [`super::horizons`];
//! no backend module: the arrows point from the backends to here, never back.

use super::batch::Batch;
use super::blocks::codec;
use super::horizons::RollupState;
use super::open_buckets::OpenBuckets;
use super::rollup::{Level, RollupDelta, RollupRow};
use super::series::SeriesKey;
use super::{RowValues, StorageError};
use crate::domain::ValueKind;
use std::collections::{HashMap, HashSet};

/// Gives an empty series its value type (`$1` kind, `$2` series id).
pub const SET_KIND: &str = "UPDATE series SET kind = $1 WHERE id = $2";
/// Stores a series' unit (`$1` unit, `$2` series id).
pub const SET_UNIT: &str = "UPDATE series SET unit = $1 WHERE id = $2";
/// Stores a string value, or finds it, and returns its id (`$1` the text).
pub const TEXT_ID: &str = "INSERT INTO text_values (text) VALUES ($1)
     ON CONFLICT (text) DO UPDATE SET text = excluded.text RETURNING id";
/// How many series a device has (`$1` device id).
pub const SERIES_OF_DEVICE: &str = "SELECT count(*) FROM series WHERE device_id = $1";
/// Whether a series exists (`$1` device id, `$2` sensor).
pub const SERIES_EXISTS: &str = "SELECT count(*) FROM series WHERE device_id = $1 AND sensor = $2";
/// The blocks of a series overlapping a time range (`$1` series, `$2` low, `$3` high;
/// in order of appearance, as the SQLite writer's connection binds them).
pub const BLOCKS_BETWEEN: &str = "SELECT start_ts, end_ts, data FROM reading_blocks
     WHERE series_id = $1 AND end_ts >= $2 AND start_ts <= $3";
/// Stores the rollup horizons (`$1` minute, `$2` hour).
pub const SET_HORIZONS: &str = "UPDATE rollup_state SET minute_horizon = $1, hour_horizon = $2";

/// The statements of one writer transaction, in the order [`store_batch`] runs them.
/// Errors are the backend's, as [`StorageError`].
#[allow(async_fn_in_trait)]
pub(crate) trait CommitTx {
    /// Creates the series `key` if needed (of value type `kind`; setting its unit when
    /// `unit` is given) and returns its id, its value type and its newest stored timestamp.
    async fn resolve_series(
        &mut self,
        key: &SeriesKey,
        unit: Option<&str>,
        kind: &str,
    ) -> Result<(i64, String, Option<i64>), StorageError>;
    /// Runs [`SET_KIND`], [`SET_UNIT`] or [`SET_HORIZONS`]: `sql` with a text or
    /// integer `$1` and an integer `$2`.
    async fn update(
        &mut self,
        sql: &'static str,
        first: Param<'_>,
        second: i64,
    ) -> Result<(), StorageError>;
    /// [`TEXT_ID`]: the id of a string value.
    async fn text_id(&mut self, text: &str) -> Result<i64, StorageError>;
    /// Runs [`SERIES_OF_DEVICE`] (no `sensor`) or [`SERIES_EXISTS`]: a count.
    async fn count_series(
        &mut self,
        sql: &'static str,
        device_id: i64,
        sensor: Option<&str>,
    ) -> Result<i64, StorageError>;
    /// Inserts rows newer than anything stored for their series (so not duplicates);
    /// returns how many were inserted.
    async fn insert_fresh(&mut self, rows: &[RowValues]) -> Result<u64, StorageError>;
    /// [`BLOCKS_BETWEEN`]: the compressed blocks of `series` overlapping `[lo, hi]`, as
    /// (start, end, data). PostgreSQL first claims the series `FOR SHARE`, so a
    /// compaction step of it (which claims it `FOR UPDATE`) finishes before or after
    /// this transaction, never between this look and the insert.
    async fn blocks_between(
        &mut self,
        series: i64,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>, StorageError>;
    /// Inserts rows that may repeat stored readings; returns, per row, whether it was
    /// new (of several equal keys, the first is the one stored).
    async fn insert_maybe(
        &mut self,
        rows: &[(usize, RowValues)],
    ) -> Result<Vec<bool>, StorageError>;
    /// Combines `rows` (one per series and bucket) into `level`'s rollup table.
    async fn upsert_rollups(
        &mut self,
        level: Level,
        rows: &[RollupRow],
    ) -> Result<(), StorageError>;
    /// Sets `last_seen_us` of the devices `ids` to `now_us`.
    async fn touch_devices(&mut self, ids: &[i64], now_us: i64) -> Result<(), StorageError>;
    /// The transaction's last statements, [`Finish`]: returns how many of its fresh rows
    /// were inserted. By default one statement after the other (fresh rows, rollups,
    /// horizons, `last_seen`); a backend may fold them into fewer round trips.
    async fn finish(&mut self, end: &Finish<'_>) -> Result<u64, StorageError> {
        let inserted = self.insert_fresh(end.fresh).await?;
        for (level, rows) in end.rollups {
            if !rows.is_empty() {
                self.upsert_rollups(level, rows).await?;
            }
        }
        if let Some([minute, hour]) = end.horizons {
            self.update(SET_HORIZONS, Param::Int(minute), hour).await?;
        }
        self.touch_devices(end.touched, end.now_us).await?;
        Ok(inserted)
    }
}

/// What a writer transaction writes last, after its readings that may repeat stored ones.
/// Nothing in it reads what another part writes, so a backend may run the parts in any
/// order, or as one statement.
pub(crate) struct Finish<'a> {
    /// Fresh rows not inserted yet (empty when they already were).
    pub fresh: &'a [RowValues],
    /// Rollup rows to combine into each level's table (one per series and bucket).
    pub rollups: [(Level, &'a [RollupRow]); 2],
    /// (minute, hour) horizons to store in `rollup_state`, when they change.
    pub horizons: Option<[i64; 2]>,
    /// Devices whose `last_seen_us` becomes `now_us`.
    pub touched: &'a [i64],
    pub now_us: i64,
}

/// Per row, whether a compressed block of its series already holds its timestamp: one
/// look per series (at the blocks over its rows' time span), each block decoded once.
async fn in_blocks(
    tx: &mut impl CommitTx,
    rows: &[(usize, RowValues)],
) -> Result<Vec<bool>, StorageError> {
    let mut spans: HashMap<i64, (i64, i64)> = HashMap::new();
    for (_, r) in rows {
        let span = spans.entry(r.series).or_insert((r.ts, r.ts));
        *span = (span.0.min(r.ts), span.1.max(r.ts));
    }
    let mut held: HashSet<(i64, i64)> = HashSet::new();
    for (series, (lo, hi)) in spans {
        for (_, _, data) in tx.blocks_between(series, lo, hi).await? {
            let block = codec::decode(&data)?;
            held.extend(block.ts.iter().map(|&t| (series, t)));
        }
    }
    Ok(rows
        .iter()
        .map(|(_, r)| held.contains(&(r.series, r.ts)))
        .collect())
}

/// The first parameter of [`CommitTx::update`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// Runs a batch's statements in `tx` (which the caller commits); returns, per row in
/// order, whether it was newly stored. `open` are the writer's open rollup buckets
/// (`None`: rollups off), `rollups` this process's view of the horizons.
pub(crate) async fn store_batch(
    tx: &mut impl CommitTx,
    batch: &mut Batch,
    open: Option<&OpenBuckets>,
    rollups: &RollupState,
) -> Result<Vec<bool>, StorageError> {
    // Series: a device gets new ones up to `[limits] max_series_per_device` (a request
    // that would pass it is refused whole), then ids of the new ones, then units that changed.
    let unresolved = batch.unresolved();
    let mut new = Vec::new();
    for (i, key, _, _) in &unresolved {
        let known = tx
            .count_series(SERIES_EXISTS, key.device_id, Some(key.sensor.as_str()))
            .await?;
        if known == 0 {
            new.push(*i);
        }
    }
    if !new.is_empty() {
        let mut room = std::collections::HashMap::new();
        for device in batch.devices_of(&new) {
            let n = tx.count_series(SERIES_OF_DEVICE, device, None).await?;
            room.insert(device, n.max(0) as usize);
        }
        batch.limit_new_series(&new, room);
    }
    for (i, key, unit, kind) in unresolved {
        if !batch.needed(i) {
            continue;
        }
        let (id, kind, max_ts) = tx
            .resolve_series(&key, unit.as_deref(), kind.as_str())
            .await?;
        let kind = ValueKind::parse(&kind).unwrap_or(ValueKind::Number);
        batch.resolve(i, id, kind, max_ts);
    }
    // Types: refuse requests whose readings do not match their series; an empty
    // series takes the type of its first accepted reading.
    for (id, kind) in batch.check_kinds() {
        tx.update(SET_KIND, Param::Text(kind.as_str()), id).await?;
    }
    for text in batch.unknown_texts() {
        let id = tx.text_id(text.as_str()).await?;
        batch.texts.push((text, id));
    }
    batch.fill_text_ids();
    for (id, unit) in batch.unit_changes() {
        tx.update(SET_UNIT, Param::Text(&unit), id).await?;
    }
    // Readings. With none that may repeat a stored one (the common case), the fresh rows
    // are inserted by `finish`, with the rollups and `last_seen`: they depend on nothing
    // the insert learns.
    let (fresh, maybe) = batch.split_rows();
    let deferred = maybe.is_empty();
    let mut inserted = if deferred {
        0
    } else {
        tx.insert_fresh(&fresh).await?
    };
    // Rows that may repeat a reading: those already in a compressed block count as
    // stored and change nothing (the first stored value wins); the others are inserted.
    let compressed = in_blocks(tx, &maybe).await?;
    let hot: Vec<(usize, RowValues)> = maybe
        .iter()
        .zip(&compressed)
        .filter(|(_, c)| !**c)
        .map(|(r, _)| *r)
        .collect();
    let mut hot_inserted = tx.insert_maybe(&hot).await?.into_iter();
    let maybe_inserted: Vec<bool> = compressed
        .iter()
        .map(|&c| !c && hot_inserted.next().unwrap_or(false))
        .collect();
    // Rollups of what was inserted, and the horizons.
    let none: &[RollupRow] = &[];
    let mut end = Finish {
        fresh: if deferred { &fresh } else { &[] },
        rollups: [(Level::Minute, none), (Level::Hour, none)],
        horizons: None,
        touched: &batch.touched,
        now_us: batch.now_us,
    };
    if let Some(open) = open {
        let delta = RollupDelta::of_inserted(&fresh, &maybe, &maybe_inserted);
        let staged = batch
            .staged
            .insert(open.stage(&delta, batch.now_us, batch.flush_rollups));
        end.rollups = staged.levels();
        end.horizons = staged.store_horizons;
        // Queries stop reading rollups where buckets will be held back before this
        // commit is visible (lower is always exact).
        rollups.lower_horizons(staged.horizons());
    }
    let finished = tx.finish(&end).await?;
    if deferred {
        inserted = finished;
    }
    if inserted as usize != fresh.len() {
        tracing::warn!(
            expected = fresh.len(),
            inserted,
            "another writer stored some of these readings first; rollups may count them twice"
        );
    }
    Ok(batch.inserted_flags(&maybe, &maybe_inserted))
}

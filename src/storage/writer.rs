//! The storage writer: the one task per hub that writes readings.
//!
//! Channel: every ingest connection (and bridge) holds a [`WriterHandle`] and sends
//! [`WriteRequest`]s into one bounded queue; the writer task receives them. When the
//! queue is full, senders wait — so device sockets stop being read and memory stays
//! bounded. At shutdown, once every socket has finished, the hub closes the queue; the
//! writer commits what is left and ends (that is what "flushed" means at shutdown).
//!
//! Group commit: the writer takes every request already queued (up to
//! `max_batch_rows`, lingering at most `linger` for more), writes them in one
//! transaction, then answers each request. After a commit, the rows that were really
//! new are published on a broadcast channel for the live feed and other consumers.
//!
//! Rollups: the writer holds each series' open rollup buckets back (see
//! [`super::pending`]) and writes them as they close; when it has been idle for
//! [`IDLE_FLUSH`], and when it stops, it writes all of them. On PostgreSQL, where the
//! hubs of a cluster each run a writer, every commit writes its rollup rows.

use super::pending::{NO_HORIZON, OpenBuckets, Staged};
use super::rollup::RollupDelta;
use super::series::{SeriesCache, SeriesKey, SeriesState};
use super::{RowValues, StorageError, Store};
use crate::auth::DeviceRef;
use crate::config::WriterSettings;
use crate::domain::{Reading, SensorName, Timestamp, Unit};
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// After this long without a request, the writer writes the rollup buckets it holds back.
pub const IDLE_FLUSH: Duration = Duration::from_secs(1);

/// Why a write was not committed: storage is unavailable; the device should resend later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WriteFailed(pub String);

/// One message's readings, all for devices already authorised.
pub struct WriteRequest {
    pub rows: Vec<(DeviceRef, Reading)>,
    /// Receives how many readings are stored (all of them) once committed.
    pub done: oneshot::Sender<Result<usize, WriteFailed>>,
}

// Moved to the domain layer; kept here until every user imports them from there.
pub use crate::domain::{CommittedBatch, StoredReading};

/// The sending side of the writer queue.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<WriteRequest>,
}

impl WriterHandle {
    /// Queues a write, waiting while the queue is full; the receiver resolves after commit.
    pub async fn submit(
        &self,
        rows: Vec<(DeviceRef, Reading)>,
    ) -> oneshot::Receiver<Result<usize, WriteFailed>> {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.tx.send(WriteRequest { rows, done }).await {
            let _ =
                e.0.done
                    .send(Err(WriteFailed("the hub is shutting down".into())));
        }
        rx
    }
    /// Requests queued and not yet taken by the writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Starts the writer task. It ends once `close` is cancelled (or every [`WriterHandle`]
/// is dropped) and the requests already queued are committed. With `rollups`, each
/// transaction also updates the rollups (see [`super::rollup`]); the caller has made them
/// complete first ([`Store::prepare_rollups`]).
pub fn spawn(
    store: Store,
    settings: WriterSettings,
    rollups: bool,
    metrics: Arc<Metrics>,
    committed: broadcast::Sender<CommittedBatch>,
    close: CancellationToken,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    let handle = WriterHandle { tx };
    let hold_back = store.single_writer();
    let task = tokio::spawn(
        Writer {
            store,
            settings,
            metrics,
            committed,
            cache: SeriesCache::new(1_000_000),
            open: rollups.then(|| OpenBuckets::new([NO_HORIZON; 2])),
            hold_back,
        }
        .run(rx, close),
    );
    (handle, task)
}

struct Writer {
    store: Store,
    settings: WriterSettings,
    metrics: Arc<Metrics>,
    committed: broadcast::Sender<CommittedBatch>,
    cache: SeriesCache,
    /// Open rollup buckets held back; `None` with rollups off.
    open: Option<OpenBuckets>,
    /// Whether buckets may be held back at all ([`Store::single_writer`]); if not, every
    /// commit writes its rollup rows.
    hold_back: bool,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<WriteRequest>, close: CancellationToken) {
        let mut closing = false;
        loop {
            let first = tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
                // Stop taking new requests; what is queued is still committed below.
                _ = close.cancelled(), if !closing => {
                    closing = true;
                    rx.close();
                    continue;
                }
                _ = tokio::time::sleep(IDLE_FLUSH), if self.holds_back() => {
                    if !self.commit(Vec::new(), true).await {
                        tokio::time::sleep(self.settings.retry_backoff).await;
                    }
                    continue;
                }
            };
            let batch = self.gather(first, &mut rx).await;
            self.metrics.write_queue_depth.set((rx.len()) as i64);
            if !self.commit(batch, false).await {
                tokio::time::sleep(self.settings.retry_backoff).await;
            }
        }
        // Unwritten, they would be rebuilt from raw readings at the next start.
        if self.holds_back() {
            self.commit(Vec::new(), true).await;
        }
        tracing::debug!("storage writer: queue closed, all writes flushed");
    }

    fn holds_back(&self) -> bool {
        self.open.as_ref().is_some_and(|o| !o.is_empty())
    }

    /// Collects queued requests after `first`, up to `max_batch_rows`, lingering at most `linger`.
    async fn gather(
        &self,
        first: WriteRequest,
        rx: &mut mpsc::Receiver<WriteRequest>,
    ) -> Vec<WriteRequest> {
        let deadline = tokio::time::Instant::now() + self.settings.linger;
        let mut rows = first.rows.len();
        let mut batch = vec![first];
        while rows < self.settings.max_batch_rows {
            let next = match rx.try_recv() {
                Ok(r) => r,
                Err(mpsc::error::TryRecvError::Empty) if !self.settings.linger.is_zero() => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(r)) => r,
                        _ => break,
                    }
                }
                Err(_) => break,
            };
            rows += next.rows.len();
            batch.push(next);
        }
        batch
    }

    /// Commits one batch and answers every request in it; false when storage failed.
    /// With `flush_rollups`, also writes every rollup bucket held back.
    async fn commit(&mut self, batch: Vec<WriteRequest>, flush_rollups: bool) -> bool {
        let started = Instant::now();
        let mut prepared = PreparedBatch::new(&self.cache, &batch, self.open.as_ref());
        prepared.flush_rollups = flush_rollups || !self.hold_back;
        let result = self.store.commit_rows(&mut prepared).await;
        let elapsed = started.elapsed();
        match result {
            Ok(inserted) => {
                let rows = prepared.rows.len();
                let staged = prepared.staged.take();
                self.cache.apply(prepared.into_cache_updates());
                if let (Some(open), Some(staged)) = (self.open.as_mut(), staged) {
                    open.apply(staged);
                }
                self.metrics.observe_commit(rows, elapsed);
                let mut stored = Vec::new();
                let mut flags = inserted.into_iter();
                for req in batch {
                    let n = req.rows.len();
                    for (dev, reading) in req.rows {
                        if flags.next().unwrap_or(false) {
                            stored.push(StoredReading {
                                device: dev.name,
                                reading,
                            });
                        }
                    }
                    let _ = req.done.send(Ok(n));
                }
                if !stored.is_empty() {
                    // No receiver (no live feed yet) is fine.
                    let _ = self.committed.send(Arc::new(stored));
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, rows = prepared.rows.len(), "storage writer: commit failed; answering `unavailable`");
                self.metrics.commit_failures.inc();
                let msg = WriteFailed(format!(
                    "storage is unavailable ({}); resend later",
                    short(&e)
                ));
                for req in batch {
                    let _ = req.done.send(Err(msg.clone()));
                }
                false
            }
        }
    }
}

fn short(e: &StorageError) -> String {
    e.to_string().chars().take(120).collect()
}

/// One row of a batch, before and after its series is resolved.
#[derive(Debug)]
pub(crate) struct PendingRow {
    pub key: usize,
    pub ts: i64,
    pub value: f64,
}

/// A batch as the backend sees it: the series to resolve, the rows, the devices to touch.
/// The backend resolves series ([`PreparedBatch::unresolved`] / [`PreparedBatch::resolve`]),
/// inserts [`PreparedBatch::split_rows`], then writes what
/// [`PreparedBatch::stage_rollups`] stages, all in one transaction.
pub(crate) struct PreparedBatch<'a> {
    /// Distinct series of the batch; `state` is `None` until resolved.
    pub keys: Vec<(SeriesKey, Option<Unit>, Option<SeriesState>)>,
    pub rows: Vec<PendingRow>,
    /// Devices seen in this batch and the commit time, for `last_seen`.
    pub touched: Vec<i64>,
    pub now_us: i64,
    /// The writer's open rollup buckets; `None` with `[storage] rollups` off.
    rollups: Option<&'a OpenBuckets>,
    /// Write every open rollup bucket (idle writer, shutdown).
    flush_rollups: bool,
    /// What this transaction does to the rollups, once staged; applied after commit.
    pub staged: Option<Staged>,
}

impl<'a> PreparedBatch<'a> {
    fn new(cache: &SeriesCache, batch: &[WriteRequest], rollups: Option<&'a OpenBuckets>) -> Self {
        let mut index: HashMap<(i64, &SensorName), usize> = HashMap::new();
        let mut keys = Vec::new();
        let mut rows = Vec::with_capacity(batch.iter().map(|r| r.rows.len()).sum());
        let mut touched = Vec::new();
        for (dev, r) in batch.iter().flat_map(|req| req.rows.iter()) {
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
            rows.push(PendingRow {
                key: k,
                ts: r.ts.as_micros(),
                value: r.value,
            });
        }
        Self {
            keys,
            rows,
            touched,
            now_us: Timestamp::now().as_micros(),
            rollups,
            flush_rollups: false,
            staged: None,
        }
    }

    /// Stages the rollup rows of what this transaction inserted (every `fresh` row, the
    /// `maybe` rows flagged in `maybe_inserted`): the rows to upsert and the horizons to
    /// store with it. `None` with rollups off.
    pub fn stage_rollups(
        &mut self,
        fresh: &[RowValues],
        maybe: &[(usize, RowValues)],
        maybe_inserted: &[bool],
    ) -> Option<&Staged> {
        let open = self.rollups?;
        let delta = RollupDelta::of_inserted(fresh, maybe, maybe_inserted);
        Some(
            self.staged
                .insert(open.stage(&delta, self.now_us, self.flush_rollups)),
        )
    }

    /// Series not yet known to the cache, with the unit this batch carries for them.
    pub fn unresolved(&self) -> impl Iterator<Item = (usize, &SeriesKey, Option<&Unit>)> {
        self.keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.2.is_none())
            .map(|(i, k)| (i, &k.0, k.1.as_ref()))
    }

    pub fn resolve(&mut self, index: usize, id: i64, max_ts: Option<i64>) {
        let unit = self.keys[index].1.clone();
        self.keys[index].2 = Some(SeriesState {
            id,
            unit,
            max_ts: max_ts.unwrap_or(i64::MIN),
        });
    }

    /// Known series whose unit this batch changes: (series id, new unit).
    pub fn unit_changes(&self) -> Vec<(i64, String)> {
        self.keys
            .iter()
            .filter_map(|(_, unit, state)| {
                let (unit, state) = (unit.as_ref()?, state.as_ref()?);
                (state.unit.as_ref() != Some(unit)).then(|| (state.id, unit.as_str().to_owned()))
            })
            .collect()
    }

    /// Splits rows into *fresh* ones (newer than anything stored or earlier in the batch,
    /// so certainly new) and ones that may repeat a stored reading, with their row index.
    pub fn split_rows(&self) -> (Vec<RowValues>, Vec<(usize, RowValues)>) {
        let mut newest: Vec<i64> = self
            .keys
            .iter()
            .map(|k| k.2.as_ref().map_or(i64::MIN, |s| s.max_ts))
            .collect();
        let (mut fresh, mut maybe) = (Vec::with_capacity(self.rows.len()), Vec::new());
        for (i, r) in self.rows.iter().enumerate() {
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
        (fresh, maybe)
    }

    /// Inserted flags in row order, given which maybe-rows (by row index) were inserted.
    pub fn inserted_flags(
        &self,
        maybe: &[(usize, RowValues)],
        maybe_inserted: &[bool],
    ) -> Vec<bool> {
        let mut flags = vec![true; self.rows.len()];
        for ((i, _), ok) in maybe.iter().zip(maybe_inserted) {
            flags[*i] = *ok;
        }
        flags
    }

    fn into_cache_updates(self) -> Vec<(SeriesKey, SeriesState)> {
        let mut newest: Vec<i64> = self
            .keys
            .iter()
            .map(|k| k.2.as_ref().map_or(i64::MIN, |s| s.max_ts))
            .collect();
        for r in &self.rows {
            newest[r.key] = newest[r.key].max(r.ts);
        }
        self.keys
            .into_iter()
            .zip(newest)
            .filter_map(|((key, unit, state), max_ts)| {
                let mut s = state?;
                s.max_ts = max_ts;
                if unit.is_some() {
                    s.unit = unit;
                }
                Some((key, s))
            })
            .collect()
    }
}

//! The storage writer: the one task per hub that writes readings.
//!
//! Owns the write queue, group commit, the answers to each request and the publication
//! of what was stored. Uses [`super::committer`] for the transaction itself (and the series
//! cache and open rollup buckets it keeps between commits); nothing in storage uses this
//! module.
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
//! new are published on a broadcast channel for the live feed and other consumers, and
//! on the alert engine's own bounded channel, which the writer waits on when it is full.
//!
//! Rollups: the writer holds each series' open rollup buckets back (see
//! [`super::open_buckets`]) and writes them as they close; when it has been idle for
//! [`IDLE_FLUSH`], and when it stops, it writes all of them. On PostgreSQL, where the
//! hubs of a cluster each run a writer, every commit writes its rollup rows.

use super::batch::Batch;
use super::committer::Committer;
use super::horizons::NO_HORIZON;
use super::open_buckets::OpenBuckets;
use super::series::SeriesCache;
use super::{StorageError, Store};
use crate::auth::DeviceRef;
use crate::config::WriterSettings;
use crate::domain::{CommittedBatch, Reading, StoredReading};
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// After this long without a request, the writer writes the rollup buckets it holds back.
pub const IDLE_FLUSH: Duration = Duration::from_secs(1);

/// Why a write was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteFailed {
    /// Storage is unavailable; the device should resend later.
    #[error("{0}")]
    Unavailable(String),
    /// A reading's type is not its series' (protocol.md §8); nothing of the request is stored.
    #[error("{0}")]
    WrongType(String),
}

/// One message's readings, all for devices already authorised.
pub struct WriteRequest {
    pub rows: Vec<(DeviceRef, Reading)>,
    /// Receives how many readings are stored (all of them) once committed.
    pub done: oneshot::Sender<Result<usize, WriteFailed>>,
}

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
            let _ = e.0.done.send(Err(WriteFailed::Unavailable(
                "the hub is shutting down".into(),
            )));
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
    spawn_with(store, settings, rollups, metrics, committed, None, close)
}

/// [`spawn`], also sending each committed batch to `evaluate` (the alert engine), waiting
/// while it is full: unlike the broadcast, that stream never skips a batch.
pub fn spawn_with(
    store: Store,
    settings: WriterSettings,
    rollups: bool,
    metrics: Arc<Metrics>,
    committed: broadcast::Sender<CommittedBatch>,
    evaluate: Option<mpsc::Sender<CommittedBatch>>,
    close: CancellationToken,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    let handle = WriterHandle { tx };
    let hold_back = store.single_writer();
    let task = tokio::spawn(
        Writer {
            store,
            committer: None,
            settings,
            metrics,
            committed,
            evaluate,
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
    /// Runs the transactions; opened when the task starts (`None`: it could not be).
    committer: Option<Committer>,
    settings: WriterSettings,
    metrics: Arc<Metrics>,
    committed: broadcast::Sender<CommittedBatch>,
    /// The alert engine's stream of committed batches; `None`: no engine.
    evaluate: Option<mpsc::Sender<CommittedBatch>>,
    cache: SeriesCache,
    /// Open rollup buckets held back; `None` with rollups off.
    open: Option<OpenBuckets>,
    /// Whether buckets may be held back at all ([`Store::single_writer`]); if not, every
    /// commit writes its rollup rows.
    hold_back: bool,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<WriteRequest>, close: CancellationToken) {
        self.committer = match Committer::start(&self.store, &self.settings).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "storage writer: cannot open its connection; every write will be answered `unavailable`");
                None
            }
        };
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
        if let Some(c) = self.committer.take() {
            c.close().await;
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
        let rows = batch.iter().enumerate().flat_map(|(i, req)| {
            (req.rows.iter().enumerate()).map(move |(pos, (d, r))| (i, pos, d, r))
        });
        let flush = flush_rollups || !self.hold_back;
        let mut prepared = Batch::new(
            &self.cache,
            rows,
            batch.len(),
            flush,
            self.settings.max_series_per_device,
        );
        let result = match &mut self.committer {
            Some(c) => c.commit(&mut prepared, &mut self.open).await,
            None => Err(StorageError::WriterUnavailable),
        };
        let elapsed = started.elapsed();
        let rows = prepared.len();
        match result {
            Ok(inserted) => {
                let refusals = prepared.refusals();
                prepared
                    .after_commit()
                    .apply(&mut self.cache, self.open.as_mut());
                self.metrics.observe_commit(rows, elapsed);
                let mut stored = Vec::new();
                let mut flags = inserted.into_iter();
                for (req, refused) in batch.into_iter().zip(refusals) {
                    let n = req.rows.len();
                    for (dev, reading) in req.rows {
                        if flags.next().unwrap_or(false) {
                            stored.push(StoredReading {
                                device: dev.name,
                                reading,
                            });
                        }
                    }
                    let _ = req.done.send(match refused {
                        None => Ok(n),
                        Some(why) => Err(WriteFailed::WrongType(why)),
                    });
                }
                if !stored.is_empty() {
                    let batch = Arc::new(stored);
                    // No receiver (no live feed yet) is fine.
                    let _ = self.committed.send(batch.clone());
                    if let Some(engine) = &self.evaluate {
                        // Waits while the engine is behind; an engine gone is fine.
                        let _ = engine.send(batch).await;
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, rows, "storage writer: commit failed; answering `unavailable`");
                self.metrics.commit_failures.inc();
                // The database's own text stays in the log: devices get no internals.
                let msg = WriteFailed::Unavailable("storage is unavailable; resend later".into());
                for req in batch {
                    let _ = req.done.send(Err(msg.clone()));
                }
                false
            }
        }
    }
}

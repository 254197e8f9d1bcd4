//! Time partitions of PostgreSQL's `readings` (migration 0012; docs/storage.md,
//! "Partitions (PostgreSQL)"): the partition manager, and retention's drops of whole
//! partitions.
//!
//! `readings` is `PARTITION BY RANGE (ts)`, one partition per `[storage]
//! partition_interval`, aligned on multiples of it since the Unix epoch and named from its
//! start ([`partition_name`]: `readings_p20261207`, `readings_p2026120706` when it does
//! not start at midnight), plus a DEFAULT partition that takes any reading no partition
//! covers, so that no write fails for lack of a partition. A pass of the manager
//! ([`Store::manage_partitions`], at start and every `partition_check_interval`) makes
//! sure the previous interval, the current one and `partitions_ahead` more have their
//! partition, then moves rows that landed in the DEFAULT partition (old or far-future
//! timestamps) into partitions of their own. Retention
//! ([`Store::drop_expired_partitions`]) drops the partitions that end before its cutoff.
//!
//! Each change is one short transaction, under an advisory lock (the hubs of a cluster
//! take turns, and each re-reads the catalogue under it), with `lock_timeout` set so it
//! gives up rather than queue ingest behind a long query. A partition is made as a table
//! of its own, filled with its rows from the DEFAULT partition, then attached:
//! `ATTACH PARTITION` locks `readings` only `SHARE UPDATE EXCLUSIVE`, so ingest into other
//! partitions goes on, where `CREATE TABLE … PARTITION OF` would lock it whole.
//!
//! Owns [`Span`], partition names, the pure planning ([`gaps`], [`split`],
//! [`parse_bound`]) and that DDL. SQLite has no partitions: every entry point does
//! nothing there. Uses [`super::db`] and [`crate::config`].

use super::db::Db;
use super::{StorageError, Store};
use crate::config::StorageSettings;
use crate::domain::Timestamp;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Postgres};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A range of timestamps `[from, to)` in µs since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: i64,
    pub to: i64,
}

/// What a partition of `readings` holds, read from its bound in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Default,
    Range(Span),
}

/// One partition of `readings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub bound: Bound,
}

/// What one pass of the manager did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionPass {
    /// Partitions created.
    pub created: usize,
    /// Readings moved out of the DEFAULT partition.
    pub moved: u64,
}

/// Key of the advisory lock the hubs of a cluster take turns with ("telehub" "parts").
const ADVISORY_KEY: i64 = 0x7465_6c65_7061_7274;

/// Distinct intervals read from the DEFAULT partition per round of a pass (a pass runs
/// rounds until it is empty).
const DEFAULT_BUCKETS_PER_ROUND: i64 = 32;

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// The interval of `width` µs (aligned on multiples of it since the epoch) holding `ts`.
pub fn aligned(ts: i64, width: i64) -> Span {
    let from = ts.div_euclid(width) * width;
    Span {
        from,
        to: from.saturating_add(width),
    }
}

/// The parts of `want` that no span of `taken` covers, in time order.
pub fn gaps(want: Span, taken: &[Span]) -> Vec<Span> {
    let mut taken: Vec<Span> = (taken.iter())
        .filter(|t| t.from < want.to && t.to > want.from)
        .copied()
        .collect();
    taken.sort_by_key(|t| t.from);
    let mut out = Vec::new();
    let mut at = want.from;
    for t in taken {
        if t.from > at {
            out.push(Span {
                from: at,
                to: t.from,
            });
        }
        at = at.max(t.to);
    }
    if at < want.to {
        out.push(Span {
            from: at,
            to: want.to,
        });
    }
    out
}

/// `span` cut at the multiples of `width`, so each piece lies within one interval.
pub fn split(span: Span, width: i64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut at = span.from;
    while at < span.to {
        let end = aligned(at, width).to.min(span.to);
        out.push(Span { from: at, to: end });
        at = end;
    }
    out
}

/// The name of the partition starting at `from`: `readings_pYYYYMMDD` at a UTC midnight,
/// `readings_pYYYYMMDDHH` at another whole hour, `readings_pYYYYMMDDHHMMSS_UUUUUU` else.
pub fn partition_name(from: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_micros(from) else {
        return format!("readings_p_{}", from as u64);
    };
    let stamp = if from.rem_euclid(DAY_US) == 0 {
        t.format("%Y%m%d").to_string()
    } else if from.rem_euclid(HOUR_US) == 0 {
        t.format("%Y%m%d%H").to_string()
    } else {
        t.format("%Y%m%d%H%M%S_%6f").to_string()
    };
    format!("readings_p{stamp}")
}

/// Reads `pg_get_expr(relpartbound)` of a partition of a range on one `bigint`:
/// `DEFAULT` or `FOR VALUES FROM ('1') TO ('2')` (`MINVALUE`/`MAXVALUE` at the ends).
pub fn parse_bound(expr: &str) -> Option<Bound> {
    let expr = expr.trim();
    if expr == "DEFAULT" {
        return Some(Bound::Default);
    }
    let rest = expr.strip_prefix("FOR VALUES FROM (")?;
    let (from, to) = rest.strip_suffix(')')?.split_once(") TO (")?;
    let value = |v: &str| match v.trim() {
        "MINVALUE" => Some(i64::MIN),
        "MAXVALUE" => Some(i64::MAX),
        v => v.trim_matches('\'').parse().ok(),
    };
    Some(Bound::Range(Span {
        from: value(from)?,
        to: value(to)?,
    }))
}

/// `name` as a quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// PostgreSQL's `lock_not_available`: a `lock_timeout` ran out.
fn lock_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03"))
}

impl Store {
    /// One pass of the partition manager as of `now`; nothing on SQLite.
    pub async fn manage_partitions(
        &self,
        settings: &StorageSettings,
        now: Timestamp,
        stop: &CancellationToken,
    ) -> Result<PartitionPass, StorageError> {
        match self {
            Store::Sqlite(_) => Ok(PartitionPass::default()),
            Store::Postgres(db) => Ok(manage(db, settings, now.as_micros(), stop).await?),
        }
    }

    /// Drops the partitions of `readings` that end at or before `cutoff` (µs) and
    /// returns how many readings they held; 0 on SQLite. A partition whose lock is not
    /// had within `lock_timeout` is left to the bounded deletes that follow.
    pub async fn drop_expired_partitions(
        &self,
        cutoff: i64,
        lock_timeout: Duration,
        stop: &CancellationToken,
    ) -> Result<u64, StorageError> {
        match self {
            Store::Sqlite(_) => Ok(0),
            Store::Postgres(db) => Ok(drop_expired(db, cutoff, lock_timeout, stop).await?),
        }
    }

    /// The partitions of `readings` (the DEFAULT one included); `None` on SQLite.
    pub async fn partitions(&self) -> Result<Option<Vec<Partition>>, StorageError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(db) => {
                let mut conn = db.read.acquire().await?;
                Ok(Some(partitions(&mut conn).await?))
            }
        }
    }
}

/// Runs the manager at start and then every `partition_check_interval` until `shutdown`
/// (PostgreSQL only; `None` on SQLite). A failed pass is logged and retried at the next.
pub async fn start(
    store: Store,
    settings: StorageSettings,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if !matches!(store, Store::Postgres(_)) {
        return None;
    }
    run_logged(&store, &settings, &shutdown).await;
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(settings.partition_check_interval) => {}
                _ = shutdown.cancelled() => break,
            }
            run_logged(&store, &settings, &shutdown).await;
        }
    }))
}

async fn run_logged(store: &Store, settings: &StorageSettings, stop: &CancellationToken) {
    match store
        .manage_partitions(settings, Timestamp::now(), stop)
        .await
    {
        Ok(p) if p.created > 0 => tracing::info!(
            created = p.created,
            moved_from_default = p.moved,
            "partitions: readings partitions created"
        ),
        Ok(_) => tracing::debug!("partitions: every partition was there"),
        Err(e) => tracing::warn!(
            error = %e,
            "partitions: pass failed (readings still go to the DEFAULT partition); retrying next interval"
        ),
    }
}

/// The partitions of `readings`, from the catalogue.
async fn partitions(conn: &mut PgConnection) -> Result<Vec<Partition>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, expr)| match parse_bound(&expr) {
            Some(bound) => Some(Partition { name, bound }),
            None => {
                tracing::warn!(partition = %name, "partitions: a bound telehub cannot read; left alone");
                None
            }
        })
        .collect())
}

fn ranges(parts: &[Partition]) -> Vec<Span> {
    (parts.iter())
        .filter_map(|p| match p.bound {
            Bound::Range(s) => Some(s),
            Bound::Default => None,
        })
        .collect()
}

async fn manage(
    db: &Db<Postgres>,
    settings: &StorageSettings,
    now: i64,
    stop: &CancellationToken,
) -> Result<PartitionPass, sqlx::Error> {
    let width = settings.partition_interval.as_micros() as i64;
    let lock = settings.partition_lock_timeout;
    let mut pass = PartitionPass::default();
    let current = aligned(now, width);
    let ahead = i64::from(settings.partitions_ahead);
    let want = Span {
        from: current.from - width,
        to: current.from + (ahead + 1) * width,
    };
    for span in split(want, width) {
        if stop.is_cancelled() {
            return Ok(pass);
        }
        add(db, span, lock, &mut pass).await?;
    }
    loop {
        let mut conn = db.read.acquire().await?;
        let Some(default) =
            (partitions(&mut conn).await?.into_iter()).find(|p| p.bound == Bound::Default)
        else {
            return Ok(pass);
        };
        let buckets: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT DISTINCT floor(ts::numeric / $1)::bigint FROM {} LIMIT $2",
            ident(&default.name)
        )))
        .bind(width)
        .bind(DEFAULT_BUCKETS_PER_ROUND)
        .fetch_all(&mut *conn)
        .await?;
        drop(conn);
        let before = pass;
        for b in buckets {
            if stop.is_cancelled() {
                return Ok(pass);
            }
            let span = Span {
                from: b.saturating_mul(width),
                to: b.saturating_add(1).saturating_mul(width),
            };
            add(db, span, lock, &mut pass).await?;
        }
        if pass == before {
            // Nothing could be moved (another hub is at it): the next pass goes on.
            return Ok(pass);
        }
    }
}

/// Gives the free parts of `span` a partition each, in one transaction, moving their
/// rows out of the DEFAULT partition. A lock not had in time leaves it to the next pass.
async fn add(
    db: &Db<Postgres>,
    span: Span,
    lock_timeout: Duration,
    pass: &mut PartitionPass,
) -> Result<(), sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let attempt = async {
        guard(&mut tx, lock_timeout).await?;
        let parts = partitions(&mut tx).await?;
        let default = parts.iter().find(|p| p.bound == Bound::Default);
        let mut done = PartitionPass::default();
        for gap in gaps(span, &ranges(&parts)) {
            let name = ident(&partition_name(gap.from));
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE TABLE {name} (LIKE readings INCLUDING ALL)"
            )))
            .execute(&mut *tx)
            .await?;
            if let Some(d) = default {
                let moved = sqlx::query(AssertSqlSafe(format!(
                    "WITH m AS (DELETE FROM {} WHERE ts >= $1 AND ts < $2
                                RETURNING series_id, ts, value)
                     INSERT INTO {name} (series_id, ts, value) SELECT * FROM m",
                    ident(&d.name)
                )))
                .bind(gap.from)
                .bind(gap.to)
                .execute(&mut *tx)
                .await?;
                done.moved += moved.rows_affected();
            }
            sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER TABLE readings ATTACH PARTITION {name} FOR VALUES FROM ({}) TO ({})",
                gap.from, gap.to
            )))
            .execute(&mut *tx)
            .await?;
            done.created += 1;
        }
        Ok::<_, sqlx::Error>(done)
    };
    match attempt.await {
        Ok(done) => {
            tx.commit().await?;
            pass.created += done.created;
            pass.moved += done.moved;
            Ok(())
        }
        Err(e) if lock_busy(&e) => {
            tracing::info!(
                ?span,
                "partitions: readings is busy; the partition waits for the next pass"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Starts a transaction's DDL: its lock wait bounded, the cluster's advisory lock held.
async fn guard(tx: &mut PgConnection, lock_timeout: Duration) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{}ms'",
        lock_timeout.as_millis().max(1)
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ADVISORY_KEY)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn drop_expired(
    db: &Db<Postgres>,
    cutoff: i64,
    lock_timeout: Duration,
    stop: &CancellationToken,
) -> Result<u64, sqlx::Error> {
    let mut conn = db.read.acquire().await?;
    let mut expired: Vec<(String, Span)> = (partitions(&mut conn).await?.into_iter())
        .filter_map(|p| match p.bound {
            Bound::Range(s) if s.to <= cutoff => Some((p.name, s)),
            _ => None,
        })
        .collect();
    drop(conn);
    expired.sort_by_key(|(_, s)| s.from);
    let mut rows = 0;
    for (name, span) in expired {
        if stop.is_cancelled() {
            break;
        }
        let mut tx = db.write.begin().await?;
        let attempt = async {
            guard(&mut tx, lock_timeout).await?;
            // Under the advisory lock: still there (another hub may have dropped it)?
            let here = (partitions(&mut tx).await?.iter())
                .any(|p| p.name == name && p.bound == Bound::Range(span));
            if !here {
                return Ok(0);
            }
            // Counted first: a reading stored into it between the count and the drop
            // (a late one, older than the cutoff) goes uncounted.
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {}",
                ident(&name)
            )))
            .fetch_one(&mut *tx)
            .await?;
            sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE {}", ident(&name))))
                .execute(&mut *tx)
                .await?;
            Ok::<_, sqlx::Error>(n.max(0) as u64)
        };
        match attempt.await {
            Ok(n) => {
                tx.commit().await?;
                rows += n;
            }
            Err(e) if lock_busy(&e) => tracing::info!(
                partition = %name,
                "retention: readings is busy; this partition's rows are deleted in batches instead"
            ),
            Err(e) => return Err(e),
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = DAY_US;

    #[test]
    fn partitions_are_named_from_their_start() {
        // 2026-12-07T00:00:00Z
        let midnight = 1_796_601_600_000_000;
        assert_eq!(partition_name(midnight), "readings_p20261207");
        assert_eq!(
            partition_name(midnight + 6 * HOUR_US),
            "readings_p2026120706"
        );
        assert_eq!(
            partition_name(midnight + 90_000_001),
            "readings_p20261207000130_000001"
        );
    }

    #[test]
    fn bounds_read_as_postgres_prints_them() {
        assert_eq!(parse_bound("DEFAULT"), Some(Bound::Default));
        assert_eq!(
            parse_bound("FOR VALUES FROM ('1796083200000000') TO ('1796169600000000')"),
            Some(Bound::Range(Span {
                from: 1_796_083_200_000_000,
                to: 1_796_169_600_000_000
            }))
        );
        assert_eq!(
            parse_bound("FOR VALUES FROM (MINVALUE) TO ('5')"),
            Some(Bound::Range(Span {
                from: i64::MIN,
                to: 5
            }))
        );
        assert_eq!(parse_bound("FOR VALUES IN ('1')"), None);
    }

    #[test]
    fn gaps_leave_out_what_partitions_cover() {
        let want = Span {
            from: 0,
            to: 4 * DAY,
        };
        let taken = [
            Span {
                from: DAY,
                to: 2 * DAY,
            },
            Span { from: -DAY, to: 0 },
            Span {
                from: 3 * DAY,
                to: 5 * DAY,
            },
        ];
        assert_eq!(
            gaps(want, &taken),
            [
                Span { from: 0, to: DAY },
                Span {
                    from: 2 * DAY,
                    to: 3 * DAY
                }
            ]
        );
        assert_eq!(gaps(want, &[want]), []);
    }

    proptest! {
        /// The gaps and the taken spans together cover `want` exactly once.
        #[test]
        fn gaps_and_taken_spans_tile_the_wanted_span(
            from in -1000i64..1000, len in 1i64..500,
            taken in proptest::collection::vec((-1200i64..1200, 1i64..300), 0..6),
        ) {
            let want = Span { from, to: from + len };
            // Partitions never overlap: keep each taken span that overlaps none before it.
            let mut spans: Vec<Span> = Vec::new();
            for (f, l) in taken {
                let s = Span { from: f, to: f + l };
                if spans.iter().all(|t| s.to <= t.from || s.from >= t.to) {
                    spans.push(s);
                }
            }
            let free = gaps(want, &spans);
            for ts in want.from..want.to {
                let in_free = free.iter().filter(|g| g.from <= ts && ts < g.to).count();
                let in_taken = spans.iter().filter(|t| t.from <= ts && ts < t.to).count();
                prop_assert_eq!(in_free + in_taken, 1, "ts {}", ts);
            }
            prop_assert!(free.iter().all(|g| g.from < g.to && g.from >= want.from && g.to <= want.to));
        }

        /// Pieces of a split lie within one interval each and tile the span in order.
        #[test]
        fn split_pieces_lie_within_one_interval(from in -10_000i64..10_000, len in 1i64..5_000, width in 1i64..700) {
            let span = Span { from, to: from + len };
            let pieces = split(span, width);
            prop_assert_eq!(pieces.first().map(|p| p.from), Some(span.from));
            prop_assert_eq!(pieces.last().map(|p| p.to), Some(span.to));
            for w in pieces.windows(2) {
                prop_assert_eq!(w[0].to, w[1].from);
            }
            for p in &pieces {
                prop_assert_eq!(aligned(p.from, width).from, aligned(p.to - 1, width).from);
            }
        }
    }
}

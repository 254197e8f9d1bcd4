//! Long-range history: bucketed queries answered from rollups, M4 downsampling, and
//! the maintenance of the rollup tables.
//!
//! - [`plan`]: which source answers which part of a bucket query, and its SQL (pure).
//! - [`queries`]: the shared read queries (points, series, bucket summaries).
//! - [`reads`]: the one history planner: raw points, buckets or M4, and their limits.
//! - [`catalogue`]: every series with its device and type, for finding series by pattern.
//! - [`m4`]: downsampling for charts (pure).
//! - [`maintenance`]: rollup rebuild, retention deletes, preparing rollups at start.
//!
//! This file holds the [`Store`] methods that combine them. The SQL is shared by both
//! backends. Uses [`super::rollup`], [`super::horizons`] and [`super::db`].

pub mod catalogue;
pub mod m4;
pub mod maintenance;
pub mod plan;
pub mod queries;
pub mod reads;
pub mod values;

pub use catalogue::CatalogueRow;
pub use m4::{m4_every, m4_points};
pub use maintenance::Table;
pub use plan::{Need, Segment, Source, plan, segment_sql, summaries_sql};
pub use queries::{BucketSummary, SummaryQuery};
pub use reads::{History, HistoryError, HistoryLimits, HistoryRead, Shape};

use super::rollup::{self, Level};
use super::{Agg, Bucket, Point, RangeQuery, StorageError, Store};
use crate::domain::{DeviceName, SensorName, ValueKind};

impl Store {
    /// Buckets of `every_us` microseconds (aligned to the Unix epoch), at most `limit`,
    /// read from the coarsest rollup that answers them exactly (see [`plan`]): the
    /// [`Store::history`] read of one series, for callers that page.
    pub async fn query_buckets(
        &self,
        q: RangeQuery,
        every_us: i64,
        agg: Agg,
    ) -> Result<Vec<Bucket>, StorageError> {
        let read = HistoryRead::buckets(&q, every_us, agg);
        match self.history(&read, HistoryLimits::PAGED).await {
            Ok(History::Buckets(b)) => Ok(b),
            Ok(History::Points(_)) => Ok(Vec::new()),
            Err(HistoryError::Storage(e)) => Err(e),
            Err(e) => Err(StorageError::InvalidQuery(e.to_string())),
        }
    }

    /// The value type of a series (numbers for one that does not exist).
    pub async fn series_kind(&self, series: i64) -> Result<ValueKind, StorageError> {
        Ok(dispatch!(self, db => db.series_kind(series).await)?)
    }

    /// At most `max_points` points of `[from, to)` for a chart, by M4: per time column, the
    /// first, minimum, maximum and last reading (real readings, so extremes are kept).
    /// When the range holds no more than `max_points` readings, they are returned as is.
    /// A boolean or string series is drawn as states: every transition is kept (its
    /// readings where the value changes, and the last), however many there are.
    pub async fn downsample(
        &self,
        q: RangeQuery,
        max_points: usize,
    ) -> Result<Vec<Point>, StorageError> {
        if self.series_kind(q.series).await? != ValueKind::Number {
            return dispatch!(self, db => db.transitions(q).await);
        }
        let (from, to) = (q.from.as_micros(), q.to.as_micros());
        let every = m4_every(from, to, max_points);
        let q = RangeQuery {
            limit: usize::MAX,
            after: None,
            ..q
        };
        let columns = self.summaries(&q, every, Need::All).await?;
        let total: i64 = columns.iter().map(|(_, s)| s.n).sum();
        if total as usize <= max_points {
            let raw = self
                .query_points(RangeQuery {
                    limit: max_points,
                    ..q
                })
                .await?;
            // Raw data of old ranges may have expired while their rollups remain.
            if raw.len() as i64 == total {
                return Ok(raw);
            }
        }
        Ok(m4_points(&columns))
    }

    /// How many readings `[from, to)` of a series holds (from rollups where they answer).
    pub async fn count(&self, q: RangeQuery) -> Result<i64, StorageError> {
        const HOUR: i64 = Level::Hour.width_us();
        let span = q.to.as_micros() - q.from.as_micros();
        let every = rollup::ceil(span.max(1), HOUR);
        let q = RangeQuery {
            limit: usize::MAX,
            ..q
        };
        let rows = self.summaries(&q, every, Need::Sum).await?;
        Ok(rows.iter().map(|(_, s)| s.n).sum())
    }

    async fn summaries(
        &self,
        q: &RangeQuery,
        every: i64,
        need: Need,
    ) -> Result<Vec<BucketSummary>, StorageError> {
        let sq = SummaryQuery {
            series: q.series,
            from: q.from.as_micros(),
            to: q.to.as_micros(),
            every,
            limit: q.limit,
            need,
        };
        dispatch!(self, db => db.summaries(&sq).await)
    }

    /// A series id in one round trip: `None` when the device does not exist, `Some(None)`
    /// when it has no such sensor.
    pub async fn find_series(
        &self,
        device: &DeviceName,
        sensor: &SensorName,
    ) -> Result<Option<Option<i64>>, StorageError> {
        let (d, s) = (device.as_str(), sensor.as_str());
        Ok(dispatch!(self, db => db.find_series(d, s).await)?)
    }

    /// Every series id, for maintenance that walks series one by one.
    pub async fn series_ids(&self) -> Result<Vec<i64>, StorageError> {
        Ok(dispatch!(self, db => db.series_ids().await)?)
    }
}

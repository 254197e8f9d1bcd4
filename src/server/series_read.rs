//! One series read for `/v1/readings` (docs/http-api.md): raw points with the next page's
//! cursor, a chart downsample, or buckets. Shared by the one-series answer (`server::api`)
//! and the every-series one (`server::fleet`).

use super::readings_params::{ReadingsQuery, encode_cursor};
use super::{ApiError, HubState};
use crate::storage::history::{History, HistoryLimits, HistoryRead, Shape};
use crate::storage::{Bucket, Point};
use serde::Serialize;

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Points {
    Raw(Vec<Point>),
    Buckets(Vec<Bucket>),
}

/// One series' answer to `q`: raw points (with the next page's cursor when full), a
/// downsample, or buckets.
pub(super) async fn series_points(
    hub: &HubState,
    q: &ReadingsQuery,
    series: i64,
) -> Result<(Points, Option<String>), ApiError> {
    let http = &hub.settings.http;
    let shape = match (q.buckets, q.max_points) {
        (Some((every, agg)), _) => Shape::Buckets {
            every_us: every.as_micros().min(i64::MAX as u128) as i64,
            offset_us: 0,
            agg,
            limit: http.max_buckets + 1,
        },
        (None, Some(max_points)) => Shape::Downsample { max_points },
        (None, None) => Shape::Raw {
            after: q.after,
            limit: q.limit,
        },
    };
    let read = HistoryRead {
        series: vec![series],
        from: q.from,
        to: q.to,
        shape,
    };
    let limits = HistoryLimits {
        max_buckets: http.max_buckets,
    };
    Ok(match hub.store.history(&read, limits).await? {
        History::Buckets(b) => (Points::Buckets(b), None),
        History::Points(p) => {
            // Raw pages carry a cursor when full; a downsample is whole.
            let next = (q.max_points.is_none() && p.len() == q.limit)
                .then(|| p.last().map(|p| encode_cursor(p.ts)))
                .flatten();
            (Points::Raw(p), next)
        }
    })
}

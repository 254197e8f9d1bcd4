//! Fleet export: every stored reading of the series whose device matches a pattern, in a
//! time range, as CSV (`device,sensor,ts,value,unit`) or NDJSON, page by page (keyset
//! pages of at most [`PAGE`] readings), so memory stays constant however much is read.
//! `GET /v1/export` streams it through a bounded channel ([`spawn`]); `telehub export`
//! prints it.
//!
//! Channel: [`spawn`]'s task sends encoded pages (sender) to the response body (receiver);
//! it waits while the channel is full and ends when the receiver is dropped (the client
//! went away) or the last series is read.
//!
//! May use: `domain`, `storage`.

use crate::domain::{DeviceName, Segment, SensorName, Timestamp, Value};
use crate::storage::history::{History, HistoryError, HistoryLimits, HistoryRead, Shape};
use crate::storage::{Point, RangeQuery, SeriesRow, StorageError, Store};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Readings per page.
pub const PAGE: usize = 10_000;

/// The CSV header of raw readings.
pub const CSV_HEADER: &str = "device,sensor,ts,value,unit";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

/// Which series and range to export.
pub struct Selection {
    /// A device name, or a glob within it (`line-3-*`, `*`).
    pub devices: Segment,
    /// One sensor; every sensor when `None`.
    pub sensor: Option<SensorName>,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// The series to export: each matching (unrevoked) device's, devices in name order.
pub async fn series(
    store: &Store,
    sel: &Selection,
) -> Result<Vec<(DeviceName, SeriesRow)>, StorageError> {
    let mut names: Vec<DeviceName> = store
        .list_devices()
        .await?
        .into_iter()
        .filter(|d| !d.revoked && sel.devices.matches(&d.name))
        .filter_map(|d| DeviceName::parse(&d.name).ok())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(dev) = store.find_device(&name).await? else {
            continue;
        };
        for s in store.series_of(&dev).await? {
            if sel.sensor.as_ref().is_none_or(|want| *want == s.sensor) {
                out.push((name.clone(), s));
            }
        }
    }
    Ok(out)
}

/// Successive pages of one series' raw points, until its range or `left` ends.
pub struct Pages {
    read: HistoryRead,
    pub left: usize,
    done: bool,
}

impl Pages {
    /// Pages of `q` (its `limit` is the first page's size), at most `left` points.
    pub fn new(q: RangeQuery, left: usize) -> Self {
        Self {
            read: HistoryRead {
                series: vec![q.series],
                from: q.from,
                to: q.to,
                shape: Shape::Raw {
                    after: q.after,
                    limit: q.limit,
                },
            },
            left,
            done: false,
        }
    }

    /// The next page; `None` once the range or `left` ended.
    pub async fn next(&mut self, store: &Store) -> Result<Option<Vec<Point>>, HistoryError> {
        if self.done || self.left == 0 {
            return Ok(None);
        }
        let History::Points(p) = store.history(&self.read, HistoryLimits::PAGED).await? else {
            self.done = true;
            return Ok(None);
        };
        self.left -= p.len();
        let full = matches!(self.read.shape, Shape::Raw { limit, .. } if p.len() == limit);
        match p.last() {
            Some(last) if full => {
                self.read.shape = Shape::Raw {
                    after: Some(last.ts),
                    limit: PAGE.min(self.left),
                }
            }
            _ => self.done = true,
        }
        Ok(Some(p))
    }
}

/// A field as CSV writes it: quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// A value as a CSV field (protocol.md §8): numbers as they are, `true`/`false`, strings always
/// quoted (so `"42"` the string and `42` the number stay apart).
pub fn csv_value(v: &Value) -> String {
    match v {
        Value::Text(t) => format!("\"{}\"", t.as_str().replace('"', "\"\"")),
        other => other.to_string(),
    }
}

/// One reading as a line of `format` (with its line break).
pub fn line(format: ExportFormat, device: &DeviceName, series: &SeriesRow, p: &Point) -> String {
    let unit = series.unit.as_deref();
    match format {
        ExportFormat::Csv => format!(
            "{},{},{},{},{}\n",
            csv_field(device.as_str()),
            csv_field(series.sensor.as_str()),
            p.ts,
            csv_value(&p.value),
            csv_field(unit.unwrap_or(""))
        ),
        ExportFormat::Ndjson => {
            let v = serde_json::json!({"device": device, "sensor": series.sensor, "ts": p.ts, "value": p.value, "unit": unit});
            format!("{v}\n")
        }
    }
}

/// Exports `series` over `sel`'s range in a task: each page encoded as one chunk, at most
/// `ahead` chunks waiting for the receiver. A storage failure ends the stream with it.
pub fn spawn(
    store: Store,
    sel: Selection,
    series: Vec<(DeviceName, SeriesRow)>,
    format: ExportFormat,
    ahead: usize,
) -> mpsc::Receiver<Result<Bytes, HistoryError>> {
    let (tx, rx) = mpsc::channel(ahead.max(1));
    tokio::spawn(async move {
        if format == ExportFormat::Csv
            && tx
                .send(Ok(Bytes::from(format!("{CSV_HEADER}\n"))))
                .await
                .is_err()
        {
            return;
        }
        for (device, s) in &series {
            let q = RangeQuery {
                series: s.id,
                from: sel.from,
                to: sel.to,
                after: None,
                limit: PAGE,
            };
            let mut pages = Pages::new(q, usize::MAX);
            loop {
                let chunk = match pages.next(&store).await {
                    Ok(None) => break,
                    Ok(Some(p)) => Ok(Bytes::from(
                        p.iter()
                            .map(|p| line(format, device, s, p))
                            .collect::<String>(),
                    )),
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        }
    });
    rx
}

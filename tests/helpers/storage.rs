//! Fixtures on the storage side: rows written through the hub's storage writer (the path
//! device messages take), the registry's ids, and what the tables hold.

use super::{Param, TestApp, WAIT, eventually, sql_rows};
use telehub::auth::DeviceRef;
use telehub::domain::{DeviceName, Reading, SensorName, Timestamp, Value};
use telehub::hub::RunningHub;
use telehub::storage::{Agg, RangeQuery, Store};

/// One minute, in µs.
pub const MIN: i64 = 60_000_000;
/// One hour, in µs.
pub const HOUR: i64 = 60 * MIN;

/// Writes `(ts µs, value)` rows (numbers, or any [`Value`]) for `device`/`sensor`
/// through the hub's storage writer and waits for the commit.
pub async fn write<V: Into<Value> + Clone>(
    app: &TestApp,
    device: &DeviceRef,
    sensor: &str,
    rows: &[(i64, V)],
) {
    write_to(app.hub(), device, sensor, rows).await
}

/// [`write`] through the storage writer of `hub` (one of several on a database).
pub async fn write_to<V: Into<Value> + Clone>(
    hub: &RunningHub,
    device: &DeviceRef,
    sensor: &str,
    rows: &[(i64, V)],
) {
    let sensor = SensorName::parse(sensor).unwrap();
    let rows = rows
        .iter()
        .map(|(ts, value)| {
            let reading = Reading {
                sensor: sensor.clone(),
                value: value.clone().into(),
                ts: Timestamp::from_micros(*ts),
                unit: None,
            };
            (device.clone(), reading)
        })
        .collect();
    let done = hub.state.ingest.submit(rows).await;
    tokio::time::timeout(WAIT, done)
        .await
        .expect("committed in time")
        .unwrap()
        .expect("stored");
}

/// Adds a device and returns the registry's reference to it.
pub async fn add_device(app: &TestApp, name: &str) -> DeviceRef {
    app.device(name).await;
    let name = DeviceName::parse(name).unwrap();
    app.store.find_device(&name).await.unwrap().unwrap()
}

pub async fn series_id(app: &TestApp, device: &DeviceRef, sensor: &str) -> i64 {
    let all = app.store.series_of(device).await.unwrap();
    all.iter().find(|s| s.sensor.as_str() == sensor).unwrap().id
}

/// The stored readings of a series, `(ts, value)` by time, read with a connection of its own.
pub async fn raw_rows(url: &str, series: i64) -> Vec<(i64, f64)> {
    sql_rows(
        url,
        "SELECT ts, value FROM readings WHERE series_id = $1 ORDER BY ts",
        &[Param::Int(series)],
    )
    .await
}

/// The rollup horizons (minute, hour) as stored.
pub async fn horizons(url: &str) -> Vec<(i64, i64)> {
    sql_rows(
        url,
        "SELECT minute_horizon, hour_horizon FROM rollup_state WHERE id = $1",
        &[Param::Int(1)],
    )
    .await
}

/// Waits until the idle writer has written the rollup buckets it held back.
pub async fn held_back_buckets_written(app: &TestApp) {
    let all_written = [(i64::MAX, i64::MAX)];
    eventually(
        WAIT,
        "the held-back rollup buckets to be written",
        || horizons(&app.db.url),
        |h| *h == all_written,
    )
    .await;
}

/// One bucket as a raw GROUP BY gives it: (start, value, count).
pub type Expected = (i64, f64, i64);

/// The buckets `store` answers for a series.
pub async fn buckets(
    store: &Store,
    series: i64,
    from: i64,
    to: i64,
    every: i64,
    agg: Agg,
) -> Vec<Expected> {
    let q = RangeQuery {
        series,
        from: Timestamp::from_micros(from),
        to: Timestamp::from_micros(to),
        after: None,
        limit: 1_000_000,
    };
    store
        .query_buckets(q, every, agg)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.ts.as_micros(), b.value.as_f64().unwrap(), b.count))
        .collect()
}

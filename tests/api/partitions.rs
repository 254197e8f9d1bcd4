//! PostgreSQL's time partitions of `readings` (docs/storage.md, "Partitions"): the hub
//! makes today's and the next days' partitions at start, its manager moves readings that
//! landed in the DEFAULT partition into partitions of their own, and retention drops
//! whole expired partitions, deleting rows only in the one straddling its cutoff.
//! SQLite has no partitions: its retention is `tests/api/retention.rs`'s.

use crate::helpers::*;
use crate::need_pg;
use serde_json::Value;
use std::time::Duration;
use telehub::config::Keep;
use telehub::domain::Timestamp;
use telehub::storage::partitions::{Bound, Partition, partition_name};
use telehub::storage::retention::run_pass;
use tokio_util::sync::CancellationToken;

const DAY: i64 = 24 * HOUR;

/// Day partitions (name, start) as the catalogue lists them, by start.
fn days_of(parts: &[Partition]) -> Vec<(String, i64)> {
    let mut days: Vec<(String, i64)> = (parts.iter())
        .filter_map(|p| match p.bound {
            Bound::Range(s) => Some((p.name.clone(), s.from)),
            Bound::Default => None,
        })
        .collect();
    days.sort_by_key(|d| d.1);
    days
}

/// Tables named like partitions, attached or not (a detached one would still be here).
async fn partition_tables(url: &str) -> Vec<String> {
    let rows: Vec<(String,)> = sql_rows(
        url,
        "SELECT relname::text FROM pg_class WHERE relname LIKE 'readings_p%' AND relkind = 'r'
         ORDER BY relname",
        &[],
    )
    .await;
    rows.into_iter().map(|r| r.0).collect()
}

/// (partition, readings in it, oldest) of every partition holding readings.
async fn rows_per_partition(url: &str) -> Vec<(String, i64, i64)> {
    sql_rows(
        url,
        "SELECT tableoid::regclass::text, count(*), min(ts) FROM readings GROUP BY 1 ORDER BY 1",
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_expired_partitions_and_trims_the_one_straddling_its_cutoff() {
    need_pg!();
    let mut app = spawn_app_with(Backend::Postgres, |s| {
        s.retention.raw = Keep::For(Duration::from_secs(2 * 86_400));
        s.retention.minute = Keep::For(Duration::from_secs(5 * 86_400));
        s.retention.batch_rows = 50;
        s.retention.pause = Duration::from_millis(1);
    })
    .await;
    // The retention pass the hub runs at start (on an empty database) is over before we write.
    let metrics = app.hub().state.metrics.clone();
    let render = || async { metrics.render() };
    let first_pass = "telehub_retention_passes_total 1";
    eventually(WAIT, first_pass, render, |m| m.contains(first_pass)).await;
    let now = Timestamp::now().as_micros();
    let today = now.div_euclid(DAY) * DAY;

    // At start: yesterday, today and three days ahead, and the DEFAULT partition.
    let parts = app.store.partitions().await.unwrap().unwrap();
    let starts: Vec<i64> = days_of(&parts).iter().map(|d| d.1).collect();
    assert_eq!(
        starts,
        (-1..=3).map(|d| today + d * DAY).collect::<Vec<_>>()
    );
    assert_eq!(
        days_of(&parts)[1].0,
        partition_name(today),
        "named after their day"
    );
    assert!(parts.iter().any(|p| p.bound == Bound::Default));

    // Six days of readings, one every ten minutes: most land in the DEFAULT partition.
    let device = add_device(&app, "d1").await;
    let rows: Vec<(i64, f64)> = (0..6 * 144 - 6)
        .map(|i| (today - 6 * DAY + i * 10 * MIN + 1234, (i % 41) as f64))
        .collect();
    for chunk in rows.chunks(300) {
        write(&app, &device, "t", chunk).await;
    }
    let in_default: i64 = (rows_per_partition(&app.db.url).await.iter())
        .filter(|r| r.0 == "readings_default")
        .map(|r| r.1)
        .sum();
    assert_eq!(
        in_default,
        5 * 144,
        "days before yesterday have no partition yet"
    );

    // The manager gives them partitions of their own and empties the DEFAULT one.
    let stop = CancellationToken::new();
    let pass = (app.store)
        .manage_partitions(&app.settings.storage, Timestamp::from_micros(now), &stop)
        .await
        .unwrap();
    assert_eq!(pass.created, 5);
    assert_eq!(pass.moved, 5 * 144);
    let per_partition = rows_per_partition(&app.db.url).await;
    assert!(per_partition.iter().all(|r| r.0 != "readings_default"));
    let mut expected: Vec<(String, i64, i64)> = (-6..0)
        .map(|d| {
            let day = today + d * DAY;
            let n = if d == -1 { 144 - 6 } else { 144 };
            (partition_name(day), n, day + 1234)
        })
        .collect();
    expected.sort();
    assert_eq!(per_partition, expected);

    // One more old reading, written after the pass: it waits in the DEFAULT partition.
    write(&app, &device, "t", &[(today - 10 * DAY, 7.0)]).await;

    // Retention as of today 12:00: the cutoff is the day before yesterday at 12:00.
    let noon = today + 12 * HOUR;
    let cutoff = noon - 2 * DAY;
    let report = run_pass(
        &app.store,
        &app.settings.retention,
        Timestamp::from_micros(noon),
        &app.hub().state.metrics,
        &stop,
    )
    .await
    .unwrap();
    assert!(report.complete);
    assert_eq!(
        report.raw as usize,
        4 * 144 + 72 + 1,
        "every expired reading counted"
    );

    let gone: Vec<String> = (-6..-2).map(|d| partition_name(today + d * DAY)).collect();
    let tables = partition_tables(&app.db.url).await;
    let listed = days_of(&app.store.partitions().await.unwrap().unwrap());
    for name in &gone {
        assert!(
            !tables.contains(name),
            "{name} dropped, not detached: {tables:?}"
        );
        assert!(
            listed.iter().all(|(n, _)| n != name),
            "{name} in pg_inherits"
        );
    }
    let straddling = partition_name(today - 2 * DAY);
    assert!(tables.contains(&straddling));
    let per_partition = rows_per_partition(&app.db.url).await;
    let kept: Vec<(i64, f64)> = rows.iter().copied().filter(|r| r.0 >= cutoff).collect();
    let first_kept = kept[0].0;
    assert!(
        per_partition.contains(&(straddling.clone(), 72, first_kept)),
        "the straddling partition keeps its readings from the cutoff on: {per_partition:?}"
    );

    // The API returns exactly the readings younger than the cutoff.
    let viewer = app.viewer().await;
    let path = format!(
        "/v1/readings?device=d1&sensor=t&from={}&to={}&limit=10000",
        Timestamp::from_micros(today - 11 * DAY).to_rfc3339(),
        Timestamp::from_micros(today).to_rfc3339()
    );
    let (status, body) = app.get(&path, Some(&viewer)).await;
    assert_eq!(status, 200, "{body}");
    let points: Vec<(i64, f64)> = (body["points"].as_array().unwrap().iter())
        .map(|p: &Value| {
            let ts = p["ts"].as_str().unwrap();
            let ts = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
            (ts.timestamp_micros(), p["value"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(points, kept);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_partition_interval_fills_the_gaps_around_existing_partitions() {
    need_pg!();
    let app = spawn_app_with(Backend::Postgres, |s| {
        s.storage.partitions_ahead = 1;
    })
    .await;
    let now = Timestamp::now().as_micros();
    let today = now.div_euclid(DAY) * DAY;
    // Days yesterday .. tomorrow exist; six-hour partitions go only where none is.
    let mut settings = app.settings.storage.clone();
    settings.partition_interval = Duration::from_secs(6 * 3600);
    settings.partitions_ahead = 12;
    let pass = (app.store)
        .manage_partitions(
            &settings,
            Timestamp::from_micros(now),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let days = days_of(&app.store.partitions().await.unwrap().unwrap());
    let after_tomorrow = today + 2 * DAY;
    let quarter = (now - today) / (6 * HOUR);
    let want_to = today + (quarter + 13) * 6 * HOUR;
    let new: Vec<i64> = (0..)
        .map(|i| after_tomorrow + i * 6 * HOUR)
        .take_while(|t| *t < want_to)
        .collect();
    assert_eq!(pass.created, new.len());
    let starts: Vec<i64> = days.iter().map(|d| d.1).collect();
    let mut want: Vec<i64> = vec![today - DAY, today, today + DAY];
    want.extend(&new);
    assert_eq!(starts, want);
    assert_eq!(days[3].0, partition_name(after_tomorrow));
    assert_eq!(
        days[4].0,
        format!("{}06", partition_name(after_tomorrow)),
        "a partition not starting at midnight carries its hour"
    );
}

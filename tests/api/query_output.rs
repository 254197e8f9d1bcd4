//! `query` and `export` output (issue 13): the series' unit in every format, computed
//! bucket values rounded in the table (full precision in CSV and JSON), and the same
//! time and format flags on both commands.

use crate::helpers::*;
use crate::procs::telehub_cli as telehub;
use serde_json::json;

fn stdout(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_are_printed_and_table_averages_are_rounded() {
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db.url.clone();
    let mut ws = app.connect_device(&app.device("boiler-1").await).await;
    let t0 = ((base_ts() as i64 - 1800) / 60 * 60) as f64;
    let readings: Vec<_> = [1.1, 1.2, 1.0]
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"sensor": "t", "value": v, "ts": t0 + i as f64, "unit": "Cel"}))
        .collect();
    send_json(&mut ws, &json!({"id": 1, "readings": readings})).await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);
    let avg = (1.1 + 1.2 + 1.0) / 3.0;
    assert_ne!(avg.to_string(), "1.1", "the test needs float noise");
    let q = |format: &str| {
        let args = [
            "query", "--device", "boiler-1", "--every", "1m", "--from", "-2h",
        ];
        stdout(&telehub(&db, &[&args[..], &["--format", format]].concat()))
    };

    let table = q("table");
    let row = table.lines().nth(1).unwrap();
    assert!(table.lines().next().unwrap().ends_with("UNIT"), "{table}");
    assert!(row.contains(" 1.1 ") && row.ends_with("Cel"), "{table}");
    let csv = q("csv");
    assert_eq!(
        csv.lines().next(),
        Some("device,sensor,ts,value,count,unit")
    );
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .ends_with(&format!(",{avg},3,Cel")),
        "{csv}"
    );
    let rows: Vec<serde_json::Value> = q("json")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (rows[0]["value"].as_f64(), &rows[0]["unit"]),
        (Some(avg), &json!("Cel"))
    );

    // export takes query's time defaults and its `json` format name.
    let out = telehub(&db, &["export", "--device", "boiler-1", "--format", "json"]);
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (&rows[1]["value"], &rows[1]["unit"]),
        (&json!(1.2), &json!("Cel"))
    );
    let out = telehub(
        &db,
        &["query", "--device", "boiler-1", "--format", "ndjson"],
    );
    assert_eq!(stdout(&out).lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_over_all_sensors_leave_out_the_series_the_aggregate_does_not_fit() {
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db.url.clone();
    let mut ws = app.connect_device(&app.device("press-1").await).await;
    let t0 = ((base_ts() as i64 - 1800) / 60 * 60) as f64;
    let readings = json!([
        {"sensor": "pressure", "value": 2.0, "ts": t0},
        {"sensor": "pressure", "value": 4.0, "ts": t0 + 1.0},
        {"sensor": "mode", "value": "auto", "ts": t0},
    ]);
    send_json(&mut ws, &json!({"id": 1, "readings": readings})).await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);
    let args = [
        "query", "--device", "press-1", "--every", "1m", "--from", "-2h", "--format", "csv",
    ];
    let o = telehub(&db, &args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let csv = stdout(&o);
    assert_eq!(
        csv.lines().count(),
        2,
        "header and the pressure bucket: {csv}"
    );
    assert!(
        csv.lines().nth(1).unwrap().starts_with("press-1,pressure,"),
        "{csv}"
    );
    assert!(
        err.contains("sensor mode:") && err.contains("left out"),
        "{err}"
    );
    // Asked for by name, the string sensor is a usage error.
    let o = telehub(&db, &[&args[..], &["--sensor", "mode"]].concat());
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

//! `/query` read by clients no one here wrote: Debian's `influx` shell (influxdb-client)
//! and the InfluxDB 1.x Python client (`influxdb`, in the venv that
//! `scripts/install-test-deps.sh` makes), their numbers compared with `/v1/readings`.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use telehub::domain::Timestamp;

/// Devices a and b, `temperature` every 10 s for an hour from an hour boundary, and `base`.
async fn two_devices(app: &TestApp) -> i64 {
    let base = (Timestamp::now().as_micros() - 2 * HOUR) / HOUR * HOUR;
    for (k, name) in ["a", "b"].iter().enumerate() {
        let dev = add_device(app, name).await;
        let rows: Vec<(i64, f64)> = (0..360)
            .map(|i| {
                (
                    base + i * 10_000_000,
                    ((i * 7 + k as i64 * 3) % 41) as f64 / 4.0,
                )
            })
            .collect();
        write(app, &dev, "temperature", &rows).await;
    }
    base
}

/// `/v1/readings?every=1m&agg=avg` of `device` as `[ms, value]` pairs.
async fn v1_minutes(
    app: &TestApp,
    viewer: &str,
    device: &str,
    from: i64,
    to: i64,
) -> Vec<(i64, f64)> {
    let t = |us| Timestamp::from_micros(us).to_rfc3339();
    let path = format!(
        "/v1/readings?device={device}&sensor=temperature&from={}&to={}&every=1m&agg=avg",
        t(from),
        t(to)
    );
    let (status, body) = app.get(&path, Some(viewer)).await;
    assert_eq!(status, 200, "{body}");
    body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ts = Timestamp::parse_rfc3339(p["ts"].as_str().unwrap()).unwrap();
            (ts.as_micros() / 1000, p["value"].as_f64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn the_influx_shell_shows_and_selects_what_v1_readings_has() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let base = two_devices(&app).await;
    let port = app.hub().addr.port().to_string();
    let influx = |statement: String| {
        let (port, viewer) = (port.clone(), viewer.clone());
        async move {
            let out = tokio::process::Command::new("influx")
                .stdin(std::process::Stdio::null())
                .args(["-host", "127.0.0.1", "-port", &port, "-database", "telehub"])
                .args([
                    "-username",
                    "x",
                    "-password",
                    &viewer,
                    "-precision",
                    "ms",
                    "-format",
                    "json",
                ])
                .args(["-execute", &statement])
                .output()
                .await
                .expect("influx runs (apt-get install influxdb-client)");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{statement}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_str::<Value>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
        }
    };
    let shown = influx("SHOW MEASUREMENTS".into()).await;
    assert_eq!(
        shown["results"][0]["series"][0]["values"],
        json!([["temperature"]]),
        "{shown}"
    );
    let tags = influx(r#"SHOW TAG VALUES FROM "temperature" WITH KEY = "device""#.into()).await;
    assert_eq!(
        tags["results"][0]["series"][0]["values"],
        json!([["device", "a"], ["device", "b"]]),
        "{tags}"
    );
    let (from, to) = (base + 90_000_000, base + HOUR);
    let got = influx(format!(
        r#"SELECT mean("value") FROM "temperature" WHERE time >= {}ms AND time < {}ms GROUP BY time(1m), "device" fill(none)"#,
        from / 1000,
        to / 1000
    ))
    .await;
    let series = got["results"][0]["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{got}");
    for (s, device) in series.iter().zip(["a", "b"]) {
        assert_eq!(s["tags"]["device"], device);
        let rows: Vec<(i64, f64)> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_i64().unwrap(), r[1].as_f64().unwrap()))
            .collect();
        assert_eq!(rows, v1_minutes(&app, &viewer, device, from, to).await);
        assert_eq!(rows.len(), 59);
    }
    // Without a token the shell reports the hub's 401.
    let out = tokio::process::Command::new("influx")
        .stdin(std::process::Stdio::null())
        .args([
            "-host",
            "127.0.0.1",
            "-port",
            &port,
            "-execute",
            "SHOW DATABASES",
        ])
        .output()
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("missing token"), "{said}");
}

#[tokio::test]
async fn the_python_influxdb_client_queries_and_gets_points_by_device_tag() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let base = two_devices(&app).await;
    let (from, to) = (base, base + HOUR);
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/influx/.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        venv.display()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/influx/query_v1.py");
    let out = tokio::process::Command::new(venv)
        .arg(script)
        .args(["127.0.0.1", &app.hub().addr.port().to_string(), &viewer])
        .args([(from / 1000).to_string(), (to / 1000).to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["databases"], json!(["telehub"]));
    assert_eq!(got["measurements"], json!(["temperature"]));
    for device in ["a", "b"] {
        let points: BTreeMap<i64, f64> = got[device]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["time"].as_i64().unwrap(), p["mean"].as_f64().unwrap()))
            .collect();
        let want: BTreeMap<i64, f64> = v1_minutes(&app, &viewer, device, from, to)
            .await
            .into_iter()
            .collect();
        assert_eq!(points.len(), 60);
        assert_eq!(points, want, "{device}");
    }
    let last = base + 359 * 10_000_000;
    let value = ((359 * 7 + 3) % 41) as f64 / 4.0;
    let a_value = ((359 * 7) % 41) as f64 / 4.0;
    // Both devices' newest readings share the time; InfluxDB's order between them is by series.
    let latest = &got["latest"][0];
    assert_eq!(latest["time"], json!(last / 1000), "{got}");
    assert!(
        latest["value"] == json!(value) || latest["value"] == json!(a_value),
        "{got}"
    );
}

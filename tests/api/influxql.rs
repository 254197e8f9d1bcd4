//! `/query` (CONTRACT §15) over raw HTTP with the parameters Grafana's InfluxDB data
//! source sends: its connection test, its query editor's SHOW statements and its panels,
//! on both backends; every bucket equal to `/v1/readings`'s; `fill()`, grouping, regexes,
//! epochs; and the refusals (parse errors, unsupported clauses, caps, tokens).

use crate::both_backends;
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use telehub::domain::Timestamp;

/// `GET /query` with `params`, the token as Grafana's `u`/`p` (or none).
pub async fn query(app: &TestApp, token: Option<&str>, params: &[(&str, &str)]) -> (u16, Value) {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    if let Some(t) = token {
        all.extend([("u", "grafana"), ("p", t)]);
    }
    let resp = reqwest::Client::new()
        .get(format!("{}/query", app.http()))
        .query(&all)
        .send()
        .await
        .unwrap();
    answer(resp).await
}

/// `POST /query` with a form body, the token as basic auth's password (Grafana's POST mode).
async fn query_post(
    app: &TestApp,
    token: &str,
    url_params: &[(&str, &str)],
    q: &str,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/query", app.http()))
        .query(url_params)
        .basic_auth("grafana", Some(token))
        .form(&[("q", q)])
        .send()
        .await
        .unwrap();
    answer(resp).await
}

async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The one statement's series of a 200 answer.
pub fn series(body: &Value) -> Vec<Value> {
    assert!(body["results"][0]["error"].is_null(), "{body}");
    body["results"][0]["series"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn ms(us: i64) -> String {
    format!("{}ms", us / 1000)
}

/// Readings of `temperature` on devices a, b, c every 7 s for two hours from `base` (an
/// hour boundary three hours ago), quarter values so every sum is exact.
async fn fleet(app: &TestApp) -> i64 {
    let base = (Timestamp::now().as_micros() - 3 * HOUR) / HOUR * HOUR;
    for (k, name) in ["a", "b", "c"].iter().enumerate() {
        let dev = add_device(app, name).await;
        let rows: Vec<(i64, f64)> = (0..(2 * 3600 / 7))
            .map(|i| {
                (
                    base + i * 7_000_000,
                    ((i * 13 + k as i64 * 5) % 97) as f64 / 4.0,
                )
            })
            .collect();
        write(app, &dev, "temperature", &rows).await;
        write(app, &dev, "hum.rel", &[(base, 50.0 + k as f64)]).await;
    }
    base
}

/// `/v1/readings` buckets as `bucket start µs → (value, count)`.
async fn v1_buckets(
    app: &TestApp,
    viewer: &str,
    device: &str,
    from: i64,
    to: i64,
    every: &str,
    agg: &str,
) -> BTreeMap<i64, (f64, i64)> {
    let t = |us| Timestamp::from_micros(us).to_rfc3339();
    let path = format!(
        "/v1/readings?device={device}&sensor=temperature&from={}&to={}&every={every}&agg={agg}",
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
            (
                ts.as_micros(),
                (p["value"].as_f64().unwrap(), p["count"].as_i64().unwrap()),
            )
        })
        .collect()
}

async fn grafanas_panels_equal_v1_readings_buckets(b: Backend) {
    let app = spawn_app(b).await;
    let viewer = app.viewer().await;
    let base = fleet(&app).await;
    let (from, to) = (base + 5 * MIN + 3_000_000, base + 2 * HOUR - 1_000);
    let aggs = [
        ("mean", "avg"),
        ("min", "min"),
        ("max", "max"),
        ("sum", "sum"),
        ("count", "count"),
        ("first", "first"),
        ("last", "last"),
    ];
    for (every, every_us) in [("10s", 10_000_000i64), ("1m", MIN)] {
        for (func, agg) in aggs {
            let q = format!(
                r#"SELECT {func}("value") FROM "temperature" WHERE ("device" =~ /^(a|b)$/) AND time >= {} and time <= {} GROUP BY time({every}), "device" fill(null) tz('Europe/Berlin')"#,
                ms(from),
                ms(to)
            );
            let (status, body) = query(
                &app,
                Some(&viewer),
                &[("db", "telehub"), ("q", &q), ("epoch", "ms")],
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let got = series(&body);
            assert_eq!(got.len(), 2, "{q}: {body}");
            for (s, device) in got.iter().zip(["a", "b"]) {
                assert_eq!(s["name"], "temperature");
                assert_eq!(s["tags"], json!({"device": device}));
                assert_eq!(s["columns"], json!(["time", func]));
                let want = v1_buckets(&app, &viewer, device, from, to, every, agg).await;
                let rows = s["values"].as_array().unwrap();
                let first = from / every_us * every_us;
                let n = ((to - 1) / every_us * every_us - first) / every_us + 1;
                assert_eq!(
                    rows.len() as i64,
                    n,
                    "{q}: every bucket of the range, filled"
                );
                for (k, row) in rows.iter().enumerate() {
                    let t = first + k as i64 * every_us;
                    assert_eq!(row[0], json!(t / 1000), "{q}");
                    match want.get(&t) {
                        Some((v, _)) => assert_eq!(row[1].as_f64(), Some(*v), "{q} at {t}"),
                        None if func == "count" => assert_eq!(row[1], json!(0), "{q} at {t}"),
                        None => assert!(row[1].is_null(), "{q} at {t}: {row}"),
                    }
                }
                assert!(
                    want.values().any(|v| v.1 > 1),
                    "buckets hold several readings"
                );
            }
        }
    }
    // The same panel in Grafana's POST mode (form body, basic auth).
    let q = format!(
        r#"SELECT max("value") FROM "temperature" WHERE time >= {} and time <= {} GROUP BY time(1h) fill(none)"#,
        ms(base),
        ms(base + 2 * HOUR - 1)
    );
    let (status, body) = query_post(&app, &viewer, &[("db", "telehub"), ("epoch", "ms")], &q).await;
    assert_eq!(status, 200, "{body}");
    let s = series(&body);
    assert_eq!(s.len(), 1, "not grouped: one series over every device");
    assert!(s[0].get("tags").is_none(), "{body}");
    let mut want = BTreeMap::new();
    for d in ["a", "b", "c"] {
        for (t, (v, _)) in v1_buckets(&app, &viewer, d, base, base + 2 * HOUR, "1h", "max").await {
            let m: &mut f64 = want.entry(t / 1000).or_insert(f64::MIN);
            *m = m.max(v);
        }
    }
    let got: BTreeMap<i64, f64> = s[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_f64().unwrap()))
        .collect();
    assert_eq!(got, want);
    // A stat panel: the newest reading of any device.
    let q = r#"SELECT "value" FROM "temperature" WHERE "device" = 'c' AND time >= now() - 6h ORDER BY time DESC LIMIT 1"#;
    let (_, body) = query(
        &app,
        Some(&viewer),
        &[("db", "telehub"), ("q", q), ("epoch", "ms")],
    )
    .await;
    let s = series(&body);
    let last_ts = base + (2 * 3600 / 7 - 1) * 7_000_000;
    let (_, latest) = app
        .get(
            &format!(
                "/v1/readings?device=c&sensor=temperature&from={}",
                Timestamp::from_micros(last_ts).to_rfc3339()
            ),
            Some(&viewer),
        )
        .await;
    assert_eq!(s[0]["columns"], json!(["time", "value"]));
    assert_eq!(
        s[0]["values"],
        json!([[last_ts / 1000, latest["points"][0]["value"]]])
    );
}
both_backends!(grafanas_panels_equal_v1_readings_buckets);

async fn grafanas_connection_test_and_query_editor_get_influxdb_shaped_answers(b: Backend) {
    let app = spawn_app(b).await;
    let viewer = app.viewer().await;
    fleet(&app).await;
    let ask = |q: &'static str| {
        let (app, viewer) = (&app, &viewer);
        async move {
            let (status, body) = query(
                app,
                Some(viewer),
                &[("db", "telehub"), ("q", q), ("epoch", "ms")],
            )
            .await;
            assert_eq!(status, 200, "{q}: {body}");
            series(&body)
        }
    };
    let names = json!({"name": "measurements", "columns": ["name"], "values": [["hum"], ["hum.rel"], ["temperature"]]});
    assert_eq!(ask("SHOW measurements").await, vec![names]);
    assert_eq!(
        ask("SHOW MEASUREMENTS WITH MEASUREMENT =~ /temp/ LIMIT 100").await,
        vec![json!({"name": "measurements", "columns": ["name"], "values": [["temperature"]]})]
    );
    assert_eq!(
        ask(r#"SHOW TAG KEYS FROM "temperature""#).await,
        vec![json!({"name": "temperature", "columns": ["tagKey"], "values": [["device"]]})]
    );
    assert_eq!(
        ask(r#"SHOW TAG VALUES FROM "temperature" WITH KEY = "device""#).await,
        vec![
            json!({"name": "temperature", "columns": ["key", "value"], "values": [["device", "a"], ["device", "b"], ["device", "c"]]})
        ]
    );
    assert_eq!(
        ask(r#"SHOW FIELD KEYS FROM "hum""#).await,
        vec![
            json!({"name": "hum", "columns": ["fieldKey", "fieldType"], "values": [["rel", "float"]]})
        ]
    );
    assert_eq!(
        ask(r#"SHOW RETENTION POLICIES on "telehub""#).await,
        vec![
            json!({"columns": ["name", "duration", "shardGroupDuration", "replicaN", "default"], "values": [["autogen", "0s", "168h0m0s", 1, true]]})
        ]
    );
    assert_eq!(
        ask("SHOW DATABASES").await[0]["values"],
        json!([["telehub"]])
    );
    // Several statements: one result each, in order; a failing one does not stop the others.
    let (_, body) = query(
        &app,
        Some(&viewer),
        &[(
            "q",
            "SHOW DATABASES; SELECT median(value) FROM temperature; SHOW TAG KEYS",
        )],
    )
    .await;
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[1]["statement_id"], 1);
    assert!(
        results[1]["error"].as_str().unwrap().contains("median"),
        "{body}"
    );
    assert_eq!(results[2]["series"].as_array().unwrap().len(), 3);
}
both_backends!(grafanas_connection_test_and_query_editor_get_influxdb_shaped_answers);

#[tokio::test]
async fn fill_grouping_epochs_and_dotted_sensors_behave_as_influxdb() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let base = (Timestamp::now().as_micros() - 2 * HOUR) / HOUR * HOUR;
    let a = add_device(&app, "a").await;
    let b = add_device(&app, "b").await;
    // a: 1 at 0 s, 4 at 30 s; b: 10 at 10 s. Buckets of 10 s from 0 to 50 s.
    write(&app, &a, "t", &[(base, 1.0), (base + 30_000_000, 4.0)]).await;
    write(&app, &b, "t", &[(base + 10_000_000, 10.0)]).await;
    write(&app, &a, "boiler.pressure", &[(base, 2.0)]).await;
    let ask = |q: String, epoch: &'static str| {
        let (app, viewer) = (&app, &viewer);
        async move {
            let (status, body) = query(app, Some(viewer), &[("q", &q), ("epoch", epoch)]).await;
            assert_eq!(status, 200, "{q}: {body}");
            series(&body)
        }
    };
    let range = format!("time >= {} AND time < {}", ms(base), ms(base + 50_000_000));
    let panel = |fill: &str| {
        format!(
            r#"SELECT mean("value") FROM "t" WHERE "device" = 'a' AND {range} GROUP BY time(10s) fill({fill})"#
        )
    };
    let col = |s: &[Value]| -> Vec<Value> {
        s[0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[1].clone())
            .collect()
    };
    assert_eq!(
        col(&ask(panel("null"), "s").await),
        [
            json!(1.0),
            Value::Null,
            Value::Null,
            json!(4.0),
            Value::Null
        ]
    );
    assert_eq!(
        col(&ask(panel("none"), "s").await),
        [json!(1.0), json!(4.0)]
    );
    assert_eq!(
        col(&ask(panel("previous"), "s").await),
        [json!(1.0), json!(1.0), json!(1.0), json!(4.0), json!(4.0)]
    );
    assert_eq!(
        col(&ask(panel("linear"), "s").await),
        [json!(1.0), json!(2.0), json!(3.0), json!(4.0), Value::Null]
    );
    assert_eq!(
        col(&ask(panel("-1"), "s").await),
        [
            json!(1.0),
            json!(-1.0),
            json!(-1.0),
            json!(4.0),
            json!(-1.0)
        ]
    );
    let times: Vec<Value> = ask(panel("none"), "s").await[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        times,
        [json!(base / 1_000_000), json!(base / 1_000_000 + 30)]
    );
    // GROUP BY * gives a series per device; without it, one over all readings.
    let by = |g: &str| {
        format!(r#"SELECT mean("value") FROM "t" WHERE {range} GROUP BY time(1h){g} fill(none)"#)
    };
    let s = ask(by(", *"), "ms").await;
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0]["tags"].clone(), s[1]["values"][0][1].clone()),
        (json!({"device": "a"}), json!(10.0))
    );
    assert_eq!(ask(by(""), "ms").await[0]["values"][0][1], json!(5.0));
    // No GROUP BY time: one row, at the range's start.
    let s = ask(
        format!(r#"SELECT count("value") FROM "t" WHERE {range}"#),
        "ms",
    )
    .await;
    assert_eq!(s[0]["values"], json!([[base / 1000, 3]]));
    // ORDER BY time DESC (series in reverse order too, as InfluxDB lists them), LIMIT,
    // SLIMIT; RFC 3339 times without epoch.
    let s = ask(format!(r#"SELECT "value" FROM /^t$/ WHERE {range} GROUP BY "device" ORDER BY time DESC LIMIT 1 SLIMIT 1"#), "").await;
    let at = Timestamp::from_micros(base + 10_000_000)
        .to_datetime()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert_eq!(
        s,
        vec![
            json!({"name": "t", "tags": {"device": "b"}, "columns": ["time", "value"], "values": [[at, 10.0]]})
        ]
    );
    // A sensor `boiler.pressure` is measurement `boiler`, field `pressure` (and itself).
    let s = ask(
        format!(r#"SELECT "pressure" FROM "boiler" WHERE {range}"#),
        "u",
    )
    .await;
    assert_eq!(s[0]["values"], json!([[base, 2.0]]));
    let s = ask(
        format!(r#"SELECT * FROM "boiler.pressure" WHERE {range}"#),
        "ns",
    )
    .await;
    assert_eq!(s[0]["values"], json!([[base * 1000, 2.0]]));
    // Times as RFC 3339 strings and now() - d.
    let s = ask(
        format!(
            r#"SELECT last("value") FROM "t" WHERE time > '{}' AND time < now() GROUP BY "device""#,
            Timestamp::from_micros(base).to_rfc3339()
        ),
        "ms",
    )
    .await;
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(
        s[0]["values"][0][1],
        json!(4.0),
        "after `base` only: a's reading at 30 s"
    );
}

#[tokio::test]
async fn bad_queries_get_influxdb_shaped_refusals() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.http.max_query_series = 1;
        s.http.max_query_points = 100;
    })
    .await;
    let viewer = app.viewer().await;
    let device = app.device("a").await;
    let base = (Timestamp::now().as_micros() - HOUR) / HOUR * HOUR;
    let a = add_device(&app, "b").await;
    write(&app, &a, "t", &[(base, 1.0)]).await;
    let dev_b = telehub::domain::DeviceName::parse("a").unwrap();
    let a_ref = app.store.find_device(&dev_b).await.unwrap().unwrap();
    write(&app, &a_ref, "t", &[(base, 2.0)]).await;
    let q = |q: &'static str| vec![("q", q)];
    // Syntax: 400 with InfluxDB's wording.
    let (status, body) = query(&app, Some(&viewer), &q("SELEC * FROM t")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "error parsing query: found SELEC, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL at line 1, char 1"
    );
    let (status, body) = query(
        &app,
        Some(&viewer),
        &q("SELECT mean(value) FROM t GROUP BY time("),
    )
    .await;
    assert_eq!(
        (
            status,
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("error parsing query: found EOF, expected duration")
        ),
        (400, true),
        "{body}"
    );
    // Unsupported functions and clauses: a statement error naming them.
    let err = |body: &Value| {
        body["results"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for (text, named) in [
        (
            "SELECT percentile(value, 95) FROM t WHERE time > now() - 1h",
            "percentile",
        ),
        ("SELECT mean(value) INTO x FROM t", "INTO"),
        (
            r#"SELECT mean(value) FROM t WHERE time > now() - 1h GROUP BY "host""#,
            "host",
        ),
        ("SELECT value FROM t WHERE value > 5", "field values"),
        ("SHOW SERIES", "SHOW SERIES"),
        ("SELECT mean(value), max(value) FROM t", "2 fields"),
    ] {
        let (status, body) = query(&app, Some(&viewer), &q(text)).await;
        assert_eq!(status, 200, "{text}: {body}");
        assert!(err(&body).contains(named), "{text}: {body}");
    }
    // Caps: series and values.
    let (_, body) = query(
        &app,
        Some(&viewer),
        &q(r#"SELECT "value" FROM t GROUP BY "device""#),
    )
    .await;
    assert!(err(&body).contains("max_query_series"), "{body}");
    let (_, body) = query(&app, Some(&viewer), &q(r#"SELECT mean("value") FROM t WHERE "device" = 'a' AND time > now() - 2h GROUP BY time(1s)"#)).await;
    assert!(err(&body).contains("max_query_points"), "{body}");
    // Tokens: none 401, a device's 403, ?p= and Authorization: Token accepted.
    assert_eq!(query(&app, None, &q("SHOW DATABASES")).await.0, 401);
    assert_eq!(
        query(&app, Some(&device), &q("SHOW DATABASES")).await.0,
        403
    );
    let (status, _) = answer(
        reqwest::Client::new()
            .get(format!("{}/query", app.http()))
            .query(&[("q", "SHOW DATABASES")])
            .header("Authorization", format!("Token {viewer}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = query(&app, Some(&viewer), &[]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("missing required parameter \"q\""))
    );
}

#[tokio::test]
async fn the_demo_dashboards_queries_run_as_grafana_substitutes_them() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let base = fleet(&app).await;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/grafana/dashboards/telehub-demo.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut queries: Vec<String> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["query"].as_str().unwrap().to_owned())
        .collect();
    for p in dash["panels"].as_array().unwrap() {
        queries.extend(
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["query"].as_str().unwrap().to_owned()),
        );
    }
    assert!(queries.len() >= 5);
    let time_filter = format!("time >= {} and time <= {}", ms(base), ms(base + 2 * HOUR));
    for q in queries {
        let q = q
            .replace("$timeFilter", &time_filter)
            .replace("$__interval", "1m")
            .replace("$device", "(a|b|c)");
        let (status, body) = query(
            &app,
            Some(&viewer),
            &[("db", "telehub"), ("q", &q), ("epoch", "ms")],
        )
        .await;
        assert_eq!(status, 200, "{q}: {body}");
        assert!(body["results"][0]["error"].is_null(), "{q}: {body}");
    }
}

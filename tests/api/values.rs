//! Value types (docs/protocol.md §8): booleans and strings round-trip from a device socket to
//! the API on both backends; a reading of another type than its series' is refused whole;
//! bucket aggregates on boolean and string series equal a raw computation under late and
//! duplicate data; `max_points` keeps every transition; a database made by the previous
//! migrations upgrades in place and keeps every reading.

use crate::both_backends;
use crate::helpers::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use telehub::auth::DeviceRef;
use telehub::domain::{Reading, SensorName, Timestamp, Value};
use telehub::storage::{Agg, RangeQuery, StorageError};

/// Arbitrary values of each type, as JSON: numbers of magnitude at most 1e300, booleans, strings of 1–256
/// bytes of UTF-8 without control characters.
fn arbitrary_values(runner: &mut TestRunner, n: usize) -> [Vec<Json>; 3] {
    let mut sample = |s: proptest::strategy::BoxedStrategy<Json>| -> Vec<Json> {
        (0..n)
            .map(|_| s.new_tree(runner).unwrap().current())
            .collect()
    };
    let numbers = sample(
        proptest::num::f64::NORMAL
            .prop_filter("magnitude at most 1e300", |v| v.abs() <= 1e300)
            .prop_map(|v| json!(v))
            .boxed(),
    );
    let bools = sample(proptest::bool::ANY.prop_map(|b| json!(b)).boxed());
    let strings = sample(
        "[^\\p{Cc}]{1,64}"
            .prop_filter("at most 256 bytes", |s| s.len() <= 256)
            .prop_map(|s| json!(s))
            .boxed(),
    );
    [numbers, bools, strings]
}

async fn each_value_type_round_trips_from_a_device_socket_to_the_api(b: Backend) {
    let app = spawn_app(b).await;
    let token = app.device("f1").await;
    let viewer = app.viewer().await;
    let mut ws = app.connect_device(&token).await;
    let mut runner = TestRunner::deterministic();
    let t0 = base_ts();
    for (sensor, values) in ["n", "b", "s"]
        .iter()
        .zip(arbitrary_values(&mut runner, 60))
    {
        // Half as protocol.md §2 objects, half as SenML records (v, vb, vs).
        let (objects, senml) = values.split_at(30);
        let readings: Vec<Json> = (objects.iter().enumerate())
            .map(|(i, v)| json!({"sensor": sensor, "value": v, "ts": t0 + i as f64}))
            .collect();
        send_json(&mut ws, &json!({"id": 1, "readings": readings})).await;
        assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 30}));
        let field = match *sensor {
            "n" => "v",
            "b" => "vb",
            _ => "vs",
        };
        let records: Vec<Json> = (senml.iter().enumerate())
            .map(|(i, v)| json!({"n": sensor, field: v, "t": t0 + 30.0 + i as f64}))
            .collect();
        send_json(&mut ws, &Json::Array(records)).await;
        assert_eq!(next_json(&mut ws).await, json!({"ack": null, "stored": 30}));
        let (status, body) = app
            .get(
                &format!("/v1/readings?device=f1&sensor={sensor}&from=2000-01-01T00:00:00Z"),
                Some(&viewer),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let got: Vec<&Json> = body["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["value"])
            .collect();
        assert_eq!(got, values.iter().collect::<Vec<_>>(), "sensor {sensor}");
    }
}
both_backends!(each_value_type_round_trips_from_a_device_socket_to_the_api);

async fn a_reading_of_another_type_is_refused_whole_naming_the_series_type(b: Backend) {
    let app = spawn_app(b).await;
    let token = app.device("f1").await;
    let mut ws = app.connect_device(&token).await;
    let t0 = base_ts();
    let msg = |id: u64, rs: Json| json!({"id": id, "readings": rs});
    send_json(
        &mut ws,
        &msg(1, json!([{"sensor": "door", "value": true, "ts": t0}])),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 1}));
    // A number for the boolean series: nothing of the message is stored.
    let bad = json!([{"sensor": "t", "value": -18.0, "ts": t0}, {"sensor": "door", "value": 1, "ts": t0 + 1.0}]);
    send_json(&mut ws, &msg(2, bad)).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["nack"], 2, "{reply}");
    assert_eq!(reply["error"], "invalid_reading", "{reply}");
    let detail = reply["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("readings[1].value: sensor door holds boolean values"),
        "{detail}"
    );
    // Two types for one new series in one message: the first fixes it, the message is refused.
    let mixed = json!([{"sensor": "mode", "value": "cooling", "ts": t0}, {"sensor": "mode", "value": true, "ts": t0 + 1.0}]);
    send_json(&mut ws, &msg(3, mixed)).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(
        (reply["nack"].clone(), reply["error"].clone()),
        (json!(3), json!("invalid_reading")),
        "{reply}"
    );
    assert!(
        reply["detail"]
            .as_str()
            .unwrap()
            .contains("holds string values"),
        "{reply}"
    );
    // The refused message left no series type behind: `mode` may still become a number.
    send_json(
        &mut ws,
        &msg(4, json!([{"sensor": "mode", "value": 2, "ts": t0}])),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 4, "stored": 1}));
    let stored = app.stored("f1").await;
    let sensors: Vec<&str> = stored.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        sensors,
        ["door", "mode"],
        "nothing of a refused message is stored"
    );
}
both_backends!(a_reading_of_another_type_is_refused_whole_naming_the_series_type);

/// Sends `rows` shuffled in batches with resends and conflicting duplicates; returns
/// what is stored: per timestamp, the first value sent.
async fn late_and_duplicate(
    app: &TestApp,
    device: &DeviceRef,
    sensor: &str,
    mut rows: Vec<(i64, Value)>,
    other: impl Fn(&Value) -> Value,
    rng: &mut StdRng,
) -> BTreeMap<i64, Value> {
    rows.shuffle(rng);
    let mut stored: BTreeMap<i64, Value> = BTreeMap::new();
    for chunk in rows.chunks(rng.random_range(20..200)) {
        let mut batch = chunk.to_vec();
        let sent: Vec<_> = stored.iter().collect();
        for _ in 0..rng.random_range(0..10) {
            if let Some((ts, v)) = sent.get(rng.random_range(0..sent.len().max(1))) {
                let v = if rng.random_bool(0.5) {
                    (*v).clone()
                } else {
                    other(v)
                };
                batch.push((**ts, v));
            }
        }
        write(app, device, sensor, &batch).await;
        for (ts, v) in &batch {
            stored.entry(*ts).or_insert_with(|| v.clone());
        }
    }
    stored
}

/// A bucket as computed from the stored readings: (start, value, count).
fn expected(
    stored: &BTreeMap<i64, Value>,
    from: i64,
    to: i64,
    every: i64,
    agg: Agg,
) -> Vec<(i64, Value, i64)> {
    let mut groups: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for (ts, v) in stored.range(from..to) {
        groups
            .entry(ts.div_euclid(every) * every)
            .or_default()
            .push(v);
    }
    let truth = |v: &Value| matches!(v, Value::Bool(true));
    groups
        .into_iter()
        .map(|(b, vs)| {
            let n = vs.len();
            let value = match agg {
                Agg::Count => Value::Number(n as f64),
                Agg::First => vs[0].clone(),
                Agg::Last => vs[n - 1].clone(),
                Agg::Avg => Value::Number(vs.iter().filter(|v| truth(v)).count() as f64 / n as f64),
                Agg::Min => Value::Bool(vs.iter().all(|v| truth(v))),
                Agg::Max => Value::Bool(vs.iter().any(|v| truth(v))),
                Agg::Sum => unreachable!("refused"),
            };
            (b, value, n as i64)
        })
        .collect()
}

async fn boolean_and_string_buckets_equal_a_raw_computation_under_late_and_duplicate_data(
    b: Backend,
) {
    let app = spawn_app(b).await;
    let device = add_device(&app, "f1").await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Timestamp::now().as_micros() - 3 * 24 * HOUR + rng.random_range(0..HOUR);
    let span = 26 * HOUR;
    let states = ["cooling", "defrost", "idle, \"door\" open"];
    let (mut bools, mut texts) = (Vec::new(), Vec::new());
    for _ in 0..1_500 {
        let ts = start + rng.random_range(0..span);
        bools.push((ts, Value::Bool(rng.random_bool(0.3))));
        let s = states[rng.random_range(0..states.len())];
        texts.push((ts + 1, Value::text(s).unwrap()));
    }
    let flip = |v: &Value| match v {
        Value::Bool(b) => Value::Bool(!b),
        _ => Value::text("conflicting duplicate").unwrap(),
    };
    let door = late_and_duplicate(&app, &device, "door", bools, flip, &mut rng).await;
    let mode = late_and_duplicate(&app, &device, "mode", texts, flip, &mut rng).await;
    held_back_buckets_written(&app).await;
    let aggs = [
        (Agg::Avg, true),
        (Agg::Min, true),
        (Agg::Max, true),
        (Agg::Count, true),
        (Agg::First, true),
        (Agg::Last, true),
        (Agg::Sum, false),
    ];
    let every_choices = [MIN, 15 * MIN, HOUR, 3 * HOUR, 7_000_000, 13 * MIN + 1];
    for (sensor, stored) in [("door", &door), ("mode", &mode)] {
        let series = series_id(&app, &device, sensor).await;
        for case in 0..40 {
            let (agg, on_bool) = aggs[rng.random_range(0..aggs.len())];
            let applies = if sensor == "door" {
                on_bool
            } else {
                matches!(agg, Agg::Count | Agg::First | Agg::Last)
            };
            let every = every_choices[rng.random_range(0..every_choices.len())];
            let mut from = rng.random_range(start - HOUR..start + span);
            let mut to = rng.random_range(from + 1..start + span + HOUR);
            if case % 3 == 0 {
                (from, to) = (from / HOUR * HOUR, (to / MIN + 1) * MIN);
            }
            let q = RangeQuery {
                series,
                from: Timestamp::from_micros(from),
                to: Timestamp::from_micros(to),
                after: None,
                limit: 1_000_000,
            };
            let got = app.store.query_buckets(q, every, agg).await;
            let ctx =
                format!("seed {seed} {sensor} case {case}: {agg:?} every {every} [{from}, {to})");
            if !applies {
                assert!(matches!(got, Err(StorageError::InvalidQuery(_))), "{ctx}");
                continue;
            }
            let got: Vec<_> = got
                .unwrap()
                .into_iter()
                .map(|b| (b.ts.as_micros(), b.value, b.count))
                .collect();
            assert_eq!(got, expected(stored, from, to, every, agg), "{ctx}");
        }
    }
    // Over HTTP, an aggregate a type lacks is a 400 invalid_query naming it.
    let viewer = app.viewer().await;
    let (status, body) = app
        .get(
            "/v1/readings?device=f1&sensor=mode&from=-7d&every=1h&agg=avg",
            Some(&viewer),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_query", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("avg does not apply to a string series"),
        "{body}"
    );
}
both_backends!(boolean_and_string_buckets_equal_a_raw_computation_under_late_and_duplicate_data);

async fn max_points_on_a_boolean_series_keeps_every_transition(b: Backend) {
    let app = spawn_app(b).await;
    let device = add_device(&app, "f1").await;
    let viewer = app.viewer().await;
    let start = Timestamp::now().as_micros() - 2 * HOUR;
    let mut rng = StdRng::seed_from_u64(7);
    let mut state = false;
    let rows: Vec<(i64, Value)> = (0..3_000)
        .map(|i| {
            if rng.random_bool(0.02) {
                state = !state;
            }
            (start + i * 1_000_000, Value::Bool(state))
        })
        .collect();
    for chunk in rows.chunks(500) {
        write(&app, &device, "door", chunk).await;
    }
    let (status, body) = app
        .get(
            "/v1/readings?device=f1&sensor=door&from=-3h&max_points=40",
            Some(&viewer),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let points = body["points"].as_array().unwrap();
    let got: Vec<(i64, bool)> = points
        .iter()
        .map(|p| {
            let ts = Timestamp::parse_rfc3339(p["ts"].as_str().unwrap()).unwrap();
            (ts.as_micros(), p["value"].as_bool().unwrap())
        })
        .collect();
    let mut want: Vec<(i64, bool)> = Vec::new();
    for (i, (ts, v)) in rows.iter().enumerate() {
        let Value::Bool(v) = v else { unreachable!() };
        let changed = i == 0 || rows[i - 1].1 != rows[i].1;
        if changed || i == rows.len() - 1 {
            want.push((*ts, *v));
        }
    }
    assert!(
        want.len() > 40,
        "the test has more transitions than max_points"
    );
    assert_eq!(got, want, "every transition, and the last reading");
}
both_backends!(max_points_on_a_boolean_series_keeps_every_transition);

/// Applies the migrations before value types (0001–0003) to a fresh database.
async fn migrate_before_value_types(url: &str) {
    use std::borrow::Cow;
    use std::str::FromStr;
    let old = |m: sqlx::migrate::Migrator| sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            m.migrations
                .iter()
                .filter(|m| m.version < 4)
                .cloned()
                .collect(),
        ),
        ..m
    };
    if url.starts_with("sqlite:") {
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        old(sqlx::migrate!("./migrations/sqlite"))
            .run(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        old(sqlx::migrate!("./migrations/postgres"))
            .run(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

async fn a_database_from_the_previous_migrations_upgrades_and_keeps_every_reading(b: Backend) {
    let db = TestDb::new(b).await;
    migrate_before_value_types(&db.url).await;
    sql_exec(
        &db.url,
        "INSERT INTO devices (name, created_us) VALUES ('old-1', 0)",
    )
    .await;
    sql_exec(
        &db.url,
        "INSERT INTO series (device_id, sensor, unit) SELECT id, 't', 'Cel' FROM devices",
    )
    .await;
    sql_exec(
        &db.url,
        "INSERT INTO readings (series_id, ts, value) SELECT id, 1795255200000000, 21.5 FROM series
         UNION ALL SELECT id, 1795255201000000, -3.25 FROM series
         UNION ALL SELECT id, 1795255202000000, 0 FROM series",
    )
    .await;
    let ids: Vec<(i64,)> = sql_rows(&db.url, "SELECT id FROM series", &[]).await;
    let mut settings = test_settings(&db);
    settings.database.url = db.url.clone();
    let hub = telehub::hub::start(settings)
        .await
        .expect("the hub upgrades the database");
    let store = hub.state.store.clone();
    let q = RangeQuery {
        series: ids[0].0,
        from: Timestamp::from_micros(0),
        to: Timestamp::now(),
        after: None,
        limit: 100,
    };
    let values: Vec<Value> = store
        .query_points(q)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.value)
        .collect();
    assert_eq!(
        values,
        [
            Value::Number(21.5),
            Value::Number(-3.25),
            Value::Number(0.0)
        ]
    );
    let kinds: Vec<(String,)> = sql_rows(&db.url, "SELECT kind FROM series", &[]).await;
    assert_eq!(kinds, [("number".to_owned(),)]);
    // The upgraded database takes booleans and strings.
    let dev = store
        .find_device(&telehub::domain::DeviceName::parse("old-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    let now = Timestamp::now().as_micros();
    let app_rows = vec![
        (
            dev.clone(),
            Reading {
                sensor: SensorName::parse("door").unwrap(),
                value: Value::Bool(true),
                ts: Timestamp::from_micros(now),
                unit: None,
            },
        ),
        (
            dev,
            Reading {
                sensor: SensorName::parse("mode").unwrap(),
                value: Value::text("defrost").unwrap(),
                ts: Timestamp::from_micros(now),
                unit: None,
            },
        ),
    ];
    let done = hub.state.ingest.submit(app_rows).await;
    assert_eq!(
        tokio::time::timeout(WAIT, done).await.unwrap().unwrap(),
        Ok(2)
    );
    hub.stop().await;
}
both_backends!(a_database_from_the_previous_migrations_upgrades_and_keeps_every_reading);

/// A number's magnitude is at most 1e300 (docs/protocol.md §8), so a bucket's sum and average
/// stay finite: four readings of ±1e300 in one bucket sum to 2e300, not to infinity or an
/// error, and 1.7e308 is refused at every edge with a message naming the bound.
async fn numbers_past_1e300_are_refused_so_sums_and_averages_stay_finite(b: Backend) {
    let app = spawn_app(b).await;
    let token = app.device("big-1").await;
    let viewer = app.viewer().await;
    let mut ws = app.connect_device(&token).await;
    let t0 = (base_ts() as i64 / 60 * 60 - 600) as f64; // minute-aligned, ten minutes ago
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [{"sensor": "e", "value": 1.7e308, "ts": t0}]}),
    )
    .await;
    let reply = next_json(&mut ws).await;
    assert_eq!(
        (reply["nack"].clone(), reply["error"].clone()),
        (json!(1), json!("invalid_reading")),
        "{reply}"
    );
    assert!(
        reply["detail"]
            .as_str()
            .unwrap()
            .contains("a number's magnitude is at most 1e300"),
        "{reply}"
    );
    let values = [1e300, 1e300, -1e300, 1e300];
    let readings: Vec<Json> = (values.iter().enumerate())
        .map(|(i, v)| json!({"sensor": "e", "value": v, "ts": t0 + i as f64}))
        .collect();
    send_json(&mut ws, &json!({"id": 2, "readings": readings})).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 2, "stored": 4}));
    for (agg, want) in [
        ("sum", 2e300),
        ("avg", 0.5e300),
        ("max", 1e300),
        ("min", -1e300),
    ] {
        let path = format!(
            "/v1/readings?device=big-1&sensor=e&from={}&to={}&every=1m&agg={agg}",
            rfc(t0),
            rfc(t0 + 60.0)
        );
        let (status, body) = app.get(&path, Some(&viewer)).await;
        assert_eq!(status, 200, "{agg}: {body}");
        let got = body["points"][0]["value"].as_f64();
        assert_eq!(got, Some(want), "{agg}: {body}");
    }
    // The line protocol says the same, as a 400 with the line.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/write?bucket=b&precision=s", app.http()))
        .header("authorization", format!("Token {token}"))
        .body(format!("m e=-1.7e308 {}\n", t0 as i64 + 5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("at most 1e300"), "{text}");
}
both_backends!(numbers_past_1e300_are_refused_so_sums_and_averages_stay_finite);

fn rfc(t: f64) -> String {
    Timestamp::from_unix_seconds(t).unwrap().to_rfc3339()
}

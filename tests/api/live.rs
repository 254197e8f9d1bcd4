//! The live feed (protocol.md §3) through real WebSockets: auth, Origin, filters, status, lagged.

use crate::helpers::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn the_live_feed_needs_a_viewer_token_and_an_allowed_origin() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.allowed_origins = vec!["https://ops.example".into()]
    })
    .await;
    let url = app.ws("/v1/live");
    assert_eq!(refused_status(connect(&url, None).await), 401);
    let device = app.device("d1").await;
    assert_eq!(refused_status(connect(&url, Some(&device)).await), 403);
    let viewer = app.viewer().await;
    let with_origin = |origin: &str| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {viewer}").parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    let evil = tokio_tungstenite::connect_async(with_origin("https://evil.example")).await;
    assert_eq!(refused_status(evil.map(|r| r.0)), 403);
    let own = format!("http://{}", app.hub().addr);
    tokio_tungstenite::connect_async(with_origin(&own))
        .await
        .expect("own origin allowed");
    tokio_tungstenite::connect_async(with_origin("https://ops.example"))
        .await
        .expect("configured origin allowed");
    // DNS rebinding: a name pointed at the hub sends matching Origin and Host; a name is
    // trusted only when configured.
    let port = app.hub().addr.port();
    let mut rebound = with_origin(&format!("http://evil.example:{port}"));
    let host = format!("evil.example:{port}").parse().unwrap();
    rebound.headers_mut().insert("host", host);
    let refused = tokio_tungstenite::connect_async(rebound).await;
    assert_eq!(refused_status(refused.map(|r| r.0)), 403);
    let mut by_localhost = with_origin(&format!("http://localhost:{port}"));
    let host = format!("localhost:{port}").parse().unwrap();
    by_localhost.headers_mut().insert("host", host);
    tokio_tungstenite::connect_async(by_localhost)
        .await
        .expect("the hub's page opened as localhost");
}

#[tokio::test]
async fn subscribers_get_matching_readings_once_and_device_status() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let mut all = app.connect_dashboard(&viewer).await;
    let mut temps = app.connect_dashboard(&viewer).await;
    subscribe_all(&mut all).await;
    send_json(&mut temps, &json!({"subscribe": ["*/temperature"]})).await;
    let token = app.device("boiler-1").await;
    // Subscriptions are processed before the device connects: wait for a round trip.
    let mut ws = app.connect_device(&token).await;
    for d in [&mut all, &mut temps] {
        assert_eq!(next_json(d).await["status"]["online"], true);
    }
    let t = base_ts();
    send_json(&mut ws, &json!({"id": 1, "readings": [reading("temperature", 21.5, t), reading("humidity", 40.0, t)]})).await;
    next_json(&mut ws).await;
    let got = next_json(&mut all).await;
    let sensors: Vec<&str> = got["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sensor"].as_str().unwrap())
        .collect();
    assert_eq!(sensors, ["temperature", "humidity"]);
    assert_eq!(got["readings"][0]["device"], "boiler-1");
    assert_eq!(got["readings"][0]["value"], 21.5);
    let got = next_json(&mut temps).await;
    assert_eq!(got["readings"].as_array().unwrap().len(), 1);
    // A resend stores nothing new, so nothing is shown again.
    send_json(&mut ws, &json!({"id": 2, "readings": [reading("temperature", 21.5, t), reading("temperature", 22.0, t + 1.0)]})).await;
    next_json(&mut ws).await;
    let got = next_json(&mut temps).await;
    assert_eq!(
        got["readings"],
        json!([{"device": "boiler-1", "sensor": "temperature", "ts": telehub::domain::Timestamp::from_unix_seconds(t + 1.0).unwrap().to_rfc3339(), "value": 22.0}])
    );
    drop(ws);
    assert_eq!(
        next_json(&mut temps).await["status"],
        json!({"device": "boiler-1", "online": false, "ts": next_status_ts(&mut all).await})
    );
}

async fn next_status_ts(ws: &mut Ws) -> serde_json::Value {
    loop {
        let m = next_json(ws).await;
        if m["status"]["online"] == false {
            return m["status"]["ts"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_viewer_token_closes_its_dashboards_with_1008() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app
        .store
        .add_token("wall-screen", telehub::auth::Role::Viewer)
        .await
        .unwrap();
    let other = app.viewer().await;
    let mut ws = app.connect_dashboard(&token).await;
    let mut unaffected = app.connect_dashboard(&other).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args([
            "token",
            "revoke",
            "wall-screen",
            "--database-url",
            &app.db.url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut ws).await, 1008);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(
        refused_status(connect(&app.ws("/v1/live"), Some(&token)).await),
        401
    );
    subscribe_all(&mut unaffected).await;
    let mut d = app.connect_device(&app.device("d1").await).await;
    assert_eq!(next_json(&mut unaffected).await["status"]["online"], true);
    send_json(
        &mut d,
        &json!({"id": 1, "readings": [reading("t", 1.0, base_ts())]}),
    )
    .await;
    assert_eq!(
        next_json(&mut unaffected).await["readings"][0]["value"],
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_dashboard_is_closed_and_never_slows_the_others() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.live.client_queue = 16_384;
        s.live.stuck_timeout = std::time::Duration::from_millis(500);
        s.limits.device_readings_per_second = 1_000_000;
        s.limits.device_burst = 1_000_000;
    })
    .await;
    let viewer = app.viewer().await;
    // A client that subscribes and then never reads, with a tiny receive window so the
    // hub's writes to it block once its send buffer is full.
    let mut stuck = app.connect_small_window_dashboard(&viewer).await;
    send_json(&mut stuck, &json!({"subscribe": ["*"]})).await;
    let mut good = app.connect_dashboard(&viewer).await;
    subscribe_all(&mut good).await;
    let mut dev = app.connect_device(&app.device("d1").await).await;
    assert_eq!(next_json(&mut good).await["status"]["online"], true);
    // ~11 MB of live frames: far more than the stuck client's buffers hold.
    const MESSAGES: usize = 100;
    let t0 = base_ts();
    let reader = tokio::spawn(async move {
        let (mut seen, mut lagged, mut last) = (0usize, 0u64, f64::MIN);
        while seen + (lagged as usize) < MESSAGES * 1000 {
            let m = next_json(&mut good).await;
            lagged += m["lagged"].as_u64().unwrap_or(0);
            for r in m["readings"].as_array().into_iter().flatten() {
                let v = r["value"].as_f64().unwrap();
                assert!(v > last, "per-device order kept");
                (last, seen) = (v, seen + 1);
            }
        }
        (seen, lagged, good)
    });
    for i in 0..MESSAGES {
        let readings: Vec<_> = (0..1000)
            .map(|k| {
                reading(
                    "t",
                    (i * 1000 + k) as f64,
                    t0 + (i * 1000 + k) as f64 / 1000.0,
                )
            })
            .collect();
        send_json(&mut dev, &json!({"id": i, "readings": readings})).await;
        assert_eq!(
            next_json(&mut dev).await["ack"],
            i,
            "devices are never slowed into refusals"
        );
    }
    let (seen, lagged, _good) = tokio::time::timeout(std::time::Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (seen, lagged),
        (MESSAGES * 1000, 0),
        "the reading dashboard got everything"
    );
    // The stuck client is closed; the good one stays.
    let hub = &app.hub().state;
    let clients = || async { hub.live.clients() };
    let what = "the stuck dashboard to be closed (live clients)";
    assert_eq!(eventually(WAIT, what, clients, |n| *n <= 1).await, 1);
    // What reached the stuck socket ends in the close (1008 "too slow") or a reset.
    let mut frames = 0;
    let end = loop {
        match tokio::time::timeout(WAIT, stuck.next())
            .await
            .expect("the hub closed the stuck socket")
        {
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => frames += 1,
            _ => break None,
        }
    };
    assert!(
        matches!(end, Some(1008) | None),
        "{end:?} after {frames} frames"
    );
    assert!(
        frames < MESSAGES * 2,
        "the stuck client did not get everything"
    );
}

#[tokio::test]
async fn under_load_a_dashboard_gets_fewer_fuller_frames_and_nothing_is_lost() {
    // A frame budget of 4/s shared by 2 dashboards: each writes at most every 0.5 s.
    let app = spawn_app_with(Backend::Sqlite, |s| s.live.max_frames_per_second = 4).await;
    let viewer = app.viewer().await;
    let mut dash = app.connect_dashboard(&viewer).await;
    let _other = app.connect_dashboard(&viewer).await;
    subscribe_all(&mut dash).await;
    let token = app.device("d1").await;
    let mut ws = app.connect_device(&token).await;
    assert_eq!(next_json(&mut dash).await["status"]["online"], true);
    // 30 messages, each committed on its own (the device waits for every ack).
    let t = base_ts();
    for i in 0..30 {
        send_json(
            &mut ws,
            &json!({"id": i, "readings": [reading("s", i as f64, t + i as f64)]}),
        )
        .await;
        assert_eq!(next_json(&mut ws).await["ack"], i);
    }
    let (mut frames, mut values) = (0, Vec::new());
    while values.len() < 30 {
        let f = next_json(&mut dash).await;
        frames += 1;
        values.extend(
            f["readings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["value"].as_f64().unwrap()),
        );
    }
    assert_eq!(
        values,
        (0..30).map(f64::from).collect::<Vec<_>>(),
        "all, in order, once"
    );
    assert!(
        frames < 15,
        "30 commits arrived in {frames} frames: writes were not paced"
    );
}

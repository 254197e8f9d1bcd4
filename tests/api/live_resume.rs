//! The gapless live feed (protocol.md §3, amended): offsets, resume, and one shared history.
//! Slow consumers, sockets cut mid-burst, hub restarts, and `telehub tail` across a
//! dropped connection, all through real sockets.

use crate::helpers::*;
use crate::tail::{line_with, tail};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Sends readings `from..to` (value = index, sensor `sensors[index % len]`) as messages of
/// `per` readings, each acked (committed) before the next.
async fn burst(dev: &mut Ws, sensors: &[&str], (from, to): (usize, usize), per: usize, t0: f64) {
    for start in (from..to).step_by(per) {
        let readings: Vec<Value> = (start..(start + per).min(to))
            .map(|i| reading(sensors[i % sensors.len()], i as f64, t0 + i as f64 / 1000.0))
            .collect();
        send_json(dev, &json!({"id": start, "readings": readings})).await;
        assert_eq!(next_json(dev).await["ack"], start, "committed");
    }
}

/// What a dashboard saw: readings (sensor, value) in order, lagged counts, and the
/// position of the last readings frame.
#[derive(Default)]
struct Seen {
    readings: Vec<(String, f64)>,
    lagged: u64,
    position: Option<(String, u64)>,
}

impl Seen {
    fn add(&mut self, m: &Value) {
        self.lagged += m["lagged"].as_u64().unwrap_or(0);
        if let Some(rs) = m["readings"].as_array() {
            for r in rs {
                let sensor = r["sensor"].as_str().unwrap().to_owned();
                self.readings.push((sensor, r["value"].as_f64().unwrap()));
            }
            let offset = m["offset"]
                .as_u64()
                .expect("readings frames carry an offset");
            let epoch = m["epoch"].as_str().expect("and an epoch").to_owned();
            if let Some((e, o)) = &self.position {
                assert!(
                    *e == epoch && *o < offset,
                    "offsets increase within an epoch"
                );
            }
            self.position = Some((epoch, offset));
        }
    }

    fn values(&self) -> Vec<f64> {
        self.readings.iter().map(|(_, v)| *v).collect()
    }
}

fn fast_devices(s: &mut telehub::config::Settings) {
    s.limits.device_readings_per_second = 1_000_000;
    s.limits.device_burst = 1_000_000;
}

const BURST: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_dashboard_gets_every_reading_of_a_burst_in_order_when_the_history_holds_it() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast_devices(s);
        s.live.max_readings_per_frame = 200;
    })
    .await;
    let viewer = app.viewer().await;
    let mut slow = app.connect_small_window_dashboard(&viewer).await;
    subscribe_all(&mut slow).await;
    let mut dev = app.connect_device(&app.device("d1").await).await;
    assert_eq!(next_status(&mut slow).await["online"], true);
    let t0 = base_ts();
    let sender = tokio::spawn(async move {
        burst(&mut dev, &["t"], (0, BURST), 1000, t0).await;
        dev
    });
    let mut seen = Seen::default();
    while seen.readings.len() + (seen.lagged as usize) < BURST {
        seen.add(&next_json(&mut slow).await);
        // A slow consumer: it takes its time over every frame.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sender.await.unwrap();
    assert_eq!(
        seen.lagged, 0,
        "nothing lost while the history holds the burst"
    );
    let expected: Vec<f64> = (0..BURST).map(|i| i as f64).collect();
    assert!(seen.values() == expected, "every reading, in order, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_that_falls_out_of_the_history_is_told_lagged_with_the_exact_count() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast_devices(s);
        s.live.history.readings = 5_000;
        s.live.stuck_timeout = Duration::from_secs(120);
    })
    .await;
    let viewer = app.viewer().await;
    let mut stalled = app.connect_small_window_dashboard(&viewer).await;
    subscribe_all(&mut stalled).await;
    let mut dev = app.connect_device(&app.device("d1").await).await;
    assert_eq!(next_status(&mut stalled).await["online"], true);
    // The dashboard reads nothing until the whole burst is committed.
    burst(&mut dev, &["t"], (0, BURST), 1000, base_ts()).await;
    let (mut last, mut pending_lag, mut lagged, mut seen) = (-1.0, 0u64, 0u64, 0usize);
    while seen + (lagged as usize) < BURST {
        let m = tokio::time::timeout(Duration::from_secs(60), next_json(&mut stalled))
            .await
            .unwrap();
        pending_lag += m["lagged"].as_u64().unwrap_or(0);
        for r in m["readings"].as_array().into_iter().flatten() {
            let v = r["value"].as_f64().unwrap();
            // Right after a `lagged` notice the readings resume exactly that many later.
            assert_eq!(
                v,
                last + 1.0 + pending_lag as f64,
                "no reading lost unreported"
            );
            lagged += std::mem::take(&mut pending_lag);
            (last, seen) = (v, seen + 1);
        }
    }
    assert!(
        lagged > 0,
        "a 100,000-reading burst does not fit a 5,000-reading history"
    );
    assert_eq!(seen + lagged as usize, BURST);
    let lost = app.metric(&viewer, "telehub_live_dropped_total").await;
    assert_eq!(lost as u64, lagged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_cut_mid_burst_resumes_with_every_matching_reading_exactly_once() {
    let app = spawn_app_with(Backend::Sqlite, fast_devices).await;
    let viewer = app.viewer().await;
    let mut dash = app.connect_dashboard(&viewer).await;
    let only_t = json!({"subscribe": ["d1/t"]});
    send_json(&mut dash, &only_t).await;
    let mut dev = app.connect_device(&app.device("d1").await).await;
    assert_eq!(next_status(&mut dash).await["online"], true);
    const N: usize = 40_000;
    let sender = tokio::spawn(async move {
        burst(&mut dev, &["t", "h"], (0, N), 500, base_ts()).await;
        dev
    });
    let mut seen = Seen::default();
    while seen.readings.len() < N / 8 {
        seen.add(&next_json(&mut dash).await);
    }
    // The socket is cut (no close handshake) while the burst goes on.
    drop(dash);
    let (epoch, offset) = seen.position.clone().unwrap();
    let mut dash = app.connect_dashboard(&viewer).await;
    let mut resume = only_t.clone();
    resume["resume"] = json!({"epoch": epoch, "offset": offset});
    send_json(&mut dash, &resume).await;
    assert_eq!(next_json(&mut dash).await, json!({"resumed": true}));
    while seen.readings.len() < N / 2 {
        seen.add(&next_json(&mut dash).await);
    }
    sender.await.unwrap();
    assert!(
        seen.readings.iter().all(|(s, _)| s == "t"),
        "patterns respected"
    );
    let expected: Vec<f64> = (0..N).step_by(2).map(|i| i as f64).collect();
    assert!(
        seen.values() == expected,
        "every matching reading exactly once across the seam"
    );
    assert_eq!(seen.lagged, 0);
    let ok = app.metric(&viewer, "telehub_live_resumes_ok_total").await;
    assert_eq!(ok, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_hub_restart_resume_answers_resumed_false_with_the_new_epoch() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let token = app.device("d1").await;
    let mut dash = app.connect_dashboard(&viewer).await;
    subscribe_all(&mut dash).await;
    let mut dev = app.connect_device(&token).await;
    assert_eq!(next_status(&mut dash).await["online"], true);
    burst(&mut dev, &["t"], (0, 3), 3, base_ts()).await;
    let mut seen = Seen::default();
    while seen.readings.len() < 3 {
        seen.add(&next_json(&mut dash).await);
    }
    let (epoch, offset) = seen.position.unwrap();
    drop((dash, dev));
    app.stop().await;
    app.hub = Some(telehub::hub::start(app.settings.clone()).await.unwrap());
    let mut dash = app.connect_dashboard(&viewer).await;
    send_json(
        &mut dash,
        &json!({"subscribe": ["*"], "resume": {"epoch": epoch, "offset": offset}}),
    )
    .await;
    let answer = next_json(&mut dash).await;
    assert_eq!(answer["resumed"], false, "{answer}");
    let new_epoch = answer["epoch"].as_str().unwrap().to_owned();
    assert_ne!(new_epoch, epoch);
    assert!(answer["offset"].is_u64(), "{answer}");
    // It goes on live, in the new epoch.
    let mut dev = app.connect_device(&token).await;
    burst(&mut dev, &["t"], (3, 4), 1, base_ts()).await;
    let m = loop {
        let m = next_json(&mut dash).await;
        if m.get("readings").is_some() {
            break m;
        }
    };
    assert_eq!(
        (m["epoch"].as_str(), m["readings"][0]["value"].as_f64()),
        (Some(&*new_epoch), Some(3.0))
    );
}

/// A TCP proxy to the hub whose open connections [`Proxy::cut`] drops at once, as a
/// lost network would.
struct Proxy {
    url: String,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn to(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let held = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                held.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { url, conns }
    }

    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

/// Reads `tail`'s stdout lines of readings until `last` is printed; their values.
async fn tail_values(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    last: usize,
) -> Vec<f64> {
    let mut values = Vec::new();
    loop {
        let line = line_with(lines, " d1/t ").await;
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        values.push(v);
        if v == last as f64 {
            return values;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_resumes_without_a_gap_after_its_socket_drops_and_from_the_position_it_printed() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let proxy = Proxy::to(app.hub().addr).await;
    let mut child = tail(&proxy.url, &viewer, &["d1/*"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dev = app.connect_device(&app.device("d1").await).await;
    line_with(&mut lines, "d1 online").await;
    let t0 = base_ts();
    burst(&mut dev, &["t"], (0, 100), 50, t0).await;
    let mut values = tail_values(&mut lines, 99).await;
    proxy.cut();
    // Committed while tail is away (it waits at least 100 ms before reconnecting).
    burst(&mut dev, &["t"], (100, 200), 50, t0).await;
    burst(&mut dev, &["t"], (200, 300), 50, t0).await;
    values.extend(tail_values(&mut lines, 299).await);
    let expected: Vec<f64> = (0..300).map(|i| i as f64).collect();
    assert_eq!(values, expected, "every reading once across the reconnect");

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connected to") && err.matches("connected to").count() >= 2,
        "{err}"
    );
    let position = err
        .lines()
        .find_map(|l| l.split("--resume ").nth(1))
        .unwrap_or_else(|| panic!("a position on stderr: {err}"))
        .trim()
        .to_owned();

    burst(&mut dev, &["t"], (300, 350), 50, t0).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args(["tail", "d1/*", "--server", &app.http(), "--token", &viewer])
        .args(["--resume", &position])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let expected: Vec<f64> = (300..350).map(|i| i as f64).collect();
    assert_eq!(
        tail_values(&mut lines, 349).await,
        expected,
        "from the printed position on"
    );
}

//! `firmware-sim run` as a real process: its exit line, its errors, and resuming
//! unacked readings from `--state-dir` against a real hub (started in-process from the
//! telehub library, on port 0 with a fresh database), over each `--transport`.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use telehub::config::{Settings, SqliteSync};
use telehub::domain::DeviceName;

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("runs firmware-sim")
}

/// `firmware-sim run --hub HUB --tokens TOKENS` plus space-separated `extra` arguments.
fn sim_run(hub: &str, tokens: &Path, extra: &str) -> Output {
    let mut args = vec!["run", "--hub", hub, "--tokens", tokens.to_str().unwrap()];
    args.extend(extra.split_whitespace());
    sim(&args)
}

/// A tokens file holding `lines`.
fn tokens_file(dir: &Path, lines: &str) -> std::path::PathBuf {
    let path = dir.join("tokens.txt");
    std::fs::write(&path, lines).unwrap();
    path
}

fn summary(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "one JSON line on stdout: {out:?}");
    serde_json::from_str(out.trim()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An address where nothing listens: bind a port, then free it.
fn dead_hub() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("ws://{}", l.local_addr().unwrap())
}

#[test]
fn usage_errors_exit_2_and_other_failures_exit_1_with_one_line() {
    let o = sim(&[
        "run", "--hub", "ws://h:1", "--tokens", "t.txt", "--rate", "0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = sim(&["run", "--hub", "ws://h:1"]);
    assert_eq!(o.status.code(), Some(2));

    let o = sim(&[
        "run",
        "--hub",
        "ws://h:1",
        "--tokens",
        "/nonexistent/tokens.txt",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/tokens.txt"));
    assert!(o.stdout.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let o = sim_run(
        "mqtt://h:1",
        &tokens_file(
            dir.path(),
            "d1 th_x
",
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ws://"), "{}", stderr(&o));
}

#[test]
fn an_unreachable_hub_leaves_readings_pending_says_why_once_and_exits_1() {
    for transport in TRANSPORTS {
        unreachable_hub(transport);
    }
}

const TRANSPORTS: [&str; 3] = ["ws", "http", "line"];

fn unreachable_hub(transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(
        dir.path(),
        "d1 th_x
d2 th_y
",
    );
    let o = sim_run(
        &dead_hub(),
        &tokens,
        &format!(
            "--transport {transport} --rate 20 --duration 1s --drain-timeout 200ms --backoff-initial 50ms"
        ),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert!(s["generated"].as_u64().unwrap() >= 2 * 2 * 10, "{s}");
    assert_eq!(s["acked"], 0);
    assert_eq!(s["dropped"], 0);
    assert_eq!(s["reconnects"], 0);
    let err = stderr(&o);
    assert_eq!(err.matches("cannot connect: ").count(), 1, "{err}");
    assert!(
        err.contains("failed connection attempt(s), 2 device(s)"),
        "{err}"
    );
    assert!(err.contains("neither acked nor refused"), "{err}");
    assert!(
        !err.contains("giving up"),
        "a hub that is down is retried: {err}"
    );
}

#[test]
fn a_full_buffer_drops_the_oldest_readings_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(
        dir.path(),
        "d1 th_x
",
    );
    let extra = "--rate 50 --buffer 10 --duration 1s --drain-timeout 100ms";
    let o = sim_run(&dead_hub(), &tokens, extra);
    let s = summary(&o);
    let generated = s["generated"].as_u64().unwrap();
    assert!(generated > 50, "{s}");
    assert_eq!(s["dropped"].as_u64().unwrap(), generated - 10, "{s}");
}

async fn start_hub(dir: &Path) -> telehub::hub::RunningHub {
    start_hub_with(dir, |_| {}).await
}

async fn start_hub_with(dir: &Path, tweak: impl FnOnce(&mut Settings)) -> telehub::hub::RunningHub {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.database.url = format!("sqlite://{}", dir.join("hub.db").display());
    s.database.sqlite_synchronous = SqliteSync::Normal;
    tweak(&mut s);
    telehub::hub::start(s).await.expect("hub starts")
}

async fn stored(hub: &telehub::hub::RunningHub) -> i64 {
    let url = &hub.state.settings.database.url;
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM readings")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_dir_carries_unacked_readings_over_to_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let names: Vec<_> = ["keep-1", "keep-2"]
        .iter()
        .map(|n| DeviceName::parse(n).unwrap())
        .collect();
    let created = hub.state.store.add_devices(&names).await.unwrap();
    let lines: String = created.iter().map(|(n, t)| format!("{n} {t}\n")).collect();
    let tokens = tokens_file(dir.path(), &lines);
    let state = dir.path().join("state");
    let keep = format!("--state-dir {} --rate 20 --duration 1s", state.display());

    // First run: the hub is out of reach; unacked readings are saved.
    let (dead, t, k) = (dead_hub(), tokens.clone(), keep.clone());
    let first =
        tokio::task::spawn_blocking(move || sim_run(&dead, &t, &(k + " --drain-timeout 100ms")))
            .await
            .unwrap();
    let first = summary(&first);
    let carried = first["generated"].as_u64().unwrap();
    assert!(carried > 0 && first["acked"] == 0, "{first}");
    assert!(state.join("keep-1.outbox").exists());

    // Second run reaches the hub: it sends what the first one kept, and its own.
    let live = format!("ws://{}", hub.addr);
    let second = tokio::task::spawn_blocking(move || sim_run(&live, &tokens, &keep))
        .await
        .unwrap();
    let s = summary(&second);
    let generated = s["generated"].as_u64().unwrap();
    assert!(
        generated > carried,
        "the resumed readings count as generated: {s}"
    );
    assert_eq!(
        s["acked"].as_u64().unwrap(),
        generated,
        "{s}\n{}",
        stderr(&second)
    );
    assert_eq!(stored(&hub).await, generated as i64);
    assert!(
        !state.join("keep-1.outbox").exists(),
        "an empty outbox leaves no file"
    );
    hub.stop().await;
}

/// A hub serving TLS with a fresh self-signed certificate for `localhost`.
async fn start_tls_hub(dir: &Path) -> telehub::hub::RunningHub {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("hub.pem"), dir.join("hub-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    start_hub_with(dir, |s| {
        s.tls = Some(telehub::config::TlsSettings {
            cert: cert_path,
            key: key_path,
        })
    })
    .await
}

/// Runs two devices against `hub` for 1 s: a permanent refusal must stop both at once.
async fn gives_up(hub: String, tokens: std::path::PathBuf, cause: &str) {
    gives_up_over("ws", hub, tokens, cause).await
}

async fn gives_up_over(transport: &str, hub: String, tokens: std::path::PathBuf, cause: &str) {
    let extra = format!(
        "--transport {transport} --rate 20 --duration 1s --drain-timeout 300ms --backoff-initial 20ms"
    );
    let o = tokio::task::spawn_blocking(move || sim_run(&hub, &tokens, &extra))
        .await
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(summary(&o)["acked"], 0);
    assert_eq!(err.matches("giving up, not retrying").count(), 1, "{err}");
    assert!(err.contains("gave up on 2 device(s)"), "{err}");
    assert!(
        err.contains("2 failed connection attempt(s)"),
        "tried once each: {err}"
    );
    assert!(err.contains(cause), "{cause:?} in {err}");
    assert!(err.contains("2 device(s) gave up"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let tokens = tokens_file(dir.path(), "d1 th_wrong\nd2 th_wrong2\n");
    gives_up(format!("ws://{}", hub.addr), tokens, "(401)").await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_path_is_not_retried_and_the_url_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let tokens = tokens_file(dir.path(), "d1 th_wrong\nd2 th_wrong2\n");
    let url = format!("ws://{}/v1/nowhere", hub.addr);
    gives_up(url.clone(), tokens, "HTTP 404").await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_not_retried_over_http_or_line_protocol_either() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let tokens = tokens_file(dir.path(), "d1 th_wrong\nd2 th_wrong2\n");
    for transport in ["http", "line"] {
        let hub = format!("ws://{}", hub.addr);
        gives_up_over(transport, hub, tokens.clone(), "(401)").await;
    }
    hub.stop().await;
}

/// A hub with devices `names`, and a tokens file for them.
async fn hub_with_devices(
    dir: &Path,
    names: &[&str],
) -> (telehub::hub::RunningHub, std::path::PathBuf) {
    let hub = start_hub(dir).await;
    let names: Vec<_> = names
        .iter()
        .map(|n| DeviceName::parse(n).unwrap())
        .collect();
    let created = hub.state.store.add_devices(&names).await.unwrap();
    let lines: String = created.iter().map(|(n, t)| format!("{n} {t}\n")).collect();
    let tokens = tokens_file(dir, &lines);
    (hub, tokens)
}

/// Plays two devices over `transport` for a second; every reading must be acked and
/// stored exactly once.
async fn stores_what_it_acks(transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (hub, tokens) = hub_with_devices(dir.path(), &["room-1", "boiler-2"]).await;
    let (url, extra) = (
        format!("ws://{}", hub.addr),
        format!("--transport {transport} --rate 40 --batch 25 --duration 1s"),
    );
    let o = tokio::task::spawn_blocking(move || sim_run(&url, &tokens, &extra))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let acked = s["acked"].as_u64().unwrap();
    assert!(acked >= 2 * 3 * 30, "{transport}: {s}");
    assert_eq!(s["generated"], acked, "{transport}: {s}");
    assert_eq!(
        (s["nacked"].as_u64(), s["dropped"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(stored(&hub).await, acked as i64, "{transport}: {s}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_devices_store_exactly_the_readings_they_report_acked() {
    stores_what_it_acks("ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_batches_store_exactly_the_readings_they_report_acked() {
    stores_what_it_acks("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_protocol_writes_store_exactly_the_readings_they_report_acked() {
    stores_what_it_acks("line").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_the_hub_refuses_over_http_are_nacked_and_the_cause_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, tokens) = hub_with_devices(dir.path(), &["ahead-1", "ahead-2"]).await;
    for transport in ["http", "line"] {
        // Clocks 10 minutes ahead: past the hub's max_clock_skew (5 min), every reading
        // is refused for good, one message after another.
        let (url, t, extra) = (
            format!("ws://{}", hub.addr),
            tokens.clone(),
            format!("--transport {transport} --rate 10 --duration 1s --clock-skew 10m"),
        );
        let o = tokio::task::spawn_blocking(move || sim_run(&url, &t, &extra))
            .await
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "nothing left pending: {err}");
        let s = summary(&o);
        assert!(s["generated"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["nacked"], s["generated"], "{transport}: {s}");
        assert_eq!(s["acked"], 0, "{s}");
        assert_eq!(
            err.matches("the hub refused readings: ").count(),
            1,
            "{transport}: {err}"
        );
        assert!(err.contains("invalid_reading"), "{err}");
    }
    assert_eq!(stored(&hub).await, 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_not_retried_over_https_either() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_tls_hub(dir.path()).await;
    let tokens = tokens_file(dir.path(), "d1 th_x\nd2 th_y\n");
    let url = format!("wss://localhost:{}", hub.addr.port());
    gives_up_over("http", url, tokens, "certificate is not trusted").await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_tls_hub(dir.path()).await;
    let tokens = tokens_file(dir.path(), "d1 th_x\nd2 th_y\n");
    let url = format!("wss://localhost:{}", hub.addr.port());
    gives_up(url, tokens, "certificate is not trusted").await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ws_or_http_to_a_tls_hub_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_tls_hub(dir.path()).await;
    let tokens = tokens_file(dir.path(), "d1 th_x\nd2 th_y\n");
    for transport in TRANSPORTS {
        let url = format!("ws://{}", hub.addr);
        gives_up_over(transport, url, tokens.clone(), "wss://").await;
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_or_https_to_a_plain_hub_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let tokens = tokens_file(dir.path(), "d1 th_x\nd2 th_y\n");
    for transport in TRANSPORTS {
        let url = format!("wss://localhost:{}", hub.addr.port());
        gives_up_over(transport, url, tokens.clone(), "use ws://").await;
    }
    hub.stop().await;
}

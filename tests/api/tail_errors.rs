//! `telehub tail` when it cannot connect: what retrying cannot cure (TLS on one side
//! only, an untrusted certificate) ends at once with exit 1 and a one-line hint; a 503
//! is retried, never sooner than the hub's `Retry-After`.

use crate::helpers::*;
use crate::tail::tail;
use telehub::config::TlsSettings;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A hub serving https/wss with a fresh self-signed certificate for `localhost`.
async fn tls_app(dir: &std::path::Path) -> TestApp {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("hub.pem"), dir.join("hub-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    spawn_app_with(Backend::Sqlite, |s| {
        s.tls = Some(TlsSettings {
            cert: cert_path,
            key: key_path,
        })
    })
    .await
}

/// Runs tail against `server` and expects exit 1 with one line naming `hint`.
async fn refused_at_once(server: &str, token: &str, hint: &str) {
    let out = tokio::time::timeout(WAIT, tail(server, token, &[]).wait_with_output())
        .await
        .expect("tail gives up at once")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(hint), "{hint:?} in {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mismatches_and_untrusted_certificates_end_tail_with_a_hint() {
    let plain = spawn_app(Backend::Sqlite).await;
    let viewer = plain.viewer().await;
    let port = plain.hub().addr.port();
    refused_at_once(
        &format!("https://127.0.0.1:{port}"),
        &viewer,
        "use ws:// or http://",
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let tls = tls_app(dir.path()).await;
    let viewer = tls.viewer().await;
    let port = tls.hub().addr.port();
    refused_at_once(
        &format!("http://127.0.0.1:{port}"),
        &viewer,
        "use wss:// or https://",
    )
    .await;
    refused_at_once(
        &format!("https://localhost:{port}"),
        &viewer,
        "certificate is not trusted",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_hub_is_retried_no_sooner_than_its_retry_after() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.limits.handshakes_per_second = 1;
        s.limits.handshake_burst = 1;
    })
    .await;
    let viewer = app.viewer().await;
    let url = app.ws("/v1/live");
    // Use up the burst and queue a few turns: the next caller's turn is seconds away.
    let _first = connect(&url, Some(&viewer)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(refused_status(connect(&url, Some(&viewer)).await), 503);
    }
    let mut child = tail(&app.http(), &viewer, &[]);
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, err.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("tail keeps running");
    assert!(line.contains("503"), "{line}");
    let secs: f64 = line
        .split("reconnecting in ")
        .nth(1)
        .and_then(|r| r.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("a delay in {line}"));
    assert!(secs >= 3.0, "Retry-After honoured: {line}");
    child.kill().await.unwrap();
}

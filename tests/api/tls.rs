//! TLS: with `[tls] cert/key` set the hub serves https and wss only.

use crate::helpers::*;
use serde_json::json;
use std::sync::Arc;
use telehub::config::TlsSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_streams_over_wss_with_a_generated_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("hub.pem"), dir.path().join("hub-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.tls = Some(TlsSettings {
            cert: cert_path,
            key: key_path,
        })
    })
    .await;
    assert!(app.http().starts_with("https://"));
    let token = app.device("d1").await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let url = format!(
        "wss://localhost:{}/v1/ingest?token={token}",
        app.hub().addr.port()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        true,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))),
    )
    .await
    .expect("wss connects");
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [reading("t", 1.0, base_ts())]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 1}));

    // Plain ws to a TLS hub does not get through.
    let plain = format!(
        "ws://127.0.0.1:{}/v1/ingest?token={token}",
        app.hub().addr.port()
    );
    assert!(
        tokio::time::timeout(WAIT, connect(&plain, None))
            .await
            .unwrap()
            .is_err()
    );
}

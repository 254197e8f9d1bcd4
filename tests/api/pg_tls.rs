//! PostgreSQL over TLS: `sslmode` and `sslrootcert` in `database.url`. The shared server
//! (Debian's, with its snakeoil certificate) takes `require`; a private cluster with a
//! certificate from a CA the test makes checks `verify-ca` and `verify-full`, and that a
//! certificate from another CA, or for another name, is refused at start.

use crate::helpers::*;
use serde_json::json;
use telehub::config::Settings;

/// (connections over TLS, connections without) that the hub holds to `url`'s database,
/// counted from a plain connection of the test's own.
async fn hub_connections(url: &str) -> (i64, i64) {
    let plain = format!(
        "{}{}sslmode=disable",
        url,
        if url.contains('?') { '&' } else { '?' }
    );
    const Q: &str = "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
                     FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
                     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()";
    sql_rows::<(i64, i64)>(&plain, Q, &[]).await[0]
}

/// A reading sent by a device is acked, so the hub wrote it over its connection.
async fn one_reading_is_stored(app: &TestApp) {
    let token = app.device("tls-1").await;
    let mut ws = app.connect_device(&token).await;
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [reading("temperature", 21.5, base_ts())]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 1}));
    assert_eq!(app.wait_stored("tls-1", 1).await.len(), 1);
}

/// The error chain of a failed start, one line.
fn start_error(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn start_on(url: String) -> Result<telehub::hub::RunningHub, String> {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.database.url = url;
    s.database.busy_timeout = std::time::Duration::from_secs(3);
    telehub::hub::start(s).await.map_err(|e| start_error(&e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_stores_over_tls_with_sslmode_require() {
    crate::need_pg!();
    let app = spawn_app_with(Backend::Postgres, |s| {
        s.database.url = format!("{}?sslmode=require", s.database.url);
    })
    .await;
    one_reading_is_stored(&app).await;
    let (tls, plain) = hub_connections(&app.db.url).await;
    assert!(
        tls >= 1,
        "the hub holds TLS connections: {tls} TLS, {plain} plain"
    );
    assert_eq!(plain, 0, "every connection of the hub is encrypted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_loopback_is_spoken_to_in_clear_unless_sslmode_says_otherwise() {
    crate::need_pg!();
    // TELEHUB_TEST_PG names 127.0.0.1, whose server offers TLS (require works there).
    let app = spawn_app(Backend::Postgres).await;
    assert!(!app.db.url.contains("sslmode"), "{}", app.db.url);
    one_reading_is_stored(&app).await;
    let (tls, plain) = hub_connections(&app.db.url).await;
    assert!(
        plain >= 1,
        "the hub holds plain connections: {tls} TLS, {plain} plain"
    );
    assert_eq!(tls, 0, "no TLS on loopback without sslmode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_trusts_only_the_named_ca_and_the_certificate_s_name() {
    let ca = Ca::new("telehub test CA");
    let (cert_pem, key_pem) = ca.issue(&["localhost"]);
    let Some(pg) = TestCluster::start_with_tls(ServerTls {
        cert_pem: &cert_pem,
        key_pem: &key_pem,
    }) else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must be able to start a private PostgreSQL cluster"
        );
        skipped("cannot start a private PostgreSQL cluster here");
        return;
    };
    let ca_file = ca.write(pg.dir(), "ca.pem");
    let other_ca = Ca::new("someone else's CA").write(pg.dir(), "other-ca.pem");
    let port = pg.port();
    let url = |host: &str, mode: &str, root: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?sslmode={mode}&sslrootcert={root}")
    };

    // The certificate's name and its CA: accepted, and every connection is encrypted.
    let hub = start_on(url("localhost", "verify-full", &ca_file))
        .await
        .expect("verify-full with the CA that signed the server's certificate");
    let (tls, plain) = hub_connections(&pg.url()).await;
    assert!(
        tls >= 1 && plain == 0,
        "{tls} TLS, {plain} plain connections"
    );
    hub.stop().await;

    // Another CA: refused at start, naming the certificate as the cause.
    let refused = start_on(url("localhost", "verify-full", &other_ca))
        .await
        .err()
        .expect("a certificate from a CA not in sslrootcert is refused");
    assert!(
        refused.to_lowercase().contains("certificate"),
        "the error names the certificate: {refused}"
    );

    // The right CA, another name (the certificate is for localhost only): verify-full
    // refuses it, verify-ca (the CA alone) accepts it.
    let refused = start_on(url("127.0.0.1", "verify-full", &ca_file))
        .await
        .err()
        .expect("verify-full refuses a certificate for another name");
    assert!(
        refused.to_lowercase().contains("certificate"),
        "the error names the certificate: {refused}"
    );
    let hub = start_on(url("127.0.0.1", "verify-ca", &ca_file))
        .await
        .expect("verify-ca checks the CA, not the name");
    hub.stop().await;
}

//! Notifications people read (protocol.md §17, docs/alerts.md "Notifications"): Slack and
//! Teams webhooks and email over SMTP carry the same readable message, through the durable
//! outbox; the JSON event gains `unit`, `condition` and `url`. A real HTTP receiver and a
//! real SMTP server (aiosmtpd) take them; the SMTP password never reaches the log.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::{HubProcess, telehub_cli};
use serde_json::json;
use std::time::Duration;
use telehub::config::{EmailTarget, Settings, Webhook, WebhookFormat};

const DASHBOARD: &str = "https://hub.example";

/// Fast retries; links to [`DASHBOARD`].
fn fast(s: &mut Settings) {
    let a = &mut s.alerts;
    a.retry_backoff = Duration::from_millis(50);
    a.retry_backoff_max = Duration::from_millis(200);
    a.poll_interval = Duration::from_millis(100);
    a.rules_poll = Duration::from_millis(100);
    a.dashboard_url = DASHBOARD.into();
}

fn hook(url: String, format: WebhookFormat) -> Webhook {
    Webhook {
        url,
        format,
        ..Webhook::default()
    }
}

/// Adds `hot` (`d1/temperature > 10`, critical) and sends d1's reading 12.5 Cel.
async fn fire_hot(app: &TestApp) {
    let admin = app.admin().await;
    let rule = json!({"name": "hot", "pattern": "d1/temperature", "kind": "threshold", "op": ">", "value": 10, "severity": "critical"});
    let (status, text) = app.post("/v1/alert-rules", &admin, &rule).await;
    assert_eq!(status, 201, "{text}");
    let mut dev = app.connect_device(&app.device("d1").await).await;
    let r = json!({"sensor": "temperature", "value": 12.5, "ts": base_ts(), "unit": "Cel"});
    send_json(&mut dev, &json!({"id": 1, "readings": [r]})).await;
    assert_eq!(next_json(&mut dev).await["ack"], 1);
}

async fn slack_teams_and_json_webhooks_carry_the_same_readable_facts(b: Backend) {
    let rx = Receiver::start().await;
    let app = spawn_app_with(b, |s| {
        fast(s);
        s.alerts.webhooks = vec![
            hook(rx.url.clone(), WebhookFormat::Json),
            hook(format!("{}?as=slack", rx.url), WebhookFormat::Slack),
            hook(format!("{}?as=teams", rx.url), WebhookFormat::Teams),
        ];
    })
    .await;
    fire_hot(&app).await;
    let posts = rx.wait_accepted(3).await;
    let link = format!("{DASHBOARD}/#device=d1&chart=d1/temperature&from=");

    let event = posts
        .iter()
        .find(|p| p.get("rule").is_some())
        .expect("the JSON event");
    assert_eq!(event["unit"], "Cel", "{event}");
    assert_eq!(event["condition"], "> 10", "{event}");
    assert!(event["url"].as_str().unwrap().starts_with(&link), "{event}");

    let slack = posts
        .iter()
        .find(|p| p.get("blocks").is_some())
        .expect("the Slack message");
    let text = slack["text"].as_str().unwrap();
    for want in [
        "FIRING hot: d1/temperature",
        "Rule: hot (critical)",
        "Value: 12.5 Cel",
        "Condition: > 10",
        "Since: ",
        &link,
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    assert!(
        slack
            .to_string()
            .contains("View the series on the dashboard"),
        "{slack}"
    );

    let teams = posts
        .iter()
        .find(|p| p.get("@type").is_some())
        .expect("the Teams card");
    assert_eq!(teams["title"], "FIRING hot: d1/temperature");
    let facts = teams["sections"][0]["facts"].as_array().unwrap();
    let fact = |name: &str| {
        facts
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["value"].clone())
    };
    assert_eq!(fact("Value"), Some(json!("12.5 Cel")), "{teams}");
    assert_eq!(fact("Condition"), Some(json!("> 10")), "{teams}");
    let uri = teams["potentialAction"][0]["targets"][0]["uri"]
        .as_str()
        .unwrap();
    assert!(uri.starts_with(&link), "{teams}");
}
both_backends!(slack_teams_and_json_webhooks_carry_the_same_readable_facts);

fn email_to(port: u16, query: &str) -> EmailTarget {
    EmailTarget {
        smtp_url: format!("smtp://alerts:pw-s3cret@127.0.0.1:{port}{query}"),
        from: "telehub@plant.example".into(),
        to: vec!["ops@plant.example".into(), "night@plant.example".into()],
        ca_file: None,
    }
}

async fn an_email_is_retried_until_the_smtp_server_takes_it_and_reads_like_the_message(b: Backend) {
    let mut sink = SmtpSink::start("alerts", "pw-s3cret", 2).await;
    let app = spawn_app_with(b, |s| {
        fast(s);
        s.alerts.email = vec![email_to(sink.port, "?tls=none")];
    })
    .await;
    fire_hot(&app).await;
    assert_eq!(
        sink.next().await["refused"],
        true,
        "the first attempt is refused (451)"
    );
    assert_eq!(sink.next().await["refused"], true, "and the second");
    let mail = sink.next().await;
    assert_eq!(mail["auth"], true, "the hub logged in: {mail}");
    assert_eq!(mail["from"], "telehub@plant.example");
    assert_eq!(
        mail["to"],
        json!(["ops@plant.example", "night@plant.example"])
    );
    assert_eq!(mail["subject"], "[telehub] FIRING hot: d1/temperature");
    let body = mail["body"].as_str().unwrap();
    for want in [
        "Rule: hot (critical)",
        "Device: d1",
        "Sensor: temperature",
        "Value: 12.5 Cel",
        "Condition: > 10",
        "Since: ",
        "View: https://hub.example/#device=d1&chart=d1/temperature",
    ] {
        assert!(body.contains(want), "{want:?} in {body}");
    }
    assert!(
        sink.quiet_for(Duration::from_millis(500)).await,
        "delivered once"
    );
}
both_backends!(an_email_is_retried_until_the_smtp_server_takes_it_and_reads_like_the_message);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_without_a_tls_parameter_requires_starttls_and_sends_nothing_in_the_clear() {
    let mut sink = SmtpSink::start("alerts", "pw-s3cret", 0).await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.alerts.email = vec![email_to(sink.port, "")];
    })
    .await;
    let viewer = app.viewer().await;
    fire_hot(&app).await;
    let failed = || app.metric(&viewer, "telehub_alert_notifications_failed_total");
    eventually(WAIT, "failed attempts (no STARTTLS offered)", failed, |n| {
        *n >= 2.0
    })
    .await;
    assert!(
        sink.quiet_for(Duration::from_millis(300)).await,
        "no mail in the clear"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_goes_over_starttls_to_a_server_whose_ca_is_configured_and_not_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("telehub mail test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let (cert_file, key_file) = (dir.path().join("smtp.pem"), dir.path().join("smtp.key"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let ca_file = ca.write(dir.path(), "ca.pem");
    let mut sink =
        SmtpSink::start_with("alerts", "pw-s3cret", 0, Some((&cert_file, &key_file))).await;

    // The system's roots do not know this CA: the hub refuses the server's certificate.
    let untrusting = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.alerts.email = vec![email_to(sink.port, "")];
    })
    .await;
    let viewer = untrusting.viewer().await;
    fire_hot(&untrusting).await;
    let failed = || untrusting.metric(&viewer, "telehub_alert_notifications_failed_total");
    eventually(WAIT, "failed attempts (an unknown CA)", failed, |n| {
        *n >= 2.0
    })
    .await;
    drop(untrusting);
    assert!(
        sink.quiet_for(Duration::from_millis(200)).await,
        "nothing sent to an unverified server"
    );

    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.alerts.email = vec![EmailTarget {
            ca_file: Some(ca_file.into()),
            ..email_to(sink.port, "")
        }];
    })
    .await;
    fire_hot(&app).await;
    let mail = sink.next().await;
    assert_eq!(
        (&mail["tls"], &mail["auth"]),
        (&json!(true), &json!(true)),
        "STARTTLS, then AUTH: {mail}"
    );
    assert_eq!(mail["subject"], "[telehub] FIRING hot: d1/temperature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smtp_password_never_reaches_the_log() {
    let mut sink = SmtpSink::start("alerts", "pw-s3cret", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let config = dir.path().join("telehub.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nretry_backoff = \"50ms\"\npoll_interval = \"100ms\"\nrules_poll = \"100ms\"\n\n\
             [[alerts.email]]\nsmtp_url = \"smtp://alerts:pw-s3cret@127.0.0.1:{}?tls=none\"\n\
             from = \"telehub@plant.example\"\nto = [\"ops@plant.example\"]\n",
            sink.port
        ),
    )
    .unwrap();
    let token = telehub_cli(&db, &["device", "add", "d1"]);
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let rule = telehub_cli(
        &db,
        &["alert", "add", "hot", "--pattern", "d1/t", "--when", "> 10"],
    );
    assert!(rule.status.success(), "{rule:?}");
    let config = config.display().to_string();
    let mut hub = HubProcess::start(
        &db,
        "127.0.0.1:0",
        dir.path(),
        &["--config", &config, "--log-level", "debug"],
    )
    .await;
    let mut dev = connect(&format!("ws://{}/v1/ingest", hub.addr), Some(&token))
        .await
        .unwrap();
    send_json(
        &mut dev,
        &json!({"id": 1, "readings": [reading("t", 12.0, base_ts())]}),
    )
    .await;
    assert_eq!(next_json(&mut dev).await["ack"], 1);
    assert_eq!(sink.next().await["refused"], true);
    assert_eq!(sink.next().await["auth"], true);
    hub.terminate().await;
    let log = hub.logs();
    assert!(
        log.contains("will retry"),
        "the failed attempt is logged: {log}"
    );
    assert!(
        !log.contains("pw-s3cret"),
        "the password is in the log: {log}"
    );
    let printed = telehub_cli(&db, &["serve", "--config", &config, "--print-config"]);
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("smtp://alerts:***@127.0.0.1"), "{printed}");
    assert!(!printed.contains("pw-s3cret"), "{printed}");
}

//! InfluxDB's write endpoints (protocol.md §5) through the real hub, with curl as the client.

use crate::both_backends;
use crate::helpers::*;
use serde_json::Value;
use std::io::Write;

/// Runs curl with `args` + the URL; returns (HTTP status, body as JSON or string).
async fn curl(url: &str, args: &[&str]) -> (u16, Value) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-X", "POST"])
        .args(args)
        .arg(url)
        .output()
        .await
        .expect("curl runs (apt-get install curl)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (code.parse().unwrap(), body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn secs() -> i64 {
    base_ts() as i64
}

async fn both_write_endpoints_store_every_field_after_commit(b: Backend) {
    let app = spawn_app(b).await;
    let token = app.device("boiler-1").await;
    let dir = tempfile::tempdir().unwrap();
    let t = secs();
    let body = format!(
        "boiler,site=x value=21.5,pressure=2i {t}\n\nboiler value=22.5 {}\n",
        t + 1
    );
    let file = dir.path().join("body.gz");
    std::fs::write(&file, gzip(body.as_bytes())).unwrap();
    let v2 = format!("{}/api/v2/write?org=o&bucket=b&precision=s", app.http());
    let auth = format!("Authorization: Token {token}");
    let data = format!("@{}", file.display());
    let gz = [
        "-H",
        &auth,
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &data,
    ];
    assert_eq!(curl(&v2, &gz).await, (204, Value::String(String::new())));
    // Acked means committed: the rows are there now.
    let rows = app.stored("boiler-1").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter().any(|r| r.0 == "boiler.pressure" && r.2 == 2.0),
        "{rows:?}"
    );
    // 1.x: the token as ?p=, milliseconds; a resend stores nothing twice.
    let v1 = format!("{}/write?db=telehub&precision=ms&p={token}", app.http());
    let line = format!("boiler value=23.5 {}", (t + 2) * 1000);
    assert_eq!(curl(&v1, &["--data-binary", &line]).await.0, 204);
    assert_eq!(curl(&v1, &["--data-binary", &line]).await.0, 204);
    assert_eq!(app.stored("boiler-1").await.len(), 4);
}
both_backends!(both_write_endpoints_store_every_field_after_commit);

#[tokio::test]
async fn a_bad_line_refuses_the_whole_request_and_names_its_line() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.device("boiler-1").await;
    let url = format!("{}/api/v2/write?bucket=b&precision=s", app.http());
    let auth = format!("Authorization: Token {token}");
    let t = secs();
    let body = format!("m value=1 {t}\nm value= {t}\nm value=3 {t}\n");
    let (status, err) = curl(&url, &["-H", &auth, "--data-binary", &body]).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], "invalid");
    assert!(
        err["message"].as_str().unwrap().starts_with("line 2:"),
        "{err}"
    );
    assert!(
        app.stored("boiler-1").await.is_empty(),
        "nothing of a refused request is stored"
    );
    let (status, err) = curl(
        &url.replace("precision=s", "precision=weeks"),
        &["-H", &auth],
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("invalid")));
}

#[tokio::test]
async fn a_huge_field_name_is_not_echoed_back_whole() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.device("boiler-1").await;
    let url = format!("{}/api/v2/write?bucket=b&precision=s", app.http());
    let field = "f".repeat(1_000_000);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("authorization", format!("Token {token}"))
        .body(format!("m {field}=1 {}\n", secs()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(
        text.len() < 1_000,
        "{} bytes echoed: {}",
        text.len(),
        &text[..200]
    );
    let err: serde_json::Value = serde_json::from_str(&text).unwrap();
    let message = err["message"].as_str().unwrap();
    assert!(
        message.starts_with("line 1: sensor \"m.ffff") && message.contains("more bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn tokens_gateways_and_body_size_are_checked() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.http.max_write_bytes = 64 * 1024).await;
    app.device("pump-1").await;
    let gw = app.gateway("gw", &["pump-1"]).await;
    let url = format!("{}/api/v2/write?bucket=b&precision=s", app.http());
    let t = secs();
    let line = |dev: &str| format!("flow,device={dev} value=1 {t}");
    let auth = format!("Authorization: Token {gw}");
    assert_eq!(
        curl(&url, &["-H", &auth, "--data-binary", &line("pump-1")])
            .await
            .0,
        204
    );
    assert_eq!(app.stored("pump-1").await.len(), 1);
    let (status, err) = curl(&url, &["-H", &auth, "--data-binary", &line("pump-9")]).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("forbidden")),
        "{err}"
    );
    let (status, err) = curl(&url, &["--data-binary", &line("gw")]).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("unauthorized")));
    let wrong = "Authorization: Token th_wrong";
    assert_eq!(
        curl(&url, &["-H", wrong, "--data-binary", &line("gw")])
            .await
            .0,
        401
    );
    let viewer = format!("Authorization: Token {}", app.viewer().await);
    assert_eq!(
        curl(&url, &["-H", &viewer, "--data-binary", &line("gw")])
            .await
            .0,
        403
    );
    // Over the limit as sent, and a gzip bomb: 64 MiB of zeros in ~64 KiB, refused
    // without inflating it all.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, "m value=1\n".repeat(10_000)).unwrap();
    let data = format!("@{}", big.display());
    let (status, err) = curl(&url, &["-H", &auth, "--data-binary", &data]).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (413, Some("request too large"))
    );
    let bomb = dir.path().join("bomb.gz");
    std::fs::write(&bomb, gzip(&vec![b'0'; 64 << 20])).unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 64 * 1024);
    let data = format!("@{}", bomb.display());
    let gz = [
        "-H",
        &auth,
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &data,
    ];
    let (status, err) = curl(&url, &gz).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (413, Some("request too large")),
        "{err}"
    );
}

/// The interpreter of the venv `scripts/install-test-deps.sh` makes for the Python client.
fn venv_python() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/influx/.venv");
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        python.display()
    );
    python
}

#[tokio::test]
async fn the_python_influxdb_client_writes_with_its_sync_and_batching_apis() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.device("boiler-1").await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/influx/write_v2.py");
    let out = tokio::process::Command::new(venv_python())
        .arg(script)
        .args([&app.http(), &token, &secs().to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = app.wait_stored("boiler-1", 120).await;
    let count = |s: &str| rows.iter().filter(|r| r.0 == s).count();
    assert_eq!(
        (
            count("boiler"),
            count("boiler.pressure"),
            count("pump.flow")
        ),
        (10, 10, 100)
    );
    assert!(
        rows.iter().any(|r| r.0 == "pump.flow" && r.2 == 99.5),
        "{rows:?}"
    );
}

#[tokio::test]
async fn the_influx_shell_inserts_through_the_1x_endpoint() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.device("boiler-1").await;
    let port = app.hub().addr.port().to_string();
    let out = tokio::process::Command::new("influx")
        .args(["-host", "127.0.0.1", "-port", &port, "-database", "telehub"])
        .args([
            "-username",
            "boiler-1",
            "-password",
            &token,
            "-precision",
            "s",
        ])
        .args(["-execute", &format!("INSERT boiler value=21.5 {}", secs())])
        .output()
        .await
        .expect("influx runs (apt-get install influxdb-client)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = app.stored("boiler-1").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2), ("boiler", 21.5));
}

#[tokio::test]
async fn booleans_and_strings_are_stored_and_a_type_conflict_refuses_the_request() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.device("freezer-1").await;
    let url = format!("{}/api/v2/write?bucket=b&precision=s", app.http());
    let auth = format!("Authorization: Token {token}");
    let t = secs();
    let ok = format!("freezer door=true,mode=\"defrost\" {t}\n");
    assert_eq!(
        curl(&url, &["-H", &auth, "--data-binary", &ok]).await.0,
        204
    );
    let (status, body) = app
        .get(
            "/v1/readings?device=freezer-1&sensor=freezer.mode&from=-1d",
            Some(&app.viewer().await),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["points"][0]["value"], "defrost");
    let conflict = format!("freezer door=false {}\nfreezer door=1 {}\n", t + 1, t + 2);
    let (status, err) = curl(&url, &["-H", &auth, "--data-binary", &conflict]).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid")),
        "{err}"
    );
    assert_eq!(
        app.stored("freezer-1").await.len(),
        2,
        "nothing of the refused request"
    );
}

//! The `telehub` command line (cli.md), run as a real process against a real database.

use crate::helpers::*;
use crate::procs::telehub_cli as telehub;
use serde_json::json;
use std::process::{Command, Output};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_commands_print_tokens_that_work() {
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db.url.clone();
    let out = telehub(&db, &["device", "add", "boiler-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    assert!(token.starts_with("th_") && !token.contains(' '));
    let mut ws = app.connect_device(&token).await;
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [reading("t", 1.0, base_ts())]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);

    let out = telehub(&db, &["device", "add", "boiler-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.txt");
    let out = telehub(
        &db,
        &[
            "device",
            "add",
            "--count",
            "3",
            "--prefix",
            "sim-",
            "--tokens-out",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[2].starts_with("sim-3 th_"));

    let out = telehub(
        &db,
        &["device", "add", "pump-gw", "--gateway-for", "sim-1,sim-2"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = telehub(&db, &["device", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let gw = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "pump-gw")
        .unwrap();
    assert_eq!(gw["gateway_for"], json!(["sim-1", "sim-2"]));
    let out = telehub(&db, &["device", "list"]);
    assert!(stdout(&out).starts_with("NAME"), "{}", stdout(&out));

    let out = telehub(&db, &["device", "revoke", "boiler-1"]);
    assert!(out.status.success());
    assert_eq!(close_code(&mut ws).await, 1008);
    assert_eq!(
        telehub(&db, &["device", "revoke", "nope"]).status.code(),
        Some(1)
    );
    assert_eq!(
        telehub(&db, &["device", "add", "bad name"]).status.code(),
        Some(2)
    );

    let out = telehub(&db, &["token", "add", "wall-screen", "--role", "viewer"]);
    let viewer = stdout(&out).trim().to_owned();
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/devices", app.http()))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_prints_table_csv_and_json_with_contract_exit_codes() {
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db.url.clone();
    let mut ws = app.connect_device(&app.device("boiler-1").await).await;
    let t0 = ((base_ts() as i64 - 1800) / 60 * 60) as f64;
    let readings: Vec<_> = (0..90)
        .map(|i| reading("temperature", i as f64, t0 + i as f64))
        .collect();
    send_json(&mut ws, &json!({"id": 1, "readings": readings})).await;
    send_json(
        &mut ws,
        &json!({"id": 2, "readings": [reading("humidity", 50.0, t0)]}),
    )
    .await;
    next_json(&mut ws).await;
    next_json(&mut ws).await;

    let out = telehub(
        &db,
        &[
            "query",
            "--device",
            "boiler-1",
            "--sensor",
            "temperature",
            "--from",
            "-1h",
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "device,sensor,ts,value,unit");
    assert_eq!(lines.len(), 91);
    let ts0 = telehub::domain::Timestamp::from_unix_seconds(t0).unwrap();
    assert_eq!(lines[1], format!("boiler-1,temperature,{ts0},0,"));

    let out = telehub(
        &db,
        &[
            "query", "--device", "boiler-1", "--every", "1m", "--agg", "max", "--format", "json",
            "--from", "-2h",
        ],
    );
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}"); // humidity: 1 bucket; temperature: 2
    assert_eq!(
        rows[0],
        json!({"device": "boiler-1", "sensor": "humidity", "ts": ts0.to_rfc3339(), "value": 50.0, "count": 1, "unit": null})
    );
    assert_eq!(rows[2]["value"], 89.0);
    assert_eq!(rows[2]["count"], 30);

    let out = telehub(
        &db,
        &[
            "query", "--device", "boiler-1", "--limit", "5", "--format", "table", "--from", "-1h",
        ],
    );
    let table = stdout(&out);
    assert!(table.starts_with("DEVICE"), "{table}");
    assert_eq!(table.lines().count(), 6);

    let out = telehub(
        &db,
        &[
            "query",
            "--device",
            "boiler-1",
            "--from",
            "-1m",
            "--to",
            "now",
            "--format",
            "csv",
            "--sensor",
            "temperature",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "no rows is still success");
    assert_eq!(stdout(&out), "device,sensor,ts,value,unit\n");

    for (args, code) in [
        (
            vec!["query", "--device", "boiler-1", "--from", "yesterday"],
            2,
        ),
        (vec!["query", "--device", "boiler-1", "--agg", "avg"], 2),
        (vec!["query"], 2),
        (vec!["query", "--device", "ghost"], 1),
        (
            vec!["query", "--device", "boiler-1", "--sensor", "pressure"],
            1,
        ),
    ] {
        let out = telehub(&db, &args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).trim().is_empty());
    }
}

#[test]
fn serve_prints_its_config_with_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        "[[alerts.webhooks]]\nurl = \"https://bot:s3cret@hooks.example/x?key=s3cret&team=ops\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args([
            "serve",
            "--print-config",
            "--database-url",
            "postgres://hub:s3cret@db.example/telehub?sslmode=require&password=s3cret",
        ])
        .args(["--config", config.to_str().unwrap()])
        .env("TELEHUB_SERVER__LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("postgres://hub:***@db.example/telehub?sslmode=require&password=***"),
        "{text}"
    );
    assert!(
        text.contains("https://bot:***@hooks.example/x?key=***&team=ops"),
        "{text}"
    );
    assert!(!text.contains("s3cret"));
    assert!(
        text.contains("127.0.0.1:9999"),
        "environment overrides defaults: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_out_takes_a_new_private_file_and_never_writes_through_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let db_dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", db_dir.path().join("telehub.db").display());
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let add = |prefix: &str, file: &std::path::Path, force: bool| {
        let mut args = vec!["device", "add", "--count", "2", "--prefix", prefix];
        args.extend(["--tokens-out", file.to_str().unwrap()]);
        if force {
            args.push("--force");
        }
        telehub(&db, &args)
    };

    // A new file: created 0600, whatever the umask.
    let fresh = dir.path().join("fresh.txt");
    let out = add("a-", &fresh, false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&fresh), 0o600);
    assert_eq!(std::fs::read_to_string(&fresh).unwrap().lines().count(), 2);

    // An existing file: refused (usage error), left as it was, no device created.
    let existing = dir.path().join("existing.txt");
    std::fs::write(&existing, "keep\n").unwrap();
    let out = add("b-", &existing, false);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep\n");
    let list = telehub(&db, &["device", "list", "--format", "json"]);
    assert!(!stdout(&list).contains("b-1"), "{}", stdout(&list));

    // A symlink to someone else's file: refused; with --force the link itself is replaced
    // by a new private file and its target is never written.
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "not yours\n").unwrap();
    let link = dir.path().join("link.txt");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = add("c-", &link, false);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = add("c-", &link, true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not yours\n");
    assert!(
        !std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(mode(&link), 0o600);
    assert_eq!(std::fs::read_to_string(&link).unwrap().lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sqlite_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").join("hub");
    let file = data.join("telehub.db");
    let db = format!("sqlite://{}", file.display());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let out = telehub(&db, &["device", "add", "boiler-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&data), 0o700, "the folders it creates");
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(mode(&file), 0o600, "the database file");
    assert!(
        !stderr(&out).contains("readable by other users"),
        "{}",
        stderr(&out)
    );

    // An existing database that others may read is said at start, with the fix.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = telehub(&db, &["device", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("readable by other users") && stderr(&out).contains("chmod 600"),
        "{}",
        stderr(&out)
    );
}

//! What an operator sees when something is wrong before any device connects (issue 13):
//! read-only commands never create a database; configuration and start-up errors are one
//! line, said once, naming the file, key or variable at fault; `--listen` takes names.

use crate::procs::{HubProcess, telehub_cli};
use std::process::{Command, Output};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 1 and exactly one line on stderr, which holds each of `parts` exactly once.
fn one_line_once(o: &Output, parts: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for p in parts {
        assert_eq!(err.matches(p).count(), 1, "{p:?} once in {err}");
    }
}

#[test]
fn read_only_commands_on_a_missing_database_exit_1_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo").join("telehub.db");
    let db = format!("sqlite://{}", path.display());
    let commands: [&[&str]; 5] = [
        &["query", "--device", "d1"],
        &["stats"],
        &["export", "--device", "d1", "--from", "-1h", "--to", "now"],
        &["device", "list"],
        &["token", "list"],
    ];
    for args in commands {
        let o = telehub_cli(&db, args);
        let want = format!(
            "no database at {} (create it with telehub migrate or serve)",
            path.display()
        );
        one_line_once(&o, &[&want]);
        assert!(
            !dir.path().join("typo").exists(),
            "{args:?} created a folder"
        );
    }
    let o = telehub_cli(&db, &["device", "add", "d1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = telehub_cli(&db, &["device", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn telehub(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn configuration_errors_are_one_line_naming_the_file_or_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(&file, "[server]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let f = file.to_str().unwrap();
    let o = telehub(&["--config", f, "stats"], &[]);
    one_line_once(&o, &[f, "unknown field `lisen`"]);

    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let o = telehub(
        &["migrate", "--database-url", &db],
        &[("TELEHUB_SERVER__LISTEN", "nowhere")],
    );
    one_line_once(&o, &["TELEHUB_SERVER__LISTEN", "invalid socket address"]);
    let o = telehub(
        &["migrate", "--database-url", &db],
        &[("TELEHUB_SERVER__LISTN", "127.0.0.1:1")],
    );
    one_line_once(
        &o,
        &[
            "environment variable TELEHUB_SERVER__LISTN",
            "unknown field `listn`",
        ],
    );

    std::fs::write(&file, "[server]\nlisten = \"localhost:8089\"\n").unwrap();
    let o = telehub(&["--config", f, "serve", "--print-config"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("listen = \"127.0.0.1:8089\"")
            || printed.contains("listen = \"[::1]:8089\""),
        "a host name in the file resolves: {printed}"
    );

    std::fs::write(&file, "[log]\nformat = \"xml\"\n").unwrap();
    let o = telehub(&["--config", f, "stats"], &[]);
    one_line_once(&o, &[f, "xml"]);
}

#[test]
fn a_missing_postgresql_database_is_said_plainly() {
    crate::need_pg!();
    let server = crate::helpers::pg_server().unwrap();
    let base = server.rsplit_once('/').unwrap().0;
    let url = format!(
        "{base}/telehub_no_such_db_{}",
        crate::helpers::rand_suffix()
    );
    let o = telehub(&["stats", "--database-url", &url], &[]);
    one_line_once(&o, &["does not exist", "create it first"]);
    assert!(!stderr(&o).contains(" at line "), "{}", stderr(&o));
}

#[test]
fn an_unreachable_postgresql_is_said_once() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let url = format!("postgres://nobody@127.0.0.1:{port}/db");
    let o = telehub(
        &["migrate", "--database-url", &url],
        &[("TELEHUB_DATABASE__BUSY_TIMEOUT", "2s")],
    );
    one_line_once(&o, &["cannot open database", "Connection refused"]);
    assert!(!stderr(&o).contains(" at line "), "{}", stderr(&o));
}

#[tokio::test]
async fn an_address_in_use_is_said_once_and_host_names_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut hub = HubProcess::start(&db, "localhost:0", dir.path(), &[]).await;
    assert!(
        !hub.logs().contains("rebuilding rollups"),
        "a fresh database has nothing to rebuild: {}",
        hub.logs()
    );
    let o = telehub(
        &["serve", "--listen", &hub.addr, "--database-url", &db],
        &[],
    );
    one_line_once(&o, &["Address already in use"]);
    assert!(hub.terminate().await.success());
}

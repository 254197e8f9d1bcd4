//! Test helpers: spawn the real hub on port 0 with a fresh database, provision
//! devices, connect real WebSocket clients.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use telehub::config::Settings;
use telehub::domain::DeviceName;
use telehub::hub::{self, RunningHub};
use telehub::storage::Store;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database for one test.
pub struct TestDb {
    pub url: String,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("telehub.db").display()),
            Backend::Postgres => fresh_pg_database().await,
        };
        Self { url, _dir: dir }
    }
    pub fn path(&self) -> std::path::PathBuf {
        self._dir.path().to_path_buf()
    }
}

/// `TELEHUB_TEST_PG` names a server; each test gets its own database there. Without
/// it, PostgreSQL tests fail under CI and are skipped (with a note) elsewhere.
pub fn pg_server() -> Option<String> {
    match std::env::var("TELEHUB_TEST_PG") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").is_ok() => {
            panic!("TELEHUB_TEST_PG is not set; CI must test PostgreSQL")
        }
        _ => None,
    }
}

async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let server = pg_server().expect("checked by the caller");
    let name = format!("telehub_test_{}", rand_suffix());
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .expect("connect to TELEHUB_TEST_PG");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = server
        .rsplit_once('/')
        .expect("TELEHUB_TEST_PG ends in /DBNAME");
    format!("{base}/{name}")
}

pub fn rand_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// Runs a test body on SQLite and, when a server is configured, on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::pg_server().is_none() {
                    eprintln!("skipped: TELEHUB_TEST_PG is not set");
                    return;
                }
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

pub struct TestApp {
    pub hub: Option<RunningHub>,
    pub db: TestDb,
    pub store: Store,
    pub settings: Settings,
}

pub fn test_settings(db: &TestDb) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.database.url = db.url.clone();
    s.database.sqlite_synchronous = telehub::config::SqliteSync::Normal;
    s
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::new(backend).await;
    let mut settings = test_settings(&db);
    tweak(&mut settings);
    let hub = hub::start(settings.clone()).await.expect("hub starts");
    let store = hub.state.store.clone();
    TestApp {
        hub: Some(hub),
        db,
        store,
        settings,
    }
}

impl TestApp {
    pub fn hub(&self) -> &RunningHub {
        self.hub.as_ref().expect("running")
    }
    pub fn http(&self) -> String {
        self.hub().base_url()
    }
    pub fn ws(&self, path: &str) -> String {
        format!("{}{path}", self.http().replacen("http", "ws", 1))
    }
    pub async fn device(&self, name: &str) -> String {
        self.store
            .add_device(&DeviceName::parse(name).unwrap(), &[])
            .await
            .unwrap()
    }
    pub async fn gateway(&self, name: &str, targets: &[&str]) -> String {
        let t: Vec<_> = targets
            .iter()
            .map(|t| DeviceName::parse(t).unwrap())
            .collect();
        self.store
            .add_device(&DeviceName::parse(name).unwrap(), &t)
            .await
            .unwrap()
    }
    pub async fn viewer(&self) -> String {
        self.store
            .add_token("test-viewer", telehub::auth::Role::Viewer)
            .await
            .unwrap()
    }
    pub async fn connect_device(&self, token: &str) -> Ws {
        connect(&self.ws("/v1/ingest"), Some(token))
            .await
            .expect("device connects")
    }
    /// Readings stored for `device`, read straight from the database.
    pub async fn stored(&self, device: &str) -> Vec<(String, i64, f64)> {
        count_rows(&self.db.url, device).await
    }
    pub async fn stop(&mut self) {
        if let Some(h) = self.hub.take() {
            h.stop().await;
        }
    }
}

/// Reads (sensor, ts µs, value) rows for a device with a separate connection.
pub async fn count_rows(url: &str, device: &str) -> Vec<(String, i64, f64)> {
    const Q: &str = "SELECT s.sensor, r.ts, r.value FROM readings r JOIN series s ON s.id = r.series_id
                     JOIN devices d ON d.id = s.device_id WHERE d.name = $1 ORDER BY s.sensor, r.ts";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(Q)
            .bind(device)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(Q)
            .bind(device)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(url: &str, token: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The HTTP status of a refused upgrade.
pub fn refused_status(r: Result<Ws, tungstenite::Error>) -> u16 {
    match r {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got an upgraded socket"),
    }
}

pub async fn send_json(ws: &mut Ws, v: &Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next text frame as JSON (skipping pings), within [`WAIT`].
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("ok");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Waits for the close frame and returns its code.
pub async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Close(None))) => return u16::from(CloseCode::Status),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before close frame: {e}"),
            None => panic!("socket ended without a close frame"),
        }
    }
}

pub fn reading(sensor: &str, value: f64, ts: f64) -> Value {
    serde_json::json!({"sensor": sensor, "value": value, "ts": ts})
}

/// A Unix time a few minutes ago, whole seconds, so tests never hit the skew limit.
pub fn base_ts() -> f64 {
    (chrono::Utc::now().timestamp() - 600) as f64
}

//! The real hub, started in-process on port 0 with a fresh database ([`spawn_app`]), and
//! what a test does with it: provision devices and tokens, connect devices and
//! dashboards, call the HTTP API, read what was stored.

use super::{Backend, TestDb, WAIT, Ws, connect, eventually, rand_suffix, stored_readings};
use serde_json::Value;
use telehub::config::Settings;
use telehub::domain::DeviceName;
use telehub::hub::{self, RunningHub};
use telehub::storage::Store;

pub struct TestApp {
    pub hub: Option<RunningHub>,
    pub db: TestDb,
    pub store: Store,
    pub settings: Settings,
}

/// Settings for a hub on `127.0.0.1:0` over `db`.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.database.url = db.url.clone();
    s.database.sqlite_synchronous = telehub::config::SqliteSync::Normal;
    // Tests that look at the `readings` table itself expect every reading there; the
    // compression tests (tests/api/compression.rs) run the compactor themselves.
    s.storage.compress_after = telehub::config::CompressAfter::Off;
    s
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A hub on a fresh database, with `tweak` applied to its test settings.
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
    /// Adds a device; returns its token.
    pub async fn device(&self, name: &str) -> String {
        self.gateway(name, &[]).await
    }
    /// Adds a device that may also send for `targets`; returns its token.
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
    /// A new viewer token.
    pub async fn viewer(&self) -> String {
        self.store
            .add_token(
                &format!("test-viewer-{}", rand_suffix()),
                telehub::auth::Role::Viewer,
            )
            .await
            .unwrap()
    }
    /// A new admin token.
    pub async fn admin(&self) -> String {
        self.store
            .add_token(
                &format!("test-admin-{}", rand_suffix()),
                telehub::auth::Role::Admin,
            )
            .await
            .unwrap()
    }
    /// POSTs `body` to `path` with `token` as bearer token: the status and the body text.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, String) {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.http()))
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
    pub async fn connect_device(&self, token: &str) -> Ws {
        connect(&self.ws("/v1/ingest"), Some(token))
            .await
            .expect("device connects")
    }
    /// A live-feed socket for `token` (not subscribed to anything yet).
    /// A dashboard with a 4 KiB receive window, so the hub's writes to it block once its
    /// buffers are full.
    pub async fn connect_small_window_dashboard(&self, token: &str) -> Ws {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let tcp = sock.connect(self.hub().addr).await.unwrap();
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                self.ws("/v1/live"),
            )
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let tcp = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
        tokio_tungstenite::client_async(req, tcp).await.unwrap().0
    }
    pub async fn connect_dashboard(&self, token: &str) -> Ws {
        connect(&self.ws("/v1/live"), Some(token))
            .await
            .expect("dashboard connects")
    }
    /// GET `path` with `token` as bearer token: the whole response (status, headers, body).
    pub async fn get_response(&self, path: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.http()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
    /// GET `path`, with `token` as bearer token: the status, and the body as JSON (or
    /// as a JSON string when it is not JSON).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.http()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    /// The value of one metric line (`name{labels}`) in `/metrics`, 0 when absent.
    pub async fn metric(&self, viewer: &str, line: &str) -> f64 {
        let (status, body) = self.get("/metrics", Some(viewer)).await;
        assert_eq!(status, 200, "/metrics: {body}");
        body.as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
    /// Readings stored for `device`, read straight from the database.
    pub async fn stored(&self, device: &str) -> Vec<(String, i64, f64)> {
        stored_readings(&self.db.url, device).await
    }
    /// Waits (within [`WAIT`]) until `device` has at least `n` stored readings; returns them.
    pub async fn wait_stored(&self, device: &str, n: usize) -> Vec<(String, i64, f64)> {
        let what = format!("{n} stored readings of {device}");
        eventually(WAIT, &what, || self.stored(device), |rows| rows.len() >= n).await
    }
    pub async fn stop(&mut self) {
        if let Some(h) = self.hub.take() {
            h.stop().await;
        }
    }
}

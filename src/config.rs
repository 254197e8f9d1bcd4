//! Configuration: defaults → TOML file → `TELEHUB_` environment (`__` separator) →
//! command-line flags, loaded once into typed [`Settings`] and validated once.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub tls: Option<TlsSettings>,
    pub database: DatabaseSettings,
    pub ingest: IngestSettings,
    pub writer: WriterSettings,
    pub live: LiveSettings,
    pub http: HttpSettings,
    pub limits: LimitSettings,
    /// `telehub bridge serial` ports (`[[bridge.serial]]`); absent: none.
    pub bridge: Option<crate::bridge::BridgeSettings>,
    /// `[mqtt]`: absent means no MQTT (see [`crate::mqtt::MqttSettings`]).
    pub mqtt: Option<crate::mqtt::MqttSettings>,
    pub storage: StorageSettings,
    pub retention: RetentionSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Extra origins allowed on `/v1/live` besides the hub's own.
    pub allowed_origins: Vec<String>,
    /// Open connections (all kinds) at most; more are refused with 503.
    pub max_connections: usize,
    /// A TLS + HTTP request or WebSocket handshake not complete within this is dropped.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// How long shutdown waits for sockets and the storage writer to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://user@host/db`.
    pub url: String,
    /// SQLite `synchronous` level: `full` (acked readings survive power loss) or
    /// `normal` (they survive a crash of the hub process, not of the machine).
    pub sqlite_synchronous: SqliteSync,
    /// Connections in the read pool (queries, HTTP history).
    pub max_connections: u32,
    /// How long a statement waits for a lock or a connection before failing.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    pub max_frame_bytes: usize,
    pub max_readings_per_message: usize,
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Messages a device may have awaiting their reply before the hub stops reading its socket.
    pub max_inflight_messages: usize,
    /// Per-connection WebSocket read buffer (tungstenite's default of 128 KiB is far too large).
    pub read_buffer_bytes: usize,
    /// Per-connection write buffer; frames are flushed once this much is queued or the socket is idle.
    pub write_buffer_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterSettings {
    /// Messages waiting for the storage writer at most; when full, device sockets stop being read.
    pub queue_capacity: usize,
    /// Rows committed in one transaction at most.
    pub max_batch_rows: usize,
    /// How long the writer waits for more messages after the first before committing.
    /// 0 (default): commit at once; whatever queues during a commit forms the next batch,
    /// so batches still grow under load and an idle hub adds no wait to a reading's path.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Back-off after a failed commit before the writer tries storage again.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveSettings {
    /// Frames queued for one dashboard client at most; beyond it readings are dropped and counted.
    pub client_queue: usize,
    /// A client whose queue stays full this long is closed with 1008 "too slow".
    #[serde(with = "humantime_serde")]
    pub stuck_timeout: Duration,
    pub max_patterns: usize,
    /// Readings per frame at most when a client's writer drains its queue.
    pub max_readings_per_frame: usize,
    /// Committed batches the fan-out may fall behind the writer before it drops some.
    pub committed_backlog: usize,
    /// Frames per second that all dashboard sockets together aim to stay under. A socket
    /// that wrote less than `clients / max_frames_per_second` ago (at most 250 ms) waits
    /// out the rest and sends everything queued meanwhile in one go: under load each
    /// frame carries more readings; an idle socket, or a lone one, writes at once.
    pub max_frames_per_second: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// `limit` on `/v1/readings` at most (and its default).
    pub max_points: usize,
    /// Buckets a query may produce at most.
    pub max_buckets: usize,
}

/// Abuse limits (see SECURITY.md). Rates are token buckets: `rate` per second, `burst` at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Open connections from one IP address at most; over it: 503 before any upgrade.
    pub max_connections_per_ip: usize,
    /// WebSocket handshakes accepted per second (all clients); over it: 503 + Retry-After.
    pub handshakes_per_second: u32,
    pub handshake_burst: u32,
    /// Readings accepted per second per device; over it: `rate_limited` nacks.
    pub device_readings_per_second: u32,
    /// Must be at least `ingest.max_readings_per_message`.
    pub device_burst: u32,
    /// Consecutive `rate_limited` replies after which the socket is closed with 1008.
    pub abuse_close_after: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_connections_per_ip: 5_000,
            handshakes_per_second: 1_000,
            handshake_burst: 2_000,
            device_readings_per_second: 2_000,
            device_burst: 10_000,
            abuse_close_after: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Maintain 1-minute and 1-hour rollups as readings arrive (bucket queries then read
    /// them). Off: queries read raw data, and the hub rebuilds the rollups when it next
    /// starts with them on.
    pub rollups: bool,
}

/// How long each kind of history is kept; a background task deletes what is older.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Raw readings, e.g. "30d", or "forever".
    pub raw: Keep,
    /// 1-minute rollups; at least as long as `raw`.
    pub minute: Keep,
    /// 1-hour rollups; at least as long as `minute`.
    pub hour: Keep,
    /// How often a retention pass starts.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Rows one DELETE removes at most (one short transaction).
    pub batch_rows: usize,
    /// Pause between two DELETEs, so the writer is never held up for long.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
}

/// A retention period: a duration, or `"forever"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Keep {
    For(Duration),
    Forever,
}

impl Keep {
    /// The oldest time still kept at `now`, rounded down to a whole hour so that raw data
    /// and minute rollups are always deleted in whole rollup buckets.
    pub fn cutoff(self, now: crate::domain::Timestamp) -> Option<i64> {
        const HOUR: i64 = 3_600_000_000;
        match self {
            Keep::Forever => None,
            Keep::For(d) => Some(now.saturating_sub(d).as_micros().div_euclid(HOUR) * HOUR),
        }
    }
}

impl Serialize for Keep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keep::Forever => s.serialize_str("forever"),
            Keep::For(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "forever" {
            return Ok(Keep::Forever);
        }
        crate::domain::parse_duration(&s)
            .map(Keep::For)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a retention period: use e.g. \"30d\", \"1y\" or \"forever\""
                ))
            })
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self { rollups: true }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        let days = |d: u64| Keep::For(Duration::from_secs(d * 86_400));
        Self {
            raw: days(30),
            minute: Keep::For(humantime::parse_duration("1y").expect("valid")), // 365.25 days
            hour: Keep::Forever,
            interval: Duration::from_secs(3600),
            batch_rows: 5_000,
            pause: Duration::from_millis(20),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid"),
            allowed_origins: Vec::new(),
            max_connections: 20_000,
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://telehub-data/telehub.db".into(),
            sqlite_synchronous: SqliteSync::Full,
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_readings_per_message: 1000,
            max_clock_skew: Duration::from_secs(300),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_inflight_messages: 64,
            read_buffer_bytes: 2 * 1024,
            write_buffer_bytes: 4 * 1024,
        }
    }
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_batch_rows: 10_000,
            linger: Duration::ZERO,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            client_queue: 1024,
            stuck_timeout: Duration::from_secs(10),
            max_patterns: 256,
            max_readings_per_frame: 500,
            committed_backlog: 1024,
            max_frames_per_second: 50_000,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_points: 10_000,
            max_buckets: 100_000,
        }
    }
}

/// Command-line values that override the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
}

impl Settings {
    /// Loads defaults, then `file`, then `TELEHUB_*` variables, then `overrides`; validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let defaults = config::Config::try_from(&Settings::default())?;
        let mut b = config::Config::builder().add_source(defaults);
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            b = b.add_source(config::File::from(f).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix("TELEHUB")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("server.allowed_origins")
                .try_parsing(true)
                .source(Some(telehub_env())),
        );
        let mut s: Settings = b.build()?.try_deserialize()?;
        if let Some(url) = &overrides.database_url {
            s.database.url = url.clone();
        }
        if let Some(l) = overrides.listen {
            s.server.listen = l;
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks what types alone cannot; called once by [`Settings::load`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        let u = &self.database.url;
        if !(u.starts_with("sqlite:")
            || u.starts_with("postgres://")
            || u.starts_with("postgresql://"))
        {
            return bad("database.url must start with sqlite:// or postgres://");
        }
        let i = &self.ingest;
        if i.max_frame_bytes < 256
            || i.max_readings_per_message == 0
            || i.max_inflight_messages == 0
        {
            return bad(
                "ingest.max_frame_bytes must be ≥ 256, and max_readings_per_message and max_inflight_messages ≥ 1",
            );
        }
        if i.ping_interval.is_zero() || i.idle_timeout <= i.ping_interval {
            return bad("ingest.idle_timeout must be longer than ingest.ping_interval (> 0)");
        }
        if self.writer.queue_capacity == 0 || self.writer.max_batch_rows == 0 {
            return bad("writer.queue_capacity and writer.max_batch_rows must be ≥ 1");
        }
        if self.live.client_queue == 0
            || self.live.max_patterns == 0
            || self.live.max_readings_per_frame == 0
            || self.live.max_frames_per_second == 0
        {
            return bad(
                "live.client_queue, live.max_patterns, live.max_readings_per_frame and live.max_frames_per_second must be ≥ 1",
            );
        }
        if self.server.max_connections == 0
            || self.http.max_points == 0
            || self.http.max_buckets == 0
        {
            return bad("server.max_connections, http.max_points and http.max_buckets must be ≥ 1");
        }
        if let Some(b) = &self.bridge {
            b.validate().map_err(ConfigError::Invalid)?;
        }
        if let Some(m) = &self.mqtt {
            m.validate(&self.ingest).map_err(ConfigError::Invalid)?;
        }
        let r = &self.retention;
        if !(r.raw <= r.minute && r.minute <= r.hour) {
            return bad(
                "retention: rollups must be kept at least as long as what they summarise (raw ≤ minute ≤ hour)",
            );
        }
        if r.batch_rows == 0 || r.interval.is_zero() {
            return bad("retention.batch_rows and retention.interval must be > 0");
        }
        Ok(())
    }

    /// The effective configuration as TOML, with secrets (database and broker passwords) hidden.
    pub fn to_redacted_toml(&self) -> String {
        let mut s = self.clone();
        s.database.url = redact_url(&s.database.url);
        s.bridge = s
            .bridge
            .as_ref()
            .map(crate::bridge::BridgeSettings::redacted);
        if let Some(m) = &mut s.mqtt {
            m.redact();
        }
        toml::to_string_pretty(&s).expect("settings serialize")
    }
}

/// Only the variables that name a settings section: test and tool variables such as
/// `TELEHUB_TEST_PG` share the prefix but are not configuration.
fn telehub_env() -> config::Map<String, String> {
    const SECTIONS: [&str; 11] = [
        "SERVER__",
        "TLS__",
        "DATABASE__",
        "INGEST__",
        "WRITER__",
        "LIVE__",
        "HTTP__",
        "LIMITS__",
        "MQTT__",
        "STORAGE__",
        "RETENTION__",
    ];
    std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("TELEHUB_")
                .is_some_and(|rest| SECTIONS.iter().any(|s| rest.starts_with(s)))
        })
        .collect()
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.into();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn an_mqtt_section_enables_mqtt_and_its_password_is_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(
            &f,
            "[mqtt]\nurl = \"mqtts://broker:8883\"\nusername = \"hub\"\npassword = \"s3cret\"\ncluster = true\n",
        )
        .unwrap();
        let s = Settings::load(Some(&f), &Overrides::default()).unwrap();
        let m = s.mqtt.as_ref().expect("[mqtt] present");
        assert!(m.cluster);
        assert_eq!(m.ingest_topic, "telehub/ingest/+");
        let printed = s.to_redacted_toml();
        assert!(!printed.contains("s3cret") && printed.contains("password = \"***\""));
        std::fs::write(&f, "[mqtt]\nurl = \"http://broker\"\n").unwrap();
        let e = Settings::load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("mqtt://"), "{e}");
    }

    #[test]
    fn file_values_override_defaults_and_flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(
            &f,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[ingest]\nmax_clock_skew = \"1m\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&f), &Overrides::default()).unwrap();
        assert_eq!(s.server.listen.port(), 9000);
        assert_eq!(s.ingest.max_clock_skew, Duration::from_secs(60));
        let o = Overrides {
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            database_url: None,
        };
        assert_eq!(
            Settings::load(Some(&f), &o).unwrap().server.listen.port(),
            9001
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(&f, "[server]\nlisen = \"x\"\n").unwrap();
        assert!(Settings::load(Some(&f), &Overrides::default()).is_err());
        let o = Overrides {
            database_url: Some("mysql://x".into()),
            listen: None,
        };
        assert!(
            Settings::load(None, &o)
                .unwrap_err()
                .to_string()
                .contains("sqlite://")
        );
    }
}

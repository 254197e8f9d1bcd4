//! Configuration: defaults → TOML file → `TELEHUB_` environment (`__` separator) →
//! command-line flags, loaded once into typed [`Settings`] and validated once.
//!
//! One file per section; each section checks itself from its own plain values
//! (`validate`), and [`Settings::validate`] adds the checks that span sections.
//! A settings type lives here, never in the subsystem it configures, so `config`
//! imports nothing above `domain` and `protocol`.
//!
//! May use: `domain`, `protocol`.

/// The [`SocketSettings`] of a section that has its five keys (`[ingest]`, `[live]`).
macro_rules! socket_settings {
    ($section:expr) => {
        $crate::config::SocketSettings {
            read_buffer_bytes: $section.read_buffer_bytes,
            write_buffer_bytes: $section.write_buffer_bytes,
            max_frame_bytes: $section.max_frame_bytes,
            ping_interval: $section.ping_interval,
            idle_timeout: $section.idle_timeout,
        }
    };
}

pub mod alerts;
pub mod bridge;
pub mod commands;
pub mod device_config;
mod error;
pub mod ingest;
pub mod live;
pub mod log;
pub mod mqtt;
pub mod presence;
pub mod server;
pub mod storage;

pub use alerts::{AlertSettings, EmailTarget, Webhook, WebhookFormat};
pub use bridge::{BridgeSettings, FlowControl, Parity, SerialPortSettings};
pub use commands::CommandSettings;
pub use device_config::DeviceConfigSettings;
pub use error::{ConfigError, SettingError};
pub use ingest::IngestSettings;
pub use live::{LiveSettings, ReplayBufferSettings};
pub use log::{LogFormat, LogSettings};
pub use mqtt::{BrokerAddr, MqttSettings};
pub use presence::PresenceSettings;
pub use server::{
    HttpSettings, LimitSettings, MIN_PAGE_SIZE, ServerSettings, SocketSettings, TlsSettings,
};
pub use storage::{
    CompressAfter, DatabaseSettings, Keep, RetentionSettings, SqliteSync, StorageSettings,
    WriterSettings,
};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

impl ConfigError {
    /// A loading error, naming the environment variable that set the key at fault, or
    /// else the file.
    fn at(e: config::ConfigError, file: Option<&Path>) -> Self {
        let message = e.to_string();
        let key = message
            .rsplit_once("for key `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(key, _)| format!("TELEHUB_{}", key.to_ascii_uppercase().replace('.', "__")));
        // "unknown field `listn` … for key `server`": the variable is TELEHUB_SERVER__LISTN.
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_ascii_uppercase());
        let var = match (key, unknown) {
            (Some(key), Some(field)) => Some(format!("{key}__{field}")),
            (key, _) => key,
        }
        .filter(|var| std::env::var_os(var).is_some());
        let place = match (var, file) {
            (Some(var), _) => format!("environment variable {var}: "),
            (None, Some(f)) => format!("{}: ", f.display()),
            (None, None) => String::new(),
        };
        ConfigError::Load { place, message }
    }
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
    pub bridge: Option<BridgeSettings>,
    /// `[mqtt]`: absent means no MQTT (see [`MqttSettings`]).
    pub mqtt: Option<MqttSettings>,
    pub storage: StorageSettings,
    pub retention: RetentionSettings,
    pub log: LogSettings,
    pub alerts: AlertSettings,
    pub commands: CommandSettings,
    pub presence: PresenceSettings,
    pub device_config: DeviceConfigSettings,
}

/// Command-line values that override the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
    /// `--log-level`, `--log-format`.
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
}

impl Settings {
    /// Loads defaults, then `file`, then `TELEHUB_*` variables, then `overrides`; validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let defaults =
            config::Config::try_from(&Settings::default()).map_err(|e| ConfigError::at(e, None))?;
        let mut b = config::Config::builder().add_source(defaults);
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::NoFile(f.to_owned()));
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
        let mut s: Settings = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::at(e, file))?;
        if let Some(url) = &overrides.database_url {
            s.database.url = url.clone();
        }
        if let Some(l) = overrides.listen {
            s.server.listen = l;
        }
        if let Some(l) = &overrides.log_level {
            s.log.level = l.clone();
        }
        if let Some(f) = overrides.log_format {
            s.log.format = f;
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks what types alone cannot, section by section; called once by [`Settings::load`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(self.check()?)
    }

    fn check(&self) -> Result<(), SettingError> {
        self.database.validate()?;
        self.ingest.validate()?;
        self.writer.validate()?;
        self.live.validate()?;
        self.server.validate()?;
        self.http.validate()?;
        self.storage.validate()?;
        self.retention.validate()?;
        self.log.validate()?;
        self.alerts.validate()?;
        self.commands.validate()?;
        if self.limits.max_series_per_device == 0 {
            return Err(SettingError::Rule(
                "limits.max_series_per_device must be ≥ 1",
            ));
        }
        if self.limits.max_page_size < MIN_PAGE_SIZE {
            return Err(SettingError::Rule(
                "limits.max_page_size must be ≥ 1000 (the dashboard asks for pages of 1,000 devices)",
            ));
        }
        self.presence.validate()?;
        self.device_config.validate()?;
        if let Some(b) = &self.bridge {
            b.validate()?;
        }
        if let Some(m) = &self.mqtt {
            m.validate(&self.ingest)?;
        }
        Ok(())
    }

    /// The effective configuration as TOML, with secrets (database and broker passwords, alert secret and webhook headers) hidden.
    pub fn to_redacted_toml(&self) -> String {
        let mut s = self.clone();
        s.database.url = redact_url(&s.database.url);
        s.bridge = s.bridge.as_ref().map(BridgeSettings::redacted);
        s.alerts = s.alerts.redacted();
        if let Some(m) = &mut s.mqtt {
            m.redact();
        }
        toml::to_string_pretty(&s).expect("settings serialize")
    }
}

impl Settings {
    /// The dashboard's address for links in alert events: `alerts.dashboard_url`, or this
    /// hub's own (`bound`: the address it listens on; an unspecified IP reads `localhost`).
    pub fn dashboard_url(&self, bound: SocketAddr) -> String {
        if !self.alerts.dashboard_url.is_empty() {
            return self.alerts.dashboard_url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let host = match bound.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("{scheme}://{host}:{}", bound.port())
    }
}

/// Only the variables that name a settings section: test and tool variables such as
/// `TELEHUB_TEST_PG` share the prefix but are not configuration. The sections are the
/// fields of [`Settings`], read from its serialized defaults (absent sections too).
fn telehub_env() -> config::Map<String, String> {
    let sections: Vec<String> = match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(fields)) => fields
            .keys()
            .map(|k| format!("{}__", k.to_ascii_uppercase()))
            .collect(),
        _ => unreachable!("Settings serializes to an object"),
    };
    std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("TELEHUB_")
                .is_some_and(|rest| sections.iter().any(|s| rest.starts_with(s.as_str())))
        })
        .collect()
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(q) = query {
        out.push('?');
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// Query parameters whose values are secrets (`password`, `key`, `api_key`, `token`,
/// `sig`, InfluxDB's `p`, …): hidden by [`redact_url`].
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "p"
        || [
            "pass",
            "pwd",
            "key",
            "token",
            "secret",
            "sig",
            "auth",
            "credential",
            "code",
        ]
        .iter()
        .any(|s| n.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=pw"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("https://u:pw@hooks.example/x?key=k&api_token=t&team=a"),
            "https://u:***@hooks.example/x?key=***&api_token=***&team=a"
        );
        assert_eq!(
            redact_url("https://hooks.example/a@b?sig=s"),
            "https://hooks.example/a@b?sig=***"
        );
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
            ..Overrides::default()
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
            ..Overrides::default()
        };
        assert!(
            Settings::load(None, &o)
                .unwrap_err()
                .to_string()
                .contains("sqlite://")
        );
    }
}

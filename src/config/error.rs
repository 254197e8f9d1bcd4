//! Why the configuration cannot be used: [`ConfigError`] (loading the layers) wraps
//! [`SettingError`] (a value the sections' `validate` refuses). Every message names the
//! setting at fault and what it must be, so the fix is in the message.

use std::path::PathBuf;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `place` is the file or environment variable at fault, when known.
    #[error("configuration: {place}{message}")]
    Load { place: String, message: String },
    #[error("configuration: config file {} does not exist; give the path of an existing TOML file", .0.display())]
    NoFile(PathBuf),
    #[error("configuration: {0}")]
    Invalid(#[from] SettingError),
}

/// A setting whose value cannot work, found by a section's `validate` (or while parsing
/// one value, such as `server.listen` or `mqtt.url`).
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// A bound or a rule between settings, stated in full: which keys, and what they must be.
    #[error("{0}")]
    Rule(&'static str),
    #[error("alerts.webhooks: {0:?} must start with http:// or https://")]
    WebhookUrl(String),
    #[error(
        "alerts.email ca_file {0:?} is not a readable file; give the PEM of the SMTP server's CA"
    )]
    EmailCaFile(std::path::PathBuf),
    #[error("alerts.webhooks: {0:?} is not a header name")]
    WebhookHeader(String),
    #[error("log.level: {0:?} is not one of {levels} (or a filter such as telehub=debug)", levels = super::log::LEVELS.join(", "))]
    LogLevel(String),
    #[error("{0} (expected HOST:PORT, e.g. 127.0.0.1:8080)")]
    Listen(std::io::Error),
    #[error("the host name resolves to no address; give an IP address or a name that resolves")]
    ListenUnresolved,
    /// `mqtt.url` is not `mqtt[s]://HOST[:PORT]`.
    #[error("mqtt.url {url:?}: {problem}")]
    BrokerUrl { url: String, problem: &'static str },
    /// Said without the URL, which holds them.
    #[error("mqtt.url: put broker credentials in mqtt.username and mqtt.password, not in the URL")]
    BrokerCredentials,
    #[error("mqtt.ingest_topic {0:?} is not a valid MQTT topic filter")]
    IngestTopicFilter(String),
    /// One `[[bridge.serial]]` entry breaks a rule; `port` names the entry.
    #[error("bridge.serial {port}: {rule}")]
    SerialPort { port: String, rule: &'static str },
    #[error("bridge.serial {port}: {source}")]
    SerialHub {
        port: String,
        source: crate::protocol::address::AddressError,
    },
    #[error("bridge.serial: port {0} is listed twice")]
    SerialPortTwice(String),
    #[error("bridge.serial: ports {0} and {1} share a state_file; give each its own")]
    SharedStateFile(String, String),
}

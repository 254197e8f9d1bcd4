//! `[log]`: how much the hub logs and in which format. The `telehub` binary reads it
//! (after the file, `TELEHUB_LOG__LEVEL` / `TELEHUB_LOG__FORMAT` and `--log-level` /
//! `--log-format`) before anything else is logged; `RUST_LOG`, when set, replaces `level`.

use super::SettingError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `error`, `warn`, `info`, `debug` or `trace` for telehub's own events (other crates
    /// log at `warn`), or a full filter such as `telehub=debug,sqlx=info`.
    pub level: String,
    pub format: LogFormat,
    /// Refused requests are logged once per peer and cause in each window; the rest are
    /// summed up in one line when it ends ("N more refused from 1.2.3.4 in the last 10s").
    #[serde(with = "humantime_serde")]
    pub refusal_window: Duration,
    /// The most peers whose refusals are counted apart; beyond them, refusals are counted
    /// together as "other peers" (bounds the memory a scan of many addresses takes).
    pub refusal_peers: usize,
}

/// One event per line: human-readable text, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            refusal_window: Duration::from_secs(10),
            refusal_peers: 1024,
        }
    }
}

pub(super) const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

impl LogSettings {
    /// The filter directive `level` stands for: a bare level applies to telehub, the rest
    /// logs warnings; anything with `=` or `,` is used as it is.
    pub fn directive(&self) -> String {
        let level = self.level.trim();
        if level.contains('=') || level.contains(',') {
            level.to_owned()
        } else {
            format!("telehub={level},firmware_sim={level},warn")
        }
    }

    pub fn validate(&self) -> Result<(), SettingError> {
        if self.refusal_window < Duration::from_millis(100)
            || self.refusal_window > Duration::from_secs(3600)
        {
            return Err(SettingError::Rule(
                "log.refusal_window must be between 100ms and 1h",
            ));
        }
        if !(1..=1_000_000).contains(&self.refusal_peers) {
            return Err(SettingError::Rule(
                "log.refusal_peers must be between 1 and 1000000",
            ));
        }
        let level = self.level.trim();
        if level.contains('=') || level.contains(',') {
            return Ok(());
        }
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(SettingError::LogLevel(level.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_applies_to_telehub_and_a_filter_is_kept() {
        let mut s = LogSettings::default();
        assert_eq!(s.directive(), "telehub=info,firmware_sim=info,warn");
        s.level = "sqlx=info,telehub=debug".into();
        assert_eq!(s.directive(), "sqlx=info,telehub=debug");
        s.level = "loud".into();
        assert!(s.validate().unwrap_err().to_string().contains("log.level"));
    }
}

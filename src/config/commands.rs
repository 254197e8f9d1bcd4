//! `[commands]`: how commands (docs/commands.md) are delivered, and the bounds of every
//! queue that holds them. Commands themselves live in the database.

use super::SettingError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest `ttl` a command may have (docs/commands.md).
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandSettings {
    /// Commands sent to one device and not yet answered, at most.
    pub window: usize,
    /// A command sent but not acknowledged on a connection that stayed open is sent
    /// again after this long.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Sends of one command at most; then it is `failed`.
    pub max_attempts: u32,
    /// A command's `ttl` when the request gives none.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// The longest `ttl` a request may ask for (at most 7 d).
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// Open (not yet terminal) commands of one device at most; a request past it is
    /// refused with 429.
    pub max_open_per_device: usize,
    /// Open commands of the whole database at most (the dispatcher holds each one's
    /// deadline in memory); a request past it is refused with 429.
    pub max_open: usize,
    /// Devices one bulk request may name at most.
    pub max_bulk: usize,
    /// Commands created or changed elsewhere (the CLI, another hub) are looked for this
    /// often.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Events waiting for the dispatcher at most (request handlers wait when it is
    /// full); also state changes waiting to be stored.
    pub queue: usize,
    /// State changes stored in one transaction at most (those asked for while a commit
    /// runs go into the next one).
    pub commit_batch: usize,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            window: 1,
            ack_timeout: Duration::from_secs(30),
            max_attempts: 5,
            default_ttl: Duration::from_secs(3600),
            max_ttl: MAX_TTL,
            max_open_per_device: 1000,
            max_open: 100_000,
            max_bulk: 10_000,
            poll_interval: Duration::from_millis(250),
            queue: 4096,
            commit_batch: 1000,
        }
    }
}

impl CommandSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        let counts = [
            self.window,
            self.max_open_per_device,
            self.max_open,
            self.max_bulk,
            self.queue,
            self.commit_batch,
        ];
        if counts.contains(&0) || self.max_attempts == 0 {
            return Err(SettingError::Rule(
                "commands: window, max_attempts, max_open_per_device, max_open, max_bulk, queue and commit_batch must be ≥ 1",
            ));
        }
        let durations = [
            self.ack_timeout,
            self.default_ttl,
            self.max_ttl,
            self.poll_interval,
        ];
        if durations.iter().any(Duration::is_zero) {
            return Err(SettingError::Rule(
                "commands: ack_timeout, default_ttl, max_ttl and poll_interval must be > 0",
            ));
        }
        if self.max_ttl > MAX_TTL || self.default_ttl > self.max_ttl {
            return Err(SettingError::Rule(
                "commands: max_ttl must be at most 7d, and default_ttl at most max_ttl",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_contracts_and_bounds_are_checked() {
        let s = CommandSettings::default();
        assert_eq!((s.window, s.max_attempts), (1, 5));
        assert_eq!(s.ack_timeout, Duration::from_secs(30));
        assert_eq!(s.default_ttl, Duration::from_secs(3600));
        assert!(s.validate().is_ok());
        let too_long = CommandSettings {
            max_ttl: MAX_TTL + Duration::from_secs(1),
            ..CommandSettings::default()
        };
        assert!(too_long.validate().unwrap_err().to_string().contains("7d"));
        let no_window = CommandSettings {
            window: 0,
            ..CommandSettings::default()
        };
        assert!(no_window.validate().is_err());
    }
}

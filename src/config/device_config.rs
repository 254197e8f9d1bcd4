//! `[device_config]`: how desired configurations (protocol.md §14) reach devices, and
//! how much of their history is kept. The documents themselves live in the database.

use super::SettingError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The fewest versions of each kind (desired, reported) kept per device (protocol.md §14).
pub const MIN_HISTORY: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfigSettings {
    /// Versions of each kind (desired, reported) kept per device; at least 20.
    pub history: usize,
    /// Desired configurations set elsewhere (the CLI, another hub) are looked for this
    /// often: a connected device gets them within about this long.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Events waiting for the delivery task at most (request handlers wait when it is
    /// full). A connection holds only the newest configuration not yet written to it.
    pub queue: usize,
}

impl Default for DeviceConfigSettings {
    fn default() -> Self {
        Self {
            history: MIN_HISTORY,
            poll_interval: Duration::from_millis(250),
            queue: 4096,
        }
    }
}

impl DeviceConfigSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.history < MIN_HISTORY || self.history > 10_000 {
            return Err(SettingError::Rule(
                "device_config: history must be 20 to 10000 (versions kept per device and kind)",
            ));
        }
        if self.poll_interval.is_zero() || self.queue == 0 {
            return Err(SettingError::Rule(
                "device_config: poll_interval must be > 0 and queue ≥ 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_20_versions_are_kept() {
        assert!(DeviceConfigSettings::default().validate().is_ok());
        let few = DeviceConfigSettings {
            history: 19,
            ..DeviceConfigSettings::default()
        };
        assert!(few.validate().unwrap_err().to_string().contains("20"));
    }
}

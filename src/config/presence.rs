//! `[presence]`: how long a device that sends over a connectionless transport (HTTP, the
//! line protocol, MQTT, a gateway) stays online after its last reading, and how many
//! devices the presence table tracks at most. A device's `presence_timeout` label
//! overrides `timeout` for it.

use super::SettingError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceSettings {
    /// A device is online this long after its last reading over HTTP, the line protocol,
    /// MQTT or a gateway (a WebSocket device: while its socket is open).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Devices whose presence and last transport are remembered at most; past it, the
    /// offline ones are forgotten first (their `transport` reads `null` again).
    pub max_devices: usize,
    /// How often the devices' `presence_timeout` labels are read again when they
    /// changed elsewhere (the CLI, another hub); a change over this hub's API applies at once.
    #[serde(with = "humantime_serde")]
    pub labels_poll: Duration,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            max_devices: 100_000,
            labels_poll: Duration::from_secs(5),
        }
    }
}

impl PresenceSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.timeout.is_zero() || self.max_devices == 0 || self.labels_poll.is_zero() {
            return Err(SettingError::Rule(
                "presence: timeout and labels_poll must be > 0 and max_devices ≥ 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timeout_is_two_minutes_and_zero_is_refused() {
        let s = PresenceSettings::default();
        assert_eq!(s.timeout, Duration::from_secs(120));
        assert!(s.validate().is_ok());
        let zero = PresenceSettings {
            timeout: Duration::ZERO,
            ..s
        };
        assert!(zero.validate().unwrap_err().to_string().contains("timeout"));
    }
}

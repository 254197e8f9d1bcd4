//! What an operator asks for (docs/commands.md), checked once at the edge: a command's name,
//! `params` (a JSON object of at most 8 KiB), `ttl` (at most `[commands] max_ttl`), the
//! request's `wait` (at most 60 s), and fresh command ids. Shared by the HTTP API and
//! the CLI, so both refuse the same things with the same words.

use super::CommandError;
use crate::config::CommandSettings;
use crate::domain::{DeviceName, SensorName, Timestamp, parse_duration};
use crate::storage::commands::NewCommand;
use serde_json::Value as Json;
use std::time::Duration;

/// The largest `params` object, serialized.
pub const MAX_PARAMS_BYTES: usize = 8 * 1024;
/// The longest `wait` of a request.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A checked command to create for one or more devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub name: SensorName,
    /// The JSON text of the `params` object.
    pub params: String,
    pub ttl: Duration,
}

impl Spec {
    /// `name` (the sensor-name rule), `params` (an object, absent: `{}`), `ttl` (absent:
    /// `default_ttl`).
    pub fn parse(
        name: &str,
        params: Option<Json>,
        ttl: Option<&str>,
        settings: &CommandSettings,
    ) -> Result<Self, CommandError> {
        let name = SensorName::parse(name)
            .map_err(|e| CommandError::Invalid(format!("name: {name:?} {e}")))?;
        let params = match params.unwrap_or_else(|| Json::Object(Default::default())) {
            p @ Json::Object(_) => p.to_string(),
            other => {
                return Err(CommandError::Invalid(format!(
                    "params: expected a JSON object, got {}",
                    kind_of(&other)
                )));
            }
        };
        if params.len() > MAX_PARAMS_BYTES {
            return Err(CommandError::Invalid(format!(
                "params: {} bytes; at most {MAX_PARAMS_BYTES} (8 KiB)",
                params.len()
            )));
        }
        let ttl = match ttl {
            None => settings.default_ttl,
            Some(t) => parse_duration(t).map_err(|e| CommandError::Invalid(format!("ttl: {e}")))?,
        };
        if ttl > settings.max_ttl {
            return Err(CommandError::Invalid(format!(
                "ttl: {} is longer than the most allowed, {}",
                humantime::format_duration(ttl),
                humantime::format_duration(settings.max_ttl)
            )));
        }
        Ok(Self { name, params, ttl })
    }

    /// One new command per device, all created `now`.
    pub fn commands_for(&self, devices: &[DeviceName], now: Timestamp) -> Vec<NewCommand> {
        devices
            .iter()
            .map(|d| NewCommand {
                id: new_id(now),
                device: d.clone(),
                name: self.name.to_string(),
                params: self.params.clone(),
                created: now,
                expires: now.saturating_add(self.ttl),
            })
            .collect()
    }
}

/// A request's `wait` (absent: none), at most [`MAX_WAIT`].
pub fn parse_wait(wait: Option<&str>) -> Result<Option<Duration>, CommandError> {
    let Some(w) = wait else {
        return Ok(None);
    };
    let d = parse_duration(w).map_err(|e| CommandError::Invalid(format!("wait: {e}")))?;
    if d > MAX_WAIT {
        return Err(CommandError::Invalid("wait: at most 60s".into()));
    }
    Ok(Some(d))
}

/// Device names, each checked; at least one, at most `max`, none twice.
pub fn parse_devices(names: &[String], max: usize) -> Result<Vec<DeviceName>, CommandError> {
    if names.is_empty() || names.len() > max {
        return Err(CommandError::Invalid(format!(
            "devices: expected 1 to {max} device names (commands.max_bulk)"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .map(|n| {
            let d = DeviceName::parse(n)
                .map_err(|e| CommandError::Invalid(format!("devices: {n:?} {e}")))?;
            if !seen.insert(d.clone()) {
                return Err(CommandError::Invalid(format!(
                    "devices: {d} is named twice"
                )));
            }
            Ok(d)
        })
        .collect()
}

/// How a JSON value's type is named in an error ("an array").
pub fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A fresh command id: `c_` and 26 Crockford base32 digits of the creation time in
/// milliseconds (48 bits) and 80 random bits, so ids sort roughly by creation.
pub fn new_id(now: Timestamp) -> String {
    const DIGITS: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = (now.as_micros() / 1000).max(0) as u128 & ((1 << 48) - 1);
    let bits = (ms << 80) | (rand::random::<u128>() & ((1 << 80) - 1));
    let mut id = String::with_capacity(28);
    id.push_str("c_");
    for i in (0..26).rev() {
        id.push(DIGITS[((bits >> (i * 5)) & 31) as usize] as char);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(params: Option<Json>, ttl: Option<&str>) -> Result<Spec, CommandError> {
        Spec::parse("set_interval", params, ttl, &CommandSettings::default())
    }

    #[test]
    fn params_default_to_an_empty_object_and_ttl_to_an_hour() {
        let s = spec(None, None).unwrap();
        assert_eq!(
            (s.params.as_str(), s.ttl),
            ("{}", Duration::from_secs(3600))
        );
    }

    #[test]
    fn params_must_be_an_object_of_at_most_8_kib() {
        let e = spec(Some(json!([1])), None).unwrap_err().to_string();
        assert!(
            e.contains("params: expected a JSON object, got an array"),
            "{e}"
        );
        let big = json!({"x": "a".repeat(MAX_PARAMS_BYTES)});
        let e = spec(Some(big), None).unwrap_err().to_string();
        assert!(e.contains("at most 8192"), "{e}");
        assert!(spec(Some(json!({"x": "a".repeat(8000)})), None).is_ok());
    }

    #[test]
    fn ttl_over_seven_days_and_a_bad_name_are_refused() {
        assert!(spec(None, Some("7d")).is_ok());
        let e = spec(None, Some("8d")).unwrap_err().to_string();
        assert!(e.contains("ttl:") && e.contains("7days"), "{e}");
        assert!(spec(None, Some("soon")).is_err());
        let bad = Spec::parse("no spaces", None, None, &CommandSettings::default());
        assert!(bad.unwrap_err().to_string().starts_with("name:"));
    }

    #[test]
    fn wait_is_at_most_a_minute() {
        assert_eq!(
            parse_wait(Some("10s")).unwrap(),
            Some(Duration::from_secs(10))
        );
        assert!(parse_wait(Some("61s")).is_err());
        assert_eq!(parse_wait(None).unwrap(), None);
    }

    #[test]
    fn bulk_device_lists_are_bounded_and_named_once() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_devices(&names(&["a", "b"]), 10).unwrap().len(), 2);
        assert!(parse_devices(&names(&[]), 10).is_err());
        assert!(parse_devices(&names(&["a", "a"]), 10).is_err());
        assert!(parse_devices(&names(&["a", "b"]), 1).is_err());
    }

    #[test]
    fn ids_are_unique_opaque_and_sort_by_creation_time() {
        let (t1, t2) = (
            Timestamp::from_micros(1_000_000_000),
            Timestamp::from_micros(2_000_000_000),
        );
        let (a, b, c) = (new_id(t1), new_id(t1), new_id(t2));
        assert_ne!(a, b);
        assert!(a.starts_with("c_") && a.len() == 28, "{a}");
        assert!(a < c && b < c);
    }
}

//! Timestamps (UTC, microsecond precision) and the time syntaxes of the contract:
//! RFC 3339 strings, Unix seconds, and the CLI's `now` / `-15m` relative forms.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use std::fmt;
use std::time::Duration;

/// Why a time or duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{0:?} is not an RFC 3339 time (e.g. 2026-11-21T10:00:00Z)")]
    BadRfc3339(String),
    #[error(
        "{0:?} is not a time: use RFC 3339, `now`, or a relative time such as -30s, -15m, -2h, -7d"
    )]
    BadTimeArg(String),
    #[error("{0:?} is not a duration: use e.g. 30s, 1m, 15m, 1h, 1d")]
    BadDuration(String),
    #[error("Unix time {0} is out of range")]
    OutOfRange(String),
}

/// A point in time, UTC, stored as microseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// 2000-01-01T00:00:00Z: the earliest timestamp a device may send.
pub const EARLIEST_DEVICE_TS: Timestamp = Timestamp(946_684_800_000_000);

impl Timestamp {
    pub const fn from_micros(us: i64) -> Self {
        Self(us)
    }
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Self(dt.timestamp_micros())
    }
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0).single().unwrap_or_default()
    }
    /// Parses an RFC 3339 string; sub-microsecond digits are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeError> {
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Self::from_datetime(dt.with_timezone(&Utc)))
            .map_err(|_| TimeError::BadRfc3339(truncate(s)))
    }
    /// Unix seconds with an optional fraction, rounded to the nearest microsecond.
    pub fn from_unix_seconds(secs: f64) -> Result<Self, TimeError> {
        let us = (secs * 1e6).round();
        // Bound to years 0..=9999 so formatting never fails.
        if !us.is_finite() || !(-62_135_596_800e6..=253_402_300_799e6).contains(&us) {
            return Err(TimeError::OutOfRange(secs.to_string()));
        }
        Ok(Self(us as i64))
    }
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(d.as_micros().min(i64::MAX as u128) as i64),
        )
    }
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(d.as_micros().min(i64::MAX as u128) as i64),
        )
    }
    /// RFC 3339 with exactly six fractional digits: `2026-11-21T10:00:00.250000Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// Reads an RFC 3339 string (what [`Timestamp`]'s `Serialize` writes).
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Parses a duration such as `30s`, `15m`, `2h`, `7d`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, TimeError> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(TimeError::BadDuration(truncate(s))),
    }
}

/// Parses a CLI/query time: RFC 3339, `now`, or relative `-30s`, `-15m`, `-2h`, `-7d`.
pub fn parse_time_arg(s: &str, now: Timestamp) -> Result<Timestamp, TimeError> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let d = parse_duration(rel).map_err(|_| TimeError::BadTimeArg(truncate(s)))?;
        return Ok(now.saturating_sub(d));
    }
    Timestamp::parse_rfc3339(s).map_err(|_| TimeError::BadTimeArg(truncate(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_with_microseconds_in_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-21T11:00:00.25+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-21T10:00:00.250000Z");
        assert_eq!(
            Timestamp::from_unix_seconds(1_795_255_200.25)
                .unwrap()
                .to_rfc3339(),
            "2026-11-21T10:00:00.250000Z"
        );
    }

    #[test]
    fn relative_and_named_times() {
        let now = Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
        assert_eq!(parse_time_arg("now", now).unwrap(), now);
        assert_eq!(
            parse_time_arg("-15m", now).unwrap().to_rfc3339(),
            "2026-11-21T09:45:00.000000Z"
        );
        assert_eq!(
            parse_time_arg("-7d", now).unwrap().to_rfc3339(),
            "2026-11-14T10:00:00.000000Z"
        );
        assert!(matches!(
            parse_time_arg("yesterday", now),
            Err(TimeError::BadTimeArg(_))
        ));
        assert!(matches!(
            parse_time_arg("-0s", now),
            Err(TimeError::BadTimeArg(_))
        ));
    }

    #[test]
    fn rejects_non_finite_and_huge_unix_times() {
        assert!(Timestamp::from_unix_seconds(f64::NAN).is_err());
        assert!(Timestamp::from_unix_seconds(f64::INFINITY).is_err());
        assert!(Timestamp::from_unix_seconds(1e300).is_err());
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(us in 0i64..253_402_300_799_000_000) {
            let t = Timestamp::from_micros(us);
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
        }

        #[test]
        fn any_string_parses_or_errors_without_panicking(s in "\\PC{0,40}") {
            let _ = parse_time_arg(&s, Timestamp::now());
            let _ = parse_duration(&s);
        }
    }
}

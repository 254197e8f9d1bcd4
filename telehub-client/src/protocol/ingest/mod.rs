//! Device ingest messages (docs/protocol.md §2): parsing a text frame into a typed
//! [`DeviceMessage`], and the [`Reply`] the hub sends back.
//!
//! Parsing is all-or-nothing: the first bad field refuses the whole message with
//! an [`ErrorCode`] and a detail naming the field (`readings[1].value: ...`).
//!
//! The device side of the same messages (building frames, reading replies) is in
//! [`encode`]; it is what [`crate::client`] speaks.

pub mod encode;
mod senml;
pub(crate) use senml::parse_senml;

use crate::domain::{
    DeviceName, EARLIEST_DEVICE_TS, Reading, SensorName, Timestamp, Unit, Value as DomainValue,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// Why a message was refused: one vocabulary for every transport. The first six are
/// the protocol.md §2 codes sent in `nack` replies on device sockets; the others arise at a
/// transport's edge (an MQTT topic, a payload over the size limit, a device looked up
/// by name) and are counted and logged under the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    InvalidReading,
    TooManyReadings,
    ForbiddenDevice,
    RateLimited,
    Unavailable,
    /// A command frame naming no command the device may answer (docs/commands.md).
    UnknownCommand,
    /// A payload over `ingest.max_frame_bytes` (a WebSocket closes with 1009 instead).
    TooLarge,
    /// No device of that name (a WebSocket token always names one).
    UnknownDevice,
    /// The device is revoked (a WebSocket gets 401 at the handshake instead).
    RevokedDevice,
    /// An MQTT topic whose last level is not a device name.
    BadTopic,
}

impl ErrorCode {
    /// The codes sent in `nack` replies on device sockets: protocol.md §2's, and
    /// `unknown_command` (docs/commands.md).
    pub const ALL: [ErrorCode; 7] = [
        Self::InvalidJson,
        Self::InvalidReading,
        Self::TooManyReadings,
        Self::ForbiddenDevice,
        Self::RateLimited,
        Self::Unavailable,
        Self::UnknownCommand,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidReading => "invalid_reading",
            Self::TooManyReadings => "too_many_readings",
            Self::ForbiddenDevice => "forbidden_device",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::UnknownCommand => "unknown_command",
            Self::TooLarge => "too_large",
            Self::UnknownDevice => "unknown_device",
            Self::RevokedDevice => "revoked_device",
            Self::BadTopic => "bad_topic",
        }
    }
}

/// A refused message: the `id` to echo (when one could be read), the code and a detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct Refusal {
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub detail: String,
}

/// Limits and the clock a message is validated against.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub max_readings: usize,
    pub max_clock_skew: Duration,
    /// The hub's receive time: used for readings without `ts` and for the skew check.
    pub now: Timestamp,
}

/// A reading with the device it is for, when the message named one (gateways).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReading {
    pub device: Option<DeviceName>,
    pub reading: Reading,
}

/// A parsed, validated device message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMessage {
    pub id: Option<u64>,
    pub readings: Vec<DeviceReading>,
}

/// The hub's reply to one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Ack {
        ack: Option<u64>,
        stored: usize,
    },
    Nack {
        nack: Option<u64>,
        error: ErrorCode,
        detail: String,
    },
}

impl Reply {
    pub fn refused(r: Refusal) -> Self {
        Reply::Nack {
            nack: r.id,
            error: r.code,
            detail: r.detail,
        }
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("replies always serialize")
    }
}

/// Parses one text frame: a protocol.md §2 object or a SenML pack.
pub fn parse_message(text: &str, limits: &ParseLimits) -> Result<DeviceMessage, Refusal> {
    match read_json(text)? {
        Value::Object(obj) => parse_object(obj, limits),
        Value::Array(records) => parse_senml(records, limits),
        _ => Err(Refusal {
            id: None,
            code: ErrorCode::InvalidJson,
            detail: "expected a JSON object with `readings`, or a SenML array".into(),
        }),
    }
}

/// A device frame's text as JSON, or the `invalid_json` refusal.
pub(crate) fn read_json(text: &str) -> Result<Value, Refusal> {
    super::strict_json::from_str(text).map_err(|e| Refusal {
        id: None,
        code: ErrorCode::InvalidJson,
        detail: e.to_string(),
    })
}

pub(crate) fn parse_object(
    mut obj: Map<String, Value>,
    limits: &ParseLimits,
) -> Result<DeviceMessage, Refusal> {
    let id = match obj.remove("id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| Refusal {
            id: None,
            code: ErrorCode::InvalidJson,
            detail: "id: expected an unsigned 64-bit integer".into(),
        })?),
    };
    let refuse = |code, detail: String| Refusal { id, code, detail };
    let device = match obj.remove("device") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DeviceName::parse(&s)
                .map_err(|e| refuse(ErrorCode::InvalidReading, format!("device: {e}")))?,
        ),
        Some(_) => {
            return Err(refuse(
                ErrorCode::InvalidReading,
                "device: expected a string".into(),
            ));
        }
    };
    let readings = match obj.remove("readings") {
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(refuse(
                ErrorCode::InvalidJson,
                "readings: expected an array".into(),
            ));
        }
        None => {
            return Err(refuse(
                ErrorCode::InvalidJson,
                "missing field `readings`".into(),
            ));
        }
    };
    if let Some(k) = obj.keys().next() {
        return Err(refuse(
            ErrorCode::InvalidJson,
            format!("unknown field `{}`; expected id, device, readings", clip(k)),
        ));
    }
    check_count(readings.len(), limits).map_err(|(c, d)| refuse(c, d))?;
    let readings = readings
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            parse_reading(r, device.as_ref(), limits).map_err(|d| {
                refuse(
                    ErrorCode::InvalidReading,
                    field_path(&format!("readings[{i}]"), &d),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(DeviceMessage { id, readings })
}

fn check_count(n: usize, limits: &ParseLimits) -> Result<(), (ErrorCode, String)> {
    if n == 0 {
        return Err((
            ErrorCode::InvalidReading,
            "readings: at least one reading is required".into(),
        ));
    }
    if n > limits.max_readings {
        return Err((
            ErrorCode::TooManyReadings,
            format!(
                "readings: {n} readings; at most {} per message",
                limits.max_readings
            ),
        ));
    }
    Ok(())
}

/// Parses one reading object; the error is the field path suffix and reason.
fn parse_reading(
    v: Value,
    default_device: Option<&DeviceName>,
    limits: &ParseLimits,
) -> Result<DeviceReading, String> {
    let Value::Object(mut o) = v else {
        return Err(": expected an object".into());
    };
    let sensor = match o.remove("sensor") {
        Some(Value::String(s)) => SensorName::parse(&s).map_err(|e| format!("sensor: {e}"))?,
        Some(_) => return Err("sensor: expected a string".into()),
        None => return Err("sensor: missing".into()),
    };
    let value = match o.remove("value") {
        Some(v) => DomainValue::from_json(&v).map_err(|e| format!("value: {e}"))?,
        None => return Err("value: missing".into()),
    };
    let ts = match o.remove("ts") {
        None | Some(Value::Null) => limits.now,
        Some(Value::String(s)) => Timestamp::parse_rfc3339(&s).map_err(|e| format!("ts: {e}"))?,
        Some(Value::Number(n)) => {
            let secs = n.as_f64().ok_or("ts: expected Unix seconds")?;
            Timestamp::from_unix_seconds(secs).map_err(|e| format!("ts: {e}"))?
        }
        Some(_) => return Err("ts: expected an RFC 3339 string or Unix seconds".into()),
    };
    check_ts(ts, limits).map_err(|e| format!("ts: {e}"))?;
    let unit = match o.remove("unit") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Unit::parse(&s).map_err(|e| format!("unit: {e}"))?),
        Some(_) => return Err("unit: expected a string".into()),
    };
    let device = match o.remove("device") {
        None | Some(Value::Null) => default_device.cloned(),
        Some(Value::String(s)) => Some(DeviceName::parse(&s).map_err(|e| format!("device: {e}"))?),
        Some(_) => return Err("device: expected a string".into()),
    };
    if let Some(k) = o.keys().next() {
        return Err(format!(
            "{}: unknown field; expected sensor, value, ts, unit, device",
            clip(k)
        ));
    }
    Ok(DeviceReading {
        device,
        reading: Reading {
            sensor,
            value,
            ts,
            unit,
        },
    })
}

fn finite(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

/// A device timestamp the hub does not take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TsError {
    #[error("{0} is before 2000-01-01")]
    BeforeEarliest(Timestamp),
    #[error(
        "{ts} is more than {} ahead of the hub's clock ({now}); check the device clock",
        humantime::format_duration(*skew)
    )]
    AheadOfHub {
        ts: Timestamp,
        skew: Duration,
        now: Timestamp,
    },
}

/// Refuses a `ts` before 2000-01-01 or more than `max_clock_skew` ahead of `limits.now`.
pub(crate) fn check_ts(ts: Timestamp, limits: &ParseLimits) -> Result<(), TsError> {
    if ts < EARLIEST_DEVICE_TS {
        return Err(TsError::BeforeEarliest(ts));
    }
    if ts > limits.now.saturating_add(limits.max_clock_skew) {
        return Err(TsError::AheadOfHub {
            ts,
            skew: limits.max_clock_skew,
            now: limits.now,
        });
    }
    Ok(())
}

/// `readings[1]` + `value: ...` → `readings[1].value: ...`; `: ...` appends directly.
fn field_path(prefix: &str, detail: &str) -> String {
    if detail.starts_with(':') {
        format!("{prefix}{detail}")
    } else {
        format!("{prefix}.{detail}")
    }
}

fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests;

//! The values commands and desired configuration carry on a device's connection
//! (docs/commands.md): a command's id, the command object the hub hands a device, the
//! device's answer, and the configuration documents of protocol.md §14. Each is parsed
//! once here, with its bounds, and written by the same type.
//!
//! The frames that carry them (`{"command": …}`, `{"command_ack": …}`, …) are in
//! [`super::frames`].

use crate::domain::{DeviceName, SensorName, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest command id the hub hands out (its own are 28 characters).
pub const MAX_ID_CHARS: usize = 64;
/// The largest `result` object of an answer, serialized.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
/// The longest `error` text of an answer kept; longer text is cut there.
pub const MAX_ERROR_CHARS: usize = 1024;
/// The largest configuration document (`desired` or reported `state`), serialized.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;

/// Why a command value was refused: the detail names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadCommandValue(pub String);

/// A command's id as the hub chose it: 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CommandId(String);

impl CommandId {
    pub fn parse(s: &str) -> Result<Self, BadCommandValue> {
        let ok = !s.is_empty()
            && s.len() <= MAX_ID_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadCommandValue(format!(
                "{:?} is not a command id (1 to {MAX_ID_CHARS} of A-Z a-z 0-9 _ -)",
                clip(s)
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CommandId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CommandId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A command's name follows the sensor-name rule.
pub type CommandName = SensorName;

/// The command object the hub hands a device: `{"id", "name", "params", "expires"}`, and
/// `"device"` when it goes to a gateway for one of the devices it acts for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCommand {
    pub id: CommandId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceName>,
    pub name: CommandName,
    #[serde(default)]
    pub params: Map<String, Value>,
    pub expires: Timestamp,
}

/// A device's verdict on a command it was handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandStatus {
    /// Carried out: the command `succeeded`.
    Ok,
    /// Tried and failed: the command `failed`.
    Error,
    /// Not carried out (unknown name, bad params): the command is `rejected`.
    Rejected,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Rejected => "rejected",
        }
    }
}

/// A device's answer: `{"status": "ok" | "error" | "rejected", "result": {…}, "error":
/// "text"}`, `result` an object of at most [`MAX_RESULT_BYTES`] and `error` cut at
/// [`MAX_ERROR_CHARS`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandAnswer {
    pub status: CommandStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CommandAnswer {
    /// Reads the answer's fields out of `obj` (others are left there for the caller).
    pub fn take_from(obj: &mut Map<String, Value>) -> Result<Self, BadCommandValue> {
        let status = match obj.remove("status") {
            Some(Value::String(s)) => match s.as_str() {
                "ok" => CommandStatus::Ok,
                "error" => CommandStatus::Error,
                "rejected" => CommandStatus::Rejected,
                other => {
                    return Err(BadCommandValue(format!(
                        "status: {:?}; expected ok, error or rejected",
                        clip(other)
                    )));
                }
            },
            Some(_) => return Err(BadCommandValue("status: expected a string".into())),
            None => return Err(BadCommandValue("status: missing".into())),
        };
        let result = match obj.remove("result") {
            None | Some(Value::Null) => None,
            Some(Value::Object(r)) => {
                let size = serde_json::to_string(&r).map(|s| s.len()).unwrap_or(0);
                if size > MAX_RESULT_BYTES {
                    return Err(BadCommandValue(format!(
                        "result: {size} bytes; at most {MAX_RESULT_BYTES}"
                    )));
                }
                Some(r)
            }
            Some(_) => {
                return Err(BadCommandValue(
                    "result: expected a JSON object or null".into(),
                ));
            }
        };
        let error = match obj.remove("error") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(e.chars().take(MAX_ERROR_CHARS).collect()),
            Some(_) => return Err(BadCommandValue("error: expected a string".into())),
        };
        Ok(Self {
            status,
            result,
            error,
        })
    }

    /// Parses a whole answer object (the HTTP devices' `POST /v1/commands/ID/result`).
    pub fn parse(text: &str) -> Result<Self, BadCommandValue> {
        let v = super::strict_json::from_str(text)
            .map_err(|e| BadCommandValue(format!("invalid JSON: {e}")))?;
        let Value::Object(mut obj) = v else {
            return Err(BadCommandValue(
                "expected an object with status, result, error".into(),
            ));
        };
        let answer = Self::take_from(&mut obj)?;
        no_other_field(&obj, "status, result, error")?;
        Ok(answer)
    }
}

/// A versioned configuration document (protocol.md §14): the hub's `{"version", "desired"}`
/// or the device's `{"version", "state"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDocument {
    pub version: u64,
    pub document: Map<String, Value>,
}

impl ConfigDocument {
    /// Reads `{"version": N, KEY: {…}}`, the document at most [`MAX_CONFIG_BYTES`].
    pub fn from_value(v: Value, key: &str) -> Result<Self, BadCommandValue> {
        let Value::Object(mut obj) = v else {
            return Err(BadCommandValue(format!(
                "expected an object with version and {key}"
            )));
        };
        let version = match obj.remove("version") {
            Some(v) => v
                .as_u64()
                .ok_or_else(|| BadCommandValue("version: expected an unsigned integer".into()))?,
            None => return Err(BadCommandValue("version: missing".into())),
        };
        let document = match obj.remove(key) {
            Some(Value::Object(d)) => d,
            Some(_) => return Err(BadCommandValue(format!("{key}: expected a JSON object"))),
            None => return Err(BadCommandValue(format!("{key}: missing"))),
        };
        let size = serde_json::to_string(&document)
            .map(|s| s.len())
            .unwrap_or(0);
        if size > MAX_CONFIG_BYTES {
            return Err(BadCommandValue(format!(
                "{key}: {size} bytes; at most {MAX_CONFIG_BYTES}"
            )));
        }
        no_other_field(&obj, &format!("version, {key}"))?;
        Ok(Self { version, document })
    }

    /// `{"version": N, KEY: {…}}`.
    pub fn to_value(&self, key: &str) -> Value {
        let mut obj = Map::new();
        obj.insert("version".into(), self.version.into());
        obj.insert(key.into(), Value::Object(self.document.clone()));
        Value::Object(obj)
    }
}

pub(crate) fn no_other_field(
    obj: &Map<String, Value>,
    expected: &str,
) -> Result<(), BadCommandValue> {
    match obj.keys().next() {
        Some(k) => Err(BadCommandValue(format!(
            "unknown field `{}`; expected {expected}",
            clip(k)
        ))),
        None => Ok(()),
    }
}

pub(crate) fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

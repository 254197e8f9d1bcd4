//! Every frame of a device's connection, both directions (docs/protocol.md §2, and
//! docs/commands.md for commands and configuration), each with its encoder and its
//! decoder side by side so the two cannot drift.
//!
//! - [`DeviceFrame`]: device → hub, parsed once at the socket ([`DeviceFrame::parse`]):
//!   a readings `message` (§2, incl. SenML), `command_ack`, `command_result`,
//!   `config_reported`. [`DeviceFrame::to_json`] writes them (the client's side).
//! - [`HubFrame`]: hub → device: the `ack`/`nack` [`Reply`] to a message (also the
//!   `unknown_command` nack), `command`, `result_stored`, `config`, `config_stored`.
//!   [`HubFrame::to_json`] writes them (the hub's side), [`HubFrame::parse`] reads them.
//!
//! Only the readings message carries an `id`; the other frames are not messages, and
//! the hub's replies to messages stay in message order whatever else is sent between.

use super::commands::{
    BadCommandValue, CommandAnswer, CommandId, ConfigDocument, DeviceCommand, no_other_field,
};
use super::ingest::encode::{BadReply, FrameBuilder, reply_from_value};
use super::ingest::{
    DeviceMessage, ErrorCode, ParseLimits, Refusal, Reply, parse_object, parse_senml, read_json,
};
use crate::domain::DeviceName;
use serde_json::{Map, Value};

/// A frame a device sends.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceFrame {
    /// Readings (protocol.md §2), answered with one `ack` or `nack` in message order.
    Message(DeviceMessage),
    /// `{"command_ack": "c_…"}`: the device has the command (now `received`).
    CommandAck(CommandId),
    /// `{"command_result": "c_…", "status", "result", "error"}`: its answer.
    CommandResult {
        id: CommandId,
        answer: CommandAnswer,
    },
    /// `{"config_reported": {"version": N, "state": {…}}}`: the configuration it applied.
    /// A gateway names the device it reports for (`"device"` in the object).
    ConfigReported {
        device: Option<DeviceName>,
        doc: ConfigDocument,
    },
}

impl DeviceFrame {
    /// Parses one text frame. A refused frame is answered with a `nack` (its `id` when
    /// a message named one; `null` for the other frames).
    pub fn parse(text: &str, limits: &ParseLimits) -> Result<Self, Refusal> {
        match read_json(text)? {
            Value::Object(mut obj) => {
                if let Some(id) = obj.remove("command_ack") {
                    let id = command_id(id).map_err(|e| refuse("command_ack", e))?;
                    no_other_field(&obj, "command_ack alone").map_err(|e| refuse("", e))?;
                    Ok(Self::CommandAck(id))
                } else if let Some(id) = obj.remove("command_result") {
                    let id = command_id(id).map_err(|e| refuse("command_result", e))?;
                    let answer = CommandAnswer::take_from(&mut obj).map_err(|e| refuse("", e))?;
                    no_other_field(&obj, "command_result, status, result, error")
                        .map_err(|e| refuse("", e))?;
                    Ok(Self::CommandResult { id, answer })
                } else if let Some(doc) = obj.remove("config_reported") {
                    let (device, doc) =
                        config_of(doc, "state").map_err(|e| refuse("config_reported", e))?;
                    no_other_field(&obj, "config_reported alone").map_err(|e| refuse("", e))?;
                    Ok(Self::ConfigReported { device, doc })
                } else {
                    parse_object(obj, limits).map(Self::Message)
                }
            }
            Value::Array(records) => parse_senml(records, limits).map(Self::Message),
            _ => Err(Refusal {
                id: None,
                code: ErrorCode::InvalidJson,
                detail: "expected a JSON object (readings, command_ack, command_result or \
                         config_reported), or a SenML array"
                    .into(),
            }),
        }
    }

    /// The frame's text, as a device sends it.
    pub fn to_json(&self) -> String {
        match self {
            Self::Message(m) => {
                let mut frame = FrameBuilder::new(m.id, usize::MAX, usize::MAX);
                for r in &m.readings {
                    frame.push(r);
                }
                frame.finish()
            }
            Self::CommandAck(id) => serde_json::json!({ "command_ack": id }).to_string(),
            Self::CommandResult { id, answer } => {
                let mut obj = match serde_json::to_value(answer) {
                    Ok(Value::Object(o)) => o,
                    _ => unreachable!("an answer serializes to an object"),
                };
                obj.insert("command_result".into(), Value::String(id.to_string()));
                Value::Object(obj).to_string()
            }
            Self::ConfigReported { device, doc } => {
                let doc = config_value(device.as_ref(), doc, "state");
                serde_json::json!({ "config_reported": doc }).to_string()
            }
        }
    }
}

/// `{"version", KEY, ["device"]}`: the device named (by a gateway) and the document.
fn config_of(v: Value, key: &str) -> Result<(Option<DeviceName>, ConfigDocument), BadCommandValue> {
    let mut v = v;
    let device = match v.as_object_mut().and_then(|o| o.remove("device")) {
        None => None,
        Some(Value::String(d)) => {
            Some(DeviceName::parse(&d).map_err(|e| BadCommandValue(format!("device: {e}")))?)
        }
        Some(_) => return Err(BadCommandValue("device: expected a device name".into())),
    };
    Ok((device, ConfigDocument::from_value(v, key)?))
}

/// The object [`config_of`] reads.
fn config_value(device: Option<&DeviceName>, doc: &ConfigDocument, key: &str) -> Value {
    let mut v = doc.to_value(key);
    if let (Some(d), Value::Object(o)) = (device, &mut v) {
        o.insert("device".into(), Value::String(d.to_string()));
    }
    v
}

fn command_id(v: Value) -> Result<CommandId, BadCommandValue> {
    match v {
        Value::String(s) => CommandId::parse(&s),
        _ => Err(BadCommandValue("expected a command id string".into())),
    }
}

fn refuse(field: &str, e: BadCommandValue) -> Refusal {
    let detail = if field.is_empty() {
        e.0
    } else {
        format!("{field}: {}", e.0)
    };
    Refusal {
        id: None,
        code: ErrorCode::InvalidJson,
        detail,
    }
}

/// A frame the hub sends a device.
#[derive(Debug, Clone, PartialEq)]
pub enum HubFrame {
    /// The answer to a message (`ack`/`nack`), or a `nack` with a `null` id for a
    /// command frame that could not be taken (`unknown_command`, `invalid_json`).
    Reply(Reply),
    /// `{"command": {…}}`: a command to carry out (only to devices that opted in).
    Command(DeviceCommand),
    /// `{"result_stored": "c_…"}`: the device's answer is stored; it may forget it.
    ResultStored(CommandId),
    /// `{"config": {"version": N, "desired": {…}}}`: the desired configuration. A
    /// gateway is told which device it is for (`"device"` in the object).
    Config {
        device: Option<DeviceName>,
        doc: ConfigDocument,
    },
    /// `{"config_stored": N}`: the reported configuration N is stored.
    ConfigStored(u64),
}

impl HubFrame {
    /// The `nack` for a command frame naming no command this device may answer.
    pub fn unknown_command(detail: impl Into<String>) -> Self {
        Self::Reply(Reply::Nack {
            nack: None,
            error: ErrorCode::UnknownCommand,
            detail: detail.into(),
        })
    }

    /// The frame's text, as the hub sends it.
    pub fn to_json(&self) -> String {
        match self {
            Self::Reply(r) => r.to_json(),
            Self::Command(c) => serde_json::json!({ "command": c }).to_string(),
            Self::ResultStored(id) => serde_json::json!({ "result_stored": id }).to_string(),
            Self::Config { device, doc } => {
                let doc = config_value(device.as_ref(), doc, "desired");
                serde_json::json!({ "config": doc }).to_string()
            }
            Self::ConfigStored(v) => serde_json::json!({ "config_stored": v }).to_string(),
        }
    }

    /// Reads one frame from the hub. A `nack` with an error code this build does not
    /// know is read as a final refusal (see [`super::ingest::encode::parse_reply`]).
    pub fn parse(text: &str) -> Result<Self, BadReply> {
        let bad = || BadReply(text.chars().take(80).collect());
        let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(text) else {
            return Err(bad());
        };
        let only = |obj: &Map<String, Value>| obj.is_empty().then_some(()).ok_or_else(bad);
        if let Some(c) = obj.remove("command") {
            only(&obj)?;
            return serde_json::from_value(c)
                .map(Self::Command)
                .map_err(|_| bad());
        }
        if let Some(id) = obj.remove("result_stored") {
            only(&obj)?;
            return command_id(id).map(Self::ResultStored).map_err(|_| bad());
        }
        if let Some(doc) = obj.remove("config") {
            only(&obj)?;
            return config_of(doc, "desired")
                .map(|(device, doc)| Self::Config { device, doc })
                .map_err(|_| bad());
        }
        if let Some(v) = obj.remove("config_stored") {
            only(&obj)?;
            return v.as_u64().map(Self::ConfigStored).ok_or_else(bad);
        }
        reply_from_value(Value::Object(obj))
            .map(Self::Reply)
            .map_err(|_| bad())
    }
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;

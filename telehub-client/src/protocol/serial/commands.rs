//! Command lines of the serial format (docs/protocol.md §6, docs/commands.md): the
//! bridge writes a command to the port, the device acknowledges and answers it.
//!
//! ```text
//! !cmd <id> <name> [device=<name> ]<params JSON>*HH     bridge → device
//! !ack <id>*HH                                          device → bridge
//! !res <id> ok|error|rejected[ <result JSON>]*HH        device → bridge
//! ```
//!
//! `*HH` is the checksum of §6. `device=` names the device the command is for (the
//! hub names it in every command it hands a gateway, the gateway's own included). JSON is written in ASCII
//! (`\uXXXX` escapes), so every line is printable ASCII. [`CommandLine`] and
//! [`AnswerLine`] are the typed lines; each has its writer and its reader side by side,
//! so the bridge, the simulator and tests cannot drift apart.

use super::{LineError, split_checksum, strip_line_ending, xor};
use crate::domain::DeviceName;
use crate::protocol::commands::{
    CommandAnswer, CommandId, CommandName, CommandStatus, DeviceCommand, MAX_CONFIG_BYTES,
    MAX_RESULT_BYTES,
};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandLineError {
    #[error("expected `!ack <id>` or `!res <id> ok|error|rejected [result JSON]`")]
    Shape,
    #[error("command id: {0}")]
    Id(String),
    #[error("status {0:?}: expected ok, error or rejected")]
    Status(String),
    #[error("{0}: expected a JSON object")]
    Json(&'static str),
    #[error("result: {0} bytes; at most {MAX_RESULT_BYTES}")]
    TooLarge(usize),
    #[error("command name: {0}")]
    Name(String),
    #[error("device: {0}")]
    Device(String),
    #[error("expected `!cfgok <version> [device=<name> ]<state JSON>`")]
    ConfigShape,
    #[error("version {0:?}: expected an unsigned integer")]
    Version(String),
    #[error("configuration: {0} bytes; at most {MAX_CONFIG_BYTES}")]
    ConfigTooLarge(usize),
}

/// `!cmd`: a command handed to the device on the port.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandLine {
    pub id: CommandId,
    pub name: CommandName,
    /// The device it is for, when not the gateway itself.
    pub device: Option<DeviceName>,
    pub params: Map<String, Value>,
}

impl CommandLine {
    /// The line for a command the hub handed over (a gateway's name the device).
    pub fn of(c: &DeviceCommand) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            device: c.device.clone(),
            params: c.params.clone(),
        }
    }

    /// The line without its line ending, checksum included.
    pub fn format(&self) -> String {
        let mut s = format!("!cmd {} {} ", self.id, self.name);
        if let Some(d) = &self.device {
            let _ = write!(s, "device={d} ");
        }
        push_ascii_json(&mut s, &self.params);
        with_checksum(s)
    }

    /// Reads a `!cmd` line (what a device does; the bridge only writes them).
    pub fn parse(line: &[u8]) -> Result<Self, LineError> {
        let body = body(line, true)?;
        let rest = body.strip_prefix("!cmd ").ok_or(CommandLineError::Shape)?;
        let (id, rest) = rest.split_once(' ').ok_or(CommandLineError::Shape)?;
        let (name, rest) = rest.split_once(' ').ok_or(CommandLineError::Shape)?;
        let (device, json) = match rest.strip_prefix("device=") {
            Some(r) => {
                let (d, json) = r.split_once(' ').ok_or(CommandLineError::Shape)?;
                let d =
                    DeviceName::parse(d).map_err(|e| CommandLineError::Device(e.to_string()))?;
                (Some(d), json)
            }
            None => (None, rest),
        };
        Ok(Self {
            id: command_id(id)?,
            name: CommandName::parse(name).map_err(|e| CommandLineError::Name(e.to_string()))?,
            device,
            params: object(json, "params")?,
        })
    }
}

/// `!ack` or `!res`: the device's acknowledgement or answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerLine {
    Ack(CommandId),
    /// `error` is always `None`: a line carries no error text (put it in the result).
    Result {
        id: CommandId,
        answer: CommandAnswer,
    },
}

impl AnswerLine {
    /// Whether a line is a command line (it starts with `!`), not readings.
    pub fn is_one(line: &[u8]) -> bool {
        line.first() == Some(&b'!')
    }

    /// The line without its line ending, checksum included.
    pub fn format(&self) -> String {
        let s = match self {
            Self::Ack(id) => format!("!ack {id}"),
            Self::Result { id, answer } => {
                let mut s = format!("!res {id} {}", answer.status.as_str());
                if let Some(r) = &answer.result {
                    s.push(' ');
                    push_ascii_json(&mut s, r);
                }
                s
            }
        };
        with_checksum(s)
    }

    /// Reads one line from the port (with or without its line ending); the checksum is
    /// checked when present, and required when `checksum_required`.
    pub fn parse(line: &[u8], checksum_required: bool) -> Result<Self, LineError> {
        let body = body(line, checksum_required)?;
        if let Some(id) = body.strip_prefix("!ack ") {
            return Ok(Self::Ack(command_id(id)?));
        }
        let rest = body.strip_prefix("!res ").ok_or(CommandLineError::Shape)?;
        let (id, rest) = rest.split_once(' ').ok_or(CommandLineError::Shape)?;
        let (status, json) = rest.split_once(' ').unwrap_or((rest, ""));
        let status = match status {
            "ok" => CommandStatus::Ok,
            "error" => CommandStatus::Error,
            "rejected" => CommandStatus::Rejected,
            other => return Err(CommandLineError::Status(clip(other)).into()),
        };
        let result = if json.is_empty() {
            None
        } else {
            Some(object(json, "result")?)
        };
        Ok(Self::Result {
            id: command_id(id)?,
            answer: CommandAnswer {
                status,
                result,
                error: None,
            },
        })
    }
}

impl From<CommandLineError> for LineError {
    fn from(e: CommandLineError) -> Self {
        LineError::Command(e)
    }
}

/// The text before the checksum, after the checks of §6 (printable ASCII, length).
pub(super) fn body(line: &[u8], checksum_required: bool) -> Result<&str, LineError> {
    let line = strip_line_ending(line);
    if let Some(i) = line.iter().position(|b| !(b' '..=b'~').contains(b)) {
        return Err(LineError::NotText {
            byte: line[i],
            column: i + 1,
        });
    }
    let text = std::str::from_utf8(line).expect("checked ASCII");
    let (body, checksum) = split_checksum(text)?;
    if !checksum && checksum_required {
        return Err(LineError::MissingChecksum);
    }
    Ok(body)
}

pub(super) fn with_checksum(mut s: String) -> String {
    let sum = xor(s.as_bytes());
    let _ = write!(s, "*{sum:02X}");
    s
}

fn command_id(s: &str) -> Result<CommandId, CommandLineError> {
    CommandId::parse(s).map_err(|e| CommandLineError::Id(e.0))
}

fn object(json: &str, what: &'static str) -> Result<Map<String, Value>, CommandLineError> {
    if json.len() > MAX_RESULT_BYTES {
        return Err(CommandLineError::TooLarge(json.len()));
    }
    match serde_json::from_str(json) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(CommandLineError::Json(what)),
    }
}

/// JSON with every non-ASCII character written as `\uXXXX` (valid JSON: such
/// characters only occur inside strings).
pub(super) fn push_ascii_json(s: &mut String, v: &Map<String, Value>) {
    let text = serde_json::to_string(v).expect("a JSON object serializes");
    for c in text.chars() {
        if c.is_ascii() {
            s.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(s, "\\u{u:04x}");
            }
        }
    }
}

pub(super) fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
#[path = "commands_tests.rs"]
pub(super) mod tests;

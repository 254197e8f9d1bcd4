//! Configuration lines of the serial format (protocol.md §6 and §14,
//! docs/device-config.md): the bridge writes a device's desired configuration to the
//! port, the device answers with the state it applied.
//!
//! ```text
//! !cfg <version> [device=<name> ]<desired JSON>*HH     bridge → device
//! !cfgok <version> [device=<name> ]<state JSON>*HH     device → bridge
//! ```
//!
//! `*HH` is the checksum of §6; `device=` names the device behind a gateway (the hub
//! names it in every configuration it hands a gateway). JSON is written in ASCII
//! (`\uXXXX` escapes). A line the device writes is at most [`super::MAX_LINE_BYTES`]
//! long, so a reported state must fit in it; a desired document may be up to
//! [`MAX_CONFIG_BYTES`]. [`ConfigLine`] is both lines, writer and reader side by side.

use super::LineError;
use super::commands::{CommandLineError, body, clip, push_ascii_json, with_checksum};
use crate::domain::DeviceName;
use crate::protocol::commands::{ConfigDocument, MAX_CONFIG_BYTES};
use serde_json::Value;
use std::fmt::Write as _;

/// Which of the two lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `!cfg`: the desired configuration (bridge → device).
    Desired,
    /// `!cfgok`: the state the device applied (device → bridge).
    Applied,
}

impl ConfigKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Desired => "!cfg",
            Self::Applied => "!cfgok",
        }
    }
}

/// A `!cfg` or `!cfgok` line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigLine {
    pub kind: ConfigKind,
    /// The device it is for, when not the gateway's own (or when a gateway names it).
    pub device: Option<DeviceName>,
    /// The version and the desired document (`!cfg`) or the applied state (`!cfgok`).
    pub doc: ConfigDocument,
}

impl ConfigLine {
    /// Whether a line is a configuration line (`!cfg ` or `!cfgok `).
    pub fn is_one(line: &[u8]) -> bool {
        line.starts_with(b"!cfg ") || line.starts_with(b"!cfgok ")
    }

    /// The line without its line ending, checksum included.
    pub fn format(&self) -> String {
        let mut s = format!("{} {} ", self.kind.tag(), self.doc.version);
        if let Some(d) = &self.device {
            let _ = write!(s, "device={d} ");
        }
        push_ascii_json(&mut s, &self.doc.document);
        with_checksum(s)
    }

    /// Reads one line (with or without its line ending); the checksum is checked when
    /// present, and required when `checksum_required`.
    pub fn parse(line: &[u8], checksum_required: bool) -> Result<Self, LineError> {
        let body = body(line, checksum_required)?;
        let (kind, rest) = if let Some(r) = body.strip_prefix("!cfgok ") {
            (ConfigKind::Applied, r)
        } else if let Some(r) = body.strip_prefix("!cfg ") {
            (ConfigKind::Desired, r)
        } else {
            return Err(CommandLineError::ConfigShape.into());
        };
        let (version, rest) = rest.split_once(' ').ok_or(CommandLineError::ConfigShape)?;
        let version = version
            .parse::<u64>()
            .map_err(|_| CommandLineError::Version(clip(version)))?;
        let (device, json) = match rest.strip_prefix("device=") {
            Some(r) => {
                let (d, json) = r.split_once(' ').ok_or(CommandLineError::ConfigShape)?;
                let d =
                    DeviceName::parse(d).map_err(|e| CommandLineError::Device(e.to_string()))?;
                (Some(d), json)
            }
            None => (None, rest),
        };
        if json.len() > MAX_CONFIG_BYTES {
            return Err(CommandLineError::ConfigTooLarge(json.len()).into());
        }
        let document = match serde_json::from_str(json) {
            Ok(Value::Object(o)) => o,
            _ => return Err(CommandLineError::Json("configuration").into()),
        };
        Ok(Self {
            kind,
            device,
            doc: ConfigDocument { version, document },
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

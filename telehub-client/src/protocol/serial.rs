//! The serial line format (docs/protocol.md §6), read by `telehub bridge serial` and written
//! by `firmware-sim serial`:
//!
//! ```text
//! [ts=<unix seconds|RFC 3339>,][device=<name>,]<sensor>=<value>[,<sensor>=<value>...][*HH]
//! ```
//!
//! `*HH` is the XOR of every byte before `*`, as two hex digits. A line may instead
//! hold a protocol.md §2 JSON message (an object with `readings`, or a SenML array). Lines are
//! printable ASCII, end in `\n` or `\r\n`, and hold at most [`MAX_LINE_BYTES`] bytes
//! before the line ending.
//!
//! [`parse_line_with`] turns one line into validated [`DeviceReading`]s or a
//! [`LineError`] naming the reason; [`format_line`] writes a line with its checksum.
//! `ts`, `device`, duplicate sensors and values are checked here exactly as the hub
//! checks them (protocol.md §2), so one bad line never gets a whole batch refused by the hub.
//! Lines starting with `!` are command lines ([`commands`]) or configuration lines ([`config`]).

use crate::domain::{DeviceName, NameError, Reading, SensorName, Timestamp, Value};
use crate::protocol::ingest::{DeviceReading, ParseLimits, Refusal, check_ts, parse_message};
use std::fmt::Write as _;
use std::time::Duration;

pub mod commands;
pub mod config;

/// Bytes a line may hold, not counting its `\n` or `\r\n`.
pub const MAX_LINE_BYTES: usize = 512;

/// How strictly lines are read.
#[derive(Debug, Clone, Copy)]
pub struct LineRules {
    /// Refuse lines without `*HH` (JSON lines included).
    pub checksum_required: bool,
    /// How far ahead of the receive time a `ts` may be (the hub's `max_clock_skew`).
    pub max_clock_skew: Duration,
    /// Readings one JSON line may hold.
    pub max_readings: usize,
}

impl Default for LineRules {
    fn default() -> Self {
        Self {
            checksum_required: true,
            max_clock_skew: Duration::from_secs(300),
            max_readings: 1000,
        }
    }
}

/// How a line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// `key=value` fields; `checksum` tells whether it ended in a (correct) `*HH`.
    Fields { checksum: bool },
    /// A protocol.md §2 JSON message.
    Json { checksum: bool },
}

/// One line, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SerialLine {
    pub format: LineFormat,
    /// At least one; `device` is `None` for readings of the bridge's own device.
    pub readings: Vec<DeviceReading>,
}

/// Why a line was refused. [`LineError::kind`] gives a stable label for counting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    #[error("empty line")]
    Empty,
    #[error(
        "line is {0} bytes long; at most {MAX_LINE_BYTES} are allowed: split the device's readings over several lines"
    )]
    TooLong(usize),
    #[error(
        "byte 0x{byte:02X} at column {column} is not printable ASCII: binary noise; check the baud rate, data bits, parity and stop bits on both ends"
    )]
    NotText { byte: u8, column: usize },
    #[error(
        "no checksum: end the line with *HH (XOR of every byte before `*`), or run the bridge with --no-checksum-required"
    )]
    MissingChecksum,
    #[error(
        "checksum mismatch: the line says *{found:02X} but its bytes give *{computed:02X} (line corrupted on the wire?)"
    )]
    BadChecksum { found: u8, computed: u8 },
    #[error("column {column}: {reason}")]
    Syntax { column: usize, reason: &'static str },
    #[error("{field} name {name:?} {source}")]
    BadName {
        field: &'static str,
        name: String,
        source: NameError,
    },
    #[error(
        "{sensor}: {text:?} is not a value: write a number, true, false or a string in double quotes (\\\" and \\\\ escapes)"
    )]
    BadValue { sensor: String, text: String },
    #[error("{sensor}: {reason}")]
    BadText { sensor: String, reason: String },
    #[error("{sensor}: {text} is not a finite number of magnitude at most 1e300")]
    NonFinite { sensor: String, text: String },
    #[error("ts: {0}")]
    BadTime(String),
    #[error("sensor {0} appears twice in one line")]
    DuplicateSensor(String),
    #[error("no readings: a line needs at least one <sensor>=<value>")]
    NoReadings,
    #[error("JSON line refused: {0}")]
    Json(Refusal),
    #[error("command line refused: {0}")]
    Command(commands::CommandLineError),
}

/// The reason of a [`LineError`], for counters and log fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineErrorKind {
    Empty,
    TooLong,
    NotText,
    MissingChecksum,
    BadChecksum,
    Syntax,
    BadName,
    BadValue,
    BadText,
    NonFinite,
    BadTime,
    DuplicateSensor,
    NoReadings,
    Json,
    Command,
}

impl LineErrorKind {
    pub const ALL: [LineErrorKind; 15] = [
        Self::Empty,
        Self::TooLong,
        Self::NotText,
        Self::MissingChecksum,
        Self::BadChecksum,
        Self::Syntax,
        Self::BadName,
        Self::BadValue,
        Self::BadText,
        Self::NonFinite,
        Self::BadTime,
        Self::DuplicateSensor,
        Self::NoReadings,
        Self::Json,
        Self::Command,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::NotText => "not_text",
            Self::MissingChecksum => "missing_checksum",
            Self::BadChecksum => "bad_checksum",
            Self::Syntax => "syntax",
            Self::BadName => "bad_name",
            Self::BadValue => "bad_value",
            Self::BadText => "bad_text",
            Self::NonFinite => "non_finite",
            Self::BadTime => "bad_time",
            Self::DuplicateSensor => "duplicate_sensor",
            Self::NoReadings => "no_readings",
            Self::Json => "invalid_json_message",
            Self::Command => "bad_command_line",
        }
    }
    /// Position in [`LineErrorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl LineError {
    pub fn kind(&self) -> LineErrorKind {
        match self {
            Self::Empty => LineErrorKind::Empty,
            Self::TooLong(_) => LineErrorKind::TooLong,
            Self::NotText { .. } => LineErrorKind::NotText,
            Self::MissingChecksum => LineErrorKind::MissingChecksum,
            Self::BadChecksum { .. } => LineErrorKind::BadChecksum,
            Self::Syntax { .. } => LineErrorKind::Syntax,
            Self::BadName { .. } => LineErrorKind::BadName,
            Self::BadValue { .. } => LineErrorKind::BadValue,
            Self::BadText { .. } => LineErrorKind::BadText,
            Self::NonFinite { .. } => LineErrorKind::NonFinite,
            Self::BadTime(_) => LineErrorKind::BadTime,
            Self::DuplicateSensor(_) => LineErrorKind::DuplicateSensor,
            Self::NoReadings => LineErrorKind::NoReadings,
            Self::Json(_) => LineErrorKind::Json,
            Self::Command(_) => LineErrorKind::Command,
        }
    }
}

/// The entry point for fuzzing: default rules, receive time = now. Never panics.
pub fn parse_line(line: &[u8]) -> Result<SerialLine, LineError> {
    parse_line_with(line, &LineRules::default(), Timestamp::now())
}

/// Parses one line (with or without its `\n` / `\r\n`) received at `now`; readings
/// without `ts` get `now`.
pub fn parse_line_with(
    line: &[u8],
    rules: &LineRules,
    now: Timestamp,
) -> Result<SerialLine, LineError> {
    let line = strip_line_ending(line);
    if line.len() > MAX_LINE_BYTES {
        return Err(LineError::TooLong(line.len()));
    }
    if let Some(i) = line.iter().position(|b| !(b' '..=b'~').contains(b)) {
        return Err(LineError::NotText {
            byte: line[i],
            column: i + 1,
        });
    }
    // Printable ASCII only, so this is valid UTF-8.
    let text = std::str::from_utf8(line).expect("checked ASCII");
    if text.trim().is_empty() {
        return Err(LineError::Empty);
    }
    let (body, checksum) = split_checksum(text)?;
    if !checksum && rules.checksum_required {
        return Err(LineError::MissingChecksum);
    }
    let limits = ParseLimits {
        max_readings: rules.max_readings,
        max_clock_skew: rules.max_clock_skew,
        now,
    };
    if body.starts_with('{') || body.starts_with('[') {
        let message = parse_message(body, &limits).map_err(LineError::Json)?;
        return Ok(SerialLine {
            format: LineFormat::Json { checksum },
            readings: message.readings,
        });
    }
    let fields = parse_fields(body)?;
    let ts = fields.ts.unwrap_or(now);
    check_ts(ts, &limits).map_err(|e| LineError::BadTime(e.to_string()))?;
    let readings = fields
        .values
        .into_iter()
        .map(|(sensor, value)| DeviceReading {
            device: fields.device.clone(),
            reading: Reading {
                sensor,
                value,
                ts,
                unit: None,
            },
        })
        .collect();
    Ok(SerialLine {
        format: LineFormat::Fields { checksum },
        readings,
    })
}

/// The `key=value` form of a line, before the receive time is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleFields {
    pub ts: Option<Timestamp>,
    pub device: Option<DeviceName>,
    /// Distinct sensors, valid values.
    pub values: Vec<(SensorName, Value)>,
}

/// Writes `fields` as one line without its line ending, followed by `*HH` when
/// `checksum`. Keep lines within [`MAX_LINE_BYTES`]: a handful of sensors fit easily.
pub fn format_line(fields: &SampleFields, checksum: bool) -> String {
    let mut s = String::with_capacity(64);
    if let Some(ts) = fields.ts {
        s.push_str("ts=");
        write_unix_seconds(&mut s, ts);
        s.push(',');
    }
    if let Some(d) = &fields.device {
        let _ = write!(s, "device={d},");
    }
    for (sensor, value) in &fields.values {
        let _ = write!(s, "{sensor}=");
        write_value(&mut s, value);
        s.push(',');
    }
    s.pop();
    if checksum {
        let _ = write!(s, "*{:02X}", xor(s.as_bytes()));
    }
    s
}

/// A value as a line holds it: numbers as the shortest text that reads back to the same
/// f64 (`1e-7`, `21.5`), `true`/`false`, strings in double quotes with `\"` and `\\`.
fn write_value(s: &mut String, value: &Value) {
    match value {
        Value::Number(v) => {
            let _ = write!(s, "{v:?}");
        }
        Value::Bool(b) => {
            let _ = write!(s, "{b}");
        }
        Value::Text(t) => {
            s.push('"');
            for c in t.as_str().chars() {
                if matches!(c, '"' | '\\') {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
        }
    }
}

/// XOR of all bytes: the `*HH` checksum.
pub fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits off and checks a trailing `*HH`; returns the body and whether one was there.
fn split_checksum(text: &str) -> Result<(&str, bool), LineError> {
    let Some(star) = text.rfind('*') else {
        return Ok((text, false));
    };
    let hex = &text[star + 1..];
    let found = match (hex.len(), u8::from_str_radix(hex, 16)) {
        (2, Ok(v)) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => v,
        // A `*` inside a JSON string or a quoted value is not a checksum.
        _ if text.starts_with(['{', '[']) || hex.contains('"') => return Ok((text, false)),
        _ => {
            return Err(LineError::Syntax {
                column: star + 1,
                reason: "`*` must be followed by exactly two hex digits at the end of the line",
            });
        }
    };
    let body = &text[..star];
    let computed = xor(body.as_bytes());
    if computed != found {
        return Err(LineError::BadChecksum { found, computed });
    }
    Ok((body, true))
}

/// Parses `[ts=..,][device=..,]sensor=value,...` (no checksum, no line ending).
pub fn parse_fields(body: &str) -> Result<SampleFields, LineError> {
    let mut out = SampleFields {
        ts: None,
        device: None,
        values: Vec::new(),
    };
    let mut column = 1;
    for (i, field) in split_fields(body).enumerate() {
        let at = column;
        column += field.len() + 1;
        let syntax = |reason| LineError::Syntax { column: at, reason };
        if field.is_empty() {
            return Err(syntax("empty field: a stray or doubled comma"));
        }
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| syntax("expected <name>=<value>"))?;
        match key {
            "ts" if i == 0 => out.ts = Some(parse_ts(value)?),
            "ts" => return Err(syntax("`ts=` must be the first field")),
            "device" if out.values.is_empty() && out.device.is_none() => {
                out.device =
                    Some(
                        DeviceName::parse(value).map_err(|source| LineError::BadName {
                            field: "device",
                            name: clip(value),
                            source,
                        })?,
                    )
            }
            "device" => {
                return Err(syntax(
                    "`device=` must come before the readings, after `ts=` if any",
                ));
            }
            _ => {
                let sensor = SensorName::parse(key).map_err(|source| LineError::BadName {
                    field: "sensor",
                    name: clip(key),
                    source,
                })?;
                let value = parse_value(key, value)?;
                if out.values.iter().any(|(s, _)| *s == sensor) {
                    return Err(LineError::DuplicateSensor(sensor.to_string()));
                }
                out.values.push((sensor, value));
            }
        }
    }
    if out.values.is_empty() {
        return Err(LineError::NoReadings);
    }
    Ok(out)
}

/// Splits on commas outside double-quoted strings (where `\"` and `\\` are escapes).
fn split_fields(body: &str) -> impl Iterator<Item = &str> {
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    let mut cuts = Vec::new();
    for (i, b) in body.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                cuts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    cuts.push(&body[start..]);
    cuts.into_iter()
}

/// A quoted string's content with its `\"` and `\\` escapes undone; `None` when it is
/// not one quoted string or holds another escape.
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let (mut out, mut chars) = (String::with_capacity(inner.len()), inner.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('"' | '\\') => out.push(e),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn parse_value(sensor: &str, text: &str) -> Result<Value, LineError> {
    match text {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ if text.starts_with('"') => {
            let bad = |reason: String| LineError::BadText {
                sensor: clip(sensor),
                reason,
            };
            let s = unquote(text).ok_or_else(|| {
                bad("a string must be one pair of double quotes; inside, only \\\" and \\\\ escapes".into())
            })?;
            return Value::text(&s).map_err(|e| bad(e.to_string()));
        }
        _ => {}
    }
    match text.parse::<f64>() {
        Ok(v) if Value::number(v).is_ok() => Ok(Value::Number(v)),
        Ok(_) => Err(LineError::NonFinite {
            sensor: clip(sensor),
            text: clip(text),
        }),
        Err(_) => Err(LineError::BadValue {
            sensor: clip(sensor),
            text: clip(text),
        }),
    }
}

/// Unix seconds (`1795255200`, `1795255200.25`, exact to the microsecond; further
/// digits are truncated) or RFC 3339.
fn parse_ts(text: &str) -> Result<Timestamp, LineError> {
    let bad = || {
        LineError::BadTime(format!(
            "{:?} is neither Unix seconds (e.g. 1795255200.25) nor RFC 3339 (e.g. 2026-11-21T10:00:00Z)",
            clip(text)
        ))
    };
    if text.contains(['T', 't', ' ']) {
        return Timestamp::parse_rfc3339(text).map_err(|e| LineError::BadTime(e.to_string()));
    }
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 12 || !digits(int) || !digits(frac) {
        return Err(bad());
    }
    let secs: i64 = int.parse().map_err(|_| bad())?;
    let mut micros: i64 = 0;
    for i in 0..6 {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        micros = micros * 10 + d;
    }
    Ok(Timestamp::from_micros(secs * 1_000_000 + micros))
}

/// `1795255200.25`: Unix seconds, fraction without trailing zeros.
fn write_unix_seconds(s: &mut String, ts: Timestamp) {
    let us = ts.as_micros();
    let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    let _ = write!(s, "{secs}");
    if frac != 0 {
        let f = format!("{frac:06}");
        let _ = write!(s, ".{}", f.trim_end_matches('0'));
    }
}

fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests;

//! The InfluxDB line protocol (docs/protocol.md §5) as device readings:
//! `measurement[,tags] field=value[,field=value...] [timestamp]`, one reading per field.
//!
//! Lines are parsed by InfluxData's own parser (`influxdb-line-protocol`), except the
//! common plain ones, which [`simple`] reads in place the same way; this module maps them: the sensor is `measurement` for a field named `value`, else
//! `measurement.field`; the tag `device` names the device (for a gateway acting for it),
//! other tags are ignored; timestamps in the request's [`Precision`] (the hub's clock when
//! absent). A request is all or nothing: the first bad line refuses it, naming the line.
//!
//! The device side, [`LineBuilder`], writes readings the other way round (with InfluxData's
//! builder): one line per reading, so a refusal's line number names the reading.

use super::ingest::{DeviceReading, ParseLimits, check_ts};
use crate::domain::{DeviceName, Reading, SensorName, Text, Timestamp, Value, untrusted};
use influxdb_line_protocol::{FieldValue, LineProtocolBuilder, split_lines};

mod simple;

/// The unit of a line's timestamp (`precision=` on the write endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// `ns`/`n`, `us`/`u`/`µ`/`µs`, `ms`, `s`, and (InfluxDB 1.x) `m`, `h`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ns" | "n" => Self::Nanoseconds,
            "us" | "u" | "µ" | "µs" => Self::Microseconds,
            "ms" => Self::Milliseconds,
            "s" => Self::Seconds,
            "m" => Self::Minutes,
            "h" => Self::Hours,
            _ => return None,
        })
    }

    /// A timestamp in this unit as microseconds (nanoseconds are truncated), if it fits.
    fn to_micros(self, t: i64) -> Option<i64> {
        match self {
            Self::Nanoseconds => Some(t.div_euclid(1_000)),
            Self::Microseconds => Some(t),
            Self::Milliseconds => t.checked_mul(1_000),
            Self::Seconds => t.checked_mul(1_000_000),
            Self::Minutes => t.checked_mul(60_000_000),
            Self::Hours => t.checked_mul(3_600_000_000),
        }
    }
}

/// Why a request was refused: the line (counted from 1) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole request body into readings, or refuses it at its first bad line.
/// `limits.max_readings` bounds the readings of the whole request.
pub fn parse_body(
    body: &str,
    precision: Precision,
    limits: &ParseLimits,
) -> Result<Vec<DeviceReading>, LineError> {
    let mut to = Sink {
        precision,
        limits,
        names: Names::default(),
        out: Vec::new(),
    };
    for (i, text) in split_lines(body).enumerate() {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |message: String| LineError {
            line: i + 1,
            message,
        };
        parse_line(trimmed, &mut to).map_err(bad)?;
        if to.out.len() > limits.max_readings {
            return Err(bad(format!(
                "more than {} readings in one request; send smaller batches",
                limits.max_readings
            )));
        }
    }
    Ok(to.out)
}

/// The sensor names a request has already made, by (measurement, field): a batch names
/// the same few sensors over and over, and each point would otherwise build its name
/// twice (a `String`, then the name's `Arc<str>`).
#[derive(Default)]
struct Names {
    known: Vec<(Box<str>, Box<str>, SensorName)>,
}

impl Names {
    /// The most names kept; past it, names are built for each point.
    const MAX: usize = 64;

    fn sensor(&mut self, measurement: &str, field: &str) -> Result<SensorName, String> {
        if let Some((.., s)) = self
            .known
            .iter()
            .find(|(m, f, _)| **m == *measurement && **f == *field)
        {
            return Ok(s.clone());
        }
        let name = if field == "value" {
            measurement.to_owned()
        } else {
            format!("{measurement}.{field}")
        };
        // Echoed input is capped (domain::untrusted): a 1 MB field name is not sent back whole.
        let sensor =
            SensorName::parse(&name).map_err(|e| format!("sensor {:?}: {e}", untrusted(&name)))?;
        if self.known.len() < Self::MAX {
            self.known
                .push((measurement.into(), field.into(), sensor.clone()));
        }
        Ok(sensor)
    }
}

fn parse_line(text: &str, to: &mut Sink<'_>) -> Result<(), String> {
    if let Some(line) = simple::Simple::split(text) {
        return to.add(line.measurement, line.device, line.timestamp, line.fields());
    }
    let line = influxdb_line_protocol::parse_lines(text)
        .next()
        .ok_or("an empty line")?
        .map_err(|e| untrusted(&e.to_string()).to_string())?;
    let fields = line.field_set.iter().map(|(k, v)| (k.as_str(), v.clone()));
    let measurement = line.series.measurement.as_str();
    to.add(measurement, device_tag(&line), line.timestamp, fields)
}

/// The value of a parsed line's first `device` tag.
fn device_tag<'a>(line: &'a influxdb_line_protocol::ParsedLine<'_>) -> Option<&'a str> {
    let mut tags = line.series.tag_set.iter().flatten();
    tags.find(|(k, _)| k.as_str() == "device")
        .map(|(_, d)| d.as_str())
}

/// Where a request's readings go, and how its lines are read.
struct Sink<'r> {
    precision: Precision,
    limits: &'r ParseLimits,
    names: Names,
    out: Vec<DeviceReading>,
}

impl Sink<'_> {
    /// One parsed line's readings, checked: one per field.
    fn add<'a>(
        &mut self,
        measurement: &str,
        device: Option<&str>,
        timestamp: Option<i64>,
        fields: impl Iterator<Item = (&'a str, FieldValue<'a>)>,
    ) -> Result<(), String> {
        let device = match device {
            Some(d) => Some(DeviceName::parse(d).map_err(|e| format!("tag device: {e}"))?),
            None => None,
        };
        let ts = match timestamp {
            None => self.limits.now,
            Some(t) => self
                .precision
                .to_micros(t)
                .map(Timestamp::from_micros)
                .ok_or_else(|| format!("timestamp {t} is out of range"))?,
        };
        check_ts(ts, self.limits).map_err(|e| format!("timestamp: {e}"))?;
        for (field, value) in fields {
            let sensor = self.names.sensor(measurement, field)?;
            let value =
                field_value(&value).map_err(|e| format!("field {}: {e}", untrusted(field)))?;
            self.out.push(DeviceReading {
                device: device.clone(),
                reading: Reading {
                    sensor,
                    value,
                    ts,
                    unit: None,
                },
            });
        }
        Ok(())
    }
}

/// A field's value as a reading's value (protocol.md §8): floats and integers are numbers, booleans
/// and strings keep their type.
fn field_value(v: &FieldValue<'_>) -> Result<Value, String> {
    match v {
        FieldValue::F64(f) if f.is_finite() => Value::number(*f).map_err(|e| e.to_string()),
        FieldValue::F64(f) => Err(format!("{f} is not a finite number")),
        FieldValue::I64(i) => Ok(Value::Number(*i as f64)),
        FieldValue::U64(u) => Ok(Value::Number(*u as f64)),
        FieldValue::Boolean(b) => Ok(Value::Bool(*b)),
        FieldValue::String(s) => Text::parse(s.as_str())
            .map(Value::Text)
            .map_err(|e| e.to_string()),
    }
}

/// Builds one write request body, reading by reading, within a count and a byte budget:
/// `sensor[,device=D] value=V T` per reading, `T` in microseconds (send it with
/// `precision=us`). The sensor is the measurement and the field is `value`, which
/// [`parse_body`] maps back to the same sensor; units are not carried.
#[derive(Debug)]
pub struct LineBuilder {
    text: Vec<u8>,
    scratch: Vec<u8>,
    count: usize,
    max_readings: usize,
    max_bytes: usize,
}

impl LineBuilder {
    /// At most `max_readings` readings and `max_bytes` bytes, except that the first
    /// reading is always taken.
    pub fn new(max_readings: usize, max_bytes: usize) -> Self {
        Self {
            text: Vec::new(),
            scratch: Vec::with_capacity(128),
            count: 0,
            max_readings: max_readings.max(1),
            max_bytes,
        }
    }

    /// Adds `r` when it fits; `false` means the body is full and `r` was not added.
    pub fn push(&mut self, r: &DeviceReading) -> bool {
        if self.count >= self.max_readings {
            return false;
        }
        self.scratch.clear();
        let line =
            LineProtocolBuilder::new_with(&mut self.scratch).measurement(r.reading.sensor.as_str());
        let line = match &r.device {
            Some(d) => line.tag("device", d.as_str()),
            None => line,
        };
        let line = match &r.reading.value {
            Value::Number(v) => line.field("value", *v),
            Value::Bool(b) => line.field("value", *b),
            Value::Text(t) => line.field("value", t.as_str()),
        };
        line.timestamp(r.reading.ts.as_micros()).close_line();
        if self.count > 0 && self.text.len() + self.scratch.len() > self.max_bytes {
            return false;
        }
        self.text.extend_from_slice(&self.scratch);
        self.count += 1;
        true
    }

    /// Readings added so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished body.
    pub fn finish(self) -> String {
        String::from_utf8(self.text).expect("lines are built from UTF-8 text")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn limits() -> ParseLimits {
        ParseLimits {
            max_readings: 100,
            max_clock_skew: Duration::from_secs(300),
            now: Timestamp::from_micros(1_764_500_000_000_000),
        }
    }

    fn parse(body: &str, p: Precision) -> Result<Vec<DeviceReading>, LineError> {
        parse_body(body, p, &limits())
    }

    #[test]
    fn each_field_is_a_reading_named_after_the_measurement() {
        let body = "# a comment\n\nboiler,device=b-1,site=x value=21.5,pressure=2i 1764499990000000000\n\
                    cpu usage=0.5\n";
        let r = parse(body, Precision::Nanoseconds).unwrap();
        let got: Vec<_> = r
            .iter()
            .map(|d| {
                let dev = d.device.as_ref().map(|d| d.as_str().to_owned());
                (
                    dev,
                    d.reading.sensor.as_str().to_owned(),
                    d.reading.value.clone(),
                    d.reading.ts.as_micros(),
                )
            })
            .collect();
        let ts = 1_764_499_990_000_000;
        let now = limits().now.as_micros();
        assert_eq!(
            got,
            [
                (Some("b-1".into()), "boiler".into(), Value::Number(21.5), ts),
                (
                    Some("b-1".into()),
                    "boiler.pressure".into(),
                    Value::Number(2.0),
                    ts
                ),
                (None, "cpu.usage".into(), Value::Number(0.5), now),
            ]
        );
    }

    #[test]
    fn names_made_once_are_the_same_past_the_cache_and_bad_ones_still_refused() {
        // 70 distinct sensors (more than `Names::MAX`), each on two lines.
        let body: String = (0..140)
            .map(|i| format!("m{},t=x value=1,f{}=2 1764499990\n", i % 70, i % 3))
            .collect();
        let r = parse_body(
            &body,
            Precision::Seconds,
            &ParseLimits {
                max_readings: 1_000,
                ..limits()
            },
        )
        .unwrap();
        let names: Vec<_> = r.iter().map(|d| d.reading.sensor.as_str()).collect();
        let want: Vec<String> = (0..140)
            .flat_map(|i| [format!("m{}", i % 70), format!("m{}.f{}", i % 70, i % 3)])
            .collect();
        assert_eq!(names, want);
        let err = parse(
            "ok value=1\nok value=2\nok bad/field=3\n",
            Precision::Seconds,
        )
        .unwrap_err();
        assert_eq!(err.line, 3, "{err}");
    }

    #[test]
    fn booleans_and_strings_keep_their_type() {
        let r = parse(r#"door open=true,mode="defrost",n=3u"#, Precision::Seconds).unwrap();
        let values: Vec<_> = r.iter().map(|d| d.reading.value.clone()).collect();
        let defrost = Value::Text(Text::parse("defrost").unwrap());
        assert_eq!(values, [Value::Bool(true), defrost, Value::Number(3.0)]);
        let e = parse(r#"door mode="""#, Precision::Seconds).unwrap_err();
        assert!(e.message.contains("field mode"), "{e}");
    }

    #[test]
    fn every_precision_is_read() {
        let at = |p, t: &str| {
            parse(&format!("m value=1 {t}"), p).unwrap()[0]
                .reading
                .ts
                .as_micros()
        };
        let us = 1_764_499_990_000_000;
        assert_eq!(at(Precision::Nanoseconds, "1764499990000000123"), us);
        assert_eq!(at(Precision::Microseconds, "1764499990000000"), us);
        assert_eq!(at(Precision::Milliseconds, "1764499990000"), us);
        assert_eq!(at(Precision::Seconds, "1764499990"), us);
        assert_eq!(at(Precision::Minutes, "29408333"), 29_408_333 * 60_000_000);
        assert_eq!(Precision::parse("u"), Some(Precision::Microseconds));
        assert_eq!(Precision::parse("weeks"), None);
    }

    #[test]
    fn a_bad_line_refuses_the_request_and_names_the_line() {
        let e = parse("m value=1\nm value=\nm value=3\n", Precision::Seconds).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse("m value=1\nm,device=a\\ b value=1\n", Precision::Seconds).unwrap_err();
        assert!(e.to_string().starts_with("line 2: tag device"), "{e}");
        let e = parse("bad/name value=1", Precision::Seconds).unwrap_err();
        assert!(e.message.contains("sensor"), "{e}");
        let e = parse("m value=1 1", Precision::Seconds).unwrap_err();
        assert!(e.message.contains("2000-01-01"), "{e}");
        let many = "m value=1\n".repeat(101);
        assert!(
            parse(&many, Precision::Seconds)
                .unwrap_err()
                .message
                .contains("more than 100")
        );
    }

    #[test]
    fn built_lines_parse_back_to_the_same_readings() {
        let ts = Timestamp::from_micros(1_764_499_990_123_456);
        let reading = |sensor: &str, value: Value, device: Option<&str>| DeviceReading {
            device: device.map(|d| DeviceName::parse(d).unwrap()),
            reading: Reading {
                sensor: SensorName::parse(sensor).unwrap(),
                value,
                ts,
                unit: None,
            },
        };
        let sent = vec![
            reading("temperature", Value::Number(21.5), None),
            reading("boiler.pressure", Value::Number(-1e-7), Some("b-1")),
            reading("door", Value::Bool(true), None),
            reading(
                "mode",
                Value::Text(Text::parse(r#"say "hi" \ ok"#).unwrap()),
                None,
            ),
        ];
        let mut b = LineBuilder::new(10, 1 << 16);
        assert!(sent.iter().all(|r| b.push(r)));
        let body = b.finish();
        assert_eq!(body.lines().count(), 4, "{body}");
        assert_eq!(parse(&body, Precision::Microseconds).unwrap(), sent);

        let mut small = LineBuilder::new(3, 120);
        assert!(small.push(&sent[0]) && small.push(&sent[1]));
        assert!(!small.push(&sent[3]), "over the byte budget");
        assert_eq!(small.len(), 2);
        let mut few = LineBuilder::new(1, 1 << 16);
        assert!(few.push(&sent[0]) && !few.push(&sent[1]));
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(s in "\\PC{0,200}") {
            let _ = parse(&s, Precision::Nanoseconds);
        }

        #[test]
        fn numeric_fields_round_trip(v in -1e12f64..1e12, secs in 946_684_800i64..1_764_500_000) {
            let r = parse(&format!("m value={v:?} {secs}"), Precision::Seconds).unwrap();
            prop_assert_eq!(&r[0].reading.value, &Value::Number(v));
            prop_assert_eq!(r[0].reading.ts.as_micros(), secs * 1_000_000);
        }
    }
}

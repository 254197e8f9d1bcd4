//! `DEVICE/SENSOR` patterns: which series (or devices) a live subscription or an alert
//! rule names. One type, [`Pattern`], with the contract's rule for each use:
//!
//! - [`Pattern::parse`], the live feed (protocol.md §3): a segment is `*` (any name) or one exact
//!   device or sensor name; `"*"` alone means everything.
//! - [`Pattern::parse_glob`], alert rules on series (protocol.md §9): in a segment, `*` matches any
//!   run of characters (`freezer-*/temperature`); `"*"` alone means every series.
//! - [`Pattern::parse_devices`], alert rules on devices (`offline`, protocol.md §9): a device segment
//!   only: `DEVICE`, `DEVICE/*` or `*`, each with globs.
//!
//! May use: nothing else in the crate (layer 1).

use super::name::{DeviceName, NameError, SensorName};
use std::fmt;

/// One segment of a pattern: `*`, an exact name, or a name with `*` wildcards
/// (`freezer-*`), each `*` matching any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Any,
    Exact(String),
    /// The literal parts between the `*`s (at least two).
    Glob(Vec<String>),
}

/// Why a segment is not a name (or, in a glob, a name with `*`s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("{0}")]
    Name(NameError),
    #[error("each segment is 1 to 64 characters")]
    Length,
    #[error("contains {0:?}; names use letters, digits and . _ : -, and * matches any run of them")]
    Char(char),
}

impl Segment {
    /// A glob segment (protocol.md §9): `*`, or 1 to 64 name characters and `*`s.
    pub fn parse(s: &str) -> Result<Self, SegmentError> {
        if s == "*" {
            return Ok(Segment::Any);
        }
        if s.is_empty() || s.len() > 64 {
            return Err(SegmentError::Length);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-' | '*')))
        {
            return Err(SegmentError::Char(c));
        }
        Ok(if s.contains('*') {
            Segment::Glob(s.split('*').map(str::to_owned).collect())
        } else {
            Segment::Exact(s.to_owned())
        })
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Exact(e) => e == text,
            Segment::Glob(pieces) => glob_match(pieces, text),
        }
    }

    /// The name this segment matches, when it matches exactly one.
    pub fn exact(&self) -> Option<&str> {
        match self {
            Segment::Exact(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Any => f.write_str("*"),
            Segment::Exact(e) => f.write_str(e),
            Segment::Glob(pieces) => f.write_str(&pieces.join("*")),
        }
    }
}

/// `pieces` are the literal parts between `*`s: the first is a prefix, the last a suffix,
/// the others appear in order between them.
fn glob_match(pieces: &[String], text: &str) -> bool {
    let (first, rest) = pieces
        .split_first()
        .expect("split yields one piece at least");
    let Some(mut left) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for p in middle {
        match left.find(p.as_str()) {
            Some(i) => left = &left[i + p.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last.as_str())
}

/// A `DEVICE/SENSOR` pattern. `sensor` is `None` only for a pattern that names devices
/// ([`Pattern::parse_devices`]); such a pattern matches no series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    pub device: Segment,
    pub sensor: Option<Segment>,
}

/// A pattern that could not be read, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?}: {why}")]
pub struct PatternError {
    /// The pattern as given, shortened.
    pub pattern: String,
    pub why: PatternWhy,
}

/// What is wrong with a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternWhy {
    #[error("expected DEVICE/SENSOR, `*` for any segment")]
    NotDeviceSensor,
    #[error("expected DEVICE/SENSOR, with * for any characters (e.g. freezer-*/temperature)")]
    NotDeviceSensorGlob,
    #[error("an offline rule names devices only: DEVICE (e.g. boiler-*)")]
    DevicesOnly,
    #[error("device {0}")]
    Device(SegmentError),
    #[error("sensor {0}")]
    Sensor(SegmentError),
}

fn clip(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

impl Pattern {
    /// `*`: every series.
    pub const ALL: Pattern = Pattern {
        device: Segment::Any,
        sensor: Some(Segment::Any),
    };

    /// A live-feed pattern (protocol.md §3), whole segments: `"*"`, `"boiler-1/*"`,
    /// `"*/temperature"`, `"boiler-1/temperature"`.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let err = |why| PatternError {
            pattern: clip(s, 40),
            why,
        };
        if s == "*" {
            return Ok(Self::ALL);
        }
        let (d, sn) = s
            .split_once('/')
            .ok_or_else(|| err(PatternWhy::NotDeviceSensor))?;
        let device = match d {
            "*" => Segment::Any,
            d => DeviceName::parse(d)
                .map(|n| Segment::Exact(n.as_str().to_owned()))
                .map_err(|e| err(PatternWhy::Device(SegmentError::Name(e))))?,
        };
        let sensor = match sn {
            "*" => Segment::Any,
            sn => SensorName::parse(sn)
                .map(|n| Segment::Exact(n.as_str().to_owned()))
                .map_err(|e| err(PatternWhy::Sensor(SegmentError::Name(e))))?,
        };
        Ok(Self {
            device,
            sensor: Some(sensor),
        })
    }

    /// An alert rule's series pattern (protocol.md §9): `DEVICE/SENSOR` with globs, or `*`.
    pub fn parse_glob(s: &str) -> Result<Self, PatternError> {
        Self::parse_rule(s, false)
    }

    /// An `offline` rule's device pattern (protocol.md §9): `DEVICE`, `DEVICE/*` or `*`, with globs.
    pub fn parse_devices(s: &str) -> Result<Self, PatternError> {
        Self::parse_rule(s, true)
    }

    fn parse_rule(s: &str, device_level: bool) -> Result<Self, PatternError> {
        let err = |why| PatternError {
            pattern: clip(s, 140),
            why,
        };
        let (d, sensor) = match (s, s.split_once('/')) {
            ("*", _) => ("*", (!device_level).then_some(Segment::Any)),
            (_, Some((d, "*"))) if device_level => (d, None),
            (_, Some(_)) if device_level => return Err(err(PatternWhy::DevicesOnly)),
            (_, Some((d, sn))) => (
                d,
                Some(Segment::parse(sn).map_err(|e| err(PatternWhy::Sensor(e)))?),
            ),
            (_, None) if device_level => (s, None),
            (_, None) => return Err(err(PatternWhy::NotDeviceSensorGlob)),
        };
        let device = Segment::parse(d).map_err(|e| err(PatternWhy::Device(e)))?;
        Ok(Self { device, sensor })
    }

    /// Whether the device segment matches `device` (live status events, offline rules).
    pub fn matches_device(&self, device: &str) -> bool {
        self.device.matches(device)
    }

    /// Whether the pattern matches the series `device/sensor`; never for a pattern that
    /// names devices only.
    pub fn matches(&self, device: &str, sensor: &str) -> bool {
        self.device.matches(device) && self.sensor.as_ref().is_some_and(|s| s.matches(sensor))
    }

    /// [`Self::matches`], under the name the alert rules use.
    pub fn matches_series(&self, device: &str, sensor: &str) -> bool {
        self.matches(device, sensor)
    }
}

impl fmt::Display for Pattern {
    /// The pattern as written: `*` for everything, `DEVICE` for a device pattern.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.device, &self.sensor) {
            (Segment::Any, Some(Segment::Any) | None) => f.write_str("*"),
            (d, Some(s)) => write!(f, "{d}/{s}"),
            (d, None) => write!(f, "{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The meaning of a glob, written the slow way: `*` takes any run of characters.
    fn reference(glob: &[u8], text: &[u8]) -> bool {
        match glob.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|i| reference(rest, &text[i..])),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    #[test]
    fn live_patterns_take_whole_segments_only() {
        assert!(Pattern::parse("boiler-*/temperature").is_err());
        assert!(Pattern::parse("*/temp*").is_err());
        let p = Pattern::parse("*").unwrap();
        assert_eq!(p, Pattern::ALL);
        assert!(p.matches("a", "b") && p.matches_device("a"));
        let e = Pattern::parse("boiler").unwrap_err().to_string();
        assert_eq!(e, "\"boiler\": expected DEVICE/SENSOR, `*` for any segment");
    }

    #[test]
    fn rule_patterns_glob_and_device_patterns_name_devices_only() {
        let p = Pattern::parse_glob("freezer-*/temp*").unwrap();
        assert!(p.matches("freezer-1", "temperature") && !p.matches("fridge-1", "temperature"));
        let all = Pattern::parse_glob("*").unwrap();
        assert_eq!(all, Pattern::ALL);
        let d = Pattern::parse_devices("boiler-*").unwrap();
        assert_eq!(Pattern::parse_devices("boiler-*/*").unwrap(), d);
        assert!(d.matches_device("boiler-7") && !d.matches("boiler-7", "x"));
        assert!(Pattern::parse_devices("*").unwrap().sensor.is_none());
        let e = Pattern::parse_devices("a/b").unwrap_err().to_string();
        assert!(e.contains("offline rule names devices only"), "{e}");
        let e = Pattern::parse_glob("x y/z").unwrap_err().to_string();
        assert!(e.starts_with("\"x y/z\": device contains ' '"), "{e}");
    }

    proptest! {
        #[test]
        fn a_glob_segment_matches_what_its_stars_allow(
            glob in "[ab*]{1,8}",
            text in "[ab]{0,10}",
        ) {
            let seg = Segment::parse(&glob).unwrap();
            prop_assert_eq!(seg.matches(&text), reference(glob.as_bytes(), text.as_bytes()));
        }

        #[test]
        fn a_whole_segment_star_matches_any_name_and_a_name_only_itself(
            device in "[a-z0-9][a-z0-9._:-]{0,20}",
            sensor in "[a-z][a-z0-9_]{0,20}",
            other in "[a-z][a-z0-9_]{0,20}",
        ) {
            let exact = Pattern::parse(&format!("{device}/{sensor}")).unwrap();
            prop_assert!(exact.matches(&device, &sensor));
            prop_assert_eq!(exact.matches(&device, &other), other == sensor);
            let any_sensor = Pattern::parse(&format!("{device}/*")).unwrap();
            prop_assert!(any_sensor.matches(&device, &other));
            let any_device = Pattern::parse(&format!("*/{sensor}")).unwrap();
            prop_assert!(any_device.matches(&other, &sensor));
            prop_assert!(Pattern::ALL.matches(&device, &other));
        }

        #[test]
        fn a_pattern_reads_back_from_how_it_is_written(s in "[a-c*]{1,6}(/[a-c*]{1,6})?") {
            if let Ok(p) = Pattern::parse_glob(&s) {
                prop_assert_eq!(Pattern::parse_glob(&p.to_string()).unwrap(), p);
            }
            if let Ok(p) = Pattern::parse_devices(&s) {
                prop_assert_eq!(Pattern::parse_devices(&p.to_string()).unwrap(), p);
            }
            if let Ok(p) = Pattern::parse(&s) {
                prop_assert_eq!(Pattern::parse(&p.to_string()).unwrap(), p);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,100}") {
            let _ = Pattern::parse(&s);
            let _ = Pattern::parse_glob(&s);
            let _ = Pattern::parse_devices(&s);
        }
    }
}

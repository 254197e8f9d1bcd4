//! Reading values (docs/protocol.md §8): a finite number of magnitude at most 1e300, a boolean,
//! or a short string.
//!
//! Owns [`Value`], its kind ([`ValueKind`], which a series keeps for life) and the text
//! rule ([`Text`]: 1–256 bytes of UTF-8, no control characters). Parsers at the edges
//! (JSON, SenML, serial lines) build values only through [`Value::number`] and
//! [`Text::parse`], so a `Value` is always valid. Serialises as its JSON type.
//!
//! May use: nothing else in the crate (layer 1).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// The most bytes a string value may hold.
pub const MAX_TEXT_BYTES: usize = 256;

/// The largest magnitude a number value may have. Far above any sensor's range, and far enough
/// below `f64::MAX` (1.8e308) that sums and averages of a bucket's readings stay finite: a
/// bucket would need more than 10^8 readings at this magnitude to overflow.
pub const MAX_MAGNITUDE: f64 = 1e300;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected a finite number, true/false or a string")]
    WrongJsonType,
    #[error("expected a finite number")]
    NotFinite,
    #[error("{0} is out of range: a number's magnitude is at most 1e300")]
    OutOfRange(String),
    #[error("a string value must not be empty")]
    EmptyText,
    #[error("a string value is {0} bytes long; at most 256 are allowed")]
    TextTooLong(usize),
    #[error("a string value contains a control character ({0:?}); remove it")]
    TextControl(char),
}

/// A validated string value: 1–256 bytes, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Arc<str>);

impl Text {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() {
            return Err(ValueError::EmptyText);
        }
        if s.len() > MAX_TEXT_BYTES {
            return Err(ValueError::TextTooLong(s.len()));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(ValueError::TextControl(c));
        }
        Ok(Self(Arc::from(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reading's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Always finite, magnitude at most [`MAX_MAGNITUDE`].
    Number(f64),
    Bool(bool),
    Text(Text),
}

/// The type of a value, and of a series (fixed by its first stored reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Number,
    Bool,
    Text,
}

impl ValueKind {
    pub const ALL: [ValueKind; 3] = [Self::Number, Self::Bool, Self::Text];

    /// The name stored in `series.kind` and used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Bool => "boolean",
            Self::Text => "string",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Value {
    /// A number value; refuses NaN, infinities and magnitudes over [`MAX_MAGNITUDE`].
    pub fn number(v: f64) -> Result<Self, ValueError> {
        if !v.is_finite() {
            return Err(ValueError::NotFinite);
        }
        if v.abs() > MAX_MAGNITUDE {
            return Err(ValueError::OutOfRange(format!("{v:e}")));
        }
        Ok(Value::Number(v))
    }

    /// A string value per [`Text::parse`].
    pub fn text(s: &str) -> Result<Self, ValueError> {
        Text::parse(s).map(Value::Text)
    }

    /// A JSON value: a finite number, `true`/`false` or a valid string.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, ValueError> {
        match v {
            serde_json::Value::Number(n) => Value::number(n.as_f64().ok_or(ValueError::NotFinite)?),
            serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
            serde_json::Value::String(s) => Value::text(s),
            _ => Err(ValueError::WrongJsonType),
        }
    }

    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Number(_) => ValueKind::Number,
            Value::Bool(_) => ValueKind::Bool,
            Value::Text(_) => ValueKind::Text,
        }
    }

    /// The number, when this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(v) => Some(*v),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Number(v) => serde_json::Value::from(*v),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Text(t) => serde_json::Value::String(t.as_str().to_owned()),
        }
    }
}

impl From<f64> for Value {
    /// For values known finite (simulated signals, tests); panics on NaN or infinity.
    fn from(v: f64) -> Self {
        Value::number(v).expect("a finite number")
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Plain text: numbers as Rust prints them, `true`/`false`, strings unquoted.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(v) => write!(f, "{v}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(t) => f.write_str(t.as_str()),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Number(v) => s.serialize_f64(*v),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Text(t) => s.serialize_str(t.as_str()),
        }
    }
}

/// Reads a JSON value back (self-describing formats only), with the same checks.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Value::from_json(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn json_values_keep_their_type_and_bad_ones_are_refused() {
        assert_eq!(Value::from_json(&json!(1.5)), Ok(Value::Number(1.5)));
        assert_eq!(Value::from_json(&json!(true)), Ok(Value::Bool(true)));
        assert_eq!(
            Value::from_json(&json!("idle")).unwrap().to_json(),
            json!("idle")
        );
        for bad in [json!(null), json!([1]), json!({"a": 1})] {
            assert_eq!(Value::from_json(&bad), Err(ValueError::WrongJsonType));
        }
        assert_eq!(Value::text(""), Err(ValueError::EmptyText));
        assert_eq!(
            Value::text(&"x".repeat(257)),
            Err(ValueError::TextTooLong(257))
        );
        assert!(
            Value::text(&"é".repeat(128)).is_ok(),
            "256 bytes is the limit"
        );
        assert_eq!(Value::text("a\nb"), Err(ValueError::TextControl('\n')));
        assert_eq!(Value::number(f64::NAN), Err(ValueError::NotFinite));
        assert_eq!(Value::number(1e300), Ok(Value::Number(1e300)));
        assert_eq!(Value::number(-1e300), Ok(Value::Number(-1e300)));
        assert_eq!(
            Value::number(1.7e308),
            Err(ValueError::OutOfRange("1.7e308".into()))
        );
        assert_eq!(
            Value::from_json(&serde_json::json!(-1e301)),
            Err(ValueError::OutOfRange("-1e301".into()))
        );
    }

    proptest! {
        #[test]
        fn every_value_round_trips_through_json(
            v in prop_oneof![
                (-1e300f64..1e300).prop_map(Value::Number),
                any::<bool>().prop_map(Value::Bool),
                "[^\\p{Cc}]{1,64}".prop_filter_map("too long", |s| Value::text(&s).ok()),
            ]
        ) {
            let json = serde_json::to_value(&v).unwrap();
            prop_assert_eq!(Value::from_json(&json), Ok(v));
        }
    }
}

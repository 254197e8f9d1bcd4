//! `/v1/readings` parameters (docs/http-api.md): the query string deserialized by serde into
//! [`Params`] (unknown, repeated and missing parameters refused by serde itself, each
//! value parsed by its field's deserializer), then checked against the clock and the
//! `[http]` caps into a [`ReadingsQuery`]. Every refusal is a [`QueryError`] naming the
//! parameter and what it takes; `server::error` maps it once to a 400.

use super::{ApiError, HubState};
use crate::domain::{DeviceName, SensorName, TimeError, Timestamp, parse_duration, parse_time_arg};
use crate::storage::Agg;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Visitor};
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

/// `/v1/readings` parameters, parsed.
#[derive(Debug)]
pub struct ReadingsQuery {
    pub device: DeviceName,
    /// `None`: every sensor of the device (one object per series).
    pub sensor: Option<SensorName>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub limit: usize,
    pub after: Option<Timestamp>,
    pub buckets: Option<(Duration, Agg)>,
    /// Downsample raw points to at most this many (M4), for charts.
    pub max_points: Option<usize>,
}

/// `max_points` below this cannot hold two M4 columns (four points each).
pub const MIN_DOWNSAMPLED_POINTS: usize = 8;

/// Why a `/v1/readings` query string was refused; each names the parameter to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown parameter `{0}`")]
    Unknown(String),
    #[error("parameter `{0}` given twice")]
    Twice(&'static str),
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    /// A value its parameter's deserializer refused: `"<parameter>: <why>"`.
    #[error("{0}")]
    Value(String),
    #[error("{param}: {source}")]
    Time {
        param: &'static str,
        source: TimeError,
    },
    #[error("from must be before to")]
    Empty,
    #[error("max_points cannot be combined with limit, cursor, every or agg")]
    DownsampleCombined,
    #[error("max_points: expected a whole number from {MIN_DOWNSAMPLED_POINTS} to {0}")]
    MaxPoints(usize),
    #[error("limit: expected a whole number from 1 to {0}")]
    Limit(usize),
    #[error("agg needs every (e.g. every=1m&agg=avg)")]
    AggWithoutEvery,
}

/// serde reports structural mistakes through these; values through `custom`.
impl de::Error for QueryError {
    fn custom<T: Display>(msg: T) -> Self {
        QueryError::Value(msg.to_string())
    }
    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        QueryError::Unknown(field.chars().take(32).collect())
    }
    fn duplicate_field(field: &'static str) -> Self {
        QueryError::Twice(field)
    }
    fn missing_field(field: &'static str) -> Self {
        QueryError::Missing(field)
    }
}

/// The query string's parameters as typed values. `from`, `to`, `limit` and `max_points`
/// are checked in [`ReadingsQuery::new`]: they need the clock and the configured caps.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(deserialize_with = "device")]
    device: DeviceName,
    #[serde(default, deserialize_with = "sensor")]
    sensor: Option<SensorName>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default, deserialize_with = "limit")]
    limit: Option<Option<usize>>,
    #[serde(default, deserialize_with = "cursor")]
    cursor: Option<Timestamp>,
    #[serde(default, deserialize_with = "every")]
    every: Option<Duration>,
    #[serde(default, deserialize_with = "agg")]
    agg: Option<Agg>,
    #[serde(default, deserialize_with = "max_points")]
    max_points: Option<Option<usize>>,
}

/// A parameter's value parsed by `parse`; a refusal names the parameter.
fn parsed<'de, D: Deserializer<'de>, T, E: Display>(
    d: D,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(|e| de::Error::custom(format!("{name}: {e}")))
}

fn device<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceName, D::Error> {
    parsed(d, "device", DeviceName::parse)
}

fn sensor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SensorName>, D::Error> {
    parsed(d, "sensor", SensorName::parse).map(Some)
}

/// A whole number, or `Some(None)` when given but not one (its range says what to give).
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Ok(Some(String::deserialize(d)?.parse().ok()))
}

fn limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    whole_number(d)
}

fn max_points<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    whole_number(d)
}

fn cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    parsed(d, "cursor", |c| {
        decode_cursor(c).ok_or("not a cursor this hub issued")
    })
    .map(Some)
}

fn every<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let every = parsed(d, "every", parse_duration)?;
    if every.as_micros() < 1 {
        return Err(de::Error::custom("every: must be at least 1µs"));
    }
    Ok(Some(every))
}

fn agg<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Agg>, D::Error> {
    parsed(d, "agg", |a| {
        Agg::parse(a).ok_or("expected avg, min, max, sum, count, first or last")
    })
    .map(Some)
}

impl ReadingsQuery {
    /// Parses a query string; every error names the parameter and what is expected.
    /// `token` (the viewer token, when given in the URL) is not a query parameter.
    pub fn parse(query: &str, now: Timestamp, max_points: usize) -> Result<Self, QueryError> {
        let pairs = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k != "token")
            .map(|(k, v)| (k.into_owned(), ParamValue(v.into_owned())));
        let params = Params::deserialize(de::value::MapDeserializer::new(pairs))?;
        Self::new(params, now, max_points)
    }

    /// Resolves times against `now` and checks the parameters against each other and
    /// against `max_points` (`http.max_points`).
    fn new(p: Params, now: Timestamp, max_points: usize) -> Result<Self, QueryError> {
        let time = |param, t: &str| {
            parse_time_arg(t, now).map_err(|source| QueryError::Time { param, source })
        };
        let to = p.to.map(|t| time("to", &t)).transpose()?.unwrap_or(now);
        let from = match p.from {
            Some(f) => time("from", &f)?,
            None => to.saturating_sub(Duration::from_secs(24 * 3600)),
        };
        if from >= to {
            return Err(QueryError::Empty);
        }
        let downsample = match p.max_points {
            None => None,
            Some(_)
                if p.limit.is_some()
                    || p.cursor.is_some()
                    || p.every.is_some()
                    || p.agg.is_some() =>
            {
                return Err(QueryError::DownsampleCombined);
            }
            Some(n) => Some(
                n.filter(|n| (MIN_DOWNSAMPLED_POINTS..=max_points).contains(n))
                    .ok_or(QueryError::MaxPoints(max_points))?,
            ),
        };
        let limit = match p.limit {
            None => max_points,
            Some(n) => n
                .filter(|n| (1..=max_points).contains(n))
                .ok_or(QueryError::Limit(max_points))?,
        };
        let buckets = match (p.every, p.agg) {
            (None, None) => None,
            (Some(every), agg) => Some((every, agg.unwrap_or(Agg::Avg))),
            (None, Some(_)) => return Err(QueryError::AggWithoutEvery),
        };
        Ok(Self {
            device: p.device,
            sensor: p.sensor,
            from,
            to,
            limit,
            after: p.cursor,
            buckets,
            max_points: downsample,
        })
    }
}

/// `/v1/readings` handlers take the parsed query as an extractor (after the token's).
impl FromRequestParts<Arc<HubState>> for ReadingsQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        hub: &Arc<HubState>,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(Self::parse(
            query,
            Timestamp::now(),
            hub.settings.http.max_points,
        )?)
    }
}

pub fn encode_cursor(ts: Timestamp) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ts:{}", ts.as_micros()))
}

fn decode_cursor(c: &str) -> Option<Timestamp> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    Some(Timestamp::from_micros(s.strip_prefix("ts:")?.parse().ok()?))
}

/// One decoded query-string value: a string, and `Some` of itself to an `Option` field.
struct ParamValue(String);

impl<'de> IntoDeserializer<'de, QueryError> for ParamValue {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for ParamValue {
    type Error = QueryError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, QueryError> {
        v.visit_string(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, QueryError> {
        v.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-21T12:00:00Z").unwrap()
    }

    #[test]
    fn parses_a_bucket_query() {
        let q = ReadingsQuery::parse("device=b-1&sensor=t&from=-1h&every=1m&agg=max", now(), 100)
            .unwrap();
        assert_eq!(q.buckets, Some((Duration::from_secs(60), Agg::Max)));
        assert_eq!(q.to, now());
        assert_eq!(q.limit, 100);
    }

    #[test]
    fn explains_bad_parameters() {
        let e = |q: &str| ReadingsQuery::parse(q, now(), 100).unwrap_err().to_string();
        assert!(e("sensor=t").contains("device"));
        assert!(e("device=a&sensor=t&limit=0").contains("limit"));
        assert!(e("device=a&sensor=t&limit=101").contains("limit"));
        assert!(e("device=a&sensor=t&from=now").contains("before"));
        assert!(e("device=a&sensor=t&agg=avg").contains("every"));
        assert!(e("device=a&sensor=t&every=1m&agg=median").contains("agg"));
        assert!(e("device=a&sensor=t&cursor=zzz").contains("cursor"));
        assert!(e("device=a&sensor=t&form=1").contains("unknown parameter"));
        assert!(e("device=a&device=b&sensor=t").contains("twice"));
        assert!(e("device=a&sensor=t&max_points=4").contains("max_points"));
        assert!(e("device=a&sensor=t&max_points=101").contains("max_points"));
        assert!(e("device=a&sensor=t&max_points=50&limit=5").contains("combined"));
        assert!(e("device=a&sensor=t&max_points=50&every=1m").contains("combined"));
    }

    #[test]
    fn refusals_keep_their_wording_and_the_token_is_not_a_parameter() {
        let e = |q: &str| ReadingsQuery::parse(q, now(), 100).unwrap_err();
        assert_eq!(e("sensor=t"), QueryError::Missing("device"));
        assert_eq!(e("device=a&sensor=t&limit=x"), QueryError::Limit(100));
        assert_eq!(
            e("device=a&sensor=t&every=1m&agg=median").to_string(),
            "agg: expected avg, min, max, sum, count, first or last"
        );
        assert_eq!(
            e("device=a&sensor=t&cursor=zzz").to_string(),
            "cursor: not a cursor this hub issued"
        );
        assert_eq!(
            e("device=a&sensor=t&from=yesterday"),
            QueryError::Time {
                param: "from",
                source: TimeError::BadTimeArg("yesterday".into())
            }
        );
        let q = ReadingsQuery::parse("token=a&device=d&token=b&sensor=t&limit=5", now(), 100);
        assert_eq!(q.unwrap().limit, 5);
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(now())), Some(now()));
    }

    proptest! {
        #[test]
        fn arbitrary_query_strings_never_panic(s in "\\PC{0,120}") {
            let _ = ReadingsQuery::parse(&s, now(), 1000);
        }
    }
}

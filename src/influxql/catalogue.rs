//! The InfluxDB view of the stored series (docs/grafana.md): a sensor is a measurement
//! whose field is `value`, and a sensor `a.b` is also measurement `a`, field `b` (as a
//! line-protocol write names it); the one tag is `device`. Built per query from
//! [`crate::storage::history::CatalogueRow`]s. Pure.

use super::StatementError;
use crate::domain::ValueKind;
use crate::protocol::influxql::Source;
use crate::storage::history::CatalogueRow;
use std::collections::BTreeMap;

/// Compiled regexes are capped at this size (an untrusted pattern cannot grow them).
const REGEX_BYTES: usize = 1 << 20;

/// A regex as InfluxQL writes it (RE2 syntax), or the statement error naming it.
pub fn regex(pattern: &str) -> Result<regex::Regex, StatementError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_BYTES)
        .build()
        .map_err(|e| StatementError::Regex(crate::protocol::influxql::cap(pattern), e.to_string()))
}

/// One stored series seen as a field of a measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRef {
    pub device: String,
    pub series: i64,
    pub kind: ValueKind,
}

/// Measurement → field → the series holding it, by name.
#[derive(Debug, Default)]
pub struct Catalogue {
    pub measurements: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>>,
}

impl Catalogue {
    pub fn new(rows: Vec<CatalogueRow>) -> Self {
        let mut c = Self::default();
        for r in rows {
            let s = SeriesRef {
                device: r.device,
                series: r.series,
                kind: r.kind,
            };
            if let Some((m, f)) = r.sensor.split_once('.') {
                c.add(m, f, s.clone());
            }
            c.add(&r.sensor, "value", s);
        }
        c
    }

    fn add(&mut self, m: &str, f: &str, s: SeriesRef) {
        self.measurements
            .entry(m.to_owned())
            .or_default()
            .entry(f.to_owned())
            .or_default()
            .push(s);
    }

    /// The measurements `source` names (every one for `None`), by name.
    #[allow(clippy::type_complexity)]
    pub fn matching(
        &self,
        source: Option<&Source>,
    ) -> Result<Vec<(&str, &BTreeMap<String, Vec<SeriesRef>>)>, StatementError> {
        let all = self.measurements.iter().map(|(m, f)| (m.as_str(), f));
        Ok(match source {
            None => all.collect(),
            Some(Source::Name(n)) => all.filter(|(m, _)| m == n).collect(),
            Some(Source::Regex(r)) => {
                let re = regex(r)?;
                all.filter(|(m, _)| re.is_match(m)).collect()
            }
        })
    }
}

/// The type InfluxDB names for a field of `kind`.
pub fn field_type(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Number => "float",
        ValueKind::Bool => "boolean",
        ValueKind::Text => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(series: i64, device: &str, sensor: &str) -> CatalogueRow {
        CatalogueRow {
            series,
            device: device.into(),
            sensor: sensor.into(),
            kind: ValueKind::Number,
        }
    }

    #[test]
    fn a_dotted_sensor_is_also_a_field_of_its_prefix() {
        let c = Catalogue::new(vec![
            row(1, "a", "hum.rel"),
            row(2, "a", "hum"),
            row(3, "b", "temp"),
        ]);
        let names: Vec<_> = c.measurements.keys().map(String::as_str).collect();
        assert_eq!(names, ["hum", "hum.rel", "temp"]);
        let hum = &c.measurements["hum"];
        assert_eq!(hum.keys().collect::<Vec<_>>(), ["rel", "value"]);
        assert_eq!(hum["rel"][0].series, 1);
        let m = c.matching(Some(&Source::Regex("^te".into()))).unwrap();
        assert_eq!(m.len(), 1);
        assert!(c.matching(Some(&Source::Regex("(".into()))).is_err());
    }
}

//! The `SHOW` statements: databases (one, `telehub`), the retention policy (`autogen`),
//! measurements, tag keys (`device`), tag values (device names) and field keys, in
//! InfluxDB's columns.

use super::catalogue::{Catalogue, field_type, regex};
use super::condition::split;
use super::{Context, Series, StatementError};
use crate::protocol::influxql::{Source, Statement};
use serde_json::{Value as Json, json};

/// The database name the hub answers to (any `db` is accepted).
pub const DATABASE: &str = "telehub";

pub fn run(ctx: &Context<'_>, c: &Catalogue, s: &Statement) -> Result<Vec<Series>, StatementError> {
    let series = |name: Option<&str>, columns: &[&str], values: Vec<Vec<Json>>| Series {
        name: name.map(str::to_owned),
        tags: None,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        values,
    };
    let nonempty = |s: Series| if s.values.is_empty() { vec![] } else { vec![s] };
    Ok(match s {
        Statement::ShowDatabases => {
            let mut names = vec![DATABASE.to_owned()];
            names.extend(ctx.db.clone().filter(|d| d != DATABASE && !d.is_empty()));
            let values = names.into_iter().map(|n| vec![json!(n)]).collect();
            vec![series(Some("databases"), &["name"], values)]
        }
        Statement::ShowRetentionPolicies => vec![series(
            None,
            &[
                "name",
                "duration",
                "shardGroupDuration",
                "replicaN",
                "default",
            ],
            vec![vec![
                json!("autogen"),
                json!("0s"),
                json!("168h0m0s"),
                json!(1),
                json!(true),
            ]],
        )],
        Statement::ShowMeasurements {
            with,
            limit,
            offset,
        } => {
            let names = c.matching(with.as_ref())?;
            let values = page(
                names.into_iter().map(|(m, _)| vec![json!(m)]),
                *offset,
                *limit,
            );
            nonempty(series(Some("measurements"), &["name"], values))
        }
        Statement::ShowTagKeys { from } => per_measurement(c, from, |_| {
            Ok((vec!["tagKey"], vec![vec![json!("device")]]))
        })?,
        Statement::ShowFieldKeys { from } => per_measurement(c, from, |fields| {
            let values = fields
                .iter()
                .map(|(f, s)| vec![json!(f), json!(field_type(s[0].kind))])
                .collect();
            Ok((vec!["fieldKey", "fieldType"], values))
        })?,
        Statement::ShowTagValues {
            from,
            keys,
            condition,
        } => {
            if !keys.iter().any(|k| k == "device") {
                return Ok(Vec::new());
            }
            let now = ctx.now.as_micros().saturating_mul(1_000);
            let test = split(condition.as_ref(), now)?.tags;
            per_measurement(c, from, |fields| {
                let mut devices: Vec<&str> = fields
                    .values()
                    .flatten()
                    .map(|s| s.device.as_str())
                    .filter(|d| test.as_ref().is_none_or(|t| t.matches(d)))
                    .collect();
                devices.sort_unstable();
                devices.dedup();
                let values = devices
                    .iter()
                    .map(|d| vec![json!("device"), json!(d)])
                    .collect();
                Ok((vec!["key", "value"], values))
            })?
        }
        Statement::Select(_) | Statement::Unsupported(_) => Vec::new(),
    })
}

type Fields = std::collections::BTreeMap<String, Vec<super::catalogue::SeriesRef>>;

/// One series per measurement `from` names (those with values), columns and values
/// from `each`.
fn per_measurement(
    c: &Catalogue,
    from: &Option<Source>,
    each: impl Fn(&Fields) -> Result<(Vec<&'static str>, Vec<Vec<Json>>), StatementError>,
) -> Result<Vec<Series>, StatementError> {
    if let Some(Source::Regex(r)) = from {
        regex(r)?;
    }
    let mut out = Vec::new();
    for (m, fields) in c.matching(from.as_ref())? {
        let (columns, values) = each(fields)?;
        if values.is_empty() {
            continue;
        }
        out.push(Series {
            name: Some(m.to_owned()),
            tags: None,
            columns: columns.into_iter().map(str::to_owned).collect(),
            values,
        });
    }
    Ok(out)
}

/// `OFFSET` then `LIMIT` (0: no limit, as InfluxDB has it).
pub fn page<T>(items: impl Iterator<Item = T>, offset: Option<u64>, limit: Option<u64>) -> Vec<T> {
    let skip = offset.unwrap_or(0).min(usize::MAX as u64) as usize;
    let take = match limit {
        None | Some(0) => usize::MAX,
        Some(n) => n.min(usize::MAX as u64) as usize,
    };
    items.skip(skip).take(take).collect()
}

//! `SELECT`: the projection checked (one field or `*`, raw or one aggregate), the
//! measurements and devices picked, each series read through the history planner
//! ([`Store::history`]: raw points, rollup buckets, or one total), then filled,
//! ordered and paged as InfluxDB does it.

use super::catalogue::{Catalogue, SeriesRef};
use super::condition::{self, Tags};
use super::rows::{self, Rows};
use super::{Context, Series, StatementError};
use crate::domain::Timestamp;
use crate::protocol::influxql::{Dimension, Field, FieldExpr, Fill, Select};
use crate::storage::Agg;
use crate::storage::history::{History, HistoryLimits, HistoryRead, Shape};
use std::collections::BTreeMap;

/// The aggregates `/query` answers, by InfluxQL name.
const FUNCTIONS: [(&str, Agg); 7] = [
    ("mean", Agg::Avg),
    ("min", Agg::Min),
    ("max", Agg::Max),
    ("sum", Agg::Sum),
    ("count", Agg::Count),
    ("first", Agg::First),
    ("last", Agg::Last),
];

/// Without a bound the range is open: these stand for "the first and last reading".
const EARLIEST: i64 = i64::MIN / 4;
const LATEST: i64 = i64::MAX / 4;

/// What a `SELECT` projects: a field (or `*`), raw or through one aggregate.
struct Projection<'a> {
    agg: Option<(&'static str, Agg)>,
    /// `None` for `*`.
    field: Option<&'a str>,
    alias: Option<&'a str>,
}

/// One series of the answer: a measurement (and device, when grouped by it), and the
/// stored series behind each column.
struct Plan<'a> {
    measurement: &'a str,
    device: Option<&'a str>,
    columns: Vec<(String, Vec<i64>)>,
}

pub async fn run(
    ctx: &Context<'_>,
    c: &Catalogue,
    s: &Select,
) -> Result<Vec<Series>, StatementError> {
    if s.into {
        return Err(StatementError::Unsupported("SELECT … INTO".into()));
    }
    let p = projection(&s.fields)?;
    let buckets = s.group_by.time;
    if buckets.is_some() && p.agg.is_none() {
        return Err(StatementError::Invalid(
            "GROUP BY time() needs an aggregate function, e.g. mean(\"value\")".into(),
        ));
    }
    let by_device = by_device(&s.group_by.tags)?;
    let now_us = ctx.now.as_micros();
    let split = condition::split(s.condition.as_ref(), now_us.saturating_mul(1_000))?;
    let from = match (split.time.from, buckets) {
        (Some(f), _) => f,
        (None, None) => EARLIEST,
        (None, Some(_)) => {
            return Err(StatementError::Invalid(
                "GROUP BY time() needs a lower time bound, e.g. WHERE time > now() - 6h".into(),
            ));
        }
    };
    let to = match (split.time.to, buckets) {
        (Some(t), _) => t,
        (None, Some(_)) => now_us.saturating_add(1),
        (None, None) => LATEST,
    };
    let plans = plan(c, s, &p, split.tags.as_ref(), by_device)?;
    let max = ctx.limits;
    if plans.len() > max.max_series {
        return Err(StatementError::TooManySeries {
            n: plans.len(),
            max: max.max_series,
        });
    }
    if from >= to {
        return Ok(Vec::new());
    }
    let (offset, limit) = (s.offset.unwrap_or(0) as usize, s.limit.filter(|l| *l > 0));
    let fill = s.fill.unwrap_or(Fill::Null);
    let mut out = Vec::new();
    let mut values = 0usize;
    for plan in plans {
        let read = |series: &Vec<i64>, shape| HistoryRead {
            series: series.clone(),
            from: Timestamp::from_micros(from),
            to: Timestamp::from_micros(to),
            shape,
        };
        let limits = HistoryLimits {
            max_buckets: max.max_buckets,
        };
        let mut columns = Vec::with_capacity(plan.columns.len());
        for (_, series) in &plan.columns {
            let shape = match (p.agg, buckets) {
                (Some((_, agg)), Some(b)) => Shape::Buckets {
                    every_us: whole_us(b.every_ns, "GROUP BY time()")?,
                    offset_us: whole_us(b.offset_ns, "GROUP BY time()'s offset")?,
                    agg,
                    limit: max.max_points.saturating_add(1),
                },
                (Some((_, agg)), None) => Shape::Total { agg },
                (None, _) => match limit {
                    Some(l) if s.descending => Shape::Newest {
                        limit: offset.saturating_add(l as usize).min(max.max_points + 1),
                    },
                    Some(l) if !s.descending => Shape::Raw {
                        after: None,
                        limit: offset.saturating_add(l as usize).min(max.max_points + 1),
                    },
                    _ => Shape::Raw {
                        after: None,
                        limit: max.max_points + 1,
                    },
                },
            };
            columns.push(
                match ctx.store.history(&read(series, shape), limits).await? {
                    History::Points(p) => {
                        p.into_iter().map(|p| (p.ts.as_micros(), p.value)).collect()
                    }
                    History::Buckets(b) => b
                        .into_iter()
                        .map(|b| (b.ts.as_micros(), b.value))
                        .collect::<Vec<_>>(),
                },
            );
        }
        if columns.iter().all(Vec::is_empty) {
            continue;
        }
        let counts: Vec<bool> = plan
            .columns
            .iter()
            .map(|_| matches!(p.agg, Some((_, Agg::Count))))
            .collect();
        let mut rows: Rows = match (p.agg, buckets) {
            (Some(_), Some(b)) => {
                let (every, off) = (
                    b.every_ns / 1_000,
                    (b.offset_ns / 1_000).rem_euclid(b.every_ns / 1_000),
                );
                let start = |t: i64| (t - off).div_euclid(every) * every + off;
                let n = ((start(to - 1) - start(from)) / every + 1) as usize;
                if n.saturating_mul(columns.len()).saturating_add(values) > max.max_points {
                    return Err(StatementError::TooManyPoints {
                        max: max.max_points,
                    });
                }
                rows::buckets(columns, (start(from), start(to - 1), every), fill, &counts)
            }
            (Some(_), None) => {
                let at = if from == EARLIEST { 0 } else { from };
                let cells = columns
                    .into_iter()
                    .map(|c| c.into_iter().next().map(|(_, v)| v))
                    .collect();
                vec![(at, cells)]
            }
            (None, _) => {
                let mut rows = rows::merge(columns);
                if rows.len() > max.max_points {
                    return Err(StatementError::TooManyPoints {
                        max: max.max_points,
                    });
                }
                if s.descending {
                    rows.reverse();
                }
                rows
            }
        };
        if s.descending && buckets.is_some() {
            rows.reverse();
        }
        let rows: Vec<_> = super::show::page(rows.into_iter(), Some(offset as u64), limit);
        values = values.saturating_add(rows.len() * plan.columns.len());
        if values > max.max_points {
            return Err(StatementError::TooManyPoints {
                max: max.max_points,
            });
        }
        let mut columns = vec!["time".to_owned()];
        columns.extend(plan.columns.iter().map(|(name, _)| name.clone()));
        out.push(Series {
            name: Some(plan.measurement.to_owned()),
            tags: plan
                .device
                .map(|d| BTreeMap::from([("device".to_owned(), d.to_owned())])),
            columns,
            values: rows
                .iter()
                .map(|(t, cells)| {
                    let mut row = vec![rows::time(*t, ctx.epoch)];
                    row.extend(cells.iter().zip(&counts).map(|(v, &c)| rows::cell(v, c)));
                    row
                })
                .collect(),
        });
    }
    // InfluxDB lists series in reverse order too when the rows are newest first.
    if s.descending {
        out.reverse();
    }
    Ok(super::show::page(out.into_iter(), s.soffset, s.slimit))
}

/// The measurements and devices a `SELECT` reads, one [`Plan`] per answer series.
fn plan<'a>(
    c: &'a Catalogue,
    s: &Select,
    p: &Projection<'_>,
    tags: Option<&Tags<'_>>,
    by_device: bool,
) -> Result<Vec<Plan<'a>>, StatementError> {
    let mut plans = Vec::new();
    for source in &s.from {
        for (m, fields) in c.matching(Some(source))? {
            let chosen: Vec<(&String, &Vec<SeriesRef>)> = fields
                .iter()
                .filter(|(f, _)| p.field.is_none_or(|want| want == f.as_str()))
                .collect();
            let name = |f: &str| match (p.agg, p.field, p.alias) {
                (_, Some(_), Some(alias)) => alias.to_owned(),
                (Some((func, _)), Some(_), None) => func.to_owned(),
                (Some((func, _)), None, _) => format!("{func}_{f}"),
                (None, _, _) => f.to_owned(),
            };
            // Device (or all, when not grouped) → each column's series.
            let mut groups: BTreeMap<Option<&str>, Vec<Vec<i64>>> = BTreeMap::new();
            for (i, (_, series)) in chosen.iter().enumerate() {
                for r in series
                    .iter()
                    .filter(|r| tags.is_none_or(|t| t.matches(&r.device)))
                {
                    let key = by_device.then_some(r.device.as_str());
                    groups
                        .entry(key)
                        .or_insert_with(|| vec![Vec::new(); chosen.len()])[i]
                        .push(r.series);
                }
            }
            for (device, per_column) in groups {
                let columns = chosen
                    .iter()
                    .zip(per_column)
                    .filter(|(_, ids)| !ids.is_empty() || chosen.len() == 1)
                    .map(|((f, _), ids)| (name(f), ids))
                    .collect();
                plans.push(Plan {
                    measurement: m,
                    device,
                    columns,
                });
            }
        }
    }
    Ok(plans)
}

fn projection(fields: &[Field]) -> Result<Projection<'_>, StatementError> {
    let [field] = fields else {
        return Err(StatementError::Unsupported(format!(
            "{} fields in one SELECT (select one field or one aggregate, e.g. mean(\"value\"))",
            fields.len()
        )));
    };
    fn column(e: &FieldExpr) -> Result<Option<&str>, StatementError> {
        match e {
            FieldExpr::Wildcard => Ok(None),
            FieldExpr::Column(c) if c.starts_with('/') => Err(StatementError::Unsupported(
                "a /regex/ field (name the field, or use *)".into(),
            )),
            FieldExpr::Column(c) => Ok(Some(c)),
            _ => Err(StatementError::Unsupported(
                "arithmetic and nested functions in SELECT".into(),
            )),
        }
    }
    let alias = field.alias.as_deref();
    match &field.expr {
        FieldExpr::Call { name, args } => {
            let Some((func, agg)) = FUNCTIONS.iter().find(|(f, _)| f == name) else {
                return Err(StatementError::Unsupported(format!(
                    "function {}() (use mean, min, max, sum, count, first or last)",
                    crate::protocol::influxql::cap(name)
                )));
            };
            let [arg] = &args[..] else {
                return Err(StatementError::Invalid(format!(
                    "{func}() takes one field, e.g. {func}(\"value\")"
                )));
            };
            Ok(Projection {
                agg: Some((func, *agg)),
                field: column(arg)?,
                alias,
            })
        }
        e => Ok(Projection {
            agg: None,
            field: column(e)?,
            alias,
        }),
    }
}

/// Whether `GROUP BY` splits series by device (`"device"`, `*`, or a regex matching it).
fn by_device(dims: &[Dimension]) -> Result<bool, StatementError> {
    let mut by = false;
    for d in dims {
        by |= match d {
            Dimension::All => true,
            Dimension::Tag(t) if t == "device" => true,
            Dimension::Regex(r) => super::catalogue::regex(r)?.is_match("device"),
            Dimension::Tag(t) => {
                return Err(StatementError::Unsupported(format!(
                    "GROUP BY \"{}\" (the one tag is \"device\")",
                    crate::protocol::influxql::cap(t)
                )));
            }
        };
    }
    Ok(by)
}

/// A duration in ns as whole µs (storage's resolution), refusing finer ones.
fn whole_us(ns: i64, what: &str) -> Result<i64, StatementError> {
    if ns % 1_000 != 0 {
        return Err(StatementError::Unsupported(format!(
            "{what} finer than a microsecond"
        )));
    }
    Ok(ns / 1_000)
}

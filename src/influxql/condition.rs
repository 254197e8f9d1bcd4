//! A `WHERE` condition split into what storage reads and what picks series: the time
//! range (every `time` comparison, which must be joined by `AND`) and the tag test
//! applied to each device. Pure.

use super::StatementError;
use super::catalogue::regex;
use crate::protocol::influxql::{Condition, Ordering, TagOp, TagValue};

/// `[from, to)` in µs; `None` where the condition sets no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// A condition's time range and its tag test (`None`: every device).
pub struct Split<'a> {
    pub time: TimeRange,
    pub tags: Option<Tags<'a>>,
}

/// The tag part of a condition, its regexes compiled.
pub enum Tags<'a> {
    And(Box<Tags<'a>>, Box<Tags<'a>>),
    Or(Box<Tags<'a>>, Box<Tags<'a>>),
    Text(&'a str, TagOp, &'a str),
    Regex(&'a str, TagOp, regex::Regex),
}

impl Tags<'_> {
    /// Whether a series of `device` passes (the one tag; any other tag is empty, as an
    /// InfluxDB series without that tag).
    pub fn matches(&self, device: &str) -> bool {
        let value = |key: &str| if key == "device" { device } else { "" };
        match self {
            Tags::And(a, b) => a.matches(device) && b.matches(device),
            Tags::Or(a, b) => a.matches(device) || b.matches(device),
            Tags::Text(key, op, text) => (value(key) == *text) == (*op == TagOp::Eq),
            Tags::Regex(key, op, re) => re.is_match(value(key)) == (*op == TagOp::Match),
        }
    }
}

/// Splits `c`, resolving `now()` as `now_ns`.
pub fn split(c: Option<&Condition>, now_ns: i64) -> Result<Split<'_>, StatementError> {
    let mut time = TimeRange::default();
    let tags = match c {
        Some(c) => walk(c, now_ns, &mut time, false)?,
        None => None,
    };
    Ok(Split { time, tags })
}

fn walk<'a>(
    c: &'a Condition,
    now_ns: i64,
    time: &mut TimeRange,
    under_or: bool,
) -> Result<Option<Tags<'a>>, StatementError> {
    Ok(match c {
        Condition::And(a, b) => {
            let (a, b) = (
                walk(a, now_ns, time, under_or)?,
                walk(b, now_ns, time, under_or)?,
            );
            match (a, b) {
                (Some(a), Some(b)) => Some(Tags::And(Box::new(a), Box::new(b))),
                (a, b) => a.or(b),
            }
        }
        Condition::Or(a, b) => {
            let (a, b) = (walk(a, now_ns, time, true)?, walk(b, now_ns, time, true)?);
            match (a, b) {
                (Some(a), Some(b)) => Some(Tags::Or(Box::new(a), Box::new(b))),
                _ => None,
            }
        }
        Condition::Time(op, t) => {
            if under_or {
                return Err(StatementError::Unsupported(
                    "time conditions joined by OR (join them with AND)".into(),
                ));
            }
            bound(time, *op, t.resolve(now_ns))?;
            None
        }
        Condition::Tag { key, op, value } => Some(match value {
            TagValue::Text(t) => Tags::Text(key, *op, t),
            TagValue::Regex(r) => Tags::Regex(key, *op, regex(r)?),
        }),
        Condition::Field { .. } => {
            return Err(StatementError::Unsupported(
                "conditions on field values (only time and the device tag)".into(),
            ));
        }
    })
}

/// Narrows `r` by `time OP t` (`t` in ns; bounds rounded to whole µs inside the range).
fn bound(r: &mut TimeRange, op: Ordering, t: i64) -> Result<(), StatementError> {
    let floor = t.div_euclid(1_000);
    let ceil = floor + i64::from(t.rem_euclid(1_000) != 0);
    let (from, to) = match op {
        Ordering::GreaterEq => (Some(ceil), None),
        Ordering::Greater => (Some(floor.saturating_add(1)), None),
        Ordering::LessEq => (None, Some(floor.saturating_add(1))),
        Ordering::Less => (None, Some(ceil)),
        Ordering::Eq => (Some(ceil), Some(floor.saturating_add(1))),
        Ordering::NotEq => {
            return Err(StatementError::Unsupported("time != …".into()));
        }
    };
    if let Some(f) = from {
        r.from = Some(r.from.map_or(f, |x| x.max(f)));
    }
    if let Some(t) = to {
        r.to = Some(r.to.map_or(t, |x| x.min(t)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::influxql::{Statement, parse};

    fn with(cond: &str, f: impl FnOnce(Result<Split<'_>, StatementError>)) {
        let s = parse(&format!("SELECT v FROM m WHERE {cond}")).unwrap();
        let Statement::Select(s) = &s[0] else {
            panic!()
        };
        f(split(s.condition.as_ref(), 10_000_000_000))
    }

    #[test]
    fn time_bounds_become_a_half_open_microsecond_range() {
        with("time >= 1500ns AND time <= 9s", |s| {
            let s = s.unwrap();
            assert_eq!(
                s.time,
                TimeRange {
                    from: Some(2),
                    to: Some(9_000_001)
                }
            );
            assert!(s.tags.is_none());
        });
        with("time > now() - 5s and time < now()", |s| {
            assert_eq!(
                s.unwrap().time,
                TimeRange {
                    from: Some(5_000_001),
                    to: Some(10_000_000)
                }
            );
        });
    }

    #[test]
    fn device_tests_follow_and_or_and_regexes() {
        with(
            r#"("device" =~ /^(a|b)$/ OR "device" = 'c') AND "device" != 'b' AND time > 0"#,
            |s| {
                let t = s.unwrap().tags.unwrap();
                assert!(t.matches("a") && t.matches("c"));
                assert!(!t.matches("b") && !t.matches("d") && !t.matches("ab"));
            },
        );
        with(r#""host" = ''"#, |s| {
            assert!(s.unwrap().tags.unwrap().matches("x"))
        });
        with(r#""device" !~ /x/"#, |s| {
            assert!(!s.unwrap().tags.unwrap().matches("box"))
        });
    }

    #[test]
    fn unsupported_conditions_are_named() {
        with("time > 0 OR \"device\" = 'a'", |s| {
            assert!(s.err().unwrap().to_string().contains("OR"))
        });
        with("\"value\" > 5", |s| {
            assert!(s.err().unwrap().to_string().contains("field values"))
        });
        with("\"device\" =~ /(/", |s| {
            assert!(s.err().unwrap().to_string().contains("regex"))
        });
    }
}

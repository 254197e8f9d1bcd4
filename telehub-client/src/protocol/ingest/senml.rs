//! SenML packs (RFC 8428) as device messages: base fields (`bn`, `bt`, `bu`) carry over
//! to later records; the record name is the sensor. Values: `v` (plus `bv`), `vb`, `vs`
//! (protocol.md §8); `vd`, `s` and `bs` are refused.

use super::*;

/// SenML times below 2^28 are relative to now (RFC 8428 http-api.md.5.3).
const SENML_RELATIVE_LIMIT: f64 = 268_435_456.0;

/// The value of a `v` (number), `vb` (boolean) or `vs` (string) field.
fn senml_value(field: &str, val: &Value) -> Result<DomainValue, String> {
    match (field, val) {
        ("v", _) => finite(val)
            .map(DomainValue::Number)
            .ok_or_else(|| "expected a finite number".into()),
        ("vb", Value::Bool(b)) => Ok(DomainValue::Bool(*b)),
        ("vb", _) => Err("expected true or false".into()),
        (_, Value::String(s)) => DomainValue::text(s).map_err(|e| e.to_string()),
        _ => Err("expected a string".into()),
    }
}

/// Parses a SenML pack (RFC 8428): base fields carry over to later records.
pub(crate) fn parse_senml(
    records: Vec<Value>,
    limits: &ParseLimits,
) -> Result<DeviceMessage, Refusal> {
    let refuse = |code, detail: String| Refusal {
        id: None,
        code,
        detail,
    };
    check_count(records.len(), limits).map_err(|(c, d)| refuse(c, d))?;
    let (mut bn, mut bt, mut bu, mut bv) = (String::new(), 0.0f64, None::<String>, 0.0f64);
    let mut readings = Vec::with_capacity(records.len());
    for (i, rec) in records.into_iter().enumerate() {
        let bad = |d: String| refuse(ErrorCode::InvalidReading, field_path(&format!("[{i}]"), &d));
        let Value::Object(o) = rec else {
            return Err(bad(": expected a SenML record object".into()));
        };
        let mut name = None;
        let (mut t, mut u, mut v) = (0.0f64, None, None);
        for (k, val) in o {
            match k.as_str() {
                "bn" => {
                    bn = val
                        .as_str()
                        .ok_or_else(|| bad("bn: expected a string".into()))?
                        .to_owned()
                }
                "bt" => {
                    bt = finite(&val).ok_or_else(|| bad("bt: expected a finite number".into()))?
                }
                "bu" => {
                    bu = Some(
                        val.as_str()
                            .ok_or_else(|| bad("bu: expected a string".into()))?
                            .to_owned(),
                    )
                }
                "bv" => {
                    bv = finite(&val).ok_or_else(|| bad("bv: expected a finite number".into()))?
                }
                // RFC 8428 §4.4: versions up to 10 are this format; a later one may change
                // what the fields mean, so it is refused rather than misread.
                "bver" => match val.as_u64() {
                    Some(1..=10) => {}
                    _ => {
                        return Err(bad(format!(
                            "bver: {} is not a SenML version this hub reads (1 to 10)",
                            super::clip(&val.to_string())
                        )));
                    }
                },
                "n" => {
                    name = Some(
                        val.as_str()
                            .ok_or_else(|| bad("n: expected a string".into()))?
                            .to_owned(),
                    )
                }
                "t" => t = finite(&val).ok_or_else(|| bad("t: expected a finite number".into()))?,
                "u" => {
                    u = Some(
                        val.as_str()
                            .ok_or_else(|| bad("u: expected a string".into()))?
                            .to_owned(),
                    )
                }
                "v" | "vb" | "vs" => {
                    if v.is_some() {
                        return Err(bad(format!("{k}: a record holds one of v, vb and vs")));
                    }
                    v = Some(senml_value(&k, &val).map_err(|e| bad(format!("{k}: {e}")))?);
                }
                "vd" | "s" | "bs" => {
                    return Err(bad(format!(
                        "{k}: not supported; send numbers as `v`, booleans as `vb`, strings as `vs`"
                    )));
                }
                other => return Err(bad(format!("{}: unknown SenML field", clip(other)))),
            }
        }
        let full = format!("{bn}{}", name.as_deref().unwrap_or(""));
        let sensor = SensorName::parse(&full)
            .map_err(|e| bad(format!("n: record name {:?} {e}", clip(&full))))?;
        let value =
            match v.ok_or_else(|| bad("v: missing; one of v, vb or vs is required".into()))? {
                DomainValue::Number(n) => DomainValue::number(n + bv)
                    .map_err(|e| bad(format!("v: with bv added, {e}")))?,
                other => other,
            };
        let abs = bt + t;
        let ts = if abs == 0.0 {
            limits.now
        } else if abs.abs() < SENML_RELATIVE_LIMIT {
            limits
                .now
                .saturating_add(Duration::from_secs_f64(abs.max(0.0)))
                .saturating_sub(Duration::from_secs_f64((-abs).max(0.0)))
        } else {
            Timestamp::from_unix_seconds(abs).map_err(|e| bad(format!("t: {e}")))?
        };
        check_ts(ts, limits).map_err(|e| bad(format!("t: {e}")))?;
        let unit = u
            .or_else(|| bu.clone())
            .map(|s| Unit::parse(&s))
            .transpose()
            .map_err(|e| bad(format!("u: {e}")))?;
        readings.push(DeviceReading {
            device: None,
            reading: Reading {
                sensor,
                value,
                ts,
                unit,
            },
        });
    }
    Ok(DeviceMessage { id: None, readings })
}

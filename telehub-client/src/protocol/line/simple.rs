//! The common line read without InfluxData's parser: plain ASCII with no escapes and no
//! string fields, `measurement[,k=v...] field=value[,field=value...] [timestamp]`.
//!
//! A profile of `/write` (BENCHMARKS.md, "Performance round 3") put a third of the
//! hub's CPU in the general parser, much of it moving each parsed line (a few hundred
//! bytes of small vectors) from one combinator to the next. This reader splits the line
//! in place instead. It takes only what it can read exactly as that parser does (the
//! same value grammar, the same numbers); anything else — escapes, quotes, tabs, empty
//! parts, an `=` inside a tag, a value outside the grammar — is left to the general
//! parser, which then accepts or refuses the line as before.

use influxdb_line_protocol::FieldValue;

/// A line split into its parts, every part checked.
pub(super) struct Simple<'a> {
    pub measurement: &'a str,
    /// The value of the first tag named `device`.
    pub device: Option<&'a str>,
    /// `k=v,k=v`, each value in [`value`]'s grammar.
    fields: &'a str,
    pub timestamp: Option<i64>,
}

impl<'a> Simple<'a> {
    /// The line's parts, or `None` when the general parser must read it.
    pub fn split(line: &'a str) -> Option<Self> {
        // A comment (`parse_body` skips them before; the general parser reads them as none).
        if line.starts_with('#') {
            return None;
        }
        if !line
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'\\' && b != b'"')
        {
            return None;
        }
        let mut parts = line.split(' ').filter(|p| !p.is_empty());
        let (series, fields) = (parts.next()?, parts.next()?);
        let timestamp = match parts.next() {
            None => None,
            Some(t) if is_integer(t) => Some(t.parse().ok()?),
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        let (measurement, tags) = match series.split_once(',') {
            None => (series, None),
            Some((m, t)) => (m, Some(t)),
        };
        if measurement.is_empty() {
            return None;
        }
        let mut device = None;
        for tag in tags.into_iter().flat_map(|t| t.split(',')) {
            let (k, v) = pair(tag)?;
            if k == "device" && device.is_none() {
                device = Some(v);
            }
        }
        for field in fields.split(',') {
            let (_, v) = pair(field)?;
            value(v)?;
        }
        Some(Self {
            measurement,
            device,
            fields,
            timestamp,
        })
    }

    /// Each field's key and value, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, FieldValue<'a>)> + use<'a> {
        self.fields.split(',').filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            Some((k, value(v)?))
        })
    }
}

/// `k=v`, both non-empty, one `=`.
fn pair(s: &str) -> Option<(&str, &str)> {
    let (k, v) = s.split_once('=')?;
    (!k.is_empty() && !v.is_empty() && !v.contains('=')).then_some((k, v))
}

/// `-?[0-9]+`
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[0-9]+[eE][-+]?[0-9]+`
fn is_exponential(s: &str) -> bool {
    let Some((m, e)) = s.split_once(['e', 'E']) else {
        return false;
    };
    let e = e.strip_prefix(['-', '+']).unwrap_or(e);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(m) && digits(e)
}

/// A field value in the general parser's grammar, other than a string: `Ni` (i64),
/// `Nu` (u64), a float (`-N`, `-N.N`, `-N.NeN`, `-NeN`, sign optional), or a boolean.
fn value(v: &str) -> Option<FieldValue<'static>> {
    if let Some(i) = v.strip_suffix('i') {
        return is_integer(i).then(|| i.parse().ok().map(FieldValue::I64))?;
    }
    if let Some(u) = v.strip_suffix('u') {
        let digits = !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit());
        return digits.then(|| u.parse().ok().map(FieldValue::U64))?;
    }
    match v {
        "true" | "True" | "TRUE" | "t" | "T" => return Some(FieldValue::Boolean(true)),
        "false" | "False" | "FALSE" | "f" | "F" => return Some(FieldValue::Boolean(false)),
        _ => {}
    }
    let unsigned = v.strip_prefix('-').unwrap_or(v);
    let float = match unsigned.split_once('.') {
        None => is_integer(unsigned) || is_exponential(unsigned),
        Some((int, frac)) => {
            is_integer(int)
                && !int.starts_with('-')
                && (is_integer(frac) && !frac.starts_with('-') || is_exponential(frac))
        }
    };
    if float {
        v.parse().ok().map(FieldValue::F64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A line as both readers see it: measurement, device tag, fields, timestamp.
    type Read = (String, Option<String>, Vec<(String, String)>, Option<i64>);

    /// What the general parser makes of a line, in the same terms.
    fn general(line: &str) -> Option<Read> {
        let p = influxdb_line_protocol::parse_lines(line).next()?.ok()?;
        let device = super::super::device_tag(&p).map(str::to_owned);
        let fields = p
            .field_set
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), format!("{v:?}")))
            .collect();
        Some((
            p.series.measurement.as_str().to_owned(),
            device,
            fields,
            p.timestamp,
        ))
    }

    fn simple(line: &str) -> Option<Read> {
        let s = Simple::split(line)?;
        let fields = s
            .fields()
            .map(|(k, v)| (k.to_owned(), format!("{v:?}")))
            .collect();
        Some((
            s.measurement.to_owned(),
            s.device.map(str::to_owned),
            fields,
            s.timestamp,
        ))
    }

    #[test]
    fn common_lines_are_read_here_and_the_rest_left_to_the_general_parser() {
        for line in [
            "s1,client=c3 value=12.5 1764499990000000",
            "m,device=b-1,site=x value=21.5,pressure=2i,on=t,n=7u 1764499990",
            "m value=-1.5e-3",
            "m value=1E5,x=-2 -5",
        ] {
            assert!(simple(line).is_some(), "{line}");
            assert_eq!(simple(line), general(line), "{line}");
        }
        for line in [
            r#"m s="text""#,
            r"m\ x value=1",
            "#m value=1",
            "m,k=v=w value=1",
            "m value=1.5x",
            "m value=.5",
            "m value=1 2 3",
            "m\tvalue=1",
            "m,=v value=1",
            "m value=99999999999999999999i",
        ] {
            assert!(simple(line).is_none(), "{line}");
        }
    }

    proptest! {
        /// Whatever this reader takes, the general parser reads the same.
        #[test]
        fn what_is_read_here_the_general_parser_reads_the_same(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(" "), Just(","), Just("="), Just("."), Just("-"), Just("+"), Just("e"),
                    Just("E"), Just("i"), Just("u"), Just("t"), Just("true"), Just("F"), Just("m"),
                    Just("device"), Just("1"), Just("42"), Just("0"), Just("x"), Just("  "),
                    Just("\\"), Just("\""), Just("#"),
                ],
                1..24,
            )
        ) {
            let line: String = parts.concat();
            let line = line.trim();
            if let Some(got) = simple(line) {
                prop_assert_eq!(Some(got), general(line), "{:?}", line);
            }
        }
    }
}

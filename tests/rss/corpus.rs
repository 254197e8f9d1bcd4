//! A corpus of malformed device frames, each with the error code the hub must answer.

/// (frame, expected error code, whether the id can be echoed)
pub fn corpus(t: f64) -> Vec<(String, &'static str, bool)> {
    let mut c: Vec<(String, &'static str, bool)> = Vec::new();
    let good = |extra: &str| {
        format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":1,"ts":{t}{extra}}}]}}"#)
    };
    // Not JSON at all, or broken JSON.
    for s in [
        "",
        " ",
        "{",
        "}",
        "[",
        "nul",
        "{'id':1}",
        r#"{"id":1,}"#,
        r#"{"id":1 "readings":[]}"#,
        "\u{0}",
        "<xml/>",
        "42",
        "\"text\"",
        "true",
        "null",
    ] {
        c.push((s.to_owned(), "invalid_json", false));
    }
    // Every truncation of a good message.
    let whole = r#"{"id":7,"readings":[{"sensor":"t","value":1.5,"unit":"Cel"}]}"#;
    for end in 1..whole.len() {
        c.push((whole[..end].to_owned(), "invalid_json", false));
    }
    // Deep nesting: beyond the JSON parser's recursion limit.
    for depth in [200, 1000, 5000] {
        c.push((
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            "invalid_json",
            false,
        ));
        c.push((
            format!(
                r#"{{"id":1,"readings":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ),
            "invalid_json",
            false,
        ));
    }
    // Numbers JSON cannot hold or a reading cannot be.
    for v in [
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        "nan",
        "inf",
        "0x10",
        "01",
        "1.",
        ".5",
        "+1",
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":{v}}}]}}"#),
            "invalid_json",
            false,
        ));
    }
    // Values protocol.md §8 refuses: wrong JSON types, and strings that are empty, too long or
    // hold control characters (a string such as "NaN" is a valid text value now).
    let long = format!(r#""{}""#, "x".repeat(257));
    for v in [
        "null",
        "[]",
        "{}",
        r#"[1]"#,
        r#""""#,
        long.as_str(),
        r#""a\u0001b""#,
        r#""tab\there""#,
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":{v}}}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    for r in [
        r#"7"#,
        r#""reading""#,
        "null",
        "[]",
        r#"{"sensor":1,"value":1}"#,
        r#"{"sensor":null,"value":1}"#,
        r#"{"value":1}"#,
        r#"{"sensor":"t"}"#,
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{r}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    for bad_id in [r#""7""#, "-1", "1.5", "18446744073709551616", "[]", "true"] {
        c.push((
            format!(r#"{{"id":{bad_id},"readings":[{{"sensor":"t","value":1}}]}}"#),
            "invalid_json",
            false,
        ));
    }
    c.push((r#"{"id":7,"readings":{}}"#.into(), "invalid_json", true));
    c.push((r#"{"id":7,"readings":"x"}"#.into(), "invalid_json", true));
    c.push((r#"{"id":7}"#.into(), "invalid_json", true));
    c.push((r#"{"id":7,"readings":[]}"#.into(), "invalid_reading", true));
    // Bad names.
    let long = "x".repeat(65);
    for n in [
        "",
        " ",
        "-t",
        ".t",
        "t t",
        "t/t",
        "t\\u0000",
        "tempé",
        r#"t\""#,
        "<b>",
        long.as_str(),
        "t\\nx",
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"{n}","value":1}}]}}"#),
            "invalid_reading",
            true,
        ));
        c.push((
            format!(r#"{{"id":7,"device":"{n}","readings":[{{"sensor":"t","value":1}}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    // Bad units.
    for u in ["\"abcdefghijklmnopq\"", "\"a\\u0007\"", "1", "[]"] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":1,"unit":{u}}}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    // Bad timestamps.
    for ts in [
        r#""yesterday""#,
        r#""2026-13-01T00:00:00Z""#,
        r#""2026-11-21 10:00""#,
        r#""2026-11-21T10:00:00""#,
        r#""""#,
        "0",
        "-1",
        "946684799",
        "1e300",
        "99999999999",
        r#""2999-01-01T00:00:00Z""#,
        r#""1999-12-31T23:59:59Z""#,
        "true",
        "[]",
        "{}",
    ] {
        c.push((
            format!(r#"{{"id":7,"readings":[{{"sensor":"t","value":1,"ts":{ts}}}]}}"#),
            "invalid_reading",
            true,
        ));
    }
    // Unknown fields.
    c.push((
        r#"{"id":7,"readings":[{"sensor":"t","value":1}],"extra":1}"#.into(),
        "invalid_json",
        true,
    ));
    c.push((good(r#","extra":1"#), "invalid_reading", true));
    c.push((good(r#","Value":1"#), "invalid_reading", true));
    // Forbidden devices (not a gateway for them).
    c.push((
        r#"{"id":7,"device":"other-1","readings":[{"sensor":"t","value":1}]}"#.into(),
        "forbidden_device",
        true,
    ));
    c.push((good(r#","device":"other-1""#), "forbidden_device", true));
    // Too many readings.
    let many: Vec<String> = (0..1001)
        .map(|i| format!(r#"{{"sensor":"t","value":{i}}}"#))
        .collect();
    c.push((
        format!(r#"{{"id":7,"readings":[{}]}}"#, many.join(",")),
        "too_many_readings",
        true,
    ));
    // SenML mistakes.
    for p in [
        r#"[]"#,
        r#"[1]"#,
        r#"[{"n":"t"}]"#,
        r#"[{"n":"t","v":"1"}]"#,
        r#"[{"n":"t","vd":"AQ"}]"#,
        r#"[{"n":"a b","v":1}]"#,
        r#"[{"x":1,"n":"t","v":1}]"#,
        r#"[{"bn":5,"n":"t","v":1}]"#,
    ] {
        c.push((p.to_owned(), "invalid_reading", false));
    }
    // The same reading-level mistakes in the third reading of a message.
    let third: Vec<(String, &'static str, bool)> = c
        .iter()
        .filter(|(f, code, _)| {
            *code == "invalid_reading"
                && f.starts_with(r#"{"id":7,"readings":[{"#)
                && f.ends_with("]}")
        })
        .map(|(f, code, e)| {
            let bad = &f[r#"{"id":7,"readings":["#.len()..f.len() - 2];
            let ok = format!(r#"{{"sensor":"t","value":1,"ts":{t}}}"#);
            (
                format!(r#"{{"id":7,"readings":[{ok},{ok},{bad}]}}"#),
                *code,
                *e,
            )
        })
        .collect();
    c.extend(third);
    c
}

//! Serial line tests: every line form, checksums, refusals; arbitrary input never panics.

use super::*;
use proptest::prelude::*;

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-21T12:00:00Z").unwrap()
}

fn lax() -> LineRules {
    LineRules {
        checksum_required: false,
        ..LineRules::default()
    }
}

fn parse(line: &str) -> Result<SerialLine, LineError> {
    parse_line_with(line.as_bytes(), &lax(), now())
}

fn with_checksum(body: &str) -> String {
    format!("{body}*{:02X}", xor(body.as_bytes()))
}

fn values(l: &SerialLine) -> Vec<(&str, f64)> {
    l.readings
        .iter()
        .map(|r| (r.reading.sensor.as_str(), r.reading.value.as_f64().unwrap()))
        .collect()
}

#[test]
fn reads_the_contract_form_with_every_optional_part() {
    let line = with_checksum("ts=1795255200.25,device=pump-3,temperature=21.5,rpm=1200");
    let l = parse_line_with(
        format!("{line}\r\n").as_bytes(),
        &LineRules::default(),
        now(),
    )
    .unwrap();
    assert_eq!(l.format, LineFormat::Fields { checksum: true });
    assert_eq!(values(&l), [("temperature", 21.5), ("rpm", 1200.0)]);
    for r in &l.readings {
        assert_eq!(r.device.as_ref().unwrap().as_str(), "pump-3");
        assert_eq!(r.reading.ts.to_rfc3339(), "2026-11-21T10:00:00.250000Z");
    }
}

#[test]
fn readings_without_ts_get_the_receive_time_and_rfc3339_is_accepted() {
    let l = parse("t=1\n").unwrap();
    assert_eq!(l.readings[0].reading.ts, now());
    assert_eq!(l.readings[0].device, None);
    let l = parse("ts=2026-11-21T11:00:00+01:00,t=1").unwrap();
    assert_eq!(
        l.readings[0].reading.ts.to_rfc3339(),
        "2026-11-21T10:00:00.000000Z"
    );
}

#[test]
fn json_lines_hold_a_contract_message() {
    let l = parse(r#"{"device":"a","readings":[{"sensor":"t","value":2,"unit":"Cel"}]}"#).unwrap();
    assert_eq!(l.format, LineFormat::Json { checksum: false });
    assert_eq!(l.readings[0].device.as_ref().unwrap().as_str(), "a");
    assert_eq!(l.readings[0].reading.ts, now());
    let body = r#"[{"n":"t","v":1}]"#;
    let l = parse_line_with(with_checksum(body).as_bytes(), &LineRules::default(), now()).unwrap();
    assert_eq!(l.format, LineFormat::Json { checksum: true });
    let star = r#"{"readings":[{"sensor":"t","value":1,"unit":"*"}]}"#;
    assert!(parse(star).is_ok());
}

#[test]
fn each_bad_line_has_its_own_reason() {
    let long = format!("t={}", "1".repeat(MAX_LINE_BYTES));
    let cases: &[(&[u8], LineErrorKind)] = &[
        (b"\r\n", LineErrorKind::Empty),
        (long.as_bytes(), LineErrorKind::TooLong),
        (b"t=1\x00\xff", LineErrorKind::NotText),
        (b"t=\x1b[1", LineErrorKind::NotText),
        (b"t=1*00", LineErrorKind::BadChecksum),
        (b"t=1*5", LineErrorKind::Syntax),
        (b"t=1*XY", LineErrorKind::Syntax),
        (b"t=1,,u=2", LineErrorKind::Syntax),
        (b"t=1,", LineErrorKind::Syntax),
        (b"t", LineErrorKind::Syntax),
        (b"t=1,ts=5", LineErrorKind::Syntax),
        (b"t=1,device=a", LineErrorKind::Syntax),
        (b"te mp=1", LineErrorKind::BadName),
        (b"device=-x,t=1", LineErrorKind::BadName),
        (b"t=abc", LineErrorKind::BadValue),
        (b"t=", LineErrorKind::BadValue),
        (b"t=NaN", LineErrorKind::NonFinite),
        (b"t=inf", LineErrorKind::NonFinite),
        (b"t=1e999", LineErrorKind::NonFinite),
        (b"t=-1e301", LineErrorKind::NonFinite),
        (b"ts=yesterday,t=1", LineErrorKind::BadTime),
        (b"ts=900000000,t=1", LineErrorKind::BadTime),
        (b"ts=4000000000,t=1", LineErrorKind::BadTime),
        (b"t=1,t=2", LineErrorKind::DuplicateSensor),
        (b"ts=1795255200", LineErrorKind::NoReadings),
        (b"device=a", LineErrorKind::NoReadings),
        (b"{\"readings\":[]}", LineErrorKind::Json),
        (b"{\"readings\":[{\"sensor\":\"t\"}]}", LineErrorKind::Json),
    ];
    for (line, kind) in cases {
        let err = parse_line_with(line, &lax(), now()).unwrap_err();
        assert_eq!(
            err.kind(),
            *kind,
            "{:?}: {err}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn checksums_can_be_required() {
    let strict = LineRules::default();
    let err = parse_line_with(b"t=1", &strict, now()).unwrap_err();
    assert_eq!(err, LineError::MissingChecksum);
    assert!(err.to_string().contains("--no-checksum-required"));
    assert!(parse_line_with(with_checksum("t=1").as_bytes(), &strict, now()).is_ok());
    assert!(
        parse_line_with(
            with_checksum("t=1").to_lowercase().as_bytes(),
            &strict,
            now()
        )
        .is_ok()
    );
    assert_eq!(
        parse_line_with(
            b"{\"readings\":[{\"sensor\":\"t\",\"value\":1}]}",
            &strict,
            now()
        )
        .unwrap_err(),
        LineError::MissingChecksum
    );
}

#[test]
fn errors_tell_what_to_do() {
    let e = parse("t=1\x01").unwrap_err();
    assert!(e.to_string().contains("baud rate"), "{e}");
    let e = parse("t=1*00").unwrap_err();
    assert!(e.to_string().contains("*78"), "{e}");
}

#[test]
fn formats_the_contract_form() {
    let fields = SampleFields {
        ts: Some(Timestamp::parse_rfc3339("2026-11-21T10:00:00.25Z").unwrap()),
        device: Some(DeviceName::parse("pump-3").unwrap()),
        values: vec![(SensorName::parse("temperature").unwrap(), 21.5.into())],
    };
    let body = "ts=1795255200.25,device=pump-3,temperature=21.5";
    assert_eq!(format_line(&fields, false), body);
    assert_eq!(format_line(&fields, true), with_checksum(body));
}

fn arb_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._:-]{0,19}".prop_filter("not a key", |s| s != "ts" && s != "device")
}

/// Numbers, booleans and printable ASCII strings (with quotes, backslashes, commas, `=`
/// and `*`, which the line must escape or carry inside quotes).
fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>().prop_filter_map("a number value", |v| Value::number(v).ok()),
        any::<bool>().prop_map(Value::Bool),
        "[ -~]{1,24}".prop_map(|s| Value::text(&s).unwrap()),
    ]
}

fn arb_fields() -> impl Strategy<Value = SampleFields> {
    let earliest = crate::domain::EARLIEST_DEVICE_TS.as_micros();
    (
        proptest::option::of(earliest..now().as_micros()),
        proptest::option::of(arb_name()),
        proptest::collection::btree_map(arb_name(), arb_value(), 1..8),
    )
        .prop_map(|(ts, device, values)| SampleFields {
            ts: ts.map(Timestamp::from_micros),
            device: device.map(|d| DeviceName::parse(&d).unwrap()),
            values: values
                .into_iter()
                .map(|(s, v)| (SensorName::parse(&s).unwrap(), v))
                .collect(),
        })
}

proptest! {
    #[test]
    fn formatted_lines_parse_back_to_the_same_readings(fields in arb_fields(), crlf: bool) {
        let line = format!("{}{}", format_line(&fields, true), if crlf { "\r\n" } else { "\n" });
        prop_assert!(line.len() <= MAX_LINE_BYTES + 2);
        let parsed = parse_line_with(line.as_bytes(), &LineRules::default(), now()).unwrap();
        prop_assert_eq!(parsed.format, LineFormat::Fields { checksum: true });
        prop_assert_eq!(parsed.readings.len(), fields.values.len());
        for (r, (sensor, value)) in parsed.readings.iter().zip(&fields.values) {
            prop_assert_eq!(&r.reading.sensor, sensor);
            match (&r.reading.value, value) {
                (Value::Number(a), Value::Number(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                (a, b) => prop_assert_eq!(a, b),
            }
            prop_assert_eq!(r.reading.ts, fields.ts.unwrap_or(now()));
            prop_assert_eq!(&r.device, &fields.device);
        }
    }

    #[test]
    fn a_flipped_byte_never_passes_the_checksum(fields in arb_fields(), pos: usize, bit in 0u8..7) {
        let mut line = format_line(&fields, true).into_bytes();
        let star = line.len() - 3;
        let i = pos % star;
        line[i] ^= 1 << bit;
        prop_assert!(parse_line_with(&line, &LineRules::default(), now()).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_line(&bytes);
        let _ = parse_line_with(&bytes, &lax(), now());
    }

    #[test]
    fn arbitrary_text_lines_never_panic(s in "[ -~]{0,80}") {
        let _ = parse_line_with(s.as_bytes(), &lax(), now());
    }
}

#[test]
fn the_documented_example_lines_carry_correct_checksums() {
    for line in [
        "temperature=21.5,humidity=40.1*5A",
        "ts=1795255200.25,device=pump-3,rpm=1200*6B",
        r#"{"readings":[{"sensor":"t","value":1,"unit":"Cel"}]}*73"#,
    ] {
        let l = parse_line_with(line.as_bytes(), &LineRules::default(), now());
        assert!(l.is_ok(), "{line}: {l:?}");
    }
}

#[test]
fn booleans_and_quoted_strings_with_escapes_are_values() {
    let l = parse(r#"door=true,lamp=false,state="idle, \"really\" \\ *ok*=1",t=-4.5"#).unwrap();
    let got: Vec<_> = l.readings.iter().map(|r| r.reading.value.clone()).collect();
    assert_eq!(
        got,
        [
            Value::Bool(true),
            Value::Bool(false),
            Value::text(r#"idle, "really" \ *ok*=1"#).unwrap(),
            Value::Number(-4.5),
        ]
    );
    let body = r#"mode="defrost",door=true"#;
    let l = parse_line_with(with_checksum(body).as_bytes(), &LineRules::default(), now());
    assert_eq!(l.unwrap().readings.len(), 2, "a checksum after a string");
}

#[test]
fn bare_words_bad_escapes_and_bad_strings_are_refused() {
    for (line, kind, detail) in [
        (
            "state=idle",
            LineErrorKind::BadValue,
            "write a number, true, false or a string",
        ),
        ("door=TRUE", LineErrorKind::BadValue, "not a value"),
        (
            r#"state="a\nb""#,
            LineErrorKind::BadText,
            "only \\\" and \\\\ escapes",
        ),
        (
            r#"state="open"#,
            LineErrorKind::BadText,
            "one pair of double quotes",
        ),
        (
            r#"state="a"b""#,
            LineErrorKind::BadText,
            "one pair of double quotes",
        ),
        (r#"state="""#, LineErrorKind::BadText, "must not be empty"),
    ] {
        let e = parse(line).unwrap_err();
        assert_eq!(e.kind(), kind, "{line}: {e}");
        assert!(e.to_string().contains(detail), "{line}: {e}");
    }
    let long = format!("state=\"{}\"", "x".repeat(257));
    let e = parse(&long).unwrap_err();
    assert!(e.to_string().contains("at most 256"), "{e}");
}

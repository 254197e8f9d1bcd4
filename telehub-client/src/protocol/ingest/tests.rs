//! Parser tests: every field refused with the right code and detail; arbitrary input never panics.

use super::*;
use proptest::prelude::*;

fn limits() -> ParseLimits {
    ParseLimits {
        max_readings: 1000,
        max_clock_skew: Duration::from_secs(300),
        now: Timestamp::parse_rfc3339("2026-11-21T12:00:00Z").unwrap(),
    }
}

fn refusal(text: &str) -> Refusal {
    parse_message(text, &limits()).unwrap_err()
}

#[test]
fn parses_the_contract_example() {
    let m = parse_message(
        r#"{"id": 17, "readings": [
            {"sensor": "temperature", "value": 21.5, "ts": "2026-11-21T10:00:00.250Z", "unit": "Cel"},
            {"sensor": "humidity", "value": 40.1, "ts": 1795255200.25}]}"#,
        &limits(),
    )
    .unwrap();
    assert_eq!(m.id, Some(17));
    assert_eq!(m.readings.len(), 2);
    let r = &m.readings[0].reading;
    assert_eq!(
        (
            r.sensor.as_str(),
            r.value.clone(),
            r.unit.as_ref().map(Unit::as_str)
        ),
        ("temperature", 21.5.into(), Some("Cel"))
    );
    assert_eq!(r.ts.to_rfc3339(), "2026-11-21T10:00:00.250000Z");
    assert_eq!(m.readings[1].reading.ts, r.ts);
}

#[test]
fn missing_ts_is_the_receive_time() {
    let m = parse_message(r#"{"readings":[{"sensor":"t","value":1}]}"#, &limits()).unwrap();
    assert_eq!(m.id, None);
    assert_eq!(m.readings[0].reading.ts, limits().now);
}

#[test]
fn each_refusal_has_the_contract_code_and_names_the_field() {
    let cases = [
        ("{", ErrorCode::InvalidJson, "EOF"),
        ("42", ErrorCode::InvalidJson, "expected a JSON object"),
        (
            r#"{"id":1}"#,
            ErrorCode::InvalidJson,
            "missing field `readings`",
        ),
        (
            r#"{"id":-1,"readings":[]}"#,
            ErrorCode::InvalidJson,
            "id: expected an unsigned",
        ),
        (
            r#"{"id":1,"readings":[],"x":1}"#,
            ErrorCode::InvalidJson,
            "unknown field `x`",
        ),
        (
            r#"{"id":1,"readings":[]}"#,
            ErrorCode::InvalidReading,
            "at least one",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":null}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].value: expected a finite number, true/false or a string",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":[true]}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].value: expected a finite number, true/false or a string",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":{"a":1}}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].value: expected",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":""}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].value: a string value must not be empty",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":"a\u0007b"}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].value: a string value contains a control character",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":1},{"sensor":"t"}]}"#,
            ErrorCode::InvalidReading,
            "readings[1].value: missing",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"a b","value":1}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].sensor: contains ' '",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":1,"ts":"yesterday"}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].ts:",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":1,"ts":900000000}]}"#,
            ErrorCode::InvalidReading,
            "before 2000-01-01",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":1,"ts":"2026-11-21T12:06:00Z"}]}"#,
            ErrorCode::InvalidReading,
            "ahead of the hub's clock",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":1,"unit":"abcdefghijklmnopq"}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].unit:",
        ),
        (
            r#"{"id":1,"readings":[{"sensor":"t","value":1,"vaule":2}]}"#,
            ErrorCode::InvalidReading,
            "readings[0].vaule: unknown field",
        ),
        (
            r#"{"id":1,"readings":[7]}"#,
            ErrorCode::InvalidReading,
            "readings[0]: expected an object",
        ),
        (
            r#"[{"n":"t"}]"#,
            ErrorCode::InvalidReading,
            "[0].v: missing",
        ),
        (
            r#"[{"n":"t","vd":"aGk="}]"#,
            ErrorCode::InvalidReading,
            "[0].vd: not supported; send numbers as `v`, booleans as `vb`, strings as `vs`",
        ),
        (
            r#"[{"n":"t","v":1,"s":4}]"#,
            ErrorCode::InvalidReading,
            "[0].s: not supported",
        ),
        (
            r#"[{"bs":4,"n":"t","v":1}]"#,
            ErrorCode::InvalidReading,
            "[0].bs: not supported",
        ),
        (
            r#"[{"n":"t","vb":1}]"#,
            ErrorCode::InvalidReading,
            "[0].vb: expected true or false",
        ),
        (
            r#"[{"n":"t","vs":true}]"#,
            ErrorCode::InvalidReading,
            "[0].vs: expected a string",
        ),
        (
            r#"[{"n":"t","v":1,"vb":true}]"#,
            ErrorCode::InvalidReading,
            "a record holds one of v, vb and vs",
        ),
    ];
    for (text, code, detail) in cases {
        let r = refusal(text);
        assert_eq!(r.code, code, "{text}: {r:?}");
        assert!(
            r.detail.contains(detail),
            "{text}: {:?} lacks {detail:?}",
            r.detail
        );
    }
}

#[test]
fn refusals_echo_the_id_once_it_was_read() {
    assert_eq!(
        refusal(r#"{"id":9,"readings":[{"sensor":"t"}]}"#).id,
        Some(9)
    );
    assert_eq!(refusal(r#"{"id":9,"readings":[{"sensor":"t"}"#).id, None);
}

#[test]
fn too_many_readings_is_its_own_code() {
    let one = r#"{"sensor":"t","value":1}"#;
    let text = format!(r#"{{"id":3,"readings":[{}]}}"#, vec![one; 1001].join(","));
    let r = refusal(&text);
    assert_eq!((r.id, r.code), (Some(3), ErrorCode::TooManyReadings));
}

#[test]
fn non_finite_spellings_are_refused() {
    for v in ["NaN", "Infinity", "-Infinity", "1e400", "null"] {
        let r = refusal(&format!(
            r#"{{"id":1,"readings":[{{"sensor":"t","value":{v}}}]}}"#
        ));
        assert!(
            matches!(r.code, ErrorCode::InvalidJson | ErrorCode::InvalidReading),
            "{v}"
        );
    }
}

#[test]
fn gateway_device_applies_to_all_readings_unless_a_reading_overrides_it() {
    let m = parse_message(
        r#"{"device":"pump-1","readings":[{"sensor":"t","value":1},{"sensor":"t","value":2,"device":"pump-2"}]}"#,
        &limits(),
    )
    .unwrap();
    let devs: Vec<_> = m
        .readings
        .iter()
        .map(|r| r.device.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(devs, ["pump-1", "pump-2"]);
}

#[test]
fn senml_base_fields_carry_over() {
    let m = parse_message(
        r#"[{"bn":"room1:","bt":1795255200,"bu":"Cel","n":"temp","v":21.5},
            {"n":"temp","t":1,"v":21.6},
            {"n":"hum","u":"%RH","v":40}]"#,
        &limits(),
    )
    .unwrap();
    assert_eq!(m.id, None);
    let r: Vec<_> = m.readings.iter().map(|d| &d.reading).collect();
    assert_eq!(r[0].sensor.as_str(), "room1:temp");
    assert_eq!(r[1].ts.as_micros() - r[0].ts.as_micros(), 1_000_000);
    assert_eq!(r[1].unit.as_ref().unwrap().as_str(), "Cel");
    assert_eq!(r[2].unit.as_ref().unwrap().as_str(), "%RH");
    assert_eq!(r[2].sensor.as_str(), "room1:hum");
}

#[test]
fn senml_small_times_are_relative_to_now() {
    let m = parse_message(r#"[{"n":"t","v":1,"t":-10}]"#, &limits()).unwrap();
    assert_eq!(
        m.readings[0].reading.ts.as_micros(),
        limits().now.as_micros() - 10_000_000
    );
}

#[test]
fn replies_serialize_as_in_the_contract() {
    assert_eq!(
        Reply::Ack {
            ack: Some(17),
            stored: 2
        }
        .to_json(),
        r#"{"ack":17,"stored":2}"#
    );
    assert_eq!(
        Reply::Ack {
            ack: None,
            stored: 1
        }
        .to_json(),
        r#"{"ack":null,"stored":1}"#
    );
    let n = Reply::Nack {
        nack: Some(17),
        error: ErrorCode::InvalidReading,
        detail: "x".into(),
    };
    assert_eq!(
        n.to_json(),
        r#"{"nack":17,"error":"invalid_reading","detail":"x"}"#
    );
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = parse_message(&s, &limits());
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = parse_message(&v.to_string(), &limits());
    }

    #[test]
    fn valid_readings_parse_to_the_same_values(
        id in any::<u64>(),
        rs in prop::collection::vec(("[a-z][a-z0-9_]{0,10}", -1e12f64..1e12, 946_684_800i64..1_795_255_000), 1..20),
    ) {
        let readings: Vec<_> = rs.iter().map(|(s, v, t)| serde_json::json!({"sensor": s, "value": v, "ts": t})).collect();
        let text = serde_json::json!({"id": id, "readings": readings}).to_string();
        let m = parse_message(&text, &limits()).unwrap();
        prop_assert_eq!(m.id, Some(id));
        for (got, (s, v, t)) in m.readings.iter().zip(&rs) {
            prop_assert_eq!(got.reading.sensor.as_str(), s.as_str());
            prop_assert_eq!(&got.reading.value, &DomainValue::Number(*v));
            prop_assert_eq!(got.reading.ts.as_micros(), t * 1_000_000);
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        prop_oneof![
            Just("sensor"),
            Just("value"),
            Just("ts"),
            Just("readings"),
            Just("id"),
            Just("t"),
            Just("x y")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("id"),
                        Just("readings"),
                        Just("sensor"),
                        Just("value"),
                        Just("ts"),
                        Just("unit"),
                        Just("device"),
                        Just("n"),
                        Just("v"),
                        Just("bn"),
                        Just("bt")
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

#[test]
fn booleans_and_strings_keep_their_type_in_json_and_senml() {
    let m = parse_message(
        r#"{"readings":[{"sensor":"door","value":true},{"sensor":"mode","value":"defrost"},
            {"sensor":"t","value":-18.5}]}"#,
        &limits(),
    )
    .unwrap();
    let values: Vec<_> = m.readings.iter().map(|r| r.reading.value.clone()).collect();
    let defrost = DomainValue::text("defrost").unwrap();
    assert_eq!(
        values,
        [
            DomainValue::Bool(true),
            defrost.clone(),
            DomainValue::Number(-18.5)
        ]
    );
    let m = parse_message(
        r#"[{"bn":"f1:","bv":100,"n":"t","v":-118},{"n":"door","vb":false},
            {"n":"mode","vs":"defrost"},{"n":"u","v":0.5}]"#,
        &limits(),
    )
    .unwrap();
    let values: Vec<_> = m.readings.iter().map(|r| r.reading.value.clone()).collect();
    assert_eq!(
        values,
        [
            DomainValue::Number(-18.0),
            DomainValue::Bool(false),
            defrost,
            DomainValue::Number(100.5),
        ],
        "bv is added to every later v, and to no boolean or string"
    );
    let long = "x".repeat(257);
    let r = refusal(&format!(r#"[{{"n":"t","vs":"{long}"}}]"#));
    assert_eq!(r.code, ErrorCode::InvalidReading);
    assert!(
        r.detail.contains("257 bytes long; at most 256"),
        "{}",
        r.detail
    );
}

#[test]
fn a_duplicate_key_and_a_senml_version_from_the_future_are_refused() {
    let r = refusal(r#"{"id":4,"readings":[{"sensor":"t","value":1,"value":2}]}"#);
    assert_eq!(r.code, ErrorCode::InvalidJson);
    assert!(
        r.detail.contains("key \"value\" appears twice"),
        "{}",
        r.detail
    );
    let r = refusal(r#"[{"bver":11,"n":"t","v":1}]"#);
    assert_eq!(r.code, ErrorCode::InvalidReading);
    assert!(
        r.detail.contains("bver: 11 is not a SenML version"),
        "{}",
        r.detail
    );
    for ok in [r#"[{"bver":10,"n":"t","v":1}]"#, r#"[{"n":"t","v":1}]"#] {
        parse_message(ok, &limits()).unwrap();
    }
}

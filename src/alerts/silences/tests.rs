use super::*;
use proptest::prelude::*;

fn at(s: i64) -> Timestamp {
    Timestamp::from_micros(s * 1_000_000)
}

fn silence(pattern: &str, rule: Option<&str>) -> Silence {
    Silence {
        id: 7,
        pattern: parse_pattern(pattern).expect("a valid pattern"),
        rule: rule.map(str::to_owned),
        until: at(100),
    }
}

#[test]
fn a_series_pattern_covers_its_series_and_a_device_pattern_every_alert_of_the_device() {
    let s = silence("freezer-*/temperature", None);
    assert!(s.covers("warm", "freezer-1", Some("temperature")));
    assert!(!s.covers("warm", "freezer-1", Some("door")));
    assert!(!s.covers("warm", "fridge-1", Some("temperature")));
    assert!(
        !s.covers("gone", "freezer-1", None),
        "offline alerts have no sensor"
    );
    let d = silence("freezer-*", None);
    assert!(d.covers("warm", "freezer-1", Some("door")) && d.covers("gone", "freezer-2", None));
    let all = silence("*", None);
    assert!(all.covers("gone", "x", None) && all.covers("warm", "y", Some("z")));
}

#[test]
fn a_silence_with_a_rule_covers_that_rule_only_and_none_after_it_ends() {
    let s = silence("*/temperature", Some("warm"));
    assert!(s.covers("warm", "a", Some("temperature")));
    assert!(!s.covers("cold", "a", Some("temperature")));
    let set = Silences(vec![s]);
    assert_eq!(
        set.covering("warm", "a", Some("temperature"), at(99)),
        Some(7)
    );
    assert_eq!(
        set.covering("warm", "a", Some("temperature"), at(100)),
        None
    );
}

#[test]
fn silence_bodies_need_exactly_one_of_until_and_for_and_a_bounded_comment() {
    let ok = SilenceRequest::from_json(
        br#"{"pattern": "freezer-*/temperature", "rule": "freezer-warm", "for": "2h", "comment": "defrost"}"#,
    )
    .expect("valid");
    assert_eq!(ok.ends, Ends::For(Duration::from_secs(7200)));
    let row = ok.to_new("ops", at(0)).expect("in range");
    assert_eq!(
        (row.until, row.pattern.as_str()),
        (at(7200), "freezer-*/temperature")
    );
    for (body, why) in [
        (r#"{"pattern": "a/b", "comment": ""}"#, "exactly one"),
        (
            r#"{"pattern": "a/b", "for": "1h", "until": "2026-12-07T06:00:00Z"}"#,
            "exactly one",
        ),
        (r#"{"pattern": "a b/c", "for": "1h"}"#, "pattern"),
        (r#"{"pattern": "a/b", "for": "soon"}"#, "for:"),
        (
            r#"{"pattern": "a/b", "for": "1h", "colour": 1}"#,
            "unknown field",
        ),
        (r#"{"pattern": "a/b", "until": "tomorrow"}"#, "until:"),
        (r#"[1]"#, "invalid body"),
    ] {
        let e = SilenceRequest::from_json(body.as_bytes()).expect_err(body);
        assert!(e.to_string().contains(why), "{body}: {e}");
    }
    let long = format!(
        r#"{{"pattern": "a/b", "for": "1h", "comment": "{}"}}"#,
        "x".repeat(1001)
    );
    assert_eq!(
        SilenceRequest::from_json(long.as_bytes()),
        Err(OperatorError::CommentTooLong)
    );
    let past = SilenceRequest::from_json(br#"{"pattern": "a/b", "until": "2020-01-01T00:00:00Z"}"#)
        .expect("parses");
    assert_eq!(
        past.to_new("ops", at(1_900_000_000)).err(),
        Some(OperatorError::OutOfRange)
    );
}

#[test]
fn ack_bodies_name_an_alert_and_sensor_is_absent_for_offline() {
    let a = AckRequest::from_json(br#"{"rule": "gone", "device": "boiler-1", "comment": "known"}"#)
        .expect("valid");
    assert_eq!(a.key.sensor, None);
    assert_eq!(a.comment, "known");
    for body in [
        r#"{"device": "boiler-1"}"#,
        r#"{"rule": "r", "device": "bad name"}"#,
        r#"{"rule": "r", "device": "d", "sensor": "a/b"}"#,
        r#"{"rule": "r", "device": "d", "by": "me"}"#,
    ] {
        assert!(AckRequest::from_json(body.as_bytes()).is_err(), "{body}");
    }
}

proptest! {
    /// Whatever the body, parsing answers (never panics), and what it accepts has a
    /// comment within the bound.
    #[test]
    fn any_silence_body_is_answered_and_accepted_ones_are_bounded(
        pattern in "[a-z*/ -]{0,12}",
        dur in "[0-9a-z]{0,4}",
        comment in ".{0,1100}",
    ) {
        let body = serde_json::json!({"pattern": pattern, "for": dur, "comment": comment});
        if let Ok(r) = SilenceRequest::from_json(body.to_string().as_bytes()) {
            prop_assert!(r.comment.chars().count() <= MAX_COMMENT);
            prop_assert!(parse_pattern(&r.pattern.to_string()).is_ok());
        }
    }
}

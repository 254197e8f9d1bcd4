use super::*;

fn event() -> AlertEvent {
    AlertEvent {
        id: 42,
        rule: "freezer-warm".into(),
        device: "freezer-1".into(),
        sensor: Some("temperature".into()),
        state: AlertState::Firing,
        severity: Some("critical".into()),
        value: Some(Value::Number(-14.2)),
        unit: Some("Cel".into()),
        condition: Some("> -15 for 5m".into()),
        ts: Timestamp::parse_rfc3339("2026-11-21T10:05:00Z").unwrap(),
        since: Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap(),
        url: Some("https://hub.example/#device=freezer-1".into()),
        by: None,
        comment: None,
        silenced: false,
    }
}

#[test]
fn an_acknowledged_event_says_who_and_why() {
    let e = AlertEvent {
        state: AlertState::Acknowledged,
        by: Some("night-shift".into()),
        comment: Some("door left open, closed it".into()),
        ..event()
    };
    let text = Message::of(&e).text();
    assert!(
        text.starts_with(
            "ACKNOWLEDGED freezer-warm: freezer-1/temperature
"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "Acknowledged by: night-shift
"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "Comment: door left open, closed it
"
        ),
        "{text}"
    );
    let json = serde_json::to_value(&e).expect("serializes");
    assert_eq!(json["state"], "acknowledged");
    assert_eq!(json["by"], "night-shift");
    assert!(json.get("silenced").is_none(), "left out unless true");
    let plain = serde_json::to_value(event()).expect("serializes");
    assert!(plain.get("by").is_none() && plain.get("comment").is_none());
}

#[test]
fn the_text_names_every_fact_with_the_unit_and_the_link() {
    let text = Message::of(&event()).text();
    for want in [
        "FIRING freezer-warm: freezer-1/temperature",
        "Rule: freezer-warm (critical)",
        "Device: freezer-1",
        "Sensor: temperature",
        "Value: -14.2 Cel",
        "Condition: > -15 for 5m",
        "Since: 2026-11-21T10:00:00",
        "View: https://hub.example/#device=freezer-1",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
}

#[test]
fn slack_and_teams_carry_the_same_facts() {
    let m = Message::of(&event());
    let slack = m.slack().to_string();
    assert!(
        slack.contains("-14.2 Cel") && slack.contains("> -15 for 5m"),
        "{slack}"
    );
    assert!(
        slack.contains("<https://hub.example/#device=freezer-1|"),
        "{slack}"
    );
    let teams = m.teams();
    assert_eq!(teams["@type"], "MessageCard");
    let facts = teams["sections"][0]["facts"].as_array().unwrap();
    assert!(
        facts
            .iter()
            .any(|f| f["name"] == "Value" && f["value"] == "-14.2 Cel")
    );
    assert_eq!(
        teams["potentialAction"][0]["targets"][0]["uri"],
        "https://hub.example/#device=freezer-1"
    );
}

#[test]
fn an_offline_event_has_no_sensor_or_value_and_a_resolved_one_says_when() {
    let e = AlertEvent {
        sensor: None,
        value: None,
        unit: None,
        state: AlertState::Resolved,
        condition: Some("offline for 2m".into()),
        ..event()
    };
    let text = Message::of(&e).text();
    assert!(
        text.starts_with("RESOLVED freezer-warm: freezer-1\n"),
        "{text}"
    );
    assert!(
        !text.contains("Sensor:") && !text.contains("Value:"),
        "{text}"
    );
    assert!(text.contains("Resolved at: 2026-11-21T10:05:00"), "{text}");
}

#[test]
fn the_link_opens_the_series_around_the_event() {
    let since = Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
    let ts = Timestamp::parse_rfc3339("2026-11-21T10:05:00Z").unwrap();
    assert_eq!(
        series_link(
            "http://hub:8080/",
            "freezer-1",
            Some("temperature"),
            since,
            ts
        ),
        "http://hub:8080/#device=freezer-1&chart=freezer-1/temperature&from=2026-11-21T09:00:00.000Z&to=2026-11-21T11:05:00.000Z"
    );
}

#[test]
fn conditions_read_as_words() {
    let rule = |spec: serde_json::Value| Rule::from_json(&spec.to_string()).unwrap();
    let hot = rule(
        serde_json::json!({"name": "hot", "pattern": "*/t", "kind": "threshold", "op": ">", "value": 10, "for": "5m", "clear": 8}),
    );
    assert_eq!(condition(&hot), "> 10 for 5m (clears at 8)");
    let door = rule(
        serde_json::json!({"name": "door", "pattern": "*/door", "kind": "threshold", "op": "==", "value": "open"}),
    );
    assert_eq!(condition(&door), "== \"open\"");
    let silent =
        rule(serde_json::json!({"name": "s", "pattern": "*/t", "kind": "no_data", "for": "10m"}));
    assert_eq!(condition(&silent), "no data for 10m");
    let gone =
        rule(serde_json::json!({"name": "g", "pattern": "d-*", "kind": "offline", "for": "2m"}));
    assert_eq!(condition(&gone), "offline for 2m");
}

use super::*;
use crate::domain::{DeviceName, Reading, SensorName, Timestamp, Value as DomainValue};
use crate::protocol::commands::{CommandStatus, MAX_ERROR_CHARS};
use crate::protocol::ingest::DeviceReading;
use proptest::prelude::*;
use std::time::Duration;

fn limits() -> ParseLimits {
    ParseLimits {
        max_readings: 1000,
        max_clock_skew: Duration::from_secs(300),
        now: Timestamp::from_micros(1_795_255_200_000_000),
    }
}

fn id(s: &str) -> CommandId {
    CommandId::parse(s).unwrap()
}

#[test]
fn readings_messages_parse_as_before() {
    let text = r#"{"id": 17, "readings": [{"sensor": "t", "value": 21.5, "ts": 1795255200.25}]}"#;
    let DeviceFrame::Message(m) = DeviceFrame::parse(text, &limits()).unwrap() else {
        panic!("a message")
    };
    assert_eq!(
        m,
        crate::protocol::ingest::parse_message(text, &limits()).unwrap()
    );
    let senml = r#"[{"bn": "boiler.", "n": "t", "v": 1, "t": 1795255200}]"#;
    assert!(matches!(
        DeviceFrame::parse(senml, &limits()),
        Ok(DeviceFrame::Message(_))
    ));
    let refused = DeviceFrame::parse(r#"{"id": 3}"#, &limits()).unwrap_err();
    assert_eq!(
        (refused.id, refused.code),
        (Some(3), ErrorCode::InvalidJson)
    );
}

#[test]
fn command_frames_parse_into_typed_values() {
    assert_eq!(
        DeviceFrame::parse(r#"{"command_ack": "c_01"}"#, &limits()).unwrap(),
        DeviceFrame::CommandAck(id("c_01"))
    );
    let text = r#"{"command_result": "c_01", "status": "ok", "result": {"applied": 10}}"#;
    let DeviceFrame::CommandResult { id: got, answer } =
        DeviceFrame::parse(text, &limits()).unwrap()
    else {
        panic!("a result")
    };
    assert_eq!(got, id("c_01"));
    assert_eq!(answer.status, CommandStatus::Ok);
    assert_eq!(answer.result.unwrap()["applied"], 10);
    let text = r#"{"config_reported": {"version": 4, "state": {"interval_s": 5}}}"#;
    let DeviceFrame::ConfigReported { device, doc } = DeviceFrame::parse(text, &limits()).unwrap()
    else {
        panic!("a report")
    };
    assert_eq!((device, doc.version), (None, 4));
    let text = r#"{"config_reported": {"version": 4, "state": {}, "device": "pump-3"}}"#;
    let DeviceFrame::ConfigReported { device, .. } = DeviceFrame::parse(text, &limits()).unwrap()
    else {
        panic!("a gateway's report")
    };
    assert_eq!(device.unwrap().as_str(), "pump-3");
    let text = r#"{"config_reported": {"version": 4, "state": {}, "device": "-x"}}"#;
    assert!(DeviceFrame::parse(text, &limits()).is_err());
}

#[test]
fn bad_command_frames_are_refused_with_the_field_named() {
    let cases = [
        (r#"{"command_ack": 5}"#, "command_ack"),
        (r#"{"command_ack": "a b"}"#, "not a command id"),
        (r#"{"command_ack": "c_1", "id": 2}"#, "unknown field `id`"),
        (r#"{"command_result": "c_1"}"#, "status: missing"),
        (
            r#"{"command_result": "c_1", "status": "done"}"#,
            "expected ok, error or rejected",
        ),
        (
            r#"{"command_result": "c_1", "status": "ok", "result": [1]}"#,
            "result: expected",
        ),
        (
            r#"{"config_reported": {"version": -1, "state": {}}}"#,
            "version",
        ),
        (
            r#"{"config_reported": {"version": 1, "state": 3}}"#,
            "state: expected",
        ),
    ];
    for (text, says) in cases {
        let r = DeviceFrame::parse(text, &limits()).unwrap_err();
        assert_eq!((r.id, r.code), (None, ErrorCode::InvalidJson), "{text}");
        assert!(r.detail.contains(says), "{text}: {}", r.detail);
    }
    let long = "x".repeat(5000);
    let text = format!(r#"{{"command_result": "c_1", "status": "error", "error": "{long}"}}"#);
    let DeviceFrame::CommandResult { answer, .. } = DeviceFrame::parse(&text, &limits()).unwrap()
    else {
        panic!("a result")
    };
    assert_eq!(answer.error.unwrap().chars().count(), MAX_ERROR_CHARS);
}

#[test]
fn hub_frames_read_back_and_unknown_nack_codes_stay_final() {
    let nack = HubFrame::unknown_command("no command c_9");
    assert_eq!(
        nack.to_json(),
        r#"{"nack":null,"error":"unknown_command","detail":"no command c_9"}"#
    );
    assert_eq!(HubFrame::parse(&nack.to_json()).unwrap(), nack);
    assert_eq!(
        HubFrame::parse(r#"{"result_stored":"c_1"}"#).unwrap(),
        HubFrame::ResultStored(id("c_1"))
    );
    assert_eq!(
        HubFrame::parse(r#"{"ack":3,"stored":2}"#).unwrap(),
        HubFrame::Reply(Reply::Ack {
            ack: Some(3),
            stored: 2
        })
    );
    let HubFrame::Reply(Reply::Nack { error, .. }) =
        HubFrame::parse(r#"{"nack":1,"error":"brand_new","detail":""}"#).unwrap()
    else {
        panic!("a nack")
    };
    assert_eq!(error, ErrorCode::InvalidReading);
    assert!(HubFrame::parse(r#"{"command":{"id":"c_1"}}"#).is_err());
    assert!(HubFrame::parse(r#"{"result_stored":"c_1","x":1}"#).is_err());
    assert!(HubFrame::parse("[]").is_err());
}

fn arb_id() -> impl Strategy<Value = CommandId> {
    "[A-Za-z0-9_-]{1,64}".prop_map(|s| CommandId::parse(&s).unwrap())
}

fn arb_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        "[a-z_]{1,8}",
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            "\\PC{0,16}".prop_map(Value::from),
        ],
        0..5,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn arb_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._:-]{0,20}"
}

fn arb_ts() -> impl Strategy<Value = Timestamp> {
    (946_684_800_000_000i64..1_795_255_000_000_000).prop_map(Timestamp::from_micros)
}

fn arb_answer() -> impl Strategy<Value = CommandAnswer> {
    (
        prop_oneof![
            Just(CommandStatus::Ok),
            Just(CommandStatus::Error),
            Just(CommandStatus::Rejected)
        ],
        prop::option::of(arb_object()),
        prop::option::of("\\PC{0,40}"),
    )
        .prop_map(|(status, result, error)| CommandAnswer {
            status,
            result,
            error,
        })
}

fn arb_message() -> impl Strategy<Value = DeviceMessage> {
    (
        prop::option::of(any::<u64>()),
        prop::collection::vec(
            (
                arb_name(),
                -1e12f64..1e12,
                arb_ts(),
                prop::option::of(arb_name()),
            ),
            1..6,
        ),
    )
        .prop_map(|(id, rs)| DeviceMessage {
            id,
            readings: rs
                .into_iter()
                .map(|(sensor, v, ts, device)| DeviceReading {
                    device: device.map(|d| DeviceName::parse(&d).unwrap()),
                    reading: Reading {
                        sensor: SensorName::parse(&sensor).unwrap(),
                        value: DomainValue::Number(v),
                        ts,
                        unit: None,
                    },
                })
                .collect(),
        })
}

fn arb_device_frame() -> impl Strategy<Value = DeviceFrame> {
    prop_oneof![
        arb_message().prop_map(DeviceFrame::Message),
        arb_id().prop_map(DeviceFrame::CommandAck),
        (arb_id(), arb_answer()).prop_map(|(id, answer)| DeviceFrame::CommandResult { id, answer }),
        (prop::option::of(arb_name()), any::<u64>(), arb_object()).prop_map(
            |(device, version, document)| DeviceFrame::ConfigReported {
                device: device.map(|d| DeviceName::parse(&d).unwrap()),
                doc: ConfigDocument { version, document },
            }
        ),
    ]
}

fn arb_hub_frame() -> impl Strategy<Value = HubFrame> {
    prop_oneof![
        (prop::option::of(any::<u64>()), 0usize..1000)
            .prop_map(|(ack, stored)| HubFrame::Reply(Reply::Ack { ack, stored })),
        (
            prop::option::of(any::<u64>()),
            prop::sample::select(ErrorCode::ALL.to_vec()),
            "\\PC{0,40}"
        )
            .prop_map(|(nack, error, detail)| HubFrame::Reply(Reply::Nack {
                nack,
                error,
                detail
            })),
        (
            arb_id(),
            prop::option::of(arb_name()),
            arb_name(),
            arb_object(),
            arb_ts()
        )
            .prop_map(|(id, device, name, params, expires)| {
                HubFrame::Command(DeviceCommand {
                    id,
                    device: device.map(|d| DeviceName::parse(&d).unwrap()),
                    name: SensorName::parse(&name).unwrap(),
                    params,
                    expires,
                })
            }),
        arb_id().prop_map(HubFrame::ResultStored),
        (prop::option::of(arb_name()), any::<u64>(), arb_object()).prop_map(
            |(device, version, document)| HubFrame::Config {
                device: device.map(|d| DeviceName::parse(&d).unwrap()),
                doc: ConfigDocument { version, document },
            }
        ),
        any::<u64>().prop_map(HubFrame::ConfigStored),
    ]
}

proptest! {
    #[test]
    fn device_frames_round_trip(f in arb_device_frame()) {
        prop_assert_eq!(DeviceFrame::parse(&f.to_json(), &limits()).unwrap(), f);
    }

    #[test]
    fn hub_frames_round_trip(f in arb_hub_frame()) {
        prop_assert_eq!(HubFrame::parse(&f.to_json()).unwrap(), f);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = DeviceFrame::parse(&s, &limits());
        let _ = HubFrame::parse(&s);
    }
}

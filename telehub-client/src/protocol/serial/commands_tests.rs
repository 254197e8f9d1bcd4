//! Command lines: each reads back as it was written, checksums and shapes are checked,
//! and arbitrary input never panics.

use super::*;
use proptest::prelude::*;

fn id(s: &str) -> CommandId {
    CommandId::parse(s).unwrap()
}

#[test]
fn a_command_line_is_written_as_the_contract_says_and_reads_back() {
    let c = DeviceCommand {
        id: id("c_01"),
        device: Some(DeviceName::parse("pump-3").unwrap()),
        name: CommandName::parse("set_interval").unwrap(),
        params: serde_json::from_str(r#"{"seconds": 10, "note": "é"}"#).unwrap(),
        expires: crate::domain::Timestamp::now(),
    };
    let line = CommandLine::of(&c);
    let text = line.format();
    assert!(
        text.starts_with(r#"!cmd c_01 set_interval device=pump-3 {"note":"\u00e9","seconds":10}*"#),
        "{text}"
    );
    assert_eq!(CommandLine::parse(text.as_bytes()).unwrap(), line);
    let own = CommandLine::of(&DeviceCommand { device: None, ..c });
    assert!(
        own.format().starts_with("!cmd c_01 set_interval {"),
        "{}",
        own.format()
    );
}

#[test]
fn answers_read_with_or_without_a_result_and_checksums_are_checked() {
    let ack = AnswerLine::parse(b"!ack c_01*00\r\n", true);
    assert!(matches!(ack, Err(LineError::BadChecksum { .. })), "{ack:?}");
    let good = AnswerLine::Ack(id("c_01")).format();
    assert_eq!(
        AnswerLine::parse(format!("{good}\r\n").as_bytes(), true).unwrap(),
        AnswerLine::Ack(id("c_01"))
    );
    assert_eq!(
        AnswerLine::parse(b"!ack c_01", true),
        Err(LineError::MissingChecksum)
    );
    let res = AnswerLine::parse(br#"!res c_01 ok {"seconds":10}"#, false).unwrap();
    let AnswerLine::Result { answer, .. } = &res else {
        panic!("{res:?}")
    };
    assert_eq!(answer.status, CommandStatus::Ok);
    assert_eq!(answer.result.as_ref().unwrap()["seconds"], 10);
    let bare = AnswerLine::parse(b"!res c_01 rejected", false).unwrap();
    assert!(matches!(
        bare,
        AnswerLine::Result {
            answer: CommandAnswer { result: None, .. },
            ..
        }
    ));
    for (bad, want) in [
        ("!res c_01 done", CommandLineError::Status("done".into())),
        ("!res c_01 ok [1]", CommandLineError::Json("result")),
        ("!nope c_01", CommandLineError::Shape),
        ("!res c_01", CommandLineError::Shape),
    ] {
        assert_eq!(
            AnswerLine::parse(bad.as_bytes(), false),
            Err(LineError::Command(want)),
            "{bad}"
        );
    }
    assert!(matches!(
        AnswerLine::parse(b"!ack c/1", false),
        Err(LineError::Command(CommandLineError::Id(_)))
    ));
}

pub(in crate::protocol::serial) fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    proptest::collection::btree_map("[a-z_]{1,8}", leaf, 0..5).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn answers_read_back_as_written(
        ack in proptest::bool::ANY,
        raw_id in "[A-Za-z0-9_-]{1,64}",
        status in 0..3u8,
        result in proptest::option::of(json_object()),
    ) {
        let id = id(&raw_id);
        let line = if ack {
            AnswerLine::Ack(id)
        } else {
            let status = [CommandStatus::Ok, CommandStatus::Error, CommandStatus::Rejected][status as usize];
            AnswerLine::Result { id, answer: CommandAnswer { status, result, error: None } }
        };
        let text = line.format();
        prop_assert!(text.bytes().all(|b| (b' '..=b'~').contains(&b)), "{}", text);
        prop_assert_eq!(AnswerLine::parse(text.as_bytes(), true).unwrap(), line);
    }

    #[test]
    fn command_lines_read_back_as_written(
        raw_id in "[A-Za-z0-9_-]{1,64}",
        name in "[A-Za-z0-9][A-Za-z0-9._:-]{0,20}",
        device in proptest::option::of("[a-z][a-z0-9-]{0,10}"),
        params in json_object(),
    ) {
        let line = CommandLine {
            id: id(&raw_id),
            name: CommandName::parse(&name).unwrap(),
            device: device.map(|d| DeviceName::parse(&d).unwrap()),
            params,
        };
        prop_assert_eq!(CommandLine::parse(line.format().as_bytes()).unwrap(), line);
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = AnswerLine::parse(&bytes, false);
        let _ = CommandLine::parse(&bytes);
        let mut line = b"!res c_1 ok ".to_vec();
        line.extend_from_slice(&bytes);
        let _ = AnswerLine::parse(&line, false);
    }
}

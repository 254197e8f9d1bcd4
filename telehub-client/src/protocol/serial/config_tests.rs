//! Configuration lines: each reads back as it was written, shapes and checksums are
//! checked, and arbitrary input never panics.

use super::super::commands::tests::json_object;
use super::*;
use proptest::prelude::*;

fn doc(version: u64, json: &str) -> ConfigDocument {
    ConfigDocument {
        version,
        document: serde_json::from_str(json).unwrap(),
    }
}

#[test]
fn config_lines_are_written_as_the_contract_says_and_read_back() {
    let line = ConfigLine {
        kind: ConfigKind::Desired,
        device: Some(DeviceName::parse("pump-3").unwrap()),
        doc: doc(4, r#"{"interval_s": 5, "note": "é"}"#),
    };
    let text = line.format();
    assert!(
        text.starts_with(r#"!cfg 4 device=pump-3 {"interval_s":5,"note":"\u00e9"}*"#),
        "{text}"
    );
    assert_eq!(ConfigLine::parse(text.as_bytes(), true).unwrap(), line);
    let ok = ConfigLine {
        kind: ConfigKind::Applied,
        device: None,
        doc: doc(4, r#"{"interval_s": 5}"#),
    };
    assert!(ok.format().starts_with(r#"!cfgok 4 {"interval_s":5}*"#));
    assert!(ConfigLine::is_one(ok.format().as_bytes()));
    assert!(!ConfigLine::is_one(b"!cmd c_1 reboot {}"));
}

#[test]
fn bad_config_lines_say_what_is_wrong() {
    let cases: [(&[u8], CommandLineError); 5] = [
        (b"!cfgok x {}", CommandLineError::Version("x".into())),
        (b"!cfgok 3", CommandLineError::ConfigShape),
        (b"!cfgok 3 []", CommandLineError::Json("configuration")),
        (
            b"!cfgok 3 device=-x {}",
            CommandLineError::Device(String::new()),
        ),
        (b"!cfgx 3 {}", CommandLineError::ConfigShape),
    ];
    for (bad, want) in cases {
        match (ConfigLine::parse(bad, false), want) {
            (Err(LineError::Command(CommandLineError::Device(_))), CommandLineError::Device(_)) => {
            }
            (got, want) => assert_eq!(got, Err(LineError::Command(want)), "{bad:?}"),
        }
    }
    assert!(matches!(
        ConfigLine::parse(b"!cfgok 3 {}*00", true),
        Err(LineError::BadChecksum { .. })
    ));
    assert!(matches!(
        ConfigLine::parse(b"!cfgok 3 {}", true),
        Err(LineError::MissingChecksum)
    ));
}

proptest! {
    #[test]
    fn config_lines_read_back_as_written(
        applied in proptest::bool::ANY,
        version in any::<u64>(),
        device in proptest::option::of("[a-z][a-z0-9-]{0,10}"),
        document in json_object(),
    ) {
        let kind = if applied { ConfigKind::Applied } else { ConfigKind::Desired };
        let line = ConfigLine {
            kind,
            device: device.map(|d: String| DeviceName::parse(&d).unwrap()),
            doc: ConfigDocument { version, document },
        };
        let text = line.format();
        prop_assert!(text.bytes().all(|b| (b' '..=b'~').contains(&b)), "{}", text);
        prop_assert_eq!(ConfigLine::parse(text.as_bytes(), true).unwrap(), line);
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ConfigLine::parse(&bytes, false);
        let mut line = b"!cfgok 1 ".to_vec();
        line.extend_from_slice(&bytes);
        let _ = ConfigLine::parse(&line, false);
    }
}

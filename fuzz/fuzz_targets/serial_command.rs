//! Fuzzes the serial command and configuration lines (docs/commands.md,
//! docs/device-config.md): any bytes give a typed line or an error, never a panic; a line
//! accepted and written back reads back the same, as printable ASCII.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telehub_fuzz::protocol::serial::commands::{AnswerLine, CommandLine};
use telehub_fuzz::protocol::serial::config::ConfigLine;

fn printable(text: &str) -> bool {
    text.bytes().all(|b| (b' '..=b'~').contains(&b))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = AnswerLine::parse(data, false) {
        let text = line.format();
        assert!(printable(&text));
        assert_eq!(AnswerLine::parse(text.as_bytes(), true).unwrap(), line);
    }
    if let Ok(line) = CommandLine::parse(data) {
        assert_eq!(CommandLine::parse(line.format().as_bytes()).unwrap(), line);
    }
    if let Ok(line) = ConfigLine::parse(data, false) {
        let text = line.format();
        assert!(printable(&text));
        assert_eq!(ConfigLine::parse(text.as_bytes(), true).unwrap(), line);
    }
});

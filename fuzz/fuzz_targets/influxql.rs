//! Fuzzes the InfluxQL parser (`/query`, CONTRACT §15): any text gives statements or one
//! error pointing inside the text (line and char counted from 1), never a panic or a
//! stack overflow; a statement list is never empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telehub_fuzz::protocol::influxql::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(statements) => assert!(!statements.is_empty()),
        Err(e) => {
            assert!(e.line >= 1 && e.char >= 1);
            assert!(e.line <= text.matches('\n').count() + 1);
        }
    }
});

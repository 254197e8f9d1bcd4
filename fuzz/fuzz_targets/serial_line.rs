//! Fuzzes the serial line parser (protocol.md §6): any bytes give a line or a typed error, never a
//! panic; an accepted line has at least one reading and only valid values
//! (numbers finite).
#![no_main]

use libfuzzer_sys::fuzz_target;
use telehub_fuzz::domain::Value;
use telehub_fuzz::protocol::serial::parse_line;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = parse_line(data) {
        assert!(!line.readings.is_empty());
        for r in &line.readings {
            if let Value::Number(v) = r.reading.value {
                assert!(v.is_finite());
            }
        }
    }
});

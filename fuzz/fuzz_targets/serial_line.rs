//! Fuzzes the serial line parser (§6): any bytes give a line or a typed error, never a
//! panic; an accepted line has at least one reading and only finite values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telehub_fuzz::protocol::serial::parse_line;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = parse_line(data) {
        assert!(!line.readings.is_empty());
        assert!(line.readings.iter().all(|r| r.reading.value.is_finite()));
    }
});

//! Fuzzes the InfluxDB line-protocol reader (protocol.md §5): any body gives readings or a refusal
//! naming a line, never a panic, and accepted readings are valid and within the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use telehub_fuzz::domain::Timestamp;
use telehub_fuzz::protocol::ingest::ParseLimits;
use telehub_fuzz::protocol::line::{Precision, parse_body};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = ParseLimits {
        max_readings: 1000,
        max_clock_skew: Duration::from_secs(300),
        now: Timestamp::from_micros(1_795_255_200_000_000),
    };
    match parse_body(text, Precision::Nanoseconds, &limits) {
        Ok(readings) => {
            assert!(readings.len() <= 1000);
            for r in &readings {
                assert!(r.reading.ts <= limits.now.saturating_add(limits.max_clock_skew));
            }
        }
        Err(e) => assert!(e.line >= 1),
    }
});

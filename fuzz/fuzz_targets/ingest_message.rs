//! Fuzzes the device-message parser (protocol.md §2 objects and SenML packs): any bytes must give a
//! message or a refusal, never a panic, and an accepted message must hold valid readings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use telehub_fuzz::domain::{Timestamp, Value};
use telehub_fuzz::protocol::ingest::{ParseLimits, parse_message};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = ParseLimits {
        max_readings: 1000,
        max_clock_skew: Duration::from_secs(300),
        now: Timestamp::from_micros(1_795_255_200_000_000),
    };
    if let Ok(m) = parse_message(text, &limits) {
        assert!(!m.readings.is_empty() && m.readings.len() <= 1000);
        for r in &m.readings {
            if let Value::Number(v) = r.reading.value {
                assert!(v.is_finite());
            }
            assert!(r.reading.ts <= limits.now.saturating_add(limits.max_clock_skew));
        }
    }
});

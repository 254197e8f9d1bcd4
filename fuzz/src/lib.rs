//! The parsers under fuzzing, compiled from the hub's own source files.
//!
//! `domain` and `protocol` live in `telehub-client` and depend only on serde, chrono and
//! friends, so they are built here on their own instead of pulling the whole client (tokio,
//! reqwest, rustls) into every sanitizer build.

#[path = "../../telehub-client/src/domain/mod.rs"]
pub mod domain;
#[path = "../../telehub-client/src/protocol/mod.rs"]
pub mod protocol;

/// The limits every fuzzed parser is held to: 1,000 readings, 5 min of clock skew, and a
/// fixed "now" (2026-11-21T10:00:00Z) so runs repeat.
pub fn limits() -> protocol::ingest::ParseLimits {
    protocol::ingest::ParseLimits {
        max_readings: 1000,
        max_clock_skew: std::time::Duration::from_secs(300),
        now: domain::Timestamp::from_micros(1_795_255_200_000_000),
    }
}

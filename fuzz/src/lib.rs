//! The parsers under fuzzing, compiled from the hub's own source files.
//!
//! `domain` and `protocol` depend only on serde, chrono and friends, so they are built
//! here on their own instead of pulling the whole hub (database drivers, HTTP stack)
//! into every sanitizer build.

#[path = "../../src/domain/mod.rs"]
pub mod domain;
#[path = "../../src/protocol/mod.rs"]
pub mod protocol;

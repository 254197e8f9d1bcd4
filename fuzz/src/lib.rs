//! The parsers under fuzzing, compiled from the hub's own source files.
//!
//! `domain` and `protocol` live in `telehub-client` and depend only on serde, chrono and
//! friends, so they are built here on their own instead of pulling the whole client (tokio,
//! reqwest, rustls) into every sanitizer build.

#[path = "../../telehub-client/src/domain/mod.rs"]
pub mod domain;
#[path = "../../telehub-client/src/protocol/mod.rs"]
pub mod protocol;

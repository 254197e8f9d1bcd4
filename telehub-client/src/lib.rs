//! telehub-client: the device side of telehub, for firmware, gateways and simulators
//! written in Rust. No server, database or broker dependencies: a program that only
//! sends readings to a hub depends on this crate, not on `telehub`.
//!
//! A firmware author builds a [`client::DeviceClient`] from the hub's address and the
//! device's token, turns each sample into a [`protocol::ingest::DeviceReading`] (its
//! names and values checked by the [`domain`] parsers) and pushes it: the client buffers,
//! batches, resends after a reconnect and reports what the hub acked.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use telehub_client::client::{ClientConfig, DeviceClient};
//! use telehub_client::domain::{Reading, SensorName, Timestamp, Value};
//! use telehub_client::protocol::ingest::DeviceReading;
//!
//! let client = DeviceClient::start(ClientConfig::new("ws://hub.local:8080", "th_..."))?;
//! let reading = Reading {
//!     sensor: SensorName::parse("temperature")?,
//!     value: Value::Number(21.5),
//!     ts: Timestamp::now(),
//!     unit: None,
//! };
//! // `device: None`: the token's own device; a gateway names the device it forwards for.
//! client.push(DeviceReading { device: None, reading }).ok(); // never blocks; buffered until acked
//! let stats = client.shutdown(std::time::Duration::from_secs(5)).await;
//! println!("{} of {} acked", stats.acked, stats.generated);
//! # Ok(()) }
//! ```
//!
//! Layers, bottom up; a module imports only from its own layer or below, and never in a
//! circle (`tests/layering/main.rs` in the workspace root checks both):
//!
//! | layer | module | owns |
//! |---|---|---|
//! | 1 | [`domain`] | names, `DEVICE/SENSOR` patterns (live and alert grammars), units, timestamps, values, readings, what a commit stored, device status, alert events |
//! | 1 | [`backoff`] | exponential backoff with jitter, for every retry loop (here and in the hub) |
//! | 1 | [`shutdown`] | the process's stop signal (SIGINT, SIGTERM) |
//! | 2 | [`protocol`] | every wire message in and out: device ingest (protocol.md §2), every frame of a device's socket both ways (`frames`: messages, commands, configuration), command values (`commands`), live feed encoded and decoded (protocol.md §3), serial lines (protocol.md §6), hub addresses (protocol.md §2) |
//! | 2 | [`tls`] | PEM files, the device client's rustls config (webpki roots plus pinned certificates), [`tls::TlsError`] |
//! | 3 | [`client`] | the device side of ingest: a resilient client (buffer, resend, reconnect), and of commands (handler, dedupe, answers resent until stored) |
//! | 3 | [`sim`] | simulated sensor signals, for `firmware-sim` and `telehub serve --demo` |
//!
//! The hub (`telehub`) re-exports `domain`, `protocol`, `client` and `sim` under the same
//! names, so `telehub::domain::DeviceName` and `telehub_client::domain::DeviceName` are
//! one type.

pub mod backoff;
pub mod client;
pub mod domain;
pub mod protocol;
pub mod shutdown;
pub mod sim;
pub mod tls;

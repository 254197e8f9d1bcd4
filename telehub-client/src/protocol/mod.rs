//! Wire protocols: the typed messages behind every socket.
//!
//! - [`address`]: the hub's base address (protocol.md §2) as devices and gateways give it.
//! - [`commands`]: command ids, the command object a device gets, its answer, and the
//!   configuration documents (docs/commands.md, protocol.md §14).
//! - [`frames`]: every frame of a device's connection, both directions: one
//!   [`frames::DeviceFrame`] parsed once at the socket, one [`frames::HubFrame`] written by the hub.
//! - [`ingest`]: device → hub messages (protocol.md §2, incl. SenML) and the hub's ack/nack replies.
//! - [`line`]: the InfluxDB line protocol (protocol.md §5) as device readings.
//! - [`live`]: the dashboard feed (protocol.md §3): subscriptions in, frames out, and the
//!   decoder of those frames (`telehub tail`).
//! - [`influxql`]: the InfluxQL subset of `/query` (docs/grafana.md), typed statements.
//! - [`serial`]: the serial line format (protocol.md §6) read by `telehub bridge serial`.
//! - [`strict_json`]: JSON from devices, refusing an object that names a key twice.
//!
//! Transport code hands these modules raw text and gets typed values or a typed
//! error back; handlers never look at raw JSON.
//!
//! May use: `domain`.

pub mod address;
pub mod commands;
pub mod frames;
pub mod influxql;
pub mod ingest;
pub mod line;
pub mod live;
pub mod serial;
pub mod strict_json;

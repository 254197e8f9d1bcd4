//! Wire protocols: the typed messages behind every socket.
//!
//! - [`address`]: the hub's base address (protocol.md §2) as devices and gateways give it.
//! - [`ingest`]: device → hub messages (protocol.md §2, incl. SenML) and the hub's ack/nack replies.
//! - [`line`]: the InfluxDB line protocol (protocol.md §5) as device readings.
//! - [`live`]: the dashboard feed (protocol.md §3): subscriptions in, readings/status/lagged out.
//! - [`influxql`]: the InfluxQL subset of `/query` (CONTRACT §15), typed statements.
//! - [`serial`]: the serial line format (protocol.md §6) read by `telehub bridge serial`.
//!
//! Transport code hands these modules raw text and gets typed values or a typed
//! error back; handlers never look at raw JSON.
//!
//! May use: `domain`.

pub mod address;
pub mod influxql;
pub mod ingest;
pub mod line;
pub mod live;
pub mod serial;

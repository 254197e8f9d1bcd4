//! telehub: an IoT sensor telemetry hub.
//!
//! The path of a reading, module by module:
//! socket ([`server::ingest`]) → parse ([`protocol::ingest`] into [`domain`] types)
//! → authorise (gateway rules, [`auth`]) → storage writer ([`storage::writer`], group
//! commit into [`storage`]: SQLite or PostgreSQL) → ack → live fan-out ([`live`]) and
//! MQTT egress ([`mqtt`]). MQTT ingest takes the same checks ([`server::ingest::check_message`]) and writer.
//!
//! | module | owns |
//! |---|---|
//! | [`domain`] | names, units, timestamps, validated readings |
//! | [`protocol`] | wire messages: device ingest (§2), live feed (§3) |
//! | [`auth`] | tokens, hashing, principals |
//! | [`client`] | the device side of ingest: a resilient client (buffer, resend, reconnect) |
//! | [`config`] | layered, validated settings |
//! | [`storage`] | registry, series, readings; the writer task |
//! | [`server`] | listener, TLS, HTTP API, device sockets, sessions |
//! | [`live`] | dashboard fan-out and sockets |
//! | [`mqtt`] | broker connection: egress, ingest, cluster live stream |
//! | [`dashboard`] | the embedded web page |
//! | [`metrics`] | Prometheus registry |
//! | [`sim`] | simulated sensor signals, for `firmware-sim` and `serve --demo` |
//! | [`bridge`] | `telehub bridge serial`: serial lines (§6) forwarded to the hub as a gateway |
//! | [`cli`] | the `telehub` command line |

pub mod auth;
pub mod bridge;
pub mod cli;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod live;
pub mod metrics;
pub mod mqtt;
pub mod protocol;
pub mod server;
pub mod sim;
pub mod storage;

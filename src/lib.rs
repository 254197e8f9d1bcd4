//! telehub: an IoT sensor telemetry hub.
//!
//! The path of a reading, module by module: socket ([`server::ingest`], [`mqtt::ingest`])
//! → the ingest pipeline ([`ingest`]: parse with [`protocol::ingest`] into [`domain`]
//! types, authorise, rate-limit) → the storage writer ([`storage::writer`], group commit
//! into SQLite or PostgreSQL) → ack → the commit stream → live fan-out ([`live`], written
//! to dashboards by [`server::live`]) and MQTT egress ([`mqtt`]).
//!
//! Layers, bottom up; a module imports only from its own layer or below, and never in a
//! circle (`tests/layering.rs` checks both):
//!
//! | layer | module | owns |
//! |---|---|---|
//! | 1 | [`domain`] | names, units, timestamps, readings, what a commit stored, device status |
//! | 2 | [`protocol`] | every wire message in and out: device ingest (§2), live feed (§3), serial lines (§6), hub addresses (§8) |
//! | 2 | [`auth`] | tokens, hashing, principals |
//! | 2 | [`tls`] | PEM files and rustls configs for the server, the device client and the MQTT client |
//! | 2 | [`config`] | layered, validated settings, one file per section |
//! | 3 | [`storage`] | registry, series, readings, rollups; the writer task |
//! | 3 | [`metrics`] | the Prometheus registry |
//! | 3 | [`client`] | the device side of ingest: a resilient client (buffer, resend, reconnect) |
//! | 3 | [`sim`] | simulated sensor signals, for `firmware-sim` and `serve --demo` |
//! | 4 | [`ingest`] | the transport-independent pipeline: parse → authorise → rate-limit → submit → reply |
//! | 4 | [`live`] | the dashboard fan-out: one hub-wide history of committed readings, a cursor per client, no transport |
//! | 4 | [`sessions`] | open sockets, online devices, revocation |
//! | 4 | [`alerts`] | alert rules evaluated after commit and on presence; events, webhook outbox |
//! | 4 | [`commands`] | commands to devices (§13): creation, cancel, the dispatch state machine and its task |
//! | 5 | [`server`] | HTTP and WebSocket endpoints: device and live sockets, API, dashboard |
//! | 5 | [`mqtt`] | broker connection: egress, ingest, cluster live stream |
//! | 5 | [`bridge`] | `telehub bridge serial`: serial lines forwarded to the hub as a gateway |
//! | 6 | [`hub`] | assembles the parts; start-up and the shutdown order |
//! | 6 | [`cli`] | the `telehub` command line |

pub mod alerts;
pub mod auth;
pub mod bridge;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod domain;
pub mod hub;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod mqtt;
pub mod protocol;
pub mod server;
pub mod sessions;
pub mod sim;
pub mod storage;
pub mod tls;

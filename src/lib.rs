//! telehub: an IoT sensor telemetry hub.
//!
//! The path of a reading, module by module: socket ([`server::ingest`], [`mqtt::ingest`])
//! → the ingest pipeline ([`ingest`]: parse with [`protocol::ingest`] into [`domain`]
//! types, authorise, rate-limit) → the storage writer ([`storage::writer`], group commit
//! into SQLite or PostgreSQL) → ack → the commit stream → live fan-out ([`live`], written
//! to dashboards by [`server::live`]) and MQTT egress ([`mqtt`]).
//!
//! The device side lives in its own crate, [`telehub_client`] (`telehub-client/`, no
//! server or database dependencies), for firmware, gateways and `firmware-sim`; its
//! `domain`, `backoff`, `protocol`, `client` and `sim` are re-exported here under the same names, so
//! `crate::domain::…` means the same type on both sides. Its `tls` holds the device
//! client's config and the PEM readers the hub's [`tls`] builds on.
//!
//! Layers, bottom up; a module imports only from its own layer or below, and never in a
//! circle (`tests/layering/main.rs` checks both, in this crate and in `telehub-client`):
//!
//! | layer | module | owns |
//! |---|---|---|
//! | 1 | [`domain`] (telehub-client) | names, `DEVICE/SENSOR` patterns, units, timestamps, readings, what a commit stored, device status |
//! | 1 | [`backoff`] (telehub-client) | exponential backoff with jitter, for every retry loop |
//! | 2 | [`protocol`] (telehub-client) | every wire message in and out: device ingest (protocol.md §2), every frame of a device's socket both ways (`frames`: messages, commands, configuration), command values (`commands`), live feed encoded and decoded (protocol.md §3), serial lines (protocol.md §6), hub addresses (protocol.md §2) |
//! | 2 | [`auth`] | tokens, hashing, principals |
//! | 2 | [`tls`] | rustls configs for the hub's server and its MQTT client (the device client's: telehub-client) |
//! | 2 | [`config`] | layered, validated settings, one file per section |
//! | 3 | [`storage`] | registry, series, readings, rollups; the writer task |
//! | 3 | [`metrics`] | the Prometheus registry |
//! | 3 | [`client`] (telehub-client) | the device side of ingest: a resilient client (buffer, resend, reconnect), and of commands (handler, dedupe, answers resent until stored) |
//! | 3 | [`sim`] (telehub-client) | simulated sensor signals and what simulated devices do with commands, for `firmware-sim` and `serve --demo` |
//! | 4 | [`ingest`] | the transport-independent pipeline: parse → authorise → rate-limit → submit → reply |
//! | 4 | [`live`] | the dashboard fan-out: one hub-wide replay buffer of committed readings, a cursor per client, no transport |
//! | 4 | [`presence`] | who is online over any transport (a socket, or a reading within `[presence] timeout`) and the transport each last used |
//! | 4 | [`sessions`] | open sockets, revocation |
//! | 4 | [`alerts`] | alert rules evaluated after commit and on presence; events, webhook outbox |
//! | 4 | [`commands`] | commands to devices (docs/commands.md): creation, cancel, the dispatch state machine and its task |
//! | 4 | [`devconfig`] | desired device configuration (docs/device-config.md): versions set and reported, their delivery to connected devices |
//! | 4 | [`export`] | fleet export: every series of the devices a pattern matches, page by page as CSV or NDJSON (`GET /v1/export`, `telehub export`) |
//! | 4 | [`influxql`] | InfluxQL statements (`/query`, docs/grafana.md) answered from storage through the history planner |
//! | 5 | [`server`] | HTTP and WebSocket endpoints: device and live sockets, API, dashboard |
//! | 5 | [`mqtt`] | broker connection: egress, ingest, cluster live stream |
//! | 5 | [`bridge`] | `telehub bridge serial`: serial lines forwarded to the hub as a gateway |
//! | 6 | [`hub`] | assembles the parts; start-up and the shutdown order |
//! | 6 | [`cli`] | the `telehub` command line |

pub use telehub_client::{backoff, client, domain, protocol, sim};

pub mod alerts;
pub mod auth;
pub mod bridge;
pub mod cli;
pub mod commands;
pub mod config;
pub mod devconfig;
pub mod export;
pub mod hub;
pub mod influxql;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod mqtt;
pub mod presence;
pub mod server;
pub mod sessions;
pub mod storage;
pub mod tls;

//! Integration tests: the real hub, on port 0, with a fresh database per test,
//! driven through its real interfaces (WebSocket, HTTP, MQTT, the CLI binary).
//! Shared helpers live in `tests/helpers/` (also used by the `serial` and `rss`
//! binaries); `procs` runs the hub and `firmware-sim` as real processes.

#[path = "../helpers/mod.rs"]
mod helpers;
mod procs;

mod alert_acks;
mod alerts;
mod backup;
mod checkpoint;
mod cli;
mod client;
mod commands;
mod commands_devices;
mod commands_http;
mod commands_ws;
mod compression;
mod compression_retention;
mod conflicts;
mod crash;
mod dashboard;
mod demo;
mod device_config;
mod export;
mod faults;
mod fleet;
mod history;
mod http;
mod http_ingest;
mod identity;
mod influx;
mod influxql;
mod influxql_clients;
mod ingest;
mod labels;
mod latest;
mod limits;
mod live;
mod live_resume;
mod logs;
mod mqtt;
mod notifications;
mod paging;
mod partitions;
mod pg_tls;
mod presence;
mod query_output;
mod retention;
mod shutdown;
mod startup;
mod tail;
mod tail_errors;
mod tls;
mod upgrade;
mod values;

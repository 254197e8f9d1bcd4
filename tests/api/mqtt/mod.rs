//! MQTT (issue 6) against a real broker: egress, ingest, a two-hub cluster, broker
//! restarts, TLS with credentials. `TELEHUB_TEST_MQTT` names the shared broker; tests
//! that stop a broker or change its configuration run a private mosquitto instead.

pub mod broker;

mod cluster;
mod commands;
mod config;
mod egress;
mod ingest;
mod outage;

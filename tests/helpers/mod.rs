//! Helpers shared by every test binary (`api`, `serial`, `rss`): the real hub on port 0
//! with a fresh database, real sockets to it, SQL behind its back, one poller, and the
//! external services the tests need (PostgreSQL, MQTT), whose absence is reported.
//!
//! - [`app`]: `spawn_app`, [`TestApp`] (devices, tokens, sockets, HTTP, stored rows).
//! - [`db`]: [`Backend`], [`TestDb`] (a fresh database, dropped with it), `both_backends!`.
//! - [`sql`]: SQL on either backend (`sql_rows`, `sql_exec`, `pg_admin`, row counts).
//! - [`storage`]: fixtures that write through the hub's storage writer and read it back.
//! - [`ws`]: WebSocket clients for devices and dashboards: frames, statuses, close codes.
//! - [`memory`]: [`rss_kib`], this process's resident memory.
//! - [`webhook`]: [`Receiver`], a real HTTP server recording webhook POSTs.
//! - [`smtp`]: [`SmtpSink`], a real SMTP server (aiosmtpd) recording alert emails.
//! - [`poll`]: [`eventually`], the one poller, and [`WAIT`].
//! - [`ca`]: [`Ca`], a throwaway CA issuing server certificates for TLS tests.
//! - [`pg_cluster`]: [`TestCluster`], a private PostgreSQL server a test may stop or give TLS.
//! - [`services`]: `pg_server`, `mqtt_server`, [`skipped`], `need_pg!`, `need_mqtt!`.

#![allow(dead_code, unused_imports)]

mod app;
mod ca;
mod db;
mod memory;
mod pg_cluster;
mod poll;
mod services;
mod smtp;
mod sql;
mod storage;
mod webhook;
mod ws;

pub use app::*;
pub use ca::*;
pub use db::*;
pub use memory::*;
pub use pg_cluster::*;
pub use poll::*;
pub use services::*;
pub use smtp::*;
pub use sql::*;
pub use storage::*;
pub use webhook::*;
pub use ws::*;

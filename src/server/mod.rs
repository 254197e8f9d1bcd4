//! The HTTP and WebSocket transport: the router, its shared state and every endpoint.
//!
//! - [`listener`]: accepts TCP (and TLS), caps connections, serves HTTP/1.1 with upgrades;
//!   `read_ahead`: the read buffer under each connection, held only during a burst.
//! - [`authn`]: tokens on requests; [`limits`]: per-IP connections and handshake rate.
//! - [`ingest`]: device sockets (`GET /v1/ingest`); `http_ingest`: the same over HTTP
//!   (`POST /v1/ingest`); `influx`: InfluxDB's write endpoints (line protocol);
//!   `influxql`: InfluxDB 1.x's read endpoint, `/query` (meaning in [`crate::influxql`]);
//!   [`live`]: dashboard sockets (`/v1/live`).
//! - [`api`]: history and registry over HTTP (`readings_params`: `/v1/readings`'s query
//!   string, typed); `alerts`: alerts, events and rules (protocol.md §9); `alert_ops`:
//!   acknowledging and silencing them (contract §16); `commands`:
//!   commands to devices (docs/commands.md), `device_commands` their HTTP long-poll for
//!   devices; `device_config`: desired configurations, for operators and devices;
//!   [`dashboard`]: the embedded web page.
//! - [`error`]: every HTTP error mapped once to a typed JSON body, the framework's own
//!   (404, 405, 413, refused extractors) included; [`ws`]: socket settings, pings
//!   and close codes shared by both socket kinds; [`heartbeat`]: one ping/idle wheel per
//!   socket kind; [`refusals`]: refused
//!   handshakes and HTTP ingest requests in the log, sampled; `replies`: a device socket's replies in flight.
//!
//! May use every layer below the transports (`ingest`, `live`, `sessions`, `storage`,
//! ...) and `mqtt` (broker status and cluster presence for `/readyz` and `/v1/devices`).
//! The hub is assembled, started and stopped by `crate::hub`.

mod alert_ops;
mod alerts;
pub mod api;
pub mod authn;
mod body;
mod commands;
mod dashboard;
mod device_commands;
mod device_config;
mod devices;
mod error;
mod fleet;
pub mod heartbeat;
mod http_ingest;
mod influx;
mod influxql;
pub mod ingest;
pub mod limits;
pub mod listener;
pub mod live;
mod origin;
mod paging;
mod read_ahead;
mod readings_params;
pub mod refusals;
mod replies;
mod series_read;
pub mod ws;

pub use error::ApiError;

use crate::config::Settings;
use crate::ingest::Pipeline;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::storage::Store;
use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every request handler and socket task shares.
pub struct HubState {
    pub settings: Settings,
    pub store: Store,
    /// The ingest pipeline every transport shares.
    pub ingest: Arc<Pipeline>,
    pub metrics: Arc<Metrics>,
    pub sessions: Arc<Sessions>,
    pub live: LiveHub,
    pub limits: limits::Limits,
    /// Refused requests, sampled for the log.
    pub refusals: refusals::RefusalLog,
    /// MQTT broker status and other hubs' devices; `None` without `[mqtt]`.
    pub mqtt: Option<crate::mqtt::MqttHandle>,
    /// The alert engine, told when rules change over HTTP.
    pub alerts: crate::alerts::AlertsHandle,
    /// The command dispatcher (docs/commands.md).
    pub commands: crate::commands::CommandsHandle,
    /// Desired configurations and their delivery (protocol.md §14).
    pub devconfig: crate::devconfig::ConfigHandle,
    /// Cancelled when the hub begins to shut down.
    pub shutdown: CancellationToken,
    /// Every socket task; shutdown waits for them.
    pub tasks: TaskTracker,
    /// The heartbeat of device sockets (`[ingest]`'s ping interval).
    pub ingest_beat: heartbeat::Wheel,
    /// The heartbeat of dashboard sockets (`[live]`'s ping interval).
    pub live_beat: heartbeat::Wheel,
}

/// Every route of the hub.
pub fn router(state: Arc<HubState>) -> Router {
    Router::new()
        .route(
            "/v1/ingest",
            axum::routing::get(ingest::upgrade).post(http_ingest::post),
        )
        .route("/v1/live", axum::routing::get(live::upgrade))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refusals::log_refused,
        ))
        .route("/api/v2/write", axum::routing::post(influx::write))
        .route("/write", axum::routing::post(influx::write))
        .route("/ping", axum::routing::get(influx::ping).head(influx::ping))
        .route(
            "/query",
            axum::routing::get(influxql::query).post(influxql::query),
        )
        .merge(api::routes())
        .merge(devices::routes())
        .merge(fleet::routes())
        .merge(alerts::routes())
        .merge(alert_ops::routes())
        .merge(commands::routes())
        .merge(device_config::routes())
        .merge(dashboard::routes())
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}

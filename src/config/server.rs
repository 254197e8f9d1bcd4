//! `[server]`, `[tls]`, `[http]` and `[limits]`: listening, TLS files, HTTP query caps
//! and abuse limits; and [`SocketSettings`], what one WebSocket is sized by.

use super::SettingError;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// `HOST:PORT` with an IP address or a host name (the first address it resolves to).
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// Extra origins allowed on `/v1/live` besides the hub's own.
    pub allowed_origins: Vec<String>,
    /// Open connections (all kinds) at most; more are refused with 503.
    pub max_connections: usize,
    /// A TLS + HTTP request or WebSocket handshake not complete within this is dropped.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// How long shutdown waits for sockets and the storage writer to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// `limit` on `/v1/readings` at most (and its default).
    pub max_points: usize,
    /// Buckets a query may produce at most.
    pub max_buckets: usize,
    /// A line-protocol write's body at most, after gzip decompression (bytes); over: 413.
    pub max_write_bytes: usize,
    /// Readings (fields) in one line-protocol write at most; over: 400.
    pub max_write_readings: usize,
    /// `/query`: series (measurement × device) one statement may answer; over: a
    /// statement error.
    pub max_query_series: usize,
    /// `/query`: values (rows × columns, all series together) one statement may answer,
    /// empty buckets filled included; over: a statement error.
    pub max_query_points: usize,
    /// `/query`: the query text at most (bytes); over: 413.
    pub max_query_bytes: usize,
    /// `/v1/export`: pages (of up to 10,000 readings each) read ahead of a slow client at
    /// most; the export waits for the client beyond it, so memory stays constant.
    pub export_pages_ahead: usize,
}

/// One WebSocket's buffers, frame bound and heartbeat: device sockets take them from
/// `[ingest]` ([`super::IngestSettings::socket`]), dashboard sockets from `[live]`
/// ([`super::LiveSettings::socket`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketSettings {
    pub read_buffer_bytes: usize,
    pub write_buffer_bytes: usize,
    /// Incoming frames (and messages) larger than this close the socket (1009).
    pub max_frame_bytes: usize,
    pub ping_interval: Duration,
    /// Nothing heard for this long: the peer is taken as gone.
    pub idle_timeout: Duration,
}

/// The dashboard's page of `/v1/devices` (`dashboard/hub.js` `PAGE_SIZE`): the least
/// `limits.max_page_size` may be.
pub const MIN_PAGE_SIZE: usize = 1_000;

/// Abuse limits (see SECURITY.md). Rates are token buckets: `rate` per second, `burst` at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Open connections from one IP address at most; over it: 503 before any upgrade.
    pub max_connections_per_ip: usize,
    /// WebSocket handshakes accepted per second (all clients); over it: 503 + Retry-After.
    pub handshakes_per_second: u32,
    pub handshake_burst: u32,
    /// Readings accepted per second per device; over it: `rate_limited` nacks.
    pub device_readings_per_second: u32,
    /// Must be at least `ingest.max_readings_per_message`.
    pub device_burst: u32,
    /// Consecutive `rate_limited` replies after which the socket is closed with 1008.
    pub abuse_close_after: u32,
    /// Series (sensors) one device may have at most; a message that would create more is
    /// refused whole (`invalid_reading`, naming the limit). At least 1.
    pub max_series_per_device: usize,
    /// The most entries one page of a list endpoint answers (`?limit=N`, docs/http-api.md
    /// "Pages"); alert events without `limit` answer at most this many. At least
    /// [`MIN_PAGE_SIZE`]: the dashboard's page.
    pub max_page_size: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_connections_per_ip: 5_000,
            // A 2-core hub admitted a 10,000-device storm with no limit in 3.7–6.2 s, the
            // devices' own backoff the floor (BENCHMARKS.md "Performance round 3"): the
            // burst takes such a fleet at once, the rate refills it within 2 s.
            handshakes_per_second: 5_000,
            handshake_burst: 10_000,
            device_readings_per_second: 2_000,
            device_burst: 10_000,
            abuse_close_after: 100,
            max_series_per_device: 1_000,
            max_page_size: 10_000,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid"),
            allowed_origins: Vec::new(),
            max_connections: 20_000,
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_points: 10_000,
            max_buckets: 100_000,
            max_write_bytes: 16 * 1024 * 1024,
            max_write_readings: 100_000,
            max_query_series: 1_000,
            max_query_points: 1_000_000,
            max_query_bytes: 64 * 1024,
            export_pages_ahead: 2,
        }
    }
}

/// An IP address and port, or a host name and port resolved to its first address
/// (`localhost:8080`). The error says what was expected.
pub fn resolve_listen(listen: &str) -> Result<SocketAddr, SettingError> {
    use std::net::ToSocketAddrs;
    listen
        .to_socket_addrs()
        .map_err(SettingError::Listen)?
        .next()
        .ok_or(SettingError::ListenUnresolved)
}

fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    resolve_listen(&s).map_err(|why| serde::de::Error::custom(format!("\"{s}\": {why}")))
}

impl ServerSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.max_connections == 0 {
            return Err(SettingError::Rule("server.max_connections must be ≥ 1"));
        }
        Ok(())
    }
}

impl HttpSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.max_points == 0
            || self.max_buckets == 0
            || self.max_write_bytes == 0
            || self.max_write_readings == 0
            || self.max_query_series == 0
            || self.max_query_points == 0
            || self.max_query_bytes == 0
            || self.export_pages_ahead == 0
        {
            return Err(SettingError::Rule(
                "http.max_points, max_buckets, max_write_bytes, max_write_readings, max_query_series, max_query_points, max_query_bytes and export_pages_ahead must be ≥ 1",
            ));
        }
        Ok(())
    }
}

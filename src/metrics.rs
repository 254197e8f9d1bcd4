//! Prometheus metrics: one registry per hub (no globals, so several hubs can run in
//! one test process), rendered in the text format at `/metrics`.
//!
//! May use: `protocol` (the refusal codes it counts by).

use crate::protocol::ingest::ErrorCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

type Labels = Vec<(&'static str, &'static str)>;

/// Every metric the hub exports.
pub struct Metrics {
    registry: Registry,
    pub connections: Family<Labels, Gauge>,
    pub readings_ingested: Counter,
    pub acks: Counter,
    pub nacks: Family<Labels, Counter>,
    pub commit_batch_rows: Histogram,
    pub commit_seconds: Histogram,
    pub commit_failures: Counter,
    pub write_queue_depth: Gauge,
    pub live_delivered: Counter,
    pub live_dropped: Counter,
    /// The live history (protocol.md §3): readings held, bytes held, oldest offset held.
    pub live_history_readings: Gauge,
    pub live_history_bytes: Gauge,
    pub live_history_oldest_offset: Gauge,
    /// Dashboard clients that had not read everything appended before the last append.
    pub live_clients_behind: Gauge,
    pub live_resumes_ok: Counter,
    pub live_resumes_failed: Counter,
    pub connections_refused: Family<Labels, Counter>,
    pub retention_deleted: Family<Labels, Counter>,
    pub retention_passes: Counter,
    pub compactor: CompactorMetrics,
    pub mqtt: MqttMetrics,
    pub alerts: AlertMetrics,
    pub commands: CommandMetrics,
}

/// Compactor metrics (`telehub_compactor_*`, docs/storage.md "Compressed blocks").
#[derive(Default)]
pub struct CompactorMetrics {
    /// Readings moved from rows into compressed blocks.
    pub readings: Counter,
    /// Blocks written.
    pub blocks: Counter,
    /// Bytes of the blocks written (their compressed data).
    pub bytes: Counter,
    /// Compaction passes completed.
    pub passes: Counter,
    /// How far the oldest reading still a row is past the compressible boundary (s), at the end of a pass.
    pub lag_seconds: Gauge,
}

/// Command metrics (`telehub_commands_*`, docs/commands.md).
pub struct CommandMetrics {
    /// State changes stored, by the state entered (`queued` counts creations).
    pub total: Family<Labels, Counter>,
    /// Open commands the dispatcher holds (queued, sent or received).
    pub open: Gauge,
    /// From creation to the first send.
    pub send_seconds: Histogram,
}

impl Default for CommandMetrics {
    fn default() -> Self {
        Self {
            total: Family::default(),
            open: Gauge::default(),
            send_seconds: Histogram::new(exponential_buckets(0.0005, 2.5, 14)),
        }
    }
}

impl CommandMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "commands",
            "Command state changes stored, by the state entered",
            self.total.clone(),
        );
        r.register(
            "commands_queue_depth",
            "Open commands (queued, sent or received) held by the dispatcher",
            self.open.clone(),
        );
        r.register(
            "commands_send_seconds",
            "From a command's creation to its first send",
            self.send_seconds.clone(),
        );
    }

    /// A change to `state` was stored.
    pub fn changed(&self, state: &'static str) {
        self.total.get_or_create(&vec![("state", state)]).inc();
    }

    pub fn send_latency(&self, micros: i64) {
        self.send_seconds.observe(micros.max(0) as f64 / 1e6);
    }
}

/// Alert metrics (`telehub_alert_*`).
#[derive(Default)]
pub struct AlertMetrics {
    /// Rules the engine has loaded.
    pub rules: Gauge,
    /// Series not ok, by rule and state (`pending`, `firing`).
    pub states: Family<Vec<(&'static str, String)>, Gauge>,
    /// Events stored (firing, repeats and resolved).
    pub events: Counter,
    /// Notifications delivered (webhook 2xx, email accepted).
    pub sent: Counter,
    /// Notification attempts that failed (each attempt; retried until `retry_for`).
    pub failed: Counter,
    /// Notifications given up after `retry_for`.
    pub expired: Counter,
    /// Notifications not yet delivered (the outbox).
    pub pending: Gauge,
}

impl AlertMetrics {
    fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("alert");
        r.register(
            "rules",
            "Alert rules the engine has loaded",
            self.rules.clone(),
        );
        r.register(
            "states",
            "Alert series not ok, by rule and state (pending, firing)",
            self.states.clone(),
        );
        r.register(
            "events",
            "Alert events stored (firing, repeats, resolved)",
            self.events.clone(),
        );
        r.register(
            "notifications_sent",
            "Notifications delivered (webhook POSTs answered 2xx, emails accepted by the SMTP server)",
            self.sent.clone(),
        );
        r.register(
            "notifications_failed",
            "Notification attempts that failed (webhook POSTs and emails, each attempt)",
            self.failed.clone(),
        );
        r.register(
            "notifications_expired",
            "Notifications (webhook and email) given up after retry_for",
            self.expired.clone(),
        );
        r.register(
            "notifications_pending",
            "Notifications (webhook and email) not yet delivered",
            self.pending.clone(),
        );
    }
}

/// MQTT egress, ingest and cluster metrics (`telehub_mqtt_*`); zero without `[mqtt]`.
#[derive(Default)]
pub struct MqttMetrics {
    /// Readings published to `publish_topic`.
    pub published: Counter,
    /// Messages dropped because a queue was full, by stream (`egress`, `cluster_out`, `cluster_in`).
    pub publish_dropped: Family<Labels, Counter>,
    /// Readings stored from MQTT ingest messages.
    pub ingested: Counter,
    /// Ingest messages refused, by reason (a protocol.md §2 error code, `unknown_device`, ...).
    pub refused: Family<Labels, Counter>,
    /// 1 while connected to the broker.
    pub connected: Gauge,
    /// Connection attempts that failed or connections that dropped.
    pub disconnects: Counter,
    /// Readings received from other hubs and shown on this hub's live feed.
    pub cluster_readings: Counter,
    /// Cluster messages ignored because they repeated one already handled.
    pub cluster_duplicates: Counter,
    /// 1 while the commands connection (`commands_topic`) is up.
    pub commands_connected: Gauge,
    /// Command frames on `command_results_topic` not taken, by reason.
    pub command_frames_refused: Family<Labels, Counter>,
}

impl MqttMetrics {
    fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("mqtt");
        r.register(
            "published",
            "Readings published to the MQTT publish_topic",
            self.published.clone(),
        );
        r.register("publish_dropped", "MQTT messages dropped because a queue was full, by stream (egress, cluster_out, cluster_in)", self.publish_dropped.clone());
        r.register(
            "ingested",
            "Readings stored from MQTT ingest messages",
            self.ingested.clone(),
        );
        r.register(
            "refused",
            "MQTT ingest messages refused, by reason",
            self.refused.clone(),
        );
        r.register(
            "connected",
            "1 while connected to the MQTT broker",
            self.connected.clone(),
        );
        r.register(
            "disconnects",
            "Failed connection attempts and dropped connections to the broker",
            self.disconnects.clone(),
        );
        r.register(
            "cluster_readings",
            "Readings from other hubs shown on this hub's live feed",
            self.cluster_readings.clone(),
        );
        r.register(
            "cluster_duplicates",
            "Repeated cluster messages ignored",
            self.cluster_duplicates.clone(),
        );
        r.register(
            "commands_connected",
            "1 while the MQTT commands connection is up",
            self.commands_connected.clone(),
        );
        r.register(
            "command_frames_refused",
            "Frames on the MQTT command_results_topic not taken, by reason",
            self.command_frames_refused.clone(),
        );
    }

    pub fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&vec![("reason", reason)]).inc();
    }

    pub fn command_frame_refused(&self, reason: &'static str) {
        self.command_frames_refused
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    pub fn dropped(&self, stream: &'static str, n: u64) {
        self.publish_dropped
            .get_or_create(&vec![("stream", stream)])
            .inc_by(n);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("telehub");
        let connections = Family::<Labels, Gauge>::default();
        registry.register(
            "connections",
            "Open sockets by kind (ingest, live)",
            connections.clone(),
        );
        let readings_ingested = Counter::default();
        registry.register(
            "readings_ingested",
            "Readings acknowledged as stored",
            readings_ingested.clone(),
        );
        let acks = Counter::default();
        registry.register("acks", "Messages acknowledged", acks.clone());
        let nacks = Family::<Labels, Counter>::default();
        registry.register("nacks", "Messages refused, by error code", nacks.clone());
        let commit_batch_rows = Histogram::new(exponential_buckets(1.0, 4.0, 9));
        registry.register(
            "commit_batch_rows",
            "Rows per storage transaction",
            commit_batch_rows.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.5, 12));
        registry.register(
            "commit_seconds",
            "Storage transaction latency",
            commit_seconds.clone(),
        );
        let commit_failures = Counter::default();
        registry.register(
            "commit_failures",
            "Storage transactions that failed",
            commit_failures.clone(),
        );
        let write_queue_depth = Gauge::default();
        registry.register(
            "write_queue_depth",
            "Messages waiting for the storage writer",
            write_queue_depth.clone(),
        );
        let live_delivered = Counter::default();
        registry.register(
            "live_delivered",
            "Readings written to dashboard clients",
            live_delivered.clone(),
        );
        let live_dropped = Counter::default();
        registry.register(
            "live_dropped",
            "Readings lost by dashboard clients that fell out of the live history",
            live_dropped.clone(),
        );
        let live_history_readings = Gauge::default();
        registry.register(
            "live_history_readings",
            "Readings held in the live history",
            live_history_readings.clone(),
        );
        let live_history_bytes = Gauge::default();
        registry.register(
            "live_history_bytes",
            "Bytes held by the live history (approximately)",
            live_history_bytes.clone(),
        );
        let live_history_oldest_offset = Gauge::default();
        registry.register(
            "live_history_oldest_offset",
            "Offset of the oldest reading in the live history",
            live_history_oldest_offset.clone(),
        );
        let live_clients_behind = Gauge::default();
        registry.register(
            "live_clients_behind",
            "Dashboard clients still reading older parts of the live history",
            live_clients_behind.clone(),
        );
        let live_resumes_ok = Counter::default();
        registry.register(
            "live_resumes_ok",
            "Live subscriptions resumed from the history",
            live_resumes_ok.clone(),
        );
        let live_resumes_failed = Counter::default();
        registry.register(
            "live_resumes_failed",
            "Live resumes refused (another epoch, or older than the history)",
            live_resumes_failed.clone(),
        );
        let connections_refused = Family::<Labels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused, by reason",
            connections_refused.clone(),
        );
        let mqtt = MqttMetrics::default();
        mqtt.register(&mut registry);
        let alerts = AlertMetrics::default();
        alerts.register(&mut registry);
        let commands = CommandMetrics::default();
        commands.register(&mut registry);
        let retention_deleted = Family::<Labels, Counter>::default();
        registry.register(
            "retention_deleted_rows",
            "Rows deleted by retention, by table (readings, rollup_1m, rollup_1h)",
            retention_deleted.clone(),
        );
        let retention_passes = Counter::default();
        registry.register(
            "retention_passes",
            "Retention passes completed",
            retention_passes.clone(),
        );
        let compactor = CompactorMetrics::default();
        for (name, help, c) in [
            (
                "compactor_readings",
                "Readings moved into compressed blocks",
                &compactor.readings,
            ),
            (
                "compactor_blocks",
                "Compressed blocks written",
                &compactor.blocks,
            ),
            (
                "compactor_block_bytes",
                "Bytes of the compressed blocks written",
                &compactor.bytes,
            ),
            (
                "compactor_passes",
                "Compaction passes completed",
                &compactor.passes,
            ),
        ] {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "compactor_lag_seconds",
            "Age of the oldest uncompressed reading past the compressible boundary, at the end of the last pass",
            compactor.lag_seconds.clone(),
        );
        Self {
            registry,
            compactor,
            mqtt,
            alerts,
            commands,
            connections,
            readings_ingested,
            acks,
            nacks,
            commit_batch_rows,
            commit_seconds,
            commit_failures,
            write_queue_depth,
            live_delivered,
            live_dropped,
            live_history_readings,
            live_history_bytes,
            live_history_oldest_offset,
            live_clients_behind,
            live_resumes_ok,
            live_resumes_failed,
            connections_refused,
            retention_deleted,
            retention_passes,
        }
    }

    pub fn nack(&self, code: ErrorCode) {
        self.nacks
            .get_or_create(&vec![("code", code.as_str())])
            .inc();
    }

    pub fn connection_gauge(&self, kind: &'static str) -> Gauge {
        self.connections
            .get_or_create(&vec![("kind", kind)])
            .clone()
    }

    pub fn refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    pub fn retention_deleted(&self, table: &'static str) -> Counter {
        self.retention_deleted
            .get_or_create(&vec![("table", table)])
            .clone()
    }

    pub fn observe_commit(&self, rows: usize, took: Duration) {
        self.commit_batch_rows.observe(rows as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

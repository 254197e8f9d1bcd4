//! MQTT: egress of stored readings, ingest from a broker, and the cluster live stream.
//!
//! Tasks and the channels between them (all bounded):
//!
//! | task | owns | receives | sends |
//! |---|---|---|---|
//! | [`connection`] | rumqttc's event loop, the broker status | packets from the broker | ingest publishes → ingest worker (`ingest_queue`, drop and count when full); cluster publishes → cluster inbox (same) |
//! | [`ingest`] worker | the device cache, messages being stored | ingest publishes | readings, checked by the ingest pipeline ([`crate::ingest::Pipeline::check`]) → the storage writer; acks → broker once stored |
//! | [`outbox`] | the outgoing queue (`publish_queue`, oldest dropped and counted) | committed batches, status events and alert events (broadcasts from the writer, the session registry and the alert engine) | egress, alert and cluster publishes → broker |
//! | [`cluster`] inbox | other hubs' presence ([`Presence`]) | cluster publishes | readings and status → the live fan-out |
//! | [`commands`] link (with `commands_topic`) | a second broker connection, its publishes awaiting PUBACK | commands from the dispatcher's relay; packets from the broker | commands → broker; "published" reports → the dispatcher; command frames → results worker |
//! | [`command_results`] worker | — | devices' `command_ack` / `command_result` frames | frames → the commands module; its replies → broker |
//! | [`config`] publisher (with `config_topic`) | the last history `seq` seen | new desired versions (polling storage), broker (re)connects | retained `{"version","desired"}` → broker |
//! | [`config`] reports worker | — | devices' `{"version","state"}` reports (`ingest_queue`, dropped and counted when full) | reports → storage (`devconfig`); acks and answers → broker |
//!
//! The event loop task never awaits storage or another task: it only forwards with
//! `try_send`, so a slow database can never stall the broker connection (the deadlock
//! rumqttc warns about when a client waits on its own event loop). Only readings of
//! *this* hub's commits are published, so across a cluster each reading is published once.
//!
//! Shutdown: the ingest worker is one of the hub's socket tasks (it finishes storing and
//! acks what it took, then ends); after the writer has flushed, the outbox publishes what
//! the last commits stored, says goodbye to the cluster, and disconnects.
//!
//! May use: `domain`, `protocol`, `config`, `tls`, `storage`, `metrics`, `ingest`,
//! `live`, `sessions`, `commands`, `devconfig`; never the HTTP server: what it needs of the hub is [`Context`].

pub mod cluster;
pub mod command_results;
pub mod commands;
pub mod config;
pub mod connection;
mod devices;
pub mod ingest;
mod options;
pub mod outbox;

pub use crate::config::{BrokerAddr, MqttSettings};
pub use cluster::Presence;

use crate::commands::CommandsHandle;
use crate::config::Settings;
use crate::devconfig::ConfigHandle;
use crate::domain::{AlertEvent, CommittedBatch, StatusEvent};
use crate::ingest::Pipeline;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::storage::Store;
use rumqttc::{AsyncClient, EventLoop};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why MQTT could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("{0}")]
    Settings(#[from] crate::config::SettingError),
    #[error("MQTT TLS: {0}; check mqtt.ca_file, mqtt.client_cert and mqtt.client_key")]
    Tls(#[from] crate::tls::TlsError),
}

/// The broker connection as `/readyz` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerStatus {
    pub connected: bool,
    /// The broker has confirmed the hub's subscriptions (ingest, cluster) on this connection.
    pub subscribed: bool,
    /// `mqtt://host:port`, and the last error while disconnected.
    pub detail: String,
}

/// What the rest of the hub sees of MQTT: broker status and other hubs' devices.
#[derive(Clone)]
pub struct MqttHandle {
    /// Random per start; names this hub on the cluster topic.
    pub hub_id: String,
    status: watch::Receiver<BrokerStatus>,
    presence: Arc<Presence>,
}

impl MqttHandle {
    pub fn broker(&self) -> BrokerStatus {
        self.status.borrow().clone()
    }
    /// Waits until the broker status satisfies `f` (for example, subscribed).
    pub async fn wait_until(&self, f: impl FnMut(&BrokerStatus) -> bool) {
        let _ = self.status.clone().wait_for(f).await;
    }
    /// Whether `device` is online on another hub of the cluster.
    pub fn online_elsewhere(&self, device: &str) -> bool {
        self.presence.is_online(device)
    }
}

/// What the MQTT tasks use of the hub, handed over by `hub` when it starts them.
#[derive(Clone)]
pub struct Context {
    pub ingest: Arc<Pipeline>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub sessions: Arc<Sessions>,
    pub live: LiveHub,
    /// The command dispatcher: the commands connection is its relay.
    pub commands: CommandsHandle,
    /// Desired configurations: the config reports worker stores reports through it.
    pub devconfig: ConfigHandle,
    /// Cancelled when the hub begins to shut down.
    pub shutdown: CancellationToken,
    /// The hub's socket tasks; the ingest worker is one of them.
    pub tasks: TaskTracker,
    /// `ingest.max_frame_bytes`: the largest payload accepted.
    pub max_payload_bytes: usize,
    /// `writer.max_batch_rows`: rows handed to the writer in one request at most.
    pub max_batch_rows: usize,
    /// `writer.retry_backoff`: the wait before retrying while storage is unavailable.
    pub retry_backoff: Duration,
    /// `server.shutdown_grace`.
    pub shutdown_grace: Duration,
}

impl Context {
    /// The limits taken from `settings`; the parts as given.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: &Settings,
        ingest: Arc<Pipeline>,
        store: Store,
        metrics: Arc<Metrics>,
        sessions: Arc<Sessions>,
        live: LiveHub,
        commands: CommandsHandle,
        devconfig: ConfigHandle,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            ingest,
            store,
            metrics,
            sessions,
            live,
            commands,
            devconfig,
            shutdown,
            tasks,
            max_payload_bytes: settings.ingest.max_frame_bytes,
            max_batch_rows: settings.writer.max_batch_rows,
            retry_backoff: settings.writer.retry_backoff,
            shutdown_grace: settings.server.shutdown_grace,
        }
    }
}

/// MQTT set up but not yet running: [`prepare`] before the hub state exists, then
/// [`Prepared::spawn`] once it does.
pub struct Prepared {
    settings: MqttSettings,
    hub_id: String,
    client: AsyncClient,
    eventloop: EventLoop,
    /// The commands connection, with `commands_topic` set.
    commands: Option<(AsyncClient, EventLoop)>,
    status: watch::Sender<BrokerStatus>,
    presence: Arc<Presence>,
    committed: broadcast::Receiver<CommittedBatch>,
    events: broadcast::Receiver<StatusEvent>,
    alerts: Alerts,
}

/// Alert events (protocol.md §9) to publish, and their topic (`[alerts] mqtt_topic`; empty: none).
pub struct Alerts {
    pub events: broadcast::Receiver<AlertEvent>,
    pub topic: String,
}

/// Builds the client (TLS, credentials, last will) and subscribes to the hub's commits
/// and status events, so nothing committed after this is missed.
pub fn prepare(
    settings: &MqttSettings,
    committed: broadcast::Receiver<CommittedBatch>,
    events: broadcast::Receiver<StatusEvent>,
    alerts: Alerts,
) -> Result<(MqttHandle, Prepared), MqttError> {
    // 12 hex digits: `telehub-<id>` stays within the 23 characters MQTT 3.1.1 guarantees for client ids.
    let hub_id = format!("{:012x}", rand::random::<u64>() >> 16);
    let (client, eventloop) = options::client(settings, &hub_id)?;
    let commands = if settings.commands_topic.is_empty() {
        None
    } else {
        Some(options::commands_client(settings, &hub_id)?)
    };
    let (status, status_rx) = watch::channel(BrokerStatus {
        connected: false,
        subscribed: false,
        detail: format!("connecting to {}", settings.url),
    });
    let presence = Arc::new(Presence::default());
    let handle = MqttHandle {
        hub_id: hub_id.clone(),
        status: status_rx,
        presence: presence.clone(),
    };
    let prepared = Prepared {
        settings: settings.clone(),
        hub_id,
        client,
        eventloop,
        commands,
        status,
        presence,
        committed,
        events,
        alerts,
    };
    Ok((handle, prepared))
}

/// The running MQTT tasks; [`Running::finish`] ends them after the writer has flushed.
pub struct Running {
    outbox: JoinHandle<()>,
    connection: JoinHandle<()>,
    inbox: Option<JoinHandle<()>>,
    commands: Option<JoinHandle<()>>,
    hard_stop: CancellationToken,
    status: watch::Receiver<BrokerStatus>,
}

impl Prepared {
    pub fn spawn(self, hub: Context) -> Running {
        let s = &self.settings;
        let hard_stop = CancellationToken::new();
        let (ingest_tx, ingest_rx) = mpsc::channel(s.ingest_queue);
        let (cluster_tx, cluster_rx) = mpsc::channel(s.ingest_queue);
        let (config_tx, config_rx) = mpsc::channel(s.ingest_queue);
        let conn = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let routes = connection::Routes::new(
            s,
            &self.hub_id,
            ingest_tx,
            cluster_tx,
            config_tx,
            conn.clone(),
        );
        let status = self.status.subscribe();
        let connection = tokio::spawn(connection::run(
            self.eventloop,
            routes,
            s.clone(),
            self.status,
            hub.metrics.clone(),
            hard_stop.clone(),
        ));
        if config::enabled(s) {
            spawn_config(
                s,
                &self.client,
                &hub,
                config_rx,
                conn.clone(),
                status.clone(),
            );
        }
        if !s.ingest_topic.is_empty() {
            let worker = ingest::Worker::new(hub.clone(), self.client.clone(), s, conn);
            hub.tasks.spawn(worker.run(ingest_rx));
        }
        let inbox = s.cluster.then(|| {
            tokio::spawn(cluster::inbox(
                hub.clone(),
                self.presence.clone(),
                cluster_rx,
                s.presence_interval,
            ))
        });
        let commands = self.commands.map(|(client, eventloop)| {
            let (frames_tx, frames_rx) = mpsc::channel(s.ingest_queue);
            let link = commands::Link::new(eventloop, s, frames_tx, hub.metrics.clone());
            let worker = command_results::Worker {
                commands: hub.commands.clone(),
                ingest: hub.ingest.clone(),
                metrics: hub.metrics.clone(),
                client,
                replies_topic: s.command_replies_topic.clone(),
            };
            let (handle, shutdown) = (hub.commands.clone(), hub.shutdown.clone());
            let capacity = usize::from(s.max_inflight);
            tokio::spawn(async move {
                let relay = handle.relay(capacity).await;
                let results = tokio::spawn(worker.run(frames_rx));
                link.run(relay, shutdown).await;
                let _ = results.await;
            })
        });
        let outbox = tokio::spawn(outbox::Outbox::new(hub, self.client, s, self.hub_id).run(
            self.committed,
            self.events,
            self.alerts,
            status.clone(),
        ));
        Running {
            outbox,
            connection,
            inbox,
            commands,
            hard_stop,
            status,
        }
    }
}

/// Starts the config publisher and reports worker (both end with the hub).
fn spawn_config(
    s: &MqttSettings,
    client: &AsyncClient,
    hub: &Context,
    reports: mpsc::Receiver<ingest::Received>,
    conn: Arc<std::sync::atomic::AtomicU64>,
    status: watch::Receiver<BrokerStatus>,
) {
    let publisher = config::Publisher {
        store: hub.store.clone(),
        client: client.clone(),
        topic: s.config_topic.clone(),
        poll_interval: hub.devconfig.settings().poll_interval,
        status,
    };
    tokio::spawn(publisher.run(hub.shutdown.clone()));
    let worker = config::Reports {
        devconfig: hub.devconfig.clone(),
        client: client.clone(),
        metrics: hub.metrics.clone(),
        replies_topic: s.command_replies_topic.clone(),
        connection: conn,
    };
    tokio::spawn(worker.run(reports));
}

/// `0`, `1` or `2` (checked by [`MqttSettings::validate`]) as rumqttc's QoS.
fn qos(level: u8) -> rumqttc::QoS {
    match level {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

impl Running {
    /// Publishes what the last commits stored, disconnects, and ends every task;
    /// waits at most `grace`, then drops what is left (counted).
    pub async fn finish(self, grace: Duration) {
        let Running {
            mut outbox,
            mut connection,
            inbox,
            commands,
            hard_stop,
            status,
        } = self;
        if let Some(c) = commands {
            let _ = c.await;
        }
        if tokio::time::timeout(grace, &mut outbox).await.is_err() {
            tracing::warn!("mqtt: outgoing messages not all sent within the shutdown grace");
            outbox.abort();
        }
        // Connected: the outbox queued a DISCONNECT after its last message; give the
        // event loop a moment to send both. Not connected: nothing more can be sent.
        let linger = if status.borrow().connected {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        };
        if tokio::time::timeout(linger, &mut connection).await.is_err() {
            hard_stop.cancel();
            let _ = connection.await;
        }
        if let Some(i) = inbox {
            let _ = i.await;
        }
    }
}

/// At most one warning a second; the rest are counted and reported with the next one.
#[derive(Default)]
pub(crate) struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return false;
        }
        self.last = Some(now);
        true
    }
    pub(crate) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

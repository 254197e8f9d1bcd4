//! The hub process: assembles the parts, starts them in order and owns the shutdown order.
//!
//! Start: TLS config → storage opened and migrated → listener bound → rollups made
//! complete → the storage writer → PostgreSQL's partitions of `readings` made for now and
//! ahead (then kept so by their manager's task) → the live fan-out → MQTT (subscribed to the commit
//! and status streams before anything is committed) → the HTTP state and router →
//! background tasks (revocation watcher, retention, the compactor, idle rate state, the refusal log's
//! windows). The command
//! dispatcher starts with the alert engine and stops with the other background tasks.
//!
//! Channels made here: the commit stream (`broadcast` of [`CommittedBatch`]; sender:
//! the writer; receivers: the live fan-out and MQTT egress), the alert engine's own
//! stream of the same batches (`mpsc`, bounded: the writer waits, no batch is skipped),
//! the status stream (`broadcast` of `StatusEvent`; sender: presence;
//! receivers: live, MQTT, the alert engine) and the alert events (`broadcast` of
//! `AlertEvent`; sender: the alert engine; receivers: live, MQTT).
//!
//! Shutdown order: stop accepting → sockets finish their in-flight replies and close
//! with 1001 (bounded by `server.shutdown_grace`) → the storage writer commits what is
//! queued → the alert engine evaluates the last commits → MQTT publishes what the last commits stored and disconnects → background
//! tasks end → storage closes.
//!
//! May use every module but `cli`.

use crate::alerts;
use crate::commands;
use crate::config::{Settings, WriterSettings};
use crate::domain::CommittedBatch;
use crate::ingest::Pipeline;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::server::{self, HubState, limits, listener};
use crate::sessions::{self, Sessions};
use crate::storage::writer;
use crate::storage::{StorageError, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Mqtt(#[from] crate::mqtt::MqttError),
    #[error(
        "cannot listen on {addr}: {source}; is another hub running there? choose another with --listen"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started hub. Dropping it does not stop it: call [`RunningHub::stop`].
pub struct RunningHub {
    pub addr: SocketAddr,
    pub tls: bool,
    pub state: Arc<HubState>,
    stopped: tokio::task::JoinHandle<()>,
}

impl RunningHub {
    /// `http(s)://addr`
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }
    /// Begins a graceful shutdown and waits until it is complete.
    pub async fn stop(self) {
        self.state.shutdown.cancel();
        let _ = self.stopped.await;
    }
    /// Waits until the hub has stopped (after its shutdown token was cancelled).
    pub async fn wait(self) {
        let _ = self.stopped.await;
    }
}

/// Opens storage, starts the writer and binds the listener; the hub then runs in the background.
pub async fn start(settings: Settings) -> Result<RunningHub, StartError> {
    let tls = settings
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    let store = Store::open(&settings.database).await?;
    let listener = tokio::net::TcpListener::bind(settings.server.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: settings.server.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: settings.server.listen,
        source,
    })?;

    store.prepare_rollups(settings.storage.rollups).await?;
    let metrics = Arc::new(Metrics::new());
    let (committed_tx, _) = broadcast::channel::<CommittedBatch>(settings.live.committed_backlog);
    let (status_tx, _) = broadcast::channel(settings.live.status_backlog);
    let (alert_batches_tx, alert_batches) = mpsc::channel(settings.alerts.queue);
    let (alert_events, _) = broadcast::channel(settings.alerts.event_backlog);
    let close_writer = CancellationToken::new();
    let writer_settings = WriterSettings {
        max_series_per_device: settings.limits.max_series_per_device,
        ..settings.writer.clone()
    };
    let (writer, writer_task) = writer::spawn_with(
        store.clone(),
        writer_settings,
        settings.storage.rollups,
        metrics.clone(),
        committed_tx.clone(),
        Some(alert_batches_tx),
        close_writer.clone(),
    );
    let shutdown = CancellationToken::new();
    // PostgreSQL: the partitions of `readings` for now and ahead, before devices connect.
    let partitions = crate::storage::partitions::start(
        store.clone(),
        settings.storage.clone(),
        shutdown.clone(),
    )
    .await;
    let live = LiveHub::start(
        &settings.live,
        metrics.clone(),
        committed_tx.subscribe(),
        status_tx.subscribe(),
        alert_events.subscribe(),
        shutdown.clone(),
    );
    let mqtt = match &settings.mqtt {
        Some(m) => Some(crate::mqtt::prepare(
            m,
            committed_tx.subscribe(),
            status_tx.subscribe(),
            crate::mqtt::Alerts {
                events: alert_events.subscribe(),
                topic: settings.alerts.mqtt_topic.clone(),
            },
        )?),
        None => None,
    };
    let alert_status = status_tx.subscribe();
    let (mqtt_handle, mqtt) = mqtt.unzip();
    let presence = Presence::new(&settings.presence, status_tx);
    tokio::spawn(presence.clone().run(shutdown.clone()));
    tokio::spawn(crate::presence::labels::follow(
        presence.clone(),
        store.clone(),
        settings.presence.labels_poll,
        shutdown.clone(),
    ));
    let ingest = Arc::new(Pipeline::new(
        &settings.ingest,
        &settings.limits,
        writer,
        metrics.clone(),
        presence.clone(),
    ));
    let sessions = Sessions::new(presence, shutdown.clone());
    let alerts = alerts::start(
        store.clone(),
        &settings.alerts,
        metrics.clone(),
        sessions.clone(),
        alerts::Wiring {
            batches: alert_batches,
            status: alert_status,
            events: alert_events,
        },
        settings.dashboard_url(addr),
        shutdown.clone(),
    )
    .await?;
    let commands = commands::start(
        store.clone(),
        &settings.commands,
        metrics.clone(),
        settings.live.committed_backlog,
        shutdown.clone(),
    )
    .await?;
    let devconfig =
        crate::devconfig::start(store.clone(), &settings.device_config, shutdown.clone()).await?;
    tokio::spawn(command_changes_to_live(
        commands.handle.changes(),
        live.clone(),
    ));
    let tasks = TaskTracker::new();
    let mqtt = mqtt.map(|m| {
        m.spawn(crate::mqtt::Context::new(
            &settings,
            ingest.clone(),
            store.clone(),
            metrics.clone(),
            sessions.clone(),
            live.clone(),
            commands.handle.clone(),
            devconfig.handle.clone(),
            shutdown.clone(),
            tasks.clone(),
        ))
    });
    let state = Arc::new(HubState {
        sessions,
        store: store.clone(),
        ingest,
        metrics,
        live,
        limits: limits::Limits::new(&settings.limits),
        refusals: server::refusals::RefusalLog::new(&settings.log),
        mqtt: mqtt_handle,
        alerts: alerts.handle.clone(),
        commands: commands.handle.clone(),
        devconfig: devconfig.handle.clone(),
        shutdown: shutdown.clone(),
        tasks,
        ingest_beat: server::heartbeat::Wheel::new(&settings.ingest.socket()),
        live_beat: server::heartbeat::Wheel::new(&settings.live.socket()),
        settings,
    });
    tokio::spawn(forget_idle_rates(state.clone()));
    for live in [false, true] {
        let (state, stop) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            let wheel = if live {
                &state.live_beat
            } else {
                &state.ingest_beat
            };
            wheel.run(stop).await
        });
    }
    tokio::spawn(server::refusals::flush_refusals(state.clone()));
    let watcher = tokio::spawn(sessions::watch_revocations(
        store.clone(),
        state.sessions.clone(),
        Duration::from_millis(250),
        shutdown.clone(),
    ));
    let retention = crate::storage::retention::spawn(
        store.clone(),
        crate::config::RetentionSettings {
            partition_lock_timeout: state.settings.storage.partition_lock_timeout,
            ..state.settings.retention.clone()
        },
        state.metrics.clone(),
        shutdown.clone(),
    );
    let compactor = crate::storage::compactor::spawn(
        store.clone(),
        state.settings.storage.clone(),
        state.metrics.clone(),
        shutdown.clone(),
    );
    let app = server::router(state.clone());
    let is_tls = tls.is_some();
    let serve_state = state.clone();
    let stopped = tokio::spawn(async move {
        listener::serve(listener, tls, app, serve_state.clone()).await;
        // Listener closed: wait for sockets (bounded), then flush the writer.
        serve_state.tasks.close();
        if tokio::time::timeout(
            serve_state.settings.server.shutdown_grace,
            serve_state.tasks.wait(),
        )
        .await
        .is_err()
        {
            tracing::warn!("shutdown: some sockets did not finish within the grace period");
        }
        close_writer.cancel();
        let _ = writer_task.await;
        // The engine evaluates the last commits, then ends; the webhook sender has
        // stopped with the shutdown (what it did not send is retried after a restart).
        alerts.finish().await;
        commands.finish().await;
        devconfig.finish().await;
        if let Some(m) = mqtt {
            m.finish(serve_state.settings.server.shutdown_grace).await;
        }
        let _ = watcher.await;
        let _ = retention.await;
        if let Some(p) = partitions {
            let _ = p.await;
        }
        let _ = compactor.await;
        store.close().await;
        tracing::info!("hub stopped");
    });
    Ok(RunningHub {
        addr,
        tls: is_tls,
        state,
        stopped,
    })
}

/// Drops rate-limiter state for idle devices once a minute, until shutdown.
async fn forget_idle_rates(hub: Arc<HubState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => return,
            _ = tick.tick() => hub.ingest.forget_idle(),
        }
    }
}

/// Hands every command change to the live fan-out as a `{"command": …}` frame, in
/// order; ends when the dispatcher (the broadcast's last sender) is gone.
async fn command_changes_to_live(
    mut changes: tokio::sync::broadcast::Receiver<Arc<crate::storage::commands::CommandRow>>,
    live: LiveHub,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            Ok(row) => live.deliver_command(crate::protocol::live::command_frame(row.as_ref())),
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    changes = n,
                    "live feed missed command changes (it fell behind)"
                )
            }
            Err(RecvError::Closed) => break,
        }
    }
}

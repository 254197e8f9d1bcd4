//! Alerts (docs/protocol.md §9): rules evaluated on committed readings and on device presence;
//! their events stored, then sent to live clients, MQTT and webhooks.
//!
//! - [`rules`]: the rule JSON parsed and checked into a typed [`rules::Rule`].
//! - [`matcher`]: which rules apply to a series, by index (never every rule per reading).
//! - [`engine`]: the one task owning every (rule, series) state and its deadlines: a
//!   shell of I/O around [`engine::machine`], the pure state machine of one alert.
//! - [`silences`]: acknowledgement and silence requests parsed, and which silence
//!   covers an alert (contract §16).
//! - [`outbox`]: the notification sender over the durable outbox; [`webhook`]: one signed
//!   POST; [`email`]: one mail over SMTP; [`message`]: the readable message both carry.
//!
//! Channels (made by `crate::hub`): committed batches → engine (`mpsc`, bounded by
//! `alerts.queue`; the storage writer waits when it is full); status events → engine
//! (broadcast); engine → `events` broadcast (live fan-out, MQTT) and a `Notify` waking
//! the webhook sender; HTTP → engine requests (acknowledge, silences changed; `mpsc`,
//! bounded by [`REQUESTS`]). Rule changes (HTTP, or the CLI writing the database directly)
//! bump an epoch the engine polls every `alerts.rules_poll`; HTTP also nudges it.
//!
//! May use: `domain`, `config`, `storage`, `metrics`, `sessions`.

pub mod email;
pub mod engine;
pub mod matcher;
pub mod message;
pub mod outbox;
pub mod rules;
pub mod silences;
pub mod webhook;

use crate::config::AlertSettings;
use crate::domain::{AlertEvent, CommittedBatch, StatusEvent};
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::storage::alert_acks::NewAck;
use crate::storage::{StorageError, Store};
use std::sync::Arc;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the HTTP API needs of the running engine.
#[derive(Clone)]
pub struct AlertsHandle {
    nudge: Arc<Notify>,
    /// The rules' epoch the engine has loaded.
    loaded: watch::Receiver<i64>,
    requests: mpsc::Sender<engine::Request>,
}

/// Requests (acknowledgements, silence changes) queued for the engine at most.
const REQUESTS: usize = 64;

/// Why a request to the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the alert engine is not running (the hub is shutting down); try again once it is up")]
    Stopped,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How long a rule change over HTTP waits for this hub's engine to load it.
const RELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl AlertsHandle {
    /// Rules were changed (the database's epoch is now `epoch`): the engine reloads them
    /// now rather than at its next poll. Returns once it has (or after [`RELOAD_WAIT`]),
    /// so readings committed after an HTTP change are evaluated with it.
    pub async fn rules_changed(&self, epoch: i64) {
        self.nudge.notify_one();
        let mut loaded = self.loaded.clone();
        let _ = tokio::time::timeout(RELOAD_WAIT, loaded.wait_for(|e| *e >= epoch)).await;
    }

    /// Acknowledges a firing alert (contract §16): the stored `acknowledged` event, once
    /// it went out; [`StorageError::NotFiring`] when that alert is not firing.
    pub async fn acknowledge(&self, ack: NewAck) -> Result<AlertEvent, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(engine::Request::Ack { ack, reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        Ok(answer.await.map_err(|_| RequestError::Stopped)??)
    }

    /// Silences were added or ended: returns once the engine has read them (or after
    /// [`RELOAD_WAIT`]), so events raised after an HTTP change are judged by them.
    pub async fn silences_changed(&self) {
        let (reply, answer) = oneshot::channel();
        let asked = self
            .requests
            .send(engine::Request::SilencesChanged { reply });
        let _ = tokio::time::timeout(RELOAD_WAIT, async move {
            if asked.await.is_ok() {
                let _ = answer.await;
            }
        })
        .await;
    }
}

/// The running engine and webhook sender.
pub struct Running {
    pub handle: AlertsHandle,
    engine: JoinHandle<()>,
    sender: JoinHandle<()>,
}

impl Running {
    /// Waits for the engine (it ends once the writer has flushed and closed its stream),
    /// then for the sender (it ends at shutdown).
    pub async fn finish(self) {
        let _ = self.engine.await;
        let _ = self.sender.await;
    }
}

/// The inputs and outputs the hub wires to the engine.
pub struct Wiring {
    pub batches: mpsc::Receiver<CommittedBatch>,
    pub status: broadcast::Receiver<StatusEvent>,
    pub events: broadcast::Sender<AlertEvent>,
}

/// Where every event is delivered through the outbox: each webhook's URL and each
/// email target's key.
pub fn targets(settings: &AlertSettings) -> Vec<String> {
    settings
        .webhooks
        .iter()
        .map(|w| w.url.clone())
        .chain(settings.email.iter().map(|e| e.key()))
        .collect()
}

/// Starts the engine and the notification sender; each event links to `dashboard_url`. The signing key is `alerts.secret`, or the
/// one stored in the database (generated on first use).
pub async fn start(
    store: Store,
    settings: &AlertSettings,
    metrics: Arc<Metrics>,
    sessions: Arc<Sessions>,
    wiring: Wiring,
    dashboard_url: String,
    shutdown: CancellationToken,
) -> Result<Running, StorageError> {
    let key = match &settings.secret {
        Some(s) => s.clone(),
        None => {
            let fresh: String = (0..32)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect();
            store.alert_secret(&fresh).await?
        }
    };
    let nudge = Arc::new(Notify::new());
    let wake = Arc::new(Notify::new());
    let (loaded_tx, loaded) = watch::channel(-1);
    let (requests, requests_rx) = mpsc::channel(REQUESTS);
    let engine = engine::Engine::new(
        store.clone(),
        metrics.clone(),
        sessions,
        engine::Delivery {
            targets: targets(settings),
            dashboard_url,
        },
        engine::Outputs {
            events: wiring.events,
            wake_sender: wake.clone(),
            loaded: loaded_tx,
        },
    );
    let engine = tokio::spawn(engine.run(
        wiring.batches,
        wiring.status,
        requests_rx,
        nudge.clone(),
        settings.rules_poll,
    ));
    let sender = tokio::spawn(
        outbox::Sender {
            store,
            settings: settings.clone(),
            metrics,
            key: key.into_bytes(),
            wake,
            shutdown,
        }
        .run(),
    );
    Ok(Running {
        handle: AlertsHandle {
            nudge,
            loaded,
            requests,
        },
        engine,
        sender,
    })
}

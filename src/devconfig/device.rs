//! The device's side of its configuration, whatever its transport (protocol.md §14):
//! while connected it takes each newer desired version ([`ConfigFeed`]), and it reports
//! what it applied ([`ConfigHandle::report`]), stored before it is acknowledged.

use super::delivery::Input;
use super::{ConfigError, ConfigHandle};
use crate::domain::DeviceName;
use crate::protocol::commands::ConfigDocument;
use crate::protocol::frames::HubFrame;
use crate::protocol::ingest::{ErrorCode, Reply};
use crate::storage::devconfig::{ConfigRow, Reported};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::ReusableBoxFuture;

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// A connection's end of the delivery task's `watch`.
type Held = watch::Receiver<Option<Arc<ConfigDocument>>>;

/// Waits for the next change; `false` once the delivery task is gone.
async fn changed(mut rx: Held) -> (bool, Held) {
    let open = rx.changed().await.is_ok();
    (open, rx)
}

/// What the device is known to have: the version it last reported (a socket that
/// connects), or the one it says it has (`GET /v1/config?known=N`).
#[derive(Debug, Clone, Copy)]
pub enum Known {
    Reported,
    Version(u64),
}

/// A connection's claim on its device's configurations: [`ConfigFeed::next`] gives each
/// newer version while it lives; dropping it tells the delivery task it closed.
pub struct ConfigFeed {
    /// The wait for the delivery task's next version, boxed once (a socket's idle
    /// future then holds a pointer to it, not the wait itself), with its receiver.
    changed: ReusableBoxFuture<'static, (bool, Held)>,
    /// The version to hand over first (the device is behind it), once.
    initial: Option<Arc<ConfigDocument>>,
    /// The newest version handed over (or known to the device).
    sent: u64,
    device: String,
    connection: u64,
    inputs: mpsc::Sender<Input>,
}

impl ConfigFeed {
    /// The next version newer than any handed over; never, once the hub shuts down.
    pub async fn next(&mut self) -> Arc<ConfigDocument> {
        if let Some(doc) = self.initial.take() {
            self.sent = doc.version;
            return doc;
        }
        loop {
            let (open, mut rx) = std::future::poll_fn(|cx| self.changed.poll(cx)).await;
            if !open {
                return std::future::pending().await;
            }
            let held = rx.borrow_and_update().clone();
            self.changed.set(changed(rx));
            if let Some(doc) = held.filter(|d| d.version > self.sent) {
                self.sent = doc.version;
                return doc;
            }
        }
    }
}

impl Drop for ConfigFeed {
    fn drop(&mut self) {
        let input = Input::Disconnected {
            device: std::mem::take(&mut self.device),
            connection: self.connection,
        };
        if let Err(mpsc::error::TrySendError::Full(input)) = self.inputs.try_send(input) {
            let inputs = self.inputs.clone();
            tokio::spawn(async move { inputs.send(input).await });
        }
    }
}

impl ConfigHandle {
    /// `device` is connected and takes its configurations on the returned feed until it
    /// is dropped; the first is the current desired version when the device is behind
    /// it (`known`). A storage failure here is logged: the device then gets the next
    /// version set.
    pub async fn attach(&self, device: &DeviceName, known: Known) -> ConfigFeed {
        let (tx, rx) = watch::channel(None);
        let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let input = Input::Connected {
            device: device.to_string(),
            connection,
            deliver: tx,
        };
        let _ = self.inputs.send(input).await;
        // Read after attaching, so a version set in between is not missed.
        let (initial, sent) = match self.store.device_config(device).await {
            Ok(Some(row)) => {
                let known = match known {
                    Known::Reported => row.reported_version.unwrap_or(0),
                    Known::Version(v) => v,
                };
                let behind = row.version > known;
                let doc = ConfigDocument {
                    version: row.version,
                    document: row.desired,
                };
                (behind.then(|| Arc::new(doc)), known)
            }
            Ok(None) => (None, 0),
            Err(e) => {
                tracing::warn!(error = %e, %device, "device config: cannot read the desired version");
                (None, 0)
            }
        };
        ConfigFeed {
            changed: ReusableBoxFuture::new(changed(rx)),
            initial,
            sent,
            device: device.to_string(),
            connection,
            inputs: self.inputs.clone(),
        }
    }

    /// Stores what `device` reports it applied.
    pub async fn report(
        &self,
        device: &DeviceName,
        doc: &ConfigDocument,
    ) -> Result<ConfigRow, ConfigError> {
        let state = super::request::checked_text(&doc.document)?;
        match self
            .store
            .report_config(device, doc.version, &state, self.settings.history)
            .await?
        {
            Reported::Stored(row) => Ok(row),
            Reported::Ahead { desired } => Err(ConfigError::Ahead {
                reported: doc.version,
                desired,
            }),
        }
    }

    /// A device connection's `config_reported` frame, whatever the transport: the frame
    /// to answer with once it is stored (`config_stored`), or a nack saying why not
    /// (`unavailable` when storage failed: resend it).
    pub fn on_reported(
        &self,
        device: DeviceName,
        doc: ConfigDocument,
    ) -> BoxFuture<'static, HubFrame> {
        let handle = self.clone();
        async move {
            match handle.report(&device, &doc).await {
                Ok(_) => HubFrame::ConfigStored(doc.version),
                Err(e) => {
                    let error = match e {
                        ConfigError::Storage(_) => ErrorCode::Unavailable,
                        ConfigError::NoSuchDevice(_) => ErrorCode::RevokedDevice,
                        _ => ErrorCode::InvalidJson,
                    };
                    HubFrame::Reply(Reply::Nack {
                        nack: None,
                        error,
                        detail: format!("config_reported: {e}"),
                    })
                }
            }
        }
        .boxed()
    }
}

//! Desired device configuration (protocol.md §14, docs/device-config.md): versioned
//! documents an operator sets, delivered to devices, and the state they report back.
//!
//! - [`request`]: what an operator or a device sends, checked once (a JSON object of at
//!   most 16 KiB, `If-Match`, `--set K=V`), shared by the HTTP API and the CLI.
//! - [`delivery`]: the one task that knows which connections each device has, and hands
//!   each the newest desired version: set on this hub (at once), or found by polling
//!   storage every `device_config.poll_interval` (set by the CLI or another hub).
//! - [`device`]: the device's side, for every transport: attach to take configurations,
//!   report what it applied.
//! - [`gateway`]: a gateway connection's merged feed of the configurations of every
//!   device it acts for.
//!
//! Every version is stored before it is delivered; a connection holds only the newest
//! version not yet written to it (`watch`), so a slow device never queues old ones.
//!
//! May use: `domain`, `protocol`, `config`, `storage`; `commands::request` for how JSON
//! kinds are named in errors.

pub mod delivery;
pub mod device;
pub mod gateway;
pub mod request;

use crate::config::DeviceConfigSettings;
use crate::domain::DeviceName;
use crate::protocol::commands::ConfigDocument;
use crate::storage::devconfig::{ConfigRow, HistoryRow, SetDesired};
use crate::storage::{StorageError, Store};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why a configuration request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A bad request: says which field and why.
    #[error("{0}")]
    Invalid(String),
    /// A document over 16 KiB.
    #[error("{0}")]
    TooLarge(String),
    #[error("no device {0}")]
    NoSuchDevice(String),
    /// `If-Match` named another version than the current one.
    #[error(
        "the desired configuration is at version {current}, not {asked}; read it again (GET …/config) and retry with If-Match: \"{current}\""
    )]
    VersionMismatch { asked: u64, current: u64 },
    /// A device reported a version newer than any desired one.
    #[error(
        "version {reported} was never desired (the desired version is {desired}); report the version the hub sent"
    )]
    Ahead { reported: u64, desired: u64 },
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for ConfigError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NoSuchDevice(d) => Self::NoSuchDevice(d),
            other => Self::Storage(other),
        }
    }
}

/// Stores `desired` as device `device`'s next version (`if_match`: only when the current
/// version is that one). `by`: the token's name, when a token set it.
pub async fn set_desired(
    store: &Store,
    settings: &DeviceConfigSettings,
    device: &DeviceName,
    desired: &Map<String, Json>,
    if_match: Option<u64>,
    by: Option<&str>,
) -> Result<ConfigRow, ConfigError> {
    let text = request::checked_text(desired)?;
    match store
        .set_desired(device, &text, if_match, by, settings.history)
        .await?
    {
        SetDesired::Stored(row) => Ok(row),
        SetDesired::VersionMismatch { current } => Err(ConfigError::VersionMismatch {
            asked: if_match.unwrap_or(current),
            current,
        }),
    }
}

/// What request handlers and transports need of the running delivery.
#[derive(Clone)]
pub struct ConfigHandle {
    store: Store,
    settings: DeviceConfigSettings,
    inputs: mpsc::Sender<delivery::Input>,
}

impl ConfigHandle {
    pub fn settings(&self) -> &DeviceConfigSettings {
        &self.settings
    }

    /// Sets the desired configuration (stored, then handed to the device's connections).
    pub async fn set(
        &self,
        device: &DeviceName,
        desired: &Map<String, Json>,
        if_match: Option<u64>,
        by: Option<&str>,
    ) -> Result<ConfigRow, ConfigError> {
        let row = set_desired(&self.store, &self.settings, device, desired, if_match, by).await?;
        let doc = ConfigDocument {
            version: row.version,
            document: row.desired.clone(),
        };
        let _ = self
            .inputs
            .send(delivery::Input::Changed {
                device: device.to_string(),
                doc: Arc::new(doc),
            })
            .await;
        Ok(row)
    }

    pub async fn get(&self, device: &DeviceName) -> Result<ConfigRow, ConfigError> {
        self.store
            .device_config(device)
            .await?
            .ok_or_else(|| ConfigError::NoSuchDevice(device.to_string()))
    }

    pub async fn history(&self, device: &DeviceName) -> Result<Vec<HistoryRow>, ConfigError> {
        self.store
            .config_history(device)
            .await?
            .ok_or_else(|| ConfigError::NoSuchDevice(device.to_string()))
    }
}

/// The running delivery task.
pub struct Running {
    pub handle: ConfigHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits for the delivery task to end (at shutdown).
    pub async fn finish(self) {
        let _ = self.task.await;
    }
}

/// Starts the delivery task; it runs until `shutdown`.
pub async fn start(
    store: Store,
    settings: &DeviceConfigSettings,
    shutdown: CancellationToken,
) -> Result<Running, StorageError> {
    let (inputs, rx) = mpsc::channel(settings.queue);
    let delivery = delivery::Delivery::load(store.clone(), settings).await?;
    let task = tokio::spawn(delivery.run(rx, shutdown));
    Ok(Running {
        handle: ConfigHandle {
            store,
            settings: settings.clone(),
            inputs,
        },
        task,
    })
}

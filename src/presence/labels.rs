//! Devices' own presence timeouts, from their `presence_timeout` labels (protocol.md §17).
//!
//! Owns the task that keeps the presence table's per-device timeouts equal to the stored
//! labels: it reads every device's labels when the labels' epoch (the alert rules' epoch,
//! which every label change bumps, over HTTP, the CLI or another hub) moved, checked
//! every `[presence] labels_poll` or at once when [`Presence::labels_changed`] nudges it.

use super::Presence;
use crate::domain::DeviceName;
use crate::storage::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Follows the stored labels until `stop` is cancelled.
pub async fn follow(
    presence: Arc<Presence>,
    store: Store,
    poll: Duration,
    stop: CancellationToken,
) {
    let mut loaded: Option<i64> = None;
    loop {
        match store.alert_rules_epoch().await {
            Ok(epoch) if loaded != Some(epoch) => match store.labels_by_name().await {
                Ok(labels) => {
                    presence.set_timeouts(timeouts(labels));
                    loaded = Some(epoch);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "presence: cannot read device labels; retrying")
                }
            },
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "presence: cannot read the labels' epoch; retrying")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = presence.labels.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// The devices whose labels give them a presence timeout of their own.
fn timeouts(labels: HashMap<String, crate::domain::Labels>) -> HashMap<DeviceName, Duration> {
    labels
        .into_iter()
        .filter_map(|(name, l)| Some((DeviceName::parse(&name).ok()?, l.presence_timeout()?)))
        .collect()
}

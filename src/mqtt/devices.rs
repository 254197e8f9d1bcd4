//! The ingest worker's device cache: MQTT messages carry no token, so the device named
//! by the topic is looked up in storage (once, then cached).
//!
//! Known devices stay cached until storage's auth epoch changes (every revocation
//! bumps it; checked every `revocation_check`), so a revoked device is refused within
//! about that long. Unknown names are remembered for `unknown_device_ttl`, so a device
//! added later is noticed. The cache holds `device_cache_size` names at most; when
//! full it starts over.

use crate::auth::DeviceRef;
use crate::domain::DeviceName;
use crate::storage::{StorageError, Store};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// What storage says about a device name.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Active(DeviceRef),
    Revoked,
    Unknown,
}

enum Entry {
    Known(Lookup),
    Unknown { until: Instant },
}

pub struct DeviceCache {
    entries: HashMap<DeviceName, Entry>,
    capacity: usize,
    unknown_ttl: Duration,
    epoch: Option<i64>,
}

impl DeviceCache {
    pub fn new(capacity: usize, unknown_ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            unknown_ttl,
            epoch: None,
        }
    }

    pub async fn lookup(
        &mut self,
        store: &Store,
        name: &DeviceName,
    ) -> Result<Lookup, StorageError> {
        match self.entries.get(name) {
            Some(Entry::Known(l)) => return Ok(l.clone()),
            Some(Entry::Unknown { until }) if *until > Instant::now() => {
                return Ok(Lookup::Unknown);
            }
            _ => {}
        }
        if self.epoch.is_none() {
            // The epoch is read before the first lookup, so no revocation slips between.
            self.epoch = Some(store.auth_epoch().await?);
        }
        let found = match store.device_state(name).await? {
            Some((device, false)) => Lookup::Active(device),
            Some((_, true)) => Lookup::Revoked,
            None => Lookup::Unknown,
        };
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
        let entry = match &found {
            Lookup::Unknown => Entry::Unknown {
                until: Instant::now() + self.unknown_ttl,
            },
            known => Entry::Known(known.clone()),
        };
        self.entries.insert(name.clone(), entry);
        Ok(found)
    }

    /// Forgets every device when storage reports a revocation since the last check.
    pub async fn check_revocations(&mut self, store: &Store) {
        match store.auth_epoch().await {
            Ok(epoch) if self.epoch != Some(epoch) => {
                if self.epoch.is_some() {
                    tracing::debug!(
                        "mqtt ingest: a token or device was revoked; device cache cleared"
                    );
                }
                self.entries.clear();
                self.epoch = Some(epoch);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "mqtt ingest: cannot check revocations; will retry")
            }
        }
    }
}

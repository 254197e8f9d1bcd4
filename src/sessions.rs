//! Open sockets: which token each belongs to (so a revocation can close them); a device's
//! socket opening and closing is reported to [`Presence`], which says who is online.
//!
//! Owner: the [`Sessions`] registry, behind one mutex held only for map updates (a
//! `parking_lot` mutex: a panicking socket task cannot poison it for every later one).
//! Each socket task holds a [`SessionGuard`]; dropping it unregisters the socket.
//! The revocation watcher ([`watch_revocations`]) polls the storage's auth epoch and
//! cancels the guards of revoked tokens; socket tasks then close with 1008. A guard's
//! token is a child of the hub's shutdown token, so a socket task waits on one token
//! for both reasons to close (one wait fewer in every idle socket's future).
//!
//! May use: `domain`, `storage`, `presence`. Used by every transport that opens sockets, and `hub`.

use crate::domain::{DeviceName, Timestamp};
use crate::presence::Presence;
use crate::storage::Store;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// (token id, socket id) → cancel on revocation (a child of `Sessions::shutdown`).
    /// One flat ordered map: a token's sockets are one range, and a device with one socket
    /// costs one entry, not a map of its own (~100 bytes more per idle socket).
    by_token: BTreeMap<(i64, u64), CancellationToken>,
}

/// The registry of open sockets.
pub struct Sessions {
    inner: Mutex<Inner>,
    presence: Arc<Presence>,
    /// The hub's shutdown token: every guard's token is its child.
    shutdown: CancellationToken,
}

impl Sessions {
    pub fn new(presence: Arc<Presence>, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            presence,
            shutdown,
        })
    }

    /// Registers a socket of `token_id`; `device` marks that device online.
    pub fn register(self: &Arc<Self>, token_id: i64, device: Option<DeviceName>) -> SessionGuard {
        let revoked = self.shutdown.child_token();
        let mut inner = self.inner.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.by_token.insert((token_id, id), revoked.clone());
        drop(inner);
        if let Some(d) = &device {
            self.presence.connected(d);
        }
        SessionGuard {
            sessions: self.clone(),
            id,
            token_id,
            device,
            revoked,
        }
    }

    /// Who is online, over any transport.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    pub fn is_online(&self, device: &str) -> bool {
        self.presence.is_online(device)
    }

    pub fn online_devices(&self) -> Vec<DeviceName> {
        self.presence.online_devices()
    }

    fn token_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.inner.lock().by_token.keys().map(|k| k.0).collect();
        ids.dedup();
        ids
    }

    /// Cancels every socket of `token_id`.
    fn revoke(&self, token_id: i64) {
        let inner = self.inner.lock();
        let socks = inner.by_token.range((token_id, 0)..=(token_id, u64::MAX));
        socks.for_each(|(_, t)| t.cancel());
    }
}

/// One open socket's registration; dropping it unregisters the socket.
pub struct SessionGuard {
    sessions: Arc<Sessions>,
    id: u64,
    token_id: i64,
    device: Option<DeviceName>,
    revoked: CancellationToken,
}

impl SessionGuard {
    /// Cancelled when this socket must close: its token was revoked, or the hub is
    /// shutting down (tell them apart with the hub's shutdown token).
    pub fn closing(&self) -> &CancellationToken {
        &self.revoked
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions
            .inner
            .lock()
            .by_token
            .remove(&(self.token_id, self.id));
        if let Some(d) = &self.device {
            self.sessions.presence.disconnected(d);
        }
    }
}

/// How much earlier than the previous check a changed grant still counts as new.
const NARROWED_MARGIN: Duration = Duration::from_secs(5);

/// Polls storage every `every` for revocations (from the CLI, another hub or the API)
/// and closes the affected sockets. Ends when `stop` is cancelled.
pub async fn watch_revocations(
    store: Store,
    sessions: Arc<Sessions>,
    every: Duration,
    stop: CancellationToken,
) {
    // `None`: the first tick always checks, so a revocation made between the hub's start
    // and this task's first read is not mistaken for the starting state.
    let mut last: Option<i64> = None;
    // Tokens whose grant changed since then close their sockets: from the previous check on, less a
    // margin for clocks of other hosts (a needless close only costs a reconnect).
    let margin = every + NARROWED_MARGIN;
    let mut since = Timestamp::now().saturating_sub(margin);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(epoch) = store.auth_epoch().await else {
            continue;
        };
        if last == Some(epoch) {
            continue;
        }
        let ids = sessions.token_ids();
        let checked = Timestamp::now();
        match store.revoked_among(&ids, since).await {
            Ok(revoked) => {
                for id in revoked {
                    tracing::info!(
                        token_id = id,
                        "token revoked or its gateway list changed: closing its sockets"
                    );
                    sessions.revoke(id);
                }
                last = Some(epoch);
                since = checked.saturating_sub(margin);
            }
            Err(e) => tracing::warn!(error = %e, "cannot check revocations; will retry"),
        }
    }
}

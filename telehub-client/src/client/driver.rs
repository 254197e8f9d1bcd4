//! The client task: connect, run a session, and after a failure wait a backoff delay
//! (exponential, full jitter) and connect again — until stopped, or until a drain has
//! emptied the outbox or run out of time. Over HTTP there is no connection to keep:
//! [`super::http_session`] runs instead, with [`super::http_commands`] beside it when
//! the client takes commands. A persister task saves the outbox on a timer
//! when persistence is on, and once more at the end.

use super::address::Target;
use super::http::HttpLink;
use super::session::{End, Session, sleep_until_some};
use super::{
    ClientConfig, ClientError, ClientEvent, Mode, PersistConfig, Shared, Transport, http_commands,
    http_session, persist,
};
use crate::backoff::Backoff;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A connection that lasted this long was healthy: the next failure starts the
/// backoff over, even if no reply came (an idle device gets none).
const STABLE: Duration = Duration::from_secs(10);

/// How the client reaches the hub, prepared once when it starts.
pub(super) enum Link {
    Ws(Target),
    Http(HttpLink),
}

impl Link {
    pub fn new(cfg: &ClientConfig) -> Result<Self, ClientError> {
        Ok(match cfg.transport {
            Transport::WebSocket => Self::Ws(Target::new(cfg)?),
            Transport::Http | Transport::Line => Self::Http(HttpLink::new(cfg)?),
        })
    }
}

pub(super) async fn drive(
    shared: Arc<Shared>,
    cfg: Arc<ClientConfig>,
    link: Link,
    mut mode: watch::Receiver<Mode>,
) {
    let stop_saving = CancellationToken::new();
    let saver = cfg
        .persist
        .clone()
        .map(|p| tokio::spawn(save_periodically(shared.clone(), p, stop_saving.clone())));
    match &link {
        Link::Ws(target) => connect_and_resend(&shared, &cfg, target, &mut mode).await,
        Link::Http(http) => {
            tracing::debug!(url = http.url(), "device client started");
            let stop_commands = CancellationToken::new();
            let commands = shared.commands.clone().and_then(|side| {
                let link = http_commands::CommandLink::new(cfg.clone())
                    .inspect_err(|e| tracing::error!(error = %e, "commands over HTTP are off"))
                    .ok()?;
                Some(tokio::spawn(link.run(side, stop_commands.clone())))
            });
            http_session::run(&shared, &cfg, http, &mut mode).await;
            stop_commands.cancel();
            if let Some(task) = commands {
                let _ = task.await;
            }
        }
    }
    shared.connected.store(false, Ordering::Relaxed);
    if let (Some(saver), Some(p)) = (saver, &cfg.persist) {
        stop_saving.cancel();
        let mut saved = saver.await.unwrap_or((u64::MAX, u64::MAX));
        save_if_changed(&shared, p, &mut saved).await;
    }
    let s = shared.stats();
    tracing::debug!(
        acked = s.acked,
        pending = s.pending,
        "device client stopped"
    );
}

/// The WebSocket transport: connect → session → backoff → connect again.
async fn connect_and_resend(
    shared: &Shared,
    cfg: &ClientConfig,
    target: &Target,
    mode: &mut watch::Receiver<Mode>,
) {
    let mut backoff = Backoff::new(cfg.backoff);
    let mut next_id = 1u64;
    let mut opened = 0u64;
    tracing::debug!(url = target.address().url(), "device client started");
    while !finished(shared, mode) {
        let attempt = tokio::select! {
            r = target.connect(cfg.connect_timeout) => r,
            _ = stopped(shared, mode) => break,
        };
        let delay = match attempt {
            Ok(ws) => {
                opened += 1;
                if opened > 1 {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                shared.connected.store(true, Ordering::Relaxed);
                shared.emit(ClientEvent::Connected);
                tracing::debug!("connected");
                let started = Instant::now();
                let mut session = Session::new(ws, shared, cfg, &mut next_id);
                let end = session.run(mode).await;
                let replied = session.replied;
                drop(session);
                shared.connected.store(false, Ordering::Relaxed);
                shared.outbox().requeue_inflight(Instant::now());
                let reason = match end {
                    End::Drained | End::Stopped => break,
                    End::Lost(reason) => reason,
                };
                if replied || started.elapsed() >= STABLE {
                    backoff.reset();
                }
                tracing::debug!(%reason, "connection lost");
                shared.emit(ClientEvent::Disconnected { reason });
                backoff.next_delay()
            }
            Err(failure) => {
                // The hub's Retry-After, when it sent one, is a lower bound.
                let delay = backoff
                    .next_delay()
                    .max(failure.retry_after.unwrap_or_default());
                let reason = failure.reason;
                tracing::debug!(%reason, ?delay, "cannot connect");
                shared.emit(ClientEvent::ConnectFailed {
                    reason: reason.clone(),
                    retry_in: delay,
                });
                if failure.permanent && cfg.give_up_when_permanent {
                    tracing::debug!(%reason, "giving up: retrying cannot help");
                    shared.emit(ClientEvent::GaveUp { reason });
                    break;
                }
                delay
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(shared, mode) => break,
        }
    }
}

/// Whether the task should end now: stopped (or the handle is gone), or draining with
/// nothing left or no time left.
fn finished(shared: &Shared, mode: &mut watch::Receiver<Mode>) -> bool {
    if mode.has_changed().is_err() {
        return true;
    }
    match *mode.borrow_and_update() {
        Mode::Run => false,
        Mode::Stop => true,
        Mode::Drain { deadline } => Instant::now() >= deadline || shared.outbox().is_empty(),
    }
}

/// Resolves once the task should end while it is not connected (see [`finished`]).
async fn stopped(shared: &Shared, mode: &mut watch::Receiver<Mode>) {
    loop {
        let deadline = match *mode.borrow_and_update() {
            Mode::Stop => return,
            Mode::Drain { .. } if shared.outbox().is_empty() => return,
            Mode::Drain { deadline } => Some(deadline),
            Mode::Run => None,
        };
        tokio::select! {
            changed = mode.changed() => if changed.is_err() {
                return;
            },
            _ = sleep_until_some(deadline) => return,
        }
    }
}

/// Saves the outbox (and the command book) every `interval` when it changed; returns
/// the last saved versions.
async fn save_periodically(
    shared: Arc<Shared>,
    p: PersistConfig,
    stop: CancellationToken,
) -> (u64, u64) {
    let mut saved = (shared.outbox().version(), book_version(&shared));
    let mut tick = tokio::time::interval(p.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => save_if_changed(&shared, &p, &mut saved).await,
            _ = stop.cancelled() => return saved,
        }
    }
}

fn book_version(shared: &Shared) -> u64 {
    shared.commands.as_ref().map_or(0, |c| c.book().version())
}

async fn save_if_changed(shared: &Shared, p: &PersistConfig, saved: &mut (u64, u64)) {
    if let Some(c) = &shared.commands {
        let (version, snapshot) = {
            let book = c.book();
            (
                book.version(),
                (book.version() != saved.1).then(|| book.snapshot()),
            )
        };
        if let Some(snapshot) = snapshot {
            let path = p.path.clone();
            match tokio::task::spawn_blocking(move || persist::save_commands(&path, &snapshot))
                .await
            {
                Ok(Ok(())) => saved.1 = version,
                Ok(Err(e)) => {
                    tracing::warn!(path = %p.path.display(), error = %e, "cannot save the command book")
                }
                Err(e) => tracing::warn!(error = %e, "command book save task failed"),
            }
        }
    }
    let (version, snapshot) = {
        let ob = shared.outbox();
        if ob.version() == saved.0 {
            return;
        }
        (ob.version(), ob.snapshot())
    };
    let path = p.path.clone();
    match tokio::task::spawn_blocking(move || persist::save(&path, &snapshot)).await {
        Ok(Ok(())) => saved.0 = version,
        Ok(Err(e)) => {
            tracing::warn!(path = %p.path.display(), error = %e, "cannot save the outbox")
        }
        Err(e) => tracing::warn!(error = %e, "outbox save task failed"),
    }
}

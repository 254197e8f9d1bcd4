//! The forwarder task of one port: owns the [`Outbox`] and the hub connection.
//!
//! It takes parsed lines from the port's reader (channel below), batches them, writes
//! messages to `/v1/ingest` while at most `max_inflight` are unanswered, and settles
//! each on its reply. When the hub is unreachable, stops answering (`ack_timeout`) or
//! drops the socket, every unanswered message goes back to the queue and is resent
//! after a reconnect with exponential back-off and jitter. The port's reader never
//! waits for the hub: an outage only fills the buffer.
//!
//! Commands ([`super::commands`]): the hub's command frames go to the port as `!cmd`
//! lines, the devices' answers to the hub, written with the messages.
//!
//! Channel: reader → forwarder, one [`PortLine`] per good line; it closes when the
//! reader stops (shutdown), after which the forwarder drains what it holds for up to
//! `drain_timeout` and exits.

use super::commands::{PortLine, Relay};
use super::outbox::Outbox;
use super::stats::{PortStats, bump};
use super::uplink::{HubSocket, Outcome, Target, decode_reply, encode_message};
use crate::backoff::{Backoff, BackoffConfig, Jitter};
use crate::client::ConnectFailure;
use crate::config::SerialPortSettings;
use crate::protocol::ingest::{DeviceReading, ErrorCode};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often the state file is synced to disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);

enum Link {
    Down { retry_at: Instant },
    Connecting(BoxFuture<'static, Result<Box<HubSocket>, ConnectFailure>>),
    Up(Box<HubSocket>),
}

enum LinkEvent {
    RetryDue,
    Connected(Result<Box<HubSocket>, ConnectFailure>),
    Frame(Option<Result<Frame, tungstenite::Error>>),
}

/// Waits for whatever the link's state waits for (cancel-safe).
async fn link_event(link: &mut Link) -> LinkEvent {
    match link {
        Link::Down { retry_at } => {
            sleep_until(*retry_at).await;
            LinkEvent::RetryDue
        }
        Link::Connecting(f) => LinkEvent::Connected(f.await),
        Link::Up(ws) => LinkEvent::Frame(ws.next().await),
    }
}

async fn sleep_until_some(t: Option<Instant>) {
    match t {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

enum Event {
    Shutdown,
    Line(Option<PortLine>),
    Link(LinkEvent),
    /// The earliest of: a batch to seal, an ack overdue, a hold over, the drain over.
    Timer,
    Sync,
}

pub struct Forwarder {
    pub settings: Arc<SerialPortSettings>,
    pub hub: Arc<Target>,
    pub outbox: Outbox,
    pub lines: mpsc::Receiver<PortLine>,
    pub commands: Relay,
    pub stats: Arc<PortStats>,
    pub shutdown: CancellationToken,
}

/// State of the loop besides the outbox.
struct Run {
    link: Link,
    reconnect: Backoff,
    /// Back-off after `unavailable` / `rate_limited`: nothing is sent until `hold_until`.
    transient: Backoff,
    hold_until: Option<Instant>,
    connected_once: bool,
    /// Set on shutdown: the time by which draining gives up.
    drain_until: Option<Instant>,
    lines_open: bool,
    /// Set while new lines are being dropped because the buffer is full.
    dropping: u64,
}

impl Forwarder {
    pub async fn run(mut self) {
        let s = self.settings.clone();
        let reconnect = Backoff::with_jitter(
            BackoffConfig {
                initial: s.reconnect_min,
                max: s.reconnect_max.max(s.reconnect_min),
            },
            Jitter::Equal,
        );
        let mut run = Run {
            link: Link::Down {
                retry_at: Instant::now(),
            },
            reconnect: reconnect.clone(),
            transient: reconnect,
            hold_until: None,
            connected_once: false,
            drain_until: None,
            lines_open: true,
            dropping: 0,
        };
        let mut sync = tokio::time::interval(SYNC_EVERY);
        loop {
            let now = Instant::now();
            if run.drain_until.is_some() {
                self.outbox.seal_due(now, true);
                if !run.lines_open && self.outbox.is_empty() {
                    break;
                }
            }
            let ack_deadline = match run.link {
                Link::Up(_) => self.outbox.oldest_inflight().map(|t| t + s.ack_timeout),
                _ => None,
            };
            // One timer for every deadline: cheaper than one per kind at hundreds of lines/s.
            let deadline = [
                self.outbox.next_seal(),
                ack_deadline,
                run.hold_until,
                run.drain_until,
            ]
            .into_iter()
            .flatten()
            .min();
            let event = tokio::select! {
                _ = self.shutdown.cancelled(), if run.drain_until.is_none() => Event::Shutdown,
                line = self.lines.recv(), if run.lines_open => Event::Line(line),
                ev = link_event(&mut run.link) => Event::Link(ev),
                _ = sleep_until_some(deadline) => Event::Timer,
                _ = sync.tick() => Event::Sync,
            };
            let now = Instant::now();
            match event {
                Event::Shutdown => {
                    run.drain_until = Some(now + s.drain_timeout);
                }
                Event::Line(Some(PortLine::Readings(readings))) => {
                    self.take_line(&mut run, readings, now)
                }
                Event::Line(Some(PortLine::Answer(answer))) => self.commands.from_port(answer),
                Event::Line(Some(PortLine::Config(line))) => self.commands.config_from_port(line),
                Event::Line(None) => run.lines_open = false,
                Event::Link(ev) => self.on_link_event(&mut run, ev, now),
                Event::Timer => {
                    let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
                    if due(run.drain_until) {
                        break;
                    }
                    if due(run.hold_until) {
                        run.hold_until = None;
                    }
                    if due(ack_deadline) {
                        let why = format!("no reply from the hub within {:?}", s.ack_timeout);
                        self.link_lost(&mut run, &why);
                    }
                    self.outbox.seal_due(now, false);
                }
                Event::Sync => {
                    self.outbox.sync();
                    self.commands.sync();
                }
            }
            if run.hold_until.is_none()
                && let Link::Up(ws) = &mut run.link
                && let Err(e) =
                    send_ready(ws, &mut self.outbox, &mut self.commands, s.ack_timeout).await
            {
                self.link_lost(&mut run, &e.to_string());
            }
        }
        self.finish(run).await;
    }

    fn take_line(&mut self, run: &mut Run, readings: Vec<DeviceReading>, now: Instant) {
        let n = readings.len() as u64;
        if self.outbox.add(readings, now) {
            if run.dropping > 0 {
                info!(
                    dropped = run.dropping,
                    "buffer has room again; lines are kept from now on"
                );
                run.dropping = 0;
            }
            return;
        }
        if run.dropping == 0 {
            warn!(
                buffered = self.outbox.held(),
                "buffer full: dropping new lines until the hub acks; raise --buffer (bridge.serial.buffer) to ride out longer outages"
            );
        }
        run.dropping += n;
        self.stats.dropped.fetch_add(n, Relaxed);
    }

    fn on_link_event(&mut self, run: &mut Run, ev: LinkEvent, now: Instant) {
        match ev {
            LinkEvent::RetryDue => {
                let (hub, timeout) = (self.hub.clone(), self.settings.ack_timeout);
                run.link =
                    Link::Connecting(Box::pin(
                        async move { hub.connect(timeout).await.map(Box::new) },
                    ));
            }
            LinkEvent::Connected(Ok(ws)) => {
                run.link = Link::Up(ws);
                self.commands.connected();
                run.reconnect.reset();
                if run.connected_once {
                    bump(&self.stats.reconnects);
                }
                run.connected_once = true;
                info!(hub = %self.hub.address().url(), buffered = self.outbox.held(), "connected to the hub");
            }
            LinkEvent::Connected(Err(e)) => {
                // A busy hub's `Retry-After` is honoured.
                let delay = run
                    .reconnect
                    .next_delay()
                    .max(e.retry_after.unwrap_or_default());
                run.link = Link::Down {
                    retry_at: now + delay,
                };
                warn!(hub = %self.hub.address().url(), buffered = self.outbox.held(), "cannot connect to the hub: {}; retrying in {delay:.1?}", e.reason);
            }
            LinkEvent::Frame(Some(Ok(Frame::Text(t)))) => match decode_reply(t.as_str()) {
                Some((id, outcome)) => self.settle(run, id, outcome, now),
                None if self.commands.from_hub(t.as_str()) => {}
                None => {
                    debug!(frame = %crate::domain::untrusted(t.as_str()), "ignoring a frame that is not a reply")
                }
            },
            LinkEvent::Frame(Some(Ok(Frame::Close(f)))) => {
                let why = f.map_or("no reason".into(), |f| format!("{} {}", f.code, f.reason));
                self.link_lost(run, &format!("the hub closed the connection ({why})"));
            }
            LinkEvent::Frame(Some(Ok(_))) => {}
            LinkEvent::Frame(Some(Err(e))) => self.link_lost(run, &e.to_string()),
            LinkEvent::Frame(None) => self.link_lost(run, "connection ended"),
        }
    }

    /// Acts on the hub's answer to message `id`.
    fn settle(&mut self, run: &mut Run, id: u64, outcome: Outcome, now: Instant) {
        let (code, detail) = match outcome {
            Outcome::Stored => {
                if let Some(m) = self.outbox.complete(id) {
                    run.transient.reset();
                    self.stats
                        .forwarded
                        .fetch_add(m.readings.len() as u64, Relaxed);
                }
                return;
            }
            Outcome::Refused { code, detail } => (code, detail),
        };
        match code {
            ErrorCode::Unavailable | ErrorCode::RateLimited => {
                self.outbox.retry(id);
                let delay = run.transient.next_delay();
                run.hold_until = Some(now + delay);
                warn!(error = code.as_str(), detail = %crate::domain::untrusted(&detail), "the hub asked to resend later; resending in {delay:.1?}");
            }
            // Find the bad reading by halving, so the good ones are still stored.
            ErrorCode::InvalidReading if self.outbox.split(id) => {
                debug!(detail = %crate::domain::untrusted(&detail), "invalid reading in a batch: resending it in halves");
            }
            ErrorCode::TooManyReadings => {
                if let Some(m) = self.outbox.complete_or_split(id) {
                    self.refused(m.device.as_ref(), m.readings.len(), code, &detail);
                } else {
                    warn!(detail = %crate::domain::untrusted(&detail), "the hub takes fewer readings per message: lower --batch (bridge.serial.batch); resending in halves");
                }
            }
            _ => {
                if let Some(m) = self.outbox.complete(id) {
                    self.refused(m.device.as_ref(), m.readings.len(), code, &detail);
                }
            }
        }
    }

    fn refused(
        &self,
        device: Option<&crate::domain::DeviceName>,
        n: usize,
        code: ErrorCode,
        detail: &str,
    ) {
        self.stats.refused(code, n);
        let device = device.map_or("(gateway)", |d| d.as_str());
        let hint = match code {
            ErrorCode::ForbiddenDevice => {
                "; allow it with `telehub device gateway GATEWAY --add DEVICE` (the bridge then reconnects by itself)"
            }
            _ => "",
        };
        warn!(
            device,
            readings = n,
            error = code.as_str(),
            detail = %crate::domain::untrusted(detail),
            "the hub refused readings; not resent{hint}"
        );
    }

    fn link_lost(&mut self, run: &mut Run, why: &str) {
        self.outbox.requeue_inflight();
        let delay = run.reconnect.next_delay();
        run.link = Link::Down {
            retry_at: Instant::now() + delay,
        };
        warn!(hub = %self.hub.address().url(), buffered = self.outbox.held(), "hub connection lost: {why}; reconnecting in {delay:.1?}");
    }

    async fn finish(mut self, run: Run) {
        if let Link::Up(mut ws) = run.link {
            let _ = tokio::time::timeout(Duration::from_secs(1), (*ws).close(None)).await;
        }
        self.outbox.seal_due(Instant::now(), true);
        self.outbox.sync();
        self.commands.sync();
        let left = self.outbox.held();
        if left == 0 {
            return;
        }
        match &self.settings.state_file {
            Some(f) => info!(
                readings = left,
                state_file = %f.display(),
                "unacked readings kept in the state file; they are sent on the next start"
            ),
            None => warn!(
                readings = left,
                "unacked readings are lost at exit: use --state-file to keep them across restarts"
            ),
        }
    }
}

/// Why writing to the hub failed. Nothing is lost: the bridge reconnects and sends
/// what the hub has not answered again.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("cannot write to the hub: {0}")]
    Socket(#[from] tungstenite::Error),
    #[error(
        "cannot write to the hub: writing took longer than {0:?} (a slow network or a busy hub; \
         raise ack_timeout if it persists)"
    )]
    Timeout(Duration),
}

/// Writes every message the in-flight window allows and every command answer
/// waiting, then flushes; bounded by `timeout`.
async fn send_ready(
    ws: &mut HubSocket,
    outbox: &mut Outbox,
    commands: &mut Relay,
    timeout: Duration,
) -> Result<(), SendError> {
    let write = async {
        let mut any = false;
        while let Some(m) = outbox.next_to_send(Instant::now()) {
            let text = encode_message(m.id, m.device.as_ref(), &m.readings);
            ws.feed(Frame::Text(text.into())).await?;
            any = true;
        }
        while let Some(text) = commands.next_frame() {
            ws.feed(Frame::Text(text.into())).await?;
            any = true;
        }
        if any {
            ws.flush().await?;
        }
        Ok::<_, tungstenite::Error>(())
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SendError::Timeout(timeout)),
    }
}

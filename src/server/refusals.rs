//! Refused requests in the log: a device or dashboard turned away before the upgrade
//! (401, 403, 429, 503: "handshake refused") or a refused `POST /v1/ingest` ("HTTP ingest
//! refused") leaves a warning line with the peer, the path, the status and the reason it
//! was also told, so "my device can't connect" can be read from the log.
//!
//! Sampled, so that no client can flood the log without a token: per peer address and
//! cause (route kind and status), the first refusal of a `[log] refusal_window` is logged
//! whole; the others are counted and summed up in one line when the window ends ("N more
//! handshakes refused from 127.0.0.1 in the last 10s"). At most `[log] refusal_peers`
//! peers are counted apart; beyond them, refusals share one "other peers" count. Every
//! untrusted value (the reason may quote an `Origin`) is capped by
//! [`crate::domain::untrusted`].

use super::HubState;
use super::listener::ConnInfo;
use crate::config::LogSettings;
use crate::domain::untrusted;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The detail of an error response, attached by [`super::ApiError`] for this log.
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

/// What was refused: the word the log line uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// A WebSocket upgrade (`GET /v1/ingest`, `GET /v1/live`).
    Handshake,
    /// A device's `POST /v1/ingest`.
    HttpIngest,
}

impl Refused {
    fn message(self) -> &'static str {
        match self {
            Refused::Handshake => "handshake refused",
            Refused::HttpIngest => "HTTP ingest refused",
        }
    }
    fn plural(self) -> &'static str {
        match self {
            Refused::Handshake => "handshakes",
            Refused::HttpIngest => "HTTP ingest requests",
        }
    }
}

/// Who was refused and why: the unit refusals are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Cause {
    /// `None`: one of the peers beyond `refusal_peers`.
    peer: Option<IpAddr>,
    what: Refused,
    status: u16,
}

/// Refusals left out of the log since the cause's last logged line.
struct Window {
    started: Instant,
    more: u64,
}

/// A summary line due: `more` refusals of `cause` were not logged in the window.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    cause: Cause,
    more: u64,
}

/// The sampler's state, owned by the [`HubState`]; the middleware records into it and
/// [`flush_refusals`] ends windows.
pub struct RefusalLog {
    window: Duration,
    max_peers: usize,
    open: Mutex<HashMap<Cause, Window>>,
}

impl RefusalLog {
    pub fn new(s: &LogSettings) -> Self {
        Self {
            window: s.refusal_window,
            max_peers: s.refusal_peers,
            open: Mutex::default(),
        }
    }

    /// Counts a refusal; true when it should be logged whole (the first of its window).
    fn admit(&self, peer: Option<IpAddr>, what: Refused, status: u16, now: Instant) -> bool {
        let mut open = self.open.lock();
        let mut cause = Cause { peer, what, status };
        if !open.contains_key(&cause) && open.len() >= self.max_peers {
            cause.peer = None;
        }
        match open.get_mut(&cause) {
            Some(w) => {
                w.more += 1;
                false
            }
            None => {
                open.insert(
                    cause,
                    Window {
                        started: now,
                        more: 0,
                    },
                );
                true
            }
        }
    }

    /// Ends every window older than the window length; returns the summaries due.
    fn end_windows(&self, now: Instant) -> Vec<Summary> {
        let mut due = Vec::new();
        self.open.lock().retain(|cause, w| {
            if now.duration_since(w.started) < self.window {
                return true;
            }
            if w.more > 0 {
                due.push(Summary {
                    cause: *cause,
                    more: w.more,
                });
            }
            false
        });
        due
    }

    fn log_summary(&self, s: &Summary) {
        let window = humantime::format_duration(self.window);
        let from = match s.cause.peer {
            Some(ip) => ip.to_string(),
            None => "other peers".to_owned(),
        };
        tracing::warn!(
            peer = %from,
            status = s.cause.status,
            refused = s.more,
            "{} more {} refused from {from} in the last {window}",
            s.more,
            s.cause.what.plural(),
        );
    }
}

/// Middleware for `/v1/ingest` and `/v1/live`: logs refused requests, sampled.
pub async fn log_refused(State(hub): State<Arc<HubState>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer);
    let what = if req.method() == Method::POST {
        Refused::HttpIngest
    } else {
        Refused::Handshake
    };
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error())
        && hub
            .refusals
            .admit(peer.map(|p| p.ip()), what, status.as_u16(), Instant::now())
    {
        let reason = resp
            .extensions()
            .get::<Refusal>()
            .map(|r| r.0.as_str())
            .unwrap_or("");
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        tracing::warn!(
            %peer,
            path = %untrusted(&path),
            status = status.as_u16(),
            reason = %untrusted(reason),
            "{}",
            what.message()
        );
    }
    resp
}

/// Ends the refusal windows every half window and logs their summaries, until shutdown.
pub async fn flush_refusals(hub: Arc<HubState>) {
    let log = &hub.refusals;
    let mut tick = tokio::time::interval((log.window / 2).max(Duration::from_millis(50)));
    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => return,
            _ = tick.tick() => {
                for s in log.end_windows(Instant::now()) {
                    log.log_summary(&s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(peers: usize) -> RefusalLog {
        RefusalLog::new(&LogSettings {
            refusal_peers: peers,
            ..LogSettings::default()
        })
    }

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn the_first_refusal_of_a_window_is_logged_and_the_rest_summed_up() {
        let l = log(8);
        let t = Instant::now();
        assert!(l.admit(ip(1), Refused::Handshake, 401, t));
        for _ in 0..99 {
            assert!(!l.admit(ip(1), Refused::Handshake, 401, t));
        }
        // Another cause of the same peer is logged apart.
        assert!(l.admit(ip(1), Refused::HttpIngest, 401, t));
        assert!(l.end_windows(t + Duration::from_secs(1)).is_empty());
        let due = l.end_windows(t + l.window);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].more, 99);
        assert!(l.admit(ip(1), Refused::Handshake, 401, t + l.window));
    }

    #[test]
    fn peers_beyond_the_cap_share_one_count() {
        let l = log(2);
        let t = Instant::now();
        assert!(l.admit(ip(1), Refused::Handshake, 401, t));
        assert!(l.admit(ip(2), Refused::Handshake, 401, t));
        assert!(l.admit(ip(3), Refused::Handshake, 401, t));
        for n in 4..200 {
            assert!(!l.admit(ip(n), Refused::Handshake, 401, t));
        }
        assert_eq!(l.open.lock().len(), 3);
        let due = l.end_windows(t + l.window);
        assert_eq!(due[0].cause.peer, None);
        assert_eq!(due[0].more, 196);
    }
}

//! Connection abuse limits: per-IP connection counts and a global handshake rate (token
//! bucket) for reconnect storms, configured in `[limits]`. Per-device reading rates
//! belong to the ingest pipeline ([`crate::ingest::rate`]).
//!
//! A handshake turned away by the rate gets a turn in its `Retry-After`: each refusal is
//! told to come back one handshake interval (1 / `handshakes_per_second`) after the one
//! refused before it, so a storm comes back at the rate the hub admits instead of all at
//! once after the same second.

use super::{ApiError, HubState};
use crate::config::LimitSettings;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// The longest `Retry-After` given to a refused handshake.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The hub's connection limiters.
pub struct Limits {
    handshakes: Direct,
    /// When the last refused handshake was told to come back.
    next_turn: Mutex<Instant>,
    turn_interval: Duration,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("≥ 1")
}

impl Limits {
    pub fn new(s: &LimitSettings) -> Self {
        Self {
            handshakes: RateLimiter::direct(
                Quota::per_second(nz(s.handshakes_per_second)).allow_burst(nz(s.handshake_burst)),
            ),
            next_turn: Mutex::new(Instant::now()),
            turn_interval: Duration::from_secs(1) / s.handshakes_per_second.max(1),
            per_ip: Arc::default(),
            max_per_ip: s.max_connections_per_ip,
        }
    }

    /// Takes a handshake slot, or says how long to wait: the caller's turn, in whole
    /// seconds (1 to 60).
    pub fn handshake(&self) -> Result<(), u64> {
        self.handshakes
            .check()
            .map_err(|_| self.turn(Instant::now()))
    }

    /// The next turn after the last one given out (or after `now`), in seconds from `now`.
    fn turn(&self, now: Instant) -> u64 {
        let mut next = self.next_turn.lock();
        let turn = ((*next).max(now) + self.turn_interval).min(now + MAX_RETRY_AFTER);
        *next = turn;
        ((turn - now).as_secs_f64().ceil() as u64).max(1)
    }

    /// Registers a connection from `ip`, unless that IP is at its limit.
    pub fn connect(&self, ip: IpAddr) -> Option<IpGuard> {
        let mut m = self.per_ip.lock();
        let n = m.entry(ip).or_default();
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            ip,
            map: self.per_ip.clone(),
        })
    }
}

/// One counted connection; dropping it uncounts it.
pub struct IpGuard {
    ip: IpAddr,
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut m = self.map.lock();
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A WebSocket handshake allowed by the global handshake rate. Listed first among a
/// handler's extractors so a reconnect storm is turned away before any token lookup.
pub struct HandshakeSlot;

impl FromRequestParts<Arc<HubState>> for HandshakeSlot {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, hub: &Arc<HubState>) -> Result<Self, ApiError> {
        hub.limits
            .handshake()
            .map(|()| HandshakeSlot)
            .map_err(|wait| {
                hub.metrics.refused("handshake_rate");
                ApiError::unavailable("too many connections are being opened at once; retry later")
                    .retry_after(wait)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_handshakes_get_turns_at_the_admitted_rate() {
        let l = Limits::new(&LimitSettings {
            handshakes_per_second: 100,
            ..Default::default()
        });
        let now = Instant::now();
        let waits: Vec<u64> = (0..1000).map(|_| l.turn(now)).collect();
        // 1,000 refusals at 100/s: turns spread over 10 s, about 100 per second.
        assert_eq!(waits[0], 1);
        assert_eq!(waits[99], 1);
        assert_eq!(waits[100], 2);
        assert_eq!(waits[999], 10);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        // Later, the queue has drained: the next refusal waits one second again.
        assert_eq!(l.turn(now + Duration::from_secs(30)), 1);
        // A queue longer than the cap shares the last turn.
        let far: Vec<u64> = (0..10_000).map(|_| l.turn(now)).collect();
        assert_eq!(*far.last().unwrap(), 60);
    }

    #[test]
    fn per_ip_counts_are_released_on_drop() {
        let l = Limits::new(&LimitSettings {
            max_connections_per_ip: 2,
            ..Default::default()
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = l.connect(ip).unwrap();
        let _b = l.connect(ip).unwrap();
        assert!(l.connect(ip).is_none());
        assert!(l.connect("10.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(l.connect(ip).is_some());
    }

    #[test]
    fn handshakes_beyond_the_burst_wait() {
        let l = Limits::new(&LimitSettings {
            handshakes_per_second: 1,
            handshake_burst: 2,
            ..Default::default()
        });
        assert!(l.handshake().is_ok() && l.handshake().is_ok());
        assert_eq!(l.handshake(), Err(1));
    }
}

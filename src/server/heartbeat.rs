//! The ping/idle heartbeat of WebSockets, one wheel per socket kind instead of a timer per
//! socket.
//!
//! A tokio timer per socket costs every idle socket a boxed `Sleep` in the runtime's timer
//! wheel. Here each socket kind (device, dashboard) has one [`Wheel`]: a ring of slots
//! (notifiers) that one task ticks in turn, each slot once per `ping_interval`. A socket
//! joins a slot when it opens (round robin, so pings stay spread over the interval) and
//! keeps one waiter on it in its own future; at each tick of its slot it pings, or closes
//! when nothing arrived for `idle_timeout` ([`Heartbeat`]). The first ping comes within one
//! `ping_interval` of the connection, and an idle peer is noticed within `idle_timeout` +
//! `ping_interval`, as with a timer per socket.

use crate::config::SocketSettings;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// The most slots a wheel has (more would only tick more often).
const MAX_SLOTS: u32 = 64;
/// The shortest time between two ticks of a wheel.
const MIN_TICK: Duration = Duration::from_millis(10);

/// One ring of heartbeat slots for one socket kind.
pub struct Wheel {
    slots: Box<[Notify]>,
    /// The slot the next socket joins.
    next: AtomicUsize,
    ping_interval: Duration,
    idle_timeout: Duration,
}

impl Wheel {
    pub fn new(s: &SocketSettings) -> Self {
        let n = (s.ping_interval.as_nanos() / MIN_TICK.as_nanos()).clamp(1, MAX_SLOTS as u128);
        Self {
            slots: (0..n).map(|_| Notify::new()).collect(),
            next: AtomicUsize::new(0),
            ping_interval: s.ping_interval,
            idle_timeout: s.idle_timeout,
        }
    }

    /// A new socket's slot (wait on it with `notified()`, kept pinned across the socket's
    /// loop so that no tick is missed while it works) and its idle clock.
    pub fn join(&self) -> (&Notify, Heartbeat) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let beat = Heartbeat {
            last_heard: Instant::now(),
            idle_timeout: self.idle_timeout,
        };
        (&self.slots[i], beat)
    }

    /// Ticks the slots in turn, each once per `ping_interval`, until `stop`.
    pub async fn run(&self, stop: CancellationToken) {
        let every = self.ping_interval / self.slots.len() as u32;
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for slot in self.slots.iter().cycle() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => slot.notify_waiters(),
            }
        }
    }
}

/// What a socket does at its slot's tick.
pub enum Beat {
    Ping,
    Idle,
}

/// One socket's idle clock.
pub struct Heartbeat {
    last_heard: Instant,
    idle_timeout: Duration,
}

impl Heartbeat {
    /// Call whenever anything arrives from the peer.
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// At a tick: ping, or give up on an idle peer.
    pub fn beat(&self) -> Beat {
        if self.last_heard.elapsed() >= self.idle_timeout {
            Beat::Idle
        } else {
            Beat::Ping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(ping_ms: u64, idle_ms: u64) -> Wheel {
        Wheel::new(&SocketSettings {
            ping_interval: Duration::from_millis(ping_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            ..crate::config::IngestSettings::default().socket()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn every_socket_beats_once_per_interval_and_an_idle_one_is_noticed() {
        let w = std::sync::Arc::new(wheel(1_000, 2_500));
        assert_eq!(w.slots.len(), 64);
        let stop = CancellationToken::new();
        let ticking = tokio::spawn({
            let (w, stop) = (w.clone(), stop.clone());
            async move { w.run(stop).await }
        });
        let start = Instant::now();
        let (slot, beat) = w.join();
        let (other, _) = w.join();
        assert!(
            !std::ptr::eq(slot, other),
            "sockets are spread over the slots"
        );
        let mut tick = std::pin::pin!(slot.notified());
        let mut beats = Vec::new();
        loop {
            tick.as_mut().await;
            tick.set(slot.notified());
            let at = start.elapsed();
            match beat.beat() {
                Beat::Ping => beats.push(at),
                Beat::Idle => {
                    // Quiet since the start: noticed at the first tick past 2.5 s.
                    assert!(
                        at >= Duration::from_millis(2_500) && at < Duration::from_millis(3_500),
                        "{at:?}"
                    );
                    break;
                }
            }
        }
        // Pings at its slot's ticks, one interval apart, until the tick past 2.5 s.
        assert_eq!(beats.len(), 3, "{beats:?}");
        assert!(beats[0] <= Duration::from_secs(1), "{beats:?}");
        assert!(
            beats
                .windows(2)
                .all(|w| w[1] - w[0] == Duration::from_secs(1)),
            "{beats:?}"
        );
        stop.cancel();
        ticking.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_is_not_missed_while_the_socket_is_busy() {
        let w = std::sync::Arc::new(wheel(100, 1_000));
        let stop = CancellationToken::new();
        let ticking = tokio::spawn({
            let (w, stop) = (w.clone(), stop.clone());
            async move { w.run(stop).await }
        });
        let (slot, _) = w.join();
        let tick = std::pin::pin!(slot.notified());
        tokio::task::yield_now().await; // the wheel starts turning
        // The socket is busy (not polling its waiter) across its slot's tick at 10 ms …
        tokio::time::advance(Duration::from_millis(150)).await;
        // … and still sees that tick, not the slot's next one (100 ms later).
        let seen = tokio::time::timeout(Duration::from_millis(50), tick).await;
        assert!(seen.is_ok(), "the tick during the busy time was kept");
        stop.cancel();
        ticking.await.unwrap();
    }
}

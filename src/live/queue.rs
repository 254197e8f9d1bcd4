//! A dashboard client's outgoing queue: bounded, drop-newest when full, with a count
//! of what was dropped (reported to the client as `{"lagged": N}`).
//!
//! Owner: one queue per client. The fan-out task pushes (never waits); the client's
//! socket task drains everything queued at once and writes it in as few frames as it can.

pub use crate::protocol::live::Item;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    lagged: u64,
    closed: bool,
}

/// What a drain took out of the queue.
#[derive(Debug, Default)]
pub struct Drained {
    pub items: Vec<Item>,
    pub lagged: u64,
}

pub struct ClientQueue {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
}

impl ClientQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity,
        }
    }

    /// Queues `items` in order, dropping (and counting) readings that do not fit.
    /// Status frames are always kept, because there are few and they carry state.
    /// Returns how many readings were dropped.
    pub fn push_all(&self, items: impl IntoIterator<Item = Item>) -> u64 {
        let mut s = self.state.lock();
        if s.closed {
            return 0;
        }
        let mut dropped = 0;
        for item in items {
            if s.items.len() >= self.capacity && matches!(item, Item::Reading(_)) {
                dropped += 1;
            } else {
                s.items.push_back(item);
            }
        }
        s.lagged += dropped;
        drop(s);
        self.notify.notify_one();
        dropped
    }

    /// Adds to the lagged count without queueing (readings lost before reaching the queue).
    pub fn add_lagged(&self, n: u64) {
        self.state.lock().lagged += n;
        self.notify.notify_one();
    }

    /// Waits until something is queued or lagged, then takes all of it.
    pub async fn drain(&self) -> Drained {
        loop {
            let notified = self.notify.notified();
            let d = self.take();
            if !d.items.is_empty() || d.lagged > 0 {
                return d;
            }
            notified.await;
        }
    }

    /// Takes whatever is queued or lagged now, without waiting (possibly nothing).
    pub fn take(&self) -> Drained {
        let mut s = self.state.lock();
        Drained {
            items: s.items.drain(..).collect(),
            lagged: std::mem::take(&mut s.lagged),
        }
    }

    pub fn close(&self) {
        let mut s = self.state.lock();
        s.closed = true;
        s.items.clear();
    }

    pub fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn drops_readings_beyond_capacity_and_counts_them() {
        let q = ClientQueue::new(2);
        let r = |s: &'static str| Item::Reading(Bytes::from_static(s.as_bytes()));
        assert_eq!(q.push_all([r("a"), r("b"), r("c")]), 1);
        q.push_all([Item::Frame(Bytes::from_static(b"s"))]);
        let d = q.drain().await;
        assert_eq!((d.items.len(), d.lagged), (3, 1));
        q.add_lagged(5);
        assert_eq!(q.drain().await.lagged, 5);
    }
}

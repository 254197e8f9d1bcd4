//! A dashboard client's status queue: `{"status":...}` frames waiting for its socket.
//! Readings do not pass through here: they are read from the shared replay buffer.
//!
//! Owner: one queue per client. The fan-out task (and the socket task itself, for the
//! devices online when it subscribes) pushes without waiting; the client's socket task
//! takes everything queued at once. Status frames are few and carry state, so none is
//! dropped; a client too slow to take them is closed after `stuck_timeout`.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    closed: bool,
}

#[derive(Default)]
pub struct ClientQueue {
    state: Mutex<State>,
    notify: Notify,
}

impl ClientQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a frame (nothing once closed) and wakes the socket task.
    pub fn push(&self, frame: Bytes) {
        let mut s = self.state.lock();
        if s.closed {
            return;
        }
        s.frames.push_back(frame);
        drop(s);
        self.notify.notify_one();
    }

    /// Completes after a push (or at once if one happened since the last wait).
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Takes whatever is queued now, without waiting (possibly nothing).
    pub fn take(&self) -> Vec<Bytes> {
        self.state.lock().frames.drain(..).collect()
    }

    pub fn close(&self) {
        let mut s = self.state.lock();
        s.closed = true;
        s.frames.clear();
    }

    pub fn len(&self) -> usize {
        self.state.lock().frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_come_out_in_order_and_nothing_after_close() {
        let q = ClientQueue::new();
        q.push(Bytes::from_static(b"a"));
        q.push(Bytes::from_static(b"b"));
        q.notified().await;
        assert_eq!(q.take(), [&b"a"[..], b"b"]);
        q.close();
        q.push(Bytes::from_static(b"c"));
        assert!(q.is_empty());
    }
}

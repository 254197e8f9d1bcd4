//! The replies one device socket owes, in arrival order, allocated only while it owes
//! some: a `FuturesOrdered` (64 bytes) allocates its run queue and a stub task up front
//! (about 200 bytes more), which an idle socket should not hold. Owned by the socket's task.
//!
//! What is owed is a message's `ack`/`nack`, or the answer to a command frame (which
//! may be nothing: an acknowledgement taken); both wait in the one queue, so a
//! device reads them in the order it sent the frames.

use crate::ingest::ReplyFuture;
use crate::protocol::frames::HubFrame;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One answer owed, in the order its frame arrived.
pub enum Owed {
    /// A message's reply.
    Message(ReplyFuture),
    /// A command frame's answer, if any.
    Frame(BoxFuture<'static, Option<HubFrame>>),
}

impl Future for Owed {
    type Output = Option<HubFrame>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Owed::Message(f) => f.as_mut().poll(cx).map(|r| Some(HubFrame::Reply(r))),
            Owed::Frame(f) => f.as_mut().poll(cx),
        }
    }
}

/// Replies not yet written, in arrival order.
#[derive(Default)]
pub struct Replies(Option<Box<FuturesOrdered<Owed>>>);

impl Replies {
    pub fn push(&mut self, reply: ReplyFuture) {
        self.push_owed(Owed::Message(reply));
    }

    pub fn push_owed(&mut self, owed: Owed) {
        self.0.get_or_insert_default().push_back(owed);
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next answer in order, once it resolves (`Some(None)`: nothing to send for
    /// it); `None` when none is owed.
    pub async fn next(&mut self) -> Option<Option<HubFrame>> {
        self.0.as_mut()?.next().await
    }

    /// The next answer if it has already resolved.
    pub fn next_ready(&mut self) -> Option<Option<HubFrame>> {
        use futures_util::FutureExt;
        self.0.as_mut()?.next().now_or_never().flatten()
    }

    /// Frees the queue when nothing is owed (call when the socket has gone quiet).
    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }

    /// Whether the queue is allocated (for tests).
    #[cfg(test)]
    fn is_allocated(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ingest::Reply;
    use futures_util::FutureExt;

    fn ack(id: u64) -> ReplyFuture {
        async move {
            Reply::Ack {
                ack: Some(id),
                stored: 1,
            }
        }
        .boxed()
    }

    #[tokio::test]
    async fn replies_come_out_in_order_and_the_queue_is_freed_once_empty_and_quiet() {
        let mut r = Replies::default();
        assert!(!r.is_allocated() && r.is_empty());
        assert!(r.next().await.is_none());
        r.push(ack(1));
        r.push(ack(2));
        assert_eq!(r.len(), 2);
        r.release_if_empty();
        assert!(r.is_allocated(), "a queue with replies owed is kept");
        assert!(matches!(
            r.next().await,
            Some(Some(HubFrame::Reply(Reply::Ack { ack: Some(1), .. })))
        ));
        r.push_owed(Owed::Frame(async { None }.boxed()));
        assert!(matches!(
            r.next_ready(),
            Some(Some(HubFrame::Reply(Reply::Ack { ack: Some(2), .. })))
        ));
        assert!(matches!(r.next_ready(), Some(None)));
        assert!(r.is_empty() && r.is_allocated());
        r.release_if_empty();
        assert!(!r.is_allocated());
    }
}

//! A read-ahead layer under every connection, holding a buffer only during a burst.
//!
//! tungstenite reads at most `ingest.read_buffer_bytes` per `read` and keeps that buffer
//! for the socket's life, so a large buffer costs every idle socket and a small one costs
//! a busy socket a syscall per small chunk. Under it, this layer reads directly into the
//! reader's buffer until a read fills it (more is probably waiting); the next reads then
//! go through a [`CHUNK`]-byte buffer on the stack, and only what the reader cannot take
//! yet is kept, on the heap, until it has been handed on. An idle socket holds no buffer
//! here, a read that finds nothing allocates nothing, and a large frame still arrives in
//! few syscalls.
//! Writes pass straight through.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The read-ahead buffer's size during a burst.
pub const CHUNK: usize = 8 * 1024;

pub struct ReadAhead<T> {
    inner: T,
    /// Bytes read ahead and not yet handed on; `None` outside a burst.
    ahead: Option<Ahead>,
    /// The last read filled the reader's buffer: read ahead next time.
    burst: bool,
}

struct Ahead {
    buf: Box<[u8]>,
    pos: usize,
}

impl<T> ReadAhead<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            ahead: None,
            burst: false,
        }
    }

    /// Hands on what was read ahead; frees the buffer once it is all handed on.
    fn hand_on(&mut self, out: &mut ReadBuf<'_>) -> bool {
        let Some(a) = &mut self.ahead else {
            return false;
        };
        let n = (a.buf.len() - a.pos).min(out.remaining());
        out.put_slice(&a.buf[a.pos..a.pos + n]);
        a.pos += n;
        if a.pos == a.buf.len() {
            self.ahead = None;
        }
        true
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.hand_on(out) {
            return Poll::Ready(Ok(()));
        }
        if !this.burst || out.remaining() >= CHUNK {
            let before = out.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            this.burst = out.filled().len() > before && out.remaining() == 0;
            return Poll::Ready(Ok(()));
        }
        let mut chunk = [MaybeUninit::<u8>::uninit(); CHUNK];
        let mut chunk = ReadBuf::uninit(&mut chunk);
        match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
            Poll::Pending => {
                this.burst = false; // the burst is over, and nothing was allocated for it
                return Poll::Pending;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let got = chunk.filled();
        this.burst = got.len() == CHUNK;
        let n = got.len().min(out.remaining());
        out.put_slice(&got[..n]);
        if n < got.len() {
            this.ahead = Some(Ahead {
                buf: got[n..].into(),
                pos: 0,
            });
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadAhead<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Counts the reads that reach the stream (the syscalls, on a socket).
    struct Counting<R> {
        inner: R,
        reads: usize,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let r = Pin::new(&mut self.inner).poll_read(cx, out);
            if r.is_ready() {
                self.reads += 1;
            }
            r
        }
    }

    #[tokio::test]
    async fn a_burst_arrives_in_chunks_and_no_buffer_is_held_afterwards() {
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let sent: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        tx.write_all(&sent).await.unwrap();
        let mut r = ReadAhead::new(Counting {
            inner: rx,
            reads: 0,
        });
        let mut got = Vec::new();
        let mut small = [0u8; 512];
        while got.len() < sent.len() {
            let n = r.read(&mut small).await.unwrap();
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, sent);
        // 512 directly, then chunks of 8 KiB: 4 reads, where 512-byte reads would take 40.
        assert_eq!(r.inner.reads, 4);
        assert!(r.ahead.is_none(), "the chunk is freed once handed on");

        // A small message after the burst is read directly, with nothing held.
        tx.write_all(b"hello").await.unwrap();
        let n = r.read(&mut small).await.unwrap();
        assert_eq!(&small[..n], b"hello");
        assert!(r.ahead.is_none() && !r.burst);

        drop(tx);
        assert_eq!(r.read(&mut small).await.unwrap(), 0, "end of stream");
    }
}

//! WebSocket plumbing shared by device and dashboard sockets: buffer and size
//! limits, pings, close codes, and mapping read errors to them (the heartbeat that
//! times pings is [`super::heartbeat`]).

use crate::config::SocketSettings;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use std::time::Duration;
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const UNSUPPORTED: u16 = 1003;
pub const INVALID_PAYLOAD: u16 = 1007;
pub const POLICY: u16 = 1008;
pub const TOO_BIG: u16 = 1009;

/// Applies the configured buffer sizes and frame limits to an upgrade (`[ingest]`'s for
/// device sockets, `[live]`'s for dashboard sockets).
pub fn configure(ws: WebSocketUpgrade, s: &SocketSettings) -> WebSocketUpgrade {
    ws.read_buffer_size(s.read_buffer_bytes)
        .write_buffer_size(s.write_buffer_bytes)
        .max_write_buffer_size((s.write_buffer_bytes + s.max_frame_bytes) * 4)
        .max_frame_size(s.max_frame_bytes)
        .max_message_size(s.max_frame_bytes)
}

/// Sends a close frame (best effort, bounded in time).
pub async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(frame)).await;
}

/// Sends a ping. Boxed: it runs once per `ping_interval`, and the state of a send should
/// not be part of every idle socket's future.
pub async fn ping(socket: &mut WebSocket) -> Result<(), axum::Error> {
    Box::pin(socket.send(Message::Ping(Default::default()))).await
}

/// The size of what `f` returns (a socket task's future), without calling it.
#[cfg(test)]
pub fn returned_size<A, R>(_f: impl FnOnce(A) -> R) -> usize {
    size_of::<R>()
}

/// Why a socket's closing token (a child of the hub's `shutdown`) was cancelled: the hub
/// is shutting down (1001), or the socket's token was revoked (1008).
pub fn closing_reason(shutdown: &CancellationToken) -> (u16, &'static str) {
    if shutdown.is_cancelled() {
        (GOING_AWAY, "hub shutting down")
    } else {
        (POLICY, "token revoked")
    }
}

/// The close code for a failed read, or `None` when the connection is simply gone.
pub fn close_code_for(err: axum::Error) -> Option<(u16, &'static str)> {
    let inner = err.into_inner();
    match inner.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some((TOO_BIG, "frame too large")),
        tungstenite::Error::Utf8(_) => Some((INVALID_PAYLOAD, "text frame is not valid UTF-8")),
        tungstenite::Error::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}

//! The accept loop: TCP (and TLS when configured), a cap on open connections,
//! a handshake timeout (TLS + HTTP headers), HTTP/1.1 with WebSocket upgrades.
//!
//! A connection over the cap (global, or per IP address) is answered `503` with
//! `Retry-After` before any upgrade; past twice the cap, new connections are dropped at once.

use super::HubState;
use super::limits::IpGuard;
use super::read_ahead::ReadAhead;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tower::ServiceExt;

/// The connection a request arrived on; handlers may keep it (e.g. for a WebSocket).
#[derive(Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// Held for as long as anything uses the connection, upgraded sockets included.
    pub _permit: Arc<(OwnedSemaphorePermit, IpGuard)>,
}

pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    hub: Arc<HubState>,
) {
    let cap = hub.settings.server.max_connections;
    let permits = Arc::new(Semaphore::new(cap));
    let overflow = Arc::new(Semaphore::new(cap));
    let acceptor = tls.map(TlsAcceptor::from);
    let shutdown = hub.shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let admitted = permits
            .clone()
            .try_acquire_owned()
            .ok()
            .and_then(|p| Some((p, hub.limits.connect(peer.ip())?)));
        let refuse = match admitted {
            Some(p) => Ok(p),
            None => match overflow.clone().try_acquire_owned() {
                Ok(p) => Err(p),
                Err(_) => {
                    hub.metrics.refused("overloaded");
                    continue;
                }
            },
        };
        let (app, acceptor, hub) = (app.clone(), acceptor.clone(), hub.clone());
        tokio::spawn(async move {
            let timeout = hub.settings.server.handshake_timeout;
            let io = match acceptor {
                None => Either::Left(tcp),
                Some(a) => match tokio::time::timeout(timeout, a.accept(tcp)).await {
                    Ok(Ok(s)) => Either::Right(Box::new(s)),
                    _ => {
                        hub.metrics.refused("tls_handshake");
                        return;
                    }
                },
            };
            match refuse {
                Ok(permit) => {
                    let info = ConnInfo {
                        peer,
                        _permit: Arc::new(permit),
                    };
                    serve_conn(io, hub, move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(info.clone());
                        app.clone().oneshot(req.map(Body::new))
                    })
                    .await
                }
                Err(_overflow_permit) => {
                    hub.metrics.refused("max_connections");
                    serve_conn(io, hub, |_req| async { Ok::<_, Infallible>(busy()) }).await
                }
            }
        });
    }
}

/// A connection, plain or TLS. The TLS stream (over a kilobyte of rustls state) is boxed
/// so that a plain connection does not carry room for it: an upgraded socket keeps its
/// `Io` for life.
type Io = Either<TcpStream, Box<tokio_rustls::server::TlsStream<TcpStream>>>;

async fn serve_conn<F, Fut>(io: Io, hub: Arc<HubState>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let svc = hyper::service::service_fn(handler);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(hub.settings.server.handshake_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(ReadAhead::new(io)), svc)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = hub.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

fn busy() -> Response<Body> {
    let body =
        r#"{"error":"unavailable","detail":"the hub is at its connection limit; retry later"}"#;
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header("retry-after", "5")
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(Body::from(body))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_connection_does_not_carry_room_for_tls() {
        let tls = size_of::<tokio_rustls::server::TlsStream<TcpStream>>();
        let (io, tcp) = (size_of::<Io>(), size_of::<TcpStream>());
        eprintln!("Io {io} B, TcpStream {tcp} B, TlsStream {tls} B");
        assert!(io <= tcp + 16, "Io is {io} bytes, TcpStream {tcp}");
    }
}

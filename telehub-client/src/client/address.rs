//! Where the hub is and how to reach it: the `--hub` base address (protocol.md §2), TLS, and
//! opening one authenticated WebSocket.

use super::{ClientConfig, ClientError};
pub use crate::protocol::address::HubAddress;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// An open device socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Everything needed to open a socket, prepared once when the client starts.
pub struct Target {
    address: HubAddress,
    /// The socket's URL: the address, with `?commands=1` when the client takes commands.
    url: String,
    authorization: HeaderValue,
    connector: Connector,
    ws_config: WebSocketConfig,
}

impl Target {
    pub fn new(cfg: &ClientConfig) -> Result<Self, ClientError> {
        let address = HubAddress::parse(&cfg.hub)?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", cfg.token))
            .map_err(|_| ClientError::Token)?;
        authorization.set_sensitive(true);
        let connector = if address.is_tls() {
            Connector::Rustls(crate::tls::device_client_config(cfg.ca_file.as_deref())?)
        } else {
            Connector::Plain
        };
        // Small buffers: a simulator may hold thousands of these sockets.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(cfg.max_message_bytes * 4 + 64 * 1024)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        let target = Self {
            url: address.url().to_owned(),
            address,
            authorization,
            connector,
            ws_config,
        };
        Ok(match cfg.commands {
            Some(_) => target.taking_commands(),
            None => target,
        })
    }

    /// The same target, connecting with `?commands=1` (the bridge relays commands it
    /// does not run itself).
    pub fn taking_commands(mut self) -> Self {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        self.url = format!("{}{sep}commands=1", self.address.url());
        self
    }

    pub fn address(&self) -> &HubAddress {
        &self.address
    }

    /// Opens one authenticated socket within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Ws, ConnectFailure> {
        let mut req = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectFailure::new(e.to_string()))?;
        req.headers_mut()
            .insert("authorization", self.authorization.clone());
        let attempt = tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(self.ws_config),
            true,
            Some(self.connector.clone()),
        );
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => {
                let mut failure = ConnectFailure::from(e);
                if failure.permanent && !failure.reason.contains("token") {
                    failure.reason = format!("{} (at {})", failure.reason, self.address.url());
                }
                Err(failure)
            }
            Err(_) => Err(ConnectFailure::new(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }
}

/// A failed connection attempt: why (for a log line), and how long the hub asked us
/// to wait (`Retry-After` on a 503 or 429), if it did.
#[derive(Debug)]
pub struct ConnectFailure {
    pub reason: String,
    pub retry_after: Option<Duration>,
    /// Retrying cannot help: the token is refused (401/403), there is no socket at that
    /// path (404/405/410), the certificate is not trusted, or only one side speaks TLS.
    pub permanent: bool,
}

impl ConnectFailure {
    fn new(reason: String) -> Self {
        Self {
            reason,
            retry_after: None,
            permanent: false,
        }
    }
}

impl From<WsError> for ConnectFailure {
    /// A failed WebSocket handshake, classified (also used by `telehub tail`).
    fn from(e: WsError) -> Self {
        Self {
            retry_after: retry_after(&e),
            permanent: permanent(&e),
            reason: describe(e),
        }
    }
}

/// Whether a failed handshake will fail the same way every time (see [`ConnectFailure`]).
fn permanent(e: &WsError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        // No such route (a wrong path, say `/v1/live` for `/v1/ingest`): asking again
        // will not create it.
        WsError::Http(resp) => matches!(resp.status().as_u16(), 401 | 403 | 404 | 405 | 410),
        WsError::Tls(_) => true,
        WsError::Io(io) => tls_error(io).is_some(),
        WsError::Protocol(ProtocolError::HttparseError(_)) | WsError::HttpFormat(_) => true,
        _ => false,
    }
}

/// The TLS error inside an I/O error of a TLS handshake.
fn tls_error(io: &std::io::Error) -> Option<&rustls::Error> {
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The `Retry-After` of a refused upgrade, in seconds (capped at an hour).
fn retry_after(e: &WsError) -> Option<Duration> {
    let WsError::Http(resp) = e else { return None };
    let secs: u64 = resp
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// A socket error phrased for a log line (connecting, or on an open socket).
pub(super) fn describe(e: WsError) -> String {
    match e {
        WsError::Http(resp) => match resp.status().as_u16() {
            s @ (401 | 403) => token_refused(s),
            s @ (404 | 405 | 410) => format!(
                "the hub answered HTTP {s} instead of upgrading: no device socket at this URL; check the path (/v1/ingest)"
            ),
            s => format!("the hub answered HTTP {s} instead of upgrading"),
        },
        WsError::Io(e) => match tls_error(&e) {
            Some(t) => tls_failed(t),
            None => e.to_string(),
        },
        WsError::Tls(e) => format!("TLS: {e}"),
        WsError::Protocol(tokio_tungstenite::tungstenite::error::ProtocolError::HttparseError(
            _,
        ))
        | WsError::HttpFormat(_) => NOT_HTTP.into(),
        other => other.to_string(),
    }
}

/// Why a 401 or 403 refused the token (on a handshake or an HTTP write).
pub(super) fn token_refused(status: u16) -> String {
    if status == 401 {
        "the hub refused the token (401): unknown or revoked".into()
    } else {
        "the hub refused this token for sending readings (403): not a device token".into()
    }
}

/// A failed TLS handshake, with the likely fix.
pub(super) fn tls_failed(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => format!(
            "TLS: the hub's certificate is not trusted ({c:?}); give the client the hub's certificate (--ca-file, --ca), or check the host name"
        ),
        t => format!(
            "TLS handshake failed: {t} (does the hub serve without TLS on this port? then use ws:// or http://)"
        ),
    }
}

/// The answer of a TLS port to a plain request.
pub(super) const NOT_HTTP: &str =
    "the hub's answer is not HTTP (does it serve TLS on this port? then use wss:// or https://)";

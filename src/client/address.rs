//! Where the hub is and how to reach it: the `--hub` base address (§8), TLS, and
//! opening one authenticated WebSocket.

use super::{ClientConfig, ClientError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// An open device socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const INGEST_PATH: &str = "/v1/ingest";

/// The ingest URL derived from a hub base address (§8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAddress {
    url: String,
    tls: bool,
}

impl HubAddress {
    /// `ws[s]://HOST:PORT[/prefix]` → `…/v1/ingest`; a URL already ending in
    /// `/v1/ingest` is used as it is. `http(s)://` is taken as `ws(s)://`.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::Address {
            address: s.to_owned(),
            reason: reason.to_owned(),
        };
        let s_trim = s.trim();
        let (scheme, rest) = s_trim
            .split_once("://")
            .ok_or_else(|| bad("expected ws://HOST:PORT or wss://HOST:PORT"))?;
        let (scheme, tls) = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => ("ws", false),
            "wss" | "https" => ("wss", true),
            _ => return Err(bad("the scheme must be ws:// or wss://")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let path = path.trim_end_matches('/');
        let path = if path.ends_with(INGEST_PATH) {
            path.to_owned()
        } else {
            format!("{path}{INGEST_PATH}")
        };
        let url = match query {
            Some(q) => format!("{scheme}://{authority}{path}?{q}"),
            None => format!("{scheme}://{authority}{path}"),
        };
        url.as_str()
            .into_client_request()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self { url, tls })
    }

    /// The full `ws[s]://…/v1/ingest` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

/// Everything needed to open a socket, prepared once when the client starts.
pub struct Target {
    address: HubAddress,
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
        let connector = if address.tls {
            Connector::Rustls(tls_config(cfg)?)
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
        Ok(Self {
            address,
            authorization,
            connector,
            ws_config,
        })
    }

    pub fn address(&self) -> &HubAddress {
        &self.address
    }

    /// Opens one authenticated socket within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Ws, ConnectFailure> {
        let mut req = self
            .address
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
            Ok(Err(e)) => Err(ConnectFailure {
                retry_after: retry_after(&e),
                reason: describe(e),
            }),
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
}

impl ConnectFailure {
    fn new(reason: String) -> Self {
        Self {
            reason,
            retry_after: None,
        }
    }
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
            401 => "the hub refused the token (401): unknown or revoked".into(),
            403 => "the hub refused this token on /v1/ingest (403): not a device token".into(),
            s => format!("the hub answered HTTP {s} instead of upgrading"),
        },
        WsError::Io(e) => e.to_string(),
        WsError::Tls(e) => format!("TLS: {e}"),
        other => other.to_string(),
    }
}

/// rustls with the ring provider, trusting the webpki roots and the certificates of
/// `ca_file`: each is a root for certificates it signed, and is also pinned — a hub
/// presenting exactly that certificate is trusted as is (a self-signed certificate,
/// even one marked as a CA, which webpki would refuse as a server certificate).
fn tls_config(cfg: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let pinned = match &cfg.ca_file {
        Some(path) => read_certs(path)?,
        None => Vec::new(),
    };
    for c in &pinned {
        // A certificate that cannot be a root may still be pinned.
        let _ = roots.add(c.clone());
    }
    let setting = |e: String| ClientError::Setting(format!("TLS: {e}"));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| setting(e.to_string()))?;
    let config = if pinned.is_empty() {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| setting(e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki { pinned, webpki }))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let err = |reason: String| ClientError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    crate::server::tls::pem_certs(path).map_err(err)
}

/// Trusts a pinned certificate byte for byte; anything else goes through webpki.
/// Handshake signatures are always checked (by webpki's code), so a pinned
/// certificate is only accepted from a peer holding its private key.
#[derive(Debug)]
struct PinnedOrWebPki {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> String {
        HubAddress::parse(s).unwrap().url().to_owned()
    }

    #[test]
    fn the_ingest_path_is_appended_to_a_base_address() {
        assert_eq!(url("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/ingest");
        assert_eq!(url("ws://hub:8080/"), "ws://hub:8080/v1/ingest");
        assert_eq!(
            url("wss://hub.example:443/telehub"),
            "wss://hub.example:443/telehub/v1/ingest"
        );
        assert_eq!(
            url("ws://[::1]:9000/v1/ingest"),
            "ws://[::1]:9000/v1/ingest"
        );
        assert_eq!(url("http://h:1?token=x"), "ws://h:1/v1/ingest?token=x");
        assert!(HubAddress::parse("https://h:1").unwrap().is_tls());
        assert!(!HubAddress::parse("ws://h:1").unwrap().is_tls());
    }

    #[test]
    fn addresses_that_are_not_websocket_urls_are_refused() {
        for bad in [
            "127.0.0.1:8080",
            "ftp://h:1",
            "ws://",
            "ws:///v1/ingest",
            "ws://h h:1",
        ] {
            assert!(HubAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ClientConfig::new("wss://h:1", "t");
        cfg.ca_file = Some(dir.path().join("missing.pem"));
        assert!(matches!(tls_config(&cfg), Err(ClientError::CaFile { .. })));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        cfg.ca_file = Some(empty);
        assert!(matches!(tls_config(&cfg), Err(ClientError::CaFile { .. })));
        cfg.ca_file = None;
        assert!(tls_config(&cfg).is_ok());
    }
}

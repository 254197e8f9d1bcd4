//! The bridge's side of `/v1/ingest` (§2): the address rule of §8, connecting with the
//! gateway's token (TLS for `wss://`), writing messages, reading replies.
//!
//! This is the small interface the forwarder uses to talk to the hub; a shared
//! resilient device client can take its place without touching framing or batching.

use crate::domain::{DeviceName, Reading, SensorName, Timestamp, Unit};
use crate::protocol::ingest::ErrorCode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub type HubSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why the hub could not be reached or understood.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("--hub {0:?}: expected ws://HOST:PORT or wss://HOST:PORT")]
    BadAddress(String),
    #[error("CA file {path}: {detail}")]
    CaFile { path: String, detail: String },
    #[error("the hub refused the token (HTTP 401): check --token; it must be the gateway device's")]
    Unauthorized,
    #[error("cannot connect to the hub: {0}")]
    Connect(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the hub did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Where and how to connect.
#[derive(Clone)]
pub struct HubAddress {
    pub url: String,
    token: HeaderValue,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for HubAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubAddress")
            .field("url", &self.url)
            .finish()
    }
}

/// §8: `ws[s]://HOST:PORT` gets `/v1/ingest` appended; a URL already ending in it is kept.
pub fn ingest_url(hub: &str) -> Result<String, UplinkError> {
    let hub = hub.trim();
    let bad = || UplinkError::BadAddress(hub.chars().take(80).collect());
    let rest = hub
        .strip_prefix("ws://")
        .or_else(|| hub.strip_prefix("wss://"))
        .ok_or_else(bad)?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad());
    }
    if hub.ends_with("/v1/ingest") {
        return Ok(hub.to_owned());
    }
    Ok(format!("{}/v1/ingest", hub.trim_end_matches('/')))
}

impl HubAddress {
    /// Builds the address; `ca_file` adds a trusted CA to the public roots for `wss://`.
    pub fn new(hub: &str, token: &str, ca_file: Option<&Path>) -> Result<Self, UplinkError> {
        let url = ingest_url(hub)?;
        let token = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| UplinkError::BadAddress("the token holds invalid characters".into()))?;
        let tls = url
            .starts_with("wss://")
            .then(|| tls_config(ca_file))
            .transpose()?;
        Ok(Self { url, token, tls })
    }

    /// Opens the socket (TCP, TLS, WebSocket upgrade) within `timeout`.
    pub async fn connect(&self, timeout: std::time::Duration) -> Result<HubSocket, UplinkError> {
        let mut req = self.url.as_str().into_client_request()?;
        req.headers_mut()
            .insert("authorization", self.token.clone());
        let connector = self.tls.clone().map(Connector::Rustls);
        let connect = tokio_tungstenite::connect_async_tls_with_config(req, None, true, connector);
        match tokio::time::timeout(timeout, connect).await {
            Err(_) => Err(UplinkError::Timeout(timeout)),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) if r.status() == 401 => {
                Err(UplinkError::Unauthorized)
            }
            Ok(r) => Ok(r?.0),
        }
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, UplinkError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let err = |detail: String| UplinkError::CaFile {
            path: path.display().to_string(),
            detail,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no PEM certificate in it".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| err(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UplinkError::CaFile {
            path: String::new(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Serialize)]
struct WireMessage<'a> {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a DeviceName>,
    readings: Vec<WireReading<'a>>,
}

#[derive(Serialize)]
struct WireReading<'a> {
    sensor: &'a SensorName,
    value: f64,
    ts: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a Unit>,
}

/// One §2 message: `{"id": 7, "device": "pump-3", "readings": [...]}`; every reading
/// carries its `ts` so that a resend is stored once.
pub fn encode_message(id: u64, device: Option<&DeviceName>, readings: &[Reading]) -> String {
    let m = WireMessage {
        id,
        device,
        readings: readings
            .iter()
            .map(|r| WireReading {
                sensor: &r.sensor,
                value: r.value,
                ts: r.ts,
                unit: r.unit.as_ref(),
            })
            .collect(),
    };
    serde_json::to_string(&m).expect("messages always serialize")
}

/// The hub's answer to message `id`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Stored,
    /// `code` is `None` for a code this bridge does not know.
    Refused {
        code: Option<ErrorCode>,
        error: String,
        detail: String,
    },
}

/// Reads `{"ack": 7, "stored": 2}` or `{"nack": 7, "error": "...", "detail": "..."}`.
pub fn decode_reply(text: &str) -> Option<(u64, Outcome)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if let Some(id) = v.get("ack").and_then(|x| x.as_u64()) {
        return Some((id, Outcome::Stored));
    }
    let id = v.get("nack")?.as_u64()?;
    let error = v.get("error")?.as_str()?.to_owned();
    let detail = v
        .get("detail")
        .and_then(|d| d.as_str())
        .unwrap_or_default()
        .to_owned();
    let code = ErrorCode::ALL.into_iter().find(|c| c.as_str() == error);
    Some((
        id,
        Outcome::Refused {
            code,
            error,
            detail,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_addresses_follow_the_contract_rule() {
        assert_eq!(
            ingest_url("wss://hub:8443").unwrap(),
            "wss://hub:8443/v1/ingest"
        );
        assert_eq!(
            ingest_url("ws://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/v1/ingest"
        );
        assert_eq!(
            ingest_url("ws://h:1/v1/ingest").unwrap(),
            "ws://h:1/v1/ingest"
        );
        for bad in ["http://h:1", "h:1", "ws://", "wss:///x"] {
            assert!(ingest_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_and_replies_use_the_contract_shapes() {
        let r = Reading {
            sensor: SensorName::parse("t").unwrap(),
            value: 21.5,
            ts: Timestamp::parse_rfc3339("2026-11-21T10:00:00.25Z").unwrap(),
            unit: None,
        };
        let d = DeviceName::parse("pump-3").unwrap();
        assert_eq!(
            encode_message(7, Some(&d), std::slice::from_ref(&r)),
            r#"{"id":7,"device":"pump-3","readings":[{"sensor":"t","value":21.5,"ts":"2026-11-21T10:00:00.250000Z"}]}"#
        );
        assert_eq!(
            decode_reply(r#"{"ack":7,"stored":1}"#),
            Some((7, Outcome::Stored))
        );
        let (id, o) =
            decode_reply(r#"{"nack":8,"error":"forbidden_device","detail":"x"}"#).unwrap();
        assert_eq!(id, 8);
        assert!(matches!(
            o,
            Outcome::Refused {
                code: Some(ErrorCode::ForbiddenDevice),
                ..
            }
        ));
        assert_eq!(decode_reply(r#"{"ack":null,"stored":0}"#), None);
    }
}

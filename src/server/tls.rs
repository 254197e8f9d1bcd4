//! TLS: loads the `[tls]` certificate chain and key into a rustls server config
//! (ring provider, TLS 1.3 and 1.2, HTTP/1.1 ALPN).

use crate::config::TlsSettings;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read TLS key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS certificate and key do not form a valid configuration: {0}")]
    Config(#[from] rustls::Error),
}

pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: s.cert.display().to_string(),
        reason,
    };
    let certs = pem_certs(&s.cert).map_err(cert_err)?;
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|e| TlsError::Key {
        path: s.key.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Every certificate in a PEM file; an error (for the caller to wrap) when the file cannot
/// be read or holds none. Shared by the server, the device client and the MQTT client.
pub fn pem_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

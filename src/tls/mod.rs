//! TLS, in one place for every side of the hub: PEM files read into rustls types, the
//! hub's server config ([`server_config`]), the device client's ([`device_client_config`],
//! webpki roots plus pinned certificates) and the MQTT client's ([`mqtt_client_config`]).
//! Always the ring provider.
//!
//! May use: `config` (the `[tls]` section). Used by `hub`, `client` and `mqtt`.

mod pinned;

use crate::config::TlsSettings;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Why TLS could not be set up; each names the setting or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Cert {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("cannot read {what} {path}: {reason}")]
    Key {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("no system CA certificates found; install ca-certificates or set {0}")]
    NoSystemRoots(&'static str),
    #[error("TLS certificates and keys do not form a valid configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The hub's `[tls]` certificate chain and key: TLS 1.3 and 1.2, HTTP/1.1 ALPN.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = pem_certs(&s.cert, "TLS certificate")?;
    let key = pem_key(&s.key, "TLS key")?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The device client's config: the webpki roots and the certificates of `ca_file`. Each
/// of those is a root for certificates it signed and is also pinned: a hub presenting
/// exactly that certificate is trusted as is (a self-signed certificate, even one marked
/// as a CA, which webpki would refuse as a server certificate).
pub fn device_client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let pinned = match ca_file {
        Some(path) => pem_certs(path, "CA file")?,
        None => Vec::new(),
    };
    for c in &pinned {
        // A certificate that cannot be a root may still be pinned.
        let _ = roots.add(c.clone());
    }
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = if pinned.is_empty() {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let verifier = pinned::PinnedOrWebPki::new(pinned, roots, provider())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The MQTT client's config: `ca_file` as the only root, or the system's roots; a client
/// certificate when both `client_cert` and `client_key` are given.
pub fn mqtt_client_config(
    ca_file: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in pem_certs(path, "mqtt.ca_file")? {
                roots.add(cert)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsError::NoSystemRoots("mqtt.ca_file"));
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match (client_cert, client_key) {
        (Some(cert), Some(key)) => builder.with_client_auth_cert(
            pem_certs(cert, "mqtt.client_cert")?,
            pem_key(key, "mqtt.client_key")?,
        )?,
        _ => builder.with_no_client_auth(),
    })
}

/// Every certificate in a PEM file; an error naming `what` when the file cannot be read
/// or holds none.
pub fn pem_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Cert {
        what,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

fn pem_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            device_client_config(Some(&missing)),
            Err(TlsError::Cert { .. })
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(
            device_client_config(Some(&empty)),
            Err(TlsError::Cert { .. })
        ));
        assert!(device_client_config(None).is_ok());
    }
}

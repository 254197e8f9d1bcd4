//! TLS for the device side: PEM files read into rustls types and the device client's
//! config ([`device_client_config`]: webpki roots plus pinned certificates), with
//! [`TlsError`] for every TLS setup failure. Always the ring provider. The hub builds its
//! server and MQTT configs from these same pieces (`telehub::tls`).
//!
//! May use: nothing else in the crate. Used by `client`.

mod pinned;

use rustls::{ClientConfig, RootCertStore};
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

/// The one crypto provider of every TLS config: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

/// The private key in a PEM file; an error naming `what` when it cannot be read.
pub fn pem_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
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

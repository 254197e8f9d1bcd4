//! TLS on the hub's side: its server config ([`server_config`], from `[tls]`) and the
//! MQTT client's ([`mqtt_client_config`]). The PEM readers, the provider (always ring),
//! the device client's config and [`TlsError`] belong to `telehub_client::tls` and are
//! re-exported here.
//!
//! May use: `config` (the `[tls]` section). Used by `hub` and `mqtt`.

use crate::config::TlsSettings;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
pub use telehub_client::tls::{TlsError, device_client_config, pem_certs, pem_key, provider};

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

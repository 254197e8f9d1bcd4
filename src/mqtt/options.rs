//! The rumqttc client from `[mqtt]`: broker address, TLS (rustls with ring),
//! credentials, session, limits, and the cluster's last will.

use super::cluster::ClusterMessage;
use super::{BrokerAddr, MqttError, MqttSettings};
use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, TlsConfiguration, Transport};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Requests (publishes, acks) waiting for the event loop; the outbox's own queue is in
/// front of it, so this only smooths bursts.
const REQUEST_CHANNEL: usize = 1024;

/// The client handle and its event loop (to be polled by the connection task).
pub fn client(s: &MqttSettings, hub_id: &str) -> Result<(AsyncClient, EventLoop), MqttError> {
    let addr = BrokerAddr::parse(&s.url).map_err(MqttError::Settings)?;
    let client_id = if s.client_id.is_empty() {
        format!("telehub-{hub_id}")
    } else {
        s.client_id.clone()
    };
    let mut o = MqttOptions::new(client_id, addr.host.clone(), addr.port);
    o.set_keep_alive(s.keepalive)
        .set_clean_session(s.clean_session)
        .set_max_packet_size(s.max_packet_bytes, s.max_packet_bytes)
        .set_inflight(s.max_inflight)
        .set_request_channel_capacity(REQUEST_CHANNEL)
        // Ingest messages are acknowledged once stored, by the ingest worker.
        .set_manual_acks(true);
    if let Some(user) = &s.username {
        o.set_credentials(user.clone(), s.password.clone().unwrap_or_default());
    }
    if addr.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(s)?),
        )));
    }
    if s.cluster {
        // The broker tells the other hubs when this one vanishes without a goodbye.
        o.set_last_will(LastWill::new(
            super::cluster::topic(&s.cluster_topic, hub_id),
            ClusterMessage::gone().encode(),
            super::qos(s.qos),
            false,
        ));
    }
    Ok(AsyncClient::new(o, REQUEST_CHANNEL))
}

fn tls_config(s: &MqttSettings) -> Result<ClientConfig, MqttError> {
    let mut roots = RootCertStore::empty();
    match &s.ca_file {
        Some(path) => {
            for cert in read_certs(path, "mqtt.ca_file")? {
                roots.add(cert)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(MqttError::Settings(
                    "mqtts://: no system CA certificates found; install ca-certificates or set mqtt.ca_file".into(),
                ));
            }
        }
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    Ok(match (&s.client_cert, &s.client_key) {
        (Some(cert), Some(key)) => {
            let certs = read_certs(cert, "mqtt.client_cert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| MqttError::File {
                what: "mqtt.client_key",
                path: key.display().to_string(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(certs, key)?
        }
        _ => builder.with_no_client_auth(),
    })
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, MqttError> {
    let err = |reason: String| MqttError::File {
        what,
        path: path.display().to_string(),
        reason,
    };
    crate::server::tls::pem_certs(path).map_err(err)
}

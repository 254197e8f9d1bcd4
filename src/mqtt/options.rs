//! The rumqttc client from `[mqtt]`: broker address, TLS (rustls with ring),
//! credentials, session, limits, and the cluster's last will.

use super::cluster::ClusterMessage;
use super::{BrokerAddr, MqttError, MqttSettings};
use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, TlsConfiguration, Transport};
use std::sync::Arc;

/// Requests (publishes, acks) waiting for the event loop; the outbox's own queue is in
/// front of it, so this only smooths bursts.
const REQUEST_CHANNEL: usize = 1024;

/// The client handle and its event loop (to be polled by the connection task).
pub fn client(s: &MqttSettings, hub_id: &str) -> Result<(AsyncClient, EventLoop), MqttError> {
    let client_id = if s.client_id.is_empty() {
        format!("telehub-{hub_id}")
    } else {
        s.client_id.clone()
    };
    let mut o = options(s, client_id)?;
    o.set_clean_session(s.clean_session)
        // Ingest messages are acknowledged once stored, by the ingest worker.
        .set_manual_acks(true);
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

/// The commands connection's client (`mqtt::commands`): its own client id (the hub's
/// with `-c`), always a clean session, no last will.
pub fn commands_client(
    s: &MqttSettings,
    hub_id: &str,
) -> Result<(AsyncClient, EventLoop), MqttError> {
    let client_id = if s.client_id.is_empty() {
        format!("telehub-{hub_id}-c")
    } else {
        format!("{}-c", s.client_id)
    };
    let mut o = options(s, client_id)?;
    o.set_clean_session(true);
    Ok(AsyncClient::new(o, REQUEST_CHANNEL))
}

/// What both connections share: broker address, TLS, credentials and limits.
fn options(s: &MqttSettings, client_id: String) -> Result<MqttOptions, MqttError> {
    let addr = BrokerAddr::parse(&s.url)?;
    let mut o = MqttOptions::new(client_id, addr.host.clone(), addr.port);
    o.set_keep_alive(s.keepalive)
        .set_max_packet_size(s.max_packet_bytes, s.max_packet_bytes)
        .set_inflight(s.max_inflight)
        .set_request_channel_capacity(REQUEST_CHANNEL);
    if let Some(user) = &s.username {
        o.set_credentials(user.clone(), s.password.clone().unwrap_or_default());
    }
    if addr.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(crate::tls::mqtt_client_config(
                s.ca_file.as_deref(),
                s.client_cert.as_deref(),
                s.client_key.as_deref(),
            )?),
        )));
    }
    Ok(o)
}

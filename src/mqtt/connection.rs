//! The broker connection: polls rumqttc's event loop in its own task, (re)subscribes
//! on every connect, reconnects with exponential backoff and jitter, keeps the broker
//! status for `/readyz`, and routes incoming publishes to the ingest worker or the
//! cluster inbox. It never waits on another task: a full channel drops (and counts).

use super::ingest::Received;
use super::{BrokerStatus, MqttSettings};
use crate::backoff::{Backoff, BackoffConfig, Jitter};
use crate::metrics::Metrics;
use rumqttc::{
    ConnectionError, Event, EventLoop, Incoming, Outgoing, PubAck, PubRec, Publish, QoS, Request,
    Subscribe, SubscribeFilter, SubscribeReasonCode,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Where incoming publishes go.
pub struct Routes {
    /// `$share/<group>/<ingest_topic>` (or the plain filter), with its QoS.
    ingest_filter: Option<(String, QoS)>,
    /// The ingest filter without the `$share/<group>/` prefix, to match topics.
    ingest_match: String,
    /// `<cluster_topic>/+` when cluster mode is on.
    cluster_filter: Option<String>,
    own_cluster_topic: String,
    /// `config_reported_topic` (shared like ingest) and the filter to match topics,
    /// with `config_topic` set.
    config_filter: Option<(String, String)>,
    ingest: mpsc::Sender<Received>,
    cluster: mpsc::Sender<Publish>,
    /// Configuration reports → the reports worker.
    config: mpsc::Sender<Received>,
    /// Counts connections; ingest publishes carry the one they arrived on.
    connection: Arc<AtomicU64>,
    log: super::LogLimiter,
}

impl Routes {
    pub fn new(
        s: &MqttSettings,
        hub_id: &str,
        ingest: mpsc::Sender<Received>,
        cluster: mpsc::Sender<Publish>,
        config: mpsc::Sender<Received>,
        connection: Arc<AtomicU64>,
    ) -> Self {
        let shared = |topic: &str| {
            if s.shared_group.is_empty() {
                topic.to_owned()
            } else {
                format!("$share/{}/{}", s.shared_group, topic)
            }
        };
        let ingest_filter = (!s.ingest_topic.is_empty())
            .then(|| (shared(&s.ingest_topic), super::qos(s.ingest_qos)));
        let config_filter = super::config::enabled(s).then(|| {
            (
                shared(&s.config_reported_topic),
                s.config_reported_topic.clone(),
            )
        });
        Self {
            ingest_filter,
            config_filter,
            config,
            ingest_match: s.ingest_topic.clone(),
            cluster_filter: s.cluster.then(|| format!("{}/+", s.cluster_topic)),
            own_cluster_topic: super::cluster::topic(&s.cluster_topic, hub_id),
            ingest,
            cluster,
            connection,
            log: super::LogLimiter::default(),
        }
    }

    fn subscribe(&self) -> Option<Subscribe> {
        let mut filters = Vec::new();
        if let Some((f, q)) = &self.ingest_filter {
            filters.push(SubscribeFilter::new(f.clone(), *q));
        }
        if let Some(f) = &self.cluster_filter {
            // QoS 0: the live stream is best effort; a lost connection loses a few frames,
            // never repeats one.
            filters.push(SubscribeFilter::new(f.clone(), QoS::AtMostOnce));
        }
        if let Some((f, _)) = &self.config_filter {
            filters.push(SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        }
        (!filters.is_empty()).then(|| Subscribe::new_many(filters))
    }
}

/// Runs until the outbox's DISCONNECT goes out, or `hard_stop`.
pub async fn run(
    mut eventloop: EventLoop,
    mut routes: Routes,
    s: MqttSettings,
    status: watch::Sender<BrokerStatus>,
    metrics: Arc<Metrics>,
    hard_stop: CancellationToken,
) {
    let mut backoff = Backoff::with_jitter(
        BackoffConfig {
            initial: s.reconnect_min,
            max: s.reconnect_max,
        },
        Jitter::Equal,
    );
    let mut failures = 0u32;
    loop {
        let event = tokio::select! {
            _ = hard_stop.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                tracing::info!(broker = %s.url, session_present = ack.session_present, "mqtt: connected");
                failures = 0;
                routes.connection.fetch_add(1, Ordering::AcqRel);
                backoff.reset();
                metrics.mqtt.connected.set(1);
                status.send_replace(BrokerStatus {
                    connected: true,
                    subscribed: false,
                    detail: format!("connected to {}", s.url),
                });
                // Straight into the event loop's own queue, ahead of waiting publishes:
                // this task must never wait on the request channel.
                if let Some(sub) = routes.subscribe() {
                    eventloop.pending.push_front(Request::Subscribe(sub));
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                route(&mut routes, &mut eventloop, &metrics, p)
            }
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    tracing::error!(
                        "mqtt: the broker refused a subscription ({:?}); check its ACL for the hub's user and that it supports $share/ subscriptions",
                        routes.ingest_filter.as_ref().map(|f| &f.0)
                    );
                } else {
                    status.send_modify(|st| st.subscribed = true);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                let was_connected = status.borrow().connected;
                metrics.mqtt.connected.set(0);
                metrics.mqtt.disconnects.inc();
                failures += 1;
                status.send_replace(BrokerStatus {
                    connected: false,
                    subscribed: false,
                    detail: format!("{}: {}; reconnecting", s.url, explain(&e)),
                });
                if was_connected || failures == 1 {
                    tracing::warn!(broker = %s.url, error = %explain(&e), retry_in = ?backoff.ceiling(), "mqtt: broker connection lost; the hub keeps ingesting over WebSocket and retries");
                } else {
                    tracing::debug!(broker = %s.url, error = %e, "mqtt: reconnect failed");
                }
                let pause = backoff.next_delay();
                tokio::select! {
                    _ = hard_stop.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    metrics.mqtt.connected.set(0);
    status.send_replace(BrokerStatus {
        connected: false,
        subscribed: false,
        detail: "disconnected: the hub is shutting down".into(),
    });
}

/// Hands a publish to its consumer without waiting; full or absent consumers drop it.
fn route(routes: &mut Routes, eventloop: &mut EventLoop, metrics: &Metrics, p: Publish) {
    if routes.cluster_filter.is_some()
        && rumqttc::matches(&p.topic, routes.cluster_filter.as_ref().expect("checked"))
    {
        if p.topic != routes.own_cluster_topic && routes.cluster.try_send(p).is_err() {
            metrics.mqtt.dropped("cluster_in", 1);
            tracing::debug!("mqtt: cluster inbox full; a live frame from another hub was dropped");
        }
        return;
    }
    if let Some((_, filter)) = &routes.config_filter
        && rumqttc::matches(&p.topic, filter)
    {
        let received = Received {
            connection: routes.connection.load(Ordering::Acquire),
            publish: p,
        };
        if let Err(e) = routes.config.try_send(received) {
            // Acknowledged anyway (as ingest below); the device reports again when it
            // gets no answer.
            metrics.mqtt.command_frame_refused("queue_full");
            ack(eventloop, &e.into_inner().publish);
        }
        return;
    }
    if !rumqttc::matches(&p.topic, &routes.ingest_match) {
        tracing::debug!(topic = %crate::domain::untrusted(&p.topic), "mqtt: publish on a topic the hub did not subscribe to; ignored");
        return;
    }
    let connection = routes.connection.load(Ordering::Acquire);
    if let Err(e) = routes.ingest.try_send(Received {
        connection,
        publish: p,
    }) {
        let p = e.into_inner().publish;
        metrics.mqtt.refuse("queue_full");
        if routes.log.allow() {
            tracing::warn!(topic = %crate::domain::untrusted(&p.topic), suppressed = routes.log.take_suppressed(), "mqtt: ingest queue full; message dropped (storage is slower than the broker: raise mqtt.ingest_queue for bursts, or add hubs)");
        }
        // Acknowledge anyway: an unacknowledged message would hold a slot of the broker's
        // in-flight window until the next reconnect.
        ack(eventloop, &p);
    }
}

/// Acknowledges `p` straight from the event loop's own queue.
fn ack(eventloop: &mut EventLoop, p: &Publish) {
    match p.qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => eventloop
            .pending
            .push_back(Request::PubAck(PubAck::new(p.pkid))),
        QoS::ExactlyOnce => eventloop
            .pending
            .push_back(Request::PubRec(PubRec::new(p.pkid))),
    }
}

/// The error as an operator can act on it.
fn explain(e: &ConnectionError) -> String {
    use rumqttc::ConnectReturnCode as C;
    match e {
        ConnectionError::ConnectionRefused(C::BadUserNamePassword | C::NotAuthorized) => {
            "the broker refused the credentials; check mqtt.username and mqtt.password".into()
        }
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection ({code:?})")
        }
        ConnectionError::Io(io) => format!("{io} (is the broker running and reachable?)"),
        ConnectionError::Tls(t) => {
            format!("TLS: {t} (check mqtt.ca_file and the broker's certificate name)")
        }
        other => other.to_string(),
    }
}

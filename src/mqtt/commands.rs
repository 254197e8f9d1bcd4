//! Commands over MQTT (docs/commands.md), on a broker connection of their own: this
//! hub's command relay ([`crate::commands::relay`]) publishes the commands of devices
//! not connected with `?commands=1` on `commands_topic` (the command object, QoS 1), and
//! reports each one published when the broker's PUBACK for it arrives: only then is it
//! stored as `sent`. Devices' `command_ack` / `command_result` frames on
//! `command_results_topic` go to the [`super::command_results`] worker.
//!
//! Why a connection of its own: a PUBACK names only a packet id, so this task chooses
//! the id of every publish itself (1..=`max_inflight`, none reused while in flight) and
//! puts it straight into the event loop's queue; no other publisher shares the
//! connection. A command is published only while the connection is up and before it
//! expires; one handed over while it is down is reported not published at once. When
//! the connection drops, every publish not yet acknowledged is
//! reported not published (the dispatcher sends it again after `ack_timeout`) and
//! dropped from the event loop's queue, and the session is always clean, so nothing
//! is published twice by the client itself.
//!
//! Channels: the relay's queue in (`mqtt.max_inflight` commands); reports out (the
//! dispatcher's queue, waited for, at most one per publish); incoming frames out to the
//! results worker (`mqtt.ingest_queue`, dropped and counted when full). The task never
//! awaits storage.

use super::MqttSettings;
use crate::backoff::{Backoff, BackoffConfig, Jitter};
use crate::commands::relay::{Relay, Report};
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::storage::commands::CommandRow;
use rumqttc::{Event, EventLoop, Incoming, Publish, QoS, Request, Subscribe, SubscribeReasonCode};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The commands connection: its event loop and the publishes awaiting their PUBACK.
pub struct Link {
    eventloop: EventLoop,
    settings: MqttSettings,
    results: mpsc::Sender<Publish>,
    metrics: Arc<Metrics>,
    /// Publishes sent and not acknowledged, by packet id.
    inflight: HashMap<u16, Arc<CommandRow>>,
    last_pkid: u16,
    connected: bool,
    /// Reports waiting for room in the dispatcher's queue.
    reports: VecDeque<Report>,
}

impl Link {
    pub fn new(
        eventloop: EventLoop,
        settings: &MqttSettings,
        results: mpsc::Sender<Publish>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            eventloop,
            settings: settings.clone(),
            results,
            metrics,
            inflight: HashMap::new(),
            last_pkid: 0,
            connected: false,
            reports: VecDeque::new(),
        }
    }

    /// Runs until `shutdown`, or until the dispatcher drops the relay.
    pub async fn run(mut self, relay: Relay, shutdown: CancellationToken) {
        let Relay {
            mut commands,
            reports,
        } = relay;
        let mut backoff = Backoff::with_jitter(
            BackoffConfig {
                initial: self.settings.reconnect_min,
                max: self.settings.reconnect_max,
            },
            Jitter::Equal,
        );
        loop {
            let room =
                self.connected && self.inflight.len() < usize::from(self.settings.max_inflight);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = reports.reserve(), if !self.reports.is_empty() => match permit {
                    Some(p) => p.send(self.reports.pop_front().expect("not empty")),
                    None => break,
                },
                // While disconnected, nothing waits here: the dispatcher checks it again
                // (open? expired?) before it comes back.
                row = commands.recv(), if room || !self.connected => match row {
                    Some(row) if self.connected => self.publish(row),
                    Some(row) => self.reports.push_back(Report::of(&row, false)),
                    None => break,
                },
                event = self.eventloop.poll() => match event {
                    Ok(event) => {
                        if matches!(event, Event::Incoming(Incoming::ConnAck(_))) {
                            backoff.reset();
                        }
                        self.on_event(event);
                    }
                    Err(e) => {
                        self.lost(&e);
                        let pause = backoff.next_delay();
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                },
            }
        }
        self.metrics.mqtt.commands_connected.set(0);
    }

    /// Publishes `row` at QoS 1 under a packet id of its own.
    fn publish(&mut self, row: Arc<CommandRow>) {
        if row.expires <= Timestamp::now() {
            // Expired since the dispatcher checked it: it expires there, unsent.
            self.reports.push_back(Report::of(&row, false));
            return;
        }
        let Some(command) = row.to_device_command(false) else {
            tracing::warn!(command = %row.id, "mqtt: a stored command does not make a command object; not published");
            self.reports.push_back(Report::of(&row, false));
            return;
        };
        let topic = self
            .settings
            .commands_topic
            .replace("{device}", &row.device);
        let payload = serde_json::to_vec(&command).expect("a command serializes");
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload);
        p.pkid = self.next_pkid();
        self.eventloop
            .pending
            .push_back(Request::Publish(p.clone()));
        self.inflight.insert(p.pkid, row);
    }

    /// The next packet id not in flight (there is one: at most `max_inflight` are).
    fn next_pkid(&mut self) -> u16 {
        let max = self.settings.max_inflight;
        loop {
            self.last_pkid = if self.last_pkid >= max {
                1
            } else {
                self.last_pkid + 1
            };
            if !self.inflight.contains_key(&self.last_pkid) {
                return self.last_pkid;
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::ConnAck(_)) => {
                tracing::info!(broker = %self.settings.url, "mqtt: commands connection up");
                self.connected = true;
                self.metrics.mqtt.commands_connected.set(1);
                let filter = self.settings.command_results_topic.clone();
                let sub = Subscribe::new(filter, QoS::AtLeastOnce);
                self.eventloop.pending.push_front(Request::Subscribe(sub));
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(row) = self.inflight.remove(&ack.pkid) {
                    self.reports.push_back(Report::of(&row, true));
                }
            }
            Event::Incoming(Incoming::Publish(p)) => {
                // Full: dropped and counted (the device answers again when the
                // command is sent again).
                let dropped = u64::from(self.results.try_send(p).is_err());
                self.metrics.mqtt.dropped("command_results", dropped);
            }
            Event::Incoming(Incoming::SubAck(ack))
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) =>
            {
                tracing::error!(
                    filter = %self.settings.command_results_topic,
                    "mqtt: the broker refused the command results subscription; check its ACL for the hub's user"
                );
            }
            _ => {}
        }
    }

    /// The connection dropped: what was not acknowledged is reported not published,
    /// and never published by the client later.
    fn lost(&mut self, e: &rumqttc::ConnectionError) {
        if self.connected {
            tracing::warn!(broker = %self.settings.url, error = %e, unacknowledged = self.inflight.len(), "mqtt: commands connection lost; unacknowledged commands are sent again later");
        }
        self.connected = false;
        self.metrics.mqtt.commands_connected.set(0);
        self.eventloop
            .pending
            .retain(|r| !matches!(r, Request::Publish(_)));
        for (_, row) in self.inflight.drain() {
            self.reports.push_back(Report::of(&row, false));
        }
    }
}

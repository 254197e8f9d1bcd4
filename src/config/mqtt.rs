//! `[mqtt]` settings (docs/configuration.md) and the broker address they name.

use super::{IngestSettings, SettingError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The `[mqtt]` section. Absent: the hub runs without MQTT.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// `mqtt://HOST[:PORT]` (default port 1883) or `mqtts://HOST[:PORT]` (TLS, 8883).
    pub url: String,
    /// Every reading this hub stores is published here; `{device}` and `{sensor}` are
    /// filled in. Empty: no egress.
    pub publish_topic: String,
    /// Subscribed for ingest; the last topic level names the device. Empty: no ingest.
    pub ingest_topic: String,
    /// Ingest subscribes as `$share/<shared_group>/<ingest_topic>`, so with several hubs
    /// each message is handled by one of them. Empty: a plain subscription.
    pub shared_group: String,
    /// Share the live stream (readings and device status) with every hub on the broker.
    pub cluster: bool,
    /// Cluster messages go to `<cluster_topic>/<hub id>`.
    pub cluster_topic: String,
    /// Commands (docs/commands.md) of devices not connected with `?commands=1` are
    /// published here at QoS 1, `{device}` filled in. Empty: no commands over MQTT.
    pub commands_topic: String,
    /// Subscribed (with `commands_topic` set) for devices' `command_ack` and
    /// `command_result` frames; the last level names the device and must be `+`.
    pub command_results_topic: String,
    /// The hub's answers to those frames (`result_stored`, and the nacks of frames it
    /// could not take) are published here at QoS 1, `{device}` filled in. Empty: none.
    pub command_replies_topic: String,
    /// Each device's desired configuration (docs/device-config.md) is published here,
    /// retained at QoS 1, as `{"version", "desired"}`, `{device}` filled in: a device
    /// that subscribes late gets the newest one from the broker. Empty: none.
    pub config_topic: String,
    /// Subscribed (with `config_topic` set) for devices' reports `{"version", "state"}`;
    /// the last level names the device and must be `+`.
    pub config_reported_topic: String,
    /// QoS of egress and cluster publishes (0, 1 or 2).
    pub qos: u8,
    /// QoS of the ingest subscription. At 1 or 2 a message is acknowledged to the broker
    /// only once it is stored (or refused for good).
    pub ingest_qos: u8,
    pub username: Option<String>,
    /// Hidden by `--print-config`.
    pub password: Option<String>,
    /// Empty: `telehub-<hub id>`, a new random id per start.
    pub client_id: String,
    /// `false` keeps the broker session (subscriptions, unacknowledged messages) across
    /// reconnects and restarts; needs a fixed `client_id`.
    pub clean_session: bool,
    /// PEM file of the CAs trusted for `mqtts://`; default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key for brokers that require TLS client authentication.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// Reconnect backoff: doubles from `reconnect_min` up to `reconnect_max`, with jitter.
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// Outgoing messages (egress and cluster) waiting for the broker at most; beyond it
    /// the oldest are dropped and counted (while the broker is down, for example).
    pub publish_queue: usize,
    /// Received ingest messages waiting for the ingest worker at most; beyond it they
    /// are dropped and counted.
    pub ingest_queue: usize,
    /// Ingest messages being stored at once (waiting for their commit).
    pub ingest_inflight: usize,
    /// Outgoing QoS 1/2 publishes awaiting the broker's acknowledgement at most.
    pub max_inflight: u16,
    /// MQTT packets larger than this are refused, in both directions.
    pub max_packet_bytes: usize,
    /// Readings per cluster message at most (a large commit is sent in several).
    pub cluster_max_readings: usize,
    /// How often each hub announces which devices are online on it; a hub not heard
    /// from for three intervals is taken as gone and its devices as offline.
    #[serde(with = "humantime_serde")]
    pub presence_interval: Duration,
    /// Devices remembered by the ingest device cache at most.
    pub device_cache_size: usize,
    /// How long an unknown device name is remembered as unknown (to notice new devices).
    #[serde(with = "humantime_serde")]
    pub unknown_device_ttl: Duration,
    /// How often the ingest cache checks storage for revocations.
    #[serde(with = "humantime_serde")]
    pub revocation_check: Duration,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".into(),
            publish_topic: "telehub/readings/{device}/{sensor}".into(),
            ingest_topic: "telehub/ingest/+".into(),
            shared_group: "telehub".into(),
            cluster: false,
            cluster_topic: "telehub/cluster".into(),
            commands_topic: String::new(),
            command_results_topic: "telehub/command-results/+".into(),
            command_replies_topic: "telehub/command-replies/{device}".into(),
            config_topic: "telehub/config/{device}".into(),
            config_reported_topic: "telehub/config-reported/+".into(),
            qos: 1,
            ingest_qos: 1,
            username: None,
            password: None,
            client_id: String::new(),
            clean_session: true,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keepalive: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            publish_queue: 100_000,
            ingest_queue: 4096,
            ingest_inflight: 1024,
            max_inflight: 1000,
            max_packet_bytes: 1024 * 1024,
            cluster_max_readings: 1000,
            presence_interval: Duration::from_secs(10),
            device_cache_size: 100_000,
            unknown_device_ttl: Duration::from_secs(5),
            revocation_check: Duration::from_secs(1),
        }
    }
}

/// Where the broker is: host, port, and whether to speak TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerAddr {
    /// Parses `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]` (`[::1]` for IPv6).
    pub fn parse(url: &str) -> Result<Self, SettingError> {
        let bad = |problem| SettingError::BrokerUrl {
            url: url.to_owned(),
            problem,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(SettingError::BrokerCredentials);
        }
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            _ => return Err(bad("unknown scheme; use mqtt:// or mqtts://")),
        };
        if rest.contains('/') || rest.contains('?') {
            return Err(bad("expected no path or query after HOST[:PORT]"));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in an IPv6 address; write [ADDRESS]:PORT"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("unexpected text after ]; write [ADDRESS]:PORT")),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host; write mqtt://HOST[:PORT]"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port must be 1 to 65535"))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

impl MqttSettings {
    /// Checks what types alone cannot; called by [`crate::config::Settings::validate`].
    pub fn validate(&self, ingest: &IngestSettings) -> Result<(), SettingError> {
        let rule = |r| Err(SettingError::Rule(r));
        BrokerAddr::parse(&self.url)?;
        if self.qos > 2 || self.ingest_qos > 2 {
            return rule("mqtt.qos and mqtt.ingest_qos must be 0, 1 or 2");
        }
        if self.publish_topic.contains(['+', '#']) {
            return rule("mqtt.publish_topic must not contain the wildcards + or #");
        }
        if !self.ingest_topic.is_empty() && !rumqttc::valid_filter(&self.ingest_topic) {
            return Err(SettingError::IngestTopicFilter(self.ingest_topic.clone()));
        }
        if self.ingest_topic.starts_with("$share/") {
            return rule(
                "mqtt.ingest_topic: give the topic alone and set mqtt.shared_group for a shared subscription",
            );
        }
        if self.shared_group.contains(['/', '+', '#']) {
            return rule("mqtt.shared_group must not contain /, + or #");
        }
        if self.cluster
            && (self.cluster_topic.is_empty() || self.cluster_topic.contains(['+', '#']))
        {
            return rule(
                "mqtt.cluster_topic must be a topic without wildcards when mqtt.cluster = true",
            );
        }
        if !self.commands_topic.is_empty() {
            self.validate_commands()?;
        }
        if !self.config_topic.is_empty() {
            self.validate_config()?;
        }
        if !self.clean_session && self.client_id.is_empty() {
            return rule("mqtt.clean_session = false needs a fixed mqtt.client_id (one per hub)");
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return rule("mqtt.client_cert and mqtt.client_key go together: set both or neither");
        }
        if self.password.is_some() && self.username.is_none() {
            return rule("mqtt.password needs mqtt.username");
        }
        if self.publish_queue == 0
            || self.ingest_queue == 0
            || self.ingest_inflight == 0
            || self.max_inflight == 0
            || self.cluster_max_readings == 0
            || self.device_cache_size == 0
        {
            return rule("mqtt queue, inflight, cluster_max_readings and cache sizes must be ≥ 1");
        }
        if self.max_packet_bytes < ingest.max_frame_bytes.max(4096) {
            return rule(
                "mqtt.max_packet_bytes must be at least ingest.max_frame_bytes (and ≥ 4096)",
            );
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return rule("mqtt.reconnect_min must be > 0 and at most mqtt.reconnect_max");
        }
        if self.keepalive < Duration::from_secs(1)
            || self.presence_interval.is_zero()
            || self.revocation_check.is_zero()
        {
            return rule("mqtt.keepalive must be ≥ 1s; presence_interval and revocation_check > 0");
        }
        Ok(())
    }

    fn validate_commands(&self) -> Result<(), SettingError> {
        let t = &self.commands_topic;
        if !t.contains("{device}") || t.contains(['+', '#']) {
            return Err(SettingError::Rule(
                "mqtt.commands_topic must name {device} and contain no wildcard + or #",
            ));
        }
        let p = &self.command_replies_topic;
        if !p.is_empty() && (!p.contains("{device}") || p.contains(['+', '#'])) {
            return Err(SettingError::Rule(
                "mqtt.command_replies_topic must be empty or name {device} with no wildcard + or #",
            ));
        }
        if !per_device_filter(&self.command_results_topic) {
            return Err(SettingError::Rule(
                "mqtt.command_results_topic must be a topic ending in /+ (the device), with no other wildcard",
            ));
        }
        Ok(())
    }

    fn validate_config(&self) -> Result<(), SettingError> {
        let t = &self.config_topic;
        if !t.contains("{device}") || t.contains(['+', '#']) {
            return Err(SettingError::Rule(
                "mqtt.config_topic must be empty or name {device} with no wildcard + or #",
            ));
        }
        if !per_device_filter(&self.config_reported_topic) {
            return Err(SettingError::Rule(
                "mqtt.config_reported_topic must be a topic ending in /+ (the device), with no other wildcard",
            ));
        }
        Ok(())
    }

    /// Hides the broker password (for `--print-config`).
    pub fn redact(&mut self) {
        if self.password.is_some() {
            self.password = Some("***".into());
        }
    }
}

/// A filter whose last level, `+`, names the device, with no other wildcard.
fn per_device_filter(r: &str) -> bool {
    rumqttc::valid_filter(r) && r.ends_with("/+") && !r[..r.len() - 1].contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_default_ports() {
        let a = BrokerAddr::parse("mqtt://127.0.0.1").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.tls), ("127.0.0.1", 1883, false));
        let a = BrokerAddr::parse("mqtts://broker.example:8884/").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.tls),
            ("broker.example", 8884, true)
        );
        let a = BrokerAddr::parse("mqtts://[::1]").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 8883));
    }

    #[test]
    fn bad_broker_urls_say_what_to_write() {
        let e = |u: &str| BrokerAddr::parse(u).unwrap_err().to_string();
        assert!(e("http://x").contains("mqtt://"));
        assert!(e("broker:1883").contains("mqtt://HOST"));
        assert!(e("mqtt://u:p@h").contains("mqtt.username"));
        assert!(e("mqtt://h:0").contains("port"));
        assert!(e("mqtt://h/x").contains("path"));
    }

    #[test]
    fn settings_are_checked() {
        let i = IngestSettings::default();
        assert!(MqttSettings::default().validate(&i).is_ok());
        let bad = |f: fn(&mut MqttSettings)| {
            let mut s = MqttSettings::default();
            f(&mut s);
            s.validate(&i).unwrap_err().to_string()
        };
        assert!(bad(|s| s.qos = 3).contains("qos"));
        assert!(bad(|s| s.publish_topic = "a/#".into()).contains("wildcards"));
        assert!(bad(|s| s.ingest_topic = "a/#/b".into()).contains("filter"));
        assert!(bad(|s| s.ingest_topic = "$share/g/a/+".into()).contains("shared_group"));
        assert!(bad(|s| s.clean_session = false).contains("client_id"));
        assert!(bad(|s| s.config_topic = "cfg/all".into()).contains("config_topic"));
        assert!(bad(|s| s.config_reported_topic = "r/#".into()).contains("config_reported"));
        assert!(bad(|s| s.reconnect_min = Duration::from_secs(60)).contains("reconnect"));
    }

    #[test]
    fn the_password_is_hidden() {
        let mut s = MqttSettings {
            username: Some("hub".into()),
            password: Some("secret".into()),
            ..Default::default()
        };
        s.redact();
        assert_eq!(s.password.as_deref(), Some("***"));
    }
}

//! `[alerts]`: where alert events go (webhooks in JSON, Slack or Teams form, email over
//! SMTP, an MQTT topic) and the bounds of their evaluation and delivery. Rules themselves live in the database (docs/protocol.md §9).

use super::SettingError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// Every event is POSTed to each of these (`[[alerts.webhooks]]`).
    pub webhooks: Vec<Webhook>,
    /// Every event is mailed to each of these (`[[alerts.email]]`).
    pub email: Vec<EmailTarget>,
    /// The dashboard's address as people open it (`https://telehub.example.com`), for the
    /// link in each event (`url`). Empty: `http(s)://` + `server.listen` (with `localhost`
    /// for an unspecified address).
    pub dashboard_url: String,
    /// MQTT topic for events (needs `[mqtt]`); `{rule}`, `{device}` and `{sensor}` are
    /// replaced. Empty: no MQTT publication.
    pub mqtt_topic: String,
    /// How long an undelivered webhook notification is retried before it is dropped
    /// (logged and counted).
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// The HMAC-SHA256 key of `X-Telehub-Signature`. Unset: one is generated and kept
    /// in the database, shared by the hubs of a cluster.
    pub secret: Option<String>,
    /// One webhook POST may take this long before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub post_timeout: Duration,
    /// Webhook POSTs in flight at most.
    pub senders: usize,
    /// First retry delay; doubled per failed attempt (with jitter) up to `retry_backoff_max`.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// How often the webhook sender looks for due retries when nothing new arrives.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often the engine checks whether rules or silences were changed from the
    /// command line or another hub (and whether a silence ended).
    #[serde(with = "humantime_serde")]
    pub rules_poll: Duration,
    /// Committed batches waiting for evaluation at most; when full, the storage writer
    /// waits (no batch is ever skipped).
    pub queue: usize,
    /// Rules at most.
    pub max_rules: usize,
    /// The shortest `repeat` a rule may be added with (at least 1 s).
    #[serde(with = "humantime_serde")]
    pub min_repeat: Duration,
    /// Alert events the live fan-out and MQTT publication may each fall behind the engine
    /// before some are dropped for them. Until this key existed, `live.committed_backlog`
    /// sized this channel (same default).
    pub event_backlog: usize,
    /// Silences active at once at most (contract §16); adding one more is refused.
    pub max_silences: usize,
}

/// A webhook receiver: its URL, extra request headers (values may be secrets; they
/// are hidden by `--print-config` and never logged) and the form of its body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub format: WebhookFormat,
}

/// What a webhook's body is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as JSON (protocol.md §11), signed.
    #[default]
    Json,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
    /// A Microsoft Teams message card.
    Teams,
}

/// Mail to `to` from `from` through `smtp_url`: `smtp://[user:password@]host[:port]`
/// (STARTTLS required; add `?tls=opportunistic` to allow a server without it, or
/// `?tls=none` for a relay on the same host), or `smtps://` (TLS from the start). The
/// password is hidden by `--print-config` and never logged. `ca_file` adds a PEM CA to
/// the system's roots, for a relay whose certificate a private CA issued.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTarget {
    pub smtp_url: String,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl EmailTarget {
    /// The name of this target in the outbox (no secret): `mailto:` and the recipients.
    pub fn key(&self) -> String {
        format!("mailto:{}", self.to.join(","))
    }
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            email: Vec::new(),
            dashboard_url: String::new(),
            mqtt_topic: String::new(),
            retry_for: Duration::from_secs(24 * 3600),
            secret: None,
            post_timeout: Duration::from_secs(10),
            senders: 4,
            retry_backoff: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
            rules_poll: Duration::from_secs(1),
            queue: 1024,
            max_rules: 100_000,
            min_repeat: Duration::from_secs(60),
            event_backlog: 1024,
            max_silences: 1000,
        }
    }
}

impl AlertSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        for w in &self.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(SettingError::WebhookUrl(w.url.clone()));
            }
            for name in w.headers.keys() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(SettingError::WebhookHeader(name.clone()));
                }
            }
        }
        for e in &self.email {
            let scheme_ok = e.smtp_url.starts_with("smtp://") || e.smtp_url.starts_with("smtps://");
            let address = |a: &String| a.contains('@') && !a.contains(['\r', '\n']);
            if !scheme_ok || !address(&e.from) || e.to.is_empty() || !e.to.iter().all(address) {
                return Err(SettingError::Rule(
                    "alerts.email: smtp_url must be smtp://… or smtps://…, from an address, and to a non-empty list of addresses",
                ));
            }
            if let Some(ca) = &e.ca_file
                && std::fs::File::open(ca).is_err()
            {
                return Err(SettingError::EmailCaFile(ca.clone()));
            }
        }
        if !(self.dashboard_url.is_empty()
            || self.dashboard_url.starts_with("http://")
            || self.dashboard_url.starts_with("https://"))
        {
            return Err(SettingError::Rule(
                "alerts.dashboard_url must start with http:// or https://",
            ));
        }
        if self.senders == 0
            || self.queue == 0
            || self.max_rules == 0
            || self.event_backlog == 0
            || self.max_silences == 0
        {
            return Err(SettingError::Rule(
                "alerts.senders, alerts.queue, alerts.max_rules, alerts.event_backlog and alerts.max_silences must be ≥ 1",
            ));
        }
        if self.min_repeat < Duration::from_secs(1) {
            return Err(SettingError::Rule("alerts.min_repeat must be at least 1s"));
        }
        let durations = [
            self.post_timeout,
            self.retry_backoff,
            self.poll_interval,
            self.rules_poll,
        ];
        if durations.iter().any(Duration::is_zero) || self.retry_backoff_max < self.retry_backoff {
            return Err(SettingError::Rule(
                "alerts: post_timeout, retry_backoff, poll_interval and rules_poll must be > 0, and retry_backoff_max ≥ retry_backoff",
            ));
        }
        Ok(())
    }

    /// A copy with the secret and every header value replaced by `***`.
    pub fn redacted(&self) -> Self {
        let mut s = self.clone();
        if s.secret.is_some() {
            s.secret = Some("***".into());
        }
        for w in &mut s.webhooks {
            w.url = super::redact_url(&w.url);
            for v in w.headers.values_mut() {
                *v = "***".into();
            }
        }
        for e in &mut s.email {
            e.smtp_url = super::redact_url(&e.smtp_url);
        }
        s
    }
}

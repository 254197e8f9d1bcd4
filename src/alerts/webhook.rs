//! One webhook POST: the event as JSON (`format = "json"`) or as a readable Slack or
//! Teams message ([`super::message`]), signed like GitHub signs its webhooks
//! (`X-Telehub-Signature: sha256=<hex HMAC-SHA256 of the body>`), with the webhook's
//! extra headers, within a timeout. Header values may be secrets: they are never logged.
//!
//! The POST goes to the configured URL only: redirects are not followed (a `3xx` is a
//! failed delivery, retried like any other), and no `Referer` is ever sent, so neither
//! the signed body nor the URL's query secret reaches a host the operator did not name.

use super::message::Message;
use crate::config::{Webhook, WebhookFormat};
use crate::domain::AlertEvent;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::Duration;

/// The HTTP client every webhook POST goes through: no redirects, no `Referer`.
pub fn client(connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
}

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Telehub-Signature";

/// `sha256=<hex>` of `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The body of an event's POST in the webhook's format.
pub fn body(event: &AlertEvent, format: WebhookFormat) -> Vec<u8> {
    let json = match format {
        WebhookFormat::Json => serde_json::to_value(event).expect("an event serializes"),
        WebhookFormat::Slack => Message::of(event).slack(),
        WebhookFormat::Teams => Message::of(event).teams(),
    };
    serde_json::to_vec(&json).expect("JSON serializes")
}

/// `scheme://host[:port]/path` of a URL, for the log (no query, no credentials).
pub fn loggable(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => no_query.to_owned(),
    }
}

/// Why a webhook POST failed (never its headers: they may hold secrets). The outbox
/// retries it with backoff until `retry_for`; the message says what to look at meanwhile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PostError {
    #[error(
        "answered {0}; check the receiver's logs (and the webhook's headers if it is 401 or 403)"
    )]
    Status(u16),
    #[error(
        "answered {0}, a redirect, which is not followed; set the webhook's URL to where the receiver redirects"
    )]
    Redirect(u16),
    #[error("no answer within {0:?}; check the receiver is up, or raise alerts.post_timeout")]
    Timeout(Duration),
    #[error("cannot connect; check the URL and that the receiver is reachable from the hub")]
    Connect,
    #[error("request failed; check the URL (scheme, TLS certificate)")]
    Request,
}

/// POSTs `body` to `hook`; `Err` says why it failed (status or transport, never headers).
pub async fn post(
    client: &reqwest::Client,
    hook: &Webhook,
    body: Vec<u8>,
    signature: &str,
    timeout: Duration,
) -> Result<(), PostError> {
    let mut req = client
        .post(&hook.url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature);
    for (k, v) in &hook.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) if resp.status().is_redirection() => {
            Err(PostError::Redirect(resp.status().as_u16()))
        }
        Ok(resp) => Err(PostError::Status(resp.status().as_u16())),
        Err(e) if e.is_timeout() => Err(PostError::Timeout(timeout)),
        Err(e) if e.is_connect() => Err(PostError::Connect),
        Err(_) => Err(PostError::Request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_rfc_4231_test_case_2() {
        // RFC 4231 http-api.md.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn logged_urls_lose_credentials_and_queries() {
        assert_eq!(
            loggable("https://u:pw@hooks.example/x?token=s"),
            "https://hooks.example/x"
        );
    }
}

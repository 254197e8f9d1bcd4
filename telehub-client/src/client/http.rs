//! One HTTP request per message, for the `http` and `line` transports (protocol.md §4): the URL,
//! the token header and TLS are prepared once; each answer becomes a [`Verdict`] on the
//! message, or a [`ConnectFailure`] when the hub did not answer about it.
//!
//! | answer | means |
//! |---|---|
//! | 2xx | acked (the hub answers after commit) |
//! | 400 | refused: the protocol.md §2 nack, or InfluxDB's `{"code", "message": "line N: ..."}` |
//! | 403 naming a device (line protocol) | `forbidden_device` |
//! | 413 | `too_large`: sent again in smaller messages |
//! | 429, 503 | resend later, not before `Retry-After` |
//! | 401, 403, other 4xx | failure that retrying cannot cure (wrong token or address) |
//! | other 5xx, no answer, timeout | failure: resend after a backoff delay |

use super::address::{ConnectFailure, NOT_HTTP, tls_failed, token_refused};
use super::flow::Verdict;
use super::{ClientConfig, ClientError, Transport};
use crate::protocol::address::HubAddress;
use crate::protocol::ingest::encode::parse_reply;
use crate::protocol::ingest::{ErrorCode, Reply};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use std::time::Duration;

/// An answer's body is read up to this many bytes (the hub's are a few hundred).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where and how to post messages.
pub(super) struct HttpLink {
    client: reqwest::Client,
    url: reqwest::Url,
    authorization: HeaderValue,
    content_type: &'static str,
    line: bool,
}

impl HttpLink {
    pub fn new(cfg: &ClientConfig) -> Result<Self, ClientError> {
        let address = HubAddress::parse(&cfg.hub)?;
        let line = cfg.transport == Transport::Line;
        let path = if line { "/api/v2/write" } else { "/v1/ingest" };
        let mut url = reqwest::Url::parse(&address.http_url(path))
            .map_err(|e| ClientError::Setting(format!("hub address: {e}")))?;
        if line {
            url.query_pairs_mut().append_pair("precision", "us");
        }
        let (client, authorization) = client_of(cfg, cfg.reply_timeout, cfg.max_inflight)?;
        Ok(Self {
            client,
            url,
            authorization,
            content_type: if line {
                "text/plain; charset=utf-8"
            } else {
                "application/json"
            },
            line,
        })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Posts message `id` and reads what the hub made of it.
    pub async fn post(&self, id: u64, body: String) -> (u64, Result<Verdict, ConnectFailure>) {
        let sent = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, self.content_type)
            .body(body)
            .send()
            .await;
        let answer = match sent {
            Ok(resp) => self.read(resp).await,
            Err(e) => Err(failure(&e)),
        };
        (id, answer)
    }

    async fn read(&self, mut resp: reqwest::Response) -> Result<Verdict, ConnectFailure> {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(3600)));
        if status.is_success() {
            return Ok(Verdict::Acked);
        }
        let mut body = Vec::new();
        while body.len() < MAX_ANSWER_BYTES {
            match resp.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                Ok(None) => break,
                Err(e) => return Err(failure(&e)),
            }
        }
        let body = String::from_utf8_lossy(&body);
        verdict(status, &body, retry_after, self.line)
    }
}

/// An HTTP client for `cfg`'s hub (its TLS roots, no redirects, each request answered
/// within `timeout`), and the token's `Authorization` header.
pub(super) fn client_of(
    cfg: &ClientConfig,
    timeout: Duration,
    max_idle: usize,
) -> Result<(reqwest::Client, HeaderValue), ClientError> {
    let mut authorization =
        HeaderValue::from_str(&format!("Bearer {}", cfg.token)).map_err(|_| ClientError::Token)?;
    authorization.set_sensitive(true);
    let tls = crate::tls::device_client_config(cfg.ca_file.as_deref())?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .connect_timeout(cfg.connect_timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(max_idle)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError::Setting(format!("HTTP client: {e}")))?;
    Ok((client, authorization))
}

/// What a non-2xx answer means for the message (see the module's table).
fn verdict(
    status: StatusCode,
    body: &str,
    retry_after: Option<Duration>,
    line: bool,
) -> Result<Verdict, ConnectFailure> {
    let refused = |error: ErrorCode, detail: String| -> Result<Verdict, ConnectFailure> {
        Ok(Verdict::Refused {
            error,
            detail,
            retry_after,
        })
    };
    let detail = detail_of(body);
    match status.as_u16() {
        400 | 413 | 429 | 503 if !line => match parse_reply(body) {
            Ok(Reply::Nack { error, detail, .. }) => refused(error, detail),
            _ => refused(code_for(status), detail),
        },
        400 => refused(ErrorCode::InvalidReading, detail),
        403 if line && detail.starts_with("device ") => refused(ErrorCode::ForbiddenDevice, detail),
        413 | 429 | 503 => refused(code_for(status), detail),
        s @ (401 | 403) => Err(ConnectFailure {
            reason: token_refused(s),
            retry_after: None,
            permanent: true,
        }),
        s if status.is_client_error() => Err(ConnectFailure {
            reason: format!("the hub answered HTTP {s} ({detail}); is the address a telehub hub?"),
            retry_after: None,
            permanent: true,
        }),
        s => Err(ConnectFailure {
            reason: format!("the hub answered HTTP {s} ({detail})"),
            retry_after,
            permanent: false,
        }),
    }
}

/// The code a refusal without a protocol.md §2 nack body stands for.
fn code_for(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        413 => ErrorCode::TooLarge,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::InvalidReading,
    }
}

/// The human part of an error body: `detail` (http-api.md, protocol.md §2) or `message` (InfluxDB), else the
/// text itself, cut short.
fn detail_of(body: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = json.as_ref().and_then(|j| {
        ["detail", "message"]
            .iter()
            .find_map(|k| j.get(k)?.as_str().map(str::to_owned))
    });
    field.unwrap_or_else(|| body.trim().chars().take(200).collect())
}

/// A request that got no answer: why, and whether retrying can help.
fn failure(e: &reqwest::Error) -> ConnectFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(s) = source {
        if let Some(t) = tls_in(s) {
            return permanent(tls_failed(t));
        }
        if s.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
        {
            return permanent(NOT_HTTP.into());
        }
        innermost = s.to_string();
        source = s.source();
    }
    let reason = if e.is_timeout() {
        "no answer in time (--connect-timeout, --reply-timeout)".to_owned()
    } else {
        format!("cannot reach the hub: {innermost}")
    };
    ConnectFailure {
        reason,
        retry_after: None,
        permanent: false,
    }
}

/// The TLS error `e` is, or wraps in (possibly nested) I/O errors, whose `source()`
/// skips the error they wrap.
fn tls_in<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

fn permanent(reason: String) -> ConnectFailure {
    ConnectFailure {
        reason,
        retry_after: None,
        permanent: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<Verdict, ConnectFailure>) -> (ErrorCode, String) {
        match r {
            Ok(Verdict::Refused { error, detail, .. }) => (error, detail),
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn json_refusals_keep_the_hubs_code_and_detail() {
        let body = r#"{"nack":3,"error":"invalid_reading","detail":"readings[1].value: bad"}"#;
        let (code, detail) = refused(verdict(StatusCode::BAD_REQUEST, body, None, false));
        assert_eq!(code, ErrorCode::InvalidReading);
        assert_eq!(detail, "readings[1].value: bad");
        let body = r#"{"error":"too_large","detail":"over 65536 bytes"}"#;
        let (code, _) = refused(verdict(StatusCode::PAYLOAD_TOO_LARGE, body, None, false));
        assert_eq!(code, ErrorCode::TooLarge);
    }

    #[test]
    fn line_protocol_refusals_name_the_line_or_the_device() {
        let body = r#"{"code":"invalid","message":"line 2: timestamp: too early"}"#;
        let (code, detail) = refused(verdict(StatusCode::BAD_REQUEST, body, None, true));
        assert_eq!(
            (code, detail.as_str()),
            (ErrorCode::InvalidReading, "line 2: timestamp: too early")
        );
        let body = r#"{"code":"forbidden","message":"device b-2: this token may not send for it"}"#;
        let (code, _) = refused(verdict(StatusCode::FORBIDDEN, body, None, true));
        assert_eq!(code, ErrorCode::ForbiddenDevice);
    }

    #[test]
    fn busy_hubs_are_retried_after_their_retry_after() {
        let wait = Some(Duration::from_secs(2));
        for line in [false, true] {
            let r = verdict(StatusCode::SERVICE_UNAVAILABLE, "{}", wait, line);
            assert!(matches!(
                r,
                Ok(Verdict::Refused { error: ErrorCode::Unavailable, retry_after, .. }) if retry_after == wait
            ));
            let r = verdict(StatusCode::BAD_GATEWAY, "proxy down", wait, line).unwrap_err();
            assert!(!r.permanent && r.reason.contains("502"), "{r:?}");
        }
    }

    #[test]
    fn a_refused_token_or_a_wrong_address_is_not_retried() {
        for (status, says) in [(401, "(401)"), (403, "(403)"), (404, "HTTP 404")] {
            let s = StatusCode::from_u16(status).unwrap();
            let f = verdict(s, r#"{"error":"x","detail":"no"}"#, None, false).unwrap_err();
            assert!(f.permanent && f.reason.contains(says), "{f:?}");
        }
    }
}

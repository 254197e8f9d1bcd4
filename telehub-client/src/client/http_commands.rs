//! Commands and desired configuration over HTTP, for the `http` and `line` transports
//! (protocol.md §13, §14; docs/commands.md "Over HTTP"). Three loops beside the readings'
//! own, each its own requests, until the client stops:
//!
//! - **take**: `GET /v1/commands/next?wait=…` (long-poll); each command is handed to the
//!   [`CommandSide`] (which dedupes executed ids and starts the handler) and, when it
//!   takes it, acknowledged at once with `POST /v1/commands/ID/ack`. A command not
//!   acknowledged comes again on a later poll, so a lost acknowledgement costs a resend.
//! - **answer**: the book's unconfirmed answers, `POST /v1/commands/ID/result`, until the
//!   hub answers `200` (stored; an answer to a command already ended is `200` too) or
//!   refuses it for good (`403`, `404`: given up). Woken when a handler finishes.
//! - **configure** (with [`super::CommandsConfig::config`]): `GET /v1/config?known=N&
//!   wait=…`; a newer desired document is applied and reported with
//!   `PUT /v1/config/reported`.
//!
//! A failed request (no answer, 5xx, 429) waits a backoff delay before the loop goes on.

use super::commands::CommandSide;
use super::http::client_of;
use super::session::sleep_until_some;
use super::{ClientConfig, ClientError};
use crate::backoff::Backoff;
use crate::protocol::address::HubAddress;
use crate::protocol::commands::{CommandAnswer, ConfigDocument, DeviceCommand};
use crate::protocol::frames::DeviceFrame;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long each long-poll asks the hub to wait (the hub allows at most 60 s).
const POLL_WAIT: Duration = Duration::from_secs(20);
/// Without a handler slot free, how long before polling again.
const BUSY_PAUSE: Duration = Duration::from_millis(200);

/// Where and how the command loops send their requests.
pub(super) struct CommandLink {
    client: reqwest::Client,
    address: HubAddress,
    authorization: HeaderValue,
    cfg: Arc<ClientConfig>,
}

/// What a request got: the status and body, or nothing (no answer).
type Answer = Option<(StatusCode, String)>;

impl CommandLink {
    pub fn new(cfg: Arc<ClientConfig>) -> Result<Self, ClientError> {
        let address = HubAddress::parse(&cfg.hub)?;
        // A long-poll answers within its wait; the reply timeout on top of that. At most
        // the three loops' requests at once.
        let (client, authorization) = client_of(&cfg, POLL_WAIT + cfg.reply_timeout, 3)?;
        Ok(Self {
            client,
            address,
            authorization,
            cfg,
        })
    }

    async fn request(&self, method: Method, path_and_query: &str, body: Option<String>) -> Answer {
        let mut req = self
            .client
            .request(method, self.address.http_url(path_and_query))
            .header(AUTHORIZATION, self.authorization.clone());
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status();
        Some((status, resp.text().await.ok()?))
    }

    /// Runs the loops until `stop` is cancelled.
    pub async fn run(self, side: Arc<CommandSide>, stop: CancellationToken) {
        let configure = async {
            if side.cfg.config.is_some() {
                self.configure(&side).await
            }
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = self.take(&side) => {}
            _ = self.answer(&side) => {}
            _ = configure => {}
        }
    }

    async fn take(&self, side: &Arc<CommandSide>) {
        let mut backoff = Backoff::new(self.cfg.backoff);
        let path = format!("/v1/commands/next?wait={}s", POLL_WAIT.as_secs());
        loop {
            match self.request(Method::GET, &path, None).await {
                Some((StatusCode::OK, body)) => {
                    backoff.reset();
                    let Some(command) = command_of(&body) else {
                        tracing::warn!("the hub sent a command this client cannot read; skipped");
                        continue;
                    };
                    let id = command.id.clone();
                    if side.take(command) {
                        let ack = format!("/v1/commands/{id}/ack");
                        // Lost: the hub sends it again on a later poll, answered from the book.
                        let _ = self.request(Method::POST, &ack, None).await;
                    } else {
                        tokio::time::sleep(BUSY_PAUSE).await;
                    }
                }
                Some((StatusCode::NO_CONTENT, _)) => backoff.reset(),
                answer => self.failed("commands/next", answer, &mut backoff).await,
            }
        }
    }

    async fn answer(&self, side: &Arc<CommandSide>) {
        let mut backoff = Backoff::new(self.cfg.backoff);
        side.book().connected();
        loop {
            let due = side.book().due(Instant::now(), &side.cfg);
            for frame in due {
                let DeviceFrame::CommandResult { id, answer } = frame else {
                    continue;
                };
                let path = format!("/v1/commands/{id}/result");
                match self
                    .request(Method::POST, &path, Some(body_of(&answer)))
                    .await
                {
                    Some((s, _)) if s.is_success() => {
                        backoff.reset();
                        side.book().stored(&id);
                    }
                    Some((s @ (StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), detail)) => {
                        tracing::warn!(%id, status = s.as_u16(), detail = %crate::domain::untrusted(&detail), "the hub refuses this command's answer; giving up on it");
                        side.book().stored(&id);
                    }
                    answer => self.failed("commands result", answer, &mut backoff).await,
                }
            }
            let next = side.book().next_due(&side.cfg);
            tokio::select! {
                _ = side.done.notified() => {}
                _ = sleep_until_some(next) => {}
            }
        }
    }

    async fn configure(&self, side: &Arc<CommandSide>) {
        let mut backoff = Backoff::new(self.cfg.backoff);
        let mut known = 0u64;
        loop {
            let path = format!("/v1/config?known={known}&wait={}s", POLL_WAIT.as_secs());
            match self.request(Method::GET, &path, None).await {
                Some((StatusCode::OK, body)) => {
                    backoff.reset();
                    let desired = serde_json::from_str(&body)
                        .ok()
                        .and_then(|v| ConfigDocument::from_value(v, "desired").ok());
                    let Some(desired) = desired else {
                        tracing::warn!("the hub sent a configuration this client cannot read");
                        self.pause(&mut backoff).await;
                        continue;
                    };
                    let Some(report) = side.apply_config(&desired) else {
                        return;
                    };
                    let body = report.to_value("state").to_string();
                    match self
                        .request(Method::PUT, "/v1/config/reported", Some(body))
                        .await
                    {
                        Some((s, _)) if s.is_success() => known = report.version,
                        answer => self.failed("config reported", answer, &mut backoff).await,
                    }
                }
                Some((StatusCode::NO_CONTENT, _)) => backoff.reset(),
                answer => self.failed("config", answer, &mut backoff).await,
            }
        }
    }

    /// A request that went wrong: logged, then a backoff delay.
    async fn failed(&self, what: &str, answer: Answer, backoff: &mut Backoff) {
        match answer {
            Some((status, body)) => tracing::debug!(
                what,
                status = status.as_u16(),
                body = %crate::domain::untrusted(&body),
                "command request refused; retrying"
            ),
            None => tracing::debug!(what, "no answer from the hub; retrying"),
        }
        self.pause(backoff).await;
    }

    async fn pause(&self, backoff: &mut Backoff) {
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The command in a `GET /v1/commands/next` answer (the whole command object: only
/// the fields a device is handed are read).
fn command_of(body: &str) -> Option<DeviceCommand> {
    let Value::Object(mut obj) = serde_json::from_str(body).ok()? else {
        return None;
    };
    obj.retain(|k, _| matches!(k.as_str(), "id" | "device" | "name" | "params" | "expires"));
    serde_json::from_value(Value::Object(obj)).ok()
}

/// `{"status", "result", "error"}` of an answer.
fn body_of(answer: &CommandAnswer) -> String {
    serde_json::to_string(answer).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_command_object_is_read_for_the_fields_a_device_is_handed() {
        let row = json!({
            "id": "c-1", "device": "pump-1", "name": "reboot", "params": {"delay": 1},
            "expires": "2026-12-07T10:00:00Z", "state": "sent", "attempts": 1,
            "created": "2026-12-07T09:00:00Z", "by": "ops"
        });
        let c = command_of(&row.to_string()).expect("read");
        assert_eq!(c.id.as_str(), "c-1");
        assert_eq!(c.name.as_str(), "reboot");
        assert_eq!(c.params["delay"], 1);
        assert!(command_of("[]").is_none());
        assert!(command_of(r#"{"id": "c-1"}"#).is_none());
    }
}

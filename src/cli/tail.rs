//! `telehub tail`: the live feed (docs/protocol.md §3) in a terminal. One line per reading
//! and per device status change on stdout, `lagged` notices on stderr. Reconnects
//! with exponential backoff and full jitter, never sooner than the hub's `Retry-After`;
//! exits 0 on Ctrl-C (or SIGTERM), and 1 with a one-line hint on what retrying cannot
//! cure: a refused token (401/403), an untrusted certificate, TLS on one side only.
//!
//! Gapless across reconnects: it remembers the `epoch` and `offset` of the last readings
//! frame and subscribes again with `resume`; when it stops it prints that position on
//! stderr, and `--resume EPOCH:OFFSET` starts from it.

use super::UsageError;
use crate::backoff::{BackoffConfig, Jitter};
use crate::protocol::live::{LiveFrame, LiveReading, Pattern};
use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{Request, StatusCode};
use tokio_tungstenite::tungstenite::{self, Message};

#[derive(Args, Debug)]
pub struct TailArgs {
    /// What to show: DEVICE/SENSOR patterns, `*` for a whole segment (default: `*`, everything).
    #[arg(value_name = "PATTERN")]
    patterns: Vec<String>,
    /// The hub: http(s)://HOST:PORT or ws(s)://HOST:PORT (`/v1/live` is appended);
    /// default: this machine's hub, at the configuration's `[server] listen`.
    #[arg(long, env = "TELEHUB_SERVER")]
    server: Option<String>,
    /// A viewer or admin token (`telehub token add NAME --role viewer`).
    #[arg(long, env = "TELEHUB_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM file of CA certificates to trust for wss:// (for a hub with its own certificate);
    /// default: the public web roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Start after this position (printed on stderr when tail stops): every matching
    /// reading committed since, if the hub still holds it in its live history.
    #[arg(long, value_name = "EPOCH:OFFSET", value_parser = Position::parse)]
    resume: Option<Position>,
}

/// A `--server` or `--resume` value tail cannot use; each message says what to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TailArgError {
    #[error("--server {0:?}: expected http(s)://HOST:PORT or ws(s)://HOST:PORT")]
    NoScheme(String),
    #[error("--server: unsupported scheme {0:?}; use http, https, ws or wss")]
    Scheme(String),
    #[error("--server {0:?}: missing HOST:PORT")]
    NoHost(String),
    #[error("{0:?}: expected EPOCH:OFFSET, as tail printed when it stopped")]
    Position(String),
}

/// A position in the live feed: `EPOCH:OFFSET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    epoch: String,
    offset: u64,
}

impl Position {
    fn parse(s: &str) -> Result<Self, TailArgError> {
        s.rsplit_once(':')
            .and_then(|(e, o)| {
                let offset = o.parse().ok()?;
                (!e.is_empty()).then(|| Position {
                    epoch: e.to_owned(),
                    offset,
                })
            })
            .ok_or_else(|| TailArgError::Position(s.to_owned()))
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.epoch, self.offset)
    }
}

/// First reconnect delay bound; doubles per failed attempt up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The hub pings every 20 s by default: this much silence means the connection is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(75);

impl TailArgs {
    pub fn has_server(&self) -> bool {
        self.server.is_some()
    }
}

/// The hub of this machine's configuration: its listen address (an unspecified one,
/// `0.0.0.0`, reached on loopback), over TLS when `[tls]` is set.
fn configured_server(settings: &crate::config::Settings) -> String {
    let mut addr = settings.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}")
}

/// `settings`: the loaded configuration when `--server` was not given.
pub async fn run(
    args: &TailArgs,
    settings: Option<&crate::config::Settings>,
) -> anyhow::Result<()> {
    let server = match (&args.server, settings) {
        (Some(s), _) => s.clone(),
        (None, Some(settings)) => configured_server(settings),
        (None, None) => return Err(UsageError("give --server URL".into()).into()),
    };
    let url = live_url(&server).map_err(|e| UsageError(e.to_string()))?;
    let patterns = if args.patterns.is_empty() {
        vec!["*".to_owned()]
    } else {
        args.patterns.clone()
    };
    for p in &patterns {
        Pattern::parse(p).map_err(|e| UsageError(format!("pattern {e}")))?;
    }
    let connector = connector(&url, args.ca.as_deref())?;
    let feed = Feed {
        url,
        token: args.token.clone(),
        connector,
        patterns,
        position: std::sync::Mutex::new(args.resume.clone()),
    };
    let r = tokio::select! {
        r = feed.follow() => r,
        _ = super::shutdown_signal() => Ok(()),
    };
    if let Some(p) = feed.position.lock().expect("not poisoned").as_ref() {
        eprintln!("tail: stopped at {p}; continue from there with --resume {p}");
    }
    r
}

/// `http(s)://` or `ws(s)://` base address → the `/v1/live` WebSocket URL.
fn live_url(server: &str) -> Result<String, TailArgError> {
    let s = server.trim().trim_end_matches('/');
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| TailArgError::NoScheme(s.to_owned()))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => return Err(TailArgError::Scheme(other.to_owned())),
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(TailArgError::NoHost(s.to_owned()));
    }
    let rest = rest.strip_suffix("/v1/live").unwrap_or(rest);
    Ok(format!("{scheme}://{rest}/v1/live"))
}

/// The TLS setup for `wss://`: the given CA file, or the default roots (`None`).
fn connector(url: &str, ca: Option<&Path>) -> anyhow::Result<Option<tokio_tungstenite::Connector>> {
    let Some(path) = ca else {
        return Ok(None);
    };
    if !url.starts_with("wss://") {
        return Err(
            UsageError("--ca is only used with an https:// or wss:// --server".into()).into(),
        );
    }
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read CA certificates from {}", path.display()))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        anyhow::bail!("no usable PEM certificate in {}", path.display());
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
}

struct Feed {
    url: String,
    token: String,
    connector: Option<tokio_tungstenite::Connector>,
    patterns: Vec<String>,
    /// The last position seen (or given with `--resume`): where a reconnect resumes.
    position: std::sync::Mutex<Option<Position>>,
}

/// How one connection ended.
enum End {
    /// Worth trying again (after a delay); the message says why it ended.
    Retry(String),
    /// Worth trying again, not before the hub's `Retry-After`.
    RetryAfter(String, Duration),
    /// The hub refused us for good.
    Refused(String),
    /// stdout is gone (e.g. `| head`): stop quietly.
    OutputClosed,
}

impl Feed {
    /// Connects, prints, and reconnects until refused or the output closes.
    async fn follow(&self) -> anyhow::Result<()> {
        let mut attempt: u32 = 0;
        loop {
            let end = match self.connect().await {
                Ok(ws) => {
                    eprintln!("tail: connected to {}", self.url);
                    attempt = 0;
                    self.print_frames(ws).await
                }
                Err(end) => end,
            };
            let (why, at_least) = match end {
                End::OutputClosed => return Ok(()),
                End::Refused(why) => anyhow::bail!("{why}"),
                End::Retry(why) => (why, Duration::ZERO),
                End::RetryAfter(why, d) => (why, d),
            };
            let delay = backoff(attempt).max(at_least);
            attempt = attempt.saturating_add(1);
            eprintln!("tail: {why}; reconnecting in {:.1} s", delay.as_secs_f64());
            tokio::time::sleep(delay).await;
        }
    }

    async fn connect(&self) -> Result<Ws, End> {
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            self.request(),
            None,
            false,
            self.connector.clone(),
        );
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => Err(End::Retry(format!(
                "no answer from {} within {} s",
                self.url,
                CONNECT_TIMEOUT.as_secs()
            ))),
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(tungstenite::Error::Http(resp))) if resp.status() != 503 => {
                Err(refusal(resp.status()))
            }
            Ok(Err(e)) => {
                let f = crate::client::ConnectFailure::from(e);
                let why = format!("cannot connect to {}: {}", self.url, f.reason);
                Err(match (f.permanent, f.retry_after) {
                    (true, _) => End::Refused(why),
                    (false, Some(d)) => End::RetryAfter(why, d),
                    (false, None) => End::Retry(why),
                })
            }
        }
    }

    fn request(&self) -> Request<()> {
        let mut req = self
            .url
            .as_str()
            .into_client_request()
            .expect("live_url builds valid URLs");
        if let Ok(v) = format!("Bearer {}", self.token).parse() {
            req.headers_mut().insert("authorization", v);
        }
        req
    }

    /// `{"subscribe": [...]}`, with `resume` from the last position seen.
    fn subscribe(&self) -> String {
        let mut msg = serde_json::json!({ "subscribe": self.patterns });
        if let Some(p) = self.position.lock().expect("not poisoned").as_ref() {
            msg["resume"] = serde_json::json!({"epoch": p.epoch, "offset": p.offset});
        }
        msg.to_string()
    }

    /// Subscribes (resuming), then prints every frame until the connection ends.
    async fn print_frames(&self, mut ws: Ws) -> End {
        if let Err(e) = ws.send(Message::Text(self.subscribe().into())).await {
            return End::Retry(format!("connection lost: {e}"));
        }
        loop {
            let msg = match tokio::time::timeout(SILENCE_LIMIT, ws.next()).await {
                Err(_) => {
                    return End::Retry(format!(
                        "nothing heard from the hub for {} s",
                        SILENCE_LIMIT.as_secs()
                    ));
                }
                Ok(None) => return End::Retry("connection closed".into()),
                Ok(Some(Err(e))) => return End::Retry(format!("connection lost: {e}")),
                Ok(Some(Ok(m))) => m,
            };
            let printed = match msg {
                Message::Text(text) => print_frame(&mut std::io::stdout().lock(), text.as_str()),
                Message::Close(frame) => return closed(frame),
                _ => Ok(None),
            };
            match printed {
                Err(_) => return End::OutputClosed,
                Ok(Some(p)) => *self.position.lock().expect("not poisoned") = Some(p),
                Ok(None) => {}
            }
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn refusal(status: StatusCode) -> End {
    match status.as_u16() {
        401 => End::Refused(
            "the hub refused the token (401): it is unknown or revoked; create one with `telehub token add NAME --role viewer`".into(),
        ),
        403 => End::Refused(
            "the hub refused the token (403): tail needs a viewer or admin token, not a device token".into(),
        ),
        404 => End::Refused("the hub has no /v1/live here (404): check --server".into()),
        s => End::Retry(format!("the hub answered HTTP {s}")),
    }
}

fn closed(frame: Option<tungstenite::protocol::CloseFrame>) -> End {
    let (code, reason) = frame.map_or((1005, String::new()), |f| {
        (u16::from(f.code), f.reason.as_str().to_owned())
    });
    if code == 1008 && reason.contains("revoked") {
        return End::Refused("the hub closed the feed: token revoked".into());
    }
    let why = if reason.is_empty() {
        format!("the hub closed the feed ({code})")
    } else {
        format!("the hub closed the feed ({code}: {reason})")
    };
    End::Retry(why)
}

/// A random delay in `0..=min(BACKOFF_MAX, BACKOFF_BASE·2^attempt)` (full jitter), at
/// least 100 ms.
fn backoff(attempt: u32) -> Duration {
    let cfg = BackoffConfig {
        initial: BACKOFF_BASE,
        max: BACKOFF_MAX,
    };
    cfg.delay(Jitter::Full, attempt)
        .max(Duration::from_millis(100))
}

/// Prints one frame: readings and status on `out`, notices on stderr; returns the new
/// position when the frame gives one. Fails only when `out` cannot be written.
fn print_frame(out: &mut impl Write, text: &str) -> std::io::Result<Option<Position>> {
    let position = |epoch: Option<String>, offset: Option<u64>| {
        Some(Position {
            epoch: epoch?,
            offset: offset?,
        })
    };
    let mut seen = None;
    match LiveFrame::parse(text) {
        Ok(LiveFrame::Readings {
            readings,
            epoch,
            offset,
        }) => {
            for r in &readings {
                writeln!(out, "{}", reading_line(r))?;
            }
            seen = position(epoch, offset);
        }
        Ok(LiveFrame::Resumed { resumed: true, .. }) => {}
        Ok(LiveFrame::Resumed { epoch, offset, .. }) => {
            eprintln!(
                "tail: the hub could not resume (it restarted, or the gap is older than its live history); readings committed meanwhile are not shown; continuing live"
            );
            seen = position(epoch, offset);
        }
        Ok(LiveFrame::Status { status: s }) => {
            let state = if s.online { "online" } else { "offline" };
            writeln!(out, "{} {} {state}", s.ts, s.device)?;
        }
        Ok(LiveFrame::Lagged { lagged }) => {
            eprintln!(
                "tail: lagged: the hub dropped {lagged} readings for this terminal (it fell behind)"
            );
        }
        Ok(LiveFrame::Error { error, detail }) => eprintln!("tail: the hub says {error}: {detail}"),
        // Not asked for by tail.
        Ok(LiveFrame::Alert { .. } | LiveFrame::Command { .. }) => {}
        Err(_) => eprintln!("tail: ignoring an unexpected frame from the hub"),
    }
    out.flush()?;
    Ok(seen)
}

/// `2026-11-21T10:00:00.250000Z boiler-1/temperature 21.5 Cel`; a boolean prints as
/// `true`/`false`, a string in JSON quotes (`"defrost"`), so each keeps its type.
fn reading_line(r: &LiveReading) -> String {
    let value = match &r.value {
        crate::domain::Value::Text(t) => serde_json::to_string(t.as_str()).expect("a string"),
        v => v.to_string(),
    };
    let mut line = format!("{} {}/{} {value}", r.ts, r.device, r.sensor);
    if let Some(u) = r.unit.as_deref().filter(|u| !u.is_empty()) {
        line.push(' ');
        line.extend(u.chars().map(|c| if c.is_control() { '?' } else { c }));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_become_live_urls() {
        assert_eq!(
            live_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/v1/live"
        );
        assert_eq!(
            live_url("https://hub.example/").unwrap(),
            "wss://hub.example/v1/live"
        );
        assert_eq!(live_url("ws://h:1/v1/live").unwrap(), "ws://h:1/v1/live");
        assert_eq!(live_url("WSS://h:1").unwrap(), "wss://h:1/v1/live");
        let e = |s: &str| live_url(s).unwrap_err().to_string();
        assert!(e("127.0.0.1:8080").contains("expected"));
        assert!(e("ftp://h").contains("scheme"));
        assert!(e("http://").contains("HOST"));
    }

    #[test]
    fn frames_print_as_lines() {
        let mut out = Vec::new();
        print_frame(
            &mut out,
            r#"{"readings":[{"device":"boiler-1","sensor":"temperature","ts":"2026-11-21T10:00:00.250000Z","value":21.5,"unit":"Cel"},{"device":"b","sensor":"h","ts":"2026-11-21T10:00:01.000000Z","value":40}]}"#,
        )
        .unwrap();
        print_frame(
            &mut out,
            r#"{"status":{"device":"boiler-1","online":false,"ts":"2026-11-21T10:00:02.000000Z"}}"#,
        )
        .unwrap();
        print_frame(&mut out, r#"{"lagged":12}"#).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-21T10:00:00.250000Z boiler-1/temperature 21.5 Cel\n\
             2026-11-21T10:00:01.000000Z b/h 40\n\
             2026-11-21T10:00:02.000000Z boiler-1 offline\n"
        );
    }

    #[test]
    fn readings_frames_and_failed_resumes_give_the_position() {
        let mut out = Vec::new();
        let frame = r#"{"readings":[{"device":"b","sensor":"h","ts":"t","value":1}],"epoch":"e1","offset":42}"#;
        let p = print_frame(&mut out, frame).unwrap().unwrap();
        assert_eq!(p.to_string(), "e1:42");
        assert_eq!(Position::parse("e1:42"), Ok(p));
        let not = r#"{"resumed":false,"epoch":"e2","offset":7}"#;
        assert_eq!(
            print_frame(&mut out, not).unwrap().unwrap().to_string(),
            "e2:7"
        );
        assert_eq!(print_frame(&mut out, r#"{"resumed":true}"#).unwrap(), None);
        assert!(Position::parse("42").is_err() && Position::parse("e:x").is_err());
    }

    #[test]
    fn control_characters_in_units_cannot_drive_the_terminal() {
        let r = LiveReading {
            device: "d".into(),
            sensor: "s".into(),
            ts: "t".into(),
            value: 1.0.into(),
            unit: Some("\u{1b}[2J".into()),
        };
        assert_eq!(reading_line(&r), "t d/s 1 ?[2J");
        let door = LiveReading {
            value: true.into(),
            unit: None,
            ..r
        };
        assert_eq!(reading_line(&door), "t d/s true");
        let mode = LiveReading {
            value: crate::domain::Value::text("say \"hi\"").unwrap(),
            ..door
        };
        assert_eq!(reading_line(&mode), r#"t d/s "say \"hi\"""#);
    }

    #[test]
    fn backoff_grows_but_stays_bounded() {
        for attempt in [0, 1, 5, 40, u32::MAX] {
            let d = backoff(attempt);
            assert!(d >= Duration::from_millis(100) && d <= BACKOFF_MAX, "{d:?}");
        }
        assert!(backoff(0) <= BACKOFF_BASE);
    }
}

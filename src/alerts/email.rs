//! One alert email over SMTP (`[[alerts.email]]`): the readable message
//! ([`super::message::Message`]) as plain text, through `lettre`. The SMTP URL may hold a
//! password: it is never logged, and errors never repeat it.
//!
//! `smtp://` requires STARTTLS unless the URL says `?tls=opportunistic` or `?tls=none`;
//! `smtps://` is TLS from the start. Credentials come from the URL's user and password.
//! `ca_file` adds a private CA to the system's roots for that TLS.

use super::message::Message;
use crate::config::EmailTarget;
use crate::domain::AlertEvent;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::Path;
use std::time::Duration;

/// Why an email could not be built or sent (never the SMTP URL: it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error(
        "alerts.email smtp_url is not a valid SMTP URL ({0}); use smtp://user:password@host:587"
    )]
    Url(String),
    #[error(
        "alerts.email ca_file {path}: {why}; give a PEM certificate of the CA that issued the SMTP server's certificate"
    )]
    CaFile { path: String, why: String },
    #[error("alerts.email ca_file needs TLS, but smtp_url says tls=none")]
    CaFileWithoutTls,
    #[error("alerts.email address {0:?} is not a valid mailbox")]
    Address(String),
    #[error("the message cannot be built: {0}")]
    Build(String),
    #[error("no answer within {0:?}; check the SMTP server is up, or raise alerts.post_timeout")]
    Timeout(Duration),
    #[error("the SMTP server refused it ({0}); check from, to and the credentials in smtp_url")]
    Refused(String),
    #[error(
        "cannot reach the SMTP server or agree on TLS ({0}); check smtp_url's host, port and tls"
    )]
    Connect(String),
}

/// The transport and envelope of one `[[alerts.email]]` target.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl Mailer {
    pub fn new(target: &EmailTarget, timeout: Duration) -> Result<Self, EmailError> {
        let url = lettre_url(&target.smtp_url);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| EmailError::Url(without_secrets(&e.to_string(), &target.smtp_url)))?
            .timeout(Some(timeout));
        if let Some(ca) = &target.ca_file {
            builder = builder.tls(tls_with_ca(&url, ca)?);
        }
        let transport = builder.build();
        let mailbox = |a: &String| {
            a.parse::<Mailbox>()
                .map_err(|_| EmailError::Address(a.clone()))
        };
        Ok(Self {
            transport,
            from: mailbox(&target.from)?,
            to: target.to.iter().map(mailbox).collect::<Result<_, _>>()?,
            timeout,
        })
    }

    /// Sends the event's message to every recipient (one mail).
    pub async fn send(&self, event: &AlertEvent) -> Result<(), EmailError> {
        let message = Message::of(event);
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(format!("[telehub] {}", message.title))
            .header(ContentType::TEXT_PLAIN)
            .message_id(Some(format!("<telehub-alert-{}@telehub>", event.id)));
        for to in &self.to {
            b = b.to(to.clone());
        }
        let mail = b
            .body(message.text())
            .map_err(|e| EmailError::Build(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.transport.send(mail)).await {
            Err(_) => Err(EmailError::Timeout(self.timeout)),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_timeout() => Err(EmailError::Timeout(self.timeout)),
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => {
                Err(EmailError::Refused(e.to_string()))
            }
            Ok(Err(e)) => Err(EmailError::Connect(e.to_string())),
        }
    }
}

/// The TLS of `url` (as [`lettre_url`] wrote it) with the CA in `ca` trusted too.
fn tls_with_ca(url: &str, ca: &Path) -> Result<Tls, EmailError> {
    let ca_error = |why: String| EmailError::CaFile {
        path: ca.display().to_string(),
        why,
    };
    let pem = std::fs::read(ca).map_err(|e| ca_error(e.to_string()))?;
    let cert = Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
    let parsed = reqwest::Url::parse(url).map_err(|e| EmailError::Url(e.to_string()))?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let params = TlsParameters::builder(host)
        .add_root_certificate(cert)
        .build()
        .map_err(|e| ca_error(e.to_string()))?;
    let mode = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (parsed.scheme(), mode.as_deref()) {
        ("smtps", _) => Ok(Tls::Wrapper(params)),
        (_, Some("opportunistic")) => Ok(Tls::Opportunistic(params)),
        (_, Some("required")) => Ok(Tls::Required(params)),
        _ => Err(EmailError::CaFileWithoutTls),
    }
}

/// The URL as lettre reads it: `smtp://` without a `tls` parameter requires STARTTLS;
/// `tls=none` means none.
fn lettre_url(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let tls = params.iter().find_map(|p| p.strip_prefix("tls="));
    match tls {
        Some("none") => params.retain(|p| !p.starts_with("tls=")),
        None if base.starts_with("smtp://") => params.push("tls=required"),
        _ => {}
    }
    if params.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", params.join("&"))
    }
}

/// `text` with the URL's password (if any) blanked out.
fn without_secrets(text: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw);
    match password {
        Some(pw) if !pw.is_empty() => text.replace(pw, "***"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_requires_starttls_unless_told_otherwise() {
        assert_eq!(
            lettre_url("smtp://u:p@mail:587"),
            "smtp://u:p@mail:587?tls=required"
        );
        assert_eq!(lettre_url("smtp://mail:25?tls=none"), "smtp://mail:25");
        assert_eq!(
            lettre_url("smtp://mail:25?tls=opportunistic"),
            "smtp://mail:25?tls=opportunistic"
        );
        assert_eq!(lettre_url("smtps://mail"), "smtps://mail");
    }

    #[test]
    fn a_bad_url_is_reported_without_its_password() {
        let target = EmailTarget {
            smtp_url: "smtp://alice:s3cret-pw@:bad port".into(),
            from: "hub@example.com".into(),
            to: vec!["ops@example.com".into()],
            ca_file: None,
        };
        let e = Mailer::new(&target, Duration::from_secs(1))
            .err()
            .expect("refused");
        assert!(!e.to_string().contains("s3cret-pw"), "{e}");
    }
}

//! A real SMTP server for the alert email tests: `tests/smtp/sink.py` (aiosmtpd, in the venv
//! `scripts/install-test-deps.sh` makes) on a free port, requiring AUTH, recording each mail.

use super::WAIT;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub struct SmtpSink {
    pub port: u16,
    /// One JSON object per mail (`from`, `to`, `auth`, `subject`, `body`) or refusal (`refused`).
    lines: mpsc::UnboundedReceiver<Value>,
    _child: Child,
}

impl SmtpSink {
    /// Starts the sink for `user`/`password`; it answers the first `fail_first` mails 451.
    pub async fn start(user: &str, password: &str, fail_first: usize) -> Self {
        Self::start_with(user, password, fail_first, None).await
    }

    /// As [`SmtpSink::start`], offering and requiring STARTTLS with this certificate and
    /// key (PEM files) when `tls` is given.
    pub async fn start_with(
        user: &str,
        password: &str,
        fail_first: usize,
        tls: Option<(&Path, &Path)>,
    ) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("tests/influx/.venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/install-test-deps.sh",
            python.display()
        );
        let mut cmd = Command::new(python);
        cmd.arg(root.join("tests/smtp/sink.py")).args([
            user,
            password,
            "--fail-first",
            &fail_first.to_string(),
        ]);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls").arg(cert).arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starts the SMTP sink");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(WAIT, out.next_line())
            .await
            .expect("the sink starts in time")
            .unwrap()
            .expect("the sink prints its port");
        let port = first.strip_prefix("PORT ").unwrap().parse().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(l)) = out.next_line().await {
                let _ = tx.send(serde_json::from_str(&l).unwrap());
            }
        });
        Self {
            port,
            lines,
            _child: child,
        }
    }

    /// The next line the sink printed (a mail or a refusal), within [`WAIT`].
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.lines.recv())
            .await
            .expect("the sink hears from the hub in time")
            .expect("the sink is running")
    }

    /// Nothing more arrives within `d`.
    pub async fn quiet_for(&mut self, d: std::time::Duration) -> bool {
        tokio::time::timeout(d, self.lines.recv()).await.is_err()
    }
}

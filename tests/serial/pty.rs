//! Linked pseudo-terminal pairs made by `socat`: the bridge opens one end as its serial
//! port, the test writes device lines on the other. Killing socat makes the port
//! vanish (as an unplugged USB adapter); starting it again with the same link names
//! brings it back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::helpers::{WAIT, eventually};

pub struct PtyPair {
    /// The end the bridge opens.
    pub port: PathBuf,
    /// The end the test writes to, as a microcontroller would.
    pub device_end: PathBuf,
    socat: Option<Child>,
}

impl PtyPair {
    /// A pair named `<dir>/<name>-port` and `<dir>/<name>-device`.
    pub async fn new(dir: &Path, name: &str) -> Self {
        let mut p = Self {
            port: dir.join(format!("{name}-port")),
            device_end: dir.join(format!("{name}-device")),
            socat: None,
        };
        p.start().await;
        p
    }

    /// Starts socat and waits until both links exist.
    pub async fn start(&mut self) {
        assert!(self.socat.is_none(), "already running");
        let link = |p: &Path| format!("pty,raw,echo=0,link={}", p.display());
        let child = Command::new("socat")
            .args([link(&self.port), link(&self.device_end)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat runs (scripts/install-test-deps.sh installs it)");
        self.socat = Some(child);
        let links = || async { (self.port.exists(), self.device_end.exists()) };
        eventually(WAIT, "both pty links (exist?)", links, |&l| {
            l == (true, true)
        })
        .await;
    }

    /// Stops socat (SIGTERM, so it removes its links) and waits until the links are gone.
    pub async fn stop(&mut self) {
        let mut child = self.socat.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        let links = || async { (self.port.exists(), self.device_end.exists()) };
        let what = "both pty links removed (exist?)";
        eventually(WAIT, what, links, |&l| l == (false, false)).await;
    }

    /// Writes raw bytes on the device end.
    pub fn write(&self, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.device_end)
            .expect("open the device end");
        f.write_all(bytes).expect("write to the device end");
        f.flush().unwrap();
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        if let Some(mut c) = self.socat.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

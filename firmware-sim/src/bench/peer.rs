//! The peer the live-feed benchmarks measure the hub against: a minimal Node `ws`
//! broadcast server (`bench/node-broadcast/server.js`), run as its own process. Devices
//! connect on `/device`; every frame one sends is relayed verbatim to every listening
//! (non-device) socket.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Which servers a live-feed benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Hub,
    /// The Node `ws` server (`node` is accepted too).
    #[value(alias = "node")]
    Peer,
}

/// The servers a live-feed benchmark compares (`--servers`, `--peer`).
#[derive(clap::Args, Debug)]
pub struct Servers {
    /// Which servers to measure, one after the other per run (`peer`, or `node`: the Node
    /// `ws` server).
    #[arg(
        long = "servers",
        value_enum,
        value_delimiter = ',',
        default_value = "hub,peer"
    )]
    pub which: Vec<Which>,
    /// The peer's server script (run with `node`); `npm ci` in its folder first.
    #[arg(long = "peer", default_value = "bench/node-broadcast/server.js")]
    pub script: PathBuf,
}

/// Fails with what to run when the peer's script or its `ws` package is missing.
pub fn check_peer(script: &Path) -> anyhow::Result<()> {
    let dir = script.parent().unwrap_or(Path::new("."));
    if !script.exists() || !dir.join("node_modules/ws").exists() {
        bail!(
            "the Node peer needs {} and its `ws` package: run `npm ci --prefix {}` (or pass --servers hub)",
            script.display(),
            dir.display()
        );
    }
    Ok(())
}

/// The Node broadcast server, as its own process (killed when dropped).
pub struct NodePeer {
    child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
}

impl NodePeer {
    pub async fn start(script: &Path) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting node (apt-get install nodejs)")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("the Node peer did not start within 10 s")??
            .context("the Node peer exited before listening")?;
        let addr = first
            .strip_prefix("listening ws://")
            .with_context(|| format!("unexpected first line from the Node peer: {first}"))?
            .parse()?;
        Ok(Self { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

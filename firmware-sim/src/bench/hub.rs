//! A hub under test, as its own process: started with a fresh database, its address read
//! from its first stdout line, its memory read from /proc, stopped with SIGTERM.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The options every scenario shares: where data goes, which hub, its settings.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// Folder for SQLite files and scratch data (the disk being measured).
    #[arg(long, default_value = "bench-data")]
    pub dir: PathBuf,
    /// PostgreSQL server for `--backend postgres` (a database on it is created per run).
    #[arg(
        long,
        env = "TELEHUB_TEST_PG",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub pg: String,
    /// The `telehub` binary (default: the one next to this executable).
    #[arg(long)]
    pub hub_bin: Option<PathBuf>,
    /// Hub settings for this measurement, e.g. `--set writer.linger=0ms` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub settings: Vec<String>,
    /// A seconds-long run that only checks everything works (CI).
    #[arg(long)]
    pub smoke: bool,
}

/// The load `bench ingest` and `bench alerts` send: `devices` × `messages` × `batch`
/// readings over pipelined WebSockets into a `backend`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: Backend,
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Readings per message.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Messages per device.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Messages in flight per device (awaiting their ack).
    #[arg(long, default_value_t = 8)]
    pub window: usize,
}

/// The `telehub` binary: `--hub-bin`, or the one next to this executable.
pub fn hub_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?.with_file_name("telehub"),
    };
    if !path.exists() {
        bail!(
            "no telehub binary at {}: build it (cargo build --release) or pass --hub-bin",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `telehub ARGS --database-url URL` to completion and returns stdout.
pub async fn telehub(bin: &Path, db: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .args(["--database-url", db])
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "telehub {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Creates devices `P1..PN` (`prefix` P) and returns their tokens in order.
pub async fn add_devices(
    bin: &Path,
    db: &str,
    count: usize,
    prefix: &str,
    dir: &Path,
) -> anyhow::Result<Vec<String>> {
    let file = dir.join(format!("{prefix}tokens.txt"));
    telehub(
        bin,
        db,
        &[
            "device",
            "add",
            "--count",
            &count.to_string(),
            "--prefix",
            prefix,
            "--tokens-out",
            file.to_str().context("a UTF-8 path")?,
        ],
    )
    .await?;
    Ok(std::fs::read_to_string(&file)?
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, t)| t.to_owned()))
        .collect())
}

/// Creates a viewer token (`bench-viewer`) and returns it.
pub async fn add_viewer(bin: &Path, db: &str) -> anyhow::Result<String> {
    let out = telehub(
        bin,
        db,
        &["token", "add", "bench-viewer", "--role", "viewer"],
    )
    .await?;
    Ok(out.trim().to_owned())
}

pub struct HubProcess {
    child: Child,
    pub addr: String,
}

impl HubProcess {
    /// Starts `telehub serve` on a free port with `env` settings; waits until it listens.
    pub async fn start(bin: &Path, db: &str, env: &[(String, String)]) -> anyhow::Result<Self> {
        Self::start_on(bin, db, "127.0.0.1:0", env).await
    }

    /// Starts `telehub serve --listen LISTEN`; waits until it listens.
    pub async fn start_on(
        bin: &Path,
        db: &str,
        listen: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::start_with(bin, db, listen, env, &[]).await
    }

    /// Starts `telehub serve --listen LISTEN EXTRA...`; waits until it listens.
    pub async fn start_with(
        bin: &Path,
        db: &str,
        listen: &str,
        env: &[(String, String)],
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", listen, "--database-url", db])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the hub")?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the hub did not start within 30 s")??
            .context("the hub exited before listening")?;
        let addr = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .with_context(|| format!("unexpected first line from the hub: {first}"))?
            .to_owned();
        // Keep draining stdout so the hub never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// SIGKILL (a crash), then wait.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing the hub")
    }

    /// SIGTERM, then wait (graceful shutdown flushes the writer).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        terminate(&mut self.child, "the hub").await
    }
}

/// SIGTERM to `child`, then wait for it to exit (at most 30 s).
pub async fn terminate(child: &mut Child, what: &str) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .with_context(|| format!("{what} did not stop within 30 s"))??;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh hub database: `DIR/hub.db`, or the database `telehub_bench_hub` on `pg`.
pub async fn fresh_database(backend: Backend, dir: &Path, pg: &str) -> anyhow::Result<String> {
    Ok(match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("hub.db").display()),
        Backend::Postgres => fresh_pg(pg, "telehub_bench_hub").await?,
    })
}

/// A fresh PostgreSQL database on `server` (`postgres://.../db`); returns its URL.
pub async fn fresh_pg(server: &str, name: &str) -> anyhow::Result<String> {
    let psql = |sql: String| {
        Command::new("psql")
            .arg(server)
            .args(["-qAtc", &sql])
            .output()
    };
    psql(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    let out = psql(format!("CREATE DATABASE {name}")).await?;
    if !out.status.success() {
        bail!(
            "cannot create database {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let (base, _) = server
        .rsplit_once('/')
        .context("the PostgreSQL URL must end in /DBNAME")?;
    Ok(format!("{base}/{name}"))
}

/// `section.key=value` → `TELEHUB_SECTION__KEY=value` (the hub's environment overrides).
pub fn settings_env(settings: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    settings
        .iter()
        .map(|s| {
            let (key, value) = s
                .split_once('=')
                .with_context(|| format!("--set {s}: expected section.key=value"))?;
            let (section, name) = key
                .split_once('.')
                .with_context(|| format!("--set {s}: expected section.key=value"))?;
            Ok((
                format!(
                    "TELEHUB_{}__{}",
                    section.to_uppercase(),
                    name.to_uppercase()
                ),
                value.to_owned(),
            ))
        })
        .collect()
}

/// This process's open-file limit (`ulimit -n`).
pub fn open_file_limit() -> anyhow::Result<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .context("cannot read the open-file limit")
}

/// Resident set size of process `pid` in bytes, from /proc.
pub fn rss_bytes_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")?;
    Ok(kb * 1024)
}

//! The peer of the line-protocol benchmark: Debian's InfluxDB 1.x `influxd`, started on
//! a temporary directory (on the disk being measured) and free ports, its WAL fsynced on
//! every write (`wal-fsync-delay = "0s"`, as the hub acks only after an fsynced commit),
//! and stopped with SIGTERM afterwards.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct Influxd {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// A port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn config(dir: &Path, http_port: u16, rpc_port: u16) -> String {
    let d = dir.display();
    format!(
        r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
[retention]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
[logging]
  level = "error"
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
"#
    )
}

impl Influxd {
    /// Starts `bin` with its data under `dir`; waits until `/ping` answers.
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let http_port = free_port()?;
        let conf = dir.join("influxdb.conf");
        std::fs::write(&conf, config(dir, http_port, free_port()?))?;
        let log = std::fs::File::create(dir.join("influxd.log"))?;
        let child = Command::new(bin)
            .arg("-config")
            .arg(&conf)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (Debian: apt-get install influxdb; or pass --influxd)",
                    bin.display()
                )
            })?;
        let me = Self {
            child,
            url: format!("http://127.0.0.1:{http_port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            let ping = http.get(format!("{}/ping", me.url)).send().await;
            if ping.is_ok_and(|r| r.status().is_success()) {
                return Ok(me);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "influxd did not answer /ping within 30 s (see {})",
            dir.join("influxd.log").display()
        )
    }

    /// `CREATE DATABASE name`.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let resp = reqwest::Client::new()
            .post(format!("{}/query", self.url))
            .form(&[("q", format!("CREATE DATABASE {name}"))])
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("influxd: CREATE DATABASE {name}: {}", resp.text().await?);
        }
        Ok(())
    }

    /// SIGTERM, then wait.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        super::hub::terminate(&mut self.child, "influxd").await
    }
}

/// `--influxd`: a path, or a name looked up on `PATH`.
pub fn binary(given: &Path) -> anyhow::Result<PathBuf> {
    if given.components().count() > 1 {
        return Ok(given.to_path_buf());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(given))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no {} on PATH: install Debian's InfluxDB 1.x (apt-get install influxdb; bench/line.sh does) or pass --influxd",
                given.display()
            )
        })
}

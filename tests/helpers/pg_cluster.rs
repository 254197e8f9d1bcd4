//! A private PostgreSQL cluster for one test (initdb + pg_ctl on a free port, run as the
//! `postgres` user since PostgreSQL refuses root): a test may stop, restart or
//! reconfigure it without disturbing the shared server other tests use.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Server-side TLS for [`TestCluster::start_with_tls`]: PEM files the test made.
pub struct ServerTls<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

pub struct TestCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// `-c name=value` options the server starts with.
    options: String,
    dir: tempfile::TempDir,
}

impl TestCluster {
    /// A cluster listening on 127.0.0.1 without TLS; `None` when PostgreSQL's server
    /// binaries (or `runuser`) are missing.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// A cluster that also speaks TLS with the given certificate and key.
    pub fn start_with_tls(tls: ServerTls<'_>) -> Option<Self> {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<ServerTls<'_>>) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut options = String::new();
        if let Some(tls) = tls {
            let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
            std::fs::write(&cert, tls.cert_pem).unwrap();
            write_private(&key, tls.key_pem);
            chown_postgres(&key)?;
            options = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
        }
        chown_postgres(dir.path())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Self {
            bin,
            data,
            port,
            options,
            dir,
        };
        let ok = c.pg(
            &["initdb", "-A", "trust", "-U", "postgres", "-D"],
            &[c.data.to_str().unwrap()],
        );
        (ok && c.ctl("start")).then_some(c)
    }

    fn pg(&self, cmd: &[&str], rest: &[&str]) -> bool {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(cmd[0]))
            .args(&cmd[1..])
            .args(rest)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `pg_ctl start|stop|restart`, waiting for it; true when it succeeded.
    pub fn ctl(&self, action: &str) -> bool {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1{}",
            self.port,
            self.data.display(),
            self.options
        );
        let log = self.data.join("server.log");
        self.pg(
            &["pg_ctl", "-w", "-m", "fast", "-D"],
            &[
                self.data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                action,
            ],
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's `postgres` database, by address, without TLS options.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A folder the test may write into, removed with the cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

fn chown_postgres(path: &Path) -> Option<()> {
    Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .ok()?
        .success()
        .then_some(())
}

/// A key file PostgreSQL accepts: readable by its owner only.
fn write_private(path: &Path, pem: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(pem.as_bytes()).unwrap();
}

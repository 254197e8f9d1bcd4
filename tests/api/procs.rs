//! Real processes for tests: the `telehub` hub (which a test may SIGKILL and restart)
//! and the `firmware-sim` binary.
//!
//! Cargo hands a test only its own package's binaries (`CARGO_BIN_EXE_telehub`), so
//! `firmware-sim` is found next to this test's own build folder, in
//! `target/<profile>/firmware-sim`. When the test runs under cargo, [`firmware_sim`]
//! first runs `cargo build -p firmware-sim` for the same profile (a no-op after
//! `cargo test --workspace`, which builds it anyway); run elsewhere, build it first
//! with `cargo build -p firmware-sim [--release]`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `firmware-sim` binary of this build, built first when it is missing or older
/// than the sources.
pub fn firmware_sim() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("tests run from target/<profile>/deps");
        let bin = profile_dir.join("firmware-sim");
        let cargo = std::env::var("CARGO")
            .ok()
            .or_else(|| option_env!("CARGO").map(str::to_owned));
        if let (Some(cargo), Some(target_dir), false) =
            (cargo, profile_dir.parent(), is_fresh(&bin))
        {
            build_firmware_sim(&cargo, profile_dir, target_dir);
        }
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p firmware-sim` (add --release for release tests)",
            bin.display()
        );
        bin
    })
    .clone()
}

/// Whether `bin` is newer than every source it is built from.
fn is_fresh(bin: &Path) -> bool {
    fn newest(p: &Path) -> std::time::SystemTime {
        let Ok(meta) = std::fs::metadata(p) else {
            return std::time::SystemTime::UNIX_EPOCH;
        };
        let own = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        if !meta.is_dir() {
            return own;
        }
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| newest(&e.path()))
            .fold(own, std::cmp::max)
    }
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return false;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        "src",
        "migrations",
        "Cargo.toml",
        "Cargo.lock",
        "firmware-sim/src",
        "firmware-sim/Cargo.toml",
    ]
    .iter()
    .all(|p| newest(&root.join(p)) <= built)
}

/// `cargo build -p firmware-sim` for the profile of this test, without the variables
/// cargo set for the test itself (they would make cargo rebuild dependencies).
fn build_firmware_sim(cargo: &str, profile_dir: &Path, target_dir: &Path) {
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .unwrap_or("debug");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "firmware-sim",
        "--bin",
        "firmware-sim",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .env("CARGO_TARGET_DIR", target_dir);
    for (k, _) in std::env::vars() {
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_PRIMARY_",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_",
        ]
        .iter()
        .any(|p| k.starts_with(p));
        if set_for_tests || k == "OUT_DIR" {
            cmd.env_remove(k);
        }
    }
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().expect("runs cargo build -p firmware-sim");
    assert!(status.success(), "cargo build -p firmware-sim failed");
}

/// A `telehub serve` process; its stderr goes to a log file in `dir`.
pub struct HubProcess {
    pub child: Child,
    pub addr: String,
    /// Every stdout line up to and including the dashboard line(s).
    pub banner: Vec<String>,
    pub log: PathBuf,
}

impl HubProcess {
    /// Starts `telehub serve --listen LISTEN` on `db` (plus `extra` arguments) and waits
    /// until it prints its address and dashboard URL (and the demo line with `--demo`).
    pub async fn start(db: &str, listen: &str, dir: &Path, extra: &[&str]) -> Self {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("hub-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_telehub"))
            .args(["serve", "--listen", listen, "--database-url", db])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("starts telehub serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wants_demo = extra.contains(&"--demo");
        let mut banner = Vec::new();
        let read = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                banner.push(line.clone());
                let done = if wants_demo {
                    line.starts_with("demo:")
                } else {
                    line.starts_with("dashboard:")
                };
                if done {
                    return;
                }
            }
            panic!(
                "telehub serve exited early: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("telehub serve starts within 30 s");
        // Keep reading stdout so the hub never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = banner[0]
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("listening line names the address")
            .to_owned();
        Self {
            child,
            addr,
            banner,
            log,
        }
    }

    /// The token in the printed dashboard URL.
    pub fn viewer_token(&self) -> Option<String> {
        self.banner
            .iter()
            .find_map(|l| l.split("?token=").nth(1))
            .map(|t| t.split_whitespace().next().unwrap_or("").to_owned())
            .filter(|t| t.starts_with("th_"))
    }

    /// kill -9, and wait until the process is gone.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, and the exit status within 30 s.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        sigterm(&self.child);
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("hub stops within 30 s of SIGTERM")
            .unwrap()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Sends SIGTERM to a child (through `kill`, to need no libc binding here).
pub fn sigterm(child: &Child) {
    let pid = child.id().expect("child is running");
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
}

/// Runs the `telehub` CLI to completion.
pub fn telehub_cli(db: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args(args)
        .args(["--database-url", db])
        .env_remove("RUST_LOG")
        .output()
        .expect("runs telehub")
}

/// `telehub device add --count N --prefix P --tokens-out TOKENS` (P1..PN), asserting it succeeds.
pub fn add_devices(db: &str, count: usize, prefix: &str, tokens: &Path) {
    let out = telehub_cli(
        db,
        &[
            "device",
            "add",
            "--count",
            &count.to_string(),
            "--prefix",
            prefix,
            "--tokens-out",
            tokens.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Simulator settings for fault tests: a steady stream with quick reconnects.
pub const STEADY_STREAM: &[&str] = &[
    "--rate",
    "40",
    "--batch",
    "20",
    "--linger",
    "20ms",
    "--backoff-initial",
    "50ms",
    "--backoff-max",
    "500ms",
    "--drain-timeout",
    "30s",
];

/// Starts `firmware-sim run` for the devices of `tokens` against the hub at `addr`, with
/// `args` (rates, backoff, ...). Stdout is piped for the summary line; stderr goes to `log`.
pub fn spawn_sim(addr: &str, tokens: &Path, args: &[&str], log: Option<&Path>) -> Child {
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    Command::new(firmware_sim())
        .args([
            "run",
            "--hub",
            &format!("ws://{addr}"),
            "--tokens",
            tokens.to_str().unwrap(),
        ])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("starts firmware-sim")
}

/// Stops a simulator with SIGTERM and returns its one-line JSON summary.
pub async fn sim_summary(sim: Child) -> serde_json::Value {
    sigterm(&sim);
    let out = tokio::time::timeout(Duration::from_secs(90), sim.wait_with_output())
        .await
        .expect("firmware-sim drains and exits")
        .unwrap();
    assert!(out.status.success(), "firmware-sim failed");
    serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
}

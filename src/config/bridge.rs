//! `[[bridge.serial]]`: settings of one bridged serial port, from the config file or
//! the flags of `telehub bridge serial`.

use super::SettingError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The optional `[bridge]` section of the config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeSettings {
    /// One entry per serial port; each runs as its own pair of tasks.
    pub serial: Vec<SerialPortSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    None,
    Software,
    Hardware,
}

/// One serial port and the hub its lines go to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SerialPortSettings {
    /// The serial device, e.g. `/dev/ttyUSB0` (a stable `/dev/serial/by-id/...` link is better).
    pub port: PathBuf,
    pub baud: u32,
    /// 5, 6, 7 or 8.
    pub data_bits: u8,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    pub flow_control: FlowControl,
    /// The hub's base address, `ws[s]://HOST:PORT`; `/v1/ingest` is appended (protocol.md §2).
    pub hub: String,
    /// The gateway device's token.
    pub token: String,
    /// Extra CA certificate (PEM) to trust for `wss://`, e.g. a self-signed hub's.
    pub ca_file: Option<PathBuf>,
    /// Refuse lines without `*HH`.
    pub checksum_required: bool,
    /// Readings held while the hub is unreachable or not acking; beyond it new lines are dropped.
    pub buffer: usize,
    /// Where unacked readings are kept so a restart of the bridge loses nothing.
    pub state_file: Option<PathBuf>,
    /// Readings per message at most (keep ≤ the hub's `max_readings_per_message`).
    pub batch: usize,
    /// How long a device's first reading waits for others before its message is sent.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Messages sent and not yet answered at most.
    pub max_inflight: usize,
    /// A `ts` further ahead of the bridge's clock than this is refused (the hub's limit).
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// A message unanswered this long means the connection is dead: reconnect and resend.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Reconnect back-off: first delay, doubling up to `reconnect_max`, with jitter.
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// Port reopen back-off after it vanished: first delay, doubling up to `reopen_max`.
    #[serde(with = "humantime_serde")]
    pub reopen_min: Duration,
    #[serde(with = "humantime_serde")]
    pub reopen_max: Duration,
    /// How often a summary line (lines read, forwarded, refused, buffered...) is logged.
    #[serde(with = "humantime_serde")]
    pub stats_interval: Duration,
    /// How long a clean stop waits for the hub to ack what is buffered.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Take commands (docs/commands.md): connect with `?commands=1` and write them to
    /// the port as `!cmd` lines; forward the devices' `!ack` and `!res` lines.
    pub commands: bool,
    /// Command lines waiting for the port, and device answers waiting for the hub (or
    /// for its confirmation), each at most; beyond it the oldest is dropped (the hub
    /// sends an unacknowledged command again; a device answers one again).
    pub command_queue: usize,
}

impl Default for SerialPortSettings {
    fn default() -> Self {
        Self {
            port: PathBuf::new(),
            baud: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow_control: FlowControl::None,
            hub: String::new(),
            token: String::new(),
            ca_file: None,
            checksum_required: true,
            buffer: 100_000,
            state_file: None,
            batch: 200,
            linger: Duration::from_millis(100),
            max_inflight: 16,
            max_clock_skew: Duration::from_secs(300),
            ack_timeout: Duration::from_secs(15),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            reopen_min: Duration::from_millis(200),
            reopen_max: Duration::from_secs(10),
            stats_interval: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(5),
            commands: true,
            command_queue: 256,
        }
    }
}

impl SerialPortSettings {
    /// Checks what types alone cannot; the message says which setting to fix.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.port.as_os_str().is_empty() {
            return Err(SettingError::Rule(
                "bridge.serial: `port` is required (e.g. /dev/ttyUSB0)",
            ));
        }
        let port = || self.port.display().to_string();
        let broken = |rule| SettingError::SerialPort { port: port(), rule };
        if self.hub.is_empty() || self.token.is_empty() {
            return Err(broken(
                "`hub` (ws[s]://HOST:PORT) and `token` (the gateway's) are required",
            ));
        }
        crate::protocol::address::HubAddress::parse(&self.hub).map_err(|source| {
            SettingError::SerialHub {
                port: port(),
                source,
            }
        })?;
        if self.baud == 0
            || !(5..=8).contains(&self.data_bits)
            || !(1..=2).contains(&self.stop_bits)
        {
            return Err(broken(
                "baud must be > 0, data_bits 5 to 8, stop_bits 1 or 2",
            ));
        }
        if self.buffer == 0 || self.batch == 0 || self.max_inflight == 0 || self.command_queue == 0
        {
            return Err(broken(
                "buffer, batch, max_inflight and command_queue must be ≥ 1",
            ));
        }
        let zero = [
            self.ack_timeout,
            self.reconnect_min,
            self.reopen_min,
            self.stats_interval,
        ];
        if zero.iter().any(Duration::is_zero)
            || self.reconnect_max < self.reconnect_min
            || self.reopen_max < self.reopen_min
        {
            return Err(broken(
                "ack_timeout, reconnect_min, reopen_min and stats_interval must be > 0, and each *_max ≥ its *_min",
            ));
        }
        Ok(())
    }
}

impl BridgeSettings {
    /// Validates every entry and that no two share a port or a state file.
    pub fn validate(&self) -> Result<(), SettingError> {
        for (i, a) in self.serial.iter().enumerate() {
            a.validate()?;
            for b in &self.serial[..i] {
                if a.port == b.port {
                    return Err(SettingError::SerialPortTwice(a.port.display().to_string()));
                }
                if a.state_file.is_some() && a.state_file == b.state_file {
                    return Err(SettingError::SharedStateFile(
                        b.port.display().to_string(),
                        a.port.display().to_string(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A copy with the tokens hidden, for `--print-config`.
    pub fn redacted(&self) -> Self {
        let mut s = self.clone();
        for p in &mut s.serial {
            p.token = "***".into();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Overrides, Settings};

    #[test]
    fn ports_are_listed_as_bridge_serial_entries_and_tokens_are_hidden_when_printed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(
            &f,
            r#"
[[bridge.serial]]
port = "/dev/ttyUSB0"
hub = "wss://hub:8443"
token = "th_secret"
parity = "even"
linger = "50ms"

[[bridge.serial]]
port = "/dev/ttyUSB1"
baud = 9600
hub = "ws://hub:8080"
token = "th_other"
checksum_required = false
"#,
        )
        .unwrap();
        let s = Settings::load(Some(&f), &Overrides::default()).unwrap();
        let b = s.bridge.as_ref().unwrap();
        assert_eq!(b.serial.len(), 2);
        assert_eq!(b.serial[0].parity, super::Parity::Even);
        assert_eq!(b.serial[0].baud, 115_200);
        assert_eq!(b.serial[0].linger, std::time::Duration::from_millis(50));
        assert_eq!(b.serial[1].baud, 9600);
        assert!(!b.serial[1].checksum_required);
        let printed = s.to_redacted_toml();
        assert!(!printed.contains("th_secret") && printed.contains("ttyUSB1"));
    }

    #[test]
    fn mistakes_name_the_setting_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        let load = |body: &str| {
            std::fs::write(&f, body).unwrap();
            Settings::load(Some(&f), &Overrides::default()).map(|_| ())
        };
        let e = load("[[bridge.serial]]\nport = \"/dev/x\"\nhub = \"ftp://h:1\"\ntoken = \"t\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("ws://"), "{e}");
        let e = load("[[bridge.serial]]\nport = \"/dev/x\"\n").unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        let twice = "[[bridge.serial]]\nport = \"/dev/x\"\nhub = \"ws://h:1\"\ntoken = \"t\"\n";
        let e = load(&format!("{twice}{twice}")).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(load("[[bridge.serial]]\nprot = \"/dev/x\"\n").is_err());
    }
}

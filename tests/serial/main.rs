//! Serial bridge tests (protocol.md §6): a real hub (port 0, fresh database), real pseudo-terminals
//! from `socat`, the bridge in-process ([`bridge`]) or as the `telehub` binary ([`cli`]).

#[path = "../helpers/mod.rs"]
mod helpers;

mod bridge;
mod cli;
mod commands;
mod config;
#[path = "../api/procs.rs"]
mod procs;
mod pty;

use helpers::TestApp;
use std::time::Duration;
use telehub::bridge::SerialPortSettings;

/// `body*HH\r\n`.
pub fn checked(body: &str) -> String {
    format!(
        "{body}*{:02X}\r\n",
        telehub::protocol::serial::xor(body.as_bytes())
    )
}

/// Bridge settings for tests: short lingers and back-offs.
pub fn settings(app: &TestApp, port: &std::path::Path, token: &str) -> SerialPortSettings {
    let ms = Duration::from_millis;
    SerialPortSettings {
        port: port.to_owned(),
        hub: app.ws(""),
        token: token.to_owned(),
        linger: ms(20),
        reconnect_min: ms(50),
        reconnect_max: ms(300),
        reopen_min: ms(50),
        reopen_max: ms(300),
        ack_timeout: Duration::from_secs(5),
        ..SerialPortSettings::default()
    }
}

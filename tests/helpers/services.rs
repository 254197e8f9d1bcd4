//! The external services some tests need, named by environment variables:
//! `TELEHUB_TEST_PG` (a PostgreSQL server URL ending in `/DBNAME`; each test makes its own
//! database there) and `TELEHUB_TEST_MQTT` (a broker URL).
//!
//! - Unset: the tests that need the service are skipped, and say so with a
//!   `SKIPPED: <test> (<reason>)` line on stderr (`scripts/test.sh` counts them). Under
//!   `CI`, unset is a failure.
//! - Set but unreachable: every test that needs it fails.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The PostgreSQL server for tests, or `None` (skip) when `TELEHUB_TEST_PG` is unset.
pub fn pg_server() -> Option<String> {
    service("TELEHUB_TEST_PG", 5432)
}

/// The shared MQTT broker for tests, or `None` (skip) when `TELEHUB_TEST_MQTT` is unset.
pub fn mqtt_server() -> Option<String> {
    service("TELEHUB_TEST_MQTT", 1883)
}

fn service(var: &str, default_port: u16) -> Option<String> {
    let url = match std::env::var(var) {
        Ok(u) if !u.is_empty() => u,
        _ if std::env::var("CI").is_ok() => panic!("{var} is not set; CI must run these tests"),
        _ => return None,
    };
    let addr = host_port(&url, default_port);
    if let Err(e) = reachable(&addr) {
        panic!("{var} is set to {url}, but {addr} is unreachable: {e}");
    }
    Some(url)
}

/// `host:port` of a `scheme://[user@]host[:port][/...]` URL.
fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => host.to_owned(),
        _ => format!("{host}:{default_port}"),
    }
}

fn reachable(addr: &str) -> std::io::Result<()> {
    let mut last = std::io::Error::other("no address");
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reports the running test as skipped: `SKIPPED: <test> (<reason>)`, written to the
/// process's stderr directly, past the test harness's output capture, so it shows even
/// though the test then passes.
pub fn skipped(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test} ({reason})");
}

/// Returns from the test, reported as skipped, when no PostgreSQL server is configured.
#[macro_export]
macro_rules! need_pg {
    () => {
        if $crate::helpers::pg_server().is_none() {
            $crate::helpers::skipped("TELEHUB_TEST_PG not set");
            return;
        }
    };
}

/// The shared broker's URL; returns from the test, reported as skipped, when no broker
/// is configured.
#[macro_export]
macro_rules! need_mqtt {
    () => {
        match $crate::helpers::mqtt_server() {
            Some(url) => url,
            None => {
                $crate::helpers::skipped("TELEHUB_TEST_MQTT not set");
                return;
            }
        }
    };
}

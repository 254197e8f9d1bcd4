//! The reader task of one port: opens the serial device, cuts its bytes into lines,
//! parses them (readings, a device's `!ack` / `!res` command line, or its `!cfgok`), and hands good
//! lines to the forwarder; it also writes the forwarder's `!cmd` lines to the port (it
//! owns the port; while the port is closed they wait, at most `command_queue`). Bad
//! lines are counted and logged (reason and excerpt), never forwarded, never fatal. When the port vanishes
//! (USB unplugged) it is reopened with back-off; the hub connection is not touched.

use super::commands::PortLine;
use super::framing::{Framed, LineFramer, excerpt};
use super::stats::{PortStats, bump};
use crate::backoff::{Backoff, BackoffConfig, Jitter};
use crate::config::{FlowControl, Parity, SerialPortSettings};
use crate::domain::Timestamp;
use crate::protocol::serial::commands::{AnswerLine, CommandLineError};
use crate::protocol::serial::config::{ConfigKind, ConfigLine};
use crate::protocol::serial::{LineError, LineErrorKind, LineRules, parse_line_with};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_serial::{SerialPortBuilderExt, SerialStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Bytes asked for per read.
const READ_BYTES: usize = 4096;
/// Bad-line warnings logged per [`LOG_WINDOW`] at most; the rest are only counted.
const LOG_BURST: u32 = 20;
const LOG_WINDOW: Duration = Duration::from_secs(10);

pub struct PortReader {
    pub settings: Arc<SerialPortSettings>,
    pub rules: LineRules,
    pub lines: mpsc::Sender<PortLine>,
    /// `!cmd` lines to write (from the forwarder).
    pub commands: mpsc::Receiver<String>,
    pub stats: Arc<PortStats>,
    pub shutdown: CancellationToken,
}

/// Limits how many bad lines are logged, so a noisy line cannot flood the log.
struct LogLimiter {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    fn allow(&mut self) -> bool {
        if self.window_start.elapsed() >= LOG_WINDOW {
            if self.suppressed > 0 {
                warn!(
                    suppressed = self.suppressed,
                    "more bad lines were counted but not logged"
                );
            }
            *self = Self {
                window_start: Instant::now(),
                logged: 0,
                suppressed: 0,
            };
        }
        self.logged += 1;
        if self.logged > LOG_BURST {
            self.suppressed += 1;
        }
        self.logged <= LOG_BURST
    }
}

/// Opens the port with the configured framing (baud, data bits, parity, stop bits, flow control).
pub fn open(s: &SerialPortSettings) -> Result<SerialStream, tokio_serial::Error> {
    use tokio_serial::{DataBits, FlowControl as F, Parity as P, StopBits};
    let data_bits = match s.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match s.parity {
        Parity::None => P::None,
        Parity::Odd => P::Odd,
        Parity::Even => P::Even,
    };
    let flow = match s.flow_control {
        FlowControl::None => F::None,
        FlowControl::Software => F::Software,
        FlowControl::Hardware => F::Hardware,
    };
    let stop = if s.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    tokio_serial::new(s.port.to_string_lossy(), s.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop)
        .flow_control(flow)
        .open_native_async()
}

impl PortReader {
    pub async fn run(mut self) {
        let s = self.settings.clone();
        let mut backoff = Backoff::with_jitter(
            BackoffConfig {
                initial: s.reopen_min,
                max: s.reopen_max.max(s.reopen_min),
            },
            Jitter::Equal,
        );
        let mut framer = LineFramer::new();
        let mut clock = ReceiveClock::default();
        let mut limiter = LogLimiter {
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        };
        let mut buf = vec![0u8; READ_BYTES];
        let mut ready = Vec::new();
        let (mut opened_before, mut open_failed) = (false, false);
        loop {
            let mut port = match open(&s) {
                Ok(p) => p,
                Err(e) => {
                    if !open_failed {
                        warn!("cannot open the port ({e}); retrying until it appears");
                        open_failed = true;
                    }
                    if !self.pause(backoff.next_delay()).await {
                        return;
                    }
                    continue;
                }
            };
            if opened_before {
                bump(&self.stats.reopens);
            }
            info!(baud = s.baud, reopened = opened_before, "serial port open");
            (opened_before, open_failed) = (true, false);
            backoff.reset();
            let why = loop {
                let n = tokio::select! {
                    r = port.read(&mut buf) => r,
                    Some(line) = self.commands.recv() => match write_line(&mut port, &line).await {
                        Ok(()) => continue,
                        Err(e) => break e.to_string(),
                    },
                    _ = self.shutdown.cancelled() => return,
                };
                let n = match n {
                    Ok(0) => break "end of file".to_owned(),
                    Ok(n) => n,
                    Err(e) => break e.to_string(),
                };
                framer.push(&buf[..n], |f| {
                    self.take(f, &mut clock, &mut limiter, &mut ready)
                });
                for line in ready.drain(..) {
                    if self.lines.send(line).await.is_err() {
                        return;
                    }
                }
            };
            drop(port);
            if framer.reset() > 0 {
                bump(&self.stats.incomplete_lines);
            }
            warn!("serial port closed ({why}); reopening when it comes back");
            if !self.pause(backoff.next_delay()).await {
                return;
            }
        }
    }

    /// Sleeps unless shut down first; `false` on shutdown.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.shutdown.cancelled() => false,
        }
    }

    fn take(
        &self,
        framed: Framed<'_>,
        clock: &mut ReceiveClock,
        limiter: &mut LogLimiter,
        ready: &mut Vec<PortLine>,
    ) {
        let (line, result) = match framed {
            Framed::TooLong { len, head } => (head, Err(LineError::TooLong(len))),
            Framed::Line(line) if ConfigLine::is_one(line) => (
                line,
                ConfigLine::parse(line, self.rules.checksum_required).and_then(|c| match c.kind {
                    ConfigKind::Applied => Ok(PortLine::Config(c)),
                    ConfigKind::Desired => Err(CommandLineError::ConfigShape.into()),
                }),
            ),
            Framed::Line(line) if AnswerLine::is_one(line) => (
                line,
                AnswerLine::parse(line, self.rules.checksum_required).map(PortLine::Answer),
            ),
            Framed::Line(line) => (
                line,
                parse_line_with(line, &self.rules, clock.next())
                    .map(|p| PortLine::Readings(p.readings)),
            ),
        };
        match result {
            Ok(parsed) => {
                bump(&self.stats.lines_read);
                if let PortLine::Readings(r) = &parsed {
                    self.stats.readings_read.fetch_add(r.len() as u64, Relaxed);
                }
                ready.push(parsed);
            }
            Err(LineError::Empty) => {}
            Err(e) => {
                bump(&self.stats.lines_read);
                let kind: LineErrorKind = e.kind();
                self.stats.bad_line(kind);
                if limiter.allow() {
                    warn!(reason = kind.as_str(), line = %excerpt(line), "bad line dropped: {e}");
                } else {
                    debug!(reason = kind.as_str(), line = %excerpt(line), "bad line dropped: {e}");
                }
            }
        }
    }
}

/// Writes one `!cmd` line (with its line ending) and flushes it.
async fn write_line(port: &mut SerialStream, line: &str) -> std::io::Result<()> {
    port.write_all(line.as_bytes()).await?;
    port.flush().await
}

/// Receive times that never repeat: two lines read in the same microsecond (or after
/// a clock step back) still get distinct timestamps, so their readings are distinct.
#[derive(Default)]
struct ReceiveClock {
    last: Option<Timestamp>,
}

impl ReceiveClock {
    fn next(&mut self) -> Timestamp {
        let now = Timestamp::now();
        let t = match self.last {
            Some(last) if now <= last => Timestamp::from_micros(last.as_micros() + 1),
            _ => now,
        };
        self.last = Some(t);
        t
    }
}

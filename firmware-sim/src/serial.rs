//! `firmware-sim serial`: a serial-only device writing protocol.md §6 lines (with checksums) to a
//! serial port, e.g. one end of a `socat` pty pair whose other end `telehub bridge
//! serial` reads. On exit it prints `{"lines": N}` on stdout.

use anyhow::Context;
use rand::Rng;
use std::path::PathBuf;
use std::time::Duration;
use telehub_client::domain::{DeviceName, SensorName, Timestamp, parse_duration};
use telehub_client::protocol::serial::MAX_LINE_BYTES;
use telehub_client::protocol::serial::{SampleFields, format_line};
use telehub_client::sim::commands::SimControl;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_serial::SerialPortBuilderExt;

#[derive(clap::Args, Debug)]
pub struct SerialArgs {
    /// Serial port to write to, e.g. /dev/ttyUSB0 or a pty.
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    #[arg(long, value_name = "N", default_value_t = 115_200)]
    baud: u32,
    /// Lines per second.
    #[arg(long, value_name = "R", default_value_t = 1.0)]
    rate: f64,
    /// Name this device in every line (`device=NAME`), for a bridge acting as its gateway.
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
    /// Leave out the `*HH` checksum.
    #[arg(long)]
    no_checksum: bool,
    /// Put the device's clock in every line (`ts=...`); without it the bridge stamps lines.
    #[arg(long)]
    timestamps: bool,
    /// End lines with `\n` instead of `\r\n`.
    #[arg(long)]
    lf: bool,
    /// Stop after N lines.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    duration: Option<Duration>,
}

/// Slowly drifting sensor values, as a small board would report them.
struct Sensors {
    names: [SensorName; 3],
    temperature: f64,
    humidity: f64,
    battery: f64,
}

impl Sensors {
    fn new() -> Self {
        let n = |s| SensorName::parse(s).expect("valid name");
        Self {
            names: [n("temperature"), n("humidity"), n("battery")],
            temperature: 21.0,
            humidity: 45.0,
            battery: 3.9,
        }
    }

    fn step(&mut self, rng: &mut impl Rng) -> Vec<(SensorName, f64)> {
        let round = |v: f64| (v * 100.0).round() / 100.0;
        self.temperature = (self.temperature + rng.random_range(-0.05..0.05)).clamp(15.0, 30.0);
        self.humidity = (self.humidity + rng.random_range(-0.2..0.2)).clamp(20.0, 80.0);
        self.battery = (self.battery - rng.random_range(0.0..0.0001)).max(3.3);
        let [t, h, b] = self.names.clone();
        vec![
            (t, round(self.temperature)),
            (h, round(self.humidity)),
            (b, round(self.battery)),
        ]
    }
}

pub async fn run(a: SerialArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.rate.is_finite() && a.rate > 0.0,
        "--rate must be a positive number of lines per second"
    );
    let device = a
        .device
        .as_deref()
        .map(DeviceName::parse)
        .transpose()
        .context("--device")?;
    let port = tokio_serial::new(a.port.to_string_lossy(), a.baud)
        .open_native_async()
        .with_context(|| {
            format!(
                "cannot open {}: check the path and that no other program holds it",
                a.port.display()
            )
        })?;
    let (reader, mut port) = tokio::io::split(port);
    // Lines the bridge writes (a `!cfg` may be up to 16 KiB), read as they come.
    let mut incoming = BufReader::new(reader).split(b'\n');
    let control = SimControl::new(Duration::from_secs_f64(1.0 / a.rate));
    let mut period = control.period();
    let mut reading = true;
    let mut sensors = Sensors::new();
    let mut tick = tokio::time::interval(*period.borrow_and_update());
    let deadline = a.duration.map(|d| tokio::time::Instant::now() + d);
    let ending = if a.lf { "\n" } else { "\r\n" };
    let mut lines = 0u64;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    while a.count.is_none_or(|c| lines < c) {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
            Ok(_) = period.changed() => {
                tick = tokio::time::interval(*period.borrow_and_update());
                tick.tick().await;
                continue;
            }
            line = incoming.next_segment(), if reading => {
                match line.with_context(|| format!("reading {}", a.port.display()))? {
                    Some(line) if line.len() <= 16 * 1024 + MAX_LINE_BYTES => {
                        for answer in crate::serial_answers::answer(&control, device.as_ref(), &line) {
                            port.write_all(format!("{answer}{ending}").as_bytes()).await?;
                        }
                    }
                    Some(_) => tracing::warn!("a line longer than any the bridge writes; ignored"),
                    None => reading = false,
                }
                continue;
            }
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
        let fields = SampleFields {
            ts: a.timestamps.then(Timestamp::now),
            device: device.clone(),
            values: (sensors.step(&mut rand::rng()).into_iter())
                .map(|(s, v)| (s, v.into()))
                .collect(),
        };
        let line = format!("{}{ending}", format_line(&fields, !a.no_checksum));
        port.write_all(line.as_bytes())
            .await
            .with_context(|| format!("writing to {}", a.port.display()))?;
        lines += 1;
    }
    port.flush().await?;
    println!("{}", serde_json::json!({ "lines": lines }));
    Ok(())
}

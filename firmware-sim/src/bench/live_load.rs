//! Live-feed load shared by the latency and fan-out benchmarks: paced devices that stamp
//! every reading with the wall clock as they send it, and subscribers that record how
//! long each reading took to reach them (receive time − stamp, same machine, same clock).
//!
//! Works against the hub (devices on `/v1/ingest`, subscribers on `/v1/live` with
//! `{"subscribe": ["*"]}`) and against a peer broadcast server that relays each device
//! frame verbatim to every subscriber (devices on `/device`, subscribers on `/live`).
//! Both deliver frames holding `"readings": [{..., "ts": "RFC 3339"}]`, so subscribers
//! parse the same way whichever server they listen to.
//!
//! A measurement window ("step") starts at a wall-clock instant; subscribers ignore
//! readings stamped before it, so late stragglers of an earlier step are never counted.

use super::hub::{Backend, Common, HubProcess, add_devices, fresh_database, settings_env, telehub};
use anyhow::{Context, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Which server the load is pointed at.
#[derive(Clone)]
pub enum Server {
    /// The hub: devices authenticate with their own tokens, subscribers with a viewer token.
    Hub {
        addr: SocketAddr,
        viewer: String,
        devices: Vec<String>,
    },
    /// A broadcast server that relays `/device` frames to every `/live` socket.
    Peer { addr: SocketAddr },
}

impl Server {
    fn addr(&self) -> SocketAddr {
        match self {
            Server::Hub { addr, .. } | Server::Peer { addr } => *addr,
        }
    }
}

/// Microseconds since the Unix epoch, from the system clock.
fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn open(
    addr: SocketAddr,
    source: Ipv4Addr,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<Ws> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(source.into(), 0))?;
    sock.set_nodelay(true)?;
    let tcp = sock.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut req = format!("ws://{addr}{path}").into_client_request()?;
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse()?);
    }
    // A small read buffer: a thousand subscribers should not cost 128 MiB here.
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config)).await?;
    Ok(ws)
}

// ---------------------------------------------------------------------------------------
// Subscribers

#[derive(Default)]
struct Recorded {
    latencies_us: Vec<u32>,
    lagged: u64,
}

struct SubShared {
    /// Readings stamped before this (µs) belong to an earlier step and are ignored.
    step_start_us: AtomicI64,
    /// Readings of the current step delivered, over all subscribers.
    delivered: AtomicU64,
    /// Frames received, of any step.
    frames: AtomicU64,
    records: Vec<Mutex<Recorded>>,
}

/// N dashboard sockets, each a task recording per-reading latency.
pub struct Subscribers {
    shared: Arc<SubShared>,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
}

/// What the subscribers saw in one step.
pub struct StepView {
    /// Per-reading latency in µs, sorted.
    pub latencies_us: Vec<u32>,
    /// Readings the server reported dropped (`{"lagged": N}`).
    pub lagged: u64,
}

#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(borrow, default)]
    readings: Vec<Stamped<'a>>,
    #[serde(default)]
    lagged: u64,
}

#[derive(serde::Deserialize)]
struct Stamped<'a> {
    ts: &'a str,
}

impl Subscribers {
    /// Opens `n` subscriber sockets spread over `sources` loopback addresses.
    pub async fn open(server: &Server, n: usize, sources: u8) -> anyhow::Result<Self> {
        let shared = Arc::new(SubShared {
            step_start_us: AtomicI64::new(i64::MAX),
            delivered: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            records: (0..n).map(|_| Mutex::default()).collect(),
        });
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let src = Ipv4Addr::new(127, 0, 0, 1 + (i % sources.max(1) as usize) as u8);
            let mut ws = match server {
                Server::Hub { addr, viewer, .. } => {
                    let mut ws = open(*addr, src, "/v1/live", Some(viewer)).await?;
                    ws.send(Message::text(r#"{"subscribe":["*"]}"#)).await?;
                    ws
                }
                Server::Peer { addr } => open(*addr, src, "/live", None).await?,
            };
            let shared = shared.clone();
            tasks.spawn(async move {
                while let Some(msg) = ws.next().await {
                    let Message::Text(text) = msg? else { continue };
                    let now = now_us();
                    shared.frames.fetch_add(1, Ordering::Relaxed);
                    let frame: Frame = serde_json::from_str(text.as_str())
                        .with_context(|| format!("unexpected frame: {}", text.as_str()))?;
                    let start = shared.step_start_us.load(Ordering::Relaxed);
                    let mut rec = shared.records[i].lock().expect("lock");
                    rec.lagged += frame.lagged;
                    let mut counted = 0;
                    for r in frame.readings {
                        let ts = chrono::DateTime::parse_from_rfc3339(r.ts)
                            .with_context(|| format!("bad ts {}", r.ts))?
                            .timestamp_micros();
                        if ts >= start {
                            rec.latencies_us
                                .push((now - ts).clamp(0, u32::MAX as i64) as u32);
                            counted += 1;
                        }
                    }
                    drop(rec);
                    shared.delivered.fetch_add(counted, Ordering::Relaxed);
                }
                Ok(())
            });
        }
        Ok(Self { shared, tasks })
    }

    /// Starts a step: from now on only readings stamped at or after `start_us` count.
    fn begin(&self, start_us: i64) {
        for r in &self.shared.records {
            *r.lock().expect("lock") = Recorded::default();
        }
        self.shared.delivered.store(0, Ordering::Relaxed);
        self.shared.step_start_us.store(start_us, Ordering::Relaxed);
    }

    fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// Ends the step and returns what was recorded.
    fn finish(&self) -> StepView {
        self.shared.step_start_us.store(i64::MAX, Ordering::Relaxed);
        let mut latencies_us = Vec::new();
        let mut lagged = 0;
        for r in &self.shared.records {
            let mut rec = r.lock().expect("lock");
            latencies_us.append(&mut rec.latencies_us);
            lagged += rec.lagged;
        }
        latencies_us.sort_unstable();
        StepView {
            latencies_us,
            lagged,
        }
    }

    /// Waits until no frame has arrived for 200 ms (the server has drained its backlog),
    /// at most `limit`.
    pub async fn settle(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let mut last = self.shared.frames.load(Ordering::Relaxed);
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.check_alive()?;
            let now = self.shared.frames.load(Ordering::Relaxed);
            if now == last {
                return Ok(());
            }
            last = now;
        }
        Ok(())
    }

    /// Fails if a subscriber socket ended (the server closed it, or a frame was bad).
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(done) = self.tasks.try_join_next() {
            done??;
            bail!("a subscriber socket was closed by the server");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Devices

/// One sending device: its socket's write half and its own id and clock state.
struct Device {
    sink: SplitSink<Ws, Message>,
    next_id: u64,
    last_ts_us: i64,
    text: String,
}

/// D device sockets; each step they send at a paced total rate.
pub struct Devices {
    devices: Vec<Device>,
    /// Replies other than an ack (the hub refused something).
    refused: Arc<AtomicU64>,
    readers: tokio::task::JoinSet<()>,
}

impl Devices {
    /// Connects `n` devices (the hub: `n` ≤ its device tokens).
    pub async fn open(server: &Server, n: usize) -> anyhow::Result<Self> {
        let refused = Arc::new(AtomicU64::new(0));
        let mut devices = Vec::with_capacity(n);
        let mut readers = tokio::task::JoinSet::new();
        for i in 0..n {
            let ws = match server {
                Server::Hub { devices, .. } => {
                    let token = devices.get(i).context("fewer device tokens than devices")?;
                    open(
                        server.addr(),
                        Ipv4Addr::LOCALHOST,
                        "/v1/ingest",
                        Some(token),
                    )
                    .await?
                }
                Server::Peer { addr } => open(*addr, Ipv4Addr::LOCALHOST, "/device", None).await?,
            };
            let (sink, stream) = ws.split();
            readers.spawn(read_replies(stream, refused.clone()));
            devices.push(Device {
                sink,
                next_id: 0,
                last_ts_us: 0,
                text: String::new(),
            });
        }
        Ok(Self {
            devices,
            refused,
            readers,
        })
    }

    /// Every device sends `rate / devices` readings/s in messages of `batch` for
    /// `duration`; returns the readings sent and how long sending took.
    async fn send_for(
        &mut self,
        rate: f64,
        batch: usize,
        duration: Duration,
    ) -> anyhow::Result<(u64, Duration)> {
        let n = self.devices.len();
        let per_device = rate / n as f64;
        // Devices are not in step with each other: their phases are spread evenly over
        // one message period (all sending at the same instant would measure bursts).
        let period = batch as f64 / per_device;
        let started = Instant::now();
        let sent = futures_util::future::try_join_all(self.devices.iter_mut().enumerate().map(
            |(i, d)| {
                let phase = Duration::from_secs_f64(period * i as f64 / n as f64);
                d.send_for(per_device, batch, duration, phase)
            },
        ))
        .await?;
        Ok((sent.iter().sum(), started.elapsed()))
    }
}

async fn read_replies(mut stream: SplitStream<Ws>, refused: Arc<AtomicU64>) {
    while let Some(Ok(msg)) = stream.next().await {
        if let Message::Text(t) = msg
            && !t.as_str().starts_with("{\"ack\"")
            && refused.fetch_add(1, Ordering::Relaxed) == 0
        {
            eprintln!("the server refused a message: {}", t.as_str());
        }
    }
}

impl Device {
    /// Sends `rate` readings/s in messages of `batch` (sensors s0..s{batch-1}, one
    /// stamp per message) for `duration`, each message when it is due, the first after
    /// `phase`.
    async fn send_for(
        &mut self,
        rate: f64,
        batch: usize,
        duration: Duration,
        phase: Duration,
    ) -> anyhow::Result<u64> {
        let messages = (rate * duration.as_secs_f64() / batch as f64).round() as u64;
        let per_message = Duration::from_secs_f64(batch as f64 / rate);
        let started = tokio::time::Instant::now() + phase;
        let mut sent = 0;
        while sent < messages {
            // Sleep until the next message is due (the timer has 1 ms resolution, so at
            // high rates several are due at once: send them all, flush once).
            tokio::time::sleep_until(started + per_message.mul_f64(sent as f64)).await;
            let due = (tokio::time::Instant::now().saturating_duration_since(started))
                .as_secs_f64()
                / per_message.as_secs_f64();
            let due = due as u64 + 1;
            let due = due.min(messages);
            while sent < due {
                self.stamp_message(batch)?;
                self.sink.feed(Message::text(self.text.as_str())).await?;
                sent += 1;
            }
            self.sink.flush().await?;
        }
        Ok(sent * batch as u64)
    }

    /// Writes the next message into `self.text`: `batch` readings, stamped now (strictly
    /// after the previous message, so every (sensor, ts) is new).
    fn stamp_message(&mut self, batch: usize) -> anyhow::Result<()> {
        let ts = now_us().max(self.last_ts_us + 1);
        self.last_ts_us = ts;
        let stamp = chrono::DateTime::from_timestamp_micros(ts)
            .context("clock out of range")?
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.text.clear();
        write!(self.text, "{{\"id\":{},\"readings\":[", self.next_id)?;
        self.next_id += 1;
        for k in 0..batch {
            let sep = if k == 0 { "" } else { "," };
            write!(
                self.text,
                "{sep}{{\"sensor\":\"s{k}\",\"value\":{}.25,\"ts\":\"{stamp}\"}}",
                self.next_id % 1000
            )?;
        }
        self.text.push_str("]}");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// A step

/// The outcome of one step at one rate.
pub struct Step {
    /// Readings/s the devices were asked to send.
    pub target_rate: f64,
    /// Readings/s they managed to send.
    pub sent_rate: f64,
    /// Readings delivered per second over all subscribers (sent rate × delivered share).
    pub deliveries_per_s: f64,
    /// Readings expected (sent × subscribers) and delivered within the grace period.
    pub expected: u64,
    pub delivered: u64,
    pub lagged: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// CPU seconds the server process used during the step.
    pub server_cpu_s: f64,
    /// How long the devices were sending.
    pub duration: Duration,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {:.0}/s, delivered {}/{}, lagged {}, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms, {:.0} deliveries/s, server CPU {:.0} %",
            self.sent_rate,
            self.delivered,
            self.expected,
            self.lagged,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.deliveries_per_s,
            100.0 * self.server_cpu_s / self.duration.as_secs_f64()
        )
    }
}

impl Step {
    /// Everything sent at the asked rate arrived, nothing dropped, p99 under `p99_ms`.
    pub fn passes(&self, p99_ms: f64) -> bool {
        self.sent_rate >= 0.95 * self.target_rate
            && self.delivered == self.expected
            && self.lagged == 0
            && self.p99_ms < p99_ms
    }
}

/// Devices and subscribers pointed at one server process.
pub struct Load {
    pub devices: Devices,
    pub subscribers: Subscribers,
    pub n_subscribers: usize,
    /// The server's process, read for CPU time.
    pub server_pid: u32,
}

impl Load {
    /// Sends slowly until every subscriber has received something (their subscriptions
    /// are live), so the first measured step starts with everyone listening.
    pub async fn warm_up(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let rate = self.devices.devices.len() as f64 * 100.0;
        self.subscribers.begin(now_us());
        loop {
            self.devices
                .send_for(rate, 1, Duration::from_millis(20))
                .await?;
            self.subscribers.check_alive()?;
            let all = self
                .subscribers
                .shared
                .records
                .iter()
                .all(|r| !r.lock().expect("lock").latencies_us.is_empty());
            if all {
                self.subscribers.finish();
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "not all {} subscribers received a reading within 30 s",
                    self.n_subscribers
                );
            }
        }
    }

    /// Sends at `rate` readings/s in messages of `batch` for `duration`, then waits up
    /// to `grace` for every reading to reach every subscriber.
    pub async fn step(
        &mut self,
        rate: f64,
        batch: usize,
        duration: Duration,
        grace: Duration,
    ) -> anyhow::Result<Step> {
        let refused_before = self.devices.refused.load(Ordering::Relaxed);
        let cpu_before = cpu_seconds(self.server_pid)?;
        self.subscribers.begin(now_us());
        let (sent, took) = self.devices.send_for(rate, batch, duration).await?;
        let expected = sent * self.n_subscribers as u64;
        let deadline = Instant::now() + grace;
        while self.subscribers.delivered() < expected && Instant::now() < deadline {
            self.subscribers.check_alive()?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cpu = cpu_seconds(self.server_pid)? - cpu_before;
        let view = self.subscribers.finish();
        if self.devices.refused.load(Ordering::Relaxed) > refused_before {
            bail!("the server refused readings (see above): raise its limits for the benchmark");
        }
        if self.devices.readers.try_join_next().is_some() {
            bail!("a device socket was closed by the server");
        }
        let lat = &view.latencies_us;
        let pct = |p: f64| super::stats::percentile(lat, p) / 1000.0;
        let sent_rate = sent as f64 / took.as_secs_f64().max(duration.as_secs_f64());
        Ok(Step {
            target_rate: rate,
            sent_rate,
            deliveries_per_s: sent_rate * self.n_subscribers as f64 * lat.len() as f64
                / expected.max(1) as f64,
            expected,
            delivered: lat.len() as u64,
            lagged: view.lagged,
            p50_ms: pct(50.0),
            p99_ms: pct(99.0),
            p999_ms: pct(99.9),
            max_ms: lat.last().map_or(f64::NAN, |&v| v as f64 / 1000.0),
            server_cpu_s: cpu,
            duration,
        })
    }
}

/// User + system CPU seconds of process `pid` so far (from /proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// A hub started for live-feed load: its process, how to reach it, its scratch folder.
pub struct LiveHub {
    pub process: HubProcess,
    pub server: Server,
    dir: std::path::PathBuf,
}

impl LiveHub {
    /// Provisions `devices` devices and a viewer token on a fresh database (scratch folder
    /// `DIR/NAME`), then starts a hub whose per-device rate limits are out of the way (a
    /// benchmark device sends far above them).
    pub async fn start(
        bin: &std::path::Path,
        common: &Common,
        backend: Backend,
        devices: usize,
        name: &str,
    ) -> anyhow::Result<Self> {
        let dir = common.dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let db = fresh_database(backend, &dir, &common.pg).await?;
        let tokens = add_devices(bin, &db, devices, "live-", &dir).await?;
        let viewer = telehub(
            bin,
            &db,
            &["token", "add", "bench-viewer", "--role", "viewer"],
        )
        .await?
        .trim()
        .to_owned();
        let mut all = vec![
            "limits.device_readings_per_second=100000000".to_owned(),
            "limits.device_burst=100000000".to_owned(),
            "limits.handshakes_per_second=100000".to_owned(),
            "limits.handshake_burst=100000".to_owned(),
            // `--batch 1000` messages are ~80 KiB, over the default 64 KiB frame limit.
            "ingest.max_frame_bytes=1048576".to_owned(),
        ];
        all.extend_from_slice(&common.settings);
        let process = HubProcess::start(bin, &db, &settings_env(&all)?).await?;
        let server = Server::Hub {
            addr: process.addr.parse()?,
            viewer,
            devices: tokens,
        };
        Ok(Self {
            process,
            server,
            dir,
        })
    }

    /// Stops the hub (gracefully) and removes its scratch folder.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.process.stop().await?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

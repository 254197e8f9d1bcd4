//! `telehub serve --demo`: eight simulated devices (boilers, rooms, a freezer, an
//! outdoor station) living inside the hub process, so a newcomer sees live data at once.
//!
//! They are real clients: each is a [`DeviceClient`] connected to the hub's own
//! `/v1/ingest` with its own device token, fed by a [`crate::sim`] generator — so the
//! demo exercises the same path as a real device. On start each device also sends the
//! last hour at 30 s steps, so the dashboard has a history to draw. They take commands
//! as `firmware-sim run --commands` devices do (`set_interval`, `reboot`, `fail`), so
//! `telehub command send demo-room-office set_interval --param seconds=10` shows the loop.
//!
//! Restarts are idempotent: existing `demo-*` devices are reused and get a fresh token
//! ([`crate::storage::Store::reissue_token`]; the old one is revoked), samples fall on
//! multiples of their period (a repeat is the same reading, stored once), and the
//! printed dashboard URL carries a fresh `demo-dashboard` viewer token.

use crate::auth::Role;
use crate::client::{ClientConfig, ClientEvent, CommandsConfig, DeviceClient};
use crate::domain::{DeviceName, Timestamp};
use crate::hub::RunningHub;
use crate::protocol::ingest::DeviceReading;
use crate::sim::commands::{SimControl, play_commanded};
use crate::sim::{Kind, Pace, SimDevice};
use crate::storage::StorageError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The demo fleet; each name says what kind of device it is ([`Kind::for_name`]).
pub const DEMO_DEVICES: [&str; 8] = [
    "demo-boiler-1",
    "demo-boiler-2",
    "demo-room-kitchen",
    "demo-room-living",
    "demo-room-office",
    "demo-room-bedroom",
    "demo-freezer-1",
    "demo-outdoor-1",
];
/// The label of the viewer token printed in the dashboard URL.
const VIEWER_LABEL: &str = "demo-dashboard";
/// One reading per sensor this often.
const PERIOD: Duration = Duration::from_secs(2);
/// History sent on start, and its step.
const HISTORY: Duration = Duration::from_secs(3600);
const HISTORY_STEP: Duration = Duration::from_secs(30);
/// How long the demo devices may take to deliver their last readings at shutdown.
const DRAIN: Duration = Duration::from_secs(3);

/// The running demo devices.
pub struct Demo {
    pub viewer_token: String,
    pub devices: Vec<String>,
    clients: Vec<DeviceClient>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// Provisions the demo devices and starts them against `hub`.
pub async fn start(hub: &RunningHub) -> anyhow::Result<Demo> {
    let store = &hub.state.store;
    let (address, ca_file) = own_address(hub);
    let stop = CancellationToken::new();
    let mut demo = Demo {
        viewer_token: String::new(),
        devices: Vec::new(),
        clients: Vec::new(),
        stop: stop.clone(),
        tasks: JoinSet::new(),
    };
    for name in DEMO_DEVICES {
        let device = DeviceName::parse(name).expect("demo names are valid");
        let token = match store.find_device(&device).await? {
            None => store.add_device(&device, &[]).await?,
            Some(_) => match store.reissue_token(name, Role::Device, Some(&device)).await {
                Ok(t) => t,
                Err(StorageError::NoSuchDevice(_)) => {
                    tracing::warn!(device = name, "demo device is revoked; not simulating it");
                    continue;
                }
                Err(e) => return Err(e.into()),
            },
        };
        let mut cfg = ClientConfig::new(address.clone(), token);
        cfg.label = name.to_owned();
        cfg.ca_file = ca_file.clone();
        cfg.max_batch = 500;
        let control = SimControl::new(PERIOD);
        cfg.commands = Some(CommandsConfig::new(control.handler()));
        let client = DeviceClient::start(cfg)?;
        let sim = SimDevice::new(name, Kind::for_name(name), 0);
        let now = Timestamp::now();
        let history = sim.history(now.saturating_sub(HISTORY), now, HISTORY_STEP);
        let _ = client.push_all(history.into_iter().map(|reading| DeviceReading {
            device: None,
            reading,
        }));
        let pace = Pace {
            period: PERIOD,
            clock_skew_us: 0,
            align: true,
        };
        let (sender, stop) = (client.sender(), stop.clone());
        demo.tasks.spawn(async move {
            let _ = play_commanded(&sim, &sender, pace, &control, stop).await;
        });
        demo.tasks
            .spawn(report_trouble(name, client.subscribe(), demo.stop.clone()));
        demo.clients.push(client);
        demo.devices.push(name.to_owned());
    }
    demo.viewer_token = store
        .reissue_token(VIEWER_LABEL, Role::Viewer, None)
        .await?;
    Ok(demo)
}

impl Demo {
    /// Stops the generators and lets the devices deliver what they hold (briefly).
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        futures_util::future::join_all(self.clients.into_iter().map(|c| c.shutdown(DRAIN))).await;
    }
}

/// Logs the first failure of a run of failed connections, and recovery from it.
async fn report_trouble(
    name: &'static str,
    mut events: tokio::sync::broadcast::Receiver<ClientEvent>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.cancelled() => return,
        };
        match event {
            Ok(ClientEvent::ConnectFailed { reason, .. }) if !failing => {
                failing = true;
                tracing::warn!(device = name, %reason, "demo device cannot reach the hub; retrying");
            }
            Ok(ClientEvent::Connected) if failing => {
                failing = false;
                tracing::info!(device = name, "demo device connected");
            }
            Ok(ClientEvent::Refused { detail, .. }) => {
                tracing::warn!(device = name, %detail, "the hub refused demo readings");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            _ => {}
        }
    }
}

/// Where the hub can reach itself: its listen address (loopback for a wildcard), and
/// with TLS `wss://localhost` trusting the hub's own certificate.
fn own_address(hub: &RunningHub) -> (String, Option<std::path::PathBuf>) {
    let mut addr = hub.addr;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    match &hub.state.settings.tls {
        Some(tls) => (
            format!("wss://localhost:{}", addr.port()),
            Some(tls.cert.clone()),
        ),
        None => (format!("ws://{addr}"), None),
    }
}

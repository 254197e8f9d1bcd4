//! Why a run is not going well, said once: every device client's events
//! ([`ClientEvent`]) are gathered here; the first occurrence of each cause goes to
//! stderr at once, and [`Causes::report`] sums each cause up with a count at the end.
//! Refusals are one cause per error code (their details name readings and timestamps,
//! so each would differ); the first detail is shown as the example.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use telehub_client::client::ClientEvent;
use tokio::sync::broadcast;

/// What kind of trouble, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    GaveUp,
    ConnectFailed,
    Disconnected,
    Refused,
}

#[derive(Default)]
struct Tally {
    events: u64,
    readings: u64,
    devices: BTreeSet<String>,
    /// The first event's full text (a refusal's detail).
    example: String,
}

/// The causes seen so far, by kind and text; shared by one watcher task per device.
#[derive(Clone, Default)]
pub struct Causes {
    seen: Arc<Mutex<BTreeMap<(Kind, String), Tally>>>,
}

impl Causes {
    /// Gathers `device`'s events until its client closes the channel.
    pub fn watch(&self, device: String, mut events: broadcast::Receiver<ClientEvent>) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) => this.note(&device, e),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn note(&self, device: &str, e: ClientEvent) {
        let (kind, cause, readings) = match e {
            ClientEvent::Connected => return,
            ClientEvent::GaveUp { reason } => (Kind::GaveUp, reason, 0),
            ClientEvent::ConnectFailed { reason, .. } => (Kind::ConnectFailed, reason, 0),
            ClientEvent::Disconnected { reason } => (Kind::Disconnected, reason, 0),
            ClientEvent::Refused {
                readings,
                error,
                detail,
            } => (
                Kind::Refused,
                format!("{}: {detail}", error.as_str()),
                readings,
            ),
        };
        let key = match kind {
            Kind::Refused => cause.split(':').next().unwrap_or_default().to_owned(),
            _ => cause.clone(),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let tally = seen.entry((kind, key)).or_default();
        if tally.events == 0 {
            eprintln!("firmware-sim: {device}: {}", first_line(kind, &cause));
            tally.example = cause;
        }
        tally.events += 1;
        tally.readings += readings as u64;
        tally.devices.insert(device.to_owned());
    }

    /// One line per cause with its counts, for the end of the run.
    pub fn report(&self) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for ((kind, cause), t) in seen.iter() {
            let devices = t.devices.len();
            let line = match kind {
                Kind::GaveUp => format!("gave up on {devices} device(s): {cause}"),
                Kind::ConnectFailed => {
                    format!(
                        "{} failed connection attempt(s), {devices} device(s): {cause}",
                        t.events
                    )
                }
                Kind::Disconnected => {
                    format!(
                        "{} lost connection(s), {devices} device(s): {cause}",
                        t.events
                    )
                }
                Kind::Refused => format!(
                    "the hub refused {} reading(s) of {devices} device(s): {cause} (the first: {})",
                    t.readings, t.example
                ),
            };
            eprintln!("firmware-sim: {line}");
        }
    }

    /// Devices that stopped connecting for good.
    pub fn gave_up(&self) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let devices: BTreeSet<&String> = seen
            .iter()
            .filter(|((k, _), _)| *k == Kind::GaveUp)
            .flat_map(|(_, t)| t.devices.iter())
            .collect();
        devices.len()
    }
}

fn first_line(kind: Kind, cause: &str) -> String {
    match kind {
        Kind::GaveUp => format!("giving up, not retrying: {cause}"),
        Kind::ConnectFailed => format!("cannot connect: {cause}"),
        Kind::Disconnected => format!("connection lost: {cause}"),
        Kind::Refused => format!("the hub refused readings: {cause}"),
    }
}

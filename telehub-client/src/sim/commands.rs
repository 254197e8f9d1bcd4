//! What simulated devices do with commands (docs/simulator.md, docs/commands.md):
//! `set_interval {"seconds": N}` changes their send interval, `reboot` reconnects (after
//! answering), `fail` answers `error`; any other name is answered `rejected`. A desired
//! configuration (protocol.md §14) with `{"interval_s": N}` sets the interval too, and
//! the reported state says the interval in force (other keys are reported as given).
//!
//! [`SimControl`] is the link between the handler (run by the device client) and the
//! device's generator ([`super::play_with`] reads its interval) and owner (who reconnects
//! the client on [`SimControl::rebooted`]).

use super::{Pace, SimDevice};
use crate::client::{Closed, CommandHandler, ConfigHandler, ReadingSender};
use crate::protocol::commands::{CommandAnswer, CommandStatus, DeviceCommand};
use futures_util::FutureExt;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// The longest interval `set_interval` takes.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// The shortest.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// One simulated device's controls, as commands change them.
pub struct SimControl {
    period: watch::Sender<Duration>,
    reboot: Notify,
}

impl SimControl {
    /// Controls starting with the send interval `period`.
    pub fn new(period: Duration) -> Arc<Self> {
        Arc::new(Self {
            period: watch::Sender::new(period),
            reboot: Notify::new(),
        })
    }

    /// The send interval, as it changes.
    pub fn period(&self) -> watch::Receiver<Duration> {
        self.period.subscribe()
    }

    /// Resolves at the next `reboot` command (once its answer is recorded).
    pub async fn rebooted(&self) {
        self.reboot.notified().await
    }

    /// The device client's handler for these commands.
    pub fn handler(self: &Arc<Self>) -> CommandHandler {
        let control = self.clone();
        Arc::new(move |command: DeviceCommand| {
            let (answer, reboot) = control.execute(&command);
            let control = control.clone();
            async move {
                if reboot {
                    // Reconnect once the answer is on its way (the client resends
                    // it on the next connection if it is not confirmed by then).
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        control.reboot.notify_one();
                    });
                }
                answer
            }
            .boxed()
        })
    }

    /// The device client's handler for desired configurations.
    pub fn config_handler(self: &Arc<Self>) -> ConfigHandler {
        let control = self.clone();
        Arc::new(move |desired: &Map<String, Value>| control.configure(desired))
    }

    /// Applies a desired configuration: `interval_s` (seconds) sets the send interval
    /// when it is within bounds. Returns the state reported: the desired keys, with
    /// `interval_s` the interval in force.
    pub fn configure(&self, desired: &Map<String, Value>) -> Map<String, Value> {
        let mut state = desired.clone();
        if let Some(v) = desired.get("interval_s") {
            let mut params = Map::new();
            params.insert("seconds".into(), v.clone());
            match interval(&params) {
                Ok(d) => {
                    self.period.send_replace(d);
                }
                Err(e) => tracing::warn!(error = %e, "interval_s not applied"),
            }
            state.insert(
                "interval_s".into(),
                self.period.borrow().as_secs_f64().into(),
            );
        }
        state
    }

    /// Carries out `command`: its answer, and whether to reboot.
    pub fn execute(&self, command: &DeviceCommand) -> (CommandAnswer, bool) {
        let answer =
            |status, result: Option<Map<String, Value>>, error: Option<String>| CommandAnswer {
                status,
                result,
                error,
            };
        match command.name.as_str() {
            "set_interval" => match interval(&command.params) {
                Ok(d) => {
                    self.period.send_replace(d);
                    let mut r = Map::new();
                    r.insert("seconds".into(), d.as_secs_f64().into());
                    (answer(CommandStatus::Ok, Some(r), None), false)
                }
                Err(e) => (answer(CommandStatus::Rejected, None, Some(e)), false),
            },
            "reboot" => (answer(CommandStatus::Ok, None, None), true),
            "fail" => (
                answer(
                    CommandStatus::Error,
                    None,
                    Some("failed as asked (the simulator's `fail` command)".into()),
                ),
                false,
            ),
            other => (
                answer(
                    CommandStatus::Rejected,
                    None,
                    Some(format!(
                        "unknown command {other:?}; a simulated device takes set_interval, reboot, fail"
                    )),
                ),
                false,
            ),
        }
    }
}

/// [`super::play_with`] at the interval `control` sets, reconnecting `sender`'s client
/// at each `reboot`, until `stop`.
pub async fn play_commanded(
    device: &SimDevice,
    sender: &ReadingSender,
    pace: Pace,
    control: &SimControl,
    stop: CancellationToken,
) -> Result<(), Closed> {
    let reboots = async {
        loop {
            control.rebooted().await;
            sender.reconnect();
        }
    };
    tokio::select! {
        r = super::play_with(device, sender, pace, control.period(), stop) => r,
        never = reboots => never,
    }
}

/// `{"seconds": N}`, N a number of seconds within [`MIN_INTERVAL`, `MAX_INTERVAL`].
fn interval(params: &Map<String, Value>) -> Result<Duration, String> {
    let bad = || {
        format!(
            "params.seconds: expected a number of seconds from {} to {}",
            MIN_INTERVAL.as_secs_f64(),
            MAX_INTERVAL.as_secs()
        )
    };
    let secs = params
        .get("seconds")
        .and_then(Value::as_f64)
        .ok_or_else(bad)?;
    if !(MIN_INTERVAL.as_secs_f64()..=MAX_INTERVAL.as_secs_f64()).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_desired_interval_is_applied_and_reported_in_force() {
        let control = SimControl::new(Duration::from_secs(1));
        let desired = serde_json::json!({"interval_s": 0.25, "mode": "eco"});
        let state = control.configure(desired.as_object().unwrap());
        assert_eq!(*control.period().borrow(), Duration::from_millis(250));
        assert_eq!(
            Value::Object(state),
            serde_json::json!({"interval_s": 0.25, "mode": "eco"})
        );
        let bad = serde_json::json!({"interval_s": -1});
        let state = control.configure(bad.as_object().unwrap());
        assert_eq!(*control.period().borrow(), Duration::from_millis(250));
        assert_eq!(state.get("interval_s"), Some(&Value::from(0.25)));
    }
    use crate::domain::{SensorName, Timestamp};
    use crate::protocol::commands::CommandId;

    fn command(name: &str, params: Value) -> DeviceCommand {
        DeviceCommand {
            id: CommandId::parse("c_1").unwrap(),
            device: None,
            name: SensorName::parse(name).unwrap(),
            params: params.as_object().cloned().unwrap_or_default(),
            expires: Timestamp::now(),
        }
    }

    #[test]
    fn simulated_devices_do_what_the_contract_says() {
        let c = SimControl::new(Duration::from_secs(1));
        let period = c.period();
        let (a, reboot) = c.execute(&command("set_interval", serde_json::json!({"seconds": 10})));
        assert_eq!((a.status, reboot), (CommandStatus::Ok, false));
        assert_eq!(*period.borrow(), Duration::from_secs(10));
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"seconds": 0}),
            serde_json::json!({"seconds": "5"}),
        ] {
            let (a, _) = c.execute(&command("set_interval", bad));
            assert_eq!(a.status, CommandStatus::Rejected);
            assert!(a.error.unwrap().contains("params.seconds"));
        }
        assert_eq!(
            *period.borrow(),
            Duration::from_secs(10),
            "a refused interval changes nothing"
        );
        assert_eq!(c.execute(&command("reboot", Value::Null)), (a_ok(), true));
        assert_eq!(
            c.execute(&command("fail", Value::Null)).0.status,
            CommandStatus::Error
        );
        assert_eq!(
            c.execute(&command("defrost", Value::Null)).0.status,
            CommandStatus::Rejected
        );
    }

    fn a_ok() -> CommandAnswer {
        CommandAnswer {
            status: CommandStatus::Ok,
            result: None,
            error: None,
        }
    }
}

//! What `firmware-sim serial` answers on its port (docs/commands.md,
//! docs/device-config.md): a `!cmd` is acknowledged (`!ack`) and carried out as a
//! simulated device does ([`SimControl::execute`]: `set_interval`, `reboot`, `fail`,
//! anything else `rejected`), answered `!res`; a `!cfg` is applied
//! ([`SimControl::configure`]: `interval_s`) and answered `!cfgok` with the state in
//! force. Lines for another device (`device=` naming one that is not `--device`) are
//! left to it; without `--device` the simulator answers for every device named.

use telehub_client::domain::DeviceName;
use telehub_client::protocol::commands::{ConfigDocument, DeviceCommand};
use telehub_client::protocol::serial::commands::{AnswerLine, CommandLine};
use telehub_client::protocol::serial::config::{ConfigKind, ConfigLine};
use telehub_client::sim::commands::SimControl;

/// The lines (checksum included, no line ending) that answer `line`; none when it is
/// not for this device or not a line the device takes.
pub fn answer(control: &SimControl, own: Option<&DeviceName>, line: &[u8]) -> Vec<String> {
    let for_us = |d: Option<&DeviceName>| own.is_none() || d.is_none() || d == own;
    if ConfigLine::is_one(line) {
        return match ConfigLine::parse(line, true) {
            Ok(c) if c.kind == ConfigKind::Desired && for_us(c.device.as_ref()) => {
                let state = control.configure(&c.doc.document);
                let ok = ConfigLine {
                    kind: ConfigKind::Applied,
                    device: c.device,
                    doc: ConfigDocument {
                        version: c.doc.version,
                        document: state,
                    },
                };
                vec![ok.format()]
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "a configuration line that does not read; ignored");
                Vec::new()
            }
        };
    }
    match CommandLine::parse(line) {
        Ok(c) if for_us(c.device.as_ref()) => {
            let command = DeviceCommand {
                id: c.id.clone(),
                device: c.device,
                name: c.name,
                params: c.params,
                expires: telehub_client::domain::Timestamp::now(),
            };
            // A reboot of a serial device changes nothing the port sees.
            let (mut answer, _reboot) = control.execute(&command);
            answer.error = None;
            vec![
                AnswerLine::Ack(c.id.clone()).format(),
                AnswerLine::Result { id: c.id, answer }.format(),
            ]
        }
        Ok(_) => Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "a command line that does not read; ignored");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn commands_and_configurations_are_answered_for_this_device_only() {
        let control = SimControl::new(Duration::from_secs(1));
        let own = DeviceName::parse("pump-3").unwrap();
        let cfg = ConfigLine::parse(br#"!cfg 4 device=pump-3 {"interval_s":2}"#, false).unwrap();
        let lines = answer(&control, Some(&own), cfg.format().as_bytes());
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with(r#"!cfgok 4 device=pump-3 {"interval_s":2.0}*"#),
            "{lines:?}"
        );
        assert_eq!(*control.period().borrow(), Duration::from_secs(2));
        let other = ConfigLine::parse(br#"!cfg 4 device=fan-1 {}"#, false).unwrap();
        assert!(answer(&control, Some(&own), other.format().as_bytes()).is_empty());
        let cmd = "!cmd c_1 set_interval {\"seconds\":3}";
        let cmd = format!("{cmd}*{:02X}", cmd.bytes().fold(0u8, |a, b| a ^ b));
        let lines = answer(&control, Some(&own), cmd.as_bytes());
        assert!(lines[0].starts_with("!ack c_1*"), "{lines:?}");
        assert!(
            lines[1].starts_with(r#"!res c_1 ok {"seconds":3.0}*"#),
            "{lines:?}"
        );
        assert_eq!(*control.period().borrow(), Duration::from_secs(3));
    }
}

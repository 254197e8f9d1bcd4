//! What to do with the readings of a refused message. The hub refuses a message all
//! or nothing (protocol.md §2), so one bad reading would take its good neighbours down with it;
//! the refusal's detail usually says which one was bad, and only that one is given up:
//!
//! - `unavailable`, `rate_limited`: resend them all, later.
//! - a detail starting `readings[i]`, or `line N:` (the line protocol: the client
//!   writes one reading per line, so line N is reading N−1): that reading is refused,
//!   the others are resent (the hub stops at the first bad one, so a later bad one is
//!   caught next round; every round gives up at least one reading, so this ends).
//! - `forbidden_device` naming a device: its readings are refused, the others resent.
//! - `too_many_readings`, `too_large` (HTTP 413): resend them all in messages half as
//!   large.
//! - anything else: every reading of the message is refused.

use crate::domain::DeviceName;
use crate::protocol::ingest::{DeviceReading, ErrorCode};

#[derive(Debug, PartialEq)]
pub(super) enum Triage {
    ResendLater(Vec<DeviceReading>),
    /// Give up `refused`, send `resend` again now.
    Refuse {
        refused: Vec<DeviceReading>,
        resend: Vec<DeviceReading>,
    },
    /// Send them again in messages of at most `max_batch` readings.
    Smaller {
        resend: Vec<DeviceReading>,
        max_batch: usize,
    },
}

pub(super) fn triage(error: ErrorCode, detail: &str, mut readings: Vec<DeviceReading>) -> Triage {
    let n = readings.len();
    if error.means_resend_later() {
        return Triage::ResendLater(readings);
    }
    if matches!(error, ErrorCode::TooManyReadings | ErrorCode::TooLarge) && n > 1 {
        return Triage::Smaller {
            resend: readings,
            max_batch: n / 2,
        };
    }
    if let Some(i) = bad_index(detail).filter(|i| *i < n && n > 1) {
        let refused = vec![readings.remove(i)];
        return Triage::Refuse {
            refused,
            resend: readings,
        };
    }
    if let Some(device) = forbidden_device(detail).filter(|_| error == ErrorCode::ForbiddenDevice) {
        let (refused, resend): (Vec<_>, Vec<_>) = readings
            .into_iter()
            .partition(|r| r.device.as_ref() == Some(&device));
        if !refused.is_empty() {
            return Triage::Refuse { refused, resend };
        }
        readings = resend;
    }
    Triage::Refuse {
        refused: readings,
        resend: Vec::new(),
    }
}

/// `readings[3].value: ...` → 3; `line 4: ...` → 3.
fn bad_index(detail: &str) -> Option<usize> {
    if let Some(rest) = detail.strip_prefix("line ") {
        let (digits, _) = rest.split_once(':')?;
        return digits.parse::<usize>().ok()?.checked_sub(1);
    }
    let rest = detail.strip_prefix("readings[")?;
    let (digits, _) = rest.split_once(']')?;
    digits.parse().ok()
}

/// `device boiler-2: this token may not ...` → boiler-2.
fn forbidden_device(detail: &str) -> Option<DeviceName> {
    let rest = detail.strip_prefix("device ")?;
    let (name, _) = rest.split_once(':')?;
    DeviceName::parse(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Reading, SensorName, Timestamp};

    fn r(i: i64, device: Option<&str>) -> DeviceReading {
        DeviceReading {
            device: device.map(|d| DeviceName::parse(d).unwrap()),
            reading: Reading {
                sensor: SensorName::parse("t").unwrap(),
                value: (i as f64).into(),
                ts: Timestamp::from_micros(i),
                unit: None,
            },
        }
    }

    #[test]
    fn only_the_reading_the_detail_names_is_given_up() {
        let t = triage(
            ErrorCode::InvalidReading,
            "readings[1].value: expected a finite number",
            vec![r(0, None), r(1, None), r(2, None)],
        );
        assert_eq!(
            t,
            Triage::Refuse {
                refused: vec![r(1, None)],
                resend: vec![r(0, None), r(2, None)]
            }
        );
    }

    #[test]
    fn a_line_number_names_the_reading_one_before_it() {
        let t = triage(
            ErrorCode::InvalidReading,
            "line 3: timestamp: before 2000-01-01",
            vec![r(0, None), r(1, None), r(2, None)],
        );
        assert_eq!(
            t,
            Triage::Refuse {
                refused: vec![r(2, None)],
                resend: vec![r(0, None), r(1, None)]
            }
        );
        assert_eq!(bad_index("line 0: x"), None);
        assert_eq!(
            triage(ErrorCode::TooLarge, "over", vec![r(0, None), r(1, None)]),
            Triage::Smaller {
                resend: vec![r(0, None), r(1, None)],
                max_batch: 1
            }
        );
    }

    #[test]
    fn a_forbidden_device_takes_only_its_own_readings() {
        let t = triage(
            ErrorCode::ForbiddenDevice,
            "device b: this token may not send readings for it",
            vec![
                r(0, Some("a")),
                r(1, Some("b")),
                r(2, None),
                r(3, Some("b")),
            ],
        );
        assert_eq!(
            t,
            Triage::Refuse {
                refused: vec![r(1, Some("b")), r(3, Some("b"))],
                resend: vec![r(0, Some("a")), r(2, None)]
            }
        );
    }

    #[test]
    fn other_refusals_take_the_whole_message() {
        for (code, detail) in [
            (ErrorCode::InvalidJson, "expected value"),
            (ErrorCode::InvalidReading, "readings[9].ts: out of range"),
            (ErrorCode::ForbiddenDevice, "device zz: nope"),
        ] {
            let all = vec![r(0, None), r(1, Some("a"))];
            assert_eq!(
                triage(code, detail, all.clone()),
                Triage::Refuse {
                    refused: all,
                    resend: vec![]
                },
                "{detail}"
            );
        }
        let one = vec![r(0, None)];
        assert_eq!(
            triage(ErrorCode::TooManyReadings, "at most 0", one.clone()),
            Triage::Refuse {
                refused: one,
                resend: vec![]
            }
        );
    }

    #[test]
    fn busy_hubs_get_everything_later_and_small_limits_smaller_messages() {
        let all = vec![r(0, None), r(1, None), r(2, None)];
        assert_eq!(
            triage(ErrorCode::RateLimited, "", all.clone()),
            Triage::ResendLater(all.clone())
        );
        assert_eq!(
            triage(
                ErrorCode::TooManyReadings,
                "readings: 3 readings",
                all.clone()
            ),
            Triage::Smaller {
                resend: all,
                max_batch: 1
            }
        );
    }
}

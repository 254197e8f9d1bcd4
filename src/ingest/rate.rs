//! Per-device reading rates (`[limits] device_readings_per_second`, `device_burst`):
//! one token bucket per device, shared by every transport a device sends through.

use crate::config::LimitSettings;
use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;

type Keyed = RateLimiter<i64, DefaultKeyedStateStore<i64>, DefaultClock>;

/// The reading budgets of every device, keyed by device id.
pub struct DeviceRates {
    devices: Keyed,
    /// Readings per second per device, for the refusal's detail.
    pub per_second: u32,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("≥ 1")
}

impl DeviceRates {
    pub fn new(s: &LimitSettings) -> Self {
        Self {
            devices: RateLimiter::keyed(
                Quota::per_second(nz(s.device_readings_per_second)).allow_burst(nz(s.device_burst)),
            ),
            per_second: s.device_readings_per_second,
        }
    }

    /// Takes `n` readings from `device`'s budget; false when over its rate.
    pub fn take(&self, device: i64, n: usize) -> bool {
        let n = nz(u32::try_from(n).unwrap_or(u32::MAX));
        matches!(self.devices.check_key_n(&device, n), Ok(Ok(())))
    }

    /// Drops the state of devices idle long enough to have a full bucket.
    pub fn forget_idle(&self) {
        self.devices.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_budgets_are_separate_and_bounded() {
        let l = DeviceRates::new(&LimitSettings {
            device_readings_per_second: 10,
            device_burst: 100,
            ..Default::default()
        });
        assert!(l.take(1, 100));
        assert!(!l.take(1, 50));
        assert!(l.take(2, 60));
        assert!(!l.take(3, 101), "more than the burst can never pass");
    }
}

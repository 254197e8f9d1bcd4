//! Nacks in the log, sampled: at most one line per [`INTERVAL`], each saying how many
//! nacks were left out since the line before, so a device flooding bad messages cannot
//! flood the log (the `/metrics` counters still count every one).

use crate::domain::untrusted;
use crate::protocol::ingest::Refusal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shortest time between two logged nacks.
pub const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct NackLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl NackLog {
    /// Logs the refusal of a message from `device`, or counts it as suppressed.
    pub fn record(&self, device: &str, r: &Refusal) {
        if !self.due(Instant::now()) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            device = %untrusted(device),
            error = r.code.as_str(),
            detail = %untrusted(&r.detail),
            suppressed,
            "message nacked"
        );
    }

    fn due(&self, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(t) if now.duration_since(t) < INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_rest_counted() {
        let log = NackLog::default();
        let t = Instant::now();
        assert!(log.due(t));
        assert!(!log.due(t + Duration::from_millis(10)));
        assert!(log.due(t + INTERVAL));
    }
}

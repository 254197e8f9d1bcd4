//! Exponential back-off with jitter, for hub reconnects and port reopens.

use rand::Rng;
use std::time::Duration;

/// Delays that double from `min` up to `max`; each is drawn from `[d/2, d]` so many
/// bridges restarted together do not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        half + rand::rng().random_range(Duration::ZERO..=d - half)
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_with_jitter_below_each_step() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(500));
        let steps: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        for (d, cap) in steps.iter().zip([100, 200, 400, 500, 500, 500]) {
            assert!(*d >= ms(cap / 2) && *d <= ms(cap), "{d:?} vs {cap}");
        }
        b.reset();
        assert!(b.next_delay() <= ms(100));
    }
}

//! Exponential backoff with full jitter: the n-th delay in a row is drawn uniformly
//! from `[0, min(max, initial · 2ⁿ)]`, so a fleet that lost its hub at the same moment
//! comes back spread out instead of in one wave.

use rand::Rng;
use std::time::Duration;

/// The bounds of the delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The ceiling of the first delay.
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

impl BackoffConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.initial.is_zero() || self.max < self.initial {
            return Err("backoff: initial must be > 0 and max ≥ initial".into());
        }
        Ok(())
    }
}

/// Delays for one run of failures; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig) -> Self {
        Self { cfg, attempt: 0 }
    }

    /// The longest the next delay can be.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.cfg.initial.saturating_mul(factor).min(self.cfg.max)
    }

    /// The next delay, drawn from `[0, ceiling]`; the ceiling then doubles (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=us))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sleeps_stay_under_a_doubling_ceiling_up_to_the_cap() {
        let mut b = Backoff::new(cfg());
        let mut total = Duration::ZERO;
        for n in 0..40u32 {
            let ceiling = b.ceiling();
            let expected = Duration::from_millis(100)
                .saturating_mul(2u32.saturating_pow(n))
                .min(Duration::from_secs(5));
            assert_eq!(ceiling, expected, "attempt {n}");
            let start = Instant::now();
            tokio::time::sleep(b.next_delay()).await;
            let slept = start.elapsed();
            assert!(
                slept <= ceiling,
                "attempt {n}: slept {slept:?} > {ceiling:?}"
            );
            total += slept;
        }
        // 40 attempts can never add up to more than 40 capped delays.
        assert!(total <= Duration::from_secs(5) * 40);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_over_the_whole_range() {
        let mut b = Backoff::new(cfg());
        for _ in 0..10 {
            b.next_delay();
        }
        let ceiling = b.ceiling();
        assert_eq!(ceiling, Duration::from_secs(5));
        let samples: Vec<Duration> = (0..2000)
            .map(|_| {
                let mut probe = b.clone();
                probe.next_delay()
            })
            .collect();
        let (lo, hi) = (ceiling / 10, ceiling * 9 / 10);
        assert!(samples.iter().all(|d| *d <= ceiling));
        assert!(
            samples.iter().any(|d| *d < lo),
            "full jitter reaches near 0"
        );
        assert!(samples.iter().any(|d| *d > hi), "and near the ceiling");
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        assert!(
            mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10,
            "mean {mean:?} is about half the ceiling"
        );
    }

    #[test]
    fn bad_bounds_are_refused() {
        let zero = BackoffConfig {
            initial: Duration::ZERO,
            max: Duration::from_secs(1),
        };
        assert!(zero.validate().is_err());
        let inverted = BackoffConfig {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(1),
        };
        assert!(inverted.validate().is_err());
        assert!(cfg().validate().is_ok());
    }
}

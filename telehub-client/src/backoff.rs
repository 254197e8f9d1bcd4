//! Exponential backoff with jitter, the one implementation behind every retry loop: the
//! device client's reconnects and resends, the serial bridge's reconnects and port
//! reopens, `telehub tail`'s reconnects, the alert webhook outbox and the MQTT broker
//! connection.
//!
//! The n-th delay in a row has the ceiling `min(max, initial · 2ⁿ)` and is drawn at
//! random below it ([`Jitter`]): over the whole range (full jitter, so a fleet that lost
//! its hub at the same moment comes back spread out instead of in one wave) or over its
//! upper half (equal jitter: spread out, yet never much sooner than the schedule).
//! [`Backoff`] counts the failures of one run and is reset after a success; a caller that
//! keeps the count elsewhere (the alert outbox stores it with each row) asks
//! [`BackoffConfig::delay`] directly.
//!
//! May use: nothing else in the crate (layer 1).

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

/// Bounds that cannot make a backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BackoffError {
    #[error("backoff: initial must be > 0; set it to the first delay wanted, e.g. 250ms")]
    ZeroInitial,
    #[error("backoff: max ({max:?}) is below initial ({initial:?}); raise max or lower initial")]
    MaxBelowInitial { initial: Duration, max: Duration },
}

impl BackoffConfig {
    /// Refuses a zero `initial` and a `max` below it.
    pub fn validate(&self) -> Result<(), BackoffError> {
        if self.initial.is_zero() {
            return Err(BackoffError::ZeroInitial);
        }
        if self.max < self.initial {
            return Err(BackoffError::MaxBelowInitial {
                initial: self.initial,
                max: self.max,
            });
        }
        Ok(())
    }

    /// The longest delay after `attempt` failures in a row (0: the first delay).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A delay after `attempt` failures in a row, drawn below [`Self::ceiling`].
    pub fn delay(&self, jitter: Jitter, attempt: u32) -> Duration {
        jitter.draw(self.ceiling(attempt))
    }
}

/// How a delay is drawn below its ceiling `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Uniform over `[0, c]`.
    #[default]
    Full,
    /// Uniform over `[c/2, c]`.
    Equal,
}

impl Jitter {
    fn draw(self, ceiling: Duration) -> Duration {
        let floor = match self {
            Jitter::Full => Duration::ZERO,
            Jitter::Equal => ceiling / 2,
        };
        let span = u64::try_from((ceiling - floor).as_micros()).unwrap_or(u64::MAX);
        floor + Duration::from_micros(rand::rng().random_range(0..=span))
    }
}

/// Delays for one run of failures; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    jitter: Jitter,
    attempt: u32,
}

impl Backoff {
    /// Full jitter.
    pub fn new(cfg: BackoffConfig) -> Self {
        Self::with_jitter(cfg, Jitter::Full)
    }

    pub fn with_jitter(cfg: BackoffConfig, jitter: Jitter) -> Self {
        Self {
            cfg,
            jitter,
            attempt: 0,
        }
    }

    /// The longest the next delay can be.
    pub fn ceiling(&self) -> Duration {
        self.cfg.ceiling(self.attempt)
    }

    /// The next delay, drawn below the ceiling; the ceiling then doubles (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.cfg.delay(self.jitter, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// After a success: the next failure waits at most `initial` again.
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
    fn equal_jitter_doubles_up_to_the_maximum_and_stays_in_the_upper_half() {
        let ms = Duration::from_millis;
        let cfg = BackoffConfig {
            initial: ms(100),
            max: ms(500),
        };
        let mut b = Backoff::with_jitter(cfg, Jitter::Equal);
        let steps: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        for (d, cap) in steps.iter().zip([100, 200, 400, 500, 500, 500]) {
            assert!(*d >= ms(cap / 2) && *d <= ms(cap), "{d:?} vs {cap}");
        }
        b.reset();
        assert!(b.next_delay() <= ms(100));
        for attempt in [0, 1, 3, 31, u32::MAX] {
            let d = cfg.delay(Jitter::Equal, attempt);
            let c = cfg.ceiling(attempt);
            assert!(d >= c / 2 && d <= c, "{attempt}: {d:?} vs {c:?}");
        }
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

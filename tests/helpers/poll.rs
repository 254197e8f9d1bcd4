//! The one poller, for state only visible by asking (stored rows, counters, files). What
//! arrives on a socket is awaited on the socket, with [`WAIT`] as its timeout.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How long a test waits for anything the hub should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// Looks (`look`) until `done` accepts what it saw, and returns that. Looks again after
/// 10 ms, then at growing intervals up to 100 ms; after `limit` the test fails, naming
/// `what` it waited for and the last value seen.
pub async fn eventually<V, F, Fut>(
    limit: Duration,
    what: &str,
    mut look: F,
    mut done: impl FnMut(&V) -> bool,
) -> V
where
    V: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = V>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        let seen = look().await;
        if done(&seen) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; last seen: {seen:?}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

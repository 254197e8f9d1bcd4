//! The process's stop signal: what a device program, the simulator and the hub's
//! long-running commands wait on to drain and exit.
//!
//! May use: nothing else in the crate (layer 1).

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (Ctrl-C only where SIGTERM cannot be watched).
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered now, not when first awaited: a SIGTERM between the two is kept for the
    // future instead of killing the process with the default action.
    let (term, int) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

//! `telehub serve`: runs the hub until SIGINT or SIGTERM, then shuts down gracefully.

use crate::auth::Role;
use crate::config::Settings;
use crate::server;
use clap::Args;
use std::net::SocketAddr;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Print the effective configuration (secrets hidden) and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub async fn run(settings: Settings, args: &ServeArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{}", settings.to_redacted_toml());
        return Ok(());
    }
    let hub = server::start(settings).await?;
    let store = &hub.state.store;
    let url = hub.base_url();
    println!("telehub listening on {url} (storage: {})", store.backend());
    if store.has_viewer_token().await? {
        println!(
            "dashboard: {url}/?token=<viewer token>  (create one with `telehub token add NAME --role viewer`)"
        );
    } else {
        let token = store.add_token("dashboard", Role::Viewer).await?;
        println!("dashboard: {url}/?token={token}");
    }
    shutdown_signal().await;
    eprintln!("shutting down: closing sockets and flushing storage…");
    hub.stop().await;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

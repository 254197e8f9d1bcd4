//! `telehub serve`: runs the hub until SIGINT or SIGTERM, then shuts down gracefully;
//! with `--demo`, simulated devices run inside the process ([`super::demo`]).

use crate::auth::Role;
use crate::config::Settings;
use crate::hub;
use clap::Args;
use std::net::SocketAddr;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, HOST:PORT with an IP address or a host name (default 127.0.0.1:8080).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Print the effective configuration (secrets hidden) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Also run eight simulated demo devices (demo-*) inside the hub.
    #[arg(long)]
    pub demo: bool,
}

/// `--listen`: an IP address and port, or a host name (the first address it resolves to).
pub fn resolve(listen: &str) -> Result<SocketAddr, super::UsageError> {
    crate::config::server::resolve_listen(listen)
        .map_err(|why| super::UsageError(format!("--listen {listen}: {why}")))
}

pub async fn run(settings: Settings, args: &ServeArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{}", settings.to_redacted_toml());
        return Ok(());
    }
    // Before the hub listens: a client may stop it as soon as it answers.
    let stop = super::shutdown_signal();
    let hub = hub::start(settings).await?;
    let store = &hub.state.store;
    let url = hub.base_url();
    println!("telehub listening on {url} (storage: {})", store.backend());
    let demo = if args.demo {
        let demo = match super::demo::start(&hub).await {
            Ok(d) => d,
            Err(e) => {
                hub.stop().await;
                return Err(e.context("starting the demo devices"));
            }
        };
        println!("dashboard: {url}/?token={}", demo.viewer_token);
        println!(
            "demo: {} simulated devices streaming: {}",
            demo.devices.len(),
            demo.devices.join(", ")
        );
        Some(demo)
    } else if store.has_viewer_token().await? {
        println!(
            "dashboard: {url}/?token=<viewer token>  (create one with `telehub token add NAME --role viewer`)"
        );
        None
    } else {
        let token = store.add_token("dashboard", Role::Viewer).await?;
        println!("dashboard: {url}/?token={token}");
        None
    };
    stop.await;
    tracing::info!("shutting down: closing sockets and flushing storage…");
    if let Some(demo) = demo {
        demo.stop().await;
    }
    hub.stop().await;
    Ok(())
}

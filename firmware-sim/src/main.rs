//! `firmware-sim`: plays a fleet of simulated devices against a telehub hub, writes
//! serial lines for serial-only devices, and runs the benchmarks (docs/simulator.md).
//!
//! | module | owns |
//! |---|---|
//! | [`run`] | `firmware-sim run`: one task per device from a tokens file |
//! | [`causes`] | why devices fail, said once per cause with counts |
//! | [`serial`] | `firmware-sim serial`: a serial-only device writing protocol.md §6 lines |
//! | [`bench`] | `firmware-sim bench ...`: the benchmark scenarios |

mod bench;
mod causes;
mod run;
mod serial;
mod serial_answers;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "firmware-sim",
    version,
    about = "Simulated telehub devices and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Play one device per `NAME TOKEN` line of a tokens file.
    Run(Box<run::RunArgs>),
    /// Play a serial-only device writing protocol.md §6 lines to a serial port.
    Serial(serial::SerialArgs),
    /// Measure the hub (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "firmware_sim=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run::run(*a).await,
            Command::Serial(a) => serial::run(a).await,
            Command::Bench(b) => bench::run(b).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firmware-sim: {e:#}");
            ExitCode::from(1)
        }
    }
}

//! `firmware-sim bench`: not written yet (see issue 4).

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {}

pub async fn run(b: BenchCommand) -> anyhow::Result<()> {
    match b {}
}

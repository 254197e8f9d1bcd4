//! `firmware-sim run`: not written yet (see issue 4).

#[derive(clap::Args, Debug)]
pub struct RunArgs {}

pub async fn run(_a: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("`firmware-sim run` is not implemented yet")
}

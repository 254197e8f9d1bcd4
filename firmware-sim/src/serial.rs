//! `firmware-sim serial`: not written yet (see issue 5).

#[derive(clap::Args, Debug)]
pub struct SerialArgs {}

pub async fn run(_a: SerialArgs) -> anyhow::Result<()> {
    anyhow::bail!("`firmware-sim serial` is not implemented yet")
}

//! `telehub device label NAME k=v... [--remove KEY]...` and the `--label k=v` filter of
//! `device list` (protocol.md §14). Pairs are parsed by [`crate::domain::Labels`]; a
//! bad one is a usage error (exit 2).

use super::{UsageError, device_name};
use crate::domain::{LabelKey, Labels, parse_pair};
use crate::storage::{DeviceFilter, StorageError, Store};

#[derive(clap::Args, Debug)]
pub struct LabelArgs {
    /// The device.
    pub name: String,
    /// Labels to set, KEY=VALUE (e.g. site=plant-a line=3); without any and without
    /// --remove, the device's labels are printed.
    pub set: Vec<String>,
    /// Keys to remove (repeatable).
    #[arg(long, value_name = "KEY")]
    pub remove: Vec<String>,
}

/// `KEY=VALUE` arguments as labels (a usage error names the bad one).
pub fn parse_labels(pairs: &[String]) -> anyhow::Result<Labels> {
    let pairs = pairs
        .iter()
        .map(|p| parse_pair(p, '=').map_err(|e| UsageError(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Labels::from_pairs(pairs).map_err(|e| UsageError(e.to_string()))?)
}

pub async fn label(store: &Store, args: &LabelArgs) -> anyhow::Result<()> {
    let name = device_name(&args.name)?;
    let set = parse_labels(&args.set)?;
    let remove = args
        .remove
        .iter()
        .map(|k| LabelKey::parse(k).map_err(|e| UsageError(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let current = store
        .list_devices_where(DeviceFilter::Named(&name))
        .await?
        .into_iter()
        .find(|d| !d.revoked)
        .ok_or_else(|| UsageError(StorageError::NoSuchDevice(name.to_string()).to_string()))?
        .labels;
    if set.is_empty() && remove.is_empty() {
        println!("{}", serde_json::to_string(&current)?);
        return Ok(());
    }
    let labels = current
        .edited(&set, &remove)
        .map_err(|e| UsageError(e.to_string()))?;
    store.set_labels(&name, &labels).await?;
    eprintln!("{name}: {}", shown(&labels));
    Ok(())
}

fn shown(labels: &Labels) -> String {
    if labels.is_empty() {
        "no labels".into()
    } else {
        labels.to_pairs_text()
    }
}

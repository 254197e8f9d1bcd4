//! `telehub device config NAME [--set K=V... | --desired JSON]` (protocol.md §14): shows
//! a device's desired and reported configuration, or sets the desired one. Written
//! straight to the database; running hubs find the new version within
//! `device_config.poll_interval` and hand it to the device.

use super::{UsageError, device_name};
use crate::config::Settings;
use crate::devconfig::{ConfigError, request, set_desired};
use crate::storage::Store;

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// The device.
    pub name: String,
    /// Set KEY=VALUE in the desired configuration (VALUE is JSON when it parses as JSON,
    /// else text); repeatable. Other keys keep their values.
    #[arg(long, value_name = "KEY=VALUE", conflicts_with = "desired")]
    pub set: Vec<String>,
    /// Replace the desired configuration with this JSON object.
    #[arg(long, value_name = "JSON")]
    pub desired: Option<String>,
    /// Only if the desired configuration is still at this version (else exit 1, nothing changed).
    #[arg(long, value_name = "VERSION")]
    pub if_match: Option<u64>,
}

/// A refusal the caller can fix by changing the arguments: exit 2.
fn usage(e: ConfigError) -> anyhow::Error {
    match e {
        ConfigError::Invalid(_) | ConfigError::TooLarge(_) | ConfigError::NoSuchDevice(_) => {
            UsageError(e.to_string()).into()
        }
        other => other.into(),
    }
}

pub async fn config(store: &Store, settings: &Settings, args: &ConfigArgs) -> anyhow::Result<()> {
    let name = device_name(&args.name)?;
    let current = store
        .device_config(&name)
        .await?
        .ok_or_else(|| usage(ConfigError::NoSuchDevice(name.to_string())))?;
    let desired = match (&args.desired, args.set.is_empty()) {
        (Some(json), _) => {
            let v: serde_json::Value = serde_json::from_str(json)
                .map_err(|e| UsageError(format!("--desired: invalid JSON: {e}")))?;
            request::desired_of(v).map_err(usage)?
        }
        (None, false) => request::apply_sets(current.desired.clone(), &args.set).map_err(usage)?,
        (None, true) => {
            if args.if_match.is_some() {
                return Err(UsageError("--if-match goes with --set or --desired".into()).into());
            }
            println!("{}", serde_json::to_string_pretty(&current)?);
            return Ok(());
        }
    };
    let row = set_desired(
        store,
        &settings.device_config,
        &name,
        &desired,
        args.if_match,
        None,
    )
    .await
    .map_err(usage)?;
    println!("{}", serde_json::to_string_pretty(&row)?);
    eprintln!(
        "{name}: desired configuration is now version {}",
        row.version
    );
    Ok(())
}

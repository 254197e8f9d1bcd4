//! `telehub device ...` and `telehub token ...`: the registry from the command line.
//! Tokens are printed once, alone on stdout, so scripts can capture them.

use super::device_config::{self, ConfigArgs};
use super::device_labels::{self, LabelArgs};
use super::device_life::{self, DeviceTokenCommand, GatewayArgs, SetArgs};
use super::output::{ListFormat, print_list};
use super::{UsageError, device_name};
use crate::auth::Role;
use crate::config::Settings;
use crate::domain::DeviceName;
use crate::storage::{DeviceFilter, OpenMode, StorageError, Store};
use anyhow::Context;
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Add a device (prints its token), or many with --count/--prefix/--tokens-out.
    Add {
        /// The device name (omit with --count).
        name: Option<String>,
        /// Devices this one may publish for (a gateway), comma-separated; they must exist.
        #[arg(long, value_delimiter = ',')]
        gateway_for: Vec<String>,
        /// Create this many devices named PREFIX1..PREFIXN.
        #[arg(long, requires_all = ["prefix", "tokens_out"], conflicts_with = "name")]
        count: Option<u32>,
        #[arg(long)]
        prefix: Option<String>,
        /// Where to write `NAME TOKEN` lines: a new file, mode 0600 (an existing file or
        /// a symlink is refused unless --force).
        #[arg(long, value_name = "FILE")]
        tokens_out: Option<PathBuf>,
        /// Replace an existing --tokens-out file (it is removed, never written through).
        #[arg(long, requires = "tokens_out")]
        force: bool,
        /// Also add the --gateway-for devices that do not exist yet (without tokens:
        /// `device token add` gives them one).
        #[arg(long, requires = "gateway_for")]
        create_missing: bool,
    },
    /// List devices.
    List {
        #[arg(long, value_enum)]
        format: Option<ListFormat>,
        /// Only devices with this label, KEY=VALUE (repeatable: all must match).
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
        /// At most N devices: the first N in name order (storage is still read whole).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Revoke a device and all its tokens; open sockets close within a second
    /// (`device token add` makes it active again).
    Revoke { name: String },
    /// A device's tokens: add another, list them, revoke one or all.
    #[command(subcommand)]
    Token(DeviceTokenCommand),
    /// Edit the devices a gateway may act for.
    Gateway(GatewayArgs),
    /// Set a device's description and location.
    Set(SetArgs),
    /// Set or remove a device's labels (KEY=VALUE, at most 16), or print them.
    Label(LabelArgs),
    /// Show a device's desired and reported configuration, or set the desired one.
    Config(ConfigArgs),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a viewer, operator or admin token (prints it).
    Add {
        /// A label to recognise the token by.
        name: String,
        #[arg(long, value_enum)]
        role: TokenRole,
    },
    /// List viewer, operator and admin tokens (labels and roles; secrets are never stored).
    List {
        #[arg(long, value_enum)]
        format: Option<ListFormat>,
    },
    /// Revoke every viewer/operator/admin token with this name; open sockets close within a second.
    Revoke { name: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TokenRole {
    Viewer,
    /// A viewer that may also send and cancel commands.
    Operator,
    Admin,
}

pub async fn run_device(settings: Settings, cmd: &DeviceCommand) -> anyhow::Result<()> {
    let mode = match cmd {
        DeviceCommand::Add { .. } => OpenMode::Create,
        _ => OpenMode::Existing,
    };
    let store = Store::open_with(&settings.database, mode).await?;
    let result = device(&store, &settings, cmd).await;
    store.close().await;
    result
}

async fn device(store: &Store, settings: &Settings, cmd: &DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Add {
            name: Some(name),
            gateway_for,
            count: None,
            create_missing,
            ..
        } => {
            let targets = gateway_for
                .iter()
                .map(|t| device_name(t))
                .collect::<Result<Vec<_>, _>>()?;
            let token = store
                .add_gateway(&device_name(name)?, &targets, *create_missing)
                .await
                .map_err(|e| match e {
                    StorageError::UnknownTarget(_) => UsageError(format!(
                        "{e}, or add every missing one with --create-missing"
                    ))
                    .into(),
                    other => anyhow::Error::from(other),
                })?;
            println!("{token}");
        }
        DeviceCommand::Add {
            count: Some(n),
            prefix: Some(prefix),
            tokens_out: Some(path),
            force,
            ..
        } => {
            let names = (1..=*n)
                .map(|i| device_name(&format!("{prefix}{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            // The file first: no devices are created whose tokens could not be written.
            let file = tokens_file(path, *force)?;
            let created = store.add_devices(&names).await?;
            write_tokens(file, &created)
                .with_context(|| format!("writing tokens to {}", path.display()))?;
            eprintln!(
                "added {} devices; tokens in {}",
                created.len(),
                path.display()
            );
        }
        DeviceCommand::Add { .. } => {
            return Err(UsageError(
                "give a device NAME, or --count N --prefix P --tokens-out FILE".into(),
            )
            .into());
        }
        DeviceCommand::List {
            format,
            label,
            limit,
        } => {
            let selector = device_labels::parse_labels(label)?;
            let mut rows = store
                .list_devices_where(DeviceFilter::Labelled(&selector))
                .await?;
            rows.sort_by(|a, b| natural_order(&a.name, &b.name));
            if let Some(n) = limit {
                rows.truncate(usize::try_from(*n).unwrap_or(usize::MAX));
            }
            print_list(
                format,
                &rows,
                &[
                    "NAME",
                    "STATE",
                    "LAST SEEN",
                    "SENSORS",
                    "GATEWAY FOR",
                    "DESCRIPTION",
                    "LABELS",
                ],
                |d| {
                    vec![
                        d.name.clone(),
                        state(d.revoked),
                        d.last_seen.map_or("never".into(), |t| t.to_rfc3339()),
                        d.sensors.join(","),
                        d.gateway_for.join(","),
                        d.description.clone().unwrap_or_default(),
                        d.labels.to_pairs_text(),
                    ]
                },
            )?;
        }
        DeviceCommand::Revoke { name } => {
            store.revoke_device(&device_name(name)?).await?;
            eprintln!("revoked {name}");
        }
        DeviceCommand::Token(cmd) => device_life::token(store, cmd).await?,
        DeviceCommand::Gateway(args) => device_life::gateway(store, args).await?,
        DeviceCommand::Set(args) => device_life::set(store, args).await?,
        DeviceCommand::Label(args) => device_labels::label(store, args).await?,
        DeviceCommand::Config(args) => device_config::config(store, settings, args).await?,
    }
    Ok(())
}

/// Opens `path` as a new file readable by its owner only, as `ssh-keygen` does: an
/// existing file (or a symlink, wherever it points) is refused, or with `force` removed
/// first. `create_new` (O_EXCL) never follows a symlink, so nothing is written through one
/// planted in between.
fn tokens_file(path: &std::path::Path, force: bool) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.symlink_metadata().is_ok() {
        if !force {
            return Err(UsageError(format!(
                "{} exists; tokens go to a new file only (give another path, or --force to replace it)",
                path.display()
            ))
            .into());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing {} (--force)", path.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn write_tokens(f: std::fs::File, created: &[(DeviceName, String)]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(f);
    for (name, token) in created {
        writeln!(w, "{name} {token}")?;
    }
    w.flush()
}

pub async fn run_token(settings: Settings, cmd: &TokenCommand) -> anyhow::Result<()> {
    let mode = match cmd {
        TokenCommand::Add { .. } => OpenMode::Create,
        _ => OpenMode::Existing,
    };
    let store = Store::open_with(&settings.database, mode).await?;
    let result = token(&store, cmd).await;
    store.close().await;
    result
}

async fn token(store: &Store, cmd: &TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Add { name, role } => {
            if name.trim().is_empty() || name.len() > 64 {
                return Err(UsageError("a token name must be 1 to 64 characters".into()).into());
            }
            let role = match role {
                TokenRole::Viewer => Role::Viewer,
                TokenRole::Operator => Role::Operator,
                TokenRole::Admin => Role::Admin,
            };
            match store.add_token(name, role).await {
                Ok(token) => println!("{token}"),
                Err(e @ StorageError::TokenNameTaken(_)) => {
                    return Err(UsageError(e.to_string()).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        TokenCommand::List { format } => {
            let rows = store.list_tokens().await?;
            let header = ["NAME", "ROLE", "STATE", "CREATED", "LAST USED"];
            print_list(format, &rows, &header, |t| {
                vec![
                    t.label.clone(),
                    t.role.clone(),
                    state(t.revoked),
                    t.created.to_rfc3339(),
                    t.last_used.map_or("never".into(), |t| t.to_rfc3339()),
                ]
            })?;
        }
        TokenCommand::Revoke { name } => match store.revoke_tokens(name).await? {
            0 => anyhow::bail!(
                "no active viewer, operator or admin token named {name}; see `telehub token list`"
            ),
            n => eprintln!("revoked {n} token(s) named {name}"),
        },
    }
    Ok(())
}

fn state(revoked: bool) -> String {
    if revoked { "revoked" } else { "active" }.into()
}

/// Names in natural order: digit runs compare as numbers (`sim-2` before `sim-10`).
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            Some((digit, chunk))
        })
    }
    let mut left = chunks(a);
    let mut right = chunks(b);
    loop {
        let ord = match (left.next(), right.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((true, x)), Some((true, y))) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (Some((_, x)), Some((_, y))) => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::natural_order;

    #[test]
    fn device_names_sort_naturally() {
        let mut v = vec![
            "sim-10", "sim-2", "sim-1", "boiler", "sim-02x", "a10b2", "a10b10", "a9",
        ];
        v.sort_by(|a, b| natural_order(a, b));
        assert_eq!(
            v,
            [
                "a9", "a10b2", "a10b10", "boiler", "sim-1", "sim-2", "sim-02x", "sim-10"
            ]
        );
    }
}

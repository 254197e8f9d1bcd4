//! `telehub device token|gateway|set`: a device's identity over its life (docs/cli.md
//! "Devices over their life") — more tokens and their revocation, the devices a gateway
//! acts for, its description and location. Mistakes (an unknown device or token, a bad
//! value) exit 2 with a message saying what to do.

use super::output::{ListFormat, print_list};
use super::{UsageError, device_name};
use crate::domain::{Description, DeviceName, Location};
use crate::storage::identity::{AboutEdit, GatewayEdit, Revoke};
use crate::storage::{StorageError, Store};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DeviceTokenCommand {
    /// Give a device another token (prints it; its other tokens keep working). A revoked
    /// device is active again with it.
    Add { name: String },
    /// A device's tokens: ids, created, last used (to the minute), revoked; never secrets.
    List {
        name: String,
        #[arg(long, value_enum)]
        format: Option<ListFormat>,
    },
    /// Revoke one token of a device (--token-id) or all of them (--all); the device, its
    /// history and its gateway list stay. Open sockets close within a second.
    Revoke {
        name: String,
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        token_id: Option<i64>,
        #[arg(long)]
        all: bool,
    },
}

/// What `device gateway` and `device set` take.
#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// The gateway device.
    pub name: String,
    /// Devices it may now act for, comma-separated (they must exist).
    #[arg(long, value_delimiter = ',')]
    pub add: Vec<String>,
    /// Devices it may no longer act for, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub remove: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    pub name: String,
    /// A free text of at most 256 characters; "" clears it.
    #[arg(long)]
    pub description: Option<String>,
    /// LAT,LON (52.52,13.40), a name ("Hall 3"), or a JSON object {"lat","lon","name"};
    /// "" clears it.
    #[arg(long)]
    pub location: Option<String>,
}

/// A storage refusal the caller can fix: exit 2.
fn usage(e: StorageError) -> anyhow::Error {
    match e {
        StorageError::NoSuchDevice(_)
        | StorageError::NoSuchToken { .. }
        | StorageError::UnknownTarget(_) => UsageError(e.to_string()).into(),
        other => other.into(),
    }
}

fn names(list: &[String]) -> anyhow::Result<Vec<DeviceName>> {
    list.iter().map(|t| device_name(t)).collect()
}

pub async fn token(store: &Store, cmd: &DeviceTokenCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceTokenCommand::Add { name } => {
            let (id, token, was_revoked) = store
                .add_device_token(&device_name(name)?)
                .await
                .map_err(usage)?;
            println!("{token}");
            if was_revoked {
                eprintln!("device {name} was revoked; it is active again with token {id}");
            } else {
                eprintln!("added token {id} to {name}");
            }
        }
        DeviceTokenCommand::List { name, format } => {
            let rows = store
                .list_device_tokens(&device_name(name)?)
                .await
                .map_err(usage)?;
            let when =
                |t: Option<crate::domain::Timestamp>| t.map_or("-".into(), |t| t.to_rfc3339());
            print_list(
                format,
                &rows,
                &["ID", "CREATED", "LAST USED", "REVOKED"],
                |t| {
                    vec![
                        t.id.to_string(),
                        t.created.to_rfc3339(),
                        when(t.last_used),
                        when(t.revoked),
                    ]
                },
            )?;
        }
        DeviceTokenCommand::Revoke {
            name,
            token_id,
            all,
        } => {
            let which = match (token_id, all) {
                (Some(id), false) => Revoke::One(*id),
                _ => Revoke::All,
            };
            let n = store
                .revoke_device_tokens(&device_name(name)?, which)
                .await
                .map_err(usage)?;
            match which {
                Revoke::One(id) if n == 0 => eprintln!("token {id} of {name} was already revoked"),
                _ => eprintln!("revoked {n} token(s) of {name}"),
            }
        }
    }
    Ok(())
}

pub async fn gateway(store: &Store, args: &GatewayArgs) -> anyhow::Result<()> {
    if args.add.is_empty() && args.remove.is_empty() {
        return Err(UsageError("give --add A,B and/or --remove C".into()).into());
    }
    let edit = GatewayEdit {
        replace: None,
        add: names(&args.add)?,
        remove: names(&args.remove)?,
    };
    let list = store
        .edit_gateway(&device_name(&args.name)?, &edit)
        .await
        .map_err(usage)?;
    eprintln!("{} may act for: {}", args.name, shown(&list));
    Ok(())
}

fn shown(list: &[String]) -> String {
    if list.is_empty() {
        "(none)".into()
    } else {
        list.join(",")
    }
}

pub async fn set(store: &Store, args: &SetArgs) -> anyhow::Result<()> {
    let bad = |e: crate::domain::AboutError| anyhow::Error::from(UsageError(e.to_string()));
    let edit = AboutEdit {
        description: match args.description.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(d) => Some(Some(Description::parse(d).map_err(bad)?)),
        },
        location: match args.location.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(l) => Some(Some(Location::parse_arg(l).map_err(bad)?)),
        },
    };
    if edit.description.is_none() && edit.location.is_none() {
        return Err(UsageError("give --description TEXT and/or --location LOCATION".into()).into());
    }
    store
        .edit_about(&device_name(&args.name)?, &edit)
        .await
        .map_err(usage)?;
    eprintln!("updated {}", args.name);
    Ok(())
}

//! `telehub alert ack | silence | silences | unsilence` (contract §16), straight from
//! storage like the rest of `telehub alert`: an acknowledgement is stored with its event
//! and outbox rows (a running hub's sender delivers them to webhooks and email, and its
//! engine stops the alert's `repeat` at the next one); a silence counts on a running hub
//! within `alerts.rules_poll`. `by` is `cli:` and the user's login name. Bad input is a
//! usage error (exit 2), and so is naming an alert that is not firing or a silence that
//! is not active.

use super::UsageError;
use super::output::{FormatArg, print};
use crate::alerts::silences::{AckContext, AckRequest, Ends, SilenceRequest, Silences, ack_event};
use crate::config::Settings;
use crate::domain::Timestamp;
use crate::storage::alert_acks::{Acked, NewAck};
use crate::storage::{StorageError, Store};
use clap::Args;

#[derive(Args, Debug)]
pub struct AckArgs {
    rule: String,
    device: String,
    /// Absent for an offline rule's alert.
    sensor: Option<String>,
    /// Why: what was done, who handles it.
    #[arg(long)]
    comment: String,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("ends").required(true).args(["dur", "until"])))]
pub struct SilenceArgs {
    /// DEVICE/SENSOR (e.g. freezer-*/temperature) or DEVICE (every alert of those devices);
    /// `*` matches any characters.
    pattern: String,
    /// For how long, e.g. 2h.
    #[arg(long = "for", value_name = "DUR")]
    dur: Option<String>,
    /// Until when (RFC 3339).
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Only this rule's alerts.
    #[arg(long)]
    rule: Option<String>,
    #[arg(long)]
    comment: String,
}

/// Who acts from the command line.
fn by() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    format!("cli:{}", user.chars().take(64).collect::<String>())
}

fn usage(e: impl ToString) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

pub async fn ack(store: &Store, settings: &Settings, a: &AckArgs) -> anyhow::Result<()> {
    let req = AckRequest::new(&a.rule, &a.device, a.sensor.as_deref(), a.comment.clone())
        .map_err(usage)?;
    let now = Timestamp::now();
    let silences = Silences::of(&store.active_silences(now).await?);
    let k = &req.key;
    let silenced = silences
        .covering(&k.rule, &k.device, k.sensor.as_deref(), now)
        .is_some();
    let ack = NewAck {
        key: req.key.clone(),
        by: by(),
        comment: req.comment,
        ts: now,
    };
    let dashboard = settings.dashboard_url(settings.server.listen);
    let cx = AckContext {
        unit: None,
        condition: None,
        dashboard_url: &dashboard,
        silenced,
    };
    let targets = if silenced {
        Vec::new()
    } else {
        crate::alerts::targets(&settings.alerts)
    };
    match store
        .acknowledge_alert(&ack, |row| ack_event(&ack, row, cx), &targets)
        .await?
    {
        Acked::Done { event, .. } => {
            println!("{}", serde_json::to_string(&event)?);
            Ok(())
        }
        Acked::NotFiring => Err(usage(StorageError::NotFiring)),
    }
}

pub async fn silence(store: &Store, settings: &Settings, a: &SilenceArgs) -> anyhow::Result<()> {
    let ends = Ends::parse(a.until.as_deref(), a.dur.as_deref()).map_err(usage)?;
    let req = SilenceRequest::new(&a.pattern, a.rule.as_deref(), ends, a.comment.clone())
        .map_err(usage)?;
    let now = Timestamp::now();
    let new = req.to_new(&by(), now).map_err(usage)?;
    match store
        .add_silence(&new, now, settings.alerts.max_silences)
        .await
    {
        Ok(id) => {
            println!("{id}");
            Ok(())
        }
        Err(e @ StorageError::TooManySilences(_)) => Err(usage(e)),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(store: &Store, f: &FormatArg) -> anyhow::Result<()> {
    let rows = store.active_silences(Timestamp::now()).await?;
    let items = rows.iter().map(|s| {
        let cells = vec![
            s.id.to_string(),
            s.pattern.clone(),
            s.rule.clone().unwrap_or_default(),
            s.until.to_rfc3339(),
            s.by.clone(),
            s.comment.clone(),
        ];
        (cells, serde_json::to_value(s).unwrap_or_default())
    });
    let header = ["ID", "PATTERN", "RULE", "UNTIL", "BY", "COMMENT"];
    print(
        &mut std::io::stdout().lock(),
        f.format,
        &header,
        items.collect(),
    )
}

pub async fn unsilence(store: &Store, id: i64) -> anyhow::Result<()> {
    match store.end_silence(id, Timestamp::now()).await {
        Err(e @ StorageError::NoSuchSilence(_)) => Err(usage(e)),
        r => Ok(r?),
    }
}

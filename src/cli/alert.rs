//! `telehub alert ...` (docs/protocol.md §9): rules, current alerts and events, straight from
//! storage (works while the hub runs; a running hub picks up rule changes within
//! `alerts.rules_poll`). A bad rule is a usage error (exit 2) with one line saying why.
//! Acknowledging and silencing (contract §16) are in [`super::alert_ops`].

use super::UsageError;
use super::output::{Format, FormatArg, print};
use crate::alerts::rules::{Rule, RuleSpec};
use crate::config::Settings;
use crate::domain::{Timestamp, parse_time_arg};
use crate::storage::{OpenMode, StorageError, Store};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value as Json;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Add a rule: --when 'OP VALUE' [--for DUR] [--clear VALUE], --no-data DUR or --offline DUR.
    Add(AddArgs),
    /// Add every rule of FILE (one protocol.md §9 JSON rule per line) in one transaction, all or none.
    Import { file: std::path::PathBuf },
    /// List rules.
    List(FormatArg),
    /// Remove a rule (its open alerts end without an event).
    Rm { name: String },
    /// Series not ok now: firing, and thresholds pending.
    Status(FormatArg),
    /// Stored events, oldest first.
    Events {
        /// Start (inclusive): RFC 3339, `now`, or relative like -1h. Default: 24 h before --to.
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        /// End (exclusive). Default: now.
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Acknowledge a firing alert: its repeat notifications stop until it resolves.
    Ack(super::alert_ops::AckArgs),
    /// Silence alerts: events are stored but not delivered until it ends (--for DUR or --until T).
    Silence(super::alert_ops::SilenceArgs),
    /// Active silences.
    Silences(FormatArg),
    /// End a silence now; alerts still firing under it are announced once.
    Unsilence { id: i64 },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["when", "no_data", "offline"])))]
pub struct AddArgs {
    name: String,
    /// DEVICE/SENSOR (DEVICE for --offline); `*` matches any characters, e.g. freezer-*/temperature.
    #[arg(long)]
    pattern: String,
    /// A threshold: 'OP VALUE', OP one of > >= < <= == != (VALUE a number, true/false or a string).
    #[arg(long, value_name = "'OP VALUE'", allow_hyphen_values = true)]
    when: Option<String>,
    /// How long (reading time) every reading must meet --when before it fires.
    #[arg(long = "for", value_name = "DUR", requires = "when")]
    hold: Option<String>,
    /// Resolve only once a reading is past this level the other way (hysteresis).
    #[arg(
        long,
        value_name = "VALUE",
        requires = "when",
        allow_hyphen_values = true
    )]
    clear: Option<String>,
    /// Fire when a series stored nothing for DUR.
    #[arg(long, value_name = "DUR")]
    no_data: Option<String>,
    /// Fire when a device is disconnected for DUR.
    #[arg(long, value_name = "DUR")]
    offline: Option<String>,
    #[arg(long)]
    severity: Option<String>,
    /// Notify again every DUR while firing.
    #[arg(long, value_name = "DUR")]
    repeat: Option<String>,
    /// Only devices with this label, KEY=VALUE (repeatable: all must match).
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
}

impl AddArgs {
    /// The protocol.md §9 JSON these arguments describe.
    fn spec(&self) -> RuleSpec {
        let (kind, op, value, hold) = match (&self.when, &self.no_data, &self.offline) {
            (Some(w), _, _) => {
                let (op, value) = split_when(w);
                ("threshold", Some(op), Some(value), self.hold.clone())
            }
            (_, Some(d), _) => ("no_data", None, None, Some(d.clone())),
            (_, _, o) => ("offline", None, None, o.clone()),
        };
        RuleSpec {
            name: self.name.clone(),
            pattern: self.pattern.clone(),
            kind: kind.into(),
            op,
            value,
            hold,
            clear: self.clear.as_deref().map(literal),
            severity: self.severity.clone(),
            repeat: self.repeat.clone(),
            // Checked with the rest of the rule; a pair without `=` is a key with an
            // empty value, refused there with the rule.
            labels: (!self.label.is_empty()).then(|| {
                let pairs = self.label.iter().map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), Json::String(v.to_owned()))
                });
                Json::Object(pairs.collect())
            }),
        }
    }
}

/// `'> -15'` → (`>`, -15); the operator is the leading run of `<>=!`.
fn split_when(w: &str) -> (String, Json) {
    let w = w.trim();
    let end = w
        .find(|c: char| !matches!(c, '<' | '>' | '=' | '!'))
        .unwrap_or(w.len());
    (w[..end].to_owned(), literal(w[end..].trim()))
}

/// A number, `true`/`false`, a JSON string in double quotes, or else the text itself.
fn literal(s: &str) -> Json {
    match s {
        "true" => Json::Bool(true),
        "false" => Json::Bool(false),
        _ => s
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Json::Number))
            .or_else(|| {
                s.starts_with('"')
                    .then(|| serde_json::from_str(s).ok())
                    .flatten()
            })
            .unwrap_or_else(|| Json::String(s.to_owned())),
    }
}

pub async fn run(settings: Settings, cmd: &AlertCommand) -> anyhow::Result<()> {
    let mode = match cmd {
        AlertCommand::Add(_) | AlertCommand::Import { .. } => OpenMode::Create,
        _ => OpenMode::Existing,
    };
    let store = Store::open_with(&settings.database, mode).await?;
    let result = run_on(&store, &settings, cmd).await;
    store.close().await;
    result
}

async fn run_on(store: &Store, settings: &Settings, cmd: &AlertCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        AlertCommand::Add(args) => {
            let rule = Rule::from_spec(args.spec())
                .and_then(|r| r.check_new(settings.alerts.min_repeat).map(|()| r))
                .map_err(|e| UsageError(e.to_string()))?;
            add(store, settings, vec![rule]).await
        }
        AlertCommand::Import { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rules = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(n, l)| {
                    Rule::from_json(l)
                        .and_then(|r| r.check_new(settings.alerts.min_repeat).map(|()| r))
                        .map_err(|e| UsageError(format!("{}:{}: {e}", file.display(), n + 1)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            add(store, settings, rules).await
        }
        AlertCommand::Rm { name } => match store.delete_alert_rule(name).await {
            Err(e @ StorageError::NoSuchAlertRule(_)) => Err(UsageError(e.to_string()).into()),
            r => Ok(r?),
        },
        AlertCommand::List(f) => {
            let rows = store.alert_rules().await?;
            let items = rows.iter().filter_map(|r| {
                let spec: RuleSpec = serde_json::from_str(&r.spec).ok()?;
                let cells = vec![
                    spec.name.clone(),
                    spec.kind.clone(),
                    spec.pattern.clone(),
                    condition(&spec),
                    spec.severity.clone().unwrap_or_default(),
                    spec.repeat.clone().unwrap_or_default(),
                ];
                Some((cells, serde_json::to_value(&spec).ok()?))
            });
            let header = ["NAME", "KIND", "PATTERN", "CONDITION", "SEVERITY", "REPEAT"];
            print(&mut out, f.format, &header, items.collect())
        }
        AlertCommand::Status(f) => {
            let rows = store.alert_states().await?;
            let items = rows.iter().map(|r| {
                let cells = vec![
                    r.key.rule.clone(),
                    r.key.device.clone(),
                    r.key.sensor.clone().unwrap_or_default(),
                    r.state.clone(),
                    r.severity.clone().unwrap_or_default(),
                    r.since.to_rfc3339(),
                    r.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                ];
                (cells, serde_json::to_value(r).unwrap_or_default())
            });
            let header = [
                "RULE", "DEVICE", "SENSOR", "STATE", "SEVERITY", "SINCE", "VALUE",
            ];
            print(&mut out, f.format, &header, items.collect())
        }
        AlertCommand::Events { from, to, format } => {
            let now = Timestamp::now();
            let time = |s: &str, what: &str| {
                parse_time_arg(s, now).map_err(|e| UsageError(format!("--{what}: {e}")))
            };
            let to = to
                .as_deref()
                .map(|t| time(t, "to"))
                .transpose()?
                .unwrap_or(now);
            let from = match from {
                Some(f) => time(f, "from")?,
                None => to.saturating_sub(Duration::from_secs(24 * 3600)),
            };
            let events = store.alert_events(from, to, None, i64::MAX).await?;
            let items = events.iter().map(|e| {
                let cells = vec![
                    e.id.to_string(),
                    e.ts.to_rfc3339(),
                    e.rule.clone(),
                    e.device.clone(),
                    e.sensor.clone().unwrap_or_default(),
                    e.state.as_str().to_owned(),
                    e.severity.clone().unwrap_or_default(),
                    e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    e.since.to_rfc3339(),
                ];
                (cells, serde_json::to_value(e).unwrap_or_default())
            });
            let header = [
                "ID", "TS", "RULE", "DEVICE", "SENSOR", "STATE", "SEVERITY", "VALUE", "SINCE",
            ];
            print(&mut out, *format, &header, items.collect())
        }
        AlertCommand::Ack(a) => super::alert_ops::ack(store, settings, a).await,
        AlertCommand::Silence(a) => super::alert_ops::silence(store, settings, a).await,
        AlertCommand::Silences(f) => super::alert_ops::list(store, f).await,
        AlertCommand::Unsilence { id } => super::alert_ops::unsilence(store, *id).await,
    }
}

/// Adds `rules` in one transaction, within `alerts.max_rules`.
async fn add(store: &Store, settings: &Settings, rules: Vec<Rule>) -> anyhow::Result<()> {
    let max = settings.alerts.max_rules;
    if store.alert_rule_count().await? + rules.len() as i64 > max as i64 {
        return Err(UsageError(format!(
            "at most {max} alert rules (alerts.max_rules); remove some first"
        ))
        .into());
    }
    let rows: Vec<(String, String)> = rules
        .iter()
        .map(|r| (r.name.clone(), r.spec_json()))
        .collect();
    match store.add_alert_rules(&rows).await {
        Err(e @ StorageError::AlertRuleExists(_)) => Err(UsageError(e.to_string()).into()),
        r => Ok(r?),
    }
}

/// A rule's condition in a few words: `> -15 for 5m clear -17`, `no data for 10m`.
fn condition(s: &RuleSpec) -> String {
    let hold = s.hold.as_deref().unwrap_or("0");
    match s.kind.as_str() {
        "threshold" => {
            let mut c = format!(
                "{} {}",
                s.op.as_deref().unwrap_or(""),
                s.value.as_ref().map(Json::to_string).unwrap_or_default()
            );
            if hold != "0" {
                c.push_str(&format!(" for {hold}"));
            }
            if let Some(clear) = &s.clear {
                c.push_str(&format!(" clear {clear}"));
            }
            c
        }
        "no_data" => format!("no data for {hold}"),
        _ => format!("offline for {hold}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn when_splits_into_an_operator_and_a_typed_value() {
        assert_eq!(split_when("> -15"), (">".into(), json!(-15.0)));
        assert_eq!(split_when("==true"), ("==".into(), json!(true)));
        assert_eq!(
            split_when("!= \"idle run\""),
            ("!=".into(), json!("idle run"))
        );
        assert_eq!(split_when("== idle"), ("==".into(), json!("idle")));
        assert_eq!(split_when("=> 5").0, "=>");
    }
}

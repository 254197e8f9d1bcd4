//! InfluxQL statements answered from storage (docs/grafana.md): what
//! `/query` means, apart from its transport (`server::influxql`).
//!
//! - [`catalogue`]: the InfluxDB view of the series (measurements, fields, the `device` tag).
//! - [`condition`]: a `WHERE` split into a time range and a device test.
//! - [`show`]: the `SHOW` statements.
//! - [`select`]: `SELECT`, each series read through the one history planner
//!   ([`crate::storage::history::reads`]).
//! - [`rows`]: columns merged into rows, `fill()`, time formats (pure).
//!
//! Each statement answers alone: one that fails gets its error in its place and the
//! others still run. Every answer is bounded by [`QueryLimits`].
//!
//! May use: `domain`, `protocol`, `storage`.

pub mod catalogue;
pub mod condition;
pub mod rows;
pub mod select;
pub mod show;

use crate::domain::Timestamp;
use crate::protocol::influxql::Statement;
use crate::storage::history::HistoryError;
use crate::storage::{StorageError, Store};
use catalogue::Catalogue;
pub use rows::Epoch;
use serde::Serialize;
use std::collections::BTreeMap;

/// Caps of one statement's answer (`[http] max_query_series`, `max_query_points`,
/// `max_buckets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    pub max_series: usize,
    pub max_points: usize,
    pub max_buckets: usize,
}

/// What every statement of a query shares.
pub struct Context<'a> {
    pub store: &'a Store,
    pub now: Timestamp,
    /// How times are written: `None` for RFC 3339 strings.
    pub epoch: Option<Epoch>,
    pub limits: QueryLimits,
    /// The `db` parameter, accepted and listed by `SHOW DATABASES`.
    pub db: Option<String>,
}

/// One statement's answer, in InfluxDB's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementResult {
    pub statement_id: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    pub columns: Vec<String>,
    pub values: Vec<Vec<serde_json::Value>>,
}

/// Why a statement was not answered; the text goes into its result's `error`.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("invalid regex /{0}/: {1}")]
    Regex(String, String),
    #[error(
        "the answer would hold {n} series, at most {max} (http.max_query_series): narrow FROM or WHERE \"device\", or add SLIMIT"
    )]
    TooManySeries { n: usize, max: usize },
    #[error(
        "the answer would hold more than {max} values (http.max_query_points): shorten the time range, use a larger GROUP BY time(), or add LIMIT"
    )]
    TooManyPoints { max: usize },
    #[error("{0}")]
    History(HistoryError),
    #[error("storage is unavailable; retry later (the hub's log says why)")]
    Storage(StorageError),
}

impl From<HistoryError> for StatementError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Storage(e) => e.into(),
            e => StatementError::History(e),
        }
    }
}

impl From<StorageError> for StatementError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidQuery(d) => StatementError::Invalid(d),
            e => {
                tracing::warn!(error = %e, "storage error answering /query");
                StatementError::Storage(e)
            }
        }
    }
}

/// Answers each statement in order.
pub async fn answer(ctx: &Context<'_>, statements: &[Statement]) -> Vec<StatementResult> {
    let mut catalogue = None;
    let mut out = Vec::with_capacity(statements.len());
    for (statement_id, s) in statements.iter().enumerate() {
        let result = one(ctx, s, &mut catalogue).await;
        out.push(match result {
            Ok(series) => StatementResult {
                statement_id,
                series,
                error: None,
            },
            Err(e) => StatementResult {
                statement_id,
                series: Vec::new(),
                error: Some(e.to_string()),
            },
        });
    }
    out
}

async fn one(
    ctx: &Context<'_>,
    s: &Statement,
    catalogue: &mut Option<Catalogue>,
) -> Result<Vec<Series>, StatementError> {
    let c = match catalogue {
        Some(c) => c,
        None => catalogue.insert(Catalogue::new(ctx.store.catalogue().await?)),
    };
    match s {
        Statement::Select(sel) => select::run(ctx, c, sel).await,
        Statement::Unsupported(what) => Err(StatementError::Unsupported(format!(
            "{what} (the hub answers SHOW DATABASES, RETENTION POLICIES, MEASUREMENTS, TAG KEYS, TAG VALUES, FIELD KEYS and SELECT)"
        ))),
        s => show::run(ctx, c, s),
    }
}

//! Typed values read back (docs/protocol.md §8): what a stored 8-byte value means for its
//! series' type, and which aggregates a type has.
//!
//! Every reading is stored as one number in `readings` (and the rollups): a number as
//! itself, a boolean as 0 or 1, a string as the id of its text in `text_values`. Owns the
//! decoding of those numbers into [`Value`]s, the kind lookup of a series, the text
//! lookup, and [`Agg::check`] (the aggregates each type allows). Uses
//! [`crate::storage::db`] and [`crate::domain`].

use crate::domain::{Text, Value, ValueKind};
use crate::storage::db::{Db, Dialect};
use crate::storage::{Agg, StorageError};
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Type};
use std::collections::HashMap;

impl Agg {
    /// Whether `self` applies to a series of `kind`: every aggregate to numbers; all but
    /// `sum` to booleans (`avg` is the fraction true, false < true); `count`, `first` and
    /// `last` to strings. The error is the `invalid_query` detail.
    pub fn check(self, kind: ValueKind) -> Result<(), StorageError> {
        let ok = match kind {
            ValueKind::Number => true,
            ValueKind::Bool => self != Agg::Sum,
            ValueKind::Text => matches!(self, Agg::Count | Agg::First | Agg::Last),
        };
        if ok {
            return Ok(());
        }
        let allowed = match kind {
            ValueKind::Bool => "count, first, last, min, max or avg (the fraction true)",
            _ => "count, first or last",
        };
        Err(StorageError::InvalidQuery(format!(
            "agg: {} does not apply to a {kind} series; use {allowed}",
            self.name()
        )))
    }

    pub fn name(self) -> &'static str {
        match self {
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Sum => "sum",
            Agg::Count => "count",
            Agg::First => "first",
            Agg::Last => "last",
        }
    }

    /// The type of this aggregate's values on a series of `kind`.
    pub fn result_kind(self, kind: ValueKind) -> ValueKind {
        match self {
            Agg::Avg | Agg::Sum | Agg::Count => ValueKind::Number,
            _ => kind,
        }
    }
}

/// A stored number as a value of `kind`: booleans are 0/1, a string is the id of its
/// text, which `text_of` finds (the ids looked up in one query, or a text selected with
/// the row). A string id without text (cannot happen: texts are never deleted) reads as
/// its id.
pub fn decode(kind: ValueKind, v: f64, text_of: impl FnOnce(i64) -> Option<Text>) -> Value {
    match kind {
        ValueKind::Number => Value::Number(v),
        ValueKind::Bool => Value::Bool(v != 0.0),
        ValueKind::Text => match text_of(v as i64) {
            Some(t) => Value::Text(t),
            None => Value::Number(v),
        },
    }
}

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The value type of series `id` (numbers when it does not exist).
    pub async fn series_kind(&self, id: i64) -> Result<ValueKind, sqlx::Error> {
        let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM series WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(kind
            .and_then(|k| ValueKind::parse(&k))
            .unwrap_or(ValueKind::Number))
    }

    /// The texts of string ids stored as numbers.
    pub async fn texts(
        &self,
        ids: impl Iterator<Item = f64>,
    ) -> Result<HashMap<i64, Text>, sqlx::Error> {
        let mut ids: Vec<i64> = ids.map(|v| v as i64).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT id, text FROM text_values WHERE {}",
            DB::in_ids("id", 1)
        );
        let rows: Vec<(i64, String)> = DB::bind_ids(sqlx::query(AssertSqlSafe(sql)), &ids)
            .try_map(|row: DB::Row| {
                use sqlx::Row;
                Ok((row.try_get(0)?, row.try_get(1)?))
            })
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, t)| Some((id, Text::parse(&t).ok()?)))
            .collect())
    }
}

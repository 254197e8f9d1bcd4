//! PostgreSQL's statements of a writer transaction: [`CommitTx`] on a pooled
//! connection's transaction, one round trip per statement. The bulk statements are
//! PostgreSQL's [`Dialect`] ([`super::postgres`]).
//!
//! Owns the PostgreSQL [`CommitTx`]. Uses [`super::commit`] and [`super::postgres`].

use super::commit::{CommitTx, Param};
use super::db::Dialect;
use super::rollup::{Level, RollupRow};
use super::series::SeriesKey;
use super::{RowValues, StorageError};
use sqlx::{Postgres, Transaction};

impl CommitTx for Transaction<'_, Postgres> {
    async fn resolve_series(
        &mut self,
        key: &SeriesKey,
        unit: Option<&str>,
        kind: &str,
    ) -> Result<(i64, String, Option<i64>), StorageError> {
        Ok(Postgres::resolve_series(&mut **self, key, unit, kind).await?)
    }

    async fn update(
        &mut self,
        sql: &'static str,
        first: Param<'_>,
        second: i64,
    ) -> Result<(), StorageError> {
        let q = sqlx::query(sql);
        let q = match first {
            Param::Text(t) => q.bind(t),
            Param::Int(i) => q.bind(i),
        };
        q.bind(second).execute(&mut **self).await?;
        Ok(())
    }

    async fn text_id(&mut self, text: &str) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(super::commit::TEXT_ID)
            .bind(text)
            .fetch_one(&mut **self)
            .await?)
    }

    async fn insert_fresh(&mut self, rows: &[RowValues]) -> Result<u64, StorageError> {
        Ok(Postgres::insert_fresh(&mut **self, rows).await?)
    }

    async fn insert_maybe(
        &mut self,
        rows: &[(usize, RowValues)],
    ) -> Result<Vec<bool>, StorageError> {
        Ok(Postgres::insert_maybe(&mut **self, rows).await?)
    }

    async fn upsert_rollups(
        &mut self,
        level: Level,
        rows: &[RollupRow],
    ) -> Result<(), StorageError> {
        Ok(Postgres::upsert_rollups(&mut **self, level, rows).await?)
    }

    async fn touch_devices(&mut self, ids: &[i64], now_us: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE devices SET last_seen_us = $1 WHERE id = ANY($2)")
            .bind(now_us)
            .bind(ids)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

//! Loading readings into PostgreSQL with binary `COPY`, the bulk path `psql \copy` takes.
//!
//! Owns [`copy_fresh`] — readings that are new as far as this writer knows, `COPY`'d
//! straight into `readings` inside a savepoint, so that a reading another writer stored
//! first rolls back only the `COPY` — and [`BinaryRows`], an encoder of the binary `COPY`
//! format: an 11-byte signature, a flags word and an (empty) header extension; then per
//! row its field count and each field as a length and its value in network byte order;
//! then a trailer (a field count of −1). Only the types telehub bulk-loads are encoded
//! (`bigint`, `double precision`). Used by [`super::postgres`]'s dialect; uses
//! [`super::RowValues`].
//!
//! Why straight into `readings` and not a staging table then `INSERT … SELECT … ON
//! CONFLICT DO NOTHING`: `COPY` inserts a page of rows at a time (one WAL record per
//! page) and skips the speculative-insertion probe of the primary key that `ON CONFLICT`
//! costs for every row — most of PostgreSQL's work per reading before this module.

use super::RowValues;
use sqlx::postgres::PgConnection;

/// PostgreSQL's `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";

/// Stores `rows` with one `COPY`; `None` (and nothing stored) if one of them is already
/// stored, for the caller to insert them with `ON CONFLICT DO NOTHING` instead. Runs
/// inside the caller's transaction `tx`: the savepoint stays open to its end (releasing
/// it would cost a round trip and change nothing the transaction does).
pub async fn copy_fresh(tx: &mut PgConnection, rows: &[RowValues]) -> sqlx::Result<Option<u64>> {
    let mut data = BinaryRows::new(3, rows.len() * 38);
    for r in rows {
        data.row().int8(r.series).int8(r.ts).float8(r.value);
    }
    sqlx::raw_sql("SAVEPOINT copy_fresh")
        .execute(&mut *tx)
        .await?;
    let mut copy = tx
        .copy_in_raw("COPY readings (series_id, ts, value) FROM STDIN (FORMAT binary)")
        .await?;
    copy.send(data.finish()).await?;
    match copy.finish().await {
        Ok(n) => Ok(Some(n)),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT copy_fresh")
                .execute(&mut *tx)
                .await?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The fixed start of a binary `COPY` stream: signature, flags (no OIDs), no extension.
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows encoded in binary `COPY` format, ready for `PgCopyIn::send`.
pub struct BinaryRows {
    buf: Vec<u8>,
    fields: i16,
}

impl BinaryRows {
    /// An empty stream of rows of `fields` columns, with room for `bytes` of row data.
    pub fn new(fields: i16, bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER.len() + bytes + 2);
        buf.extend_from_slice(HEADER);
        Self { buf, fields }
    }

    /// Starts a row; its fields follow, in column order.
    pub fn row(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&self.fields.to_be_bytes());
        self
    }

    /// A `bigint` field.
    pub fn int8(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A `double precision` field.
    pub fn float8(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
        self
    }

    /// The whole stream, trailer included.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_its_field_count_then_length_prefixed_big_endian_values() {
        let mut rows = BinaryRows::new(2, 0);
        rows.row().int8(258).float8(-2.5);
        let bytes = rows.finish();
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]); // flags, header extension length
        want.extend([0, 2]); // two fields
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend([0, 0, 0, 8]);
        want.extend((-2.5f64).to_bits().to_be_bytes());
        want.extend([0xff, 0xff]); // trailer
        assert_eq!(bytes, want);
    }

    #[test]
    fn no_rows_is_a_header_and_a_trailer() {
        let bytes = BinaryRows::new(3, 0).finish();
        assert_eq!(bytes.len(), 19 + 2);
        assert_eq!(&bytes[19..], &[0xff, 0xff]);
    }
}

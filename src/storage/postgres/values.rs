//! Rows out of PostgreSQL: as models (through [`sql::Columns`]) or as the app's
//! rows, and the app's parameters in.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{Column, Row, TypeInfo};

use super::map_err;
use crate::storage::sql;
use crate::storage::{SqlRow, SqlValue, StoreError};

impl sql::Columns for PgRow {
    type Error = sqlx::Error;
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(i)
    }
    fn flag(&self, i: usize) -> Result<bool, sqlx::Error> {
        Ok(self.try_get::<Option<bool>, _>(i)?.unwrap_or(false))
    }
    fn int32(&self, i: usize) -> Result<i64, sqlx::Error> {
        Ok(self.try_get::<Option<i32>, _>(i)?.map_or(0, i64::from))
    }
    fn time(&self, i: usize) -> Result<i64, sqlx::Error> {
        Ok(self.try_get::<Option<DateTime<Utc>>, _>(i)?.map_or(0, |t| t.timestamp_millis()))
    }
}

/// App SQL's rows: column name and value, in select order.
pub(super) fn sql_rows(rows: &[PgRow]) -> Result<Vec<SqlRow>, StoreError> {
    rows.iter()
        .map(|row| {
            (0..row.columns().len())
                .map(|i| Ok((row.columns()[i].name().to_owned(), decode(row, i)?)))
                .collect::<Result<SqlRow, sqlx::Error>>()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)
}

pub(super) fn sql_err(e: sqlx::Error) -> StoreError {
    match map_err(e) {
        StoreError::Backend(msg) => StoreError::Sql(msg),
        other => other,
    }
}

pub(super) fn bind_all<'q>(
    mut q: Query<'q, Postgres, PgArguments>,
    params: &'q [SqlValue],
) -> Query<'q, Postgres, PgArguments> {
    for p in params {
        q = match p {
            SqlValue::Null => q.bind(None::<String>),
            SqlValue::Bool(b) => q.bind(*b),
            SqlValue::Int(n) => q.bind(*n),
            SqlValue::Float(f) => q.bind(*f),
            SqlValue::Text(t) => q.bind(t.as_str()),
            SqlValue::Bytes(b) => q.bind(b.as_slice()),
        };
    }
    q
}

/// Decodes a column of any common type; others must be cast to text in the query.
pub(super) fn decode(row: &PgRow, idx: usize) -> Result<SqlValue, sqlx::Error> {
    let kind = row.columns()[idx].type_info().name().to_owned();
    let v = match kind.as_str() {
        "BOOL" => row.try_get::<Option<bool>, _>(idx)?.map(SqlValue::Bool),
        "INT2" => row.try_get::<Option<i16>, _>(idx)?.map(|n| SqlValue::Int(n.into())),
        "INT4" => row.try_get::<Option<i32>, _>(idx)?.map(|n| SqlValue::Int(n.into())),
        "INT8" => row.try_get::<Option<i64>, _>(idx)?.map(SqlValue::Int),
        "FLOAT4" => row.try_get::<Option<f32>, _>(idx)?.map(|f| SqlValue::Float(f.into())),
        "FLOAT8" => row.try_get::<Option<f64>, _>(idx)?.map(SqlValue::Float),
        "TIMESTAMPTZ" => row
            .try_get::<Option<DateTime<Utc>>, _>(idx)?
            .map(|t| SqlValue::Text(crate::time::iso(t.timestamp_millis()))),
        "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(idx)?.map(SqlValue::Bytes),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => row.try_get::<Option<String>, _>(idx)?.map(SqlValue::Text),
        other => {
            return Err(sqlx::Error::Decode(
                format!("column {:?} has type {other}; cast it to text in the query", row.columns()[idx].name()).into(),
            ))
        }
    };
    Ok(v.unwrap_or(SqlValue::Null))
}

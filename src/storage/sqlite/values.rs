//! Values in and out of SQLite: parameters, dates as ISO text, rows as models
//! (through [`sql::Columns`]) or as the app's rows.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, Row};

use super::map_err;
use crate::storage::sql::{self, Param};
use crate::storage::{SqlRow, SqlValue, StoreError};
use crate::time::{iso, parse_iso};

pub(super) fn sql_err(e: rusqlite::Error) -> StoreError {
    match map_err(e) {
        StoreError::Backend(msg) => StoreError::Sql(msg),
        other => other,
    }
}

pub(super) fn fetch_all(conn: &Connection, sql: &str, params: &[SqlValue]) -> rusqlite::Result<Vec<SqlRow>> {
    let mut st = conn.prepare_cached(sql)?;
    let names: Vec<String> = st.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cols = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let v = match row.get_ref(i)? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(n) => SqlValue::Int(n),
                ValueRef::Real(f) => SqlValue::Float(f),
                ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => SqlValue::Bytes(b.to_vec()),
            };
            cols.push((name.clone(), v));
        }
        out.push(cols);
    }
    Ok(out)
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(Value::Null),
            SqlValue::Bool(b) => ToSqlOutput::Owned(Value::Integer(*b as i64)),
            SqlValue::Int(n) => ToSqlOutput::Owned(Value::Integer(*n)),
            SqlValue::Float(f) => ToSqlOutput::Owned(Value::Real(*f)),
            SqlValue::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            SqlValue::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Dates are ISO text (Better Auth's SQLite format); epoch numbers are tolerated.
pub(super) fn date_at(row: &Row, idx: usize) -> rusqlite::Result<i64> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Text(t) => parse_iso(std::str::from_utf8(t).unwrap_or("")).unwrap_or(0),
        ValueRef::Integer(n) if n < 100_000_000_000 => n * 1000,
        ValueRef::Integer(n) => n,
        ValueRef::Real(f) => f as i64,
        _ => 0,
    })
}

pub(super) fn bool_at(row: &Row, idx: usize) -> rusqlite::Result<bool> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Integer(n) => n != 0,
        ValueRef::Text(t) => t == b"true" || t == b"1",
        _ => false,
    })
}

impl sql::Columns for Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn flag(&self, i: usize) -> rusqlite::Result<bool> {
        bool_at(self, i)
    }
    fn int32(&self, i: usize) -> rusqlite::Result<i64> {
        Ok(self.get::<_, Option<i64>>(i)?.unwrap_or(0))
    }
    fn time(&self, i: usize) -> rusqlite::Result<i64> {
        date_at(self, i)
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Param::OptText(Some(t)) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Param::OptText(None) => ToSqlOutput::Owned(Value::Null),
            Param::Bool(b) => ToSqlOutput::Owned(Value::Integer(b as i64)),
            Param::Int32(n) | Param::Int64(n) => ToSqlOutput::Owned(Value::Integer(n)),
            Param::Time(ms) => ToSqlOutput::Owned(Value::Text(iso(ms))),
            Param::OptBool(b) => ToSqlOutput::Owned(b.map_or(Value::Null, |b| Value::Integer(b as i64))),
        })
    }
}

//! SQL poll: reads new and changed rows from a PostgreSQL or MySQL/MariaDB table, or from a SELECT, with an
//! incremental cursor.
//!
//! ## How it reads
//!
//! Rows are read in the order of `(cursor_column, id_column)`, `batch_size` at a time:
//!
//! ```sql
//! SELECT * FROM <table>
//! WHERE (<cursor_column>, <id_column>) > ($1, $2)
//! ORDER BY <cursor_column>, <id_column> LIMIT <batch_size>
//! ```
//!
//! The cursor is compound so that rows sharing one `updated_at` are neither lost nor read twice when a batch
//! ends in the middle of them. For an auto-increment id, `cursor_column` and `id_column` are the same column
//! and the condition is simply `id > $1`. A row that is updated later — its `updated_at` moves forward — is read
//! again, which is how changes reach the hub.
//!
//! After the sink acknowledged a batch, the last row's position is checkpointed as
//! `{"cursor": <cursor value>, "id": <id value>}`; a restart resumes right after it (at-least-once: a batch
//! that was read but not acknowledged is read again).
//!
//! ## Safety of the SQL
//!
//! Table and column names are checked against `^[A-Za-z_][A-Za-z0-9_.]*$` and quoted (`"name"` in PostgreSQL,
//! `` `name` `` in MySQL), so they are matched exactly as written. Cursor values are always bind parameters and
//! never part of the SQL text. A configured `query` is trusted operator configuration; the hub only replaces its
//! `{cursor}` placeholder with its own condition built from the validated names and bind parameters.
//!
//! ## Known limits
//!
//! - Rows whose cursor or id column is NULL are never read.
//! - A timestamp cursor misses a row that commits later than a row with a newer timestamp already read (a long
//!   transaction); an auto-increment id has the same problem with concurrent inserts. Read from a replica
//!   or a view that lags a little if the source has long transactions.
//! - Deleted rows are not noticed.

mod values;
use values::*;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat, Postgres,
};
use sqlx::query::Query;
use sqlx::types::{BigDecimal, Uuid};
use sqlx::{
    Column, Connection, Database, Encode, Executor, Row, Statement, Type, TypeInfo, ValueRef,
};
use tracing::{debug, info};

use super::poll::{deserialize_duration, scrub, sleep_or_shutdown};
use crate::sdk::{RawInput, Source, SourceContext, SourceError};
use unsilo_schemas::redact::redact_url;

/// Configuration of a SQL poll source.
///
/// ```toml
/// url = "postgres://reader@10.0.0.5:5432/minzheng"
/// table = "dibao_roster"
/// cursor_column = "updated_at"
/// id_column = "id"
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlPollConfig {
    /// The database: `postgres://user:password@host:5432/db` or `mysql://user:password@host:3306/db` (also for
    /// MariaDB). The password never appears in logs or errors.
    pub url: String,
    /// The table to read, as `name` or `schema.name`, matched exactly as written. Give either `table` or
    /// `query`.
    #[serde(default)]
    pub table: Option<String>,
    /// A SELECT to read instead of a whole table, with a `{cursor}` placeholder where the hub puts its cursor
    /// condition, e.g. `SELECT i.*, d.name AS district FROM incident i JOIN district d ON d.code = i.district
    /// WHERE i.deleted = 0 AND {cursor}`. The hub appends `ORDER BY` and `LIMIT`, so the query has neither.
    /// Give either `table` or `query`.
    #[serde(default)]
    pub query: Option<String>,
    /// A column that only grows: an auto-increment id, or an `updated_at` timestamp that the source sets on
    /// every insert and update. In a `query`, it may be qualified (`i.updated_at`); the result must have a
    /// column with its last part as name. Integer, decimal, text, date, timestamp and UUID columns work.
    pub cursor_column: String,
    /// The column that identifies a row (the primary key), used to order rows sharing one cursor value and in
    /// each row's origin. The same as `cursor_column` for an auto-increment id. Prefer a surrogate key to an
    /// ID-card number: it shows up in operator messages.
    pub id_column: String,
    /// How many rows one query reads at most (one batch to the sink).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// How long to wait before asking again once all rows have been read, e.g. `"5s"`, `"1m"`.
    #[serde(
        default = "default_poll_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub poll_interval: Duration,
    /// The longest a connection attempt or one query may take before the poll fails (and is retried).
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// Where to start when there is no checkpoint yet: the first cursor value to read (inclusive), e.g. `1000`
    /// or `"2024-01-01 00:00:00"` (a `timestamptz` column needs an offset: `"2024-01-01 00:00:00+08:00"`).
    /// Without it, the whole table is read.
    #[serde(default)]
    pub start: Option<CursorStart>,
}

/// A configured start value for the cursor.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum CursorStart {
    /// An integer, for an id cursor.
    Integer(i64),
    /// Text: a timestamp, a date, a decimal or a text key.
    Text(String),
}

fn default_batch_size() -> u32 {
    500
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl fmt::Debug for SqlPollConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlPollConfig")
            .field("url", &redact_url(&self.url))
            .field("table", &self.table)
            .field("query", &self.query)
            .field("cursor_column", &self.cursor_column)
            .field("id_column", &self.id_column)
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
            .field("start", &self.start)
            .finish()
    }
}

/// A SQL poll configuration that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqlPollConfigError {
    /// The URL is not a PostgreSQL or MySQL URL.
    #[error("url {url}: {reason}")]
    BadUrl {
        /// The URL, masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// Neither or both of `table` and `query` are set.
    #[error("give exactly one of `table` and `query`")]
    TableOrQuery,
    /// A table or column name is not a plain identifier.
    #[error("{field} {value:?} is not a plain name (letters, digits, `_` and `.` between parts)")]
    BadIdentifier {
        /// The config field.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// The query is not usable.
    #[error("query: {0}")]
    BadQuery(String),
    /// `batch_size` is 0.
    #[error("batch_size must be at least 1")]
    ZeroBatchSize,
}

impl From<SqlPollConfigError> for SourceError {
    fn from(e: SqlPollConfigError) -> Self {
        SourceError::fatal(format!("SQL poll configuration: {e}"))
    }
}

impl SqlPollConfig {
    /// Checks the configuration and builds the source. Does not connect: the first connection happens in
    /// [`Source::run`], so a database that is down is a transient error there.
    pub fn build(&self) -> Result<SqlPollSource, SqlPollConfigError> {
        let masked_url = redact_url(&self.url);
        let bad_url = |reason: String| SqlPollConfigError::BadUrl {
            url: masked_url.clone(),
            reason,
        };
        let scheme = self.url.split_once("://").map(|(s, _)| s).unwrap_or("");
        let options = match scheme {
            "postgres" | "postgresql" => PgConnectOptions::from_str(&self.url)
                .map(ConnectOptions::Postgres)
                .map_err(|e| bad_url(scrub(e.to_string(), &self.secrets())))?,
            "mysql" | "mariadb" => MySqlConnectOptions::from_str(&self.url)
                .map(ConnectOptions::MySql)
                .map_err(|e| bad_url(scrub(e.to_string(), &self.secrets())))?,
            _ => {
                return Err(bad_url(
                    "must start with postgres:// or mysql://".to_owned(),
                ))
            }
        };
        let dialect = match options {
            ConnectOptions::Postgres(_) => Dialect::Postgres,
            ConnectOptions::MySql(_) => Dialect::MySql,
        };
        if self.batch_size == 0 {
            return Err(SqlPollConfigError::ZeroBatchSize);
        }
        let target = match (&self.table, &self.query) {
            (Some(table), None) => {
                check_identifier("table", table)?;
                Target::Table(table.clone())
            }
            (None, Some(query)) => parse_query(query)?,
            _ => return Err(SqlPollConfigError::TableOrQuery),
        };
        check_identifier("cursor_column", &self.cursor_column)?;
        check_identifier("id_column", &self.id_column)?;
        let sql = SqlText {
            dialect,
            target,
            cursor_column: self.cursor_column.clone(),
            id_column: self.id_column.clone(),
            batch_size: self.batch_size,
        };
        Ok(SqlPollSource {
            options,
            sql,
            batch_size: self.batch_size as usize,
            poll_interval: self.poll_interval,
            timeout: self.timeout,
            start: self.start.clone(),
            masked_url,
            secrets: self.secrets().into_iter().map(str::to_owned).collect(),
        })
    }

    fn secrets(&self) -> Vec<&str> {
        // The password, wherever it is in the URL: after `user:` or as a `password=` parameter.
        let mut secrets = Vec::new();
        if let Ok(url) = reqwest::Url::parse(&self.url) {
            if let Some(p) = url.password() {
                if let Some(start) = self.url.find(&format!(":{p}@")) {
                    secrets.push(&self.url[start + 1..start + 1 + p.len()]);
                }
            }
        }
        if let Some(i) = self.url.find("password=") {
            let rest = &self.url[i + "password=".len()..];
            secrets.push(rest.split('&').next().unwrap_or(rest));
        }
        secrets
    }
}

fn check_identifier(field: &'static str, value: &str) -> Result<(), SqlPollConfigError> {
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    // Also no empty part (`a..b`, `a.`), so quoting each part gives valid SQL.
    if first_ok && rest_ok && value.split('.').all(|part| !part.is_empty()) {
        Ok(())
    } else {
        Err(SqlPollConfigError::BadIdentifier {
            field,
            value: value.to_owned(),
        })
    }
}

fn parse_query(query: &str) -> Result<Target, SqlPollConfigError> {
    let trimmed = query.trim();
    let trimmed = trimmed.strip_suffix(';').unwrap_or(trimmed).trim_end();
    let head: String = trimmed
        .chars()
        .take(6)
        .collect::<String>()
        .to_ascii_lowercase();
    if !(head.starts_with("select") || head.starts_with("with")) {
        return Err(SqlPollConfigError::BadQuery(
            "must be a SELECT (or WITH … SELECT)".to_owned(),
        ));
    }
    let mut parts = trimmed.split("{cursor}");
    match (parts.next(), parts.next(), parts.next()) {
        (Some(before), Some(after), None) => Ok(Target::Query {
            before: before.to_owned(),
            after: after.to_owned(),
        }),
        _ => Err(SqlPollConfigError::BadQuery(
            "must contain the placeholder {cursor} exactly once, where the hub puts its cursor condition"
                .to_owned(),
        )),
    }
}

/// A running SQL poll source (see the [module docs](self)).
pub struct SqlPollSource {
    options: ConnectOptions,
    sql: SqlText,
    batch_size: usize,
    poll_interval: Duration,
    timeout: Duration,
    start: Option<CursorStart>,
    masked_url: String,
    secrets: Vec<String>,
}

impl fmt::Debug for SqlPollSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlPollSource")
            .field("url", &self.masked_url)
            .field("subject", &self.sql.subject())
            .finish_non_exhaustive()
    }
}

enum ConnectOptions {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
}

enum DbConnection {
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

// ---------------------------------------------------------------------------------------------------------------
// SQL text
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    /// Quotes a validated identifier, part by part.
    fn quote(self, ident: &str) -> String {
        let q = match self {
            Dialect::Postgres => '"',
            Dialect::MySql => '`',
        };
        ident
            .split('.')
            .map(|part| format!("{q}{part}{q}"))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql => "?".to_owned(),
        }
    }
}

#[derive(Clone, Debug)]
enum Target {
    Table(String),
    /// A configured query, split at its `{cursor}` placeholder.
    Query {
        before: String,
        after: String,
    },
}

/// Which cursor condition a query carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Condition {
    /// Everything (no checkpoint, no start).
    All,
    /// `cursor >= start` (a configured start, no checkpoint yet).
    AtLeast,
    /// After the checkpointed `(cursor, id)`.
    After,
}

#[derive(Clone, Debug)]
struct SqlText {
    dialect: Dialect,
    target: Target,
    cursor_column: String,
    id_column: String,
    batch_size: u32,
}

impl SqlText {
    fn compound(&self) -> bool {
        self.cursor_column != self.id_column
    }

    /// What is read, for messages and origins: the table, or `query`.
    fn subject(&self) -> String {
        match &self.target {
            Target::Table(t) => format!("table `{t}`"),
            Target::Query { .. } => "query".to_owned(),
        }
    }

    fn origin_name(&self) -> &str {
        match &self.target {
            Target::Table(t) => t,
            Target::Query { .. } => "query",
        }
    }

    fn select(&self, condition: Condition) -> String {
        let d = self.dialect;
        let c = d.quote(&self.cursor_column);
        let id = d.quote(&self.id_column);
        let predicate = match (condition, self.compound()) {
            (Condition::All, true) => format!("{c} IS NOT NULL AND {id} IS NOT NULL"),
            (Condition::All, false) => format!("{c} IS NOT NULL"),
            (Condition::AtLeast, true) => format!("{c} >= {} AND {id} IS NOT NULL", d.param(1)),
            (Condition::AtLeast, false) => format!("{c} >= {}", d.param(1)),
            (Condition::After, true) => format!("({c}, {id}) > ({}, {})", d.param(1), d.param(2)),
            (Condition::After, false) => format!("{c} > {}", d.param(1)),
        };
        let order = if self.compound() {
            format!("{c}, {id}")
        } else {
            c.clone()
        };
        let limit = self.batch_size;
        match &self.target {
            Target::Table(table) => format!(
                "SELECT * FROM {} WHERE {predicate} ORDER BY {order} LIMIT {limit}",
                d.quote(table)
            ),
            Target::Query { before, after } => {
                format!("{before}({predicate}){after} ORDER BY {order} LIMIT {limit}")
            }
        }
    }
}

/// The name a (possibly qualified) column has in the result: its last part.
fn result_name(column: &str) -> &str {
    column.rsplit('.').next().unwrap_or(column)
}

// ---------------------------------------------------------------------------------------------------------------
// Cursor values
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CursorKind {
    Int,
    Decimal,
    Text,
    Date,
    Timestamp,
    TimestampTz,
    Uuid,
}

/// A cursor or id value, typed so it binds as the column's own type.
#[derive(Clone, Debug, PartialEq)]
enum CursorValue {
    Int(i64),
    Decimal(BigDecimal),
    Text(String),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Uuid(Uuid),
}

impl CursorValue {
    /// Reads a value as it appears in a row's JSON, a checkpoint or a configured start.
    fn from_json(kind: CursorKind, value: &Value) -> Result<CursorValue, String> {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(format!("{other} is not a cursor value")),
        };
        let t = text.trim();
        let parsed = match kind {
            CursorKind::Int => t.parse().ok().map(CursorValue::Int),
            CursorKind::Decimal => BigDecimal::from_str(t).ok().map(CursorValue::Decimal),
            CursorKind::Text => Some(CursorValue::Text(text.clone())),
            CursorKind::Date => NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .map(CursorValue::Date),
            CursorKind::Timestamp => parse_naive_timestamp(t).map(CursorValue::Timestamp),
            CursorKind::TimestampTz => DateTime::parse_from_str(t, TIMESTAMPTZ_FORMAT)
                .or_else(|_| DateTime::parse_from_rfc3339(t))
                .ok()
                .map(|v| CursorValue::TimestampTz(v.with_timezone(&Utc))),
            CursorKind::Uuid => Uuid::parse_str(t).ok().map(CursorValue::Uuid),
        };
        parsed.ok_or_else(|| {
            let expected = match kind {
                CursorKind::Int => "an integer",
                CursorKind::Decimal => "a decimal number",
                CursorKind::Text => "text",
                CursorKind::Date => "a date like 2024-05-01",
                CursorKind::Timestamp => "a timestamp like 2024-05-01 08:00:00",
                CursorKind::TimestampTz => {
                    "a timestamp with an offset like 2024-05-01 08:00:00+08:00"
                }
                CursorKind::Uuid => "a UUID",
            };
            format!("{value} is not {expected}")
        })
    }

    fn to_json(&self) -> Value {
        match self {
            CursorValue::Int(v) => Value::from(*v),
            CursorValue::Decimal(v) => Value::String(v.to_plain_string()),
            CursorValue::Text(v) => Value::String(v.clone()),
            CursorValue::Date(v) => Value::String(v.format("%Y-%m-%d").to_string()),
            CursorValue::Timestamp(v) => timestamp(*v),
            CursorValue::TimestampTz(v) => timestamptz(*v),
            CursorValue::Uuid(v) => Value::String(v.to_string()),
        }
    }
}

fn parse_naive_timestamp(t: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(t, TIMESTAMP_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Binds the cursor values of `position` to the query's placeholders, in order: none from the beginning, the
/// start value, or the last cursor (and, for a compound cursor, the last id).
fn bind_position<'q, DB>(
    mut query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    position: &Position,
    compound: bool,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    BigDecimal: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    NaiveDate: Encode<'q, DB> + Type<DB>,
    NaiveDateTime: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Uuid: Encode<'q, DB> + Type<DB>,
{
    let values: Vec<&CursorValue> = match position {
        Position::Beginning => Vec::new(),
        Position::AtLeast(start) => vec![start],
        Position::After { cursor, id } if compound => vec![cursor, id],
        Position::After { cursor, .. } => vec![cursor],
    };
    for value in values {
        query = match value {
            CursorValue::Int(v) => query.bind(*v),
            CursorValue::Decimal(v) => query.bind(v.clone()),
            CursorValue::Text(v) => query.bind(v.clone()),
            CursorValue::Date(v) => query.bind(*v),
            CursorValue::Timestamp(v) => query.bind(*v),
            CursorValue::TimestampTz(v) => query.bind(*v),
            CursorValue::Uuid(v) => query.bind(*v),
        };
    }
    query
}

/// Where reading continues.
#[derive(Clone, Debug, PartialEq)]
enum Position {
    Beginning,
    AtLeast(CursorValue),
    After {
        cursor: CursorValue,
        id: CursorValue,
    },
}

impl Position {
    fn condition(&self) -> Condition {
        match self {
            Position::Beginning => Condition::All,
            Position::AtLeast(_) => Condition::AtLeast,
            Position::After { .. } => Condition::After,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Plan: what the result looks like
// ---------------------------------------------------------------------------------------------------------------

struct Plan {
    columns: Vec<(String, ValueKind)>,
    cursor_index: usize,
    cursor_kind: CursorKind,
    id_index: usize,
    id_kind: CursorKind,
}

/// One row, decoded.
struct PolledRow {
    input: RawInput,
    cursor: CursorValue,
    id: CursorValue,
}

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/// SQLSTATE classes that a retry cannot fix: syntax or access rule (undefined table or column, no privilege),
/// authorisation, unknown database or schema, unsupported feature, data exception (a bad start value).
const FATAL_SQLSTATE_CLASSES: [&str; 6] = ["42", "28", "3D", "3F", "0A", "22"];

impl SqlPollSource {
    fn error(&self, context: &str, e: sqlx::Error) -> SourceError {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let (fatal, message) = match &e {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let fatal = FATAL_SQLSTATE_CLASSES.iter().any(|c| code.starts_with(c));
                (
                    fatal,
                    format!("{context}: {} (SQLSTATE {code})", db.message()),
                )
            }
            sqlx::Error::Configuration(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_) => (true, format!("{context}: {e}")),
            _ => (false, format!("{context}: {e}")),
        };
        let message = scrub(message, &secrets);
        if fatal {
            SourceError::fatal(message)
        } else {
            SourceError::transient(message)
        }
    }

    async fn timed<T>(
        &self,
        context: &str,
        work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(context, e)),
            Err(_) => Err(SourceError::transient(format!(
                "{context}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    async fn connect(&self) -> Result<DbConnection, SourceError> {
        let context = format!("could not connect to {}", self.masked_url);
        match &self.options {
            ConnectOptions::Postgres(o) => self
                .timed(&context, PgConnection::connect_with(o))
                .await
                .map(DbConnection::Postgres),
            ConnectOptions::MySql(o) => self
                .timed(&context, MySqlConnection::connect_with(o))
                .await
                .map(DbConnection::MySql),
        }
    }

    /// Prepares the query to learn the result's columns; fails if the table or a column does not exist.
    async fn plan(&self, conn: &mut DbConnection) -> Result<Plan, SourceError> {
        let sql = self.sql.select(Condition::After);
        let context = format!("SQL poll of {}", self.sql.subject());
        let columns: Vec<(String, Result<ValueKind, String>)> = match conn {
            DbConnection::Postgres(c) => {
                let statement = self.timed(&context, c.prepare(&sql)).await?;
                statement
                    .columns()
                    .iter()
                    .map(|col| {
                        let ty = col.type_info();
                        let kind = ValueKind::for_postgres(ty).ok_or_else(|| ty.name().to_owned());
                        (col.name().to_owned(), kind)
                    })
                    .collect()
            }
            DbConnection::MySql(c) => {
                let statement = self.timed(&context, c.prepare(&sql)).await?;
                statement
                    .columns()
                    .iter()
                    .map(|col| {
                        let name = col.type_info().name();
                        let kind = ValueKind::for_mysql(name).ok_or_else(|| name.to_owned());
                        (col.name().to_owned(), kind)
                    })
                    .collect()
            }
        };
        let mut plan_columns = Vec::with_capacity(columns.len());
        for (name, kind) in columns {
            let kind = kind.map_err(|type_name| {
                SourceError::fatal(format!(
                    "{context}: column `{name}` has type {type_name}, which the SQL poll does not read; \
                     select it converted in `query` (e.g. `{name}::text` or `CAST({name} AS CHAR)`), or leave it out"
                ))
            })?;
            if plan_columns.iter().any(|(n, _)| n == &name) {
                return Err(SourceError::fatal(format!(
                    "{context}: the result has two columns named `{name}`; give one an alias in `query`"
                )));
            }
            plan_columns.push((name, kind));
        }
        let find = |column: &str| -> Result<(usize, CursorKind), SourceError> {
            let wanted = result_name(column);
            let index = plan_columns
                .iter()
                .position(|(n, _)| n == wanted)
                .or_else(|| {
                    plan_columns
                        .iter()
                        .position(|(n, _)| n.eq_ignore_ascii_case(wanted))
                })
                .ok_or_else(|| {
                    SourceError::fatal(format!("{context}: the result has no column `{wanted}`"))
                })?;
            let kind = plan_columns[index].1;
            let cursor_kind = kind.cursor_kind().ok_or_else(|| {
                SourceError::fatal(format!(
                    "{context}: column `{wanted}` ({kind:?}) cannot order rows; use an integer, decimal, text, \
                     date, timestamp or UUID column"
                ))
            })?;
            Ok((index, cursor_kind))
        };
        let (cursor_index, cursor_kind) = find(&self.sql.cursor_column)?;
        let (id_index, id_kind) = find(&self.sql.id_column)?;
        Ok(Plan {
            columns: plan_columns,
            cursor_index,
            cursor_kind,
            id_index,
            id_kind,
        })
    }

    /// Where to begin: the checkpoint, else the configured start, else the beginning.
    fn initial_position(
        &self,
        plan: &Plan,
        checkpoint: Option<Value>,
    ) -> Result<Position, SourceError> {
        if let Some(checkpoint) = checkpoint {
            let bad = |why: String| {
                SourceError::fatal(format!(
                    "SQL poll of {}: the checkpoint {checkpoint} does not fit: {why}",
                    self.sql.subject()
                ))
            };
            let cursor = checkpoint
                .get("cursor")
                .ok_or_else(|| bad("no `cursor`".to_owned()))?;
            let cursor = CursorValue::from_json(plan.cursor_kind, cursor).map_err(&bad)?;
            let id = match checkpoint.get("id") {
                Some(id) if self.sql.compound() => {
                    CursorValue::from_json(plan.id_kind, id).map_err(&bad)?
                }
                _ if self.sql.compound() => return Err(bad("no `id`".to_owned())),
                _ => cursor.clone(),
            };
            return Ok(Position::After { cursor, id });
        }
        match &self.start {
            None => Ok(Position::Beginning),
            Some(start) => {
                let value = match start {
                    CursorStart::Integer(i) => Value::from(*i),
                    CursorStart::Text(t) => Value::String(t.clone()),
                };
                CursorValue::from_json(plan.cursor_kind, &value)
                    .map(Position::AtLeast)
                    .map_err(|why| {
                        SourceError::fatal(format!(
                            "SQL poll configuration: start for column `{}`: {why}",
                            self.sql.cursor_column
                        ))
                    })
            }
        }
    }

    async fn fetch(
        &self,
        conn: &mut DbConnection,
        plan: &Plan,
        position: &Position,
    ) -> Result<Vec<PolledRow>, SourceError> {
        let sql = self.sql.select(position.condition());
        let context = format!("SQL poll of {}", self.sql.subject());
        let compound = self.sql.compound();
        match conn {
            DbConnection::Postgres(c) => {
                let query = bind_position(sqlx::query::<Postgres>(&sql), position, compound);
                let rows = self.timed(&context, query.fetch_all(&mut *c)).await?;
                rows.iter()
                    .map(|row| self.convert(plan, |i, kind| pg_value(row, i, kind)))
                    .collect()
            }
            DbConnection::MySql(c) => {
                let query = bind_position(sqlx::query::<MySql>(&sql), position, compound);
                let rows = self.timed(&context, query.fetch_all(&mut *c)).await?;
                rows.iter()
                    .map(|row| self.convert(plan, |i, kind| mysql_value(row, i, kind)))
                    .collect()
            }
        }
    }

    /// Turns one row into raw input. A value that does not decode makes the row a reject (with the reason);
    /// a cursor or id that does not decode stops the poll, since reading cannot go past it.
    fn convert(
        &self,
        plan: &Plan,
        value: impl Fn(usize, ValueKind) -> Result<Value, sqlx::Error>,
    ) -> Result<PolledRow, SourceError> {
        let mut object = Map::with_capacity(plan.columns.len());
        let mut problems = Vec::new();
        for (i, (name, kind)) in plan.columns.iter().enumerate() {
            let v = value(i, *kind).unwrap_or_else(|e| {
                problems.push(format!("column `{name}` could not be read: {e}"));
                Value::Null
            });
            object.insert(name.clone(), v);
        }
        let id_json = object
            .get(&plan.columns[plan.id_index].0)
            .cloned()
            .unwrap_or(Value::Null);
        let id_text = match &id_json {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let origin = format!(
            "{} {}={}",
            self.sql.origin_name(),
            result_name(&self.sql.id_column),
            id_text
        );
        let position_of = |index: usize, kind: CursorKind| {
            let name = &plan.columns[index].0;
            object
                .get(name)
                .ok_or_else(|| format!("no column `{name}`"))
                .and_then(|v| CursorValue::from_json(kind, v))
                .map_err(|why| {
                    SourceError::fatal(format!(
                        "SQL poll of {}: {origin}: column `{name}` cannot be used as cursor: {why}",
                        self.sql.subject()
                    ))
                })
        };
        let cursor = position_of(plan.cursor_index, plan.cursor_kind)?;
        let id = position_of(plan.id_index, plan.id_kind)?;
        let value = Value::Object(object);
        // Serialising a Value cannot fail (its keys are strings).
        let original = serde_json::to_vec(&value).unwrap_or_default();
        let input = if problems.is_empty() {
            RawInput::decoded(original, value, origin)
        } else {
            RawInput {
                original,
                parsed: Err(problems.join("; ")),
                origin,
            }
        };
        Ok(PolledRow { input, cursor, id })
    }
}

#[async_trait]
impl Source for SqlPollSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), SourceError> {
        let mut shutdown = ctx.shutdown.clone();
        let checkpoint = ctx.checkpoints.load().await?;
        let mut conn = tokio::select! {
            conn = self.connect() => conn?,
            () = shutdown.wait() => return Ok(()),
        };
        let plan = self.plan(&mut conn).await?;
        let mut position = self.initial_position(&plan, checkpoint)?;
        info!(
            connector = %ctx.connector,
            url = %self.masked_url,
            subject = %self.sql.subject(),
            resuming = matches!(position, Position::After { .. }),
            "SQL poll started."
        );
        loop {
            if shutdown.is_requested() {
                return Ok(());
            }
            let rows = tokio::select! {
                rows = self.fetch(&mut conn, &plan, &position) => rows?,
                () = shutdown.wait() => return Ok(()),
            };
            let count = rows.len();
            if count == 0 {
                debug!(connector = %ctx.connector, "No new rows.");
                if sleep_or_shutdown(&mut shutdown, self.poll_interval).await {
                    return Ok(());
                }
                continue;
            }
            let mut batch = Vec::with_capacity(count);
            let mut last = None;
            for row in rows {
                batch.push(row.input);
                last = Some((row.cursor, row.id));
            }
            let report = ctx.sink.submit(batch).await?;
            if let Some((cursor, id)) = last {
                let checkpoint =
                    serde_json::json!({ "cursor": cursor.to_json(), "id": id.to_json() });
                ctx.checkpoints.save(&checkpoint).await?;
                position = Position::After { cursor, id };
            }
            report.log_acknowledged(&ctx.connector, count);
            if count < self.batch_size && sleep_or_shutdown(&mut shutdown, self.poll_interval).await
            {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests;

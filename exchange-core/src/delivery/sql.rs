//! SQL delivery channel: upserts a subscription's records, keyed by record id, into a table the
//! subscriber owns in their own PostgreSQL or MySQL/MariaDB database.
//!
//! Why it looks like this:
//! - The table is derived from the subscription's *view schema* (an Avro record): one column per
//!   top-level field, plus `record_id` (primary key) and `delivered_at`. Scalars map to native SQL
//!   types so the subscriber can query them directly; nested records, arrays, maps and multi-type
//!   unions become JSON holding the value's natural JSON (records as objects, enums as symbols).
//! - Delivery is at-least-once upstream, so writes are idempotent upserts keyed by `record_id`:
//!   replaying a batch converges to the same rows. A call is one transaction, so a batch is either
//!   wholly visible or not at all, and `Ok` means committed (durable).
//! - Values are always bound as parameters; the only text spliced into SQL is identifiers, which
//!   are validated (`[A-Za-z_][A-Za-z0-9_]{0,62}`) *and* quoted.
//! - Rows are validated and converted before any statement runs, so a malformed record fails the
//!   call as a permanent error without touching the database. Errors say whether a retry can help
//!   ([`SqlError::is_retryable`]), so the delivery loop can back off or park the subscription.
//! - The subscriber's URL carries their password. It is never shown: the URL is displayed with its
//!   userinfo password (and any `password=` query parameter) replaced by `***`, and every message
//!   that comes back from the driver or server is scrubbed of the password before it is wrapped.
//! - `connect` uses one direct connection (bounded by a timeout) to create/check the table, so a
//!   refused connection surfaces immediately with its real cause; the small pool used by `upsert`
//!   connects lazily.
//! - MySQL/MariaDB specifics: `record_id` uses the `utf8mb4_bin` collation so ids differing only in
//!   letter case stay distinct keys; strings use `LONGTEXT` (plain `TEXT` caps at 64 KiB, which
//!   long Chinese text can exceed); `DATETIME` columns hold UTC wall-clock time.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions};
use sqlx::{Connection, MySql, MySqlConnection, MySqlPool, PgConnection, PgPool, Postgres};

/// Name of the primary-key column holding the record id.
pub const RECORD_ID_COLUMN: &str = "record_id";
/// Name of the column set to the database's current time on every upsert.
pub const DELIVERED_AT_COLUMN: &str = "delivered_at";
/// Longest accepted record id, in characters (the MySQL key column is `VARCHAR(128)`).
pub const MAX_RECORD_ID_CHARS: usize = 128;
/// Most rows sent in one multi-row `INSERT` statement.
pub const MAX_ROWS_PER_STATEMENT: usize = 500;

/// Both servers cap a statement at 65 535 bind parameters.
const MAX_BIND_PARAMS: usize = 65_535;
/// Longest identifier part (PostgreSQL truncates beyond 63 bytes; MySQL allows 64).
const MAX_IDENT_LEN: usize = 63;
/// Bound on establishing the first connection in [`SqlSink::connect`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on waiting for a pooled connection in [`SqlSink::upsert`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pool size: deliveries to one table are sequential, so a few connections suffice.
const POOL_MAX_CONNECTIONS: u32 = 3;
/// Bound on one whole [`SqlSink::upsert`] transaction, so a hung server cannot stall delivery.
const UPSERT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a subscription's records are delivered: a database URL and a table in it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SqlTarget {
    /// `postgres://user:password@host:port/db` (also `postgresql://`) or
    /// `mysql://user:password@host:port/db` (also `mariadb://`). Holds a secret: never log it raw.
    pub url: String,
    /// `name` or `schema.name` (on MySQL the schema is the database); each part must match
    /// `[A-Za-z_][A-Za-z0-9_]{0,62}`. Always quoted, so it is case-sensitive on PostgreSQL.
    pub table: String,
}

impl SqlTarget {
    /// The URL with its password replaced by `***`, safe to show and log.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for SqlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTarget")
            .field("url", &self.redacted_url())
            .field("table", &self.table)
            .finish()
    }
}

/// Which SQL server family a sink talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL",
        })
    }
}

/// Why SQL delivery failed. [`SqlError::is_retryable`] tells transient failures (connection lost,
/// deadlock, timeout) from permanent ones (bad configuration, schema or data).
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The URL could not be understood; the shown URL is redacted.
    #[error("invalid SQL target URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with its password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The table name is not `name` or `schema.name` with safe identifier parts.
    #[error(
        "invalid table name {name:?}: {reason} (expected `name` or `schema.name`, each part \
         matching [A-Za-z_][A-Za-z0-9_]{{0,62}})"
    )]
    InvalidTableName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The view schema cannot be turned into a table.
    #[error("view schema cannot be delivered to SQL: {reason}")]
    UnsupportedSchema {
        /// What is wrong with it.
        reason: String,
    },
    /// The table already exists but lacks columns the view needs.
    #[error(
        "table {table} already exists but lacks column(s) {} needed by the view; add them or \
         deliver to another table", .columns.join(", ")
    )]
    MissingColumns {
        /// The table, as configured.
        table: String,
        /// The missing column names.
        columns: Vec<String>,
    },
    /// A record does not match the view schema (wrong type, missing field, null in a non-null
    /// field, bad record id). Nothing of the call was written.
    #[error("record {record_id:?} cannot be delivered: {reason}")]
    InvalidRecord {
        /// The record id (shortened if absurdly long).
        record_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The driver or server reported an error.
    #[error("{dialect} {target}: {operation} failed: {message}")]
    Database {
        /// Server family.
        dialect: Dialect,
        /// Redacted URL and table.
        target: String,
        /// What was being done (`connect`, `create table`, `upsert`, …).
        operation: &'static str,
        /// The driver's message, scrubbed of the password.
        message: String,
        /// Whether retrying later can succeed.
        retryable: bool,
    },
    /// An operation did not finish in time.
    #[error("{dialect} {target}: {operation} timed out after {}s", .after.as_secs())]
    Timeout {
        /// Server family.
        dialect: Dialect,
        /// Redacted URL and table.
        target: String,
        /// What was being done.
        operation: &'static str,
        /// How long we waited.
        after: Duration,
    },
}

impl SqlError {
    /// True when the failure is transient (connection refused or lost, deadlock, lock or
    /// statement timeout, server overloaded or restarting) and the same call may succeed later;
    /// false when retrying cannot help (bad URL, table name, schema, record, permissions, missing
    /// column, type mismatch, constraint violation).
    pub fn is_retryable(&self) -> bool {
        match self {
            SqlError::Database { retryable, .. } => *retryable,
            SqlError::Timeout { .. } => true,
            SqlError::InvalidUrl { .. }
            | SqlError::InvalidTableName { .. }
            | SqlError::UnsupportedSchema { .. }
            | SqlError::MissingColumns { .. }
            | SqlError::InvalidRecord { .. } => false,
        }
    }
}

/// A connected SQL delivery target whose table matches the view schema.
pub struct SqlSink {
    pool: DbPool,
    table: TableName,
    columns: Vec<Column>,
    /// Redacted URL plus table, for messages and logs.
    describe: String,
    secrets: Secrets,
}

enum DbPool {
    Pg(PgPool),
    My(MySqlPool),
}

impl fmt::Debug for SqlSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never derive: the pools' connect options hold the password.
        f.debug_struct("SqlSink")
            .field("dialect", &self.dialect())
            .field("target", &self.describe)
            .field("columns", &self.columns.len())
            .finish()
    }
}

impl SqlSink {
    /// Validates the table name and view schema, connects, then creates the table if it does not
    /// exist (`CREATE TABLE IF NOT EXISTS`) and checks that the table has every needed column
    /// (`record_id`, one per top-level view field, `delivered_at`). An existing table with
    /// missing columns gives [`SqlError::MissingColumns`] naming them. Column types of an existing
    /// table are not checked; a mismatch shows up as a permanent error on upsert.
    pub async fn connect(target: &SqlTarget, view_schema: &Schema) -> Result<SqlSink, SqlError> {
        let table = TableName::parse(&target.table)?;
        let columns = columns_for(view_schema)?;
        let secrets = Secrets::from_url(&target.url);
        let redacted = redact_url(&target.url);
        let describe = format!("{redacted} table {}", target.table);
        let dialect = dialect_of(&target.url).ok_or_else(|| SqlError::InvalidUrl {
            url: redacted.clone(),
            reason: "scheme must be postgres://, postgresql://, mysql:// or mariadb://".into(),
        })?;
        let invalid_url = |e: sqlx::Error| SqlError::InvalidUrl {
            url: redacted.clone(),
            reason: secrets.scrub(&e.to_string()),
        };
        let ctx = ErrCtx {
            dialect,
            describe: &describe,
            secrets: &secrets,
        };
        let create_sql = create_table_sql(dialect, &table, &columns);
        let present = match dialect {
            Dialect::Postgres => {
                let options = PgConnectOptions::from_str(&target.url)
                    .map_err(invalid_url)?
                    .application_name("unsilo-sqlsink");
                let mut conn = ctx
                    .timed("connect", PgConnection::connect_with(&options))
                    .await?;
                let result = pg_prepare_table(&mut conn, &table, &create_sql, &ctx).await;
                // Best effort: the table work is done (or failed) either way.
                let _ = conn.close().await;
                let present = result?;
                let pool = PgPoolOptions::new()
                    .max_connections(POOL_MAX_CONNECTIONS)
                    .min_connections(0)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options);
                (present, DbPool::Pg(pool))
            }
            Dialect::MySql => {
                let options = MySqlConnectOptions::from_str(&target.url)
                    .map_err(invalid_url)?
                    .charset("utf8mb4");
                let mut conn = ctx
                    .timed("connect", MySqlConnection::connect_with(&options))
                    .await?;
                let result = my_prepare_table(&mut conn, &table, &create_sql, &ctx).await;
                let _ = conn.close().await;
                let present = result?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(POOL_MAX_CONNECTIONS)
                    .min_connections(0)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options);
                (present, DbPool::My(pool))
            }
        };
        let (present, pool) = present;
        let missing = missing_columns(dialect, &columns, &present);
        if !missing.is_empty() {
            close_pool(&pool).await;
            return Err(SqlError::MissingColumns {
                table: target.table.clone(),
                columns: missing,
            });
        }
        tracing::info!(target_db = %describe, columns = columns.len(), "SQL sink ready");
        Ok(SqlSink {
            pool,
            table,
            columns,
            describe,
            secrets,
        })
    }

    /// Upserts `(record_id, record)` rows in one transaction: each row is inserted, or, when its
    /// `record_id` exists, every column is overwritten; `delivered_at` is set to the server's
    /// current time either way. When the same id occurs more than once in `rows`, the last one
    /// wins. Rows are sent in multi-row statements of up to [`MAX_ROWS_PER_STATEMENT`]. All rows
    /// are checked against the view schema first; on any error nothing is written. `Ok` means
    /// committed.
    pub async fn upsert(&self, rows: &[(String, Value)]) -> Result<(), SqlError> {
        if rows.is_empty() {
            return Ok(());
        }
        let dialect = self.dialect();
        let mut cells = Vec::with_capacity(rows.len());
        for (id, value) in last_wins(rows) {
            cells.push(row_cells(id, value, &self.columns, dialect)?);
        }
        let per_row = self.columns.len() + 1;
        let rows_per_statement = (MAX_BIND_PARAMS / per_row).clamp(1, MAX_ROWS_PER_STATEMENT);
        let ctx = ErrCtx {
            dialect,
            describe: &self.describe,
            secrets: &self.secrets,
        };
        let write = self.write(&cells, rows_per_statement, &ctx);
        match tokio::time::timeout(UPSERT_TIMEOUT, write).await {
            Ok(result) => result?,
            // Dropping the transaction rolls it back; if the commit itself was cut off its
            // outcome is unknown, which a retry of the idempotent upsert resolves.
            Err(_) => {
                return Err(SqlError::Timeout {
                    dialect,
                    target: self.describe.clone(),
                    operation: "upsert",
                    after: UPSERT_TIMEOUT,
                })
            }
        }
        tracing::debug!(target_db = %self.describe, rows = cells.len(), "SQL upsert committed");
        Ok(())
    }

    /// Sends converted rows in multi-row statements inside one transaction.
    async fn write(
        &self,
        cells: &[Vec<Cell>],
        rows_per_statement: usize,
        ctx: &ErrCtx<'_>,
    ) -> Result<(), SqlError> {
        let dialect = ctx.dialect;
        match &self.pool {
            DbPool::Pg(pool) => {
                let mut tx = pool.begin().await.map_err(|e| ctx.db("begin", e))?;
                for chunk in cells.chunks(rows_per_statement) {
                    let sql = upsert_sql(dialect, &self.table, &self.columns, chunk.len());
                    let mut query = sqlx::query::<Postgres>(&sql);
                    for cell in chunk.iter().flatten() {
                        query = match cell {
                            Cell::Text(v) => query.bind(v.as_deref()),
                            Cell::Int(v) => query.bind(*v),
                            Cell::Double(v) => query.bind(*v),
                            Cell::Bool(v) => query.bind(*v),
                            Cell::Timestamp(v) => query.bind(*v),
                            Cell::Date(v) => query.bind(*v),
                            Cell::Json(v) => query.bind(v.as_ref().map(sqlx::types::Json)),
                        };
                    }
                    query
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| ctx.db("upsert", e))?;
                }
                tx.commit().await.map_err(|e| ctx.db("commit", e))?;
            }
            DbPool::My(pool) => {
                let mut tx = pool.begin().await.map_err(|e| ctx.db("begin", e))?;
                for chunk in cells.chunks(rows_per_statement) {
                    let sql = upsert_sql(dialect, &self.table, &self.columns, chunk.len());
                    let mut query = sqlx::query::<MySql>(&sql);
                    for cell in chunk.iter().flatten() {
                        query = match cell {
                            Cell::Text(v) => query.bind(v.as_deref()),
                            Cell::Int(v) => query.bind(*v),
                            Cell::Double(v) => query.bind(*v),
                            Cell::Bool(v) => query.bind(*v),
                            // DATETIME has no zone: store UTC wall-clock time.
                            Cell::Timestamp(v) => query.bind(v.map(|t| t.naive_utc())),
                            Cell::Date(v) => query.bind(*v),
                            Cell::Json(v) => query.bind(v.as_ref().map(|j| j.to_string())),
                        };
                    }
                    query
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| ctx.db("upsert", e))?;
                }
                tx.commit().await.map_err(|e| ctx.db("commit", e))?;
            }
        }
        Ok(())
    }

    /// Which server family this sink writes to.
    pub fn dialect(&self) -> Dialect {
        match self.pool {
            DbPool::Pg(_) => Dialect::Postgres,
            DbPool::My(_) => Dialect::MySql,
        }
    }

    /// Closes the pool, waiting for checked-out connections to be returned.
    pub async fn close(&self) {
        close_pool(&self.pool).await;
    }
}

async fn close_pool(pool: &DbPool) {
    match pool {
        DbPool::Pg(p) => p.close().await,
        DbPool::My(p) => p.close().await,
    }
}

/// Creates the table if needed and returns the names of its columns.
async fn pg_prepare_table(
    conn: &mut PgConnection,
    table: &TableName,
    create_sql: &str,
    ctx: &ErrCtx<'_>,
) -> Result<Vec<String>, SqlError> {
    ctx.timed("create table", sqlx::query(create_sql).execute(&mut *conn))
        .await?;
    let query = sqlx::query_scalar::<_, String>(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2",
    )
    .bind(table.schema.as_deref())
    .bind(table.name.as_str());
    ctx.timed("check columns", query.fetch_all(&mut *conn))
        .await
}

/// Creates the table if needed and returns the names of its columns.
async fn my_prepare_table(
    conn: &mut MySqlConnection,
    table: &TableName,
    create_sql: &str,
    ctx: &ErrCtx<'_>,
) -> Result<Vec<String>, SqlError> {
    ctx.timed("create table", sqlx::query(create_sql).execute(&mut *conn))
        .await?;
    let query = sqlx::query_scalar::<_, String>(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
    )
    .bind(table.schema.as_deref())
    .bind(table.name.as_str());
    ctx.timed("check columns", query.fetch_all(&mut *conn))
        .await
}

/// Needed columns absent from `present` (MySQL column names are case-insensitive).
fn missing_columns(dialect: Dialect, columns: &[Column], present: &[String]) -> Vec<String> {
    let has = |name: &str| match dialect {
        Dialect::Postgres => present.iter().any(|p| p == name),
        Dialect::MySql => present.iter().any(|p| p.eq_ignore_ascii_case(name)),
    };
    std::iter::once(RECORD_ID_COLUMN)
        .chain(columns.iter().map(|c| c.name.as_str()))
        .chain(std::iter::once(DELIVERED_AT_COLUMN))
        .filter(|n| !has(n))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Errors: context, classification, redaction
// ---------------------------------------------------------------------------------------------

struct ErrCtx<'a> {
    dialect: Dialect,
    describe: &'a str,
    secrets: &'a Secrets,
}

impl ErrCtx<'_> {
    fn db(&self, operation: &'static str, e: sqlx::Error) -> SqlError {
        let retryable = is_retryable_sqlx(&e);
        let mut message = e.to_string();
        if let sqlx::Error::Database(db) = &e {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                message = format!("{message} (SQLSTATE {})", pg.code());
            }
            // MySQL messages already carry the error number.
        }
        if matches!(e, sqlx::Error::PoolTimedOut) {
            message.push_str(" (server unreachable or all connections busy)");
        }
        let message = self.secrets.scrub(&message);
        tracing::debug!(target_db = %self.describe, operation, retryable, %message, "SQL error");
        SqlError::Database {
            dialect: self.dialect,
            target: self.describe.to_owned(),
            operation,
            message,
            retryable,
        }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, SqlError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
            Ok(result) => result.map_err(|e| self.db(operation, e)),
            Err(_) => Err(SqlError::Timeout {
                dialect: self.dialect,
                target: self.describe.to_owned(),
                operation,
                after: CONNECT_TIMEOUT,
            }),
        }
    }
}

fn is_retryable_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                is_retryable_pg_code(pg.code())
            } else if let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() {
                is_retryable_mysql(my.number(), my.code())
            } else {
                false
            }
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs where a retry can succeed.
fn is_retryable_pg_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources (too many connections, disk full, OOM)
        || matches!(
            code,
            "40001" // serialization failure
                | "40P01" // deadlock detected
                | "55P03" // lock not available
                | "57014" // query canceled (statement timeout)
                | "57P01" // admin shutdown
                | "57P02" // crash shutdown
                | "57P03" // cannot connect now (starting up)
                | "58030" // I/O error
                | "25P03" // idle-in-transaction timeout
        )
}

/// MySQL/MariaDB error numbers (and SQLSTATEs) where a retry can succeed.
fn is_retryable_mysql(number: u16, sqlstate: Option<&str>) -> bool {
    matches!(
        number,
        1021 // disk full
            | 1037 | 1038 // out of memory
            | 1040 // too many connections
            | 1053 // server shutdown in progress
            | 1135 // can't create thread
            | 1152 | 1153 | 1154 | 1155 | 1156 | 1157 | 1158 | 1159 | 1160 | 1161 // network
            | 1203 | 1226 // connection limits
            | 1205 // lock wait timeout
            | 1213 // deadlock
            | 1317 // query interrupted
            | 1615 // prepared statement needs re-preparing
            | 1927 // connection killed (MariaDB)
            | 1969 // statement timeout (MariaDB)
            | 3024 // max execution time exceeded (MySQL)
            | 2002 | 2003 | 2006 | 2013 // can't connect, gone away, lost connection
    ) || sqlstate.is_some_and(|s| s.starts_with("08") || s == "40001")
}

/// Values that must never appear in messages: the URL's password, raw and percent-decoded.
struct Secrets(Vec<String>);

impl Secrets {
    fn from_url(url: &str) -> Secrets {
        let mut found = Vec::new();
        if let Some(parts) = UrlParts::split(url) {
            if let Some(pw) = parts.password() {
                found.push(pw.to_owned());
            }
            for (key, value) in parts.query_pairs() {
                if is_secret_param(key) {
                    found.push(value.to_owned());
                }
            }
        }
        let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
        found.extend(decoded);
        found.retain(|s| !s.is_empty());
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        found.dedup();
        Secrets(found)
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }
}

fn is_secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key == "pass" || key == "pwd"
}

/// The pieces of `scheme://userinfo@host/path?query#fragment` that redaction needs.
struct UrlParts<'a> {
    /// `scheme://`
    prefix: &'a str,
    userinfo: Option<&'a str>,
    /// Host, port, path and fragment, without the query.
    host_path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<UrlParts<'a>> {
        let scheme_end = url.find("://")? + 3;
        let (prefix, rest) = url.split_at(scheme_end);
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (userinfo, host_path) = match rest[..authority_end].rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        Some(UrlParts {
            prefix,
            userinfo,
            host_path,
            query,
            fragment,
        })
    }

    fn password(&self) -> Option<&'a str> {
        self.userinfo?.split_once(':').map(|(_, pw)| pw)
    }

    fn query_pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| pair.split_once('='))
    }
}

/// `url` with the userinfo password and any password-like query parameter replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some(parts) = UrlParts::split(url) else {
        return "<unparseable URL>".to_owned();
    };
    let mut out = String::from(parts.prefix);
    if let Some(userinfo) = parts.userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push_str(":***");
            }
            None => out.push_str(userinfo),
        }
        out.push('@');
    }
    out.push_str(parts.host_path);
    if let Some(query) = parts.query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = parts.fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn percent_decode(s: &str) -> String {
    let hex_val = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                // Both digits are < 16, so this fits in a byte.
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn dialect_of(url: &str) -> Option<Dialect> {
    let scheme = url.split_once("://")?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Some(Dialect::Postgres),
        "mysql" | "mariadb" => Some(Dialect::MySql),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Identifiers and SQL text
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct TableName {
    schema: Option<String>,
    name: String,
}

impl TableName {
    fn parse(raw: &str) -> Result<TableName, SqlError> {
        let invalid = |reason: String| SqlError::InvalidTableName {
            name: raw.to_owned(),
            reason,
        };
        let parts: Vec<&str> = raw.split('.').collect();
        for part in &parts {
            check_ident(part).map_err(|r| invalid(format!("part {part:?} {r}")))?;
        }
        match parts.as_slice() {
            [name] => Ok(TableName {
                schema: None,
                name: (*name).to_owned(),
            }),
            [schema, name] => Ok(TableName {
                schema: Some((*schema).to_owned()),
                name: (*name).to_owned(),
            }),
            _ => Err(invalid("has more than one dot".into())),
        }
    }

    fn quoted(&self, dialect: Dialect) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(dialect, schema), quote(dialect, &self.name)),
            None => quote(dialect, &self.name),
        }
    }
}

/// Checks `[A-Za-z_][A-Za-z0-9_]{0,62}`; the error completes "part X …".
fn check_ident(s: &str) -> Result<(), &'static str> {
    let mut chars = s.chars();
    match chars.next() {
        None => return Err("is empty"),
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        Some(_) => return Err("must start with an ASCII letter or underscore"),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("may only contain ASCII letters, digits and underscores");
    }
    if s.len() > MAX_IDENT_LEN {
        return Err("is longer than 63 characters");
    }
    Ok(())
}

/// Quotes an identifier already checked by [`check_ident`] (quote characters are doubled anyway).
fn quote(dialect: Dialect, ident: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
        Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
    }
}

fn create_table_sql(dialect: Dialect, table: &TableName, columns: &[Column]) -> String {
    let mut defs = Vec::with_capacity(columns.len() + 2);
    defs.push(match dialect {
        Dialect::Postgres => format!("{} TEXT PRIMARY KEY", quote(dialect, RECORD_ID_COLUMN)),
        // Binary collation: record ids differing only in case are different keys.
        Dialect::MySql => format!(
            "{} VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY",
            quote(dialect, RECORD_ID_COLUMN)
        ),
    });
    for c in columns {
        let null = if c.nullable { "NULL" } else { "NOT NULL" };
        defs.push(format!(
            "{} {} {null}",
            quote(dialect, &c.name),
            c.kind.sql_type(dialect)
        ));
    }
    defs.push(format!(
        "{} {} NOT NULL",
        quote(dialect, DELIVERED_AT_COLUMN),
        match dialect {
            Dialect::Postgres => "TIMESTAMPTZ",
            Dialect::MySql => "DATETIME(3)",
        }
    ));
    let suffix = match dialect {
        Dialect::Postgres => "",
        Dialect::MySql => " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}){suffix}",
        table.quoted(dialect),
        defs.join(", ")
    )
}

/// Multi-row upsert with `rows` rows of placeholders.
fn upsert_sql(dialect: Dialect, table: &TableName, columns: &[Column], rows: usize) -> String {
    let q = |n: &str| quote(dialect, n);
    let mut names = vec![q(RECORD_ID_COLUMN)];
    names.extend(columns.iter().map(|c| q(&c.name)));
    names.push(q(DELIVERED_AT_COLUMN));
    let now = match dialect {
        Dialect::Postgres => "now()",
        Dialect::MySql => "UTC_TIMESTAMP(3)",
    };
    let per_row = columns.len() + 1;
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.quoted(dialect),
        names.join(", ")
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for i in 0..per_row {
            match dialect {
                Dialect::Postgres => sql.push_str(&format!("${}, ", r * per_row + i + 1)),
                Dialect::MySql => sql.push_str("?, "),
            }
        }
        sql.push_str(now);
        sql.push(')');
    }
    let updates: Vec<String> = names[1..]
        .iter()
        .map(|n| match dialect {
            Dialect::Postgres => format!("{n} = EXCLUDED.{n}"),
            Dialect::MySql => format!("{n} = VALUES({n})"),
        })
        .collect();
    match dialect {
        Dialect::Postgres => sql.push_str(&format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            q(RECORD_ID_COLUMN),
            updates.join(", ")
        )),
        Dialect::MySql => sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))),
    }
    sql
}

// ---------------------------------------------------------------------------------------------
// View schema → columns
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsUnit {
    Millis,
    Micros,
    Nanos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColKind {
    /// string, enum, uuid; bytes/fixed as lowercase hex.
    Text,
    /// int, long.
    BigInt,
    /// float, double.
    Double,
    Bool,
    /// timestamp-*; a plain long in the value is read in this unit.
    Timestamp(TsUnit),
    /// date; a plain int in the value is read as days since the epoch.
    Date,
    /// records, arrays, maps, multi-type unions.
    Json,
}

impl ColKind {
    /// The Avro values a column of this kind accepts, for error messages.
    fn describe(self) -> &'static str {
        match self {
            ColKind::Text => "a string or enum",
            ColKind::BigInt => "an int or long",
            ColKind::Double => "a float or double",
            ColKind::Bool => "a boolean",
            ColKind::Timestamp(_) => "a timestamp",
            ColKind::Date => "a date",
            ColKind::Json => "a record, array or map",
        }
    }

    fn sql_type(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (ColKind::Text, Dialect::Postgres) => "TEXT",
            // Plain TEXT caps at 64 KiB, which long Chinese text can exceed.
            (ColKind::Text, Dialect::MySql) => "LONGTEXT",
            (ColKind::BigInt, _) => "BIGINT",
            (ColKind::Double, Dialect::Postgres) => "DOUBLE PRECISION",
            (ColKind::Double, Dialect::MySql) => "DOUBLE",
            (ColKind::Bool, _) => "BOOLEAN",
            (ColKind::Timestamp(_), Dialect::Postgres) => "TIMESTAMPTZ",
            (ColKind::Timestamp(TsUnit::Millis), Dialect::MySql) => "DATETIME(3)",
            (ColKind::Timestamp(_), Dialect::MySql) => "DATETIME(6)",
            (ColKind::Date, _) => "DATE",
            (ColKind::Json, Dialect::Postgres) => "JSONB",
            (ColKind::Json, Dialect::MySql) => "JSON",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    kind: ColKind,
    nullable: bool,
}

fn columns_for(view_schema: &Schema) -> Result<Vec<Column>, SqlError> {
    let unsupported = |reason: String| SqlError::UnsupportedSchema { reason };
    let Schema::Record(record) = view_schema else {
        return Err(unsupported("the view schema must be an Avro record".into()));
    };
    let resolved = ResolvedSchema::try_from(view_schema)
        .map_err(|e| unsupported(format!("cannot resolve named types: {e}")))?;
    let names = resolved.get_names();
    let mut columns: Vec<Column> = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        check_ident(&field.name)
            .map_err(|r| unsupported(format!("field name {:?} {r}", field.name)))?;
        if field.name.eq_ignore_ascii_case(RECORD_ID_COLUMN)
            || field.name.eq_ignore_ascii_case(DELIVERED_AT_COLUMN)
        {
            return Err(unsupported(format!(
                "field {:?} collides with the reserved column of the same name",
                field.name
            )));
        }
        if columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&field.name))
        {
            return Err(unsupported(format!(
                "field {:?} differs from another field only in letter case",
                field.name
            )));
        }
        let (kind, nullable) = column_kind(&field.schema, names)
            .map_err(|r| unsupported(format!("field {:?}: {r}", field.name)))?;
        columns.push(Column {
            name: field.name.clone(),
            kind,
            nullable,
        });
    }
    Ok(columns)
}

fn column_kind(schema: &Schema, names: &HashMap<Name, &Schema>) -> Result<(ColKind, bool), String> {
    if let Schema::Union(union) = schema {
        let nullable = union.variants().iter().any(|v| matches!(v, Schema::Null));
        let others: Vec<&Schema> = union
            .variants()
            .iter()
            .filter(|v| !matches!(v, Schema::Null))
            .collect();
        return match others.as_slice() {
            [] => Err("a union of only null has no values to store".into()),
            [one] => Ok((scalar_kind(one, names)?, nullable)),
            _ => Ok((ColKind::Json, nullable)),
        };
    }
    Ok((scalar_kind(schema, names)?, false))
}

fn scalar_kind(schema: &Schema, names: &HashMap<Name, &Schema>) -> Result<ColKind, String> {
    Ok(match schema {
        Schema::String | Schema::Enum(_) | Schema::Uuid | Schema::Bytes | Schema::Fixed(_) => {
            ColKind::Text
        }
        Schema::Int | Schema::Long => ColKind::BigInt,
        Schema::Float | Schema::Double => ColKind::Double,
        Schema::Boolean => ColKind::Bool,
        Schema::TimestampMillis => ColKind::Timestamp(TsUnit::Millis),
        Schema::TimestampMicros => ColKind::Timestamp(TsUnit::Micros),
        Schema::TimestampNanos => ColKind::Timestamp(TsUnit::Nanos),
        Schema::Date => ColKind::Date,
        Schema::Record(_) | Schema::Array(_) | Schema::Map(_) | Schema::Union(_) => ColKind::Json,
        Schema::Ref { name } => {
            let target = names.get(name).or_else(|| {
                names
                    .iter()
                    .find(|(n, _)| n.name == name.name)
                    .map(|(_, s)| s)
            });
            match target {
                Some(Schema::Ref { .. }) | None => {
                    return Err(format!("unresolved type reference {}", name.fullname(None)))
                }
                Some(s) => scalar_kind(s, names)?,
            }
        }
        other => {
            return Err(format!(
                "type {} is not supported by SQL delivery",
                schema_kind_name(other)
            ))
        }
    })
}

fn schema_kind_name(schema: &Schema) -> String {
    serde_json::to_value(schema)
        .ok()
        .map(|v| match v {
            serde_json::Value::Object(o) => o
                .get("logicalType")
                .or_else(|| o.get("type"))
                .map(|t| t.to_string())
                .unwrap_or_default(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| "(unknown)".into())
}

// ---------------------------------------------------------------------------------------------
// Records → bound cells
// ---------------------------------------------------------------------------------------------

/// One bound parameter, typed so that a NULL still carries its column's SQL type.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Double(Option<f64>),
    Bool(Option<bool>),
    Timestamp(Option<DateTime<Utc>>),
    Date(Option<NaiveDate>),
    Json(Option<serde_json::Value>),
}

/// Rows with duplicate ids reduced to the last occurrence (PostgreSQL refuses to touch one row
/// twice in a statement, and "last write wins" is what sequential upserts would give).
fn last_wins(rows: &[(String, Value)]) -> Vec<(&str, &Value)> {
    let mut out: Vec<(&str, &Value)> = Vec::with_capacity(rows.len());
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (id, value) in rows {
        match index.get(id.as_str()) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(id.as_str(), out.len());
                out.push((id.as_str(), value));
            }
        }
    }
    out
}

fn row_cells(
    id: &str,
    value: &Value,
    columns: &[Column],
    dialect: Dialect,
) -> Result<Vec<Cell>, SqlError> {
    let invalid = |reason: String| SqlError::InvalidRecord {
        record_id: shorten(id),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("record id is empty".into()));
    }
    if id.chars().count() > MAX_RECORD_ID_CHARS {
        return Err(invalid(format!(
            "record id is longer than {MAX_RECORD_ID_CHARS} characters"
        )));
    }
    if dialect == Dialect::Postgres && id.contains('\0') {
        return Err(invalid("record id contains a NUL character".into()));
    }
    let Value::Record(fields) = unwrap_union(value) else {
        return Err(invalid("value is not an Avro record".into()));
    };
    if let Some((extra, _)) = fields
        .iter()
        .find(|(name, _)| !columns.iter().any(|c| &c.name == name))
    {
        return Err(invalid(format!(
            "field {extra:?} is not in the view schema"
        )));
    }
    let mut cells = Vec::with_capacity(columns.len() + 1);
    cells.push(Cell::Text(Some(id.to_owned())));
    for (i, col) in columns.iter().enumerate() {
        let field = match fields.get(i) {
            Some((name, v)) if *name == col.name => Some(v),
            _ => fields.iter().find(|(n, _)| *n == col.name).map(|(_, v)| v),
        };
        let Some(field) = field else {
            return Err(invalid(format!("field {:?} is missing", col.name)));
        };
        let cell = to_cell(col, field, dialect)
            .map_err(|r| invalid(format!("field {:?}: {r}", col.name)))?;
        cells.push(cell);
    }
    Ok(cells)
}

fn shorten(id: &str) -> String {
    if id.chars().count() <= MAX_RECORD_ID_CHARS {
        id.to_owned()
    } else {
        let mut s: String = id.chars().take(MAX_RECORD_ID_CHARS).collect();
        s.push('…');
        s
    }
}

fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

fn to_cell(col: &Column, value: &Value, dialect: Dialect) -> Result<Cell, String> {
    let value = unwrap_union(value);
    if matches!(value, Value::Null) {
        if !col.nullable {
            return Err("is null but the column is NOT NULL".into());
        }
        return Ok(match col.kind {
            ColKind::Text => Cell::Text(None),
            ColKind::BigInt => Cell::Int(None),
            ColKind::Double => Cell::Double(None),
            ColKind::Bool => Cell::Bool(None),
            ColKind::Timestamp(_) => Cell::Timestamp(None),
            ColKind::Date => Cell::Date(None),
            ColKind::Json => Cell::Json(None),
        });
    }
    let mismatch = || {
        format!(
            "expected {} but got {}",
            col.kind.describe(),
            unsilo_schemas::avro::value_kind(value)
        )
    };
    let cell = match (col.kind, value) {
        (ColKind::Text, Value::String(s) | Value::Enum(_, s)) => Cell::Text(Some(s.clone())),
        (ColKind::Text, Value::Uuid(u)) => Cell::Text(Some(u.to_string())),
        (ColKind::Text, Value::Bytes(b) | Value::Fixed(_, b)) => Cell::Text(Some(hex::encode(b))),
        (ColKind::BigInt, Value::Int(i)) => Cell::Int(Some(i64::from(*i))),
        (ColKind::BigInt, Value::Long(l)) => Cell::Int(Some(*l)),
        (ColKind::Double, Value::Float(f)) => Cell::Double(Some(float_to_f64(*f))),
        (ColKind::Double, Value::Double(d)) => Cell::Double(Some(*d)),
        (ColKind::Double, Value::Int(i)) => Cell::Double(Some(f64::from(*i))),
        (ColKind::Double, Value::Long(l)) => Cell::Double(Some(*l as f64)),
        (ColKind::Bool, Value::Boolean(b)) => Cell::Bool(Some(*b)),
        (ColKind::Timestamp(unit), v) => {
            let t = match (unit, v) {
                (_, Value::TimestampMillis(ms)) | (TsUnit::Millis, Value::Long(ms)) => {
                    DateTime::from_timestamp_millis(*ms)
                }
                (_, Value::TimestampMicros(us)) | (TsUnit::Micros, Value::Long(us)) => {
                    DateTime::from_timestamp_micros(*us)
                }
                (_, Value::TimestampNanos(ns)) | (TsUnit::Nanos, Value::Long(ns)) => {
                    Some(DateTime::from_timestamp_nanos(*ns))
                }
                _ => return Err(mismatch()),
            };
            Cell::Timestamp(Some(t.ok_or("timestamp is out of range")?))
        }
        (ColKind::Date, Value::Date(days) | Value::Int(days)) => {
            Cell::Date(Some(date_from_days(*days).ok_or("date is out of range")?))
        }
        (ColKind::Json, v) => Cell::Json(Some(to_json(v)?)),
        _ => return Err(mismatch()),
    };
    check_cell(&cell, dialect)?;
    Ok(cell)
}

/// Rejects values the server would refuse, with a clearer message than the server's.
fn check_cell(cell: &Cell, dialect: Dialect) -> Result<(), String> {
    match (cell, dialect) {
        (Cell::Text(Some(s)), Dialect::Postgres) if s.contains('\0') => {
            Err("text contains a NUL character, which PostgreSQL cannot store".into())
        }
        (Cell::Json(Some(j)), Dialect::Postgres) if json_has_nul(j) => {
            Err("JSON contains a NUL character, which PostgreSQL cannot store".into())
        }
        (Cell::Double(Some(d)), Dialect::MySql) if !d.is_finite() => {
            Err(format!("{d} cannot be stored in a MySQL DOUBLE"))
        }
        (Cell::Timestamp(Some(t)), Dialect::MySql)
            if !(1000..=9999).contains(&chrono::Datelike::year(t)) =>
        {
            Err(format!("{t} is outside the MySQL DATETIME range"))
        }
        (Cell::Date(Some(d)), Dialect::MySql)
            if !(1000..=9999).contains(&chrono::Datelike::year(d)) =>
        {
            Err(format!("{d} is outside the MySQL DATE range"))
        }
        _ => Ok(()),
    }
}

fn json_has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(json_has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// Widens via the shortest decimal form, so `1.1f32` becomes `1.1`, not `1.100000023841858`.
fn float_to_f64(f: f32) -> f64 {
    if f.is_finite() {
        f.to_string().parse().unwrap_or(f64::from(f))
    } else {
        f64::from(f)
    }
}

fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?)
}

/// The natural JSON of an Avro value: records as objects (field order kept), maps as objects
/// (keys sorted), enums as symbols, unions as their branch, timestamps as RFC 3339 UTC strings,
/// dates as `YYYY-MM-DD`, bytes as lowercase hex, non-finite floats as `"NaN"`/`"Infinity"`.
fn to_json(v: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    let ts = |t: Option<DateTime<Utc>>, fmt: SecondsFormat| {
        t.map(|t| J::String(t.to_rfc3339_opts(fmt, true)))
            .ok_or_else(|| "timestamp is out of range".to_owned())
    };
    Ok(match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Long(l) => J::from(*l),
        Value::Float(f) => float_json(float_to_f64(*f)),
        Value::Double(d) => float_json(*d),
        Value::Bytes(b) | Value::Fixed(_, b) => J::String(hex::encode(b)),
        Value::String(s) | Value::Enum(_, s) => J::String(s.clone()),
        Value::Uuid(u) => J::String(u.to_string()),
        Value::Union(_, inner) => to_json(inner)?,
        Value::Array(items) => J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut obj = serde_json::Map::with_capacity(map.len());
            for k in keys {
                if let Some(v) = map.get(k) {
                    obj.insert(k.clone(), to_json(v)?);
                }
            }
            J::Object(obj)
        }
        Value::Record(fields) => {
            let mut obj = serde_json::Map::with_capacity(fields.len());
            for (k, v) in fields {
                obj.insert(k.clone(), to_json(v)?);
            }
            J::Object(obj)
        }
        Value::Date(days) => J::String(
            date_from_days(*days)
                .ok_or("date is out of range")?
                .format("%Y-%m-%d")
                .to_string(),
        ),
        Value::TimestampMillis(ms) => {
            ts(DateTime::from_timestamp_millis(*ms), SecondsFormat::Millis)?
        }
        Value::TimestampMicros(us) => {
            ts(DateTime::from_timestamp_micros(*us), SecondsFormat::Micros)?
        }
        Value::TimestampNanos(ns) => ts(
            Some(DateTime::from_timestamp_nanos(*ns)),
            SecondsFormat::Nanos,
        )?,
        other => {
            return Err(format!(
                "{} values are not supported by SQL delivery",
                unsilo_schemas::avro::value_kind(other)
            ))
        }
    })
}

fn float_json(d: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(d) {
        Some(n) => serde_json::Value::Number(n),
        None if d.is_nan() => serde_json::Value::String("NaN".into()),
        None if d > 0.0 => serde_json::Value::String("Infinity".into()),
        None => serde_json::Value::String("-Infinity".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, TimeZone};
    use serde_json::json;
    use sqlx::Row as _;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU32, Ordering};

    const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
    const MY_URL: &str = "mysql://root@127.0.0.1:3306/test";

    /// Hand-written view schema covering every supported field shape.
    const VIEW: &str = r#"{
      "type": "record", "name": "TestView", "namespace": "unsilo.test",
      "fields": [
        {"name": "name", "type": "string"},
        {"name": "nickname", "type": ["null", "string"]},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["ACTIVE", "REVOKED"]}},
        {"name": "age", "type": "int"},
        {"name": "population", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "score", "type": "double"},
        {"name": "verified", "type": "boolean"},
        {"name": "issued_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "expires_on", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
          {"name": "city", "type": "string"},
          {"name": "zip", "type": ["null", "string"]},
          {"name": "kind", "type": "Status"}
        ]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "prev_status", "type": ["null", "Status"]},
        {"name": "attrs", "type": {"type": "map", "values": "long"}}
      ]
    }"#;

    fn view() -> Schema {
        Schema::parse_str(VIEW).expect("test view schema parses")
    }

    fn url(d: Dialect) -> &'static str {
        match d {
            Dialect::Postgres => PG_URL,
            Dialect::MySql => MY_URL,
        }
    }

    fn unique_table(tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!(
            "sqlsink_{tag}_{}_{nanos}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn target(d: Dialect, table: &str) -> SqlTarget {
        SqlTarget {
            url: url(d).to_owned(),
            table: table.to_owned(),
        }
    }

    /// What a subscriber reads back from one row (timestamps normalised to UTC).
    #[derive(Debug, Clone, PartialEq)]
    struct Row {
        name: String,
        nickname: Option<String>,
        status: String,
        age: i64,
        population: i64,
        ratio: f64,
        score: f64,
        verified: bool,
        issued_at: DateTime<Utc>,
        birth_date: NaiveDate,
        expires_on: Option<NaiveDate>,
        address: serde_json::Value,
        tags: serde_json::Value,
        prev_status: Option<String>,
        attrs: serde_json::Value,
    }

    fn some(v: Value) -> Value {
        Value::Union(1, Box::new(v))
    }
    fn null() -> Value {
        Value::Union(0, Box::new(Value::Null))
    }
    fn s(x: &str) -> Value {
        Value::String(x.to_owned())
    }

    /// Every field set, Chinese text, nested record, array, map.
    fn full(name: &str, score: f64) -> (Value, Row) {
        let value = Value::Record(vec![
            ("name".into(), s(name)),
            ("nickname".into(), some(s("老张"))),
            ("status".into(), Value::Enum(1, "REVOKED".into())),
            ("age".into(), Value::Int(-42)),
            ("population".into(), Value::Long(21_893_095_000)),
            ("ratio".into(), Value::Float(0.1)),
            ("score".into(), Value::Double(score)),
            ("verified".into(), Value::Boolean(true)),
            (
                "issued_at".into(),
                Value::TimestampMillis(1_700_000_000_123),
            ),
            ("birth_date".into(), Value::Date(19_000)),
            ("expires_on".into(), some(Value::Date(20_000))),
            (
                "address".into(),
                Value::Record(vec![
                    ("city".into(), s("北京市海淀区")),
                    ("zip".into(), some(s("100080"))),
                    ("kind".into(), Value::Enum(0, "ACTIVE".into())),
                ]),
            ),
            ("tags".into(), Value::Array(vec![s("社保"), s("医保")])),
            ("prev_status".into(), some(Value::Enum(0, "ACTIVE".into()))),
            (
                "attrs".into(),
                Value::Map(HashMap::from([
                    ("b".to_owned(), Value::Long(2)),
                    ("a".to_owned(), Value::Long(1)),
                ])),
            ),
        ]);
        let row = Row {
            name: name.to_owned(),
            nickname: Some("老张".into()),
            status: "REVOKED".into(),
            age: -42,
            population: 21_893_095_000,
            ratio: 0.1,
            score,
            verified: true,
            issued_at: Utc
                .with_ymd_and_hms(2023, 11, 14, 22, 13, 20)
                .single()
                .expect("valid")
                + chrono::TimeDelta::milliseconds(123),
            birth_date: NaiveDate::from_ymd_opt(2022, 1, 8).expect("valid"),
            expires_on: NaiveDate::from_ymd_opt(2024, 10, 4),
            address: json!({"city": "北京市海淀区", "zip": "100080", "kind": "ACTIVE"}),
            tags: json!(["社保", "医保"]),
            prev_status: Some("ACTIVE".into()),
            attrs: json!({"a": 1, "b": 2}),
        };
        (value, row)
    }

    /// Every nullable field null, empty collections, false boolean.
    fn sparse() -> (Value, Row) {
        let value = Value::Record(vec![
            ("name".into(), s("")),
            ("nickname".into(), null()),
            ("status".into(), Value::Enum(0, "ACTIVE".into())),
            ("age".into(), Value::Int(0)),
            ("population".into(), Value::Long(i64::MIN)),
            ("ratio".into(), Value::Float(-2.5)),
            ("score".into(), Value::Double(1e300)),
            ("verified".into(), Value::Boolean(false)),
            (
                "issued_at".into(),
                Value::TimestampMillis(1_600_000_000_999),
            ),
            ("birth_date".into(), Value::Date(0)),
            ("expires_on".into(), null()),
            (
                "address".into(),
                Value::Record(vec![
                    ("city".into(), s("")),
                    ("zip".into(), null()),
                    ("kind".into(), Value::Enum(1, "REVOKED".into())),
                ]),
            ),
            ("tags".into(), Value::Array(vec![])),
            ("prev_status".into(), null()),
            ("attrs".into(), Value::Map(HashMap::new())),
        ]);
        let row = Row {
            name: String::new(),
            nickname: None,
            status: "ACTIVE".into(),
            age: 0,
            population: i64::MIN,
            ratio: -2.5,
            score: 1e300,
            verified: false,
            issued_at: Utc
                .with_ymd_and_hms(2020, 9, 13, 12, 26, 40)
                .single()
                .expect("valid")
                + chrono::TimeDelta::milliseconds(999),
            birth_date: NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid"),
            expires_on: None,
            address: json!({"city": "", "zip": null, "kind": "REVOKED"}),
            tags: json!([]),
            prev_status: None,
            attrs: json!({}),
        };
        (value, row)
    }

    async fn exec(d: Dialect, sql: &str) {
        match d {
            Dialect::Postgres => {
                let mut c = PgConnection::connect(PG_URL).await.expect("PostgreSQL up");
                sqlx::query(sql).execute(&mut c).await.expect(sql);
            }
            Dialect::MySql => {
                let mut c = MySqlConnection::connect(MY_URL).await.expect("MariaDB up");
                sqlx::query(sql).execute(&mut c).await.expect(sql);
            }
        }
    }

    async fn drop_table(d: Dialect, table: &str) {
        exec(d, &format!("DROP TABLE IF EXISTS {}", quote(d, table))).await;
    }

    /// All rows of `table` by record id, with their `delivered_at`.
    async fn read_rows(d: Dialect, table: &str) -> BTreeMap<String, (Row, DateTime<Utc>)> {
        let sql = format!("SELECT * FROM {}", quote(d, table));
        let mut out = BTreeMap::new();
        match d {
            Dialect::Postgres => {
                let mut c = PgConnection::connect(PG_URL).await.expect("PostgreSQL up");
                for r in sqlx::query(&sql).fetch_all(&mut c).await.expect("select") {
                    let json = |col: &str| {
                        r.try_get::<sqlx::types::Json<serde_json::Value>, _>(col)
                            .expect(col)
                            .0
                    };
                    let row = Row {
                        name: r.try_get("name").expect("name"),
                        nickname: r.try_get("nickname").expect("nickname"),
                        status: r.try_get("status").expect("status"),
                        age: r.try_get("age").expect("age"),
                        population: r.try_get("population").expect("population"),
                        ratio: r.try_get("ratio").expect("ratio"),
                        score: r.try_get("score").expect("score"),
                        verified: r.try_get("verified").expect("verified"),
                        issued_at: r.try_get("issued_at").expect("issued_at"),
                        birth_date: r.try_get("birth_date").expect("birth_date"),
                        expires_on: r.try_get("expires_on").expect("expires_on"),
                        address: json("address"),
                        tags: json("tags"),
                        prev_status: r.try_get("prev_status").expect("prev_status"),
                        attrs: json("attrs"),
                    };
                    let delivered: DateTime<Utc> = r.try_get("delivered_at").expect("delivered");
                    out.insert(r.try_get("record_id").expect("id"), (row, delivered));
                }
            }
            Dialect::MySql => {
                let mut c = MySqlConnection::connect(MY_URL).await.expect("MariaDB up");
                for r in sqlx::query(&sql).fetch_all(&mut c).await.expect("select") {
                    let json = |col: &str| {
                        // MariaDB's JSON is LONGTEXT with a binary collation: sent as BLOB.
                        let bytes: Vec<u8> = r.try_get(col).expect(col);
                        serde_json::from_slice::<serde_json::Value>(&bytes).expect("stored JSON")
                    };
                    let utc = |col: &str| r.try_get::<NaiveDateTime, _>(col).expect(col).and_utc();
                    let row = Row {
                        name: r.try_get("name").expect("name"),
                        nickname: r.try_get("nickname").expect("nickname"),
                        status: r.try_get("status").expect("status"),
                        age: r.try_get("age").expect("age"),
                        population: r.try_get("population").expect("population"),
                        ratio: r.try_get("ratio").expect("ratio"),
                        score: r.try_get("score").expect("score"),
                        verified: r.try_get("verified").expect("verified"),
                        issued_at: utc("issued_at"),
                        birth_date: r.try_get("birth_date").expect("birth_date"),
                        expires_on: r.try_get("expires_on").expect("expires_on"),
                        address: json("address"),
                        tags: json("tags"),
                        prev_status: r.try_get("prev_status").expect("prev_status"),
                        attrs: json("attrs"),
                    };
                    // utf8mb4_bin text reaches sqlx as VARBINARY.
                    let id: Vec<u8> = r.try_get("record_id").expect("id");
                    let id = String::from_utf8(id).expect("UTF-8 id");
                    out.insert(id, (row, utc("delivered_at")));
                }
            }
        }
        out
    }

    /// column name → (SQL data type, nullable), from information_schema.
    async fn column_info(d: Dialect, table: &str) -> BTreeMap<String, (String, bool)> {
        let rows: Vec<(String, String, String)> = match d {
            Dialect::Postgres => {
                let mut c = PgConnection::connect(PG_URL).await.expect("PostgreSQL up");
                sqlx::query_as(
                    "SELECT column_name::text, data_type::text, is_nullable::text \
                     FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(table)
                .fetch_all(&mut c)
                .await
                .expect("columns")
            }
            Dialect::MySql => {
                let mut c = MySqlConnection::connect(MY_URL).await.expect("MariaDB up");
                sqlx::query_as(
                    "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), \
                     CAST(IS_NULLABLE AS CHAR) FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                )
                .bind(table)
                .fetch_all(&mut c)
                .await
                .expect("columns")
            }
        };
        rows.into_iter()
            .map(|(n, t, null)| (n, (t, null == "YES")))
            .collect()
    }

    async fn count(d: Dialect, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {}", quote(d, table));
        match d {
            Dialect::Postgres => {
                let mut c = PgConnection::connect(PG_URL).await.expect("PostgreSQL up");
                sqlx::query_scalar(&sql)
                    .fetch_one(&mut c)
                    .await
                    .expect("count")
            }
            Dialect::MySql => {
                let mut c = MySqlConnection::connect(MY_URL).await.expect("MariaDB up");
                sqlx::query_scalar(&sql)
                    .fetch_one(&mut c)
                    .await
                    .expect("count")
            }
        }
    }

    /// Runs one generic async test body once per dialect, as two named tests.
    macro_rules! per_dialect {
        ($($body:ident),* $(,)?) => {
            mod postgres {
                $(#[tokio::test] async fn $body() { super::$body(super::Dialect::Postgres).await; })*
            }
            mod mysql {
                $(#[tokio::test] async fn $body() { super::$body(super::Dialect::MySql).await; })*
            }
        };
    }

    per_dialect!(
        creates_table_and_round_trips_every_type,
        upsert_same_id_replaces_row,
        batches_span_statements_in_one_transaction,
        existing_table_missing_column_is_named,
        bad_table_names_are_refused,
        connection_refused_is_retryable_and_redacted,
        invalid_records_are_permanent_and_write_nothing,
        table_dropped_after_connect_is_permanent,
    );

    async fn creates_table_and_round_trips_every_type(d: Dialect) {
        let table = unique_table("types");
        let sink = SqlSink::connect(&target(d, &table), &view())
            .await
            .expect("connect creates the table");
        assert_eq!(sink.dialect(), d);

        let (d_text, d_int, d_double, d_ts, d_json, d_bool, d_id) = match d {
            Dialect::Postgres => (
                "text",
                "bigint",
                "double precision",
                "timestamp with time zone",
                "jsonb",
                "boolean",
                "text",
            ),
            // MariaDB reports JSON as longtext and BOOLEAN as tinyint.
            Dialect::MySql => (
                "longtext", "bigint", "double", "datetime", "longtext", "tinyint", "varchar",
            ),
        };
        let expected: BTreeMap<String, (String, bool)> = [
            ("record_id", d_id, false),
            ("name", d_text, false),
            ("nickname", d_text, true),
            ("status", d_text, false),
            ("age", d_int, false),
            ("population", d_int, false),
            ("ratio", d_double, false),
            ("score", d_double, false),
            ("verified", d_bool, false),
            ("issued_at", d_ts, false),
            ("birth_date", "date", false),
            ("expires_on", "date", true),
            ("address", d_json, false),
            ("tags", d_json, false),
            ("prev_status", d_text, true),
            ("attrs", d_json, false),
            ("delivered_at", d_ts, false),
        ]
        .into_iter()
        .map(|(n, t, null)| (n.to_owned(), (t.to_owned(), null)))
        .collect();
        assert_eq!(column_info(d, &table).await, expected);

        let (full_value, full_row) = full("张三丰", 98.25);
        let (sparse_value, sparse_row) = sparse();
        full_value
            .validate(&view())
            .then_some(())
            .expect("full matches the view");
        sparse_value
            .validate(&view())
            .then_some(())
            .expect("sparse matches the view");
        sink.upsert(&[
            ("rec-full".to_owned(), full_value),
            ("rec-sparse".to_owned(), sparse_value),
        ])
        .await
        .expect("upsert");

        let rows = read_rows(d, &table).await;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows["rec-full"].0, full_row);
        assert_eq!(rows["rec-sparse"].0, sparse_row);

        // Connecting again to the now-existing, complete table is fine and keeps the data.
        sink.close().await;
        let again = SqlSink::connect(&target(d, &table), &view())
            .await
            .expect("reconnect to existing table");
        again.close().await;
        assert_eq!(count(d, &table).await, 2);
        drop_table(d, &table).await;
    }

    async fn upsert_same_id_replaces_row(d: Dialect) {
        let table = unique_table("upsert");
        let sink = SqlSink::connect(&target(d, &table), &view())
            .await
            .expect("connect");
        sink.upsert(&[("rec-1".into(), full("first", 1.0).0)])
            .await
            .expect("first upsert");
        sink.upsert(&[("rec-1".into(), sparse().0)])
            .await
            .expect("second upsert");
        let rows = read_rows(d, &table).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows["rec-1"].0,
            sparse().1,
            "second values replace the first"
        );

        // delivered_at is refreshed on update.
        exec(
            d,
            &format!(
                "UPDATE {} SET {} = '2000-01-01 00:00:00'",
                quote(d, &table),
                quote(d, DELIVERED_AT_COLUMN)
            ),
        )
        .await;
        sink.upsert(&[("rec-1".into(), full("third", 3.0).0)])
            .await
            .expect("third upsert");
        let rows = read_rows(d, &table).await;
        let old = Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        assert!(rows["rec-1"].1 > old, "delivered_at refreshed on update");
        assert_eq!(rows["rec-1"].0, full("third", 3.0).1);

        // Duplicates inside one call: the last one wins. Ids differing only in case are distinct.
        sink.upsert(&[
            ("rec-1".into(), full("fourth", 4.0).0),
            ("REC-1".into(), full("upper", 9.0).0),
            ("rec-1".into(), full("fifth", 5.0).0),
        ])
        .await
        .expect("upsert with duplicates");
        let rows = read_rows(d, &table).await;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows["rec-1"].0.name, "fifth");
        assert_eq!(rows["rec-1"].0.score, 5.0);
        assert_eq!(rows["REC-1"].0.name, "upper");
        sink.close().await;
        drop_table(d, &table).await;
    }

    async fn batches_span_statements_in_one_transaction(d: Dialect) {
        let table = unique_table("batch");
        let sink = SqlSink::connect(&target(d, &table), &view())
            .await
            .expect("connect");
        let rows: Vec<(String, Value)> = (0..1203)
            .map(|i| (format!("id-{i}"), full(&format!("n{i}"), f64::from(i)).0))
            .collect();
        sink.upsert(&rows).await.expect("large upsert");
        assert_eq!(count(d, &table).await, 1203);
        let back = read_rows(d, &table).await;
        assert_eq!(back["id-0"].0.name, "n0");
        assert_eq!(back["id-777"].0.score, 777.0);
        assert_eq!(back["id-1202"].0.name, "n1202");

        // A failure in the second statement rolls back the first one too.
        exec(
            d,
            &format!(
                "ALTER TABLE {} ADD CONSTRAINT score_cap CHECK ({} < 5000)",
                quote(d, &table),
                quote(d, "score")
            ),
        )
        .await;
        let mut more: Vec<(String, Value)> = (0..600)
            .map(|i| (format!("more-{i}"), full("m", 1.0).0))
            .collect();
        more[599].1 = full("too big", 9999.0).0;
        let err = sink
            .upsert(&more)
            .await
            .expect_err("check constraint fails");
        assert!(
            matches!(
                err,
                SqlError::Database {
                    operation: "upsert",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            !err.is_retryable(),
            "constraint violation is permanent: {err}"
        );
        assert_eq!(
            count(d, &table).await,
            1203,
            "nothing of the failed call committed"
        );
        sink.close().await;
        drop_table(d, &table).await;
    }

    async fn existing_table_missing_column_is_named(d: Dialect) {
        let table = unique_table("missing");
        let (id_type, ts_type) = match d {
            Dialect::Postgres => ("TEXT", "TIMESTAMPTZ"),
            Dialect::MySql => ("VARCHAR(128)", "DATETIME(3)"),
        };
        exec(
            d,
            &format!(
                "CREATE TABLE {} ({} {id_type} PRIMARY KEY, {} TEXT, {} TEXT, {} {ts_type})",
                quote(d, &table),
                quote(d, "record_id"),
                quote(d, "name"),
                quote(d, "status"),
                quote(d, "delivered_at"),
            ),
        )
        .await;
        let err = SqlSink::connect(&target(d, &table), &view())
            .await
            .expect_err("table lacks columns");
        let SqlError::MissingColumns { table: t, columns } = &err else {
            panic!("expected MissingColumns, got {err}");
        };
        assert_eq!(t, &table);
        assert_eq!(
            columns,
            &[
                "nickname",
                "age",
                "population",
                "ratio",
                "score",
                "verified",
                "issued_at",
                "birth_date",
                "expires_on",
                "address",
                "tags",
                "prev_status",
                "attrs"
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains(&table) && text.contains("birth_date"),
            "{text}"
        );
        assert!(!err.is_retryable());
        drop_table(d, &table).await;
    }

    async fn bad_table_names_are_refused(d: Dialect) {
        let long = "a".repeat(64);
        for bad in [
            "",
            "1table",
            "my-table",
            "a.b.c",
            ".t",
            "t.",
            "t; DROP TABLE x",
            "t\"x",
            "t`x",
            "表",
            " t",
            long.as_str(),
        ] {
            let err = SqlSink::connect(&target(d, bad), &view())
                .await
                .expect_err("bad name refused");
            assert!(
                matches!(&err, SqlError::InvalidTableName { name, .. } if name == bad),
                "{bad:?}: {err}"
            );
            assert!(!err.is_retryable());
        }
        // A schema-qualified name works and lands in that schema/database.
        let table = unique_table("qualified");
        let schema = match d {
            Dialect::Postgres => "public",
            Dialect::MySql => "test",
        };
        let sink = SqlSink::connect(&target(d, &format!("{schema}.{table}")), &view())
            .await
            .expect("qualified name");
        sink.upsert(&[("q".into(), full("q", 1.0).0)])
            .await
            .expect("upsert");
        assert_eq!(count(d, &table).await, 1);
        sink.close().await;
        drop_table(d, &table).await;
    }

    async fn connection_refused_is_retryable_and_redacted(d: Dialect) {
        let scheme = match d {
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        };
        let t = SqlTarget {
            url: format!("{scheme}://admin:s3cr%40etPW@127.0.0.1:1/test"),
            table: "orders".into(),
        };
        let debug = format!("{t:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(debug.contains("admin:***@127.0.0.1:1/test"), "{debug}");
        let err = SqlSink::connect(&t, &view())
            .await
            .expect_err("nothing listens on port 1");
        assert!(err.is_retryable(), "connection refused is retryable: {err}");
        assert!(
            matches!(
                &err,
                SqlError::Database {
                    operation: "connect",
                    ..
                }
            ),
            "{err}"
        );
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(!shown.contains("etPW"), "{shown}");
            assert!(shown.contains("admin:***@127.0.0.1:1"), "{shown}");
        }
    }

    async fn invalid_records_are_permanent_and_write_nothing(d: Dialect) {
        let table = unique_table("invalid");
        let sink = SqlSink::connect(&target(d, &table), &view())
            .await
            .expect("connect");
        let good = ("good".to_owned(), full("ok", 1.0).0);
        let with = |field: &str, v: Value| {
            let Value::Record(mut fields) = full("x", 1.0).0 else {
                unreachable!("full() builds a record")
            };
            for f in &mut fields {
                if f.0 == field {
                    f.1 = v.clone();
                }
            }
            Value::Record(fields)
        };
        let without = |field: &str| {
            let Value::Record(mut fields) = full("x", 1.0).0 else {
                unreachable!("full() builds a record")
            };
            fields.retain(|f| f.0 != field);
            Value::Record(fields)
        };
        let cases: Vec<(String, Value, &str)> = vec![
            ("r".into(), with("population", s("many")), "population"),
            ("r".into(), with("name", Value::Null), "NOT NULL"),
            ("r".into(), with("issued_at", s("yesterday")), "issued_at"),
            ("r".into(), without("score"), "score"),
            ("r".into(), s("not a record"), "not an Avro record"),
            ("x".repeat(129), full("x", 1.0).0, "longer than 128"),
            (String::new(), full("x", 1.0).0, "empty"),
        ];
        for (id, value, needle) in cases {
            let err = sink
                .upsert(&[good.clone(), (id, value)])
                .await
                .expect_err("invalid record refused");
            assert!(matches!(err, SqlError::InvalidRecord { .. }), "{err}");
            assert!(!err.is_retryable());
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
        assert_eq!(
            count(d, &table).await,
            0,
            "valid row in a failed call not written"
        );
        sink.close().await;
        drop_table(d, &table).await;
    }

    async fn table_dropped_after_connect_is_permanent(d: Dialect) {
        let table = unique_table("dropped");
        let sink = SqlSink::connect(&target(d, &table), &view())
            .await
            .expect("connect");
        drop_table(d, &table).await;
        let err = sink
            .upsert(&[("a".into(), full("a", 1.0).0)])
            .await
            .expect_err("table is gone");
        assert!(
            matches!(
                err,
                SqlError::Database {
                    operation: "upsert",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.is_retryable(), "undefined table is permanent: {err}");
        assert!(err.to_string().contains(&table), "{err}");
        sink.close().await;
    }

    #[tokio::test]
    async fn mysql_wrong_password_is_permanent_and_redacted() {
        let t = SqlTarget {
            url: "mysql://root:Wr0ngPassw0rd@127.0.0.1:3306/test".into(),
            table: "orders".into(),
        };
        let err = SqlSink::connect(&t, &view())
            .await
            .expect_err("root has no such password");
        assert!(!err.is_retryable(), "access denied is permanent: {err}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("Wr0ngPassw0rd"), "{shown}");
        assert!(shown.contains("1045"), "names the server error: {shown}");
    }

    // ----- unit tests (no server) -----

    #[test]
    fn redacts_userinfo_and_password_params() {
        assert_eq!(
            redact_url("postgres://postgres:pw@127.0.0.1:5432/test"),
            "postgres://postgres:***@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("mysql://u:p@ss:w@rd@h:3306/db?ssl-mode=required&password=x#f"),
            "mysql://u:***@h:3306/db?ssl-mode=required&password=***#f"
        );
        assert_eq!(redact_url("no scheme user:pw@host"), "<unparseable URL>");
    }

    #[test]
    fn scrubs_raw_and_decoded_password_from_messages() {
        let secrets = Secrets::from_url("postgres://u:a%2Fb%40c@h/db?sslpassword=zz9");
        assert_eq!(
            secrets.scrub("x a%2Fb%40c y a/b@c z zz9"),
            "x *** y *** z ***"
        );
        assert_eq!(
            Secrets::from_url("postgres://u@h/db").scrub("u h db"),
            "u h db"
        );
    }

    #[test]
    fn table_names() {
        assert_eq!(
            TableName::parse("s_1.Orders")
                .expect("valid")
                .quoted(Dialect::Postgres),
            "\"s_1\".\"Orders\""
        );
        assert_eq!(
            TableName::parse("_t")
                .expect("valid")
                .quoted(Dialect::MySql),
            "`_t`"
        );
        assert!(TableName::parse(&"a".repeat(63)).is_ok());
        assert!(TableName::parse(&"a".repeat(64)).is_err());
        assert!(TableName::parse("a..b").is_err());
    }

    #[test]
    fn upsert_sql_shapes() {
        let table = TableName::parse("t").expect("valid");
        let cols = vec![
            Column {
                name: "a".into(),
                kind: ColKind::Text,
                nullable: false,
            },
            Column {
                name: "b".into(),
                kind: ColKind::BigInt,
                nullable: true,
            },
        ];
        assert_eq!(
            upsert_sql(Dialect::Postgres, &table, &cols, 2),
            "INSERT INTO \"t\" (\"record_id\", \"a\", \"b\", \"delivered_at\") VALUES \
             ($1, $2, $3, now()), ($4, $5, $6, now()) ON CONFLICT (\"record_id\") DO UPDATE SET \
             \"a\" = EXCLUDED.\"a\", \"b\" = EXCLUDED.\"b\", \"delivered_at\" = EXCLUDED.\"delivered_at\""
        );
        assert_eq!(
            upsert_sql(Dialect::MySql, &table, &cols, 1),
            "INSERT INTO `t` (`record_id`, `a`, `b`, `delivered_at`) VALUES \
             (?, ?, ?, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE \
             `a` = VALUES(`a`), `b` = VALUES(`b`), `delivered_at` = VALUES(`delivered_at`)"
        );
    }

    #[test]
    fn retryable_classification_of_server_codes() {
        for code in [
            "08006", "08001", "40001", "40P01", "57014", "57P01", "53300",
        ] {
            assert!(is_retryable_pg_code(code), "{code}");
        }
        for code in [
            "42P01", "42703", "42804", "23505", "23514", "22021", "28P01",
        ] {
            assert!(!is_retryable_pg_code(code), "{code}");
        }
        for n in [1213, 1205, 2006, 2013, 1040, 1969] {
            assert!(is_retryable_mysql(n, Some("HY000")), "{n}");
        }
        for n in [1045, 1146, 1054, 1062, 4025, 1366, 1406] {
            assert!(!is_retryable_mysql(n, Some("HY000")), "{n}");
        }
        assert!(is_retryable_sqlx(&sqlx::Error::PoolTimedOut));
        assert!(!is_retryable_sqlx(&sqlx::Error::PoolClosed));
    }

    #[test]
    fn schema_to_columns() {
        let cols = columns_for(&view()).expect("view maps");
        let find = |n: &str| cols.iter().find(|c| c.name == n).expect(n).clone();
        assert_eq!(find("prev_status").kind, ColKind::Text, "enum ref resolves");
        assert!(find("prev_status").nullable);
        assert_eq!(find("address").kind, ColKind::Json);
        assert_eq!(find("issued_at").kind, ColKind::Timestamp(TsUnit::Millis));
        assert!(!find("issued_at").nullable);

        let bad = |json: &str| {
            let schema = Schema::parse_str(json).expect("parses");
            columns_for(&schema).expect_err("refused").to_string()
        };
        let dec = bad(
            r#"{"type":"record","name":"R","fields":[{"name":"amount","type":
            {"type":"bytes","logicalType":"decimal","precision":10,"scale":2}}]}"#,
        );
        assert!(dec.contains("amount") && dec.contains("decimal"), "{dec}");
        let reserved =
            bad(r#"{"type":"record","name":"R","fields":[{"name":"record_id","type":"string"}]}"#);
        assert!(reserved.contains("record_id"), "{reserved}");
        let not_record = bad(r#"{"type":"array","items":"string"}"#);
        assert!(
            not_record.contains("must be an Avro record"),
            "{not_record}"
        );
    }

    #[test]
    fn natural_json_of_values() {
        let v = Value::Record(vec![
            ("e".into(), Value::Enum(0, "A".into())),
            ("u".into(), Value::Union(1, Box::new(Value::Long(7)))),
            ("t".into(), Value::TimestampMillis(1_700_000_000_123)),
            ("d".into(), Value::Date(19_000)),
            ("f".into(), Value::Float(0.1)),
            ("nan".into(), Value::Double(f64::NAN)),
            ("b".into(), Value::Bytes(vec![0xde, 0xad])),
            ("n".into(), Value::Null),
        ]);
        assert_eq!(
            to_json(&v).expect("converts"),
            json!({"e": "A", "u": 7, "t": "2023-11-14T22:13:20.123Z", "d": "2022-01-08",
                   "f": 0.1, "nan": "NaN", "b": "dead", "n": null})
        );
    }
}

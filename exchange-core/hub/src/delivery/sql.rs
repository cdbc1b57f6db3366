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

mod columns;
use columns::*;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError};
use sqlx::postgres::{PgConnectOptions, PgDatabaseError};
use sqlx::{MySqlPool, PgPool};
use unsilo_schemas::redact::redact_url;

/// Name of the primary-key column holding the record id.
pub const RECORD_ID_COLUMN: &str = "record_id";
/// Name of the column, present when the grant limits how long the subscriber may keep records, holding until
/// when it may keep each row. Its value comes in the row's record as a field of this name.
pub const RETAIN_UNTIL_COLUMN: &str = "retain_until";
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
/// Bound on establishing the first connection in [`SqlWriter::connect`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on waiting for a pooled connection in [`SqlWriter::upsert`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pool size: deliveries to one table are sequential, so a few connections suffice.
const POOL_MAX_CONNECTIONS: u32 = 3;
/// Bound on one whole [`SqlWriter::upsert`] transaction, so a hung server cannot stall delivery.
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
    /// Add a `retain_until` timestamp column: until when the subscriber may keep each row (the grant's
    /// `retain_days` after the record's time); rows carry it in [`RETAIN_UNTIL_COLUMN`].
    pub retain_until: bool,
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
pub struct SqlWriter {
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

impl fmt::Debug for SqlWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never derive: the pools' connect options hold the password.
        f.debug_struct("SqlWriter")
            .field("dialect", &self.dialect())
            .field("target", &self.describe)
            .field("columns", &self.columns.len())
            .finish()
    }
}

impl SqlWriter {
    /// Validates the table name and view schema, connects, then creates the table if it does not
    /// exist (`CREATE TABLE IF NOT EXISTS`) and checks that the table has every needed column
    /// (`record_id`, one per top-level view field, `delivered_at`). An existing table with
    /// missing columns gives [`SqlError::MissingColumns`] naming them. Column types of an existing
    /// table are not checked; a mismatch shows up as a permanent error on upsert.
    pub async fn connect(target: &SqlTarget, view_schema: &Schema) -> Result<SqlWriter, SqlError> {
        let table = TableName::parse(&target.table)?;
        let mut columns = columns_for(view_schema)?;
        if target.retain_until {
            if columns.iter().any(|c| c.name == RETAIN_UNTIL_COLUMN) {
                return Err(SqlError::UnsupportedSchema {
                    reason: format!("the view has a field named {RETAIN_UNTIL_COLUMN}, which the retention column needs"),
                });
            }
            columns.push(Column {
                name: RETAIN_UNTIL_COLUMN.to_owned(),
                kind: ColKind::Timestamp(TsUnit::Millis),
                nullable: true,
            });
        }
        let parts = TargetParts::of(target)?;
        let (dialect, ctx) = (parts.dialect, parts.ctx());
        let invalid_url = |e| parts.invalid_url(e);
        let create_sql = create_table_sql(dialect, &table, &columns);
        let (present, pool) = match dialect {
            Dialect::Postgres => {
                let options = PgConnectOptions::from_str(&target.url).map_err(invalid_url)?;
                let options = options.application_name("unsilo-sqlsink");
                prepare_table(options, &table, &create_sql, &ctx, DbPool::Pg).await?
            }
            Dialect::MySql => {
                let options = MySqlConnectOptions::from_str(&target.url).map_err(invalid_url)?;
                let options = options.charset("utf8mb4");
                prepare_table(options, &table, &create_sql, &ctx, DbPool::My).await?
            }
        };
        let missing = missing_columns(dialect, &columns, &present);
        if !missing.is_empty() {
            close_pool(&pool).await;
            return Err(SqlError::MissingColumns {
                table: target.table.clone(),
                columns: missing,
            });
        }
        let TargetParts {
            describe, secrets, ..
        } = parts;
        tracing::info!(target_db = %describe, columns = columns.len(), "SQL sink ready");
        Ok(SqlWriter {
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
        let sql_for = |rows: usize| upsert_sql(ctx.dialect, &self.table, &self.columns, rows);
        match &self.pool {
            DbPool::Pg(pool) => {
                upsert_in_transaction(
                    pool,
                    cells,
                    rows_per_statement,
                    sql_for,
                    ctx,
                    |query, cell| match cell {
                        Cell::Text(v) => query.bind(v.as_deref()),
                        Cell::Int(v) => query.bind(*v),
                        Cell::Double(v) => query.bind(*v),
                        Cell::Bool(v) => query.bind(*v),
                        Cell::Timestamp(v) => query.bind(*v),
                        Cell::Date(v) => query.bind(*v),
                        Cell::Json(v) => query.bind(v.as_ref().map(sqlx::types::Json)),
                    },
                )
                .await?
            }
            DbPool::My(pool) => {
                upsert_in_transaction(
                    pool,
                    cells,
                    rows_per_statement,
                    sql_for,
                    ctx,
                    |query, cell| {
                        match cell {
                            Cell::Text(v) => query.bind(v.as_deref()),
                            Cell::Int(v) => query.bind(*v),
                            Cell::Double(v) => query.bind(*v),
                            Cell::Bool(v) => query.bind(*v),
                            // DATETIME has no zone: store UTC wall-clock time.
                            Cell::Timestamp(v) => query.bind(v.map(|t| t.naive_utc())),
                            Cell::Date(v) => query.bind(*v),
                            Cell::Json(v) => query.bind(v.as_ref().map(|j| j.to_string())),
                        }
                    },
                )
                .await?
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

/// What every connection to a target starts from: the password to scrub from messages, the redacted URL, the
/// description for logs and errors, and the server family.
struct TargetParts {
    secrets: Secrets,
    redacted: String,
    describe: String,
    dialect: Dialect,
}

impl TargetParts {
    fn of(target: &SqlTarget) -> Result<Self, SqlError> {
        let secrets = Secrets::from_url(&target.url);
        let redacted = redact_url(&target.url);
        let describe = format!("{redacted} table {}", target.table);
        let dialect = dialect_of(&target.url).ok_or_else(|| SqlError::InvalidUrl {
            url: redacted.clone(),
            reason: "scheme must be postgres://, postgresql://, mysql:// or mariadb://".into(),
        })?;
        Ok(Self {
            secrets,
            redacted,
            describe,
            dialect,
        })
    }

    /// The context errors of this target are reported in.
    fn ctx(&self) -> ErrCtx<'_> {
        ErrCtx {
            dialect: self.dialect,
            describe: &self.describe,
            secrets: &self.secrets,
        }
    }

    /// A URL the driver refused, its password scrubbed from the reason.
    fn invalid_url(&self, e: sqlx::Error) -> SqlError {
        SqlError::InvalidUrl {
            url: self.redacted.clone(),
            reason: self.secrets.scrub(&e.to_string()),
        }
    }
}

/// Removes the rows of `target`'s table whose [`RETAIN_UNTIL_COLUMN`] lies before `before_ms` (the grant's
/// retention has run out for them), over one direct connection, and returns how many went. A table that does not
/// exist yet has nothing to remove (0); one without the column is an error naming it.
pub async fn remove_rows_past_retention(
    target: &SqlTarget,
    before_ms: i64,
) -> Result<u64, SqlError> {
    let table = TableName::parse(&target.table)?;
    let parts = TargetParts::of(target)?;
    let (dialect, ctx) = (parts.dialect, parts.ctx());
    let invalid_url = |e| parts.invalid_url(e);
    let before = DateTime::<Utc>::from_timestamp_millis(before_ms).unwrap_or_default();
    let column = quote(dialect, RETAIN_UNTIL_COLUMN);
    let removed = match dialect {
        Dialect::Postgres => {
            let options = PgConnectOptions::from_str(&target.url).map_err(invalid_url)?;
            let mut conn = ctx
                .timed(
                    "connect",
                    <sqlx::postgres::PgConnection as sqlx::Connection>::connect_with(&options),
                )
                .await?;
            let sql = format!("DELETE FROM {} WHERE {column} < $1", table.quoted(dialect));
            let result = ctx
                .timed(
                    "remove rows past retention",
                    sqlx::query(&sql).bind(before).execute(&mut conn),
                )
                .await;
            let _ = sqlx::Connection::close(conn).await;
            result.map(|r| r.rows_affected())
        }
        Dialect::MySql => {
            let options = MySqlConnectOptions::from_str(&target.url).map_err(invalid_url)?;
            let mut conn = ctx
                .timed(
                    "connect",
                    <sqlx::mysql::MySqlConnection as sqlx::Connection>::connect_with(&options),
                )
                .await?;
            let sql = format!("DELETE FROM {} WHERE {column} < ?", table.quoted(dialect));
            let result = ctx
                .timed(
                    "remove rows past retention",
                    // DATETIME holds UTC wall-clock time.
                    sqlx::query(&sql)
                        .bind(before.naive_utc())
                        .execute(&mut conn),
                )
                .await;
            let _ = sqlx::Connection::close(conn).await;
            result.map(|r| r.rows_affected())
        }
    };
    match removed {
        Err(SqlError::Database { message, .. }) if is_missing_table(dialect, &message) => Ok(0),
        other => other,
    }
}

/// Whether a server's message says the table does not exist (PostgreSQL SQLSTATE 42P01, MySQL error 1146).
fn is_missing_table(dialect: Dialect, message: &str) -> bool {
    match dialect {
        Dialect::Postgres => message.contains("42P01"),
        Dialect::MySql => message.contains("1146"),
    }
}

async fn close_pool(pool: &DbPool) {
    match pool {
        DbPool::Pg(p) => p.close().await,
        DbPool::My(p) => p.close().await,
    }
}

/// Connects once to create the table if needed and read the names of its columns, then opens
/// the lazy pool the writer upserts through (`pool_of` says which [`DbPool`] it is).
async fn prepare_table<DB>(
    options: <DB::Connection as sqlx::Connection>::Options,
    table: &TableName,
    create_sql: &str,
    ctx: &ErrCtx<'_>,
    pool_of: impl FnOnce(sqlx::Pool<DB>) -> DbPool,
) -> Result<(Vec<String>, DbPool), SqlError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let columns_sql = match ctx.dialect {
        Dialect::Postgres => {
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2"
        }
        Dialect::MySql => {
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?"
        }
    };
    let mut conn = ctx
        .timed(
            "connect",
            <DB::Connection as sqlx::Connection>::connect_with(&options),
        )
        .await?;
    let present = async {
        ctx.timed("create table", sqlx::query(create_sql).execute(&mut conn))
            .await?;
        let query = sqlx::query_scalar::<DB, String>(columns_sql)
            .bind(table.schema.as_deref())
            .bind(table.name.as_str());
        ctx.timed("check columns", query.fetch_all(&mut conn)).await
    }
    .await;
    // Best effort: the table work is done (or failed) either way.
    let _ = sqlx::Connection::close(conn).await;
    let pool = sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(POOL_MAX_CONNECTIONS)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options);
    Ok((present?, pool_of(pool)))
}

/// One sqlx query with its arguments, as [`upsert_in_transaction`] binds cells into it.
type BoundQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>;

/// Sends `cells` in statements of at most `rows_per_statement` rows inside one transaction,
/// binding each cell with the dialect's `bind`.
async fn upsert_in_transaction<DB>(
    pool: &sqlx::Pool<DB>,
    cells: &[Vec<Cell>],
    rows_per_statement: usize,
    sql_for: impl Fn(usize) -> String,
    ctx: &ErrCtx<'_>,
    bind: impl for<'q> Fn(BoundQuery<'q, DB>, &'q Cell) -> BoundQuery<'q, DB>,
) -> Result<(), SqlError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let mut tx = pool.begin().await.map_err(|e| ctx.db("begin", e))?;
    for chunk in cells.chunks(rows_per_statement) {
        let sql = sql_for(chunk.len());
        let query = chunk.iter().flatten().fold(sqlx::query::<DB>(&sql), &bind);
        query
            .execute(&mut *tx)
            .await
            .map_err(|e| ctx.db("upsert", e))?;
    }
    tx.commit().await.map_err(|e| ctx.db("commit", e))
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
        if let Ok(parsed) = url::Url::parse(url.trim()) {
            if let Some(pw) = parsed.password() {
                found.push(pw.to_owned());
            }
            let raw_pairs = parsed.query().unwrap_or("").split('&');
            for (key, value) in raw_pairs.filter_map(|pair| pair.split_once('=')) {
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

#[cfg(test)]
mod tests;

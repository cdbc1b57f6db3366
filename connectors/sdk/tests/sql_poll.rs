//! SQL poll against the real PostgreSQL and MariaDB/MySQL servers of this machine.
//!
//! URLs come from `UNSILO_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`) and
//! `UNSILO_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306/test`). A server that does not answer fails the
//! test with a message saying so; nothing is skipped. Every test creates its own table with a random suffix and
//! drops it at the end.
//!
//! The shared bodies (restart, sink failure, bad names) run once per backend: on PostgreSQL with a 低保 roster
//! polled by `(updated_at, id)`, on MySQL with a public-security incident table polled by its auto-increment id.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{Connection, Executor, MySqlConnection, PgConnection};
use tokio::task::JoinHandle;
use unsilo_connectors::sdk::{
    CheckpointStore, MemoryCheckpointStore, RecordingSink, RetryHint, Shutdown, ShutdownTrigger,
    Source, SourceContext, SourceError,
};
use unsilo_connectors::transport::sql_poll::{SqlPollConfig, SqlPollSource};

const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------------------
// A sink that records what it got, and can fail once
// ---------------------------------------------------------------------------------------------------------------

/// The rows' ids, in arrival order.
fn ids(sink: &RecordingSink) -> Vec<i64> {
    sink.records()
        .iter()
        .map(|r| r["id"].as_i64().expect("an integer id"))
        .collect()
}

struct Running {
    trigger: ShutdownTrigger,
    handle: JoinHandle<Result<(), SourceError>>,
}

impl Running {
    async fn stop(self) {
        self.trigger.trigger();
        let outcome = tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("the source stops on shutdown")
            .expect("the source task does not panic");
        assert!(outcome.is_ok(), "the source failed: {outcome:?}");
    }
}

fn start(
    mut source: SqlPollSource,
    sink: Arc<RecordingSink>,
    checkpoints: Arc<MemoryCheckpointStore>,
) -> Running {
    let (trigger, shutdown) = Shutdown::new();
    let ctx = SourceContext {
        connector: "sql-test".into(),
        sink,
        checkpoints,
        shutdown,
    };
    let handle = tokio::spawn(async move { source.run(ctx).await });
    Running { trigger, handle }
}

/// Runs a source to its end (for failures): it must return within [`PATIENCE`].
async fn run_to_end(
    mut source: SqlPollSource,
    sink: Arc<RecordingSink>,
    checkpoints: Arc<MemoryCheckpointStore>,
) -> Result<(), SourceError> {
    let ctx = SourceContext {
        connector: "sql-test".into(),
        sink,
        checkpoints,
        shutdown: Shutdown::never(),
    };
    tokio::time::timeout(PATIENCE, source.run(ctx))
        .await
        .expect("the source gives up within the test's patience")
}

// ---------------------------------------------------------------------------------------------------------------
// The databases
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Postgres,
    MySql,
}

impl Backend {
    fn url(self) -> String {
        match self {
            Backend::Postgres => std::env::var("UNSILO_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            Backend::MySql => std::env::var("UNSILO_TEST_MYSQL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
        }
    }
}

enum Db {
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

impl Db {
    async fn connect(backend: Backend) -> Db {
        let url = backend.url();
        let connected = match backend {
            Backend::Postgres => PgConnection::connect(&url).await.map(Db::Postgres),
            Backend::MySql => MySqlConnection::connect(&url).await.map(Db::MySql),
        };
        connected.unwrap_or_else(|e| {
            panic!(
                "the {backend:?} test server at {url} does not answer ({e}); start it, or point {} at one",
                match backend {
                    Backend::Postgres => "UNSILO_TEST_POSTGRES",
                    Backend::MySql => "UNSILO_TEST_MYSQL",
                }
            )
        })
    }

    async fn exec(&mut self, sql: &str) {
        let done = match self {
            Db::Postgres(c) => c.execute(sqlx::raw_sql(sql)).await.map(|_| ()),
            Db::MySql(c) => c.execute(sqlx::raw_sql(sql)).await.map(|_| ()),
        };
        if let Err(e) = done {
            panic!("{sql}: {e}");
        }
    }
}

/// A table for one test: created by [`Fixture::with_table`], dropped after the body, whatever happened.
#[derive(Clone, Debug)]
struct Fixture {
    backend: Backend,
    table: String,
    cursor_column: &'static str,
    id_column: &'static str,
}

impl Fixture {
    /// PostgreSQL: a 低保 (minimum living allowance) roster, polled by `(updated_at, id)`.
    fn dibao() -> Fixture {
        Fixture {
            backend: Backend::Postgres,
            table: format!("dibao_{:08x}", rand::random::<u32>()),
            cursor_column: "updated_at",
            id_column: "id",
        }
    }

    /// MySQL: a public-security incident table, polled by its auto-increment id.
    fn incident() -> Fixture {
        Fixture {
            backend: Backend::MySql,
            table: format!("incident_{:08x}", rand::random::<u32>()),
            cursor_column: "id",
            id_column: "id",
        }
    }

    fn create_sql(&self) -> String {
        let t = &self.table;
        match self.backend {
            Backend::Postgres => format!(
                "CREATE TABLE {t} (
                    id BIGSERIAL PRIMARY KEY,
                    cert_no VARCHAR(18) NOT NULL,
                    name TEXT NOT NULL,
                    village_code CHAR(12) NOT NULL,
                    household_size INTEGER,
                    allowance NUMERIC(10, 2) NOT NULL,
                    active BOOLEAN NOT NULL DEFAULT TRUE,
                    extra JSONB,
                    approved_on DATE,
                    remark TEXT,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT '2024-04-01 08:00:00+08',
                    updated_at TIMESTAMP NOT NULL
                )"
            ),
            Backend::MySql => format!(
                "CREATE TABLE {t} (
                    id BIGINT AUTO_INCREMENT PRIMARY KEY,
                    incident_type VARCHAR(32) NOT NULL,
                    occurred_at DATETIME NOT NULL,
                    place VARCHAR(200) NOT NULL,
                    severity TINYINT NOT NULL,
                    loss DECIMAL(12, 2),
                    reported_online TINYINT(1) NOT NULL,
                    note TEXT,
                    recorded_at TIMESTAMP NOT NULL DEFAULT '2024-05-02 00:00:00'
                ) DEFAULT CHARSET = utf8mb4"
            ),
        }
    }

    /// SQL inserting row number `n` (ids count from 1 in a fresh table; later rows have later times).
    fn insert_sql(&self, n: u32) -> String {
        let t = &self.table;
        match self.backend {
            Backend::Postgres => format!(
                "INSERT INTO {t} (cert_no, name, village_code, household_size, allowance, extra, approved_on, updated_at)
                 VALUES ('6101131950010100{n:02}', '张三{n}', '610113001001', 3, 650.00 + {n},
                         '{{\"disability\": false}}', '2024-04-20', TIMESTAMP '2024-05-01 08:00:00' + INTERVAL '{n} minutes')"
            ),
            Backend::MySql => format!(
                "INSERT INTO {t} (incident_type, occurred_at, place, severity, loss, reported_online)
                 VALUES ('盗窃', '2024-05-01 21:30:00' + INTERVAL {n} MINUTE, '西安市雁塔区小寨东路{n}号', 2, 3500.00, 1)"
            ),
        }
    }

    fn config(&self, batch_size: u32) -> SqlPollConfig {
        serde_json::from_value(json!({
            "url": self.backend.url(),
            "table": self.table,
            "cursor_column": self.cursor_column,
            "id_column": self.id_column,
            "batch_size": batch_size,
            "poll_interval": "100ms",
            "timeout": "20s",
        }))
        .expect("a valid config")
    }

    fn source(&self, batch_size: u32) -> SqlPollSource {
        self.config(batch_size).build().expect("the config builds")
    }

    async fn insert(&self, db: &mut Db, rows: std::ops::RangeInclusive<u32>) {
        for n in rows {
            db.exec(&self.insert_sql(n)).await;
        }
    }

    /// Creates the table, runs `body`, drops the table, then lets the body's panic (if any) through.
    async fn with_table<F, Fut>(self, body: F)
    where
        F: FnOnce(Fixture, Db) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut db = Db::connect(self.backend).await;
        db.exec(&self.create_sql()).await;
        let body_db = Db::connect(self.backend).await;
        let outcome = tokio::spawn(body(self.clone(), body_db)).await;
        db.exec(&format!("DROP TABLE {}", self.table)).await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared bodies, once per backend
// ---------------------------------------------------------------------------------------------------------------

/// Reads five rows, stops; two more rows arrive; a new run with the same checkpoint store reads exactly those
/// two — nothing acknowledged again, nothing lost.
async fn restart_resumes_after_the_checkpoint(fx: Fixture) {
    fx.clone()
        .with_table(|fx, mut db| async move {
            fx.insert(&mut db, 1..=5).await;
            let checkpoints = Arc::new(MemoryCheckpointStore::default());
            let first = Arc::new(RecordingSink::default());
            let running = start(fx.source(2), first.clone(), checkpoints.clone());
            first.wait_for(5, PATIENCE).await;
            running.stop().await;
            assert_eq!(ids(&first), vec![1, 2, 3, 4, 5]);

            fx.insert(&mut db, 6..=7).await;
            let second = Arc::new(RecordingSink::default());
            let running = start(fx.source(2), second.clone(), checkpoints.clone());
            second.wait_for(2, PATIENCE).await;
            running.stop().await;
            assert_eq!(
                ids(&second),
                vec![6, 7],
                "the restarted poll reads only the new rows"
            );
            let checkpoint = checkpoints.load().await.unwrap().expect("a checkpoint");
            assert_eq!(checkpoint["id"], json!(7));
        })
        .await;
}

/// The sink fails on the second batch: the run ends with a transient error and the checkpoint stays after the
/// first batch; the next run starts right there and reads the rest.
async fn sink_failure_midway_loses_nothing(fx: Fixture) {
    fx.clone()
        .with_table(|fx, mut db| async move {
            fx.insert(&mut db, 1..=7).await;
            let checkpoints = Arc::new(MemoryCheckpointStore::default());
            let failing = Arc::new(RecordingSink::failing_on(2));
            let outcome = run_to_end(fx.source(3), failing.clone(), checkpoints.clone()).await;
            let error = outcome.expect_err("a sink failure ends the run");
            assert_eq!(error.hint, RetryHint::WithBackoff, "{error}");
            assert_eq!(ids(&failing), vec![1, 2, 3]);
            let checkpoint = checkpoints.load().await.unwrap().expect("a checkpoint");
            assert_eq!(
                checkpoint["id"],
                json!(3),
                "checkpoint only what the sink acknowledged"
            );

            let healthy = Arc::new(RecordingSink::default());
            let running = start(fx.source(3), healthy.clone(), checkpoints.clone());
            healthy.wait_for(4, PATIENCE).await;
            running.stop().await;
            assert_eq!(ids(&healthy), vec![4, 5, 6, 7]);
        })
        .await;
}

/// A table that does not exist and a column that does not exist are fatal errors that name them.
async fn bad_names_are_fatal_and_named(fx: Fixture) {
    let missing = format!("no_such_table_{:08x}", rand::random::<u32>());
    let mut config = fx.config(10);
    config.table = Some(missing.clone());
    let error = run_to_end(
        config.build().unwrap(),
        Arc::new(RecordingSink::default()),
        Arc::new(MemoryCheckpointStore::default()),
    )
    .await
    .expect_err("a missing table fails");
    assert_eq!(error.hint, RetryHint::NoRetry, "{error}");
    assert!(error.message.contains(&missing), "{error}");

    fx.clone()
        .with_table(|fx, _db| async move {
            let mut config = fx.config(10);
            config.cursor_column = "changed_at".into();
            let error = run_to_end(
                config.build().unwrap(),
                Arc::new(RecordingSink::default()),
                Arc::new(MemoryCheckpointStore::default()),
            )
            .await
            .expect_err("a missing column fails");
            assert_eq!(error.hint, RetryHint::NoRetry, "{error}");
            assert!(error.message.contains("changed_at"), "{error}");
        })
        .await;
}

#[tokio::test]
async fn postgres_restart_resumes_after_the_checkpoint() {
    restart_resumes_after_the_checkpoint(Fixture::dibao()).await;
}

#[tokio::test]
async fn mysql_restart_resumes_after_the_checkpoint() {
    restart_resumes_after_the_checkpoint(Fixture::incident()).await;
}

#[tokio::test]
async fn postgres_sink_failure_midway_loses_nothing() {
    sink_failure_midway_loses_nothing(Fixture::dibao()).await;
}

#[tokio::test]
async fn mysql_sink_failure_midway_loses_nothing() {
    sink_failure_midway_loses_nothing(Fixture::incident()).await;
}

#[tokio::test]
async fn postgres_bad_table_or_column_is_fatal_and_named() {
    bad_names_are_fatal_and_named(Fixture::dibao()).await;
}

#[tokio::test]
async fn mysql_bad_table_or_column_is_fatal_and_named() {
    bad_names_are_fatal_and_named(Fixture::incident()).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Backend-specific behaviour
// ---------------------------------------------------------------------------------------------------------------

/// A 低保 roster: every column type becomes the JSON a mapping expects; rows sharing one `updated_at` across a
/// batch boundary are each read once; rows inserted later and rows updated later (new `updated_at`) come in.
#[tokio::test]
async fn postgres_dibao_roster_rows_ties_inserts_and_updates() {
    Fixture::dibao()
        .with_table(|fx, mut db| async move {
            let t = &fx.table;
            // Three rows share one update time, and batches of two end in the middle of them.
            for (cert, name, code, allowance, extra, remark) in [
                ("610113195001010011", "张三", "610113001001", "650.00", "'{\"disability\": false, \"household\": 3}'", "NULL"),
                ("610113196203150022", "李四", "610113001002", "720.50", "NULL", "'低保边缘户'"),
                ("610113197511110033", "王五", "610113002001", "580.00", "NULL", "NULL"),
            ] {
                db.exec(&format!(
                    "INSERT INTO {t} (cert_no, name, village_code, household_size, allowance, extra, approved_on, remark, updated_at)
                     VALUES ('{cert}', '{name}', '{code}', 3, {allowance}, {extra}, '2024-04-20', {remark}, '2024-05-01 08:00:00')"
                ))
                .await;
            }
            fx.insert(&mut db, 4..=5).await;

            let checkpoints = Arc::new(MemoryCheckpointStore::default());
            let sink = Arc::new(RecordingSink::default());
            let running = start(fx.source(2), sink.clone(), checkpoints.clone());
            sink.wait_for(5, PATIENCE).await;
            assert_eq!(ids(&sink), vec![1, 2, 3, 4, 5], "ties across a batch boundary are read once each");

            let first = &sink.inputs()[0];
            let expected = json!({
                "id": 1,
                "cert_no": "610113195001010011",
                "name": "张三",
                "village_code": "610113001001",
                "household_size": 3,
                "allowance": "650.00",
                "active": true,
                "extra": {"disability": false, "household": 3},
                "approved_on": "2024-04-20",
                "remark": null,
                "created_at": "2024-04-01 00:00:00+00:00",
                "updated_at": "2024-05-01 08:00:00",
            });
            assert_eq!(first.parsed.as_ref().ok(), Some(&expected));
            let original: Value = serde_json::from_slice(&first.original).expect("original is JSON text");
            assert_eq!(original, expected, "original is the row as JSON text");
            assert_eq!(first.origin, format!("{t} id=1"));
            assert_eq!(sink.records()[1]["remark"], json!("低保边缘户"));
            assert_eq!(sink.records()[1]["allowance"], json!("720.50"));

            // A new row, then a change to 李四's allowance: both come in, the change as a new version of row 2.
            fx.insert(&mut db, 6..=6).await;
            sink.wait_for(6, PATIENCE).await;
            db.exec(&format!(
                "UPDATE {t} SET allowance = 760.50, updated_at = '2024-05-03 09:00:00' WHERE id = 2"
            ))
            .await;
            sink.wait_for(7, PATIENCE).await;
            running.stop().await;
            assert_eq!(ids(&sink), vec![1, 2, 3, 4, 5, 6, 2]);
            assert_eq!(sink.records()[6]["allowance"], json!("760.50"));
            assert_eq!(
                checkpoints.load().await.unwrap(),
                Some(json!({"cursor": "2024-05-03 09:00:00", "id": 2}))
            );
        })
        .await;
}

/// An incident table in MariaDB/MySQL: Chinese text in utf8mb4, DATETIME, DECIMAL, TINYINT(1), NULL; rows
/// inserted after the first poll are picked up by the auto-increment cursor.
#[tokio::test]
async fn mysql_incident_table_rows_and_incremental_inserts() {
    Fixture::incident()
        .with_table(|fx, mut db| async move {
            let t = &fx.table;
            fx.insert(&mut db, 1..=3).await;
            let checkpoints = Arc::new(MemoryCheckpointStore::default());
            let sink = Arc::new(RecordingSink::default());
            let running = start(fx.source(2), sink.clone(), checkpoints.clone());
            sink.wait_for(3, PATIENCE).await;
            let first = &sink.inputs()[0];
            let expected = json!({
                "id": 1,
                "incident_type": "盗窃",
                "occurred_at": "2024-05-01 21:31:00",
                "place": "西安市雁塔区小寨东路1号",
                "severity": 2,
                "loss": "3500.00",
                "reported_online": true,
                "note": null,
                "recorded_at": "2024-05-02 00:00:00+00:00",
            });
            assert_eq!(first.parsed.as_ref().ok(), Some(&expected));
            assert_eq!(first.original, serde_json::to_vec(&expected).unwrap());
            assert_eq!(first.origin, format!("{t} id=1"));

            db.exec(&format!(
                "INSERT INTO {t} (incident_type, occurred_at, place, severity, loss, reported_online, note)
                 VALUES ('交通事故', '2024-05-02 07:45:00', '未央区凤城八路与明光路十字', 3, NULL, 0, '两车追尾，无人员伤亡')"
            ))
            .await;
            fx.insert(&mut db, 5..=5).await;
            sink.wait_for(5, PATIENCE).await;
            running.stop().await;
            assert_eq!(ids(&sink), vec![1, 2, 3, 4, 5]);
            let fourth = &sink.records()[3];
            assert_eq!(fourth["place"], json!("未央区凤城八路与明光路十字"));
            assert_eq!(fourth["note"], json!("两车追尾，无人员伤亡"));
            assert_eq!(fourth["loss"], Value::Null);
            assert_eq!(fourth["reported_online"], json!(false));
            assert_eq!(checkpoints.load().await.unwrap(), Some(json!({"cursor": 5, "id": 5})));
        })
        .await;
}

/// A `query` with the `{cursor}` placeholder reads only the rows it selects, with the cursor as a bind
/// parameter; a start value skips older rows.
#[tokio::test]
async fn mysql_query_with_cursor_placeholder_and_start() {
    Fixture::incident()
        .with_table(|fx, mut db| async move {
            let t = &fx.table;
            fx.insert(&mut db, 1..=6).await;
            db.exec(&format!("UPDATE {t} SET incident_type = '纠纷' WHERE id IN (4, 5)")).await;
            let config: SqlPollConfig = serde_json::from_value(json!({
                "url": fx.backend.url(),
                "query": format!("SELECT i.id, i.incident_type, i.place FROM {t} i WHERE i.incident_type = '盗窃' AND {{cursor}}"),
                "cursor_column": "i.id",
                "id_column": "i.id",
                "start": 2,
                "poll_interval": "100ms",
            }))
            .unwrap();
            let sink = Arc::new(RecordingSink::default());
            let running = start(
                config.build().unwrap(),
                sink.clone(),
                Arc::new(MemoryCheckpointStore::default()),
            );
            sink.wait_for(3, PATIENCE).await;
            running.stop().await;
            assert_eq!(ids(&sink), vec![2, 3, 6]);
            assert_eq!(sink.inputs()[0].origin, "query id=2");
            assert_eq!(
                sink.records()[0],
                json!({"id": 2, "incident_type": "盗窃", "place": "西安市雁塔区小寨东路2号"})
            );
        })
        .await;
}

/// A database that does not answer is a transient error (the runtime retries), and the password is not in it.
#[tokio::test]
async fn unreachable_database_is_transient_and_hides_the_password() {
    let config: SqlPollConfig = serde_json::from_value(json!({
        "url": "postgres://postgres:hunter2secret@127.0.0.1:1/test",
        "table": "dibao",
        "cursor_column": "updated_at",
        "id_column": "id",
        "timeout": "5s",
    }))
    .unwrap();
    let error = run_to_end(
        config.build().unwrap(),
        Arc::new(RecordingSink::default()),
        Arc::new(MemoryCheckpointStore::default()),
    )
    .await
    .expect_err("nothing listens on port 1");
    assert_eq!(error.hint, RetryHint::WithBackoff, "{error}");
    assert!(error.message.contains("127.0.0.1:1"), "{error}");
    assert!(!error.message.contains("hunter2secret"), "{error}");
}

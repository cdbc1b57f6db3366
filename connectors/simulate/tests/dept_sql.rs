//! The `dept-sql` built-in connector and its simulator.
//!
//! - Every fixture: valid ones normalise, invalid ones are rejected at the stage and with the code they name.
//! - Generated rows: all normalise with no malformed share; all are rejected, as their defect says, with 1.0.
//! - End to end, against the real PostgreSQL and MariaDB/MySQL of this machine (URLs from
//!   `UNSILO_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`, and `UNSILO_TEST_MYSQL`, default
//!   `mysql://root@127.0.0.1:3306/test`): the simulator writes rows into tables with random names while the real
//!   `SqlPollSource` reads them into a sink that normalises with the connector definition; the last version of
//!   every row must arrive, normalised with the right fen amount and Chinese text, or rejected as its defect says.
//!   A database that does not answer fails the test; nothing is skipped.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use rand::Rng;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, MySqlConnection, PgConnection, Row};
use unsilo_connectors::builtin;
use unsilo_connectors::conformance;
use unsilo_connectors::definition::ConnectorDefinition;
use unsilo_connectors::sdk::{
    Accepted, BatchReport, MemoryCheckpointStore, RawInput, RecordSink, RejectReason, Rejected,
    Shutdown, SinkError, Source, SourceContext,
};
use unsilo_connectors::transport::sql_poll::SqlPollConfig;
use unsilo_schemas::validate::{validate_cert_no, validate_phone, validate_region_code};
use unsilo_simulate::dept_sql::{
    self, sample_dibao_rows, sample_incident_rows, Defect, DeptSqlOptions,
};

const PATIENCE: Duration = Duration::from_secs(90);

fn definition() -> ConnectorDefinition {
    builtin::definition("dept-sql").expect("the dept-sql definition loads")
}

/// Normalises one raw record; on success, the normalised record decoded from its Avro bytes as JSON.
fn normalise(def: &ConnectorDefinition, raw: &Value) -> Result<Value, RejectReason> {
    let input = RawInput::decoded(raw.to_string().into_bytes(), raw.clone(), "test");
    let mut out = Vec::new();
    let n = def.normalise(&input, &mut out)?;
    Ok(decode(n.schema, &out))
}

fn decode(schema: &unsilo_schemas::SharedSchema, bytes: &[u8]) -> Value {
    let value = apache_avro::from_avro_datum(schema.avro(), &mut &bytes[..], None)
        .expect("the output is Avro of the target schema");
    Value::try_from(value).expect("converts to JSON")
}

/// `"650.00"` → 65000.
fn fen(yuan: &str) -> i64 {
    let (int, frac) = yuan.split_once('.').unwrap_or((yuan, "0"));
    let frac = format!("{frac:0<2}");
    int.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap()
}

fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_valid_fixture_normalises() {
    let def = definition();
    let valid: Vec<_> = builtin::fixtures("dept-sql")
        .into_iter()
        .filter(|(p, _)| p.starts_with("fixtures/valid/"))
        .collect();
    assert_eq!(valid.len(), 4);
    for (path, text) in valid {
        let raw: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let record = normalise(&def, &raw).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(record["record_key"], raw["id"].to_string(), "{path}");
        assert_eq!(record["envelope"]["source_version"], raw["gxsj"], "{path}");
        let payload = &record["payload"];
        if let Some(bzje) = raw["bzje"].as_str() {
            assert_eq!(record["dept_name"], "汉阴县民政局");
            assert_eq!(payload["monthly_allowance_fen"], fen(bzje), "{path}");
            assert_eq!(payload["name"], raw["xm"]);
            assert_eq!(payload["cert_no"], raw["sfzh"]);
        } else {
            assert_eq!(record["dept_name"], "汉阴县公安局");
            assert_eq!(payload["incident_no"], raw["jqbh"]);
            assert_eq!(payload["place"], raw["fadd"]);
            assert_eq!(payload["summary"], raw["jyqk"]);
        }
    }
}

#[test]
fn fixtures_map_every_column_as_the_readme_says() {
    let def = definition();
    let text = builtin::fixtures("dept-sql")
        .into_iter()
        .find(|(p, _)| p.ends_with("dibao_rural_terminated.json"))
        .unwrap()
        .1;
    let record = normalise(&def, &serde_json::from_str(text).unwrap()).unwrap();
    // 2019-07-01 and 2024-05-01 as days since 1970-01-01.
    assert_eq!(
        record["payload"],
        json!({"cert_no": "610921194803122013", "name": "陈德福", "phone": null, "household_size": 4,
               "monthly_allowance_fen": 38_550, "category": "RURAL", "start_date": 18_078, "end_date": 19_844,
               "village_code": "610921101201", "status": "TERMINATED"})
    );
    assert_eq!(record["operation"], "UPDATE");
    assert_eq!(record["table_name"], "mz_dbdx");
    assert_eq!(record["envelope"]["region_code"], "610921101201");
    // 2024-05-31 16:40:00 in Beijing.
    assert_eq!(record["envelope"]["event_time"], 1_717_144_800_000_i64);

    let text = builtin::fixtures("dept-sql")
        .into_iter()
        .find(|(p, _)| p.ends_with("police_dispute.json"))
        .unwrap()
        .1;
    let record = normalise(&def, &serde_json::from_str(text).unwrap()).unwrap();
    assert_eq!(record["payload"]["incident_type_name"], "纠纷");
    assert_eq!(record["payload"]["station_name"], "城关派出所");
    assert_eq!(record["payload"]["handling_result"], Value::Null);
    assert_eq!(record["payload"]["occurred_time"], 1_718_674_335_000_i64);
    assert_eq!(record["operation"], "INSERT");
}

#[test]
fn every_invalid_fixture_is_rejected_as_it_expects() {
    let def = definition();
    let invalid: Vec<_> = builtin::fixtures("dept-sql")
        .into_iter()
        .filter(|(p, _)| p.starts_with("fixtures/invalid/"))
        .collect();
    assert_eq!(invalid.len(), 7);
    for (path, text) in invalid {
        let fixture: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let e = normalise(&def, &fixture["record"]).expect_err(path);
        assert_eq!(e.stage, fixture["expect"]["stage"], "{path}: {e:?}");
        assert_eq!(e.code, fixture["expect"]["code"], "{path}: {e:?}");
        // Reasons never repeat a full ID number.
        if let Some(sfzh) = fixture["record"]["sfzh"].as_str() {
            assert!(!e.message.contains(sfzh), "{path}: {}", e.message);
        }
    }
}

#[test]
fn the_conformance_kit_passes_on_the_fixtures() {
    let fixtures =
        conformance::read_fixtures(builtin::fixtures("dept-sql")).expect("fixtures read");
    assert_eq!(fixtures.len(), 11);
    conformance::check_fixtures(&definition(), &fixtures).assert_passed("dept-sql");
}

// ---------------------------------------------------------------------------------------------------------------
// Generated rows
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn generated_rows_normalise_without_malformed_share() {
    let def = definition();
    for (raw, defect) in sample_dibao_rows(11, 0.0, 400) {
        assert_eq!(defect, None);
        let record = normalise(&def, &raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
        let payload = &record["payload"];
        assert_eq!(
            payload["monthly_allowance_fen"],
            fen(raw["bzje"].as_str().unwrap())
        );
        assert!(payload["monthly_allowance_fen"].as_i64().unwrap() > 0);
        assert_eq!(payload["name"], raw["xm"]);
        assert!(has_chinese(payload["name"].as_str().unwrap()));
        assert_eq!(record["operation"], "INSERT");
    }
    for (raw, defect) in sample_incident_rows(11, 0.0, 400) {
        assert_eq!(defect, None);
        let record = normalise(&def, &raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
        assert_eq!(record["payload"]["place"], raw["fadd"]);
        assert!(has_chinese(record["payload"]["summary"].as_str().unwrap()));
        assert!(record["payload"]["station_name"]
            .as_str()
            .unwrap()
            .ends_with("派出所"));
        // Every generated type code is in the code table; only 9900 is named 其他.
        assert_eq!(
            record["payload"]["incident_type_name"] == "其他",
            raw["jqlb"] == "9900",
            "{raw}"
        );
    }
}

#[test]
fn generated_rows_are_rejected_with_full_malformed_share() {
    let def = definition();
    let mut seen = HashMap::new();
    let rows = sample_dibao_rows(12, 1.0, 300)
        .into_iter()
        .chain(sample_incident_rows(12, 1.0, 300));
    for (raw, defect) in rows {
        let defect = defect.expect("every row is malformed");
        let e = normalise(&def, &raw).expect_err("a malformed row is rejected");
        let (stage, code) = defect.expected_rejection();
        assert_eq!(
            (e.stage, e.code.as_str()),
            (stage, code),
            "{defect:?}: {raw}"
        );
        *seen.entry(defect).or_insert(0) += 1;
    }
    // Every kind of defect occurs.
    assert_eq!(seen.len(), 4, "{seen:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// End to end through the real databases and the real SQL poll
// ---------------------------------------------------------------------------------------------------------------

/// What the sink made of one polled row.
#[derive(Debug, Clone)]
struct Outcome {
    raw: Value,
    result: Result<Value, RejectReason>,
}

/// A sink that normalises with the connector definition, as the hub's sink does, and keeps every outcome.
struct NormalisingSink {
    def: ConnectorDefinition,
    outcomes: Mutex<Vec<Outcome>>,
}

#[async_trait]
impl RecordSink for NormalisingSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        let mut report = BatchReport::default();
        let mut outcomes = self.outcomes.lock().unwrap();
        for (index, input) in batch.into_iter().enumerate() {
            let mut out = Vec::new();
            let result = self.def.normalise(&input, &mut out);
            let raw = input.parsed.clone().unwrap_or(Value::Null);
            match result {
                Ok(n) => {
                    report.accepted.push(Accepted {
                        index,
                        record_id: n.record_id.clone(),
                        schema: n.schema.name().to_owned(),
                    });
                    outcomes.push(Outcome {
                        raw,
                        result: Ok(decode(n.schema, &out)),
                    });
                }
                Err(reason) => {
                    report.rejected.push(Rejected {
                        index,
                        reason: reason.clone(),
                    });
                    outcomes.push(Outcome {
                        raw,
                        result: Err(reason),
                    });
                }
            }
        }
        Ok(report)
    }
}

fn postgres_url() -> String {
    std::env::var("UNSILO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn mysql_url() -> String {
    std::env::var("UNSILO_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", rand::rng().random::<u32>())
}

/// The final state of one table row: id, update time, and the row as the test reads it.
struct DbRow {
    id: i64,
    gxsj: NaiveDateTime,
    columns: HashMap<&'static str, Option<String>>,
}

/// Runs the simulator and a SQL poll of `table` side by side, waits until the sink has seen the last version of
/// every row the database holds, and returns the database rows and the outcome of each row's last version.
async fn simulate_and_poll(
    options: DeptSqlOptions,
    poll: SqlPollConfig,
    create_table: impl std::future::Future<Output = ()>,
    read_back: impl std::future::Future<Output = Vec<DbRow>>,
) -> (dept_sql::Stats, Vec<(DbRow, Outcome)>, usize) {
    let sink = Arc::new(NormalisingSink {
        def: definition(),
        outcomes: Mutex::new(Vec::new()),
    });
    let mut source = poll.build().expect("the poll configuration is valid");
    let (trigger, shutdown) = Shutdown::new();
    let ctx = SourceContext {
        connector: "dept-sql".into(),
        sink: sink.clone(),
        checkpoints: Arc::new(MemoryCheckpointStore::default()),
        shutdown,
    };
    // The table exists before the poll starts (the poll checks its columns); the simulator then writes while the
    // poll reads, so rows it already read are updated and must come again.
    create_table.await;
    let poller = tokio::spawn(async move { source.run(ctx).await });
    let stats = dept_sql::run(options, Shutdown::never())
        .await
        .unwrap_or_else(|e| panic!("the simulator runs against the real database: {e}"));
    let rows = read_back.await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let last_seen = loop {
        let outcomes = sink.outcomes.lock().unwrap().clone();
        let mut last: HashMap<i64, Outcome> = HashMap::new();
        for o in &outcomes {
            if let Some(id) = o.raw["id"].as_i64() {
                last.insert(id, o.clone());
            }
        }
        let caught_up = rows.iter().all(|r| {
            last.get(&r.id).is_some_and(|o| {
                NaiveDateTime::parse_from_str(
                    o.raw["gxsj"].as_str().unwrap_or(""),
                    "%Y-%m-%d %H:%M:%S%.f",
                )
                .is_ok_and(|t| t == r.gxsj)
            })
        });
        if caught_up {
            break (last, outcomes.len());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poll did not deliver the last version of all {} rows within {PATIENCE:?} ({} outcomes)",
            rows.len(),
            outcomes.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    trigger.trigger();
    let ended = tokio::time::timeout(PATIENCE, poller)
        .await
        .expect("the poll stops on shutdown")
        .expect("the poll task does not panic");
    assert!(ended.is_ok(), "the poll failed: {ended:?}");
    let (mut last, count) = last_seen;
    let paired = rows
        .into_iter()
        .map(|r| {
            let o = last.remove(&r.id).expect("checked above");
            (r, o)
        })
        .collect();
    (stats, paired, count)
}

fn col<'a>(row: &'a DbRow, name: &str) -> Option<&'a str> {
    row.columns.get(name).and_then(|v| v.as_deref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dibao_rows_flow_from_postgres_through_the_poll() {
    let url = postgres_url();
    let table = unique("mz_dbdx");
    let options = DeptSqlOptions {
        postgres_url: Some(url.clone()),
        dibao_table: table.clone(),
        rate: 200.0,
        malformed_share: 0.25,
        update_share: 0.3,
        seed: 20_240_618,
        limit: Some(80),
        ..DeptSqlOptions::default()
    };
    let poll = SqlPollConfig {
        url: url.clone(),
        table: Some(table.clone()),
        query: None,
        cursor_column: "gxsj".into(),
        id_column: "id".into(),
        batch_size: 16,
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(30),
        start: None,
    };
    let (ddl_url, ddl_table) = (url.clone(), table.clone());
    let create_table = async move {
        let mut conn = PgConnection::connect(&ddl_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {ddl_url} must be running: {e}"));
        for statement in dept_sql::postgres_ddl(&ddl_table) {
            conn.execute(statement.as_str())
                .await
                .expect("the DDL runs");
        }
    };
    let read_url = url.clone();
    let read_table = table.clone();
    let read_back = async move {
        let mut conn = PgConnection::connect(&read_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {read_url} must be running: {e}"));
        let rows = conn
            .fetch_all(
                format!(
                    r#"SELECT id, gxsj, sfzh, xm, bzje::text AS bzje, sqdm, zt, czbz, jtrk::text AS jtrk
                       FROM "{read_table}" ORDER BY id"#
                )
                .as_str(),
            )
            .await
            .expect("the simulator created the table");
        rows.iter()
            .map(|r| DbRow {
                id: r.get("id"),
                gxsj: r.get("gxsj"),
                columns: ["sfzh", "xm", "bzje", "sqdm", "zt", "czbz", "jtrk"]
                    .into_iter()
                    .map(|c| (c, r.get::<Option<String>, _>(c)))
                    .collect(),
            })
            .collect::<Vec<_>>()
    };
    let (stats, rows, outcomes) = simulate_and_poll(options, poll, create_table, read_back).await;

    assert_eq!(stats.dibao.inserted + stats.dibao.updated, 80, "{stats:?}");
    assert!(
        stats.dibao.updated > 0 && stats.dibao.malformed > 0,
        "{stats:?}"
    );
    assert_eq!(rows.len() as u64, stats.dibao.inserted);
    // Updates of rows already read come again: more outcomes than rows.
    assert!(
        outcomes > rows.len(),
        "{outcomes} outcomes for {} rows",
        rows.len()
    );
    let (mut accepted, mut rejected, mut updated) = (0, 0, 0);
    for (row, outcome) in &rows {
        let bzje = col(row, "bzje").unwrap();
        let sfzh = col(row, "sfzh").unwrap();
        let sqdm = col(row, "sqdm").unwrap();
        // What the connector must say, told from the data alone.
        let expected = if bzje.starts_with('-') {
            Some(Defect::NegativeAllowance)
        } else if validate_region_code(sqdm).is_err() {
            Some(Defect::UnknownVillage)
        } else if validate_cert_no(sfzh).is_err() {
            Some(Defect::BadCertNo)
        } else {
            None
        };
        match (expected, &outcome.result) {
            (None, Ok(record)) => {
                accepted += 1;
                let payload = &record["payload"];
                assert_eq!(
                    payload["monthly_allowance_fen"],
                    fen(bzje),
                    "row {}",
                    row.id
                );
                assert_eq!(payload["name"], col(row, "xm").unwrap(), "row {}", row.id);
                assert!(has_chinese(payload["name"].as_str().unwrap()));
                assert_eq!(payload["cert_no"], sfzh);
                assert_eq!(payload["village_code"], sqdm);
                assert_eq!(
                    payload["household_size"].to_string(),
                    col(row, "jtrk").unwrap()
                );
                assert_eq!(record["record_key"], row.id.to_string());
                assert_eq!(record["table_name"], "mz_dbdx");
                let operation = if col(row, "czbz") == Some("U") {
                    "UPDATE"
                } else {
                    "INSERT"
                };
                assert_eq!(record["operation"], operation);
                if operation == "UPDATE" {
                    updated += 1;
                }
            }
            (Some(defect), Err(reason)) => {
                rejected += 1;
                let (stage, code) = defect.expected_rejection();
                assert_eq!(
                    (reason.stage, reason.code.as_str()),
                    (stage, code),
                    "row {}",
                    row.id
                );
                assert!(!reason.message.contains(sfzh), "{}", reason.message);
            }
            (expected, result) => panic!("row {}: expected {expected:?}, got {result:?}", row.id),
        }
    }
    assert!(
        accepted > 0 && rejected > 0 && updated > 0,
        "{accepted} {rejected} {updated}"
    );

    let mut conn = PgConnection::connect(&url).await.unwrap();
    conn.execute(format!(r#"DROP TABLE "{table}""#).as_str())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_rows_flow_from_mysql_through_the_poll() {
    let url = mysql_url();
    let table = unique("ga_jqxx");
    let options = DeptSqlOptions {
        mysql_url: Some(url.clone()),
        incident_table: table.clone(),
        rate: 200.0,
        malformed_share: 0.25,
        update_share: 0.3,
        seed: 20_240_619,
        limit: Some(80),
        ..DeptSqlOptions::default()
    };
    let poll = SqlPollConfig {
        url: url.clone(),
        table: Some(table.clone()),
        query: None,
        cursor_column: "gxsj".into(),
        id_column: "id".into(),
        batch_size: 16,
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(30),
        start: None,
    };
    let (ddl_url, ddl_table) = (url.clone(), table.clone());
    let create_table = async move {
        let mut conn = MySqlConnection::connect(&ddl_url)
            .await
            .unwrap_or_else(|e| panic!("MariaDB/MySQL at {ddl_url} must be running: {e}"));
        for statement in dept_sql::mysql_ddl(&ddl_table) {
            conn.execute(statement.as_str())
                .await
                .expect("the DDL runs");
        }
    };
    let read_url = url.clone();
    let read_table = table.clone();
    let read_back = async move {
        let mut conn = MySqlConnection::connect(&read_url)
            .await
            .unwrap_or_else(|e| panic!("MariaDB/MySQL at {read_url} must be running: {e}"));
        let rows = conn
            .fetch_all(
                format!(
                    "SELECT CAST(id AS SIGNED) AS id, gxsj, jqbh, fadd, jyqk, xzqh, bjrdh, cljg, czbz \
                     FROM `{read_table}` ORDER BY id"
                )
                .as_str(),
            )
            .await
            .expect("the simulator created the table");
        rows.iter()
            .map(|r| DbRow {
                id: r.get("id"),
                gxsj: r.get("gxsj"),
                columns: ["jqbh", "fadd", "jyqk", "xzqh", "bjrdh", "cljg", "czbz"]
                    .into_iter()
                    .map(|c| (c, r.get::<Option<String>, _>(c)))
                    .collect(),
            })
            .collect::<Vec<_>>()
    };
    let (stats, rows, outcomes) = simulate_and_poll(options, poll, create_table, read_back).await;

    assert_eq!(
        stats.incidents.inserted + stats.incidents.updated,
        80,
        "{stats:?}"
    );
    assert!(
        stats.incidents.updated > 0 && stats.incidents.malformed > 0,
        "{stats:?}"
    );
    assert_eq!(rows.len() as u64, stats.incidents.inserted);
    assert!(
        outcomes > rows.len(),
        "{outcomes} outcomes for {} rows",
        rows.len()
    );
    let (mut accepted, mut rejected, mut handled) = (0, 0, 0);
    for (row, outcome) in &rows {
        let xzqh = col(row, "xzqh").unwrap();
        let expected = if validate_region_code(xzqh).is_err() {
            Some(Defect::UnknownVillage)
        } else if col(row, "bjrdh").is_some_and(|p| validate_phone(p).is_err()) {
            Some(Defect::BadPhone)
        } else {
            None
        };
        match (expected, &outcome.result) {
            (None, Ok(record)) => {
                accepted += 1;
                let payload = &record["payload"];
                assert_eq!(payload["incident_no"], col(row, "jqbh").unwrap());
                assert_eq!(payload["place"], col(row, "fadd").unwrap());
                assert_eq!(payload["summary"], col(row, "jyqk").unwrap());
                assert!(has_chinese(payload["place"].as_str().unwrap()));
                assert!(has_chinese(payload["summary"].as_str().unwrap()));
                assert_eq!(record["envelope"]["region_code"], xzqh);
                match col(row, "cljg") {
                    Some(result) => {
                        handled += 1;
                        assert_eq!(payload["handling_result"], result);
                        assert_eq!(record["operation"], "UPDATE");
                    }
                    None => assert_eq!(payload["handling_result"], Value::Null),
                }
            }
            (Some(defect), Err(reason)) => {
                rejected += 1;
                let (stage, code) = defect.expected_rejection();
                assert_eq!(
                    (reason.stage, reason.code.as_str()),
                    (stage, code),
                    "row {}",
                    row.id
                );
            }
            (expected, result) => panic!("row {}: expected {expected:?}, got {result:?}", row.id),
        }
    }
    assert!(
        accepted > 0 && rejected > 0 && handled > 0,
        "{accepted} {rejected} {handled}"
    );

    let mut conn = MySqlConnection::connect(&url).await.unwrap();
    conn.execute(format!("DROP TABLE `{table}`").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_simulator_refuses_options_that_cannot_work() {
    let e = dept_sql::run(DeptSqlOptions::default(), Shutdown::never())
        .await
        .expect_err("no database");
    assert!(e.to_string().contains("postgres_url"), "{e}");
    let e = dept_sql::run(
        DeptSqlOptions {
            postgres_url: Some(postgres_url()),
            dibao_table: "mz; DROP TABLE x".into(),
            ..DeptSqlOptions::default()
        },
        Shutdown::never(),
    )
    .await
    .expect_err("bad table name");
    assert!(e.to_string().contains("plain identifier"), "{e}");
    let options: Result<DeptSqlOptions, _> =
        serde_json::from_value(json!({"postgres_url": "postgres://x", "rat": 5}));
    assert!(options.unwrap_err().to_string().contains("rat"));
}

/// Resume after restart (the conformance kit's check) with the real poll on a real roster table: the sink fails
/// once mid-table, a new poll with the same checkpoints delivers every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_poll_loses_no_roster_row() {
    let url = postgres_url();
    let table = unique("mz_dbdx");
    let options = DeptSqlOptions {
        postgres_url: Some(url.clone()),
        dibao_table: table.clone(),
        rate: 1000.0,
        update_share: 0.0,
        seed: 7,
        limit: Some(40),
        ..DeptSqlOptions::default()
    };
    let stats = dept_sql::run(options, Shutdown::never())
        .await
        .unwrap_or_else(|e| panic!("the simulator runs against PostgreSQL at {url}: {e}"));
    assert_eq!(stats.dibao.inserted, 40);
    // The record ids the rows must get: source system, id, and gxsj as the poll writes it.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let rows = conn
        .fetch_all(format!(r#"SELECT id, gxsj FROM "{table}""#).as_str())
        .await
        .unwrap();
    let expected: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            let gxsj: NaiveDateTime = r.get("gxsj");
            unsilo_schemas::record_id(
                "dept.hanyin.mzj",
                &r.get::<i64, _>("id").to_string(),
                &gxsj.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 40);
    let poll = SqlPollConfig {
        url: url.clone(),
        table: Some(table.clone()),
        query: None,
        cursor_column: "gxsj".into(),
        id_column: "id".into(),
        batch_size: 8,
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(30),
        start: None,
    };
    let make_source = move || -> Box<dyn Source> { Box::new(poll.build().expect("valid")) };
    let sink = Arc::new(NormalisingSink {
        def: definition(),
        outcomes: Mutex::new(Vec::new()),
    });
    let report = conformance::check_resume(
        "dept-sql",
        &make_source,
        sink,
        Arc::new(MemoryCheckpointStore::default()),
        &expected,
        PATIENCE,
    )
    .await;
    report.assert_passed("dept-sql");
    conn.execute(format!(r#"DROP TABLE "{table}""#).as_str())
        .await
        .unwrap();
}

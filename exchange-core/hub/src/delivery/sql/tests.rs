//! Tests of `sql`.

use super::*;
use chrono::{NaiveDateTime, TimeZone};
use serde_json::json;
use sqlx::Row as _;
use sqlx::{Connection, MySqlConnection, PgConnection};
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
        retain_until: false,
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
    let sink = SqlWriter::connect(&target(d, &table), &view())
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
    let again = SqlWriter::connect(&target(d, &table), &view())
        .await
        .expect("reconnect to existing table");
    again.close().await;
    assert_eq!(count(d, &table).await, 2);
    drop_table(d, &table).await;
}

async fn upsert_same_id_replaces_row(d: Dialect) {
    let table = unique_table("upsert");
    let sink = SqlWriter::connect(&target(d, &table), &view())
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
    let sink = SqlWriter::connect(&target(d, &table), &view())
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
    let err = SqlWriter::connect(&target(d, &table), &view())
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
        let err = SqlWriter::connect(&target(d, bad), &view())
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
    let sink = SqlWriter::connect(&target(d, &format!("{schema}.{table}")), &view())
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
        retain_until: false,
    };
    let debug = format!("{t:?}");
    assert!(!debug.contains("s3cr"), "{debug}");
    assert!(debug.contains("admin:***@127.0.0.1:1/test"), "{debug}");
    let err = SqlWriter::connect(&t, &view())
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
    let sink = SqlWriter::connect(&target(d, &table), &view())
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
    let sink = SqlWriter::connect(&target(d, &table), &view())
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
        retain_until: false,
    };
    let err = SqlWriter::connect(&t, &view())
        .await
        .expect_err("root has no such password");
    assert!(!err.is_retryable(), "access denied is permanent: {err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("Wr0ngPassw0rd"), "{shown}");
    assert!(shown.contains("1045"), "names the server error: {shown}");
}

// ----- unit tests (no server) -----

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

//! Tests of `sql_poll`.

use super::*;

fn config(json: Value) -> Result<SqlPollConfig, serde_json::Error> {
    serde_json::from_value(json)
}

fn text(dialect: Dialect, target: Target, cursor: &str, id: &str) -> SqlText {
    SqlText {
        dialect,
        target,
        cursor_column: cursor.to_owned(),
        id_column: id.to_owned(),
        batch_size: 500,
    }
}

#[test]
fn compound_cursor_sql_binds_values_and_quotes_names() {
    let pg = text(
        Dialect::Postgres,
        Target::Table("minzheng.dibao".into()),
        "updated_at",
        "id",
    );
    assert_eq!(
        pg.select(Condition::After),
        r#"SELECT * FROM "minzheng"."dibao" WHERE ("updated_at", "id") > ($1, $2) ORDER BY "updated_at", "id" LIMIT 500"#
    );
    assert_eq!(
        pg.select(Condition::All),
        r#"SELECT * FROM "minzheng"."dibao" WHERE "updated_at" IS NOT NULL AND "id" IS NOT NULL ORDER BY "updated_at", "id" LIMIT 500"#
    );
    let my = text(Dialect::MySql, Target::Table("incident".into()), "id", "id");
    assert_eq!(
        my.select(Condition::After),
        "SELECT * FROM `incident` WHERE `id` > ? ORDER BY `id` LIMIT 500"
    );
    assert_eq!(
        my.select(Condition::AtLeast),
        "SELECT * FROM `incident` WHERE `id` >= ? ORDER BY `id` LIMIT 500"
    );
}

#[test]
fn query_placeholder_is_replaced_by_the_condition() {
    let target = parse_query("SELECT i.* FROM incident i WHERE i.deleted = 0 AND {cursor};");
    let Ok(target) = target else {
        panic!("query rejected: {target:?}")
    };
    let my = text(Dialect::MySql, target, "i.id", "i.id");
    assert_eq!(
        my.select(Condition::After),
        "SELECT i.* FROM incident i WHERE i.deleted = 0 AND (`i`.`id` > ?) ORDER BY `i`.`id` LIMIT 500"
    );
    assert!(matches!(
        parse_query("DELETE FROM incident WHERE {cursor}"),
        Err(SqlPollConfigError::BadQuery(_))
    ));
    assert!(matches!(
        parse_query("SELECT * FROM incident"),
        Err(SqlPollConfigError::BadQuery(_))
    ));
    assert!(matches!(
        parse_query("SELECT * FROM a WHERE {cursor} UNION SELECT * FROM b WHERE {cursor}"),
        Err(SqlPollConfigError::BadQuery(_))
    ));
}

#[test]
fn names_that_could_inject_sql_are_refused() {
    for bad in [
        "dibao; DROP TABLE x",
        "dibao\"",
        "1dibao",
        "a..b",
        "a.",
        "",
        "名单",
    ] {
        assert!(check_identifier("table", bad).is_err(), "{bad:?} accepted");
    }
    for good in ["dibao", "minzheng.dibao_2024", "_t", "Updated_At"] {
        assert_eq!(check_identifier("table", good), Ok(()));
    }
    let built = config(serde_json::json!({
        "url": "postgres://u:pw@127.0.0.1/test",
        "table": "dibao where 1=1 --",
        "cursor_column": "id",
        "id_column": "id",
    }))
    .map(|c| c.build().map(|_| ()));
    assert!(matches!(
        built,
        Ok(Err(SqlPollConfigError::BadIdentifier {
            field: "table",
            ..
        }))
    ));
}

#[test]
fn config_defaults_unknown_keys_and_masked_debug() {
    let parsed = config(serde_json::json!({
        "url": "mysql://root:topsecret@127.0.0.1:3306/test",
        "table": "incident",
        "cursor_column": "id",
        "id_column": "id",
    }));
    let Ok(parsed) = parsed else {
        panic!("config refused: {parsed:?}")
    };
    assert_eq!(parsed.batch_size, 500);
    assert_eq!(parsed.poll_interval, Duration::from_secs(5));
    let debug = format!("{parsed:?}");
    assert!(!debug.contains("topsecret"), "{debug}");
    let err = config(serde_json::json!({
        "url": "mysql://root@127.0.0.1:3306/test",
        "table": "incident",
        "cursor_column": "id",
        "id_column": "id",
        "batchsize": 10,
    }));
    assert!(
        matches!(&err, Err(e) if e.to_string().contains("batchsize")),
        "{err:?}"
    );
    let both = config(serde_json::json!({
        "url": "mysql://root@127.0.0.1:3306/test",
        "table": "incident",
        "query": "SELECT * FROM incident WHERE {cursor}",
        "cursor_column": "id",
        "id_column": "id",
    }))
    .map(|c| c.build().map(|_| ()));
    assert!(matches!(both, Ok(Err(SqlPollConfigError::TableOrQuery))));
    let scheme = config(serde_json::json!({
        "url": "oracle://scott:tiger@db/orcl",
        "table": "incident",
        "cursor_column": "id",
        "id_column": "id",
    }))
    .map(|c| c.build().map(|_| ()));
    assert!(
        matches!(&scheme, Ok(Err(SqlPollConfigError::BadUrl { url, .. })) if !url.contains("tiger")),
        "{scheme:?}"
    );
}

fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
        out.extend_from_slice(&f.to_be_bytes());
    }
    out
}

#[test]
fn postgres_numerics_keep_every_digit_and_their_scale() {
    assert_eq!(
        pg_numeric_text(&numeric(1, 0, 0, 2, &[650])),
        Ok("650.00".into())
    );
    assert_eq!(
        pg_numeric_text(&numeric(2, 0, 0x4000, 2, &[720, 5000])),
        Ok("-720.50".into())
    );
    assert_eq!(
        pg_numeric_text(&numeric(1, -1, 0, 2, &[500])),
        Ok("0.05".into())
    );
    assert_eq!(
        pg_numeric_text(&numeric(1, -2, 0, 8, &[1234])),
        Ok("0.00001234".into())
    );
    assert_eq!(
        pg_numeric_text(&numeric(2, 1, 0, 0, &[12, 3456])),
        Ok("123456".into())
    );
    assert_eq!(
        pg_numeric_text(&numeric(1, 2, 0, 0, &[1])),
        Ok("100000000".into())
    );
    assert_eq!(
        pg_numeric_text(&numeric(0, 0, 0, 3, &[])),
        Ok("0.000".into())
    );
    assert_eq!(
        pg_numeric_text(&numeric(0, 0, 0xC000, 0, &[])),
        Ok("NaN".into())
    );
    assert!(
        pg_numeric_text(&numeric(3, 0, 0, 0, &[1])).is_err(),
        "truncated digits"
    );
    assert!(pg_numeric_text(&[0, 1]).is_err());
}

#[test]
fn cursor_values_round_trip_through_checkpoints() {
    let cases = [
        (CursorKind::Int, serde_json::json!(42)),
        (CursorKind::Decimal, serde_json::json!("1234.50")),
        (CursorKind::Text, serde_json::json!("GD-0001")),
        (CursorKind::Date, serde_json::json!("2024-05-01")),
        (
            CursorKind::Timestamp,
            serde_json::json!("2024-05-01 08:00:00"),
        ),
        (
            CursorKind::Timestamp,
            serde_json::json!("2024-05-01 08:00:00.123456"),
        ),
        (
            CursorKind::TimestampTz,
            serde_json::json!("2024-05-01 00:00:00+00:00"),
        ),
    ];
    for (kind, json) in cases {
        let value = CursorValue::from_json(kind, &json);
        assert_eq!(value.map(|v| v.to_json()), Ok(json.clone()), "{kind:?}");
    }
    assert!(CursorValue::from_json(CursorKind::Int, &serde_json::json!("abc")).is_err());
    assert!(CursorValue::from_json(
        CursorKind::TimestampTz,
        &serde_json::json!("2024-05-01 08:00:00")
    )
    .is_err());
    let with_offset = CursorValue::from_json(
        CursorKind::TimestampTz,
        &serde_json::json!("2024-05-01 08:00:00+08:00"),
    );
    assert_eq!(
        with_offset.map(|v| v.to_json()),
        Ok(serde_json::json!("2024-05-01 00:00:00+00:00"))
    );
}

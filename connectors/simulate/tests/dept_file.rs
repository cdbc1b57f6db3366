//! The `dept-file` built-in connector and its simulator.
//!
//! - Every fixture: valid ones normalise, invalid ones are rejected at the stage and with the code they name.
//! - Generated rows: all normalise with no malformed share; all are rejected, as their defect says, with 1.0.
//! - End to end: the simulator drops GBK CSV files and Excel workbooks into a temporary folder while the real
//!   `FileDropSource` watches it and hands every row to a sink that normalises with the connector definition.
//!   Every row must arrive, normalised with its Chinese text intact or rejected as its defect says; read files end
//!   in `done/` byte for byte as written, corrupt ones in `failed/` with their reason.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Value};
use unsilo_connectors::builtin;
use unsilo_connectors::conformance;
use unsilo_connectors::definition::ConnectorDefinition;
use unsilo_connectors::sdk::{
    Accepted, BatchReport, MemoryCheckpointStore, RawInput, RecordSink, RejectReason, Rejected,
    Shutdown, SinkError, Source, SourceContext,
};
use unsilo_connectors::transport::file_drop::{FileDropConfig, TextEncoding, DONE_DIR, FAILED_DIR};
use unsilo_simulate::dept_file::{
    self, DeptFileGenerator, DeptFileOptions, ExportFormat, GeneratedFile, Roster, RowDefect,
};

const PATIENCE: Duration = Duration::from_secs(90);

fn definition() -> ConnectorDefinition {
    builtin::definition("dept-file").expect("the dept-file definition loads")
}

fn decode(schema: &unsilo_schemas::SharedSchema, bytes: &[u8]) -> Value {
    let value = apache_avro::from_avro_datum(schema.avro(), &mut &bytes[..], None)
        .expect("the output is Avro of the target schema");
    Value::try_from(value).expect("converts to JSON")
}

/// Normalises one raw record; on success, the normalised record decoded from its Avro bytes as JSON.
fn normalise(def: &ConnectorDefinition, raw: &Value) -> Result<Value, RejectReason> {
    let input = RawInput::decoded(raw.to_string().into_bytes(), raw.clone(), "test");
    let mut out = Vec::new();
    let n = def.normalise(&input, &mut out)?;
    Ok(decode(n.schema, &out))
}

/// Days since 1970-01-01 of a date written `1950/3/7`.
fn days(text: &str) -> i64 {
    let d = NaiveDate::parse_from_str(text, "%Y/%m/%d").unwrap_or_else(|e| panic!("{text}: {e}"));
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
}

/// Epoch milliseconds of midnight in Beijing on `date` (`YYYY-MM-DD`).
fn beijing_midnight_millis(date: &str) -> i64 {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    let t: NaiveDateTime = d.and_hms_opt(0, 0, 0).unwrap();
    t.and_utc().timestamp_millis() - 8 * 3_600_000
}

fn fixture(name: &str) -> Value {
    let text = builtin::fixtures("dept-file")
        .into_iter()
        .find(|(p, _)| p.ends_with(name))
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .1;
    serde_json::from_str(text).unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_valid_fixture_normalises() {
    let def = definition();
    let valid: Vec<_> = builtin::fixtures("dept-file")
        .into_iter()
        .filter(|(p, _)| p.starts_with("fixtures/valid/"))
        .collect();
    assert_eq!(valid.len(), 4);
    for (path, text) in valid {
        let raw: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let record = normalise(&def, &raw).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(record["name"], raw["姓名"], "{path}");
        assert_eq!(record["cert_no"], raw["公民身份号码"], "{path}");
        assert_eq!(record["resident_id"], raw["档案编号"], "{path}");
        assert_eq!(record["village_code"], raw["社区代码"], "{path}");
        assert_eq!(
            record["envelope"]["source_record_id"], raw["档案编号"],
            "{path}"
        );
        assert_eq!(
            record["envelope"]["event_time"],
            beijing_midnight_millis("2024-06-01"),
            "{path}"
        );
        assert_eq!(
            record["special_groups"].as_array().map(Vec::len),
            Some(1),
            "{path}"
        );
    }
}

#[test]
fn fixtures_map_every_column_as_the_readme_says() {
    let def = definition();
    let record = normalise(&def, &fixture("disabled_limb.json")).unwrap();
    assert_eq!(
        json!({
            "resident_id": record["resident_id"], "cert_type": record["cert_type"], "gender": record["gender"],
            "birth_date": record["birth_date"], "ethnicity": record["ethnicity"], "phone": record["phone"],
            "household_id": record["household_id"], "population_type": record["population_type"],
            "registered_address": record["registered_address"], "current_address": record["current_address"],
            "grid_code": record["grid_code"], "special_groups": record["special_groups"], "status": record["status"],
            "source_system": record["envelope"]["source_system"],
        }),
        json!({
            "resident_id": "CL610921000123", "cert_type": "RESIDENT_ID", "gender": "MALE",
            "birth_date": days("1985/6/7"), "ethnicity": "汉族", "phone": "13891512345",
            "household_id": "610921004512", "population_type": "REGISTERED",
            "registered_address": "陕西省安康市汉阴县城关镇南街社区3组17号",
            "current_address": "陕西省安康市汉阴县城关镇南街社区3组17号",
            "grid_code": null, "special_groups": ["DISABLED"], "status": "NORMAL",
            "source_system": "dept.hanyin.cl",
        })
    );
    // A workbook's date cells read as `YYYY-MM-DD 00:00:00`.
    let record = normalise(&def, &fixture("disabled_workbook_date_cells.json")).unwrap();
    assert_eq!(record["birth_date"], days("1972/9/14"));
    assert_eq!(record["gender"], "FEMALE");
    assert_eq!(record["phone"], Value::Null);

    let record = normalise(&def, &fixture("elderly_alone.json")).unwrap();
    assert_eq!(record["special_groups"], json!(["ELDERLY_ALONE"]));
    assert_eq!(record["ethnicity"], Value::Null);
    assert_eq!(record["envelope"]["source_system"], "dept.hanyin.mzj");
    let record = normalise(&def, &fixture("elderly_left_behind.json")).unwrap();
    assert_eq!(record["special_groups"], json!(["LEFT_BEHIND_ELDERLY"]));
    assert_eq!(record["phone"], "13772245678");
}

#[test]
fn every_invalid_fixture_is_rejected_as_it_expects() {
    let def = definition();
    let invalid: Vec<_> = builtin::fixtures("dept-file")
        .into_iter()
        .filter(|(p, _)| p.starts_with("fixtures/invalid/"))
        .collect();
    assert_eq!(invalid.len(), 7);
    for (path, text) in invalid {
        let fixture: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let e = normalise(&def, &fixture["record"]).expect_err(path);
        assert_eq!(e.stage, fixture["expect"]["stage"], "{path}: {e:?}");
        assert_eq!(e.code, fixture["expect"]["code"], "{path}: {e:?}");
        if let Some(cert_no) = fixture["record"]["公民身份号码"].as_str() {
            assert!(!e.message.contains(cert_no), "{path}: {}", e.message);
        }
    }
}

#[test]
fn the_conformance_kit_passes_on_the_fixtures() {
    let fixtures =
        conformance::read_fixtures(builtin::fixtures("dept-file")).expect("fixtures read");
    assert_eq!(fixtures.len(), 11);
    conformance::check_fixtures(&definition(), &fixtures).assert_passed("dept-file");
}

// ---------------------------------------------------------------------------------------------------------------
// Generated rows
// ---------------------------------------------------------------------------------------------------------------

fn generate(options: &DeptFileOptions, files: usize) -> Vec<GeneratedFile> {
    let mut g = DeptFileGenerator::new(options).expect("valid options");
    (0..files).map(|_| g.next_file().expect("a file")).collect()
}

fn expected_groups(file: &GeneratedFile, row: &dept_file::GeneratedRow) -> Value {
    match file.roster {
        Roster::Disabled => json!(["DISABLED"]),
        Roster::ElderlyAlone => match row.cell(file.header(), "居住情况") {
            Some("独居") => json!(["ELDERLY_ALONE"]),
            _ => json!(["LEFT_BEHIND_ELDERLY"]),
        },
    }
}

#[test]
fn generated_rows_normalise_without_malformed_share() {
    let def = definition();
    let options = DeptFileOptions {
        rows_per_file: 40,
        xlsx_share: 0.5,
        seed: 5,
        report_date: Some("2024-06-01".into()),
        ..DeptFileOptions::new("unused")
    };
    let files = generate(&options, 20);
    let rosters: Vec<Roster> = files.iter().map(|f| f.roster).collect();
    assert!(rosters.contains(&Roster::Disabled) && rosters.contains(&Roster::ElderlyAlone));
    for file in &files {
        assert!(!file.corrupt, "no corrupt files without a malformed share");
        for row in &file.rows {
            assert_eq!(row.defect, None);
            let raw = row.record(file.header()).expect("a full row");
            let record =
                normalise(&def, &raw).unwrap_or_else(|e| panic!("{}: {raw}: {e:?}", file.name));
            assert_eq!(record["name"], raw["姓名"]);
            assert_eq!(record["special_groups"], expected_groups(file, row));
            assert_eq!(
                record["birth_date"],
                days(raw["出生日期"].as_str().unwrap())
            );
            if file.roster == Roster::ElderlyAlone {
                assert!(record["birth_date"].as_i64().unwrap() <= days("1964/12/31"));
            }
        }
    }
}

#[test]
fn generated_rows_are_rejected_with_full_malformed_share() {
    let def = definition();
    let options = DeptFileOptions {
        rows_per_file: 40,
        malformed_share: 1.0,
        corrupt_file_share: Some(0.0),
        xlsx_share: 0.3,
        seed: 6,
        report_date: Some("2024-06-01".into()),
        ..DeptFileOptions::new("unused")
    };
    let mut seen: HashMap<RowDefect, usize> = HashMap::new();
    for file in generate(&options, 12) {
        for row in &file.rows {
            let defect = row.defect.expect("every row is malformed");
            *seen.entry(defect).or_default() += 1;
            match row.record(file.header()) {
                // A short row never reaches the definition: the file drop rejects it (checked end to end).
                None => assert_eq!(defect, RowDefect::ShortRow),
                Some(raw) => {
                    let e = normalise(&def, &raw).expect_err("a malformed row is rejected");
                    let (stage, code) = defect.expected_rejection();
                    assert_eq!(
                        (e.stage, e.code.as_str()),
                        (stage, code),
                        "{defect:?}: {raw}"
                    );
                }
            }
            if file.format == ExportFormat::Xlsx {
                assert_ne!(defect, RowDefect::ShortRow, "workbooks have no short lines");
            }
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// End to end through the real file drop
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Outcome {
    origin: String,
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
            match self.def.normalise(&input, &mut out) {
                Ok(n) => {
                    report.accepted.push(Accepted {
                        index,
                        record_id: n.record_id.clone(),
                        schema: n.schema.name().to_owned(),
                    });
                    outcomes.push(Outcome {
                        origin: input.origin,
                        result: Ok(decode(n.schema, &out)),
                    });
                }
                Err(reason) => {
                    report.rejected.push(Rejected {
                        index,
                        reason: reason.clone(),
                    });
                    outcomes.push(Outcome {
                        origin: input.origin,
                        result: Err(reason),
                    });
                }
            }
        }
        Ok(report)
    }
}

/// The data row index (0-based) an origin names: `<file> line N` or `<file> sheet <s> row N`, header on 1.
fn row_index(file: &GeneratedFile, origin: &str) -> Option<usize> {
    let rest = origin.strip_prefix(file.name.as_str())?;
    let n: usize = match file.format {
        ExportFormat::Csv => rest.strip_prefix(" line ")?.parse().ok()?,
        ExportFormat::Xlsx => rest.rsplit_once(" row ")?.1.parse().ok()?,
    };
    n.checked_sub(2)
}

fn listed(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rosters_flow_through_the_file_drop() {
    let drop = tempfile::tempdir().expect("a temporary folder");
    let options = DeptFileOptions {
        rows_per_file: 15,
        files_per_minute: 600.0,
        malformed_share: 0.3,
        corrupt_file_share: Some(0.2),
        xlsx_share: 0.4,
        seed: 20_240_602,
        limit: Some(12),
        report_date: Some("2024-06-01".into()),
        ..DeptFileOptions::new(drop.path())
    };
    // The files the simulator will write, drawn from the same generator.
    let expected = generate(&options, 12);
    let corrupt: Vec<&GeneratedFile> = expected.iter().filter(|f| f.corrupt).collect();
    // This seed makes every kind of file: corrupt and readable, CSV and workbook, both rosters, short lines.
    let readable = |f: &&GeneratedFile| !f.corrupt;
    assert!(corrupt.iter().any(|f| f.format == ExportFormat::Csv));
    assert!(corrupt.iter().any(|f| f.format == ExportFormat::Xlsx));
    assert!(expected
        .iter()
        .filter(readable)
        .any(|f| f.format == ExportFormat::Xlsx));
    assert!(expected
        .iter()
        .filter(readable)
        .any(|f| f.format == ExportFormat::Csv));
    assert!(expected
        .iter()
        .filter(readable)
        .any(|f| f.roster == Roster::Disabled));
    assert!(expected
        .iter()
        .filter(readable)
        .any(|f| f.roster == Roster::ElderlyAlone));
    assert!(expected
        .iter()
        .filter(readable)
        .any(|f| f.rows.iter().any(|r| r.defect == Some(RowDefect::ShortRow))));

    let sink = Arc::new(NormalisingSink {
        def: definition(),
        outcomes: Mutex::new(Vec::new()),
    });
    let mut config = FileDropConfig::new(drop.path());
    config.encoding = TextEncoding::Gbk;
    config.poll_interval = Duration::from_millis(50);
    config.settle = Duration::from_millis(100);
    config.batch_size = 7;
    let mut source = config.build().expect("a valid file-drop configuration");
    let (trigger, shutdown) = Shutdown::new();
    let ctx = SourceContext {
        connector: "dept-file".into(),
        sink: sink.clone(),
        checkpoints: Arc::new(MemoryCheckpointStore::default()),
        shutdown,
    };
    let watcher = tokio::spawn(async move { source.run(ctx).await });

    let stats = dept_file::run(options.clone(), Shutdown::never())
        .await
        .expect("the simulator writes its files");
    assert_eq!(stats.files, 12);
    assert_eq!(stats.corrupt_files as usize, corrupt.len());

    // Wait until every file is in done/ or failed/ and every input reached the sink.
    let inputs: usize = expected
        .iter()
        .map(|f| if f.corrupt { 1 } else { f.rows.len() })
        .sum();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let done = listed(&drop.path().join(DONE_DIR));
        let failed = listed(&drop.path().join(FAILED_DIR));
        let moved = expected.iter().all(|f| {
            if f.corrupt {
                failed.contains(&f.name)
            } else {
                done.contains(&f.name)
            }
        });
        let count = sink.outcomes.lock().unwrap().len();
        if moved && count >= inputs {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {PATIENCE:?}: {count} of {inputs} inputs; done/ {done:?}; failed/ {failed:?}; left {:?}",
            listed(drop.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trigger.trigger();
    let ended = tokio::time::timeout(PATIENCE, watcher)
        .await
        .expect("the watcher stops on shutdown")
        .expect("the watcher task does not panic");
    assert!(ended.is_ok(), "the watcher failed: {ended:?}");

    let outcomes = sink.outcomes.lock().unwrap().clone();
    assert_eq!(outcomes.len(), inputs, "each row exactly once");
    // Nothing is left in the folder: no half-written temporary files, no unread files.
    let left: Vec<String> = listed(drop.path())
        .into_iter()
        .filter(|n| n != DONE_DIR && n != FAILED_DIR)
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let report_millis = beijing_midnight_millis("2024-06-01");
    let (mut accepted, mut rejected) = (0, 0);
    for file in &expected {
        if file.corrupt {
            let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.origin == file.name).collect();
            assert_eq!(
                mine.len(),
                1,
                "{}: one rejected input for the whole file",
                file.name
            );
            let reason = mine[0]
                .result
                .as_ref()
                .expect_err("a corrupt file is rejected");
            assert_eq!(
                (reason.stage, reason.code.as_str()),
                ("parse", "unreadable_input")
            );
            let note = std::fs::read_to_string(
                drop.path()
                    .join(FAILED_DIR)
                    .join(format!("{}.reason.txt", file.name)),
            )
            .expect("the reason is written next to the failed file");
            let why = match file.format {
                ExportFormat::Csv => "binary data",
                ExportFormat::Xlsx => "Excel workbook",
            };
            assert!(note.contains(why), "{}: {note}", file.name);
            continue;
        }
        let on_disk = std::fs::read(drop.path().join(DONE_DIR).join(&file.name)).unwrap();
        assert!(
            on_disk == file.bytes,
            "{}: done/ holds the file as written",
            file.name
        );
        let mut seen = vec![0; file.rows.len()];
        for o in outcomes
            .iter()
            .filter(|o| o.origin.starts_with(file.name.as_str()))
        {
            let i = row_index(file, &o.origin)
                .filter(|i| *i < file.rows.len())
                .unwrap_or_else(|| panic!("unexpected origin {}", o.origin));
            seen[i] += 1;
            let row = &file.rows[i];
            match (row.defect, &o.result) {
                (None, Ok(record)) => {
                    accepted += 1;
                    let cell = |c: &str| row.cell(file.header(), c).unwrap();
                    assert_eq!(record["name"], cell("姓名"), "{}", o.origin);
                    assert_eq!(record["cert_no"], cell("公民身份号码"));
                    assert_eq!(record["current_address"], cell("现住址"));
                    assert_eq!(record["village_code"], cell("社区代码"));
                    assert_eq!(record["birth_date"], days(cell("出生日期")));
                    assert_eq!(record["special_groups"], expected_groups(file, row));
                    // From a workbook this is a date cell: the reader must have seen it as a date.
                    assert_eq!(
                        record["envelope"]["event_time"], report_millis,
                        "{}",
                        o.origin
                    );
                }
                (Some(defect), Err(reason)) => {
                    rejected += 1;
                    let (stage, code) = defect.expected_rejection();
                    assert_eq!(
                        (reason.stage, reason.code.as_str()),
                        (stage, code),
                        "{}",
                        o.origin
                    );
                }
                (defect, result) => panic!("{}: expected {defect:?}, got {result:?}", o.origin),
            }
        }
        assert!(
            seen.iter().all(|n| *n == 1),
            "{}: rows seen {seen:?}",
            file.name
        );
    }
    assert!(
        accepted > 0 && rejected > 0,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[tokio::test]
async fn the_simulator_refuses_options_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let e = dept_file::run(
        DeptFileOptions {
            files_per_minute: 0.0,
            ..DeptFileOptions::new(dir.path())
        },
        Shutdown::never(),
    )
    .await
    .expect_err("no rate");
    assert!(e.to_string().contains("files_per_minute"), "{e}");
    let options: Result<DeptFileOptions, _> =
        serde_json::from_value(json!({"dir": "/tmp/x", "rows_per_fiel": 5}));
    assert!(options.unwrap_err().to_string().contains("rows_per_fiel"));
}

/// Resume after restart (the conformance kit's check) with the real file drop: the sink fails once in the middle
/// of a roster, a new watcher with the same checkpoints delivers every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_watcher_loses_no_roster_row() {
    let drop = tempfile::tempdir().unwrap();
    let options = DeptFileOptions {
        rows_per_file: 30,
        files_per_minute: 600.0,
        xlsx_share: 0.0,
        seed: 8,
        limit: Some(1),
        report_date: Some("2024-06-01".into()),
        ..DeptFileOptions::new(drop.path())
    };
    let def = definition();
    let file = generate(&options, 1).remove(0);
    let expected: BTreeSet<String> = file
        .rows
        .iter()
        .map(|row| {
            let raw = row.record(file.header()).expect("a full row");
            let input = RawInput::decoded(raw.to_string().into_bytes(), raw, "test");
            def.normalise(&input, &mut Vec::new())
                .expect("a valid row")
                .record_id
        })
        .collect();
    assert_eq!(expected.len(), 30);
    dept_file::run(options, Shutdown::never()).await.unwrap();
    let mut config = FileDropConfig::new(drop.path());
    config.encoding = TextEncoding::Gbk;
    config.poll_interval = Duration::from_millis(50);
    config.settle = Duration::from_millis(100);
    config.batch_size = 7;
    let make_source =
        move || -> Box<dyn Source> { Box::new(config.clone().build().expect("valid")) };
    let sink = Arc::new(NormalisingSink {
        def,
        outcomes: Mutex::new(Vec::new()),
    });
    let report = conformance::check_resume(
        "dept-file",
        &make_source,
        sink,
        Arc::new(MemoryCheckpointStore::default()),
        &expected,
        PATIENCE,
    )
    .await;
    report.assert_passed("dept-file");
    assert!(drop.path().join(DONE_DIR).join(&file.name).exists());
}

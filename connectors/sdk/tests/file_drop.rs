//! The file-drop transport, run against a real directory with a collecting sink and an in-memory checkpoint
//! store: encodings (UTF-8, BOM, GBK, GB18030), CSV, Excel and JSON lines, rejected rows, unreadable files,
//! settling, resuming after a sink failure, and shutdown.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use unsilo_connectors::sdk::{
    Accepted, BatchReport, CheckpointStore, MemoryCheckpointStore, RawInput, RecordSink,
    RejectReason, Rejected, RetryHint, Shutdown, ShutdownTrigger, SinkError, Source, SourceContext,
    SourceError,
};
use unsilo_connectors::transport::file_drop::{
    FileDropConfig, SheetSelector, TextEncoding, DONE_DIR, FAILED_DIR,
};

/// A sink that keeps what it acknowledged; it can fail one submit, or request shutdown after one.
#[derive(Default)]
struct CollectingSink {
    inputs: Mutex<Vec<RawInput>>,
    submits: AtomicUsize,
    /// The (1-based) submit that fails with a [`SinkError`].
    fail_on_submit: Option<usize>,
    /// Requests shutdown once this many submits were acknowledged.
    shutdown_after: Option<(usize, ShutdownTrigger)>,
}

impl CollectingSink {
    fn failing_on(submit: usize) -> Self {
        Self {
            fail_on_submit: Some(submit),
            ..Self::default()
        }
    }

    fn inputs(&self) -> Vec<RawInput> {
        self.inputs.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Value> {
        self.inputs()
            .into_iter()
            .filter_map(|i| i.parsed.ok())
            .collect()
    }

    fn rejected(&self) -> Vec<RawInput> {
        self.inputs()
            .into_iter()
            .filter(|i| i.parsed.is_err())
            .collect()
    }
}

#[async_trait]
impl RecordSink for CollectingSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        let n = self.submits.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_on_submit == Some(n) {
            return Err(SinkError("the bus is down".into()));
        }
        let mut report = BatchReport::default();
        for (index, input) in batch.iter().enumerate() {
            match &input.parsed {
                Ok(_) => report.accepted.push(Accepted {
                    index,
                    record_id: format!("{}#{index}", input.origin),
                    schema: "test".into(),
                }),
                Err(message) => report.rejected.push(Rejected {
                    index,
                    reason: RejectReason {
                        stage: "parse",
                        code: "unreadable".into(),
                        field: None,
                        message: message.clone(),
                    },
                }),
            }
        }
        self.inputs.lock().unwrap().extend(batch);
        if let Some((after, trigger)) = &self.shutdown_after {
            if n >= *after {
                trigger.trigger();
            }
        }
        Ok(report)
    }
}

/// A drop directory and a config for it that reads files at once (no settle time) and scans often.
fn drop_dir() -> (tempfile::TempDir, FileDropConfig) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = FileDropConfig::new(dir.path());
    config.settle = Duration::ZERO;
    config.poll_interval = Duration::from_millis(10);
    (dir, config)
}

fn context(
    sink: Arc<CollectingSink>,
    checkpoints: Arc<MemoryCheckpointStore>,
    shutdown: Shutdown,
) -> SourceContext {
    SourceContext {
        connector: "minzheng".into(),
        sink,
        checkpoints,
        shutdown,
    }
}

/// Runs the source until `done` holds (checked every 10 ms, for at most 30 s), then shuts it down and returns
/// what `run` returned.
async fn run_until(
    config: FileDropConfig,
    sink: Arc<CollectingSink>,
    checkpoints: Arc<MemoryCheckpointStore>,
    done: impl Fn() -> bool,
) -> Result<(), SourceError> {
    let (trigger, shutdown) = Shutdown::new();
    let mut source = config.build().unwrap();
    let task = tokio::spawn(async move { source.run(context(sink, checkpoints, shutdown)).await });
    for _ in 0..3000 {
        if done() || task.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        done(),
        "the source did not get there (finished early: {})",
        task.is_finished()
    );
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
}

/// Processes the files in `config.dir` until `file` is in `done/` or `failed/`.
async fn process(
    config: &FileDropConfig,
    sink: &Arc<CollectingSink>,
    file: &str,
) -> Arc<MemoryCheckpointStore> {
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let done = config.dir.join(DONE_DIR).join(file);
    let failed = config.dir.join(FAILED_DIR).join(file);
    run_until(config.clone(), sink.clone(), checkpoints.clone(), || {
        done.exists() || failed.exists()
    })
    .await
    .unwrap();
    checkpoints
}

fn done_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(DONE_DIR).join(file)
}

#[tokio::test]
async fn utf8_csv_rows_become_objects_with_their_original_lines() {
    let (dir, config) = drop_dir();
    let csv = "姓名,身份证号,地址,备注\n\
               张三,610921198001011234,陕西省汉阴县城关镇,\n\
               李四,610921197502022345,\"涧池镇,紫云村\",\"说 \"\"好\"\"\n第二行\"\n";
    std::fs::write(dir.path().join("people.csv"), csv).unwrap();
    let sink = Arc::new(CollectingSink::default());
    let checkpoints = process(&config, &sink, "people.csv").await;

    let inputs = sink.inputs();
    assert_eq!(inputs.len(), 2);
    assert_eq!(
        inputs[0].parsed,
        Ok(
            json!({"姓名": "张三", "身份证号": "610921198001011234", "地址": "陕西省汉阴县城关镇", "备注": ""})
        )
    );
    assert_eq!(
        inputs[0].original,
        "张三,610921198001011234,陕西省汉阴县城关镇,".as_bytes()
    );
    assert_eq!(inputs[0].origin, "people.csv line 2");
    assert_eq!(inputs[1].parsed.as_ref().unwrap()["地址"], "涧池镇,紫云村");
    assert_eq!(
        inputs[1].parsed.as_ref().unwrap()["备注"],
        "说 \"好\"\n第二行"
    );
    assert_eq!(inputs[1].origin, "people.csv line 3");
    assert!(done_path(dir.path(), "people.csv").exists());
    assert!(!dir.path().join("people.csv").exists());

    let cursor = checkpoints.load().await.unwrap().unwrap();
    assert_eq!(cursor["file"], "people.csv");
    assert_eq!(cursor["size"], csv.len() as u64);
    assert_eq!(cursor["records_done"], 2);
    assert!(cursor["mtime"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn utf8_with_bom_loses_the_bom_from_the_first_column_name() {
    let (dir, config) = drop_dir();
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice("姓名,电话\r\n张三,13800138000\r\n".as_bytes());
    std::fs::write(dir.path().join("bom.csv"), bytes).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "bom.csv").await;
    assert_eq!(
        sink.accepted(),
        vec![json!({"姓名": "张三", "电话": "13800138000"})]
    );
    assert_eq!(sink.inputs()[0].original, "张三,13800138000".as_bytes());
}

#[tokio::test]
async fn gbk_csv_is_decoded_and_keeps_its_gbk_bytes_as_original() {
    let (dir, config) = drop_dir();
    let text = "姓名,地址\r\n张三,陕西省汉阴县城关镇\r\n赵六,億丰|路\r\n";
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable);
    std::fs::write(dir.path().join("gbk.csv"), &gbk).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "gbk.csv").await;
    assert_eq!(
        sink.accepted(),
        vec![
            json!({"姓名": "张三", "地址": "陕西省汉阴县城关镇"}),
            json!({"姓名": "赵六", "地址": "億丰|路"})
        ]
    );
    let (line, _, _) = encoding_rs::GBK.encode("张三,陕西省汉阴县城关镇");
    assert_eq!(sink.inputs()[0].original, line.as_ref());
    assert!(
        std::str::from_utf8(&sink.inputs()[0].original).is_err(),
        "original must stay GBK"
    );
}

#[tokio::test]
async fn a_gbk_excel_export_with_a_title_row_reads_from_the_configured_header_row() {
    let (dir, mut config) = drop_dir();
    config.header_row = 2;
    config.encoding = TextEncoding::Gbk;
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/file_drop/minzheng_gbk.csv");
    std::fs::copy(fixture, dir.path().join("minzheng_gbk.csv")).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "minzheng_gbk.csv").await;

    let rows = sink.accepted();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["姓名"], "张三");
    assert_eq!(rows[0]["地址"], "陕西省汉阴县城关镇");
    assert_eq!(rows[1]["地址"], "陕西省汉阴县涧池镇,紫云村");
    assert_eq!(rows[1]["备注"], "因病\n致贫");
    assert_eq!(rows[2]["身份证号"], "61092119900303345X");
    let origins: Vec<String> = sink.inputs().into_iter().map(|i| i.origin).collect();
    assert_eq!(
        origins,
        [
            "minzheng_gbk.csv line 3",
            "minzheng_gbk.csv line 4",
            "minzheng_gbk.csv line 7"
        ]
    );
}

#[tokio::test]
async fn gb18030_four_byte_characters_are_decoded() {
    let (dir, config) = drop_dir();
    let text = "姓名,民族\n刘䶮,汉\n𠀀㐀,汉\n";
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(text);
    assert!(!unmappable);
    let (four, _, _) = encoding_rs::GB18030.encode("𠀀");
    assert_eq!(four.len(), 4, "𠀀 is a four-byte GB18030 sequence");
    assert!(std::str::from_utf8(&bytes).is_err());
    std::fs::write(dir.path().join("rare.csv"), &bytes).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "rare.csv").await;
    assert_eq!(
        sink.accepted(),
        vec![
            json!({"姓名": "刘䶮", "民族": "汉"}),
            json!({"姓名": "𠀀㐀", "民族": "汉"})
        ]
    );
}

#[tokio::test]
async fn a_malformed_line_in_explicit_utf8_is_rejected_and_the_rest_goes_through() {
    let (dir, mut config) = drop_dir();
    config.encoding = TextEncoding::Utf8;
    let mut bytes = "姓名,电话\n张三,1\n".as_bytes().to_vec();
    bytes.extend_from_slice(b"\xD5\xC5\xC8\xFD,2\n");
    bytes.extend_from_slice("王五,3\n".as_bytes());
    std::fs::write(dir.path().join("mixed.csv"), &bytes).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "mixed.csv").await;

    assert_eq!(
        sink.accepted(),
        vec![
            json!({"姓名": "张三", "电话": "1"}),
            json!({"姓名": "王五", "电话": "3"})
        ]
    );
    let rejected = sink.rejected();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].parsed,
        Err("line 3: not valid UTF-8 text".to_string())
    );
    assert_eq!(rejected[0].original, b"\xD5\xC5\xC8\xFD,2");
    assert_eq!(rejected[0].origin, "mixed.csv line 3");
    assert!(done_path(dir.path(), "mixed.csv").exists());
}

#[tokio::test]
async fn a_short_row_is_rejected_and_the_other_rows_are_accepted() {
    let (dir, config) = drop_dir();
    let mut csv = String::from("a,b,c,d,e,f,g\n");
    for n in 2..=16 {
        csv.push_str(&format!("{n},1,2,3,4,5,6\n"));
    }
    csv.push_str("17,1,2,3,4\n18,1,2,3,4,5,6\n");
    std::fs::write(dir.path().join("short.csv"), &csv).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "short.csv").await;

    assert_eq!(sink.accepted().len(), 16);
    let rejected = sink.rejected();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].parsed,
        Err("line 17: 5 fields, header has 7".to_string())
    );
    assert_eq!(rejected[0].original, b"17,1,2,3,4");
    assert!(done_path(dir.path(), "short.csv").exists());
}

#[tokio::test]
async fn json_lines_with_one_bad_line() {
    let (dir, config) = drop_dir();
    let jsonl = "{\"id\": 1, \"name\": \"张三\"}\n{\"id\": 2, \"name\": \n\n{\"id\": 3}\r\n";
    std::fs::write(dir.path().join("events.jsonl"), jsonl).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "events.jsonl").await;

    assert_eq!(
        sink.accepted(),
        vec![json!({"id": 1, "name": "张三"}), json!({"id": 3})]
    );
    let rejected = sink.rejected();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].origin, "events.jsonl line 2");
    assert_eq!(rejected[0].original, b"{\"id\": 2, \"name\": ");
    assert!(rejected[0]
        .parsed
        .as_ref()
        .unwrap_err()
        .starts_with("line 2: not valid JSON"));
    assert_eq!(sink.inputs()[2].origin, "events.jsonl line 4");
}

#[tokio::test]
async fn a_json_array_document_gives_one_record_per_element() {
    let (dir, config) = drop_dir();
    std::fs::write(
        dir.path().join("list.json"),
        "[\n  {\"id\": 1},\n  {\"id\": 2}\n]\n",
    )
    .unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "list.json").await;
    assert_eq!(sink.accepted(), vec![json!({"id": 1}), json!({"id": 2})]);
    assert_eq!(sink.inputs()[1].origin, "list.json item 2");
}

fn workbook() -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut book = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let sheet = book.add_worksheet();
    sheet.set_name("说明").unwrap();
    sheet.write_string(0, 0, "本表为测试数据").unwrap();
    let sheet = book.add_worksheet();
    sheet.set_name("名单").unwrap();
    for (col, name) in ["姓名", "身份证号", "手机", "登记时间", "补助金额"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, col as u16, *name).unwrap();
    }
    sheet.write_string(1, 0, "张三").unwrap();
    sheet
        .write_number(1, 1, 610_921_198_001_011_234_f64)
        .unwrap();
    sheet.write_number(1, 2, 13_800_138_000_f64).unwrap();
    let when = ExcelDateTime::parse_from_str("2024-03-05 08:30:00").unwrap();
    sheet
        .write_datetime_with_format(1, 3, &when, &date)
        .unwrap();
    sheet.write_number(1, 4, 345.5).unwrap();
    // Row 3 is left empty; row 4 has data.
    sheet.write_string(3, 0, "李四").unwrap();
    sheet.write_string(3, 1, "610921197502022345").unwrap();
    sheet.write_number(3, 4, 200).unwrap();
    book.save_to_buffer().unwrap()
}

#[tokio::test]
async fn xlsx_numbers_stay_whole_and_dates_read_as_text() {
    let (dir, mut config) = drop_dir();
    config.sheet = Some(SheetSelector::Name("名单".into()));
    std::fs::write(dir.path().join("people.xlsx"), workbook()).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "people.xlsx").await;

    let rows = sink.accepted();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let id = rows[0]["身份证号"].as_str().unwrap();
    assert_eq!(id, 610_921_198_001_011_234_f64.to_string());
    assert!(id.len() == 18 && id.starts_with("6109211980010112"), "{id}");
    assert_eq!(rows[0]["手机"], "13800138000");
    assert_eq!(rows[0]["登记时间"], "2024-03-05 08:30:00");
    assert_eq!(rows[0]["补助金额"], "345.5");
    assert_eq!(
        rows[1],
        json!({"姓名": "李四", "身份证号": "610921197502022345", "手机": "", "登记时间": "", "补助金额": "200"})
    );
    let inputs = sink.inputs();
    assert_eq!(inputs[0].origin, "people.xlsx sheet 名单 row 2");
    assert_eq!(inputs[1].origin, "people.xlsx sheet 名单 row 4");
    let original: Value = serde_json::from_slice(&inputs[0].original).unwrap();
    assert_eq!(original, rows[0]);
}

#[tokio::test]
async fn the_first_sheet_is_read_by_default_and_a_missing_sheet_fails_the_file() {
    let (dir, config) = drop_dir();
    std::fs::write(dir.path().join("a.xlsx"), workbook()).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "a.xlsx").await;
    // The first sheet has only its header row ("本表为测试数据"): no records, but the file is done.
    assert!(sink.inputs().is_empty());
    assert!(done_path(dir.path(), "a.xlsx").exists());

    let (dir, mut config) = drop_dir();
    config.sheet = Some(SheetSelector::Name("汇总".into()));
    std::fs::write(dir.path().join("b.xlsx"), workbook()).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "b.xlsx").await;
    let reason =
        std::fs::read_to_string(dir.path().join(FAILED_DIR).join("b.xlsx.reason.txt")).unwrap();
    assert!(
        reason.contains("no sheet named \"汇总\"; its sheets are: 说明, 名单"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_file_over_the_size_cap_is_not_read_but_moved_aside_with_the_reason() {
    let (dir, mut config) = drop_dir();
    config.max_file_bytes = 100;
    let big = format!("姓名,身份证号\n{}", "张三,610921196105170316\n".repeat(50));
    std::fs::write(dir.path().join("big.csv"), &big).unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "big.csv").await;
    let failed = dir.path().join(FAILED_DIR);
    let reason = std::fs::read_to_string(failed.join("big.csv.reason.txt")).unwrap();
    assert!(reason.contains("max_file_bytes"), "{reason}");
    assert_eq!(
        std::fs::read_to_string(failed.join("big.csv")).unwrap(),
        big
    );
    let inputs = sink.inputs();
    assert_eq!(inputs.len(), 1, "one dead letter, no records");
    assert!(inputs[0]
        .parsed
        .as_ref()
        .unwrap_err()
        .contains("max_file_bytes"));
    assert!(!dir.path().join("big.csv").exists());
}

#[tokio::test]
async fn a_binary_junk_file_goes_to_failed_with_a_reason_and_one_rejected_input() {
    let (dir, config) = drop_dir();
    // A picture dropped by mistake: a PNG signature and header, then noise.
    let mut junk = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    junk.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(dir.path().join("junk.csv"), &junk).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a drop file").unwrap();
    let sink = Arc::new(CollectingSink::default());
    process(&config, &sink, "junk.csv").await;

    let failed = dir.path().join(FAILED_DIR);
    assert_eq!(std::fs::read(failed.join("junk.csv")).unwrap(), junk);
    let reason = std::fs::read_to_string(failed.join("junk.csv.reason.txt")).unwrap();
    assert!(
        reason.contains("junk.csv") && reason.contains("not text"),
        "{reason}"
    );
    let inputs = sink.inputs();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].original, junk);
    assert_eq!(inputs[0].origin, "junk.csv");
    assert!(inputs[0].parsed.as_ref().unwrap_err().contains("not text"));
    assert!(!dir.path().join("junk.csv").exists());
    // Files that match no pattern are left alone.
    assert!(dir.path().join("notes.txt").exists());
}

#[tokio::test]
async fn a_corrupt_workbook_and_text_in_no_known_encoding_go_to_failed() {
    let (dir, config) = drop_dir();
    let mut corrupt = b"PK\x03\x04".to_vec();
    corrupt.extend(std::iter::repeat_n(0x5a, 300));
    std::fs::write(dir.path().join("broken.xlsx"), &corrupt).unwrap();
    std::fs::write(
        dir.path().join("garbled.csv"),
        b"a,b\n\x80\xFF\xFF,1\n\xFE\xFF,2\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("unicode.csv"), b"\xFF\xFEa\x00,\x00b\x00").unwrap();
    std::fs::write(dir.path().join("empty.csv"), b"").unwrap();
    let sink = Arc::new(CollectingSink::default());
    let failed = dir.path().join(FAILED_DIR);
    let names = ["broken.xlsx", "garbled.csv", "unicode.csv", "empty.csv"];
    let all_failed = || names.iter().all(|f| failed.join(f).exists());
    run_until(
        config,
        sink.clone(),
        Arc::new(MemoryCheckpointStore::default()),
        all_failed,
    )
    .await
    .unwrap();

    let reason = |f: &str| std::fs::read_to_string(failed.join(format!("{f}.reason.txt"))).unwrap();
    assert!(reason("broken.xlsx").contains("cannot be opened as an Excel workbook"));
    assert!(
        reason("garbled.csv").contains("neither UTF-8 nor GBK/GB18030 text (line 2"),
        "{}",
        reason("garbled.csv")
    );
    assert!(
        reason("unicode.csv").contains("UTF-16"),
        "{}",
        reason("unicode.csv")
    );
    assert!(reason("empty.csv").contains("no header row"));
    assert_eq!(sink.rejected().len(), 4);
    assert!(sink.accepted().is_empty());
}

#[tokio::test]
async fn files_are_processed_oldest_first_and_name_clashes_in_done_get_a_timestamp() {
    let (dir, config) = drop_dir();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::write(dir.path().join("a.jsonl"), "{\"f\": \"a\"}\n").unwrap();
    std::fs::write(dir.path().join("b.jsonl"), "{\"f\": \"b\"}\n").unwrap();
    std::fs::write(dir.path().join("c.jsonl"), "{\"f\": \"c\"}\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("b.jsonl"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::create_dir_all(dir.path().join(DONE_DIR)).unwrap();
    std::fs::write(done_path(dir.path(), "c.jsonl"), "yesterday's").unwrap();
    let sink = Arc::new(CollectingSink::default());
    let root = dir.path().to_path_buf();
    let all_gone = || {
        ["a.jsonl", "b.jsonl", "c.jsonl"]
            .iter()
            .all(|f| !root.join(f).exists())
    };
    run_until(
        config,
        sink.clone(),
        Arc::new(MemoryCheckpointStore::default()),
        all_gone,
    )
    .await
    .unwrap();

    let order: Vec<Value> = sink
        .accepted()
        .into_iter()
        .map(|v| v["f"].clone())
        .collect();
    assert_eq!(order[0], "b");
    assert_eq!(order.len(), 3);
    assert_eq!(
        std::fs::read_to_string(done_path(dir.path(), "c.jsonl")).unwrap(),
        "yesterday's"
    );
    let renamed: Vec<String> = std::fs::read_dir(dir.path().join(DONE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("c.") && n != "c.jsonl")
        .collect();
    assert_eq!(renamed.len(), 1, "{renamed:?}");
    assert!(renamed[0].ends_with("Z.jsonl"), "{renamed:?}");
}

fn numbered_csv(rows: usize) -> String {
    let mut csv = String::from("n,姓名\n");
    for n in 1..=rows {
        csv.push_str(&format!("{n},人{n}\n"));
    }
    csv
}

fn numbers(inputs: &[RawInput]) -> Vec<u64> {
    inputs
        .iter()
        .map(|i| {
            i.parsed.as_ref().unwrap()["n"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn after_a_sink_failure_a_new_run_resumes_from_the_checkpoint_and_loses_nothing() {
    let (dir, mut config) = drop_dir();
    config.batch_size = 2;
    std::fs::write(dir.path().join("rows.csv"), numbered_csv(7)).unwrap();
    let checkpoints = Arc::new(MemoryCheckpointStore::default());

    // First run: the third batch fails, so the source stops with a transient error.
    let failing = Arc::new(CollectingSink::failing_on(3));
    let mut source = config.clone().build().unwrap();
    let run = source.run(context(
        failing.clone(),
        checkpoints.clone(),
        Shutdown::never(),
    ));
    let error = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.hint, RetryHint::WithBackoff);
    assert!(
        error.message.contains("the bus is down"),
        "{}",
        error.message
    );
    assert_eq!(numbers(&failing.inputs()), vec![1, 2, 3, 4]);
    assert_eq!(
        checkpoints.load().await.unwrap().unwrap()["records_done"],
        4
    );
    assert!(
        dir.path().join("rows.csv").exists(),
        "an unfinished file stays in place"
    );

    // Second run, same checkpoint store: it starts after the last acknowledged record.
    let sink = Arc::new(CollectingSink::default());
    let done = done_path(dir.path(), "rows.csv");
    run_until(config, sink.clone(), checkpoints.clone(), || done.exists())
        .await
        .unwrap();
    assert_eq!(numbers(&sink.inputs()), vec![5, 6, 7]);

    let mut union = numbers(&failing.inputs());
    union.extend(numbers(&sink.inputs()));
    union.sort_unstable();
    union.dedup();
    assert_eq!(union, (1..=7).collect::<Vec<u64>>());
    assert_eq!(
        checkpoints.load().await.unwrap().unwrap()["records_done"],
        7
    );
}

#[tokio::test]
async fn a_file_changed_since_its_checkpoint_is_read_from_the_start() {
    let (dir, config) = drop_dir();
    std::fs::write(dir.path().join("rows.csv"), numbered_csv(3)).unwrap();
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let stale = json!({"file": "rows.csv", "size": 1, "mtime": 1, "records_done": 2});
    checkpoints.save(&stale).await.unwrap();
    let sink = Arc::new(CollectingSink::default());
    let done = done_path(dir.path(), "rows.csv");
    run_until(config, sink.clone(), checkpoints, || done.exists())
        .await
        .unwrap();
    assert_eq!(numbers(&sink.inputs()), vec![1, 2, 3]);
}

#[tokio::test]
async fn shutdown_between_batches_leaves_the_file_to_be_resumed() {
    let (dir, mut config) = drop_dir();
    config.batch_size = 3;
    std::fs::write(dir.path().join("rows.csv"), numbered_csv(10)).unwrap();
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let (trigger, shutdown) = Shutdown::new();
    let sink = Arc::new(CollectingSink {
        shutdown_after: Some((1, trigger)),
        ..CollectingSink::default()
    });
    let mut source = config.clone().build().unwrap();
    let run = source.run(context(sink.clone(), checkpoints.clone(), shutdown));
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(numbers(&sink.inputs()), vec![1, 2, 3]);
    assert!(dir.path().join("rows.csv").exists());

    let rest = Arc::new(CollectingSink::default());
    let done = done_path(dir.path(), "rows.csv");
    run_until(config, rest.clone(), checkpoints, || done.exists())
        .await
        .unwrap();
    assert_eq!(numbers(&rest.inputs()), (4..=10).collect::<Vec<u64>>());
}

#[tokio::test]
async fn shutdown_stops_an_idle_source_without_waiting_for_the_next_scan() {
    let (dir, mut config) = drop_dir();
    config.poll_interval = Duration::from_secs(3600);
    let (trigger, shutdown) = Shutdown::new();
    let sink = Arc::new(CollectingSink::default());
    let mut source = config.build().unwrap();
    let ctx = context(sink, Arc::new(MemoryCheckpointStore::default()), shutdown);
    let task = tokio::spawn(async move { source.run(ctx).await });
    // Wait until the source has started (it creates done/ and failed/ first).
    while !dir.path().join(FAILED_DIR).exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    trigger.trigger();
    // An hour-long poll interval: only the shutdown signal can end this in time.
    let result = tokio::time::timeout(Duration::from_secs(30), task).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn a_half_written_file_is_not_read_before_it_settles() {
    let (dir, mut config) = drop_dir();
    config.settle = Duration::from_secs(10);
    config.poll_interval = Duration::from_secs(1);
    let path = dir.path().join("slow.csv");
    std::fs::write(&path, "姓名,电话\n张三,13800138000\n李").unwrap();
    let sink = Arc::new(CollectingSink::default());
    let (trigger, shutdown) = Shutdown::new();
    let mut source = config.build().unwrap();
    let ctx = context(
        sink.clone(),
        Arc::new(MemoryCheckpointStore::default()),
        shutdown,
    );
    let task = tokio::spawn(async move { source.run(ctx).await });

    // The clock is paused: this lets the source scan several times while the copy is "still running".
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        sink.inputs().is_empty(),
        "read before it settled: {:?}",
        sink.inputs()
    );
    assert!(path.exists());

    let mut file = std::fs::File::options().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, "四,13900139000\n".as_bytes()).unwrap();
    drop(file);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        sink.inputs().is_empty(),
        "the settle time starts again when the file changes"
    );

    let done = done_path(dir.path(), "slow.csv");
    for _ in 0..600 {
        if done.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done.exists());
    assert_eq!(
        sink.accepted(),
        vec![
            json!({"姓名": "张三", "电话": "13800138000"}),
            json!({"姓名": "李四", "电话": "13900139000"})
        ]
    );
    assert!(sink.rejected().is_empty());
    trigger.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_missing_directory_is_a_transient_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileDropConfig::new(dir.path().join("not-mounted"));
    let mut source = config.build().unwrap();
    let sink = Arc::new(CollectingSink::default());
    let ctx = context(
        sink,
        Arc::new(MemoryCheckpointStore::default()),
        Shutdown::never(),
    );
    let error = source.run(ctx).await.unwrap_err();
    assert_eq!(error.hint, RetryHint::WithBackoff);
    assert!(error.message.contains("not-mounted"), "{}", error.message);
    assert!(
        !dir.path().join("not-mounted").exists(),
        "an unmounted share is not created"
    );
}

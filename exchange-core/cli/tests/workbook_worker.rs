//! The workbook worker as the hub runs it: this binary's `read-workbook` command in a child process under a memory
//! limit, reading a real workbook, refusing a hostile one, and failing alone when it is killed.

use std::time::Duration;

use unsilo_connectors::transport::file_drop::{FileDropConfig, WorkbookWorker};

fn worker() -> WorkbookWorker {
    WorkbookWorker::new(env!("CARGO_BIN_EXE_unsilo"), ["read-workbook"])
}

fn roster() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "姓名").unwrap();
    sheet.write_string(0, 1, "身份证号").unwrap();
    sheet.write_string(1, 0, "张三").unwrap();
    sheet.write_string(1, 1, "610921196105170316").unwrap();
    book.save_to_buffer().unwrap()
}

#[tokio::test]
async fn the_hubs_own_binary_reads_a_dropped_workbook_in_a_memory_limited_worker() {
    let rows = worker()
        .read("名单.xlsx", roster(), &FileDropConfig::new("."))
        .await
        .expect("read by the worker");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].parsed.as_ref().unwrap()["身份证号"],
        "610921196105170316"
    );
    assert_eq!(rows[0].origin, "名单.xlsx sheet Sheet1 row 2");
    // A file that is not a workbook: the worker says why, the caller carries on.
    let err = worker()
        .read(
            "x.xlsx",
            b"PK\x03\x04junk".to_vec(),
            &FileDropConfig::new("."),
        )
        .await
        .unwrap_err();
    assert!(err.contains("workbook"), "{err}");
}

#[tokio::test]
async fn a_worker_that_cannot_have_the_memory_it_asks_for_fails_alone() {
    // 8 MiB of address space is not enough for the binary to start: whatever the child does, the caller gets an
    // error naming the reader, not a crash.
    let err = worker()
        .with_memory_limit(8 << 20)
        .with_time_limit(Duration::from_secs(60))
        .read("x.xlsx", roster(), &FileDropConfig::new("."))
        .await
        .unwrap_err();
    assert!(err.contains("workbook reader"), "{err}");
}

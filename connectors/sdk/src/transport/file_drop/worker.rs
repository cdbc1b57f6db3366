//! Reading untrusted workbooks where a crash cannot take the hub down: in a worker process, under a memory and
//! a time limit.
//!
//! A workbook is a zip of XML (or, for `.xls`, a binary compound file) written by whoever dropped it, and the
//! reader sizes some of its allocations from what the file claims. [`super::read`] checks what it can before the
//! reader runs, but an allocation failure is not a panic — it aborts the whole process, and nothing can catch it.
//! So where the hub's binary registers a worker ([`isolate_workbooks`], done by `unsilo serve` and `unsilo demo`),
//! every `.xlsx` and `.xls` is read by a child process of that binary (`unsilo read-workbook`), whose address space
//! is capped (`ulimit -v`, default 1 GiB) and whose run is capped in time (default 2 min). A file that kills its
//! reader, or outlives the limit, fails alone: it is moved to `failed/` with the reason and dead-lettered, and
//! the hub and the next file carry on.
//!
//! The protocol: the request (file name, header row, sheet) is the child's last argument as JSON; the file's
//! bytes are its standard input; its standard output is JSON lines — `{"failure": "…"}` for a file that cannot be
//! read, else one `{"origin": "…", "row": {…}}` per record, in order.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{FileDropConfig, SheetSelector};
use crate::sdk::RawInput;

/// Most bytes of records a worker may hand back for one workbook (the hub holds them while it submits them).
const MAX_WORKER_OUTPUT: u64 = 512 * 1024 * 1024;

/// How the hub's binary reads workbooks out of process: the program and arguments that run the worker
/// (`unsilo read-workbook`), and its limits.
#[derive(Clone, Debug)]
pub struct WorkbookWorker {
    program: PathBuf,
    args: Vec<OsString>,
    memory_limit_bytes: u64,
    time_limit: Duration,
}

impl WorkbookWorker {
    /// A worker run as `program args… <request>`, with the default limits (1 GiB of address space, 2 minutes).
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            memory_limit_bytes: 1 << 30,
            time_limit: Duration::from_secs(120),
        }
    }

    /// The same worker with another address-space limit.
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit_bytes = bytes;
        self
    }

    /// The same worker with another time limit.
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// Reads the workbook `bytes` (dropped as `name`) in a worker process: its records, or why the file cannot be
    /// read — including a worker that was killed (an allocation the limit refused aborts it) or ran too long.
    pub async fn read(
        &self,
        name: &str,
        bytes: Vec<u8>,
        config: &FileDropConfig,
    ) -> Result<Vec<RawInput>, String> {
        let request = serde_json::to_string(&WorkbookRequest::of(name, config))
            .map_err(|e| format!("the workbook request could not be written: {e}"))?;
        // `ulimit -v` caps the child's address space; `exec` keeps the shell out of the way.
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v {} && exec \"$0\" \"$@\"",
                (self.memory_limit_bytes / 1024).max(1)
            ))
            .arg(&self.program)
            .args(&self.args)
            .arg(request)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("the workbook reader could not be started: {e}"))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or("the workbook reader has no input")?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or("the workbook reader has no output")?;
        let run = async {
            let feed = async move {
                // A reader that stops early closes its input: what it did not read does not matter.
                let _ = stdin.write_all(&bytes).await;
                drop(stdin);
            };
            let mut out = Vec::new();
            let mut bounded = (&mut stdout).take(MAX_WORKER_OUTPUT + 1);
            let (_, read) = tokio::join!(feed, bounded.read_to_end(&mut out));
            read.map_err(|e| format!("the workbook reader's output could not be read: {e}"))?;
            if out.len() as u64 > MAX_WORKER_OUTPUT {
                return Err(format!(
                    "the workbook's rows come to more than {} MiB; split it",
                    MAX_WORKER_OUTPUT >> 20
                ));
            }
            let status = child
                .wait()
                .await
                .map_err(|e| format!("the workbook reader could not be waited for: {e}"))?;
            Ok::<_, String>((status, out))
        };
        let (status, out) = tokio::time::timeout(self.time_limit, run)
            .await
            .map_err(|_| {
                format!(
                    "the workbook reader did not finish within {} s; the file is too large or built to stall it",
                    self.time_limit.as_secs()
                )
            })??;
        if !status.success() {
            return Err(killed(status, self.memory_limit_bytes));
        }
        parse_output(&out)
    }
}

/// Why a worker that did not exit cleanly failed, in words for operators.
fn killed(status: std::process::ExitStatus, limit: u64) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!(
                "the workbook reader was stopped by signal {signal} while reading it (it asked for more than the {} MiB a workbook may use, or the file is built to crash it)",
                limit >> 20
            );
        }
    }
    format!(
        "the workbook reader failed while reading it ({status}); the file is damaged or hostile"
    )
}

/// The records a worker wrote, or the failure it reported.
fn parse_output(out: &[u8]) -> Result<Vec<RawInput>, String> {
    let mut records = Vec::new();
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line: Line = serde_json::from_slice(line)
            .map_err(|e| format!("the workbook reader wrote something unreadable: {e}"))?;
        match line {
            Line::Failure { failure } => return Err(failure),
            Line::Row { origin, row } => {
                records.push(RawInput::decoded(row.to_string().into_bytes(), row, origin))
            }
        }
    }
    Ok(records)
}

/// One line of the worker's output.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Failure { failure: String },
    Row { origin: String, row: Value },
}

/// What the worker is asked to read: the file's name and where its table is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkbookRequest {
    name: String,
    header_row: u32,
    #[serde(default)]
    sheet_index: Option<u32>,
    #[serde(default)]
    sheet_name: Option<String>,
}

impl WorkbookRequest {
    fn of(name: &str, config: &FileDropConfig) -> Self {
        let (sheet_index, sheet_name) = match &config.sheet {
            Some(SheetSelector::Index(n)) => (Some(*n), None),
            Some(SheetSelector::Name(s)) => (None, Some(s.clone())),
            None => (None, None),
        };
        Self {
            name: name.to_owned(),
            header_row: config.header_row,
            sheet_index,
            sheet_name,
        }
    }

    fn config(&self) -> FileDropConfig {
        let mut config = FileDropConfig::new(".");
        config.header_row = self.header_row;
        config.sheet = match (self.sheet_index, &self.sheet_name) {
            (Some(n), _) => Some(SheetSelector::Index(n)),
            (None, Some(s)) => Some(SheetSelector::Name(s.clone())),
            (None, None) => None,
        };
        config
    }
}

/// The worker's side (`unsilo read-workbook <request>`): reads a workbook from `input` as `request` says and
/// writes its records, or why it cannot be read, to `output` (see the module docs).
pub fn serve_workbook_request(
    request: &str,
    mut input: impl Read,
    mut output: impl Write,
) -> std::io::Result<()> {
    let request: WorkbookRequest = serde_json::from_str(request)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let write = |out: &mut dyn Write, line: &Line| -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, line)?;
        out.write_all(b"\n")
    };
    match super::read::open(&request.name, bytes, &request.config()) {
        Err(failure) => write(
            &mut output,
            &Line::Failure {
                failure: failure.to_string(),
            },
        )?,
        Ok(records) => {
            for record in records {
                let row = match record.parsed {
                    Ok(row) => row,
                    Err(reason) => Value::String(reason),
                };
                write(
                    &mut output,
                    &Line::Row {
                        origin: record.origin,
                        row,
                    },
                )?;
            }
        }
    }
    output.flush()
}

static WORKER: OnceLock<WorkbookWorker> = OnceLock::new();

/// Registers the worker every file-drop source of this process reads workbooks with; the first registration
/// wins. Without one, workbooks are read in process (tests, tools).
pub fn isolate_workbooks(worker: WorkbookWorker) {
    let _ = WORKER.set(worker);
}

/// The registered worker, if any.
pub(super) fn registered() -> Option<&'static WorkbookWorker> {
    WORKER.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster() -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "姓名").unwrap();
        sheet.write_string(1, 0, "张三").unwrap();
        sheet.write_string(2, 0, "李四").unwrap();
        book.save_to_buffer().unwrap()
    }

    #[test]
    fn the_worker_side_writes_rows_or_the_failure() {
        let mut out = Vec::new();
        let request =
            serde_json::to_string(&WorkbookRequest::of("r.xlsx", &FileDropConfig::new(".")))
                .unwrap();
        serve_workbook_request(&request, roster().as_slice(), &mut out).unwrap();
        let records = parse_output(&out).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].parsed.as_ref().unwrap()["姓名"], "李四");
        assert_eq!(records[1].origin, "r.xlsx sheet Sheet1 row 3");
        let mut out = Vec::new();
        serve_workbook_request(&request, b"PK\x03\x04 not a zip".as_slice(), &mut out).unwrap();
        assert!(parse_output(&out).unwrap_err().contains("workbook"));
    }

    #[tokio::test]
    async fn a_worker_that_aborts_fails_its_file_alone() {
        // A stand-in worker that dies as an allocation failure would: by SIGABRT.
        let dying = WorkbookWorker::new("sh", ["-c", "kill -ABRT $$"]);
        let err = dying
            .read("x.xlsx", roster(), &FileDropConfig::new("."))
            .await
            .unwrap_err();
        assert!(err.contains("signal 6"), "{err}");
        let stalling = WorkbookWorker::new("sh", ["-c", "sleep 30"])
            .with_time_limit(Duration::from_millis(300));
        let err = stalling
            .read("x.xlsx", roster(), &FileDropConfig::new("."))
            .await
            .unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
    }
}

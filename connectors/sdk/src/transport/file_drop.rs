//! File drop: a watched directory where a department drops its exports — CSV, Excel workbooks, JSON lines.
//!
//! The source scans `dir` every `poll_interval` (a polling scan, which works the same on local disks and on
//! network shares where change notifications are unreliable). A file is read once it has been unchanged in size
//! and modification time for `settle`, so a half-copied file is never read. Its records go to the sink in
//! batches; after every acknowledged batch the source checkpoints `{file, size, mtime, records_done}`, so a
//! restart resumes the file after the last acknowledged record (at-least-once). A fully acknowledged file moves
//! to `done/`. A file that cannot be read at all moves to `failed/` with `<name>.reason.txt` next to it, and its
//! bytes go to the sink as one rejected input, so the operator also sees it on the dead-letter topic.
//!
//! Each CSV or worksheet row becomes a JSON object `{column: "text"}`; each JSON line (or each element of a
//! `.json` array) becomes one input as it is. Text files may be UTF-8 (with or without BOM), GBK or GB18030.
//!
//! ```toml
//! dir = "/srv/drop/minzheng"
//! patterns = ["*.csv", "*.xlsx"]
//! encoding = "auto"
//! header_row = 2
//! poll_interval = "5s"
//! ```

mod read;
mod text;
mod worker;

pub use worker::{isolate_workbooks, serve_workbook_request, WorkbookWorker};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::poll::deserialize_duration;
use crate::sdk::{RawInput, Source, SourceContext, SourceError};
use read::Records;

/// The folder inside `dir` that fully processed files move to.
pub const DONE_DIR: &str = "done";
/// The folder inside `dir` that unreadable files move to, each with a `<name>.reason.txt`.
pub const FAILED_DIR: &str = "failed";
/// At most this many bytes of an unreadable file go to the dead-letter topic (the file itself is kept whole in
/// `failed/`).
pub const MAX_REJECTED_FILE_BYTES: usize = 512 * 1024;

/// Configuration of a file-drop source.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDropConfig {
    /// The watched directory. It must exist (an unmounted share is a transient error, not an empty drop);
    /// `done/` and `failed/` are created inside it.
    pub dir: PathBuf,
    /// File names to pick up, matched case-insensitively; `*` matches any run of characters, `?` one character.
    /// Other files are left alone, as are hidden files (`.name`) and Excel lock files (`~$name`).
    /// Default: `["*.csv", "*.xlsx", "*.xls", "*.jsonl", "*.ndjson", "*.json"]`.
    #[serde(default = "default_patterns")]
    pub patterns: Vec<String>,
    /// How to read a file: `auto` (default: workbooks by their content, the rest by extension — `.csv`,
    /// `.xlsx`/`.xlsm`/`.xls`, `.jsonl`/`.ndjson`, `.json`), `csv`, `excel`, `jsonl` or `json` (a JSON document:
    /// an array gives one record per element; anything that does not parse as one document is read as JSON
    /// lines).
    #[serde(default)]
    pub format: FileFormat,
    /// The encoding of text files: `auto` (default: UTF-8 with or without BOM, else GB18030, which covers
    /// GBK), `utf-8`, `gbk` or `gb18030`. With an explicit encoding a record with malformed bytes is rejected
    /// (naming its line) and the rest of the file goes through.
    #[serde(default)]
    pub encoding: TextEncoding,
    /// The CSV field delimiter, one ASCII character: `","` (default), `";"`, `"|"` or `"\t"`.
    #[serde(default = "default_csv_delimiter")]
    pub csv_delimiter: char,
    /// The row holding the column names, 1-based as Excel numbers rows (default 1). Rows above it (a title
    /// such as "2024年低保名单") are skipped; blank rows at or after it are skipped too.
    #[serde(default = "default_header_row")]
    pub header_row: u32,
    /// The worksheet of a workbook: its name (`"名单"`) or its 1-based position (`2`). Default: the first.
    #[serde(default)]
    pub sheet: Option<SheetSelector>,
    /// How often the directory is scanned: a duration such as `"500ms"`, `"2s"`, `"1m"`, `"1h30m"`, or a number
    /// of seconds. Default `"2s"`.
    #[serde(
        default = "default_poll_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub poll_interval: Duration,
    /// How long a file must stay unchanged (size and modification time) before it is read, so files still
    /// being copied are not read half-written. Same syntax as `poll_interval`; default `"1s"`.
    #[serde(default = "default_settle", deserialize_with = "deserialize_duration")]
    pub settle: Duration,
    /// Records per batch handed to the sink (and per checkpoint). Default 500.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Largest file read (bytes; default 256 MiB). A larger one is not read at all: it is moved to `failed/`
    /// with the reason and dead-lettered (its first bytes attached), so it cannot exhaust the hub's memory.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

fn default_max_file_bytes() -> u64 {
    256 * 1024 * 1024
}

/// How a dropped file is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Workbooks by their content, everything else by its extension.
    #[default]
    Auto,
    /// Delimited text.
    Csv,
    /// An Excel workbook (`.xlsx`, `.xlsm` or the older `.xls`).
    #[serde(alias = "xlsx", alias = "xls")]
    Excel,
    /// One JSON value per line.
    #[serde(rename = "jsonl", alias = "ndjson")]
    JsonLines,
    /// One JSON document (an array gives one record per element), or JSON lines if it is not one document.
    Json,
}

/// The encoding of text files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum TextEncoding {
    /// UTF-8 (with or without BOM) if the file is UTF-8, else GB18030.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// UTF-8; a leading BOM is skipped.
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    /// GBK, as Excel writes CSV on Chinese Windows (read with the GB18030 decoder, a superset).
    #[serde(rename = "gbk", alias = "GBK")]
    Gbk,
    /// GB18030, including its four-byte characters (䶮, 𠀀).
    #[serde(rename = "gb18030", alias = "GB18030")]
    Gb18030,
}

/// Which worksheet of a workbook to read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SheetSelector {
    /// The sheet's 1-based position among the workbook's sheets.
    Index(u32),
    /// The sheet's name.
    Name(String),
}

fn default_patterns() -> Vec<String> {
    ["*.csv", "*.xlsx", "*.xls", "*.jsonl", "*.ndjson", "*.json"]
        .map(String::from)
        .to_vec()
}

fn default_csv_delimiter() -> char {
    ','
}

fn default_header_row() -> u32 {
    1
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_settle() -> Duration {
    Duration::from_secs(1)
}

fn default_batch_size() -> usize {
    500
}

/// A file-drop configuration that cannot work.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileDropConfigError {
    /// `batch_size` is zero.
    #[error("file drop: batch_size must be at least 1")]
    ZeroBatchSize,
    /// `header_row` is zero.
    #[error("file drop: header_row counts from 1 (the first row), so it must be at least 1")]
    ZeroHeaderRow,
    /// `sheet` is the position 0.
    #[error(
        "file drop: sheet positions count from 1 (the first sheet), so sheet must be at least 1"
    )]
    ZeroSheetIndex,
    /// `csv_delimiter` is not usable.
    #[error("file drop: csv_delimiter {0:?} must be one ASCII character other than a quote or a line break")]
    BadDelimiter(char),
    /// No usable pattern.
    #[error("file drop: patterns must hold at least one non-empty file-name pattern")]
    NoPatterns,
    /// `poll_interval` is zero.
    #[error("file drop: poll_interval must be longer than zero")]
    ZeroPollInterval,
}

impl From<FileDropConfigError> for SourceError {
    fn from(e: FileDropConfigError) -> Self {
        SourceError::fatal(e.to_string())
    }
}

impl FileDropConfig {
    /// A configuration with every default, watching `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            patterns: default_patterns(),
            format: FileFormat::default(),
            encoding: TextEncoding::default(),
            csv_delimiter: default_csv_delimiter(),
            header_row: default_header_row(),
            sheet: None,
            poll_interval: default_poll_interval(),
            settle: default_settle(),
            batch_size: default_batch_size(),
            max_file_bytes: default_max_file_bytes(),
        }
    }

    /// Checks the configuration and builds the source.
    pub fn build(self) -> Result<FileDropSource, FileDropConfigError> {
        if self.batch_size == 0 {
            return Err(FileDropConfigError::ZeroBatchSize);
        }
        if self.header_row == 0 {
            return Err(FileDropConfigError::ZeroHeaderRow);
        }
        if self.sheet == Some(SheetSelector::Index(0)) {
            return Err(FileDropConfigError::ZeroSheetIndex);
        }
        let d = self.csv_delimiter;
        if !d.is_ascii() || matches!(d, '"' | '\r' | '\n') {
            return Err(FileDropConfigError::BadDelimiter(d));
        }
        if self.patterns.is_empty() || self.patterns.iter().any(|p| p.trim().is_empty()) {
            return Err(FileDropConfigError::NoPatterns);
        }
        if self.poll_interval.is_zero() {
            return Err(FileDropConfigError::ZeroPollInterval);
        }
        let patterns = self.patterns.iter().map(|p| p.to_lowercase()).collect();
        Ok(FileDropSource {
            config: self,
            patterns,
        })
    }
}

/// The checkpoint of a file-drop source: how far into which file the sink has acknowledged.
///
/// It names the file by its name, size and modification time, so a file that was replaced by another with the
/// same name is read from the start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// The file's name inside the watched directory.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, in milliseconds since the Unix epoch.
    pub mtime: u64,
    /// How many of its records (accepted or rejected, in file order) the sink has acknowledged.
    pub records_done: u64,
}

/// A running file-drop source. Built by [`FileDropConfig::build`].
#[derive(Debug)]
pub struct FileDropSource {
    config: FileDropConfig,
    /// `config.patterns`, lower-cased.
    patterns: Vec<String>,
}

/// A candidate file seen by a scan.
#[derive(Clone, Debug)]
struct FileInfo {
    name: String,
    path: PathBuf,
    size: u64,
    mtime: SystemTime,
}

impl FileInfo {
    fn mtime_ms(&self) -> u64 {
        self.mtime
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn matches(&self, checkpoint: &FileCheckpoint) -> bool {
        checkpoint.file == self.name
            && checkpoint.size == self.size
            && checkpoint.mtime == self.mtime_ms()
    }
}

/// What became of one file.
#[derive(Debug, PartialEq, Eq)]
enum FileOutcome {
    /// All its records are acknowledged and it is in `done/`.
    Done,
    /// It could not be read and is in `failed/`.
    Failed,
    /// It vanished or changed before it could be read; it will be looked at again.
    Skipped,
    /// Shutdown was requested between two batches.
    Interrupted,
}

#[async_trait]
impl Source for FileDropSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), SourceError> {
        let dir = self.config.dir.clone();
        blocking(move || prepare_dir(&dir)).await??;
        let mut checkpoint = load_checkpoint(&ctx).await?;
        let mut settle = SettleTracker::new(self.config.settle);
        let mut shutdown = ctx.shutdown.clone();
        loop {
            if shutdown.is_requested() {
                return Ok(());
            }
            let dir = self.config.dir.clone();
            let patterns = self.patterns.clone();
            let files = blocking(move || scan(&dir, &patterns)).await??;
            let now = Instant::now();
            settle.forget_missing(&files);
            let mut ready: Vec<FileInfo> = files
                .into_iter()
                .filter(|f| {
                    // The file a checkpoint points into was settled before the restart.
                    checkpoint.as_ref().is_some_and(|c| f.matches(c)) || settle.is_settled(f, now)
                })
                .collect();
            // Oldest first; the file that was interrupted goes before all others so its checkpoint is not lost.
            ready.sort_by(|a, b| {
                let resumed = |f: &FileInfo| !checkpoint.as_ref().is_some_and(|c| f.matches(c));
                (resumed(a), a.mtime, &a.name).cmp(&(resumed(b), b.mtime, &b.name))
            });
            let mut progressed = false;
            for file in ready {
                if shutdown.is_requested() {
                    return Ok(());
                }
                match self.process_file(&ctx, &file, &mut checkpoint).await? {
                    FileOutcome::Done | FileOutcome::Failed => {
                        settle.forget(&file.path);
                        progressed = true;
                    }
                    FileOutcome::Skipped => {}
                    FileOutcome::Interrupted => return Ok(()),
                }
            }
            if progressed {
                // New files may have arrived while these were read.
                continue;
            }
            let wait = settle
                .next_due(Instant::now())
                .map_or(self.config.poll_interval, |d| {
                    d.min(self.config.poll_interval)
                });
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

impl FileDropSource {
    /// Reads one settled file and submits its records batch by batch, checkpointing after each.
    async fn process_file(
        &self,
        ctx: &SourceContext,
        file: &FileInfo,
        checkpoint: &mut Option<FileCheckpoint>,
    ) -> Result<FileOutcome, SourceError> {
        if file.size > self.config.max_file_bytes {
            // Not read at all: only its first bytes go with the dead letter.
            let path = file.path.clone();
            let head = blocking(move || -> std::io::Result<Vec<u8>> {
                use std::io::Read;
                let mut head = Vec::with_capacity(MAX_REJECTED_FILE_BYTES);
                std::fs::File::open(path)?
                    .take(MAX_REJECTED_FILE_BYTES as u64)
                    .read_to_end(&mut head)?;
                Ok(head)
            })
            .await?
            .unwrap_or_default();
            let reason = format!(
                "the file has {} bytes, more than the {} a dropped file may have (max_file_bytes); split it",
                file.size, self.config.max_file_bytes
            );
            return self.fail_file(ctx, file, head, &reason).await;
        }
        let path = file.path.clone();
        let bytes = match blocking(move || std::fs::read(path)).await? {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileOutcome::Skipped),
            Err(e) => {
                // Perhaps still locked by the program writing it: look again at the next scan.
                warn!(connector = %ctx.connector, file = %file.name, error = %e, "File cannot be read yet.");
                return Ok(FileOutcome::Skipped);
            }
        };
        if bytes.len() as u64 != file.size {
            debug!(connector = %ctx.connector, file = %file.name, "File changed while it was read.");
            return Ok(FileOutcome::Skipped);
        }
        // What goes to the dead-letter topic if the file turns out unreadable (the reader consumes the bytes).
        let head = bytes[..bytes.len().min(MAX_REJECTED_FILE_BYTES)].to_vec();
        let config = self.config.clone();
        let name = file.name.clone();
        // Workbooks from outside are read where a reader that aborts cannot take the hub down (see `worker`).
        if let Some(worker) =
            worker::registered().filter(|_| read::is_workbook(&name, &bytes, config.format))
        {
            let records = match worker.read(&name, bytes, &config).await {
                Ok(rows) => Records::Decoded(rows.into_iter()),
                Err(reason) => return self.fail_file(ctx, file, head, &reason).await,
            };
            return self.submit_records(ctx, file, records, checkpoint).await;
        }
        let opened = tokio::task::spawn_blocking(move || read::open(&name, bytes, &config)).await;
        let records = match opened {
            Ok(Ok(records)) => records,
            Ok(Err(failure)) => return self.fail_file(ctx, file, head, &failure.to_string()).await,
            Err(_) => {
                // A reader that panics on malformed content must not take the hub down.
                let reason = "the file cannot be read: the reader stopped on malformed content";
                return self.fail_file(ctx, file, head, reason).await;
            }
        };
        self.submit_records(ctx, file, records, checkpoint).await
    }

    /// Submits a file's records after those a checkpoint says are done, then moves it to `done/`.
    async fn submit_records(
        &self,
        ctx: &SourceContext,
        file: &FileInfo,
        mut records: Records,
        checkpoint: &mut Option<FileCheckpoint>,
    ) -> Result<FileOutcome, SourceError> {
        let mut done: u64 = match checkpoint.as_ref() {
            Some(c) if file.matches(c) => c.records_done,
            Some(c) if c.file == file.name => {
                warn!(connector = %ctx.connector, file = %file.name,
                    "File changed since its checkpoint; reading it from the start.");
                0
            }
            _ => 0,
        };
        for skipped in 0..done {
            if records.next().is_none() {
                warn!(connector = %ctx.connector, file = %file.name, checkpoint = done, records = skipped,
                    "File has fewer records than its checkpoint; nothing left to submit.");
                break;
            }
        }
        if done > 0 {
            info!(connector = %ctx.connector, file = %file.name, records_done = done, "Resuming file.");
        }
        let mut rejected = 0usize;
        loop {
            let batch: Vec<RawInput> = records.by_ref().take(self.config.batch_size).collect();
            if batch.is_empty() {
                break;
            }
            if ctx.shutdown.is_requested() {
                return Ok(FileOutcome::Interrupted);
            }
            let len = batch.len() as u64;
            let report = ctx.sink.submit(batch).await?;
            rejected += report.rejected.len();
            done += len;
            let cursor = FileCheckpoint {
                file: file.name.clone(),
                size: file.size,
                mtime: file.mtime_ms(),
                records_done: done,
            };
            let json = serde_json::to_value(&cursor).map_err(|e| {
                SourceError::fatal(format!("checkpoint cannot be written as JSON: {e}"))
            })?;
            ctx.checkpoints.save(&json).await?;
            *checkpoint = Some(cursor);
            debug!(connector = %ctx.connector, file = %file.name, records_done = done, "Checkpoint stored.");
        }
        let dir = self.config.dir.clone();
        let path = file.path.clone();
        let name = file.name.clone();
        let moved = blocking(move || move_into(&dir.join(DONE_DIR), &path, &name)).await?;
        moved.map_err(|e| {
            SourceError::transient(format!(
                "{} is processed but cannot be moved to {DONE_DIR}/: {e}",
                file.name
            ))
        })?;
        debug!(connector = %ctx.connector, file = %file.name, records = done, rejected, "File processed.");
        Ok(FileOutcome::Done)
    }

    /// Sends an unreadable file to the sink as one rejected input, then moves it to `failed/` with the reason.
    async fn fail_file(
        &self,
        ctx: &SourceContext,
        file: &FileInfo,
        head: Vec<u8>,
        reason: &str,
    ) -> Result<FileOutcome, SourceError> {
        let mut dlq_reason = format!("{}: {reason}", file.name);
        if file.size > head.len() as u64 {
            dlq_reason.push_str(&format!(
                " (only the first {} of its {} bytes are attached; the file is in {FAILED_DIR}/)",
                head.len(),
                file.size
            ));
        }
        let input = RawInput {
            original: head,
            parsed: Err(dlq_reason),
            origin: file.name.clone(),
        };
        ctx.sink.submit(vec![input]).await?;
        let dir = self.config.dir.clone();
        let path = file.path.clone();
        let name = file.name.clone();
        let note = reason_note(&file.name, &ctx.connector, &self.config.dir, reason);
        let moved =
            blocking(move || move_failed(&dir.join(FAILED_DIR), &path, &name, &note)).await?;
        moved.map_err(|e| {
            SourceError::transient(format!(
                "{} cannot be moved to {FAILED_DIR}/: {e}",
                file.name
            ))
        })?;
        warn!(connector = %ctx.connector, file = %file.name, reason, "File cannot be read; moved to failed/.");
        Ok(FileOutcome::Failed)
    }
}

/// The text of `<name>.reason.txt`.
fn reason_note(name: &str, connector: &str, dir: &Path, reason: &str) -> String {
    format!(
        "unsilo could not read the file \"{name}\" and moved it here.\n\
         \n\
         Reason: {reason}.\n\
         \n\
         Its bytes were also sent to the dead-letter topic of connector \"{connector}\" (dlq.{connector}), so \
         nothing from it was lost.\n\
         To try again, fix the file and copy it back into {}.\n",
        dir.display()
    )
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, SourceError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SourceError::transient(format!("a file-system task failed: {e}")))
}

/// Checks the watched directory and creates `done/` and `failed/` in it.
fn prepare_dir(dir: &Path) -> Result<(), SourceError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(SourceError::fatal(format!(
                "file drop: {} is not a directory",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(SourceError::transient(format!(
                "file drop: directory {} cannot be opened ({e}); is the share mounted?",
                dir.display()
            )))
        }
    }
    for sub in [DONE_DIR, FAILED_DIR] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| {
            SourceError::transient(format!(
                "file drop: cannot create {}: {e}",
                dir.join(sub).display()
            ))
        })?;
    }
    Ok(())
}

/// Reads the checkpoint; one this source cannot read is ignored (with a warning), not fatal.
async fn load_checkpoint(ctx: &SourceContext) -> Result<Option<FileCheckpoint>, SourceError> {
    let Some(json) = ctx.checkpoints.load().await? else {
        return Ok(None);
    };
    match serde_json::from_value::<FileCheckpoint>(json) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            warn!(connector = %ctx.connector, error = %e, "Checkpoint is not a file-drop checkpoint; ignoring it.");
            Ok(None)
        }
    }
}

/// Lists the regular files in `dir` whose names match a pattern.
fn scan(dir: &Path, patterns: &[String]) -> Result<Vec<FileInfo>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        SourceError::transient(format!("file drop: cannot list {}: {e}", dir.display()))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with("~$") {
            continue;
        }
        let lower = name.to_lowercase();
        if !patterns.iter().any(|p| glob_match(p, &lower)) {
            continue;
        }
        let path = entry.path();
        // Follows symbolic links; a file that vanished since the listing is simply not there.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        files.push(FileInfo {
            name,
            path,
            size: meta.len(),
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
        });
    }
    Ok(files)
}

/// Matches a file name against a pattern with `*` (any run) and `?` (one character).
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Moves a file into `target_dir` under its own name, or with a timestamp (and a counter) if that is taken.
/// Returns the new path.
fn move_into(target_dir: &Path, path: &Path, name: &str) -> std::io::Result<PathBuf> {
    let target = free_name(target_dir, name);
    std::fs::rename(path, &target)?;
    Ok(target)
}

/// Writes the reason note, then moves the file next to it.
fn move_failed(target_dir: &Path, path: &Path, name: &str, note: &str) -> std::io::Result<PathBuf> {
    let target = free_name(target_dir, name);
    let target_name = target
        .file_name()
        .map_or_else(|| name.to_string(), |n| n.to_string_lossy().into_owned());
    std::fs::write(target_dir.join(format!("{target_name}.reason.txt")), note)?;
    std::fs::rename(path, &target)?;
    Ok(target)
}

/// `dir/name` if free, else `dir/<stem>.<UTC timestamp>[-n].<ext>`.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let plain = dir.join(name);
    if !plain.exists() {
        return plain;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let stamp = chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.format("%Y%m%dT%H%M%SZ").to_string(),
    );
    let mut candidate = dir.join(format!("{stem}.{stamp}{ext}"));
    let mut n = 2;
    while candidate.exists() {
        candidate = dir.join(format!("{stem}.{stamp}-{n}{ext}"));
        n += 1;
    }
    candidate
}

/// Tells when a file has been unchanged for the settle time.
#[derive(Debug)]
struct SettleTracker {
    settle: Duration,
    seen: HashMap<PathBuf, Observation>,
}

/// A file's size and modification time, and since when they have been so.
#[derive(Debug)]
struct Observation {
    size: u64,
    mtime: SystemTime,
    since: Instant,
}

impl SettleTracker {
    fn new(settle: Duration) -> Self {
        Self {
            settle,
            seen: HashMap::new(),
        }
    }

    /// Records what a scan saw; true once the file has looked the same for at least the settle time.
    fn is_settled(&mut self, file: &FileInfo, now: Instant) -> bool {
        match self.seen.get_mut(&file.path) {
            Some(seen) if seen.size == file.size && seen.mtime == file.mtime => {
                now.saturating_duration_since(seen.since) >= self.settle
            }
            Some(seen) => {
                *seen = Observation {
                    size: file.size,
                    mtime: file.mtime,
                    since: now,
                };
                self.settle.is_zero()
            }
            None => {
                self.seen.insert(
                    file.path.clone(),
                    Observation {
                        size: file.size,
                        mtime: file.mtime,
                        since: now,
                    },
                );
                self.settle.is_zero()
            }
        }
    }

    /// Forgets a file that was processed.
    fn forget(&mut self, path: &Path) {
        self.seen.remove(path);
    }

    /// Forgets files that are no longer in the directory.
    fn forget_missing(&mut self, present: &[FileInfo]) {
        self.seen
            .retain(|path, _| present.iter().any(|f| &f.path == path));
    }

    /// How long until the next file that is still settling will be settled.
    fn next_due(&self, now: Instant) -> Option<Duration> {
        self.seen
            .values()
            .map(|o| {
                self.settle
                    .saturating_sub(now.saturating_duration_since(o.since))
            })
            .filter(|d| !d.is_zero())
            .min()
    }
}

/// Reads a dropped file's bytes into records as the source would (format by name and content, encoding
/// detected), at most `limit` of them: for tools and fuzzing. `Err` is why the whole file is unreadable.
pub fn read_file_bytes(
    name: &str,
    bytes: Vec<u8>,
    format: FileFormat,
    limit: usize,
) -> Result<Vec<RawInput>, String> {
    let config = FileDropConfig {
        format,
        ..FileDropConfig::new(".")
    };
    let records = read::open(name, bytes, &config).map_err(|e| format!("{e:?}"))?;
    Ok(records.take(limit).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_defaults_and_names_a_wrong_key() {
        let config: FileDropConfig = serde_json::from_value(
            serde_json::json!({"dir": "/tmp/x", "poll_interval": "5s", "sheet": 2}),
        )
        .unwrap();
        assert_eq!(config.poll_interval, Duration::from_secs(5));
        assert_eq!(config.settle, Duration::from_secs(1));
        assert_eq!(config.batch_size, 500);
        assert_eq!(config.sheet, Some(SheetSelector::Index(2)));
        assert_eq!(config.encoding, TextEncoding::Auto);
        let gbk: FileDropConfig = serde_json::from_value(
            serde_json::json!({"dir": "/x", "encoding": "gbk", "sheet": "名单"}),
        )
        .unwrap();
        assert_eq!(gbk.encoding, TextEncoding::Gbk);
        assert_eq!(gbk.sheet, Some(SheetSelector::Name("名单".into())));
        let utf8: FileDropConfig = serde_json::from_value(
            serde_json::json!({"dir": "/x", "encoding": "utf-8", "format": "jsonl"}),
        )
        .unwrap();
        assert_eq!(
            (utf8.encoding, utf8.format),
            (TextEncoding::Utf8, FileFormat::JsonLines)
        );
        let wrong = serde_json::from_value::<FileDropConfig>(
            serde_json::json!({"dir": "/x", "delimiter": ";"}),
        );
        assert!(wrong.unwrap_err().to_string().contains("delimiter"));
        let bad = serde_json::from_value::<FileDropConfig>(
            serde_json::json!({"dir": "/x", "settle": "soon"}),
        );
        assert!(bad.unwrap_err().to_string().contains("invalid duration"));
    }

    #[test]
    fn build_refuses_configurations_that_cannot_work() {
        let mut config = FileDropConfig::new("/x");
        config.batch_size = 0;
        assert_eq!(
            config.build().err(),
            Some(FileDropConfigError::ZeroBatchSize)
        );
        let mut config = FileDropConfig::new("/x");
        config.csv_delimiter = '"';
        assert_eq!(
            config.build().err(),
            Some(FileDropConfigError::BadDelimiter('"'))
        );
        let mut config = FileDropConfig::new("/x");
        config.csv_delimiter = '，';
        assert_eq!(
            config.build().err(),
            Some(FileDropConfigError::BadDelimiter('，'))
        );
        let mut config = FileDropConfig::new("/x");
        config.header_row = 0;
        assert_eq!(
            config.build().err(),
            Some(FileDropConfigError::ZeroHeaderRow)
        );
        assert!(FileDropConfig::new("/x").build().is_ok());
    }

    #[test]
    fn patterns_match_names_with_wildcards() {
        assert!(glob_match("*.csv", "orders.csv"));
        assert!(glob_match("*.csv", ".csv"));
        assert!(!glob_match("*.csv", "orders.csv.part"));
        assert!(glob_match("低保_??.xlsx", "低保_03.xlsx"));
        assert!(!glob_match("低保_??.xlsx", "低保_3.xlsx"));
        assert!(glob_match("*_*.json*", "a_b.jsonl"));
        assert!(glob_match("*", "anything"));
    }

    fn info(size: u64, mtime_secs: u64) -> FileInfo {
        FileInfo {
            name: "a.csv".into(),
            path: PathBuf::from("/drop/a.csv"),
            size,
            mtime: UNIX_EPOCH + Duration::from_secs(mtime_secs),
        }
    }

    #[test]
    fn a_file_settles_only_after_it_stayed_unchanged_for_the_settle_time() {
        let mut tracker = SettleTracker::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!tracker.is_settled(&info(100, 1), t0));
        assert!(!tracker.is_settled(&info(100, 1), t0 + Duration::from_secs(9)));
        assert_eq!(
            tracker.next_due(t0 + Duration::from_secs(9)),
            Some(Duration::from_secs(1))
        );
        // It grew: the clock starts again.
        assert!(!tracker.is_settled(&info(200, 2), t0 + Duration::from_secs(9)));
        assert!(!tracker.is_settled(&info(200, 2), t0 + Duration::from_secs(18)));
        assert!(tracker.is_settled(&info(200, 2), t0 + Duration::from_secs(19)));
        // Touched without growing: the clock starts again too.
        assert!(!tracker.is_settled(&info(200, 3), t0 + Duration::from_secs(20)));
        tracker.forget_missing(&[]);
        assert_eq!(tracker.next_due(t0), None);
    }

    #[test]
    fn name_clashes_get_a_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x").unwrap();
        let first = free_name(dir.path(), "a.csv");
        let name = first.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("a.") && name.ends_with("Z.csv"), "{name}");
        std::fs::write(&first, "x").unwrap();
        let second = free_name(dir.path(), "a.csv");
        assert!(second.to_string_lossy().ends_with("-2.csv"));
        assert_eq!(free_name(dir.path(), "b.csv"), dir.path().join("b.csv"));
    }
}

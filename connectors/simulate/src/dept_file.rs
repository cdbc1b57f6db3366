//! Simulator of the departmental exports behind the `dept-file` connector: roster files that a department saves
//! from its own system and drops into the hub's watched folder — the 残联 disability roster (残疾人名册) and the 民政
//! elderly living-alone roster (独居老人名册), with Chinese column headers, as GBK CSV (what Excel writes on Chinese
//! Windows) and as Excel workbooks.
//!
//! [`run`] writes one file every `60 / files_per_minute` seconds, `rows_per_file` rows each. Every file is written
//! under a hidden temporary name (`.<name>.part`, which the watcher ignores) and then renamed into place, so the
//! watcher never sees half a file.
//!
//! A configurable share of the rows is malformed, each with exactly one [`RowDefect`]: an ID number with a wrong
//! check digit, a birth date that is no date, or (CSV only) a row cut short. Now and then a whole file is corrupt —
//! a CSV with binary garbage in it, a workbook cut off in the middle — and must end in the watcher's `failed/`.
//!
//! Files come from [`DeptFileGenerator`], pure and deterministic from its seed and report date, so tests and
//! benchmarks can draw the very files [`run`] writes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Datelike, NaiveDate, Utc};
use rand::Rng;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::{debug, info};

use super::fake::{Faker, Person};
use unsilo_connectors::sdk::Shutdown;

/// The county the simulated departments belong to: 汉阴县.
pub const COUNTY: &str = "610921";

/// Headers of the 残联 disability roster, in file order.
pub const DISABLED_HEADER: &[&str] = &[
    "序号",
    "档案编号",
    "姓名",
    "性别",
    "民族",
    "出生日期",
    "公民身份号码",
    "残疾类别",
    "残疾等级",
    "联系电话",
    "户号",
    "户籍地址",
    "现住址",
    "所属社区",
    "社区代码",
    "填报日期",
];

/// Headers of the 民政 elderly living-alone roster, in file order.
pub const ELDERLY_HEADER: &[&str] = &[
    "序号",
    "档案编号",
    "姓名",
    "性别",
    "出生日期",
    "公民身份号码",
    "联系电话",
    "户号",
    "户籍地址",
    "现住址",
    "所属社区",
    "社区代码",
    "居住情况",
    "紧急联系人",
    "紧急联系人电话",
    "填报日期",
];

/// Options of the dept-file simulator (`unsilo simulate dept-file`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeptFileOptions {
    /// The watched folder to drop files into (created if missing).
    pub dir: PathBuf,
    /// Rows per file.
    #[serde(default = "default_rows_per_file")]
    pub rows_per_file: u32,
    /// Files written per minute.
    #[serde(default = "default_files_per_minute")]
    pub files_per_minute: f64,
    /// Share of the rows that are malformed (0.0–1.0).
    #[serde(default)]
    pub malformed_share: f64,
    /// Share of the files that are corrupt as a whole (0.0–1.0); by default a tenth of `malformed_share`.
    #[serde(default)]
    pub corrupt_file_share: Option<f64>,
    /// Share of the files written as Excel workbooks rather than CSV (0.0–1.0).
    #[serde(default = "default_xlsx_share")]
    pub xlsx_share: f64,
    /// Seed of the fake data: the same seed and report date write the same files.
    #[serde(default)]
    pub seed: u64,
    /// Stop after this many files; without it, run until shutdown.
    #[serde(default)]
    pub limit: Option<u64>,
    /// The rosters' 填报日期 as `YYYY-MM-DD`; by default today in Beijing.
    #[serde(default)]
    pub report_date: Option<String>,
}

fn default_rows_per_file() -> u32 {
    50
}

fn default_files_per_minute() -> f64 {
    2.0
}

fn default_xlsx_share() -> f64 {
    0.25
}

impl DeptFileOptions {
    /// Options with every default, dropping into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            rows_per_file: default_rows_per_file(),
            files_per_minute: default_files_per_minute(),
            malformed_share: 0.0,
            corrupt_file_share: None,
            xlsx_share: default_xlsx_share(),
            seed: 0,
            limit: None,
            report_date: None,
        }
    }
}

/// What the simulator wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Files written (CSV and workbooks, corrupt ones included).
    pub files: u64,
    /// Of which Excel workbooks.
    pub xlsx_files: u64,
    /// Of which corrupt as a whole.
    pub corrupt_files: u64,
    /// Rows written in readable files.
    pub rows: u64,
    /// Of which malformed.
    pub malformed_rows: u64,
}

/// Why the simulator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options cannot work.
    #[error("dept-file simulator: {0}")]
    Config(String),
    /// A file could not be written.
    #[error("dept-file simulator: cannot write {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A workbook could not be built.
    #[error("dept-file simulator: cannot build a workbook: {0}")]
    Workbook(String),
}

impl From<rust_xlsxwriter::XlsxError> for Error {
    fn from(e: rust_xlsxwriter::XlsxError) -> Self {
        Error::Workbook(e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Files and rows
// ---------------------------------------------------------------------------------------------------------------

/// Which roster a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Roster {
    /// 残疾人名册 of the disabled persons' federation.
    Disabled,
    /// 独居老人名册 of civil affairs.
    ElderlyAlone,
}

impl Roster {
    /// The roster's name as in the file name.
    pub fn label(self) -> &'static str {
        match self {
            Roster::Disabled => "残疾人名册",
            Roster::ElderlyAlone => "独居老人名册",
        }
    }

    /// The column headers, in file order.
    pub fn header(self) -> &'static [&'static str] {
        match self {
            Roster::Disabled => DISABLED_HEADER,
            Roster::ElderlyAlone => ELDERLY_HEADER,
        }
    }
}

/// How a file is saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Comma-separated text in GBK, CRLF line ends.
    Csv,
    /// An Excel workbook; 填报日期 is a date cell, everything else text.
    Xlsx,
}

/// The one thing wrong with a malformed row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowDefect {
    /// 公民身份号码 has a wrong check digit.
    BadCertNo,
    /// 出生日期 is no date (不详, 1962/2/30, …).
    GarbageDate,
    /// The CSV line lacks its last three fields.
    ShortRow,
}

impl RowDefect {
    /// The stage and code such a row is rejected with (a short row by the file drop itself, before the mapping).
    pub fn expected_rejection(self) -> (&'static str, &'static str) {
        match self {
            RowDefect::BadCertNo => ("validation", "validator(cert_no)"),
            RowDefect::GarbageDate => ("mapping", "bad_datetime"),
            RowDefect::ShortRow => ("parse", "unreadable_input"),
        }
    }
}

/// One row of a generated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedRow {
    /// The cells as written (fewer than the header's for a short row); 填报日期 as `YYYY-MM-DD`.
    pub cells: Vec<String>,
    /// What is wrong with it, if it is malformed.
    pub defect: Option<RowDefect>,
}

impl GeneratedRow {
    /// The row as the file drop reads it from a CSV file — `{header: text}` — or `None` for a short row, which
    /// the file drop rejects itself. (From a workbook, 填报日期 reads `YYYY-MM-DD 00:00:00`.)
    pub fn record(&self, header: &[&str]) -> Option<Value> {
        if self.cells.len() != header.len() {
            return None;
        }
        let map: Map<String, Value> = header
            .iter()
            .zip(&self.cells)
            .map(|(h, c)| ((*h).to_owned(), Value::String(c.clone())))
            .collect();
        Some(Value::Object(map))
    }

    /// The cell under `column`, if the row has it.
    pub fn cell(&self, header: &[&str], column: &str) -> Option<&str> {
        let i = header.iter().position(|h| *h == column)?;
        self.cells.get(i).map(String::as_str)
    }
}

/// One generated file: its name, bytes and what is in it.
#[derive(Clone, Debug)]
pub struct GeneratedFile {
    /// File name, e.g. `残疾人名册_20240601_0003.csv`.
    pub name: String,
    /// Which roster.
    pub roster: Roster,
    /// How it is saved.
    pub format: ExportFormat,
    /// Whether the file as a whole is unreadable (then `rows` were meant to be in it but cannot be read).
    pub corrupt: bool,
    /// The rows, in file order (data rows start on line / row 2, under the header).
    pub rows: Vec<GeneratedRow>,
    /// The file's contents.
    pub bytes: Vec<u8>,
}

impl GeneratedFile {
    /// The column headers.
    pub fn header(&self) -> &'static [&'static str] {
        self.roster.header()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------------------------

/// 残疾类别 with weights (肢体 is by far the most common).
const DISABILITY_CATEGORIES: &[(&str, u32)] = &[
    ("肢体", 40),
    ("听力", 15),
    ("视力", 12),
    ("精神", 12),
    ("智力", 10),
    ("多重", 8),
    ("言语", 3),
];
/// 残疾等级.
const DISABILITY_GRADES: &[&str] = &["一级", "二级", "三级", "三级", "四级", "四级"];
/// 居住情况.
const LIVING: &[&str] = &["独居", "独居", "独居", "留守"];
/// Birth dates that are no dates, as they turn up in hand-kept rosters.
const GARBAGE_DATES: &[&str] = &[
    "不详",
    "1950/13/7",
    "1962/2/30",
    "1949/0/12",
    "19五三/3/7",
    "00/00/00",
];

/// Deterministic generator of roster files.
#[derive(Debug)]
pub struct DeptFileGenerator {
    faker: Faker,
    rows_per_file: u32,
    malformed_share: f64,
    corrupt_file_share: f64,
    xlsx_share: f64,
    report_date: NaiveDate,
    files: u64,
    archive_serial: u32,
}

fn check_share(name: &str, share: f64) -> Result<f64, Error> {
    crate::options::within(name, share, crate::options::SHARE).map_err(Error::Config)
}

/// Today in Beijing.
fn today_beijing() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(8)).date_naive()
}

impl DeptFileGenerator {
    /// A generator for these options (their `dir`, `files_per_minute` and `limit` do not matter here).
    pub fn new(options: &DeptFileOptions) -> Result<Self, Error> {
        if options.rows_per_file == 0 {
            return Err(Error::Config("rows_per_file must be at least 1".into()));
        }
        let malformed_share = check_share("malformed_share", options.malformed_share)?;
        let corrupt_file_share = check_share(
            "corrupt_file_share",
            options.corrupt_file_share.unwrap_or(malformed_share / 10.0),
        )?;
        let xlsx_share = check_share("xlsx_share", options.xlsx_share)?;
        let report_date = match &options.report_date {
            Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                Error::Config(format!(
                    "report_date {text:?} is not a date like 2024-06-01"
                ))
            })?,
            None => today_beijing(),
        };
        let mut faker = Faker::for_counties(options.seed, &[COUNTY]);
        // Archive numbers start somewhere seed-dependent, so runs with different seeds rarely share one.
        let archive_serial = faker.rng().random_range(1_000..500_000);
        Ok(Self {
            faker,
            rows_per_file: options.rows_per_file,
            malformed_share,
            corrupt_file_share,
            xlsx_share,
            report_date,
            files: 0,
            archive_serial,
        })
    }

    /// The next file.
    pub fn next_file(&mut self) -> Result<GeneratedFile, Error> {
        self.files += 1;
        let roster = if self.faker.chance(0.5) {
            Roster::Disabled
        } else {
            Roster::ElderlyAlone
        };
        let format = if self.faker.chance(self.xlsx_share) {
            ExportFormat::Xlsx
        } else {
            ExportFormat::Csv
        };
        let corrupt = self.faker.chance(self.corrupt_file_share);
        let rows: Vec<GeneratedRow> = (1..=self.rows_per_file)
            .map(|n| self.row(roster, format, n))
            .collect();
        let extension = match format {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        };
        let name = format!(
            "{}_{}_{:04}.{extension}",
            roster.label(),
            self.report_date.format("%Y%m%d"),
            self.files
        );
        let mut bytes = match format {
            ExportFormat::Csv => csv_bytes(roster.header(), &rows),
            ExportFormat::Xlsx => self.xlsx_bytes(roster, &rows)?,
        };
        if corrupt {
            match format {
                // A crashed export: the first half of the text, then a run of zero bytes.
                ExportFormat::Csv => {
                    bytes.truncate(bytes.len() / 2);
                    bytes.extend(std::iter::repeat_n(0u8, 4096));
                }
                // A workbook cut off in the middle: no central directory, so no workbook.
                ExportFormat::Xlsx => bytes.truncate(bytes.len() * 3 / 5),
            }
        }
        Ok(GeneratedFile {
            name,
            roster,
            format,
            corrupt,
            rows,
            bytes,
        })
    }

    /// An elderly person: born at least 60 years before the report date.
    fn elderly_person(&mut self) -> Person {
        let latest = format!("{:04}", self.report_date.year() - 60);
        let mut person = self.faker.person();
        for _ in 0..64 {
            if person.birth[..4] <= *latest {
                break;
            }
            person = self.faker.person();
        }
        person
    }

    fn row(&mut self, roster: Roster, format: ExportFormat, n: u32) -> GeneratedRow {
        let person = match roster {
            Roster::Disabled => self.faker.person(),
            Roster::ElderlyAlone => self.elderly_person(),
        };
        self.archive_serial += 1;
        let f = &mut self.faker;
        let village = f.village();
        let address = f.address(village);
        let current = if f.chance(0.9) {
            address.clone()
        } else {
            f.address(village)
        };
        let birth = birth_text(&person.birth);
        let gender = if person.gender_code == "1" {
            "男"
        } else {
            "女"
        };
        let household = format!("{COUNTY}{:06}", f.rng().random_range(0..1_000_000u32));
        let report = self.report_date.format("%Y-%m-%d").to_string();
        let mut cells: Vec<String> = match roster {
            Roster::Disabled => {
                let category = weighted(f, DISABILITY_CATEGORIES);
                let grade = *f.pick(DISABILITY_GRADES);
                let phone = if f.chance(0.85) {
                    person.phone.clone()
                } else {
                    String::new()
                };
                vec![
                    n.to_string(),
                    format!("CL{COUNTY}{:06}", self.archive_serial),
                    person.name.clone(),
                    gender.into(),
                    person.ethnicity.into(),
                    birth,
                    person.cert_no.clone(),
                    category.into(),
                    grade.into(),
                    phone,
                    household,
                    address,
                    current,
                    village.name().into(),
                    village.code().into(),
                    report,
                ]
            }
            Roster::ElderlyAlone => {
                let living = *f.pick(LIVING);
                let phone = if f.chance(0.6) {
                    person.phone.clone()
                } else {
                    String::new()
                };
                let (contact, contact_phone) = if f.chance(0.8) {
                    let surname: String = person.name.chars().take(1).collect();
                    let given: String = f.name().chars().skip(1).collect();
                    (format!("{surname}{given}"), f.phone())
                } else {
                    (String::new(), String::new())
                };
                vec![
                    n.to_string(),
                    format!("DJ{COUNTY}{:06}", self.archive_serial),
                    person.name.clone(),
                    gender.into(),
                    birth,
                    person.cert_no.clone(),
                    phone,
                    household,
                    address,
                    current,
                    village.name().into(),
                    village.code().into(),
                    living.into(),
                    contact,
                    contact_phone,
                    report,
                ]
            }
        };
        let mut defect = None;
        if f.chance(self.malformed_share) {
            let choices: &[RowDefect] = match format {
                ExportFormat::Csv => &[
                    RowDefect::BadCertNo,
                    RowDefect::GarbageDate,
                    RowDefect::ShortRow,
                ],
                ExportFormat::Xlsx => &[RowDefect::BadCertNo, RowDefect::GarbageDate],
            };
            let d = *f.pick(choices);
            let header = roster.header();
            let column = |name: &str| header.iter().position(|h| *h == name).unwrap_or(0);
            match d {
                RowDefect::BadCertNo => {
                    let i = column("公民身份号码");
                    cells[i] = f.corrupt_cert_no(&cells[i]);
                }
                RowDefect::GarbageDate => {
                    cells[column("出生日期")] = (*f.pick(GARBAGE_DATES)).to_owned()
                }
                RowDefect::ShortRow => cells.truncate(cells.len().saturating_sub(3)),
            }
            defect = Some(d);
        }
        GeneratedRow { cells, defect }
    }

    fn xlsx_bytes(&self, roster: Roster, rows: &[GeneratedRow]) -> Result<Vec<u8>, Error> {
        let mut workbook = Workbook::new();
        // A fixed creation time (the report date), so the same seed gives the same bytes.
        let d = self.report_date;
        let created = ExcelDateTime::from_ymd(year_u16(d.year()), d.month() as u8, d.day() as u8)?
            .and_hms(8, 0, 0)?;
        workbook.set_properties(&DocProperties::new().set_creation_datetime(&created));
        let date_format = Format::new().set_num_format("yyyy-mm-dd");
        let header = roster.header();
        let report_column = header.iter().position(|h| *h == "填报日期");
        let sheet = workbook.add_worksheet();
        sheet.set_name(roster.label())?;
        for (col, h) in header.iter().enumerate() {
            sheet.write_string(0, col_num(col), *h)?;
        }
        for (r, row) in rows.iter().enumerate() {
            let r = u32::try_from(r + 1).unwrap_or(u32::MAX);
            for (col, cell) in row.cells.iter().enumerate() {
                if Some(col) == report_column {
                    sheet.write_datetime_with_format(
                        r,
                        col_num(col),
                        &created_date(d)?,
                        &date_format,
                    )?;
                } else {
                    // Every other cell is text, as ID and phone numbers must be (a number loses digits).
                    sheet.write_string(r, col_num(col), cell.as_str())?;
                }
            }
        }
        Ok(workbook.save_to_buffer()?)
    }
}

fn year_u16(year: i32) -> u16 {
    u16::try_from(year).unwrap_or(2024)
}

fn created_date(d: NaiveDate) -> Result<ExcelDateTime, Error> {
    Ok(ExcelDateTime::from_ymd(
        year_u16(d.year()),
        d.month() as u8,
        d.day() as u8,
    )?)
}

fn col_num(col: usize) -> u16 {
    u16::try_from(col).unwrap_or(u16::MAX)
}

fn weighted(f: &mut Faker, items: &[(&'static str, u32)]) -> &'static str {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut draw = f.rng().random_range(0..total.max(1));
    for (item, w) in items {
        if draw < *w {
            return item;
        }
        draw -= w;
    }
    items.first().map_or("", |(item, _)| item)
}

/// `19500307` → `1950/3/7`, as Excel shows a date typed into a text cell on Chinese Windows.
fn birth_text(yyyymmdd: &str) -> String {
    let part = |range: std::ops::Range<usize>| {
        yyyymmdd
            .get(range)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(1)
    };
    format!("{}/{}/{}", part(0..4), part(4..6), part(6..8))
}

/// One CSV field, quoted if it must be.
fn csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// The CSV text of a roster in GBK, CRLF line ends, as Excel saves "CSV (逗号分隔)".
fn csv_bytes(header: &[&str], rows: &[GeneratedRow]) -> Vec<u8> {
    let mut text = String::new();
    let lines = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
        .chain(rows.iter().map(|r| r.cells.clone()));
    for cells in lines {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            csv_field(&mut text, cell);
        }
        let _ = write!(text, "\r\n");
    }
    let (bytes, _, _) = encoding_rs::GBK.encode(&text);
    bytes.into_owned()
}

// ---------------------------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------------------------

/// Writes `bytes` as `dir/name` through a hidden temporary file and a rename; returns the final path (with a
/// `-2`, `-3`… suffix if a file of that name is still waiting in the folder).
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
    let io = |path: &Path, e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut target = dir.join(name);
    let mut n = 2;
    while target.exists() {
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        target = dir.join(format!("{stem}-{n}.{ext}"));
        n += 1;
    }
    let temp = dir.join(format!(".{name}.part"));
    std::fs::write(&temp, bytes).map_err(|e| io(&temp, e))?;
    std::fs::rename(&temp, &target).map_err(|e| io(&target, e))?;
    Ok(target)
}

/// Drops roster files into `options.dir` at the configured rate until `limit` files are written or `shutdown`
/// fires.
pub async fn run(options: DeptFileOptions, mut shutdown: Shutdown) -> Result<Stats, Error> {
    if !(options.files_per_minute.is_finite() && options.files_per_minute > 0.0) {
        return Err(Error::Config(format!(
            "files_per_minute must be a positive number, not {}",
            options.files_per_minute
        )));
    }
    let mut generator = DeptFileGenerator::new(&options)?;
    let dir = options.dir.clone();
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Error::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
    // Between a millisecond and a day, so neither a huge nor a tiny rate can break the timer.
    let period = Duration::try_from_secs_f64(60.0 / options.files_per_minute)
        .unwrap_or(Duration::MAX)
        .clamp(Duration::from_millis(1), Duration::from_secs(86_400));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats = Stats::default();
    info!(dir = %dir.display(), "Dept-file simulator dropping rosters.");
    while options.limit.is_none_or(|l| stats.files < l) {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.wait() => break,
        }
        let file = generator.next_file()?;
        let dir = dir.clone();
        let name = file.name.clone();
        let bytes = file.bytes.clone();
        let path = tokio::task::spawn_blocking(move || drop_file(&dir, &name, &bytes))
            .await
            .map_err(|e| Error::Io {
                path: file.name.clone(),
                message: format!("the writing task failed: {e}"),
            })??;
        stats.files += 1;
        if file.format == ExportFormat::Xlsx {
            stats.xlsx_files += 1;
        }
        if file.corrupt {
            stats.corrupt_files += 1;
        } else {
            stats.rows += file.rows.len() as u64;
            stats.malformed_rows += file.rows.iter().filter(|r| r.defect.is_some()).count() as u64;
        }
        debug!(file = %path.display(), rows = file.rows.len(), corrupt = file.corrupt, "Roster dropped.");
    }
    info!(?stats, "Dept-file simulator stopped.");
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DeptFileOptions {
        DeptFileOptions {
            rows_per_file: 20,
            malformed_share: 0.3,
            corrupt_file_share: Some(0.2),
            xlsx_share: 0.5,
            seed: 9,
            report_date: Some("2024-06-01".into()),
            ..DeptFileOptions::new("/nonexistent")
        }
    }

    #[test]
    fn same_seed_same_files() {
        let mut a = DeptFileGenerator::new(&options()).unwrap();
        let mut b = DeptFileGenerator::new(&options()).unwrap();
        for _ in 0..6 {
            let (x, y) = (a.next_file().unwrap(), b.next_file().unwrap());
            assert_eq!((&x.name, &x.rows, &x.bytes), (&y.name, &y.rows, &y.bytes));
        }
    }

    #[test]
    fn csv_is_gbk_and_quotes_what_it_must() {
        let rows = vec![GeneratedRow {
            cells: vec!["张三".into(), "a,b".into()],
            defect: None,
        }];
        let bytes = csv_bytes(&["姓名", "备注"], &rows);
        let (text, _, bad) = encoding_rs::GBK.decode(&bytes);
        assert!(!bad);
        assert_eq!(text, "姓名,备注\r\n张三,\"a,b\"\r\n");
        assert!(std::str::from_utf8(&bytes).is_err(), "GBK, not UTF-8");
    }

    #[test]
    fn birth_dates_read_as_excel_shows_them() {
        assert_eq!(birth_text("19500307"), "1950/3/7");
        assert_eq!(birth_text("20011121"), "2001/11/21");
    }

    #[test]
    fn elderly_are_sixty_or_older() {
        let mut g = DeptFileGenerator::new(&DeptFileOptions {
            malformed_share: 0.0,
            ..options()
        })
        .unwrap();
        for _ in 0..10 {
            let f = g.next_file().unwrap();
            if f.roster == Roster::ElderlyAlone {
                for r in &f.rows {
                    let birth = r.cell(f.header(), "出生日期").unwrap();
                    let year: i32 = birth[..4].parse().unwrap();
                    assert!(year <= 1964, "{birth}");
                }
            }
        }
    }

    #[test]
    fn bad_options_are_refused() {
        let e = DeptFileGenerator::new(&DeptFileOptions {
            rows_per_file: 0,
            ..options()
        })
        .unwrap_err();
        assert!(e.to_string().contains("rows_per_file"));
        let e = DeptFileGenerator::new(&DeptFileOptions {
            malformed_share: 1.5,
            ..options()
        })
        .unwrap_err();
        assert!(e.to_string().contains("malformed_share"));
        let e = DeptFileGenerator::new(&DeptFileOptions {
            report_date: Some("6/1".into()),
            ..options()
        })
        .unwrap_err();
        assert!(e.to_string().contains("report_date"));
    }
}

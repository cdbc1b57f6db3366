//! Turning the bytes of one dropped file into a stream of [`RawInput`]s: CSV, Excel workbooks and JSON lines.
//!
//! [`open`] does everything that can fail for the *whole file* (format, encoding, header, workbook structure),
//! so a file either fails before any record was submitted or yields records; a bad *record* is a rejected
//! input, never a failure of the file. The stream is deterministic, which is what lets a checkpoint say "the
//! first N records are done".

use std::io::Cursor as IoCursor;

use calamine::{Data, ExcelDateTime, Range, Reader, Sheets, Xls, Xlsx};
use serde_json::{Map, Value};

use super::text::{next_record, resolve_charset, split_fields, Charset, Cursor};
use super::{FileDropConfig, FileFormat, SheetSelector};
use crate::sdk::RawInput;

/// Why a whole file could not be read. The text is shown to operators (in `<name>.reason.txt` and on the
/// dead-letter topic), so it says what is wrong in plain words and never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub(super) enum FileFailure {
    /// A zero byte: no CSV or JSON text has one.
    #[error("the file is not text: it contains binary data (a zero byte at offset {offset})")]
    Binary {
        /// Where the first zero byte is.
        offset: usize,
    },
    /// UTF-16, as Excel writes for "Unicode text".
    #[error(
        "the file is UTF-16 text (Excel's \"Unicode text\"); save it as CSV (UTF-8 or GBK) instead"
    )]
    Utf16,
    /// Neither UTF-8 nor GB18030.
    #[error("the file is neither UTF-8 nor GBK/GB18030 text (line {line} is valid in neither)")]
    Undecodable {
        /// The first line that decodes in neither.
        line: usize,
    },
    /// No non-blank row at or after the header row: an empty file, or only blank rows.
    #[error("the file has no header row: no non-blank row at or after row {header_row}")]
    NoHeader {
        /// The configured header row.
        header_row: u32,
    },
    /// The header row cannot be decoded.
    #[error("the header row (line {line}) is not valid {charset} text")]
    HeaderUndecodable {
        /// Its line.
        line: usize,
        /// The encoding tried.
        charset: &'static str,
    },
    /// The header row opens a quoted field that never closes.
    #[error("the header row (line {line}) opens a quoted field that is never closed")]
    HeaderOpenQuote {
        /// Its line.
        line: usize,
    },
    /// The workbook cannot be opened.
    #[error("the file cannot be opened as an Excel workbook: {0}")]
    Workbook(String),
    /// The configured sheet is not in the workbook.
    #[error("the workbook has no sheet {wanted}; its sheets are: {available}")]
    NoSheet {
        /// The configured sheet.
        wanted: String,
        /// The sheets it has.
        available: String,
    },
    /// The format cannot be told from the name.
    #[error(
        "the file's format cannot be told from its name (extension \"{extension}\" is not csv, xlsx, xls, jsonl, \
         ndjson or json); set `format` in the connector's configuration"
    )]
    UnknownFormat {
        /// The extension found.
        extension: String,
    },
}

/// The records of one file, produced on demand.
pub(super) enum Records {
    /// CSV rows.
    Delimited(DelimitedRecords),
    /// JSON lines.
    JsonLines(JsonLineRecords),
    /// The items of a JSON document (an array's elements, or the one object).
    JsonItems(JsonItems),
    /// The rows of a worksheet.
    Sheet(SheetRows),
    /// Records a workbook worker read (see `super::worker`).
    Decoded(std::vec::IntoIter<RawInput>),
}

impl Iterator for Records {
    type Item = RawInput;

    fn next(&mut self) -> Option<RawInput> {
        match self {
            Records::Delimited(r) => r.next(),
            Records::JsonLines(r) => r.next(),
            Records::JsonItems(r) => r.next(),
            Records::Sheet(r) => r.next(),
            Records::Decoded(r) => r.next(),
        }
    }
}

/// The format a file is read as, once `auto` is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Csv,
    Xlsx,
    Xls,
    JsonLines,
    Json,
}

/// ZIP local-file header: an `.xlsx` (an Office Open XML package).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// OLE compound file: an old binary `.xls`.
const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// Opens a file's bytes as records. `name` is the file name, used for the format and in each input's origin.
pub(super) fn open(
    name: &str,
    bytes: Vec<u8>,
    config: &FileDropConfig,
) -> Result<Records, FileFailure> {
    match kind_of(name, &bytes, config.format)? {
        Kind::Csv => open_delimited(name, bytes, config),
        Kind::Xlsx => open_sheet(name, bytes, config, false),
        Kind::Xls => open_sheet(name, bytes, config, true),
        Kind::JsonLines => open_json_lines(name, bytes, config),
        Kind::Json => open_json(name, bytes, config),
    }
}

/// Whether the file is a workbook (`.xlsx` or `.xls`), by its content and name as [`open`] decides.
pub(super) fn is_workbook(name: &str, bytes: &[u8], format: FileFormat) -> bool {
    matches!(kind_of(name, bytes, format), Ok(Kind::Xlsx | Kind::Xls))
}

fn kind_of(name: &str, bytes: &[u8], format: FileFormat) -> Result<Kind, FileFailure> {
    let workbook_kind = if bytes.starts_with(ZIP_MAGIC) {
        Kind::Xlsx
    } else {
        Kind::Xls
    };
    match format {
        FileFormat::Csv => return Ok(Kind::Csv),
        FileFormat::Excel => return Ok(workbook_kind),
        FileFormat::JsonLines => return Ok(Kind::JsonLines),
        FileFormat::Json => return Ok(Kind::Json),
        FileFormat::Auto => {}
    }
    // Content first: workbooks are often renamed to `.csv` by hand, and their magic bytes cannot be text.
    if bytes.starts_with(ZIP_MAGIC) {
        return Ok(Kind::Xlsx);
    }
    if bytes.starts_with(OLE_MAGIC) {
        return Ok(Kind::Xls);
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "csv" => Ok(Kind::Csv),
        "xlsx" | "xlsm" => Ok(Kind::Xlsx),
        "xls" => Ok(Kind::Xls),
        "jsonl" | "ndjson" => Ok(Kind::JsonLines),
        "json" => Ok(Kind::Json),
        _ => Err(FileFailure::UnknownFormat { extension }),
    }
}

/// A rejected input: its original bytes and why.
fn rejected(original: Vec<u8>, reason: String, origin: String) -> RawInput {
    RawInput {
        original,
        parsed: Err(reason),
        origin,
    }
}

/// Column names from a header row: trimmed; a blank one becomes `column_<n>` (1-based), a repeated one gets
/// `_2`, `_3`… so no value is lost by two columns sharing a key.
fn column_names(cells: Vec<String>) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(cells.len());
    for (index, cell) in cells.into_iter().enumerate() {
        let trimmed = cell.trim();
        let base = if trimmed.is_empty() {
            format!("column_{}", index + 1)
        } else {
            trimmed.to_string()
        };
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name);
    }
    names
}

/// A JSON object from column names and values.
fn row_object(header: &[String], values: Vec<String>) -> Value {
    let map: Map<String, Value> = header
        .iter()
        .cloned()
        .zip(values.into_iter().map(Value::String))
        .collect();
    Value::Object(map)
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

/// The rows of a CSV file.
pub(super) struct DelimitedRecords {
    name: String,
    bytes: Vec<u8>,
    cursor: Cursor,
    charset: Charset,
    delimiter: char,
    header: Vec<String>,
}

fn open_delimited(
    name: &str,
    bytes: Vec<u8>,
    config: &FileDropConfig,
) -> Result<Records, FileFailure> {
    let (charset, bom) = resolve_charset(&bytes, config.encoding)?;
    let delimiter = config.csv_delimiter;
    // Validated as ASCII when the config was built.
    let delimiter_byte = u8::try_from(delimiter).unwrap_or(b',');
    let mut cursor = Cursor { pos: bom, line: 1 };
    let header = loop {
        let Some(record) = next_record(&bytes, &mut cursor, charset, Some(delimiter_byte)) else {
            return Err(FileFailure::NoHeader {
                header_row: config.header_row,
            });
        };
        // Rows above the header (a title like "2024年低保名单") are skipped.
        if record.line < config.header_row as usize {
            continue;
        }
        if record.open_quote {
            return Err(FileFailure::HeaderOpenQuote { line: record.line });
        }
        let Some(text) = charset.decode(record.bytes) else {
            return Err(FileFailure::HeaderUndecodable {
                line: record.line,
                charset: charset.name(),
            });
        };
        let cells = split_fields(&text, delimiter);
        // The header is the first non-blank row at or after `header_row` (Excel exports blank formatted rows
        // as a line of delimiters).
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        break column_names(cells);
    };
    Ok(Records::Delimited(DelimitedRecords {
        name: name.to_string(),
        bytes,
        cursor,
        charset,
        delimiter,
        header,
    }))
}

impl DelimitedRecords {
    fn next(&mut self) -> Option<RawInput> {
        let delimiter_byte = u8::try_from(self.delimiter).unwrap_or(b',');
        loop {
            let record = next_record(
                &self.bytes,
                &mut self.cursor,
                self.charset,
                Some(delimiter_byte),
            )?;
            let line = record.line;
            let original = record.bytes.to_vec();
            let origin = format!("{} line {line}", self.name);
            if record.open_quote {
                return Some(rejected(
                    original,
                    format!("line {line}: a quoted field is never closed"),
                    origin,
                ));
            }
            let Some(text) = self.charset.decode(record.bytes) else {
                return Some(rejected(
                    original,
                    format!("line {line}: not valid {} text", self.charset.name()),
                    origin,
                ));
            };
            let fields = split_fields(&text, self.delimiter);
            // Excel writes formatted but empty rows as a line of delimiters: they are not records.
            if fields.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            if fields.len() != self.header.len() {
                return Some(rejected(
                    original,
                    format!(
                        "line {line}: {} fields, header has {}",
                        fields.len(),
                        self.header.len()
                    ),
                    origin,
                ));
            }
            return Some(RawInput::decoded(
                original,
                row_object(&self.header, fields),
                origin,
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// JSON

/// The lines of a JSON-lines file.
pub(super) struct JsonLineRecords {
    name: String,
    bytes: Vec<u8>,
    cursor: Cursor,
    charset: Charset,
}

fn open_json_lines(
    name: &str,
    bytes: Vec<u8>,
    config: &FileDropConfig,
) -> Result<Records, FileFailure> {
    let (charset, bom) = resolve_charset(&bytes, config.encoding)?;
    Ok(Records::JsonLines(JsonLineRecords {
        name: name.to_string(),
        bytes,
        cursor: Cursor { pos: bom, line: 1 },
        charset,
    }))
}

impl JsonLineRecords {
    fn next(&mut self) -> Option<RawInput> {
        loop {
            let record = next_record(&self.bytes, &mut self.cursor, self.charset, None)?;
            let line = record.line;
            let original = record.bytes.to_vec();
            let origin = format!("{} line {line}", self.name);
            let Some(text) = self.charset.decode(record.bytes) else {
                return Some(rejected(
                    original,
                    format!("line {line}: not valid {} text", self.charset.name()),
                    origin,
                ));
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(match serde_json::from_str::<Value>(&text) {
                Ok(value) => RawInput::decoded(original, value, origin),
                Err(e) => rejected(
                    original,
                    format!("line {line}: not valid JSON: {e}"),
                    origin,
                ),
            });
        }
    }
}

/// The items of a `.json` document.
pub(super) struct JsonItems {
    name: String,
    items: std::vec::IntoIter<Value>,
    index: usize,
}

/// A `.json` file is one document when it parses as one (an array gives one record per element, anything
/// else one record); otherwise it is read as JSON lines.
fn open_json(name: &str, bytes: Vec<u8>, config: &FileDropConfig) -> Result<Records, FileFailure> {
    let (charset, bom) = resolve_charset(&bytes, config.encoding)?;
    let document = bytes
        .get(bom..)
        .and_then(|body| charset.decode(body))
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    match document {
        Some(Value::Array(items)) => Ok(Records::JsonItems(JsonItems {
            name: name.to_string(),
            items: items.into_iter(),
            index: 0,
        })),
        Some(value) => Ok(Records::JsonItems(JsonItems {
            name: name.to_string(),
            items: vec![value].into_iter(),
            index: 0,
        })),
        None => Ok(Records::JsonLines(JsonLineRecords {
            name: name.to_string(),
            bytes,
            cursor: Cursor { pos: bom, line: 1 },
            charset,
        })),
    }
}

impl JsonItems {
    fn next(&mut self) -> Option<RawInput> {
        let value = self.items.next()?;
        self.index += 1;
        let original = value.to_string().into_bytes();
        Some(RawInput::decoded(
            original,
            value,
            format!("{} item {}", self.name, self.index),
        ))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Excel

/// The rows of one worksheet below its header.
pub(super) struct SheetRows {
    name: String,
    sheet: String,
    range: Range<Data>,
    header: Vec<String>,
    /// Index (within `range`) of the next row.
    next_row: usize,
}

fn open_sheet(
    name: &str,
    bytes: Vec<u8>,
    config: &FileDropConfig,
    is_xls: bool,
) -> Result<Records, FileFailure> {
    let mut workbook: Sheets<IoCursor<Vec<u8>>> = if is_xls {
        Sheets::Xls(
            Xls::new(IoCursor::new(bytes)).map_err(|e| FileFailure::Workbook(e.to_string()))?,
        )
    } else {
        check_xlsx_package(&bytes)?;
        Sheets::Xlsx(
            Xlsx::new(IoCursor::new(bytes)).map_err(|e| FileFailure::Workbook(e.to_string()))?,
        )
    };
    let sheets = workbook.sheet_names();
    let sheet = match &config.sheet {
        None => sheets.first().cloned(),
        Some(SheetSelector::Index(n)) => (*n as usize)
            .checked_sub(1)
            .and_then(|i| sheets.get(i).cloned()),
        Some(SheetSelector::Name(wanted)) => sheets.iter().find(|s| *s == wanted).cloned(),
    };
    let Some(sheet) = sheet else {
        let wanted = match &config.sheet {
            None => "at all".to_string(),
            Some(SheetSelector::Index(n)) => format!("number {n}"),
            Some(SheetSelector::Name(wanted)) => format!("named \"{wanted}\""),
        };
        return Err(FileFailure::NoSheet {
            wanted,
            available: if sheets.is_empty() {
                "none".to_string()
            } else {
                sheets.join(", ")
            },
        });
    };
    let range = sheet_range(&mut workbook, &sheet)?;
    // Row numbers as Excel shows them: the range starts at the first non-empty cell.
    let first_row = range.start().map_or(0, |(row, _)| row as usize) + 1;
    let mut next_row = (config.header_row as usize).saturating_sub(first_row);
    let header = loop {
        if next_row >= range.height() {
            return Err(FileFailure::NoHeader {
                header_row: config.header_row,
            });
        }
        let cells = row_texts(&range, next_row);
        next_row += 1;
        // The header is the first non-blank row at or after `header_row`.
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        break column_names(cells);
    };
    Ok(Records::Sheet(SheetRows {
        name: name.to_string(),
        sheet,
        range,
        header,
        next_row,
    }))
}

/// Most non-empty cells read from one worksheet, and the largest area (rows × columns) it may span. A workbook is a
/// zip of XML, so a few kilobytes can describe a sheet of billions of cells; past these limits the file is refused
/// (to `failed/`, with the reason) instead of exhausting the hub's memory.
const MAX_SHEET_CELLS: usize = 2_000_000;
/// See [`MAX_SHEET_CELLS`].
const MAX_SHEET_AREA: u64 = 20_000_000;

/// Reads a worksheet into a range, within [`MAX_SHEET_CELLS`] and [`MAX_SHEET_AREA`]. XLSX sheets are read cell by
/// cell so the limits hold before anything large is allocated; a panic inside the workbook reader (malformed
/// XML it does not expect) becomes an unreadable-file failure, never a crash of the source.
fn sheet_range(
    workbook: &mut Sheets<IoCursor<Vec<u8>>>,
    sheet: &str,
) -> Result<Range<Data>, FileFailure> {
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match workbook {
        Sheets::Xlsx(xlsx) => bounded_xlsx_range(xlsx, sheet),
        other => {
            let range = other
                .worksheet_range(sheet)
                .map_err(|e| FileFailure::Workbook(e.to_string()))?;
            let area = (range.height() as u64).saturating_mul(range.width() as u64);
            if area > MAX_SHEET_AREA {
                return Err(too_large(range.height() as u64, range.width() as u64));
            }
            Ok(range)
        }
    }));
    read.unwrap_or_else(|_| {
        Err(FileFailure::Workbook(
            "the workbook reader failed on its content (malformed worksheet XML)".into(),
        ))
    })
}

/// Most bytes the parts of a dropped `.xlsx` may unpack to, all together (a zip of XML compresses a hundredfold
/// and more: a small file can unpack to gigabytes).
const MAX_WORKBOOK_UNPACKED: u64 = 512 * 1024 * 1024;

/// The smallest a shared string can be in `sharedStrings.xml` (`<si><t/></si>`): how many strings its bytes can hold.
const MIN_SHARED_STRING_BYTES: u64 = 13;

/// Checks what an `.xlsx` package asks the workbook reader to allocate, before the reader opens it: the parts
/// unpack to at most [`MAX_WORKBOOK_UNPACKED`], and the shared-string table claims no more strings than its XML
/// can hold, nor more than [`MAX_SHEET_CELLS`]. (The reader reserves room for the count the file claims: a
/// 400-byte file claiming 10^14 strings would make it ask for petabytes, and the allocation failure aborts the
/// process — nothing can catch it.)
fn check_xlsx_package(bytes: &[u8]) -> Result<(), FileFailure> {
    use std::io::Read;
    let bad = |why: String| FileFailure::Workbook(why);
    let mut package = zip::ZipArchive::new(IoCursor::new(bytes))
        .map_err(|e| bad(format!("not a readable workbook package: {e}")))?;
    let mut unpacked: u64 = 0;
    let mut shared_strings = None;
    for i in 0..package.len() {
        let part = package
            .by_index_raw(i)
            .map_err(|e| bad(format!("not a readable workbook package: {e}")))?;
        unpacked = unpacked.saturating_add(part.size());
        let name = part
            .name()
            .map_err(|e| bad(format!("not a readable workbook package: {e}")))?;
        if name.eq_ignore_ascii_case("xl/sharedStrings.xml") {
            shared_strings = Some((i, part.size()));
        }
    }
    if unpacked > MAX_WORKBOOK_UNPACKED {
        return Err(bad(format!(
            "the workbook unpacks to {unpacked} bytes, more than the {MAX_WORKBOOK_UNPACKED} a dropped workbook may; split it"
        )));
    }
    let Some((index, size)) = shared_strings else {
        return Ok(());
    };
    // The counts are attributes of the first element: the first few kilobytes hold them.
    let mut head = Vec::with_capacity(4096);
    package
        .by_index(index)
        .map_err(|e| bad(format!("the shared-string table cannot be read: {e}")))?
        .take(4096)
        .read_to_end(&mut head)
        .map_err(|e| bad(format!("the shared-string table cannot be read: {e}")))?;
    let head = String::from_utf8_lossy(&head);
    let can_hold = (size / MIN_SHARED_STRING_BYTES).min(MAX_SHEET_CELLS as u64);
    for attribute in ["uniqueCount", "count"] {
        let Some(claimed) = xml_number_attribute(&head, attribute) else {
            continue;
        };
        if claimed > can_hold {
            return Err(bad(format!(
                "the shared-string table claims {claimed} strings ({attribute}), more than its {size} bytes can hold or the {MAX_SHEET_CELLS} a dropped workbook may have: the file is damaged or hostile"
            )));
        }
    }
    Ok(())
}

/// The value of the first `name="<digits>"` attribute in `xml`, if it has one (an over-long number reads as
/// `u64::MAX`).
fn xml_number_attribute(xml: &str, name: &str) -> Option<u64> {
    let needle = format!(" {name}=");
    let at = xml.find(&needle)? + needle.len();
    let rest = xml[at..].trim_start_matches(['"', '\'']);
    let digits: &str = &rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())];
    if digits.is_empty() {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

fn too_large(rows: u64, columns: u64) -> FileFailure {
    FileFailure::Workbook(format!(
        "the worksheet spans {rows} rows × {columns} columns, more than the {MAX_SHEET_AREA} cells (or \
         {MAX_SHEET_CELLS} non-empty cells) a dropped workbook may have; split it"
    ))
}

fn bounded_xlsx_range(
    xlsx: &mut Xlsx<IoCursor<Vec<u8>>>,
    sheet: &str,
) -> Result<Range<Data>, FileFailure> {
    let mut reader = xlsx
        .worksheet_cells_reader(sheet)
        .map_err(|e| FileFailure::Workbook(e.to_string()))?;
    let mut cells = Vec::new();
    let (mut top, mut bottom, mut left, mut right) = (u32::MAX, 0u32, u32::MAX, 0u32);
    while let Some(cell) = reader
        .next_cell()
        .map_err(|e| FileFailure::Workbook(e.to_string()))?
    {
        if matches!(cell.get_value(), calamine::DataRef::Empty) {
            continue;
        }
        let (row, col) = cell.get_position();
        (top, bottom, left, right) = (top.min(row), bottom.max(row), left.min(col), right.max(col));
        let rows = u64::from(bottom - top) + 1;
        let columns = u64::from(right - left) + 1;
        if cells.len() >= MAX_SHEET_CELLS || rows.saturating_mul(columns) > MAX_SHEET_AREA {
            return Err(too_large(rows, columns));
        }
        cells.push(calamine::Cell::new(
            (row, col),
            Data::from(cell.get_value().clone()),
        ));
    }
    Ok(Range::from_sparse(cells))
}

impl SheetRows {
    fn next(&mut self) -> Option<RawInput> {
        let first_row = self.range.start().map_or(0, |(row, _)| row as usize) + 1;
        while self.next_row < self.range.height() {
            let index = self.next_row;
            self.next_row += 1;
            let cells = row_texts(&self.range, index);
            if cells.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let value = row_object(&self.header, cells);
            let origin = format!(
                "{} sheet {} row {}",
                self.name,
                self.sheet,
                first_row + index
            );
            return Some(RawInput::decoded(
                value.to_string().into_bytes(),
                value,
                origin,
            ));
        }
        None
    }
}

/// The texts of one row of a range (relative row index).
fn row_texts(range: &Range<Data>, row: usize) -> Vec<String> {
    (0..range.width())
        .map(|col| range.get((row, col)).map_or_else(String::new, cell_text))
        .collect()
}

/// A cell as text: numbers without a spurious `.0` or exponent, dates as `YYYY-MM-DD HH:MM:SS`.
pub(super) fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Data::DateTime(dt) => datetime_text(dt),
        Data::Error(e) => e.to_string(),
    }
}

/// A number as Excel shows it: integers in full (an ID number or phone number stored as a number must not
/// become `6.10921e17`), fractions to at most 15 significant digits (Excel's precision), so a computed
/// `0.30000000000000004` reads `0.3`.
pub(super) fn number_text(f: f64) -> String {
    if !f.is_finite() {
        return f.to_string();
    }
    if f == 0.0 {
        return "0".to_string();
    }
    if f.fract() == 0.0 {
        // `Display` for f64 never uses an exponent and prints integers without `.0`.
        return f.to_string();
    }
    let magnitude = f.abs().log10().floor() as i32;
    let decimals = (14 - magnitude).clamp(0, 60) as usize;
    let text = format!("{f:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// A date cell as `YYYY-MM-DD HH:MM:SS`; a time of day alone (serial below 1) as `HH:MM:SS`; a duration as
/// `[h]:mm:ss`.
pub(super) fn datetime_text(dt: &ExcelDateTime) -> String {
    if dt.is_duration() {
        let total = (dt.as_f64() * 86_400.0).round() as i64;
        let sign = if total < 0 { "-" } else { "" };
        let total = total.abs();
        return format!(
            "{sign}{}:{:02}:{:02}",
            total / 3600,
            total % 3600 / 60,
            total % 60
        );
    }
    let (year, month, day, hour, minute, second, _milli) = dt.to_ymd_hms_milli();
    if (0.0..1.0).contains(&dt.as_f64()) {
        return format!("{hour:02}:{minute:02}:{second:02}");
    }
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

#[cfg(test)]
mod tests {
    use calamine::ExcelDateTimeType;

    use super::*;

    #[test]
    fn a_workbook_describing_a_huge_sheet_is_refused_before_it_is_allocated() {
        // Two cells, A1 and XFD1048576: a few kilobytes that span 17 billion cells.
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "姓名").unwrap();
        sheet.write_string(1_048_575, 16_383, "x").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let err = match open("big.xlsx", bytes, &FileDropConfig::new(".")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a 17-billion-cell sheet was opened"),
        };
        assert!(err.contains("rows") && err.contains("split it"), "{err}");
        // A normal roster still reads.
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "姓名").unwrap();
        sheet.write_string(1, 0, "张三").unwrap();
        let records: Vec<RawInput> = open(
            "ok.xlsx",
            book.save_to_buffer().unwrap(),
            &FileDropConfig::new("."),
        )
        .map_err(|e| e.to_string())
        .unwrap()
        .collect();
        assert_eq!(records.len(), 1);
    }

    /// `bytes` (an `.xlsx`) with its shared-string table's counts replaced by `count`, as a hostile file would.
    fn with_shared_string_count(bytes: &[u8], count: &str) -> Vec<u8> {
        use std::io::{Read, Write};
        let mut package = zip::ZipArchive::new(IoCursor::new(bytes)).unwrap();
        let mut out = zip::ZipWriter::new(IoCursor::new(Vec::new()));
        for i in 0..package.len() {
            let name = package.by_index(i).unwrap().name().unwrap().into_owned();
            if name == "xl/sharedStrings.xml" {
                let mut xml = String::new();
                package
                    .by_index(i)
                    .unwrap()
                    .read_to_string(&mut xml)
                    .unwrap();
                let xml = xml
                    .replace(r#"count="1""#, &format!(r#"count="{count}""#))
                    .replace(r#"uniqueCount="1""#, &format!(r#"uniqueCount="{count}""#));
                assert!(xml.contains(count), "{xml}");
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored);
                out.start_file(name, options).unwrap();
                out.write_all(xml.as_bytes()).unwrap();
            } else {
                out.raw_copy_file(package.by_index_raw(i).unwrap()).unwrap();
            }
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn a_workbook_claiming_more_shared_strings_than_it_holds_is_refused_before_the_reader_allocates(
    ) {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "姓名").unwrap();
        let honest = book.save_to_buffer().unwrap();
        // 10^14 strings: the reader would reserve petabytes and abort the whole process.
        let hostile = with_shared_string_count(&honest, "100000000000000");
        let err = match open("hostile.xlsx", hostile, &FileDropConfig::new(".")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a workbook claiming 10^14 strings was opened"),
        };
        assert!(
            err.contains("shared-string table claims 100000000000000"),
            "{err}"
        );
        // An absurd number of digits is refused the same way, and an honest count still reads.
        let digits = "9".repeat(40);
        assert!(open(
            "h.xlsx",
            with_shared_string_count(&honest, &digits),
            &FileDropConfig::new(".")
        )
        .is_err());
        assert_eq!(
            xml_number_attribute(
                r#"<sst xmlns="x" count="3" uniqueCount='2'>"#,
                "uniqueCount"
            ),
            Some(2)
        );
        assert!(open("ok.xlsx", honest, &FileDropConfig::new(".")).is_ok());
    }

    #[test]
    fn numbers_read_as_excel_shows_them() {
        assert_eq!(number_text(13_800_138_000.0), "13800138000");
        assert_eq!(number_text(610_921_198_001_011_000.0), "610921198001011000");
        assert_eq!(number_text(42.0), "42");
        assert_eq!(number_text(-3.0), "-3");
        assert_eq!(number_text(-0.0), "0");
        assert_eq!(number_text(12.34), "12.34");
        assert_eq!(number_text(0.1 + 0.2), "0.3");
        assert_eq!(number_text(-0.000_125), "-0.000125");
    }

    #[test]
    fn dates_times_and_durations_read_as_text() {
        let date = ExcelDateTime::new(45_356.354_166_666_67, ExcelDateTimeType::DateTime, false);
        assert_eq!(datetime_text(&date), "2024-03-05 08:30:00");
        let time = ExcelDateTime::new(0.5, ExcelDateTimeType::DateTime, false);
        assert_eq!(datetime_text(&time), "12:00:00");
        let duration = ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false);
        assert_eq!(datetime_text(&duration), "36:00:00");
    }

    #[test]
    fn header_names_are_trimmed_and_never_collide() {
        assert_eq!(
            column_names(vec![
                " 姓名 ".into(),
                "".into(),
                "姓名".into(),
                "姓名".into()
            ]),
            vec!["姓名", "column_2", "姓名_2", "姓名_3"]
        );
    }

    #[test]
    fn the_format_comes_from_the_content_then_the_extension() {
        assert_eq!(
            kind_of("a.CSV", b"x", FileFormat::Auto).ok(),
            Some(Kind::Csv)
        );
        assert_eq!(
            kind_of("a.csv", b"PK\x03\x04", FileFormat::Auto).ok(),
            Some(Kind::Xlsx)
        );
        assert_eq!(
            kind_of("a.ndjson", b"{}", FileFormat::Auto).ok(),
            Some(Kind::JsonLines)
        );
        assert_eq!(
            kind_of("a.txt", b"x", FileFormat::Csv).ok(),
            Some(Kind::Csv)
        );
        assert!(matches!(
            kind_of("a.txt", b"x", FileFormat::Auto),
            Err(FileFailure::UnknownFormat { .. })
        ));
    }
}

//! Text for delimited and JSON-lines files: which encoding a file is in, where its records start and end, and
//! the fields of a CSV record.
//!
//! Records are cut on the *raw bytes*, before decoding, so that each record keeps its original bytes (in the
//! file's own encoding) and a malformed byte spoils only the record it is in. Cutting bytes is safe because the
//! scanner steps over whole characters: in UTF-8 no byte of a multi-byte character is ASCII, and in GBK/GB18030
//! the scanner skips the trail bytes, which can look like ASCII (`|`, `\`, `@`, digits).

use std::borrow::Cow;

use encoding_rs::{GB18030, GBK};

use super::read::FileFailure;
use super::TextEncoding;

/// The byte-order mark Excel puts in front of "CSV UTF-8".
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The encoding a text file was found or configured to be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Charset {
    /// UTF-8.
    Utf8,
    /// GBK (decoded with the GB18030 decoder, a superset).
    Gbk,
    /// GB18030.
    Gb18030,
}

impl Charset {
    /// The name operators know it by.
    pub(super) fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Gbk => "GBK",
            Charset::Gb18030 => "GB18030",
        }
    }

    /// Decodes one record, or `None` if it holds malformed bytes.
    pub(super) fn decode(self, bytes: &[u8]) -> Option<Cow<'_, str>> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Charset::Gbk => GBK.decode_without_bom_handling_and_without_replacement(bytes),
            Charset::Gb18030 => GB18030.decode_without_bom_handling_and_without_replacement(bytes),
        }
    }

    /// The length of the character starting at `bytes[i]`, as far as record cutting needs it: ASCII and
    /// malformed bytes count as one byte, so a stray lead byte never swallows a line break.
    fn char_len(self, bytes: &[u8], i: usize) -> usize {
        match self {
            // Bytes of a multi-byte UTF-8 character are all >= 0x80: walking byte by byte is safe.
            Charset::Utf8 => 1,
            Charset::Gbk | Charset::Gb18030 => gb_char_len(bytes, i),
        }
    }
}

/// The length of the GBK/GB18030 character at `bytes[i]` (1 for ASCII and malformed bytes).
fn gb_char_len(bytes: &[u8], i: usize) -> usize {
    let is_lead = |b: u8| (0x81..=0xFE).contains(&b);
    let is_digit = |b: u8| b.is_ascii_digit();
    match bytes.get(i) {
        Some(&b0) if is_lead(b0) => match bytes.get(i + 1) {
            Some(&b1) if is_digit(b1) => match (bytes.get(i + 2), bytes.get(i + 3)) {
                (Some(&b2), Some(&b3)) if is_lead(b2) && is_digit(b3) => 4,
                _ => 1,
            },
            Some(&b1) if (0x40..=0x7E).contains(&b1) || (0x80..=0xFE).contains(&b1) => 2,
            _ => 1,
        },
        _ => 1,
    }
}

/// Finds the encoding of a text file and the length of its byte-order mark.
///
/// `auto` takes UTF-8 when the file is valid UTF-8 (with or without BOM), else GB18030 (a superset of GBK, what
/// Excel's "Save as CSV" writes on Chinese Windows). When neither decodes the whole file, the lines that hold
/// non-ASCII bytes vote: if most of them are valid UTF-8, the file is UTF-8 with a few damaged lines (decoding
/// it as GB18030 would turn every Chinese character into mojibake); else if most are valid GB18030 it is
/// GB18030; else the file is not text in any encoding we read.
pub(super) fn resolve_charset(
    bytes: &[u8],
    wanted: TextEncoding,
) -> Result<(Charset, usize), FileFailure> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(FileFailure::Utf16);
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(FileFailure::Binary { offset });
    }
    let bom = if bytes.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    match wanted {
        TextEncoding::Utf8 => Ok((Charset::Utf8, bom)),
        TextEncoding::Gbk => Ok((Charset::Gbk, 0)),
        TextEncoding::Gb18030 => Ok((Charset::Gb18030, 0)),
        TextEncoding::Auto => {
            if bom > 0 {
                return Ok((Charset::Utf8, bom));
            }
            if std::str::from_utf8(bytes).is_ok() {
                return Ok((Charset::Utf8, 0));
            }
            let mut non_ascii = 0usize;
            let mut utf8_ok = 0usize;
            let mut gb_ok = 0usize;
            let mut first_bad_line = None;
            for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.is_ascii() {
                    continue;
                }
                non_ascii += 1;
                let utf8 = std::str::from_utf8(line).is_ok();
                let gb = Charset::Gb18030.decode(line).is_some();
                utf8_ok += usize::from(utf8);
                gb_ok += usize::from(gb);
                if !utf8 && !gb && first_bad_line.is_none() {
                    first_bad_line = Some(index + 1);
                }
            }
            if utf8_ok > 0 && utf8_ok * 2 > non_ascii {
                Ok((Charset::Utf8, 0))
            } else if gb_ok > 0 && gb_ok * 2 > non_ascii {
                Ok((Charset::Gb18030, 0))
            } else {
                Err(FileFailure::Undecodable {
                    line: first_bad_line.unwrap_or(1),
                })
            }
        }
    }
}

/// One record of a text file, cut from its raw bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RawRecord<'a> {
    /// The record's bytes, without its line break.
    pub(super) bytes: &'a [u8],
    /// The (1-based) line it starts on.
    pub(super) line: usize,
    /// A quoted field was still open at the end of the file.
    pub(super) open_quote: bool,
}

/// Where a [`next_record`] scan is: a byte offset and the line number there.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cursor {
    /// Byte offset of the next record.
    pub(super) pos: usize,
    /// Line number at `pos`.
    pub(super) line: usize,
}

/// The quoting state of the record scanner (RFC 4180, read leniently the way the `csv` crate reads it: a quote
/// opens a quoted field only at the start of a field).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Cuts the next non-empty record. With `delimiter` it is a CSV record (line breaks inside quoted fields do not
/// end it); without, a plain line. Line breaks are `\n`, `\r\n` or a lone `\r`.
pub(super) fn next_record<'a>(
    bytes: &'a [u8],
    cursor: &mut Cursor,
    charset: Charset,
    delimiter: Option<u8>,
) -> Option<RawRecord<'a>> {
    loop {
        if cursor.pos >= bytes.len() {
            return None;
        }
        let start = cursor.pos;
        let start_line = cursor.line;
        let mut state = Quoting::FieldStart;
        let mut i = start;
        let end;
        loop {
            let Some(&b) = bytes.get(i) else {
                end = i;
                cursor.pos = i;
                break;
            };
            if b >= 0x80 {
                i += charset.char_len(bytes, i);
                if state != Quoting::Quoted {
                    state = Quoting::Unquoted;
                }
                continue;
            }
            if b == b'\n' || b == b'\r' {
                let crlf = b == b'\r' && bytes.get(i + 1) == Some(&b'\n');
                let next = if crlf { i + 2 } else { i + 1 };
                cursor.line += 1;
                if state == Quoting::Quoted {
                    i = next;
                    continue;
                }
                end = i;
                cursor.pos = next;
                break;
            }
            if let Some(delimiter) = delimiter {
                state = match (state, b) {
                    (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
                    (Quoting::Quoted, _) => Quoting::Quoted,
                    (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
                    (Quoting::FieldStart, b'"') => Quoting::Quoted,
                    (_, b) if b == delimiter => Quoting::FieldStart,
                    _ => Quoting::Unquoted,
                };
            }
            i += 1;
        }
        let record = &bytes[start..end.min(bytes.len())];
        if record.is_empty() {
            continue;
        }
        return Some(RawRecord {
            bytes: record,
            line: start_line,
            open_quote: state == Quoting::Quoted,
        });
    }
}

/// Splits a decoded CSV record into its fields, unquoting quoted ones (`""` inside quotes is one quote).
/// The same lenient rules as the scanner: a quote in the middle of an unquoted field is an ordinary character.
pub(super) fn split_fields(record: &str, delimiter: char) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut state = Quoting::FieldStart;
    for c in record.chars() {
        state = match (state, c) {
            (Quoting::Quoted, '"') => Quoting::QuoteInQuoted,
            (Quoting::Quoted, c) => {
                field.push(c);
                Quoting::Quoted
            }
            (Quoting::QuoteInQuoted, '"') => {
                field.push('"');
                Quoting::Quoted
            }
            (Quoting::FieldStart, '"') => Quoting::Quoted,
            (_, c) if c == delimiter => {
                fields.push(std::mem::take(&mut field));
                Quoting::FieldStart
            }
            (_, c) => {
                field.push(c);
                Quoting::Unquoted
            }
        };
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(
        bytes: &[u8],
        charset: Charset,
        delimiter: Option<u8>,
    ) -> Vec<(String, usize, bool)> {
        let mut cursor = Cursor { pos: 0, line: 1 };
        let mut out = Vec::new();
        while let Some(r) = next_record(bytes, &mut cursor, charset, delimiter) {
            out.push((
                String::from_utf8_lossy(r.bytes).into_owned(),
                r.line,
                r.open_quote,
            ));
        }
        out
    }

    #[test]
    fn quoted_line_breaks_stay_inside_the_record_and_lines_are_counted() {
        let csv = b"a,b\r\n1,\"x\r\ny\"\r\n\r\n2,\"say \"\"hi\"\"\"\n3,z";
        assert_eq!(
            records(csv, Charset::Utf8, Some(b',')),
            vec![
                ("a,b".to_string(), 1, false),
                ("1,\"x\r\ny\"".to_string(), 2, false),
                ("2,\"say \"\"hi\"\"\"".to_string(), 5, false),
                ("3,z".to_string(), 6, false),
            ]
        );
    }

    #[test]
    fn lone_carriage_returns_end_lines_and_an_open_quote_is_reported() {
        let csv = b"a,b\r1,\"open\r2,3";
        let got = records(csv, Charset::Utf8, Some(b','));
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], ("1,\"open\r2,3".to_string(), 2, true));
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_literal() {
        let got = records(b"a,5\" disk,c\nnext,x,y", Charset::Utf8, Some(b','));
        assert_eq!(got.len(), 2);
        assert_eq!(
            split_fields("a,5\" disk,c", ','),
            vec!["a", "5\" disk", "c"]
        );
    }

    #[test]
    fn gbk_trail_bytes_that_look_like_the_delimiter_do_not_cut_fields() {
        // In GBK, 億 is 0x83 0x7C: its trail byte is `|`.
        let (bytes, _, unmappable) = GBK.encode("名称|金额\n億元|5\n");
        assert!(!unmappable);
        assert_eq!(&bytes[10..12], b"\x83\x7C");
        let got = records(&bytes, Charset::Gbk, Some(b'|'));
        assert_eq!(got.len(), 2);
        let cut = next_record(
            &bytes,
            &mut Cursor { pos: 10, line: 2 },
            Charset::Gbk,
            Some(b'|'),
        );
        let text = cut.and_then(|r| Charset::Gbk.decode(r.bytes).map(|t| t.into_owned()));
        assert_eq!(text.as_deref(), Some("億元|5"));
        assert_eq!(split_fields("億元|5", '|'), vec!["億元", "5"]);
    }

    #[test]
    fn a_malformed_gbk_lead_byte_does_not_swallow_the_line_break() {
        let got = records(b"a|\x83\nb|c\n", Charset::Gbk, Some(b'|'));
        assert_eq!(got.len(), 2);
        assert_eq!(Charset::Gbk.decode(b"a|\x83"), None);
    }

    #[test]
    fn auto_reads_utf8_with_and_without_bom_and_falls_back_to_gb18030() {
        let (gbk, _, _) = GBK.encode("姓名\n张三\n");
        assert_eq!(
            resolve_charset(&gbk, TextEncoding::Auto).ok(),
            Some((Charset::Gb18030, 0))
        );
        assert_eq!(
            resolve_charset("姓名\n".as_bytes(), TextEncoding::Auto).ok(),
            Some((Charset::Utf8, 0))
        );
        assert_eq!(
            resolve_charset(b"\xEF\xBB\xBFa\n", TextEncoding::Auto).ok(),
            Some((Charset::Utf8, 3))
        );
    }

    #[test]
    fn auto_keeps_utf8_when_only_one_line_is_damaged() {
        let mut bytes = "姓名\n张三\n李四\n王五\n".as_bytes().to_vec();
        bytes.extend_from_slice(b"\xE5\xBC\n");
        assert_eq!(
            resolve_charset(&bytes, TextEncoding::Auto).ok(),
            Some((Charset::Utf8, 0))
        );
    }

    #[test]
    fn binary_and_utf16_files_are_refused() {
        assert!(matches!(
            resolve_charset(b"PK\x03\x04\x00\x01", TextEncoding::Auto),
            Err(FileFailure::Binary { offset: 4 })
        ));
        assert!(matches!(
            resolve_charset(b"\xFF\xFEa\x00", TextEncoding::Auto),
            Err(FileFailure::Utf16)
        ));
        assert!(matches!(
            resolve_charset(b"\xFF\xFF\xFF\n\x80\xFF", TextEncoding::Auto),
            Err(FileFailure::Undecodable { line: 1 })
        ));
    }
}

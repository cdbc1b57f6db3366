//! Reading the polled rows: each column's database type, and each cell converted to the JSON value the connector's mapping reads.

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------------

/// How a result column is decoded into JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ValueKind {
    Bool,
    Int16,
    Int32,
    Int64,
    UInt64,
    Float32,
    Float64,
    /// NUMERIC / DECIMAL: a string, to keep every digit.
    Decimal,
    Text,
    /// Text whose type the driver does not check (PostgreSQL enums, MySQL SET).
    TextUnchecked,
    /// PostgreSQL BYTEA: `\x` and hex digits.
    Bytes,
    /// MySQL binary strings, which servers also report for `_bin` collations: text if it is UTF-8, else
    /// `\x` and hex digits.
    BytesOrText,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Json,
    Uuid,
    Null,
}

impl ValueKind {
    pub(super) fn for_postgres(ty: &PgTypeInfo) -> Option<ValueKind> {
        match ty.kind() {
            PgTypeKind::Domain(base) => return ValueKind::for_postgres(base),
            PgTypeKind::Enum(_) => return Some(ValueKind::TextUnchecked),
            _ => {}
        }
        Some(match ty.name() {
            "BOOL" => ValueKind::Bool,
            "INT2" => ValueKind::Int16,
            "INT4" => ValueKind::Int32,
            "INT8" => ValueKind::Int64,
            "FLOAT4" => ValueKind::Float32,
            "FLOAT8" => ValueKind::Float64,
            "NUMERIC" => ValueKind::Decimal,
            "TEXT" | "VARCHAR" | "CHAR" | "NAME" => ValueKind::Text,
            name if name.eq_ignore_ascii_case("citext") => ValueKind::TextUnchecked,
            "BYTEA" => ValueKind::Bytes,
            "DATE" => ValueKind::Date,
            "TIME" => ValueKind::Time,
            "TIMESTAMP" => ValueKind::Timestamp,
            "TIMESTAMPTZ" => ValueKind::TimestampTz,
            "JSON" | "JSONB" => ValueKind::Json,
            "UUID" => ValueKind::Uuid,
            "VOID" | "UNKNOWN" => ValueKind::Null,
            _ => return None,
        })
    }

    pub(super) fn for_mysql(type_name: &str) -> Option<ValueKind> {
        Some(match type_name {
            "BOOLEAN" => ValueKind::Bool,
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => ValueKind::Int64,
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
            | "BIGINT UNSIGNED" | "YEAR" | "BIT" => ValueKind::UInt64,
            "FLOAT" => ValueKind::Float32,
            "DOUBLE" => ValueKind::Float64,
            "DECIMAL" => ValueKind::Decimal,
            "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" => {
                ValueKind::Text
            }
            "SET" => ValueKind::TextUnchecked,
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
                ValueKind::BytesOrText
            }
            "DATE" => ValueKind::Date,
            "TIME" => ValueKind::Time,
            "DATETIME" => ValueKind::Timestamp,
            "TIMESTAMP" => ValueKind::TimestampTz,
            "JSON" => ValueKind::Json,
            "NULL" => ValueKind::Null,
            _ => return None,
        })
    }

    /// The kind of cursor a column of this kind makes, if it can be one.
    pub(super) fn cursor_kind(self) -> Option<CursorKind> {
        Some(match self {
            ValueKind::Int16 | ValueKind::Int32 | ValueKind::Int64 | ValueKind::UInt64 => {
                CursorKind::Int
            }
            ValueKind::Decimal => CursorKind::Decimal,
            ValueKind::Text | ValueKind::BytesOrText => CursorKind::Text,
            ValueKind::Date => CursorKind::Date,
            ValueKind::Timestamp => CursorKind::Timestamp,
            ValueKind::TimestampTz => CursorKind::TimestampTz,
            ValueKind::Uuid => CursorKind::Uuid,
            _ => return None,
        })
    }
}

pub(super) const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";
pub(super) const TIMESTAMPTZ_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f%:z";

pub(super) fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    value.map_or(Value::Null, f)
}

pub(super) fn float(v: f64) -> Value {
    // NaN and infinities are not JSON numbers.
    Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number)
}

/// An f32 by its shortest decimal form (`0.1`, not the `0.10000000149011612` a widening to f64 gives).
pub(super) fn float32(v: f32) -> Value {
    v.to_string().parse::<f64>().map_or(Value::Null, float)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

pub(super) fn timestamp(v: NaiveDateTime) -> Value {
    Value::String(v.format(TIMESTAMP_FORMAT).to_string())
}

pub(super) fn timestamptz(v: DateTime<Utc>) -> Value {
    Value::String(v.format(TIMESTAMPTZ_FORMAT).to_string())
}

pub(super) fn pg_value(row: &PgRow, i: usize, kind: ValueKind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        ValueKind::Bool => opt(row.try_get::<Option<bool>, _>(i)?, Value::Bool),
        ValueKind::Int16 => opt(row.try_get::<Option<i16>, _>(i)?, Value::from),
        ValueKind::Int32 => opt(row.try_get::<Option<i32>, _>(i)?, Value::from),
        ValueKind::Int64 => opt(row.try_get::<Option<i64>, _>(i)?, Value::from),
        // PostgreSQL has no unsigned integers; kept for completeness.
        ValueKind::UInt64 => opt(row.try_get::<Option<i64>, _>(i)?, Value::from),
        ValueKind::Float32 => opt(row.try_get::<Option<f32>, _>(i)?, float32),
        ValueKind::Float64 => opt(row.try_get::<Option<f64>, _>(i)?, float),
        ValueKind::Decimal => {
            // Not through BigDecimal: it drops the display scale (`650.00` would become `650`).
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                Value::Null
            } else {
                let text = match raw.format() {
                    PgValueFormat::Text => raw.as_str().map(str::to_owned),
                    PgValueFormat::Binary => raw
                        .as_bytes()
                        .and_then(|b| pg_numeric_text(b).map_err(Into::into)),
                };
                Value::String(text.map_err(|source| sqlx::Error::ColumnDecode {
                    index: i.to_string(),
                    source,
                })?)
            }
        }
        ValueKind::Text => opt(row.try_get::<Option<String>, _>(i)?, Value::String),
        ValueKind::TextUnchecked | ValueKind::BytesOrText => opt(
            row.try_get_unchecked::<Option<String>, _>(i)?,
            Value::String,
        ),
        ValueKind::Bytes => opt(row.try_get::<Option<Vec<u8>>, _>(i)?, |v| {
            Value::String(hex(&v))
        }),
        ValueKind::Date => opt(row.try_get::<Option<NaiveDate>, _>(i)?, |v| {
            Value::String(v.format("%Y-%m-%d").to_string())
        }),
        ValueKind::Time => opt(row.try_get::<Option<NaiveTime>, _>(i)?, |v| {
            Value::String(v.format("%H:%M:%S%.f").to_string())
        }),
        ValueKind::Timestamp => opt(row.try_get::<Option<NaiveDateTime>, _>(i)?, timestamp),
        ValueKind::TimestampTz => opt(row.try_get::<Option<DateTime<Utc>>, _>(i)?, timestamptz),
        ValueKind::Json => opt(row.try_get::<Option<Value>, _>(i)?, |v| v),
        ValueKind::Uuid => opt(row.try_get::<Option<Uuid>, _>(i)?, |v| {
            Value::String(v.to_string())
        }),
        ValueKind::Null => Value::Null,
    })
}

/// PostgreSQL's binary NUMERIC as decimal text with its display scale: a header of four big-endian 16-bit
/// fields (number of digits, weight of the first digit, sign, display scale), then base-10000 digits.
pub(super) fn pg_numeric_text(bytes: &[u8]) -> Result<String, String> {
    let field = |at: usize| -> Result<u16, String> {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated NUMERIC value".to_owned())
    };
    let ndigits = usize::from(field(0)?);
    let weight = i64::from(field(2)? as i16);
    let sign = field(4)?;
    let dscale = usize::from(field(6)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".to_owned()),
        0xD000 => return Ok("Infinity".to_owned()),
        0xF000 => return Ok("-Infinity".to_owned()),
        other => return Err(format!("NUMERIC with unknown sign {other:#x}")),
    }
    let digits = (0..ndigits)
        .map(|k| field(8 + 2 * k))
        .collect::<Result<Vec<u16>, String>>()?;
    // The digit at index `k` stands for `digits[k] * 10000^(weight - k)`.
    let digit = |power: i64| -> u16 {
        usize::try_from(weight - power)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(weight).to_string());
        for power in (0..weight).rev() {
            text.push_str(&format!("{:04}", digit(power)));
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let groups = dscale.div_ceil(4) as i64;
        for power in 1..=groups {
            fraction.push_str(&format!("{:04}", digit(-power)));
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

pub(super) fn mysql_value(row: &MySqlRow, i: usize, kind: ValueKind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        ValueKind::Bool => opt(row.try_get::<Option<bool>, _>(i)?, Value::Bool),
        ValueKind::Int16 | ValueKind::Int32 | ValueKind::Int64 => {
            opt(row.try_get::<Option<i64>, _>(i)?, Value::from)
        }
        // Unchecked: the driver's check refuses YEAR and BIT, which decode as unsigned integers all the same.
        ValueKind::UInt64 => opt(row.try_get_unchecked::<Option<u64>, _>(i)?, Value::from),
        ValueKind::Float32 => opt(row.try_get::<Option<f32>, _>(i)?, float32),
        ValueKind::Float64 => opt(row.try_get::<Option<f64>, _>(i)?, float),
        ValueKind::Decimal => opt(row.try_get::<Option<BigDecimal>, _>(i)?, |v| {
            Value::String(v.to_plain_string())
        }),
        ValueKind::Text => opt(row.try_get::<Option<String>, _>(i)?, Value::String),
        ValueKind::TextUnchecked => opt(
            row.try_get_unchecked::<Option<String>, _>(i)?,
            Value::String,
        ),
        ValueKind::Bytes | ValueKind::BytesOrText => opt(
            row.try_get::<Option<Vec<u8>>, _>(i)?,
            |v| match String::from_utf8(v) {
                Ok(text) => Value::String(text),
                Err(e) => Value::String(hex(e.as_bytes())),
            },
        ),
        ValueKind::Date => opt(row.try_get::<Option<NaiveDate>, _>(i)?, |v| {
            Value::String(v.format("%Y-%m-%d").to_string())
        }),
        ValueKind::Time => opt(row.try_get::<Option<NaiveTime>, _>(i)?, |v| {
            Value::String(v.format("%H:%M:%S%.f").to_string())
        }),
        ValueKind::Timestamp => opt(row.try_get::<Option<NaiveDateTime>, _>(i)?, timestamp),
        ValueKind::TimestampTz => opt(row.try_get::<Option<DateTime<Utc>>, _>(i)?, timestamptz),
        ValueKind::Json => opt(row.try_get::<Option<Value>, _>(i)?, |v| v),
        ValueKind::Uuid => opt(row.try_get::<Option<Uuid>, _>(i)?, |v| {
            Value::String(v.to_string())
        }),
        ValueKind::Null => Value::Null,
    })
}

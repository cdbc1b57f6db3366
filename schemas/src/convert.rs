//! Schema-directed conversion of plain JSON into Avro values.
//!
//! Connectors and the example records speak "plain" JSON: a record is an object, an optional field is either
//! `null` or its value, an enum is its symbol, a timestamp is epoch milliseconds (or RFC 3339 text, as released
//! records render it), a date is days since 1970-01-01 or `"YYYY-MM-DD"`. [`json_to_avro`] turns such JSON into an [`apache_avro::types::Value`] that validates against
//! the schema and can be encoded with `apache_avro::to_avro_datum`.
//!
//! Rules:
//! - record: every schema field is taken from the object; a missing field takes its schema default, otherwise it
//!   is an error; a key that is not a field is an error (a typo in a mapping must not vanish silently);
//! - union: `null` selects the `null` branch; an object with a single key naming a branch (`{"string": "x"}`,
//!   `{"unsilo.dept.DibaoRecipient": {…}}`, Avro's JSON encoding) selects that branch; any other value goes to
//!   the first branch it converts to;
//! - bytes and fixed: a string whose characters are U+0000..U+00FF, one byte each (Avro's JSON encoding).
//!
//! Errors name the path of the offending value, e.g. `parties[1].cert_no: expected string, found number`.

use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{RecordSchema, UnionSchema};
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use serde_json::Value as Json;
use thiserror::Error;

use crate::date::CivilDate;

/// A JSON value that does not fit its schema, and where it is.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{}: {kind}", if path.is_empty() { "(root)" } else { path.as_str() })]
pub struct ConvertError {
    path: String,
    kind: ConvertErrorKind,
}

impl ConvertError {
    /// Path of the offending value, e.g. `parties[1].cert_no` (empty for the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    pub fn kind(&self) -> &ConvertErrorKind {
        &self.kind
    }
}

/// What is wrong with a JSON value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConvertErrorKind {
    /// The JSON type does not fit the schema type.
    #[error("expected {expected}, found {found}")]
    TypeMismatch {
        /// The schema type.
        expected: String,
        /// The JSON type.
        found: &'static str,
    },
    /// A number that does not fit the schema type.
    #[error("{value} is out of range for {target}")]
    OutOfRange {
        /// The number.
        value: String,
        /// The schema type.
        target: &'static str,
    },
    /// An enum symbol the schema does not define.
    #[error("unknown symbol {symbol:?}, expected one of {}", symbols.join(", "))]
    UnknownSymbol {
        /// The symbol found.
        symbol: String,
        /// The schema's symbols.
        symbols: Vec<String>,
    },
    /// A record field without a value or a default.
    #[error("required field is missing")]
    MissingField,
    /// A key that is not a field of the record.
    #[error("no such field in record {record}")]
    UnknownField {
        /// Full name of the record.
        record: String,
    },
    /// No branch of a union accepts the value.
    #[error("no union branch accepts the value ({})", attempts.join("; "))]
    NoUnionBranch {
        /// Why each branch refused it.
        attempts: Vec<String>,
    },
    /// A date that is neither a day number nor `YYYY-MM-DD`.
    #[error("{text} is not a date (expected days since 1970-01-01 or \"YYYY-MM-DD\")")]
    InvalidDate {
        /// The value found.
        text: String,
    },
    /// A bytes or fixed string with a character above U+00FF.
    #[error("bytes must be written as characters U+0000..U+00FF, found {found:?}")]
    InvalidBytes {
        /// The offending character.
        found: char,
    },
    /// A fixed value of the wrong length.
    #[error("fixed needs {size} bytes, found {len}")]
    FixedSize {
        /// The schema's size.
        size: usize,
        /// The length found.
        len: usize,
    },
    /// A named type that is referenced but not defined in the schema.
    #[error("schema reference {name} cannot be resolved")]
    UnresolvedRef {
        /// The referenced name.
        name: String,
    },
    /// A schema type the converter does not handle.
    #[error("schema type {schema} is not supported")]
    Unsupported {
        /// The schema type.
        schema: String,
    },
}

/// Where a value sits in the document; rendered only when an error is reported.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
    Key(&'a Path<'a>, &'a str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => write!(f, "{name}"),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
            Path::Key(parent, key) => write!(f, "{parent}[{key:?}]"),
        }
    }
}

fn err(path: &Path<'_>, kind: ConvertErrorKind) -> ConvertError {
    ConvertError {
        path: path.to_string(),
        kind,
    }
}

fn json_type(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn mismatch(path: &Path<'_>, expected: &str, json: &Json) -> ConvertError {
    err(
        path,
        ConvertErrorKind::TypeMismatch {
            expected: expected.to_string(),
            found: json_type(json),
        },
    )
}

/// Converts plain JSON to an Avro value of `schema` (see the module docs for the rules).
pub fn json_to_avro(json: &Json, schema: &Schema) -> Result<Avro, ConvertError> {
    AvroConverter::new(schema).convert(json)
}

/// A converter for one schema, with its named types resolved once; reuse it for many records.
#[derive(Debug, Clone)]
pub struct AvroConverter<'s> {
    root: &'s Schema,
    names: HashMap<String, &'s Schema>,
}

impl<'s> AvroConverter<'s> {
    /// A converter for `schema`.
    pub fn new(schema: &'s Schema) -> Self {
        let mut names = HashMap::new();
        crate::avro::collect_names(schema, &mut names);
        Self {
            root: schema,
            names,
        }
    }

    /// Converts one JSON document.
    pub fn convert(&self, json: &Json) -> Result<Avro, ConvertError> {
        self.value(json, self.root, &Path::Root)
    }

    fn resolve(&self, schema: &'s Schema, path: &Path<'_>) -> Result<&'s Schema, ConvertError> {
        match schema {
            Schema::Ref { name } => {
                let full = name.fullname(None);
                self.names
                    .get(&full)
                    .copied()
                    .ok_or_else(|| err(path, ConvertErrorKind::UnresolvedRef { name: full }))
            }
            other => Ok(other),
        }
    }

    fn value(
        &self,
        json: &Json,
        schema: &'s Schema,
        path: &Path<'_>,
    ) -> Result<Avro, ConvertError> {
        let schema = self.resolve(schema, path)?;
        match schema {
            Schema::Null => match json {
                Json::Null => Ok(Avro::Null),
                _ => Err(mismatch(path, "null", json)),
            },
            Schema::Boolean => json
                .as_bool()
                .map(Avro::Boolean)
                .ok_or_else(|| mismatch(path, "boolean", json)),
            Schema::Int => Ok(Avro::Int(int(json, path, "int")?)),
            Schema::Long => Ok(Avro::Long(long(json, path, "long")?)),
            Schema::Float => Ok(Avro::Float(number(json, path, "float")? as f32)),
            Schema::Double => Ok(Avro::Double(number(json, path, "double")?)),
            Schema::String => json
                .as_str()
                .map(|s| Avro::String(s.to_string()))
                .ok_or_else(|| mismatch(path, "string", json)),
            Schema::Bytes => Ok(Avro::Bytes(bytes(json, path)?)),
            Schema::Fixed(fixed) => {
                let data = bytes(json, path)?;
                if data.len() != fixed.size {
                    return Err(err(
                        path,
                        ConvertErrorKind::FixedSize {
                            size: fixed.size,
                            len: data.len(),
                        },
                    ));
                }
                Ok(Avro::Fixed(fixed.size, data))
            }
            Schema::Enum(e) => {
                let symbol = json
                    .as_str()
                    .ok_or_else(|| mismatch(path, "enum symbol (string)", json))?;
                match e.symbols.iter().position(|s| s == symbol) {
                    Some(index) => Ok(Avro::Enum(index as u32, symbol.to_string())),
                    None => Err(err(
                        path,
                        ConvertErrorKind::UnknownSymbol {
                            symbol: symbol.to_string(),
                            symbols: e.symbols.clone(),
                        },
                    )),
                }
            }
            Schema::Array(array) => {
                let items = json
                    .as_array()
                    .ok_or_else(|| mismatch(path, "array", json))?;
                let values = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.value(item, &array.items, &Path::Index(path, i)))
                    .collect::<Result<_, _>>()?;
                Ok(Avro::Array(values))
            }
            Schema::Map(map) => {
                let object = json
                    .as_object()
                    .ok_or_else(|| mismatch(path, "map (object)", json))?;
                let values = object
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.value(v, &map.types, &Path::Key(path, k))?)))
                    .collect::<Result<_, ConvertError>>()?;
                Ok(Avro::Map(values))
            }
            Schema::Record(record) => self.record(json, record, path),
            Schema::Union(union) => self.union(json, union, path),
            Schema::Date => Ok(Avro::Date(date(json, path)?)),
            Schema::TimeMillis => Ok(Avro::TimeMillis(int(json, path, "time-millis")?)),
            Schema::TimeMicros => Ok(Avro::TimeMicros(long(json, path, "time-micros")?)),
            Schema::TimestampMillis => Ok(Avro::TimestampMillis(timestamp(
                json,
                path,
                "timestamp-millis",
                |t| Some(t.timestamp_millis()),
            )?)),
            Schema::TimestampMicros => Ok(Avro::TimestampMicros(timestamp(
                json,
                path,
                "timestamp-micros",
                |t| Some(t.timestamp_micros()),
            )?)),
            Schema::TimestampNanos => {
                Ok(Avro::TimestampNanos(long(json, path, "timestamp-nanos")?))
            }
            Schema::LocalTimestampMillis => Ok(Avro::LocalTimestampMillis(long(
                json,
                path,
                "local-timestamp-millis",
            )?)),
            Schema::LocalTimestampMicros => Ok(Avro::LocalTimestampMicros(long(
                json,
                path,
                "local-timestamp-micros",
            )?)),
            Schema::LocalTimestampNanos => Ok(Avro::LocalTimestampNanos(long(
                json,
                path,
                "local-timestamp-nanos",
            )?)),
            other => Err(err(
                path,
                ConvertErrorKind::Unsupported {
                    schema: format!("{:?}", apache_avro::schema::SchemaKind::from(other)),
                },
            )),
        }
    }

    fn record(
        &self,
        json: &Json,
        record: &'s RecordSchema,
        path: &Path<'_>,
    ) -> Result<Avro, ConvertError> {
        let object = json
            .as_object()
            .ok_or_else(|| mismatch(path, &format!("record {}", record.name), json))?;
        if let Some(unknown) = object
            .keys()
            .find(|k| !record.lookup.contains_key(k.as_str()))
        {
            return Err(err(
                &Path::Field(path, unknown),
                ConvertErrorKind::UnknownField {
                    record: record.name.fullname(None),
                },
            ));
        }
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let field_path = Path::Field(path, &field.name);
            let value = match (object.get(&field.name), &field.default) {
                (Some(value), _) => self.value(value, &field.schema, &field_path)?,
                (None, Some(default)) => self.default(default, &field.schema, &field_path)?,
                (None, None) => return Err(err(&field_path, ConvertErrorKind::MissingField)),
            };
            fields.push((field.name.clone(), value));
        }
        Ok(Avro::Record(fields))
    }

    /// A field default; for a union it is a value of the first branch (Avro specification).
    fn default(
        &self,
        default: &Json,
        schema: &'s Schema,
        path: &Path<'_>,
    ) -> Result<Avro, ConvertError> {
        match self.resolve(schema, path)? {
            Schema::Union(union) => match union.variants().first() {
                Some(first) => Ok(Avro::Union(0, Box::new(self.value(default, first, path)?))),
                None => Err(err(
                    path,
                    ConvertErrorKind::NoUnionBranch { attempts: vec![] },
                )),
            },
            other => self.value(default, other, path),
        }
    }

    fn union(
        &self,
        json: &Json,
        union: &'s UnionSchema,
        path: &Path<'_>,
    ) -> Result<Avro, ConvertError> {
        let variants = union.variants();
        if json.is_null() {
            if let Some(i) = variants.iter().position(|v| matches!(v, Schema::Null)) {
                return Ok(Avro::Union(i as u32, Box::new(Avro::Null)));
            }
        }
        let mut tagged_error = None;
        if let Some((key, inner)) = json
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        {
            if let Some(i) = variants
                .iter()
                .position(|v| crate::avro::branch_names(v).iter().any(|n| n == key))
            {
                match self.value(inner, &variants[i], path) {
                    Ok(value) => return Ok(Avro::Union(i as u32, Box::new(value))),
                    Err(e) => tagged_error = Some(e),
                }
            }
        }
        let non_null: Vec<usize> = (0..variants.len())
            .filter(|&i| !matches!(variants[i], Schema::Null))
            .collect();
        let mut attempts = Vec::new();
        for &i in &non_null {
            match self.value(json, &variants[i], path) {
                Ok(value) => return Ok(Avro::Union(i as u32, Box::new(value))),
                // With a single non-null branch its own error is the most precise explanation.
                Err(e) if non_null.len() == 1 && tagged_error.is_none() => return Err(e),
                Err(e) => attempts.push(format!(
                    "{}: {}",
                    crate::avro::branch_names(&variants[i])[0],
                    e
                )),
            }
        }
        if let Some(e) = tagged_error {
            return Err(e);
        }
        if json.is_null() || non_null.is_empty() {
            return Err(mismatch(path, "a value of a union branch", json));
        }
        Err(err(path, ConvertErrorKind::NoUnionBranch { attempts }))
    }
}

fn long(json: &Json, path: &Path<'_>, target: &'static str) -> Result<i64, ConvertError> {
    match json {
        Json::Number(n) => n.as_i64().ok_or_else(|| {
            err(
                path,
                ConvertErrorKind::OutOfRange {
                    value: n.to_string(),
                    target,
                },
            )
        }),
        _ => Err(mismatch(path, target, json)),
    }
}

/// A timestamp: a number in the schema's unit, or RFC 3339 text (as released records render timestamps).
fn timestamp(
    json: &Json,
    path: &Path<'_>,
    target: &'static str,
    unit: impl Fn(chrono::DateTime<chrono::FixedOffset>) -> Option<i64>,
) -> Result<i64, ConvertError> {
    match json {
        Json::String(text) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .and_then(unit)
            .ok_or_else(|| mismatch(path, target, json)),
        _ => long(json, path, target),
    }
}

fn int(json: &Json, path: &Path<'_>, target: &'static str) -> Result<i32, ConvertError> {
    let value = long(json, path, target)?;
    i32::try_from(value).map_err(|_| {
        err(
            path,
            ConvertErrorKind::OutOfRange {
                value: value.to_string(),
                target,
            },
        )
    })
}

fn number(json: &Json, path: &Path<'_>, target: &'static str) -> Result<f64, ConvertError> {
    json.as_f64().ok_or_else(|| mismatch(path, target, json))
}

fn date(json: &Json, path: &Path<'_>) -> Result<i32, ConvertError> {
    match json {
        Json::String(text) => CivilDate::parse_iso(text)
            .map(CivilDate::days_since_epoch)
            .ok_or_else(|| {
                err(
                    path,
                    ConvertErrorKind::InvalidDate {
                        text: format!("{text:?}"),
                    },
                )
            }),
        Json::Number(_) => int(json, path, "date"),
        _ => Err(mismatch(path, "date (days or \"YYYY-MM-DD\")", json)),
    }
}

fn bytes(json: &Json, path: &Path<'_>) -> Result<Vec<u8>, ConvertError> {
    let text = json
        .as_str()
        .ok_or_else(|| mismatch(path, "bytes (string)", json))?;
    text.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| err(path, ConvertErrorKind::InvalidBytes { found: c }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse_str(
            r#"{"type": "record", "name": "T", "namespace": "t", "fields": [
                {"name": "id", "type": "string"},
                {"name": "n", "type": "int"},
                {"name": "big", "type": "long", "default": 7},
                {"name": "f", "type": "float", "default": 0.5},
                {"name": "ok", "type": "boolean", "default": false},
                {"name": "raw", "type": "bytes", "default": ""},
                {"name": "hash", "type": ["null", {"type": "fixed", "name": "H", "size": 2}], "default": null},
                {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "born", "type": ["null", {"type": "int", "logicalType": "date"}], "default": null},
                {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "UNKNOWN"], "default": "UNKNOWN"}, "default": "UNKNOWN"},
                {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
                    {"name": "v", "type": ["null", "double"], "default": null}]}}, "default": []},
                {"name": "again", "type": ["null", "t.Item"], "default": null},
                {"name": "attrs", "type": {"type": "map", "values": "string"}, "default": {}},
                {"name": "choice", "type": ["null", "t.Item", {"type": "map", "values": "string"}, "long"], "default": null}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn converts_every_supported_kind_and_validates() {
        let schema = schema();
        let json = json!({
            "id": "x", "n": 3, "big": 9_000_000_000_i64, "f": 1.5, "ok": true, "raw": "ab\u{ff}", "hash": "\u{1}\u{2}",
            "when": 1_718_674_335_000_i64, "born": "1972-09-25", "color": "RED",
            "items": [{"v": 1.0}, {"v": null}, {}], "again": {"v": 2},
            "attrs": {"k": "v"}, "choice": {"t.Item": {"v": 3.0}}
        });
        let value = json_to_avro(&json, &schema).unwrap();
        assert!(value.validate(&schema));
        let Avro::Record(fields) = &value else {
            panic!("not a record: {value:?}")
        };
        let get = |name: &str| &fields.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(get("raw"), &Avro::Bytes(vec![b'a', b'b', 0xff]));
        assert_eq!(get("born"), &Avro::Union(1, Box::new(Avro::Date(998))));
        assert_eq!(get("color"), &Avro::Enum(0, "RED".into()));
        assert_eq!(
            get("choice"),
            &Avro::Union(
                1,
                Box::new(Avro::Record(vec![(
                    "v".into(),
                    Avro::Union(1, Box::new(Avro::Double(3.0)))
                )]))
            )
        );
        assert_eq!(
            get("again"),
            &Avro::Union(
                1,
                Box::new(Avro::Record(vec![(
                    "v".into(),
                    Avro::Union(1, Box::new(Avro::Double(2.0)))
                )]))
            )
        );
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let schema = schema();
        let value = json_to_avro(&json!({"id": "x", "n": 1, "when": 0}), &schema).unwrap();
        assert!(value.validate(&schema));
        let Avro::Record(fields) = value else {
            panic!()
        };
        assert_eq!(fields[2], ("big".into(), Avro::Long(7)));
        assert_eq!(
            fields[6],
            ("hash".into(), Avro::Union(0, Box::new(Avro::Null)))
        );
        assert_eq!(fields[9], ("color".into(), Avro::Enum(1, "UNKNOWN".into())));
    }

    #[test]
    fn untagged_union_values_take_the_first_matching_branch() {
        let schema = schema();
        let base = json!({"id": "x", "n": 1, "when": 0});
        let with = |choice: Json| {
            let mut j = base.clone();
            j["choice"] = choice;
            let Avro::Record(fields) = json_to_avro(&j, &schema).unwrap() else {
                panic!()
            };
            fields.into_iter().find(|(n, _)| n == "choice").unwrap().1
        };
        assert!(
            matches!(with(json!({"v": 1.0})), Avro::Union(1, _)),
            "object with record fields -> Item"
        );
        assert!(
            matches!(with(json!({"a": "b"})), Avro::Union(2, _)),
            "string map -> map branch"
        );
        assert_eq!(with(json!(42)), Avro::Union(3, Box::new(Avro::Long(42))));
        assert_eq!(
            with(json!({"long": 5})),
            Avro::Union(3, Box::new(Avro::Long(5)))
        );
    }

    #[test]
    fn errors_name_the_path() {
        let schema = schema();
        let cases = [
            (json!({"id": 1, "n": 1, "when": 0}), "id: expected string, found number"),
            (json!({"id": "x", "when": 0}), "n: required field is missing"),
            (json!({"id": "x", "n": 1, "when": 0, "nn": 1}), "nn: no such field in record t.T"),
            (json!({"id": "x", "n": 3_000_000_000_i64, "when": 0}), "n: 3000000000 is out of range for int"),
            (json!({"id": "x", "n": 1, "when": 0, "color": "BLUE"}), "color: unknown symbol \"BLUE\", expected one of RED, UNKNOWN"),
            (json!({"id": "x", "n": 1, "when": 0, "items": [{}, {"v": "a"}]}), "items[1].v: expected double, found string"),
            (json!({"id": "x", "n": 1, "when": 0, "attrs": {"k": 1}}), "attrs[\"k\"]: expected string, found number"),
            (json!({"id": "x", "n": 1, "when": 0, "born": "1972-02-30"}), "born: \"1972-02-30\" is not a date (expected days since 1970-01-01 or \"YYYY-MM-DD\")"),
            (json!({"id": "x", "n": 1, "when": 0, "raw": "中"}), "raw: bytes must be written as characters U+0000..U+00FF, found '中'"),
            (json!({"id": "x", "n": 1, "when": 0, "hash": "abc"}), "hash: fixed needs 2 bytes, found 3"),
            (json!([]), "(root): expected record t.T, found array"),
        ];
        for (json, message) in cases {
            assert_eq!(
                json_to_avro(&json, &schema).unwrap_err().to_string(),
                message
            );
        }
        let err = json_to_avro(
            &json!({"id": "x", "n": 1, "when": 0, "choice": true}),
            &schema,
        )
        .unwrap_err();
        assert!(
            matches!(err.kind(), ConvertErrorKind::NoUnionBranch { attempts } if attempts.len() == 3),
            "{err}"
        );
        assert_eq!(err.path(), "choice");
    }
}

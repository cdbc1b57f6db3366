//! Small helpers over apache-avro schemas and values, shared by every crate that walks them, and the Avro binary
//! encoding of a value tree without its schema ([`encode_value`]) for hot paths.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// The named types (records, enums, fixed) of `schema` by full name, to resolve `Schema::Ref`s. A record's fields
/// are walked only the first time it is seen, so recursive types terminate.
pub fn named_types(schema: &Schema) -> HashMap<String, &Schema> {
    let mut names = HashMap::new();
    collect_names(schema, &mut names);
    names
}

/// Adds the named types of `schema` to `names` (see [`named_types`]).
pub fn collect_names<'s>(schema: &'s Schema, names: &mut HashMap<String, &'s Schema>) {
    match schema {
        Schema::Record(r) if names.insert(r.name.fullname(None), schema).is_none() => {
            for field in &r.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema);
        }
        Schema::Fixed(f) => {
            names.insert(f.name.fullname(None), schema);
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        Schema::Decimal(d) => collect_names(&d.inner, names),
        _ => {}
    }
}

/// Appends a zig-zag varint (Avro `int` and `long`).
#[inline]
pub fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    if z < 0x80 {
        out.push(z as u8);
        return;
    }
    let mut buf = [0u8; 10];
    let mut i = 0;
    while z >= 0x80 {
        buf[i] = (z as u8) | 0x80;
        z >>= 7;
        i += 1;
    }
    buf[i] = z as u8;
    out.extend_from_slice(&buf[..=i]);
}

/// Appends an Avro `string` or `bytes`: the length, then the bytes.
#[inline]
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// Appends an Avro `string`: the length, then the UTF-8 bytes.
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_bytes(out, s.as_bytes());
}

/// A value [`encode_value`] cannot encode without its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode a {kind} value without its schema")]
pub struct EncodeError {
    /// The kind of value.
    pub kind: &'static str,
}

/// Appends the Avro binary encoding of `value` to `out`, without consulting a schema.
///
/// Correct for values that already conform to their schema with record fields in schema order — as values built
/// against a schema, or decoded with one, are: a union value carries its branch index, an enum its symbol index,
/// so nothing else is needed. `apache_avro::to_avro_datum` validates the value and re-resolves the schema's names
/// on every call, which costs several times the encoding itself on records with nested named types. Decimals
/// need their schema and are refused.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match value {
        Value::Null => {}
        Value::Boolean(b) => out.push(u8::from(*b)),
        Value::Int(v) | Value::Date(v) | Value::TimeMillis(v) => write_long(out, i64::from(*v)),
        Value::Long(v)
        | Value::TimeMicros(v)
        | Value::TimestampMillis(v)
        | Value::TimestampMicros(v)
        | Value::TimestampNanos(v)
        | Value::LocalTimestampMillis(v)
        | Value::LocalTimestampMicros(v)
        | Value::LocalTimestampNanos(v) => write_long(out, *v),
        Value::Float(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Double(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bytes(b) => write_bytes(out, b),
        Value::String(s) => write_str(out, s),
        Value::Uuid(u) => write_str(out, &u.to_string()),
        Value::Fixed(_, b) => out.extend_from_slice(b),
        Value::Enum(index, _) => write_long(out, i64::from(*index)),
        Value::Union(index, inner) => {
            write_long(out, i64::from(*index));
            encode_value(inner, out)?;
        }
        Value::Array(items) => {
            if !items.is_empty() {
                write_long(out, items.len() as i64);
                for item in items {
                    encode_value(item, out)?;
                }
            }
            out.push(0);
        }
        Value::Map(entries) => {
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (k, v) in entries {
                    write_str(out, k);
                    encode_value(v, out)?;
                }
            }
            out.push(0);
        }
        Value::Record(fields) => {
            for (_, v) in fields {
                encode_value(v, out)?;
            }
        }
        Value::Duration(d) => {
            out.extend_from_slice(&u32::from(d.months()).to_le_bytes());
            out.extend_from_slice(&u32::from(d.days()).to_le_bytes());
            out.extend_from_slice(&u32::from(d.millis()).to_le_bytes());
        }
        Value::Decimal(_) | Value::BigDecimal(_) => {
            return Err(EncodeError {
                kind: value_kind(value),
            })
        }
    }
    Ok(())
}

/// The kind of an Avro value, for error messages (`string`, `record`, `timestamp-millis` …).
pub fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "string",
        Value::Fixed(..) => "fixed",
        Value::Enum(..) => "enum",
        Value::Union(..) => "union",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Record(_) => "record",
        Value::Date(_) => "date",
        Value::Decimal(_) | Value::BigDecimal(_) => "decimal",
        Value::TimeMillis(_) => "time-millis",
        Value::TimeMicros(_) => "time-micros",
        Value::TimestampMillis(_) => "timestamp-millis",
        Value::TimestampMicros(_) => "timestamp-micros",
        Value::TimestampNanos(_) => "timestamp-nanos",
        Value::LocalTimestampMillis(_) => "local-timestamp-millis",
        Value::LocalTimestampMicros(_) => "local-timestamp-micros",
        Value::LocalTimestampNanos(_) => "local-timestamp-nanos",
        Value::Duration(_) => "duration",
        Value::Uuid(_) => "uuid",
    }
}

/// The Levenshtein distance between two strings, in characters (`strsim`): how "did you mean …?" suggestions
/// are chosen.
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

/// An Avro value [`to_json`] cannot render (a timestamp or date outside the calendar, a decimal or duration).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnrenderableValue(pub String);

/// Widens via the shortest decimal form, so `1.1f32` becomes `1.1`, not `1.100000023841858`.
pub fn float_to_f64(f: f32) -> f64 {
    if f.is_finite() {
        f.to_string().parse().unwrap_or(f64::from(f))
    } else {
        f64::from(f)
    }
}

/// The calendar date `days` after 1970-01-01 (an Avro `date`), if it is in chrono's range.
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?)
}

/// The natural JSON of an Avro value: records as objects (field order kept), maps as objects
/// (keys sorted), enums as symbols, unions as their branch, timestamps as RFC 3339 UTC strings,
/// dates as `YYYY-MM-DD`, bytes as lowercase hex, non-finite floats as `"NaN"`/`"Infinity"`.
///
/// This is the one JSON rendering of released records: the webhook body, the pull API and the SQL channel's
/// JSON columns all use it.
pub fn to_json(v: &Value) -> Result<serde_json::Value, UnrenderableValue> {
    use serde_json::Value as J;
    let ts = |t: Option<DateTime<Utc>>, fmt: SecondsFormat| {
        t.map(|t| J::String(t.to_rfc3339_opts(fmt, true)))
            .ok_or_else(|| UnrenderableValue("timestamp is out of range".to_owned()))
    };
    Ok(match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Long(l) => J::from(*l),
        Value::Float(f) => float_json(float_to_f64(*f)),
        Value::Double(d) => float_json(*d),
        Value::Bytes(b) | Value::Fixed(_, b) => J::String(hex::encode(b)),
        Value::String(s) | Value::Enum(_, s) => J::String(s.clone()),
        Value::Uuid(u) => J::String(u.to_string()),
        Value::Union(_, inner) => to_json(inner)?,
        Value::Array(items) => J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut obj = serde_json::Map::with_capacity(map.len());
            for k in keys {
                if let Some(v) = map.get(k) {
                    obj.insert(k.clone(), to_json(v)?);
                }
            }
            J::Object(obj)
        }
        Value::Record(fields) => {
            let mut obj = serde_json::Map::with_capacity(fields.len());
            for (k, v) in fields {
                obj.insert(k.clone(), to_json(v)?);
            }
            J::Object(obj)
        }
        Value::Date(days) => J::String(
            date_from_days(*days)
                .ok_or_else(|| UnrenderableValue("date is out of range".to_owned()))?
                .format("%Y-%m-%d")
                .to_string(),
        ),
        Value::TimestampMillis(ms) => {
            ts(DateTime::from_timestamp_millis(*ms), SecondsFormat::Millis)?
        }
        Value::TimestampMicros(us) => {
            ts(DateTime::from_timestamp_micros(*us), SecondsFormat::Micros)?
        }
        Value::TimestampNanos(ns) => ts(
            Some(DateTime::from_timestamp_nanos(*ns)),
            SecondsFormat::Nanos,
        )?,
        other => {
            return Err(UnrenderableValue(format!(
                "{} values have no JSON rendering",
                value_kind(other)
            )))
        }
    })
}

fn float_json(d: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(d) {
        Some(n) => serde_json::Value::Number(n),
        None if d.is_nan() => serde_json::Value::String("NaN".into()),
        None if d > 0.0 => serde_json::Value::String("Infinity".into()),
        None => serde_json::Value::String("-Infinity".into()),
    }
}

/// The primitive a schema is encoded as — `int` for `date` and `time-millis`, `long` for the other times and
/// timestamps, `string` for `uuid` — or `None` for complex and named types, decimals and durations.
pub fn encoded_primitive(schema: &Schema) -> Option<crate::model::Base> {
    use crate::model::Base;
    Some(match schema {
        Schema::Null => Base::Null,
        Schema::Boolean => Base::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Base::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Base::Long,
        Schema::Float => Base::Float,
        Schema::Double => Base::Double,
        Schema::Bytes => Base::Bytes,
        Schema::String | Schema::Uuid => Base::String,
        _ => return None,
    })
}

/// The names a union branch answers to, the first being its tag in Avro's JSON encoding: full and short name of a
/// named type, else the type name, followed by its logical type's name (`["long", "timestamp-millis"]`). Mappings
/// (`branch = "…"`), the JSON converter and messages all use it.
pub fn branch_names(schema: &Schema) -> Vec<String> {
    let named = |full: String| {
        let short = full.rsplit('.').next().unwrap_or(&full).to_string();
        vec![full, short]
    };
    match schema {
        Schema::Record(r) => named(r.name.fullname(None)),
        Schema::Enum(e) => named(e.name.fullname(None)),
        Schema::Fixed(f) => named(f.name.fullname(None)),
        Schema::Ref { name } => named(name.fullname(None)),
        Schema::Null => vec!["null".into()],
        Schema::Boolean => vec!["boolean".into()],
        Schema::Int => vec!["int".into()],
        Schema::Date => vec!["int".into(), "date".into()],
        Schema::TimeMillis => vec!["int".into(), "time-millis".into()],
        Schema::Float => vec!["float".into()],
        Schema::Double => vec!["double".into()],
        Schema::Bytes => vec!["bytes".into()],
        Schema::String | Schema::Uuid => vec!["string".into()],
        Schema::Array(_) => vec!["array".into()],
        Schema::Map(_) => vec!["map".into()],
        Schema::TimestampMillis => vec!["long".into(), "timestamp-millis".into()],
        Schema::TimestampMicros => vec!["long".into(), "timestamp-micros".into()],
        _ => vec!["long".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("regoin_code", "region_code"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("网格", "网格码"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn schema_less_encoding_matches_apache_avro_on_every_shared_example() {
        for shared in crate::shared_schemas() {
            let json = crate::example_record(shared.name()).expect("example");
            let value = crate::json_to_avro(&json, shared.avro()).expect("converts");
            let expected =
                apache_avro::to_avro_datum(shared.avro(), value.clone()).expect("encodes");
            let mut ours = Vec::new();
            encode_value(&value, &mut ours).expect("encodes");
            assert_eq!(ours, expected, "{}", shared.name());
        }
        let mut out = Vec::new();
        for v in [0i64, -1, 1, 63, -64, 64, i64::MAX, i64::MIN] {
            out.clear();
            write_long(&mut out, v);
            let mut expected = Vec::new();
            apache_avro::to_avro_datum(&Schema::Long, Value::Long(v))
                .map(|b| expected = b)
                .expect("encodes");
            assert_eq!(out, expected, "{v}");
        }
    }

    #[test]
    fn named_types_follow_nesting_and_recursion() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a.Node","fields":[
                {"name":"next","type":["null","a.Node"]},
                {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["X"]}}]}"#,
        )
        .unwrap();
        let names = named_types(&schema);
        assert!(
            names.contains_key("a.Node") && names.contains_key("a.Kind"),
            "{:?}",
            names.keys()
        );
        assert_eq!(value_kind(&Value::String("x".into())), "string");
    }
}

//! Small helpers over apache-avro schemas and values, shared by every crate that walks them.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema;

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
        Schema::Record(r) => {
            if names.insert(r.name.fullname(None), schema).is_none() {
                for field in &r.fields {
                    collect_names(&field.schema, names);
                }
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

/// The Levenshtein distance between two strings, in characters: how "did you mean …?" suggestions are chosen.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
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

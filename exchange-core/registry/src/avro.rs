//! Parsing registered schema text, and deciding when two texts are the same schema.
//!
//! The registry stores the text exactly as registered (with its `doc`s and custom `x-` attributes), but compares
//! schemas by an *identity form*: the Avro Parsing Canonical Form (full names, fixed key order, no whitespace,
//! no `doc`, no custom attributes) **plus** the attributes that change how data is resolved — field and enum
//! `default`s, `aliases`, logical types, decimal precision and scale, and field `order`. Plain Parsing Canonical
//! Form (`Schema::canonical_form`) strips defaults and logical types, so "add a default to field x" would look like
//! the schema already registered and silently never become a version, which breaks the usual evolution path
//! (add a default, then remove the field).

use std::collections::HashSet;
use std::fmt::Write as _;

use apache_avro::schema::{Alias, Name, RecordFieldOrder};
use apache_avro::Schema;
use serde_json::Value;

/// A schema accepted by the registry: the text as registered, its parsed form and its identity form.
#[derive(Debug, Clone)]
pub(crate) struct ParsedSchema {
    /// The text as registered.
    pub(crate) text: String,
    /// The parsed schema, for compatibility checks.
    pub(crate) schema: Schema,
    /// The identity form: equal for two texts that are the same schema.
    pub(crate) identity: String,
}

/// Parses schema text, returning the parser's reason when it is not a valid Avro schema.
pub(crate) fn parse(text: &str) -> Result<ParsedSchema, String> {
    let json: Value =
        serde_json::from_str(text).map_err(|e| format!("the schema is not valid JSON: {e}"))?;
    // apache-avro unwraps the result of name validation in a few places, and its canonical form (computed for
    // every field default) panics on reserved attributes of the wrong JSON type; both are checked here first so
    // that bad input gets a clear error instead of a panic.
    check_names(&json)?;
    check_reserved_attributes(&json)?;
    let parsed = std::panic::catch_unwind(|| Schema::parse(&json))
        .map_err(|_| "the Avro parser rejected this schema".to_owned())?;
    let schema = parsed.map_err(|e| e.to_string())?;
    let identity = identity_form(&schema);
    Ok(ParsedSchema {
        text: text.to_owned(),
        schema,
        identity,
    })
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn valid_name_part(part: &str) -> bool {
    let mut chars = part.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_fullname(name: &str) -> Result<(), String> {
    if name.split('.').all(valid_name_part) {
        Ok(())
    } else {
        Err(format!(
            "invalid name '{name}': a name is dot-separated parts, each matching [A-Za-z_][A-Za-z0-9_]*"
        ))
    }
}

/// Checks every name, alias and type reference in schema position.
fn check_names(schema: &Value) -> Result<(), String> {
    match schema {
        Value::String(s) => {
            if PRIMITIVES.contains(&s.as_str()) {
                Ok(())
            } else {
                check_fullname(s)
            }
        }
        Value::Array(branches) => branches.iter().try_for_each(check_names),
        Value::Object(obj) => match obj.get("type") {
            Some(Value::String(t)) => match t.as_str() {
                "record" | "error" | "enum" | "fixed" => {
                    if let Some(Value::String(name)) = obj.get("name") {
                        check_fullname(name)?;
                    }
                    if let Some(Value::Array(aliases)) = obj.get("aliases") {
                        for alias in aliases.iter().filter_map(Value::as_str) {
                            check_fullname(alias)?;
                        }
                    }
                    if let Some(Value::Array(fields)) = obj.get("fields") {
                        for field in fields {
                            if let Some(ty) = field.get("type") {
                                check_names(ty)?;
                            }
                        }
                    }
                    Ok(())
                }
                "array" => obj.get("items").map_or(Ok(()), check_names),
                "map" => obj.get("values").map_or(Ok(()), check_names),
                other if PRIMITIVES.contains(&other) => Ok(()),
                other => check_fullname(other),
            },
            Some(nested) => check_names(nested),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Checks the JSON types of the reserved attributes that apache-avro's canonical form walks: `name`, `type`,
/// `fields`, `symbols`, `items`, `values` and `order` must be strings, objects or arrays (of the same), and
/// `size`, `precision` and `scale` integers. Defaults, docs and custom attributes are not walked.
fn check_reserved_attributes(schema: &Value) -> Result<(), String> {
    match schema {
        Value::String(_) => Ok(()),
        Value::Array(items) => items.iter().try_for_each(check_reserved_attributes),
        Value::Object(map) => {
            for (key, value) in map {
                match key.as_str() {
                    "size" | "precision" | "scale" => {
                        let integer = value.as_i64().is_some()
                            || value.as_str().is_some_and(|s| s.parse::<i64>().is_ok());
                        if !integer {
                            return Err(format!("`{key}` must be an integer, not {value}"));
                        }
                    }
                    "name" | "type" | "fields" | "symbols" | "items" | "values" | "order" => {
                        if !(value.is_string() || value.is_array() || value.is_object()) {
                            return Err(format!(
                                "`{key}` must be a string, an object or an array, not {value}"
                            ));
                        }
                        check_reserved_attributes(value)?;
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        other => Err(format!("{other} is not a schema")),
    }
}

/// The identity form of a parsed schema (see the module docs).
pub(crate) fn identity_form(schema: &Schema) -> String {
    let mut out = String::new();
    let mut defined = HashSet::new();
    write_identity(schema, &mut defined, &mut out);
    out
}

fn quoted(s: &str) -> String {
    // Serialising a string cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

fn fullname(name: &Name) -> String {
    name.fullname(None)
}

fn write_aliases(aliases: &Option<Vec<Alias>>, out: &mut String) {
    if let Some(aliases) = aliases {
        let names: Vec<String> = aliases.iter().map(|a| quoted(&a.fullname(None))).collect();
        let _ = write!(out, ",\"aliases\":[{}]", names.join(","));
    }
}

fn write_logical(base: &str, logical: &str, out: &mut String) {
    let _ = write!(out, "{{\"type\":\"{base}\",\"logicalType\":\"{logical}\"}}");
}

fn write_identity(schema: &Schema, defined: &mut HashSet<String>, out: &mut String) {
    match schema {
        Schema::Null => out.push_str("\"null\""),
        Schema::Boolean => out.push_str("\"boolean\""),
        Schema::Int => out.push_str("\"int\""),
        Schema::Long => out.push_str("\"long\""),
        Schema::Float => out.push_str("\"float\""),
        Schema::Double => out.push_str("\"double\""),
        Schema::Bytes => out.push_str("\"bytes\""),
        Schema::String => out.push_str("\"string\""),
        Schema::Array(a) => {
            out.push_str("{\"type\":\"array\",\"items\":");
            write_identity(&a.items, defined, out);
            out.push('}');
        }
        Schema::Map(m) => {
            out.push_str("{\"type\":\"map\",\"values\":");
            write_identity(&m.types, defined, out);
            out.push('}');
        }
        Schema::Union(u) => {
            out.push('[');
            for (i, branch) in u.variants().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_identity(branch, defined, out);
            }
            out.push(']');
        }
        Schema::Record(r) => {
            let name = fullname(&r.name);
            if !defined.insert(name.clone()) {
                out.push_str(&quoted(&name));
                return;
            }
            let _ = write!(out, "{{\"name\":{},\"type\":\"record\"", quoted(&name));
            write_aliases(&r.aliases, out);
            out.push_str(",\"fields\":[");
            for (i, field) in r.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{{\"name\":{},\"type\":", quoted(&field.name));
                write_identity(&field.schema, defined, out);
                if let Some(aliases) = &field.aliases {
                    let names: Vec<String> = aliases.iter().map(|a| quoted(a)).collect();
                    let _ = write!(out, ",\"aliases\":[{}]", names.join(","));
                }
                if let Some(default) = &field.default {
                    out.push_str(",\"default\":");
                    write_canonical_json(default, out);
                }
                match field.order {
                    RecordFieldOrder::Ascending => {}
                    RecordFieldOrder::Descending => out.push_str(",\"order\":\"descending\""),
                    RecordFieldOrder::Ignore => out.push_str(",\"order\":\"ignore\""),
                }
                out.push('}');
            }
            out.push_str("]}");
        }
        Schema::Enum(e) => {
            let name = fullname(&e.name);
            if !defined.insert(name.clone()) {
                out.push_str(&quoted(&name));
                return;
            }
            let _ = write!(out, "{{\"name\":{},\"type\":\"enum\"", quoted(&name));
            write_aliases(&e.aliases, out);
            let symbols: Vec<String> = e.symbols.iter().map(|s| quoted(s)).collect();
            let _ = write!(out, ",\"symbols\":[{}]", symbols.join(","));
            if let Some(default) = &e.default {
                let _ = write!(out, ",\"default\":{}", quoted(default));
            }
            out.push('}');
        }
        Schema::Fixed(f) => {
            let name = fullname(&f.name);
            if !defined.insert(name.clone()) {
                out.push_str(&quoted(&name));
                return;
            }
            let _ = write!(out, "{{\"name\":{},\"type\":\"fixed\"", quoted(&name));
            write_aliases(&f.aliases, out);
            let _ = write!(out, ",\"size\":{}}}", f.size);
        }
        Schema::Decimal(d) => {
            out.push_str("{\"type\":");
            write_identity(&d.inner, defined, out);
            let _ = write!(
                out,
                ",\"logicalType\":\"decimal\",\"precision\":{},\"scale\":{}}}",
                d.precision, d.scale
            );
        }
        Schema::BigDecimal => write_logical("bytes", "big-decimal", out),
        Schema::Uuid => write_logical("string", "uuid", out),
        Schema::Date => write_logical("int", "date", out),
        Schema::TimeMillis => write_logical("int", "time-millis", out),
        Schema::TimeMicros => write_logical("long", "time-micros", out),
        Schema::TimestampMillis => write_logical("long", "timestamp-millis", out),
        Schema::TimestampMicros => write_logical("long", "timestamp-micros", out),
        Schema::TimestampNanos => write_logical("long", "timestamp-nanos", out),
        Schema::LocalTimestampMillis => write_logical("long", "local-timestamp-millis", out),
        Schema::LocalTimestampMicros => write_logical("long", "local-timestamp-micros", out),
        Schema::LocalTimestampNanos => write_logical("long", "local-timestamp-nanos", out),
        Schema::Duration => out.push_str(
            "{\"type\":{\"name\":\"duration\",\"type\":\"fixed\",\"size\":12},\"logicalType\":\"duration\"}",
        ),
        Schema::Ref { name } => out.push_str(&quoted(&fullname(name))),
    }
}

/// JSON with object keys sorted, so that equal default values give equal text.
fn write_canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quoted(k));
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_canonical_json(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> String {
        parse(text).unwrap().identity
    }

    /// Found by the `registry_schema` fuzz target: a reserved attribute of the wrong JSON type inside a field
    /// with a default made apache-avro's canonical form panic. It is now refused with a clear error before the
    /// parser runs (the caught panic used to say only "the Avro parser rejected this schema").
    #[test]
    fn reserved_attributes_of_the_wrong_type_are_refused_before_the_parser() {
        let found = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../tests/fuzz/regressions/registry_schema/canonical-form-panic-on-non-schema-symbols",
        ))
        .expect("the regression input");
        let err = parse(&String::from_utf8_lossy(&found)).unwrap_err();
        assert!(err.contains("`symbols` must be"), "{err}");
        for (text, what) in [
            (
                r#"{"type":"record","name":"r","fields":[{"name":"a","type":{"type":"boolean","symbols":false},"default":true}]}"#,
                "`symbols`",
            ),
            (r#"{"type":"fixed","name":"f","size":1.5}"#, "`size`"),
            (
                r#"{"type":"record","name":"r","fields":[{"name":"a","type":"int","order":7}]}"#,
                "`order`",
            ),
            (r#"{"type":"array","items":null}"#, "`items`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(what), "{text}: {err}");
        }
        assert!(parse(r#"{"type":"fixed","name":"f","size":16}"#).is_ok());
    }

    #[test]
    fn whitespace_docs_and_custom_attributes_do_not_change_identity() {
        let a = r#"{"type":"record","name":"GridEvent","namespace":"cn.unsilo.grid","fields":[{"name":"id","type":"string"}]}"#;
        let b = r#"{
            "namespace": "cn.unsilo.grid", "type": "record", "name": "GridEvent",
            "doc": "网格事件 Grid event",
            "fields": [ {"name": "id", "type": {"type": "string"}, "doc": "标识", "x-sensitivity": "S1"} ]
        }"#;
        assert_eq!(id(a), id(b));
        let fq = r#"{"type":"record","name":"cn.unsilo.grid.GridEvent","fields":[{"name":"id","type":"string"}]}"#;
        assert_eq!(id(a), id(fq));
    }

    #[test]
    fn defaults_logical_types_and_aliases_change_identity() {
        let plain = r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int"}]}"#;
        let with_default =
            r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int","default":0}]}"#;
        let with_alias =
            r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int","aliases":["m"]}]}"#;
        let ts = r#"{"type":"record","name":"R","fields":[{"name":"n","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
        let long = r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}"#;
        let all = [plain, with_default, with_alias, ts, long].map(id);
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j], "{i} vs {j}");
            }
        }
        // Plain Parsing Canonical Form would call the first two the same schema.
        let pcf = |t: &str| Schema::parse_str(t).unwrap().canonical_form();
        assert_eq!(pcf(plain), pcf(with_default));
    }

    #[test]
    fn enum_default_is_part_of_identity() {
        let a = r#"{"type":"enum","name":"E","symbols":["A","UNKNOWN"]}"#;
        let b = r#"{"type":"enum","name":"E","symbols":["A","UNKNOWN"],"default":"UNKNOWN"}"#;
        assert_ne!(id(a), id(b));
    }

    #[test]
    fn default_values_compare_by_content() {
        let a = r#"{"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":"int"},"default":{"a":1,"b":2}}]}"#;
        let b = r#"{"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":"int"},"default":{"b":2,"a":1}}]}"#;
        assert_eq!(id(a), id(b));
    }

    #[test]
    fn registered_text_is_kept_verbatim() {
        let text = r#"{"type":"record","name":"R","doc":"说明","fields":[{"name":"n","type":"int","x-pii":"phone"}]}"#;
        assert_eq!(parse(text).unwrap().text, text);
    }

    #[test]
    fn primitive_schemas_are_valid() {
        assert_eq!(id(r#""string""#), "\"string\"");
        assert_eq!(id(r#"{"type":"string"}"#), "\"string\"");
    }

    #[test]
    fn invalid_schemas_give_the_reason_and_never_panic() {
        let cases = [
            ("", "not valid JSON"),
            ("{", "not valid JSON"),
            (r#"{"type":"record","name":"R"}"#, ""),
            (r#"{"type":"recrod","name":"R","fields":[]}"#, ""),
            (
                r#"{"type":"record","name":"1bad","fields":[]}"#,
                "invalid name '1bad'",
            ),
            (
                r#"{"type":"record","name":"R","aliases":["no-dash"],"fields":[]}"#,
                "invalid name 'no-dash'",
            ),
            (r#"{"type":"fixed","name":"F","size":-1}"#, ""),
            (
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Missing"}]}"#,
                "",
            ),
            (
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"not a name"}]}"#,
                "invalid name",
            ),
            (
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}"#,
                "",
            ),
            (r#"{"type":"enum","name":"E","symbols":["A","A"]}"#, ""),
            ("42", ""),
            (r#"{"type":{"type":{"type":"1x"}}}"#, ""),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text);
            assert!(!err.is_empty(), "{text}");
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}

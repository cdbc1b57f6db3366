//! Compatibility levels, and the check that decides them with the Avro schema-resolution rules.
//!
//! `can_read(writer, reader)` walks both schemas the way an Avro reader resolves data written with `writer`
//! using `reader` (the rules of the Avro specification, section "Schema Resolution", as Java's
//! `SchemaCompatibility` — which Confluent uses — applies them): primitive promotions, record fields matched by
//! name or reader alias, reader fields missing from the writer need a default, enum symbols unknown to the
//! reader need a reader default, unions branch by branch, named types by name, logical types by their
//! underlying type. Unlike `apache_avro::schema_compatibility::SchemaCompatibility::can_read`, it honours enum
//! defaults and reader aliases, resolves named-type references, and reports *every* problem with the path of
//! the field at fault; the unit tests check that both agree wherever those differences do not apply.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use apache_avro::schema::{Alias, EnumSchema, Name, RecordSchema};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use super::error::Error;

/// A compatibility level, as Confluent names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// No check.
    None,
    /// The new schema can read data written with the latest version (the default).
    #[default]
    Backward,
    /// The new schema can read data written with every earlier version.
    BackwardTransitive,
    /// The latest version can read data written with the new schema.
    Forward,
    /// Every earlier version can read data written with the new schema.
    ForwardTransitive,
    /// Both backward and forward against the latest version.
    Full,
    /// Both backward and forward against every earlier version.
    FullTransitive,
}

impl Compatibility {
    /// Every level, in Confluent's documentation order.
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    /// The Confluent name, e.g. `BACKWARD_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the new schema must read data written with earlier ones.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether earlier schemas must read data written with the new one.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether every earlier version is checked, not only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compatibility {
    type Err = Error;

    /// Parses a level by its Confluent name, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        Compatibility::ALL
            .into_iter()
            .find(|c| c.as_str() == upper)
            .ok_or_else(|| Error::InvalidCompatibilityLevel(s.to_owned()))
    }
}

/// An earlier version to check a new schema against.
pub(crate) struct Earlier<'a> {
    /// Its version number.
    pub(crate) version: u32,
    /// Its parsed schema.
    pub(crate) schema: &'a Schema,
}

/// Checks `new` against `earlier` (ascending by version) at `level`; returns one message per problem, each naming
/// the field at fault and the version involved. Empty means compatible.
pub(crate) fn check(level: Compatibility, new: &Schema, earlier: &[Earlier<'_>]) -> Vec<String> {
    let against: &[Earlier<'_>] = if level.is_transitive() {
        earlier
    } else {
        match earlier.split_last() {
            Some((last, _)) => std::slice::from_ref(last),
            None => &[],
        }
    };
    let mut messages = Vec::new();
    // Latest first: the most relevant conflict leads the message.
    for old in against.iter().rev() {
        if level.checks_backward() {
            for problem in can_read(old.schema, new) {
                messages.push(format!(
                    "{problem} (the new schema reading data written with version {})",
                    old.version
                ));
            }
        }
        if level.checks_forward() {
            for problem in can_read(new, old.schema) {
                messages.push(format!(
                    "{problem} (version {} reading data written with the new schema)",
                    old.version
                ));
            }
        }
    }
    messages
}

/// Whether data written with `writer` can be read with `reader`: every problem found, empty if it can.
pub(crate) fn can_read(writer: &Schema, reader: &Schema) -> Vec<String> {
    let mut writer_names = HashMap::new();
    unsilo_schemas::avro::collect_names(writer, &mut writer_names);
    let mut reader_names = HashMap::new();
    unsilo_schemas::avro::collect_names(reader, &mut reader_names);
    let mut walk = Walk {
        writer_names,
        reader_names,
        in_progress: HashSet::new(),
        path: String::new(),
        budget: STEP_BUDGET,
    };
    let mut problems = Vec::new();
    walk.check(writer, reader, &mut problems);
    if walk.budget == 0 {
        problems.push("the schemas are too complex to compare".to_owned());
    }
    problems
}

/// Upper bound on comparison steps: unions of nested records are tried branch by branch, which could blow up
/// on adversarial input.
const STEP_BUDGET: u32 = 200_000;

/// A schema reduced to what matters for resolution: references followed, logical types replaced by their
/// underlying types.
enum Shape<'a> {
    Primitive(&'static str),
    Array(&'a Schema),
    Map(&'a Schema),
    Union(&'a [Schema]),
    Record(&'a RecordSchema),
    Enum(&'a EnumSchema),
    Fixed {
        name: Option<&'a Name>,
        aliases: Option<&'a [Alias]>,
        size: usize,
    },
    Unresolved(String),
}

fn shape<'a>(schema: &'a Schema, names: &HashMap<String, &'a Schema>) -> Shape<'a> {
    if let Some(base) = unsilo_schemas::avro::encoded_primitive(schema) {
        return Shape::Primitive(base.name());
    }
    match schema {
        Schema::BigDecimal => Shape::Primitive("bytes"),
        Schema::Array(a) => Shape::Array(&a.items),
        Schema::Map(m) => Shape::Map(&m.types),
        Schema::Union(u) => Shape::Union(u.variants()),
        Schema::Record(r) => Shape::Record(r),
        Schema::Enum(e) => Shape::Enum(e),
        Schema::Fixed(f) => Shape::Fixed {
            name: Some(&f.name),
            aliases: f.aliases.as_deref(),
            size: f.size,
        },
        Schema::Decimal(d) => match d.inner.as_ref() {
            // A decimal's inner schema is bytes or a fixed, never a reference.
            Schema::Fixed(f) => Shape::Fixed {
                name: Some(&f.name),
                aliases: f.aliases.as_deref(),
                size: f.size,
            },
            _ => Shape::Primitive("bytes"),
        },
        Schema::Duration => Shape::Fixed {
            name: None,
            aliases: None,
            size: 12,
        },
        Schema::Ref { name } => {
            let full = name.fullname(None);
            match names.get(&full) {
                // A reference always points at a record, enum or fixed, so this does not loop.
                Some(target) if !matches!(target, Schema::Ref { .. }) => shape(target, names),
                _ => Shape::Unresolved(full),
            }
        }
        // Primitives and their logical types were answered by `encoded_primitive` above.
        other => Shape::Unresolved(format!("{other:?}")),
    }
}

/// A short description of a type for messages: `int`, `record cn.unsilo.Address`, `union [null, string]`.
fn describe(schema: &Schema, names: &HashMap<String, &Schema>) -> String {
    describe_depth(schema, names, 0)
}

fn describe_depth(schema: &Schema, names: &HashMap<String, &Schema>, depth: usize) -> String {
    if depth > 3 {
        return "…".to_owned();
    }
    match shape(schema, names) {
        Shape::Primitive(p) => p.to_owned(),
        Shape::Array(items) => format!("array<{}>", describe_depth(items, names, depth + 1)),
        Shape::Map(values) => format!("map<{}>", describe_depth(values, names, depth + 1)),
        Shape::Union(branches) => {
            let parts: Vec<String> = branches
                .iter()
                .map(|b| describe_depth(b, names, depth + 1))
                .collect();
            format!("union [{}]", parts.join(", "))
        }
        Shape::Record(r) => format!("record {}", r.name.fullname(None)),
        Shape::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Shape::Fixed {
            name: Some(n),
            size,
            ..
        } => format!("fixed {} ({size} bytes)", n.fullname(None)),
        Shape::Fixed { name: None, .. } => "duration".to_owned(),
        Shape::Unresolved(n) => n,
    }
}

/// Whether a reader named type accepts a writer named type: same unqualified name, or a reader alias naming the
/// writer (as Java's `SchemaCompatibility.schemaNameEquals`).
fn names_match(writer: &Name, reader: &Name, reader_aliases: Option<&[Alias]>) -> bool {
    if writer.name == reader.name {
        return true;
    }
    let writer_full = writer.fullname(None);
    reader_aliases
        .unwrap_or_default()
        .iter()
        .any(|a| a.fullname(None) == writer_full || a.name() == writer.name)
}

fn promotes(writer: &str, reader: &str) -> bool {
    writer == reader
        || matches!(
            (writer, reader),
            ("int", "long" | "float" | "double")
                | ("long", "float" | "double")
                | ("float", "double")
                | ("string", "bytes")
                | ("bytes", "string")
        )
}

struct Walk<'w, 'r> {
    writer_names: HashMap<String, &'w Schema>,
    reader_names: HashMap<String, &'r Schema>,
    /// Record pairs being compared further up the stack (recursive types are assumed compatible there).
    in_progress: HashSet<(String, String)>,
    /// Dotted path of the field being compared, e.g. `location.lat` or `items[].name`.
    path: String,
    budget: u32,
}

impl<'w, 'r> Walk<'w, 'r> {
    fn at(&self) -> String {
        if self.path.is_empty() {
            "the top-level schema".to_owned()
        } else {
            format!("field '{}'", self.path)
        }
    }

    fn mismatch(&self, writer: &Schema, reader: &Schema, problems: &mut Vec<String>) {
        problems.push(format!(
            "{}: writer type {} cannot be read as reader type {}",
            self.at(),
            describe(writer, &self.writer_names),
            describe(reader, &self.reader_names)
        ));
    }

    fn check(&mut self, writer: &'w Schema, reader: &'r Schema, problems: &mut Vec<String>) {
        if self.budget == 0 {
            return;
        }
        self.budget -= 1;
        let w = shape(writer, &self.writer_names);
        let r = shape(reader, &self.reader_names);
        match (w, r) {
            (Shape::Unresolved(name), _) | (_, Shape::Unresolved(name)) => {
                problems.push(format!(
                    "{}: cannot resolve the named type {name}",
                    self.at()
                ));
            }
            // Every branch the writer may have written must be readable.
            (Shape::Union(branches), _) => {
                for branch in branches {
                    self.check(branch, reader, problems);
                }
            }
            (_, Shape::Union(branches)) => {
                let mut best: Option<Vec<String>> = None;
                for branch in branches {
                    let mut trial = Vec::new();
                    self.check(writer, branch, &mut trial);
                    if trial.is_empty() {
                        return;
                    }
                    // A branch of the same kind explains the failure better than "matches no branch".
                    if self.same_kind(writer, branch) && best.is_none() {
                        best = Some(trial);
                    }
                }
                match best {
                    Some(trial) => problems.extend(trial),
                    None => problems.push(format!(
                        "{}: writer type {} matches no branch of reader {}",
                        self.at(),
                        describe(writer, &self.writer_names),
                        describe(reader, &self.reader_names)
                    )),
                }
            }
            (Shape::Primitive(wp), Shape::Primitive(rp)) => {
                if !promotes(wp, rp) {
                    self.mismatch(writer, reader, problems);
                }
            }
            (Shape::Array(wi), Shape::Array(ri)) => {
                let len = self.path.len();
                self.path.push_str("[]");
                self.check(wi, ri, problems);
                self.path.truncate(len);
            }
            (Shape::Map(wv), Shape::Map(rv)) => {
                let len = self.path.len();
                self.path.push_str("{}");
                self.check(wv, rv, problems);
                self.path.truncate(len);
            }
            (Shape::Enum(we), Shape::Enum(re)) => {
                if !names_match(&we.name, &re.name, re.aliases.as_deref()) {
                    self.names_differ("enum", &we.name, &re.name, problems);
                    return;
                }
                let missing: Vec<&str> = we
                    .symbols
                    .iter()
                    .filter(|s| !re.symbols.contains(s))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() && re.default.is_none() {
                    problems.push(format!(
                        "{}: reader enum {} lacks the writer symbol(s) {} and has no default symbol",
                        self.at(),
                        re.name.fullname(None),
                        missing.join(", ")
                    ));
                }
            }
            (
                Shape::Fixed {
                    name: wn, size: ws, ..
                },
                Shape::Fixed {
                    name: rn,
                    aliases: ra,
                    size: rs,
                },
            ) => {
                if let (Some(wn), Some(rn)) = (wn, rn) {
                    if !names_match(wn, rn, ra) {
                        self.names_differ("fixed", wn, rn, problems);
                        return;
                    }
                }
                if ws != rs {
                    problems.push(format!(
                        "{}: writer fixed has {ws} bytes, reader fixed has {rs}",
                        self.at()
                    ));
                }
            }
            (Shape::Record(wr), Shape::Record(rr)) => self.check_records(wr, rr, problems),
            _ => self.mismatch(writer, reader, problems),
        }
    }

    fn names_differ(&self, kind: &str, writer: &Name, reader: &Name, problems: &mut Vec<String>) {
        problems.push(format!(
            "{}: writer {kind} {} and reader {kind} {} have different names (and no reader alias joins them)",
            self.at(),
            writer.fullname(None),
            reader.fullname(None)
        ));
    }

    /// Whether a reader union branch is the one the writer type was evidently meant for (same container kind,
    /// or same named type), so that its nested problems explain the failure better than "matches no branch".
    fn same_kind(&self, writer: &Schema, reader: &Schema) -> bool {
        match (
            shape(writer, &self.writer_names),
            shape(reader, &self.reader_names),
        ) {
            (Shape::Array(_), Shape::Array(_))
            | (Shape::Map(_), Shape::Map(_))
            | (Shape::Fixed { .. }, Shape::Fixed { .. }) => true,
            (Shape::Record(w), Shape::Record(r)) => {
                names_match(&w.name, &r.name, r.aliases.as_deref())
            }
            (Shape::Enum(w), Shape::Enum(r)) => names_match(&w.name, &r.name, r.aliases.as_deref()),
            _ => false,
        }
    }

    fn check_records(
        &mut self,
        writer: &'w RecordSchema,
        reader: &'r RecordSchema,
        problems: &mut Vec<String>,
    ) {
        if !names_match(&writer.name, &reader.name, reader.aliases.as_deref()) {
            self.names_differ("record", &writer.name, &reader.name, problems);
            return;
        }
        let pair = (writer.name.fullname(None), reader.name.fullname(None));
        if !self.in_progress.insert(pair.clone()) {
            return;
        }
        for field in &reader.fields {
            let found = writer.fields.iter().find(|w| {
                w.name == field.name
                    || field
                        .aliases
                        .as_deref()
                        .unwrap_or_default()
                        .contains(&w.name)
            });
            let len = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&field.name);
            match found {
                Some(w) => self.check(&w.schema, &field.schema, problems),
                None if field.default.is_none() => problems.push(format!(
                    "reader field '{}' (type {}) has no default value and is missing from the writer schema",
                    self.path,
                    describe(&field.schema, &self.reader_names)
                )),
                None => {}
            }
            self.path.truncate(len);
        }
        self.in_progress.remove(&pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::schema_compatibility::SchemaCompatibility;

    fn schema(text: &str) -> Schema {
        Schema::parse_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// A record `R` with the given fields (JSON array elements).
    fn record(fields: &str) -> Schema {
        schema(&format!(
            r#"{{"type":"record","name":"R","namespace":"t","fields":[{fields}]}}"#
        ))
    }

    fn problems(writer: &Schema, reader: &Schema) -> Vec<String> {
        can_read(writer, reader)
    }

    const ID: &str = r#"{"name":"id","type":"string"}"#;

    #[test]
    fn levels_parse_from_confluent_names_in_any_case() {
        for level in Compatibility::ALL {
            assert_eq!(level.as_str().parse::<Compatibility>().unwrap(), level);
            assert_eq!(
                level
                    .as_str()
                    .to_lowercase()
                    .parse::<Compatibility>()
                    .unwrap(),
                level
            );
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{}\"", level.as_str()));
        }
        assert!(matches!(
            "SIDEWAYS".parse::<Compatibility>(),
            Err(Error::InvalidCompatibilityLevel(_))
        ));
        assert_eq!(Compatibility::default(), Compatibility::Backward);
    }

    #[test]
    fn adding_a_field_with_a_default_is_backward_compatible() {
        let v1 = record(ID);
        let v2 = record(&format!(
            r#"{ID},{{"name":"priority","type":"int","default":0}}"#
        ));
        assert!(problems(&v1, &v2).is_empty());
        // And forward: the old reader ignores the new field.
        assert!(problems(&v2, &v1).is_empty());
    }

    #[test]
    fn adding_a_field_without_default_breaks_backward_and_names_it() {
        let v1 = record(ID);
        let v2 = record(&format!(r#"{ID},{{"name":"priority","type":"int"}}"#));
        let p = problems(&v1, &v2);
        assert_eq!(
            p,
            vec!["reader field 'priority' (type int) has no default value and is missing from the writer schema"]
        );
        let earlier = [Earlier {
            version: 2,
            schema: &v1,
        }];
        let messages = check(Compatibility::Backward, &v2, &earlier);
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].contains("'priority'") && messages[0].contains("version 2"),
            "{messages:?}"
        );
        // Forward is fine: old readers never see the field.
        assert!(check(Compatibility::Forward, &v2, &earlier).is_empty());
    }

    #[test]
    fn removing_a_field_breaks_forward_unless_it_had_a_default() {
        let with = record(&format!(r#"{ID},{{"name":"note","type":"string"}}"#));
        let without = record(ID);
        let earlier = [Earlier {
            version: 1,
            schema: &with,
        }];
        assert!(check(Compatibility::Backward, &without, &earlier).is_empty());
        let forward = check(Compatibility::Forward, &without, &earlier);
        assert_eq!(forward.len(), 1);
        assert!(forward[0].contains("reader field 'note'"), "{forward:?}");
        assert!(forward[0].contains("version 1 reading data written with the new schema"));

        let with_default = record(&format!(
            r#"{ID},{{"name":"note","type":"string","default":""}}"#
        ));
        let earlier = [Earlier {
            version: 1,
            schema: &with_default,
        }];
        assert!(check(Compatibility::Full, &without, &earlier).is_empty());
    }

    #[test]
    fn int_to_long_promotes_backward_but_not_forward() {
        let int = record(r#"{"name":"level","type":"int"}"#);
        let long = record(r#"{"name":"level","type":"long"}"#);
        assert!(problems(&int, &long).is_empty());
        assert_eq!(
            problems(&long, &int),
            vec!["field 'level': writer type long cannot be read as reader type int"]
        );
        let earlier = [Earlier {
            version: 1,
            schema: &int,
        }];
        assert!(check(Compatibility::Backward, &long, &earlier).is_empty());
        assert_eq!(check(Compatibility::Forward, &long, &earlier).len(), 1);
        assert_eq!(check(Compatibility::Full, &long, &earlier).len(), 1);
    }

    #[test]
    fn other_promotions_follow_the_spec() {
        for (w, r, ok) in [
            ("int", "float", true),
            ("int", "double", true),
            ("long", "double", true),
            ("float", "double", true),
            ("string", "bytes", true),
            ("bytes", "string", true),
            ("double", "float", false),
            ("long", "int", false),
            ("string", "int", false),
            ("boolean", "int", false),
            ("null", "string", false),
        ] {
            let got = problems(&schema(&format!("\"{w}\"")), &schema(&format!("\"{r}\"")));
            assert_eq!(got.is_empty(), ok, "{w} -> {r}: {got:?}");
        }
    }

    #[test]
    fn logical_types_resolve_as_their_underlying_type() {
        let ts = schema(r#"{"type":"long","logicalType":"timestamp-millis"}"#);
        let date = schema(r#"{"type":"int","logicalType":"date"}"#);
        assert!(problems(&ts, &schema(r#""long""#)).is_empty());
        assert!(problems(&schema(r#""long""#), &ts).is_empty());
        assert!(problems(&date, &ts).is_empty()); // int -> long
        assert_eq!(problems(&ts, &date).len(), 1);
    }

    const STATUS_V1: &str = r#"{"type":"enum","name":"Status","symbols":["OPEN","CLOSED"]}"#;
    const STATUS_V2: &str =
        r#"{"type":"enum","name":"Status","symbols":["OPEN","CLOSED","ARCHIVED"]}"#;

    #[test]
    fn an_added_enum_symbol_is_backward_compatible_only() {
        let v1 = record(&format!(r#"{{"name":"status","type":{STATUS_V1}}}"#));
        let v2 = record(&format!(r#"{{"name":"status","type":{STATUS_V2}}}"#));
        assert!(problems(&v1, &v2).is_empty());
        let p = problems(&v2, &v1);
        assert_eq!(
            p,
            vec!["field 'status': reader enum t.Status lacks the writer symbol(s) ARCHIVED and has no default symbol"]
        );
    }

    #[test]
    fn a_reader_enum_default_absorbs_unknown_symbols() {
        let reader = record(
            r#"{"name":"status","type":{"type":"enum","name":"Status","symbols":["OPEN","CLOSED","UNKNOWN"],"default":"UNKNOWN"}}"#,
        );
        let writer = record(&format!(r#"{{"name":"status","type":{STATUS_V2}}}"#));
        assert!(problems(&writer, &reader).is_empty());
    }

    #[test]
    fn union_changes() {
        let nullable = record(r#"{"name":"phone","type":["null","string"],"default":null}"#);
        let plain = record(r#"{"name":"phone","type":"string"}"#);
        // Widening a field to a union that contains its type: readable.
        assert!(problems(&plain, &nullable).is_empty());
        // Narrowing: data written as null cannot be read as string.
        let p = problems(&nullable, &plain);
        assert_eq!(
            p,
            vec!["field 'phone': writer type null cannot be read as reader type string"]
        );
        // Adding a branch is backward compatible, removing one is not.
        let wider = record(r#"{"name":"phone","type":["null","string","long"],"default":null}"#);
        assert!(problems(&nullable, &wider).is_empty());
        assert_eq!(problems(&wider, &nullable).len(), 1);
        // A writer type no branch accepts.
        let int_field = record(r#"{"name":"phone","type":"boolean"}"#);
        let p = problems(&int_field, &nullable);
        assert_eq!(
            p,
            vec!["field 'phone': writer type boolean matches no branch of reader union [null, string]"]
        );
        // A promotion into a union branch.
        let int_writer = record(r#"{"name":"n","type":"int"}"#);
        let union_reader = record(r#"{"name":"n","type":["null","long"],"default":null}"#);
        assert!(problems(&int_writer, &union_reader).is_empty());
    }

    #[test]
    fn nested_fields_are_named_by_path() {
        let v1 = record(
            r#"{"name":"location","type":{"type":"record","name":"Loc","fields":[{"name":"lat","type":"double"}]}},
               {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[{"name":"n","type":"int"}]}}}"#,
        );
        let v2 = record(
            r#"{"name":"location","type":{"type":"record","name":"Loc","fields":[{"name":"lat","type":"double"},{"name":"alt","type":"double"}]}},
               {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[{"name":"n","type":"string"}]}}}"#,
        );
        let p = problems(&v1, &v2);
        assert_eq!(
            p,
            vec![
                "reader field 'location.alt' (type double) has no default value and is missing from the writer schema",
                "field 'items[].n': writer type int cannot be read as reader type string",
            ]
        );
    }

    #[test]
    fn renamed_records_need_an_alias_and_renamed_fields_need_an_alias() {
        let a = schema(r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#);
        let b = schema(r#"{"type":"record","name":"B","fields":[{"name":"x","type":"int"}]}"#);
        assert_eq!(problems(&a, &b).len(), 1);
        let b_alias = schema(
            r#"{"type":"record","name":"B","aliases":["A"],"fields":[{"name":"x","type":"int"}]}"#,
        );
        assert!(problems(&a, &b_alias).is_empty());
        let renamed_field = schema(
            r#"{"type":"record","name":"A","fields":[{"name":"y","type":"int","aliases":["x"]}]}"#,
        );
        assert!(problems(&a, &renamed_field).is_empty());
    }

    #[test]
    fn named_type_references_are_followed() {
        // The second field refers to Loc by name; a change inside Loc must be seen there too.
        let v1 = schema(
            r#"{"type":"record","name":"R","fields":[
                {"name":"home","type":{"type":"record","name":"Loc","fields":[{"name":"lat","type":"double"}]}},
                {"name":"work","type":"Loc"}]}"#,
        );
        let v2 = schema(
            r#"{"type":"record","name":"R","fields":[
                {"name":"work","type":{"type":"record","name":"Loc","fields":[{"name":"lat","type":"float"}]}},
                {"name":"home","type":"Loc"}]}"#,
        );
        let p = problems(&v1, &v2);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("field 'work.lat'"), "{p:?}");
        assert!(p[1].starts_with("field 'home.lat'"), "{p:?}");
    }

    #[test]
    fn recursive_types_terminate() {
        let list = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}"#;
        let list2 = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}"#;
        assert!(problems(&schema(list), &schema(list2)).is_empty());
        assert!(!problems(&schema(list2), &schema(list)).is_empty());
    }

    #[test]
    fn fixed_size_must_match() {
        let a = schema(r#"{"type":"fixed","name":"H","size":16}"#);
        let b = schema(r#"{"type":"fixed","name":"H","size":32}"#);
        assert_eq!(problems(&a, &b).len(), 1);
        assert!(problems(&a, &a).is_empty());
    }

    #[test]
    fn transitive_levels_check_every_version() {
        // v1 has no `note`; v2 adds it with a default; v3 drops the default.
        // v2 -> v3 is backward compatible (v2 data has `note`), v1 -> v3 is not.
        let v1 = record(ID);
        let v2 = record(&format!(
            r#"{ID},{{"name":"note","type":"string","default":""}}"#
        ));
        let v3 = record(&format!(r#"{ID},{{"name":"note","type":"string"}}"#));
        let earlier = [
            Earlier {
                version: 1,
                schema: &v1,
            },
            Earlier {
                version: 2,
                schema: &v2,
            },
        ];
        assert!(check(Compatibility::Backward, &v3, &earlier).is_empty());
        let transitive = check(Compatibility::BackwardTransitive, &v3, &earlier);
        assert_eq!(transitive.len(), 1);
        assert!(
            transitive[0].contains("'note'") && transitive[0].contains("version 1"),
            "{transitive:?}"
        );
        assert_eq!(check(Compatibility::FullTransitive, &v3, &earlier).len(), 1);
    }

    #[test]
    fn none_always_passes() {
        let a = schema(r#""string""#);
        let b = record(ID);
        let earlier = [Earlier {
            version: 1,
            schema: &a,
        }];
        assert!(check(Compatibility::None, &b, &earlier).is_empty());
        assert!(!check(Compatibility::Full, &b, &earlier).is_empty());
        assert!(check(Compatibility::FullTransitive, &b, &[]).is_empty());
    }

    /// Where neither enum defaults, aliases nor named-type references are involved, the verdict agrees with
    /// apache-avro's own checker.
    #[test]
    fn agrees_with_apache_avro_on_plain_schemas() {
        let corpus = [
            record(ID),
            record(&format!(r#"{ID},{{"name":"p","type":"int","default":0}}"#)),
            record(&format!(r#"{ID},{{"name":"p","type":"int"}}"#)),
            record(&format!(r#"{ID},{{"name":"p","type":"long"}}"#)),
            record(&format!(r#"{ID},{{"name":"p","type":"double"}}"#)),
            record(&format!(
                r#"{ID},{{"name":"p","type":["null","int"],"default":null}}"#
            )),
            record(&format!(
                r#"{ID},{{"name":"p","type":["null","long"],"default":null}}"#
            )),
            record(&format!(r#"{ID},{{"name":"p","type":{STATUS_V1}}}"#)),
            record(&format!(r#"{ID},{{"name":"p","type":{STATUS_V2}}}"#)),
            record(&format!(
                r#"{ID},{{"name":"p","type":{{"type":"array","items":"int"}}}}"#
            )),
            record(&format!(
                r#"{ID},{{"name":"p","type":{{"type":"map","values":"long"}}}}"#
            )),
            record(r#"{"name":"id","type":"bytes"}"#),
            schema(r#""int""#),
            schema(r#""long""#),
            schema(r#"["null","string"]"#),
            schema(r#""string""#),
        ];
        for (i, writer) in corpus.iter().enumerate() {
            for (j, reader) in corpus.iter().enumerate() {
                let ours = problems(writer, reader).is_empty();
                let theirs = SchemaCompatibility::can_read(writer, reader).is_ok();
                assert_eq!(
                    ours,
                    theirs,
                    "writer {i} reader {j}: {:?}",
                    problems(writer, reader)
                );
            }
        }
    }
}

//! From mapping TOML to a [`Plan`], checked against the target Avro schema.
//!
//! The compiler walks the target schema field by field (so the plan comes out in Avro order) and looks up the
//! rule for each field in a tree built from the `[fields]` table (dotted keys, nested tables and `fields`
//! sub-tables all land in the same tree). Every problem is recorded with the span of the key or value at fault
//! and compilation goes on, so one load reports all of them.

use std::collections::HashMap;

use apache_avro::schema::{RecordSchema, UnionSchema};
use apache_avro::Schema;
use serde_json::Value as Json;
use unsilo_schemas::date::CivilDate;
use unsilo_schemas::{shared_schema, shared_schemas, SharedSchema, ENVELOPE_FULL_NAME};

use super::convert::{convert, validate, Raw};
use super::datetime::{Format, Zone};
use super::error::{LoadIssue, Validator};
use super::mask::Mask;
use super::path::{ParsedPath, PathSet, RawPath, ScopeBuilder, ScopePlan};
use super::plan::{
    Arm, ArrayNode, Cases, CodeTable, Concat, Cond, ConstVal, Conv, DtSpec, EngineField, Expected,
    Fast, FieldPlan, ItemPlan, MapNode, Missing, NodePlan, Plan, Presence, RecordNode, RecordPlan,
    ScalarPlan, ScalarTarget, ScalarType, Source, Template, TemplatePart, TimeConv, TimeUnit,
    UnionPos, ValuePlan,
};
use super::sink::{null_const, scalar_const, BinSink, JsonSink, Sink};
use super::toml_doc::{self, Entry, Kind, LineIndex, Node, Span};

/// Every key a rule table may contain.
const RULE_KEYS: [&str; 21] = [
    "path",
    "const",
    "template",
    "concat",
    "separator",
    "cases",
    "else",
    "codes",
    "default",
    "datetime",
    "zone",
    "money",
    "trim",
    "blank_as_null",
    "validate",
    "each",
    "item",
    "split",
    "fields",
    "when",
    "branch",
];

/// Keys that shape one scalar value (allowed on scalar fields, and per item on arrays and maps).
const VALUE_KEYS: [&str; 15] = [
    "path",
    "const",
    "template",
    "concat",
    "separator",
    "cases",
    "else",
    "codes",
    "default",
    "datetime",
    "zone",
    "money",
    "trim",
    "blank_as_null",
    "validate",
];

/// The result of a successful compilation.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) plan: Plan,
    pub(crate) target: &'static SharedSchema,
    pub(crate) source_system: String,
    pub(crate) description: Option<String>,
}

/// Compiles mapping text; on failure, every problem found, in file order.
pub(crate) fn compile(text: &str) -> Result<Compiled, Vec<LoadIssue>> {
    let lines = LineIndex::new(text);
    let root = match toml_doc::parse(text) {
        Ok(root) => root,
        Err((span, reason)) => {
            let (line, column) = lines.line_col(span.start);
            return Err(vec![LoadIssue {
                line,
                column,
                reason,
            }]);
        }
    };
    let mut c = Compiler {
        lines: &lines,
        issues: Vec::new(),
        scopes: vec![ScopeBuilder::new()],
        names: HashMap::new(),
        schema: None,
    };
    let compiled = c.top(&root);
    if c.issues.is_empty() {
        if let Some(compiled) = compiled {
            return Ok(compiled);
        }
    }
    let mut issues: Vec<(Span, String)> = c.issues;
    issues.sort_by_key(|(span, _)| span.start);
    issues.dedup();
    Err(issues
        .into_iter()
        .map(|(span, reason)| {
            let (line, column) = lines.line_col(span.start);
            LoadIssue {
                line,
                column,
                reason,
            }
        })
        .collect())
}

struct Compiler<'t> {
    lines: &'t LineIndex<'t>,
    issues: Vec<(Span, String)>,
    /// The scopes being compiled, innermost last; the first is the raw record's.
    scopes: Vec<ScopeBuilder>,
    names: HashMap<String, &'static Schema>,
    schema: Option<&'static SharedSchema>,
}

/// The rules for one target field and the rules for its sub-fields.
#[derive(Default)]
struct Spec<'n> {
    rule: Option<&'n Entry>,
    children: Vec<(String, Span, Spec<'n>)>,
}

impl<'n> Spec<'n> {
    fn child_mut(&mut self, name: &str, span: Span) -> &mut Spec<'n> {
        let i = match self.children.iter().position(|(n, _, _)| n == name) {
            Some(i) => i,
            None => {
                self.children
                    .push((name.to_string(), span, Spec::default()));
                self.children.len() - 1
            }
        };
        &mut self.children[i].2
    }

    fn take_child(&mut self, name: &str) -> Option<(Span, Spec<'n>)> {
        let i = self.children.iter().position(|(n, _, _)| n == name)?;
        let (_, span, spec) = self.children.remove(i);
        Some((span, spec))
    }
}

/// A rule: a path shorthand or a table of rule keys.
struct Rule<'n> {
    span: Span,
    shorthand: Option<&'n Node>,
    keys: Vec<&'n Entry>,
}

impl<'n> Rule<'n> {
    fn get(&self, key: &str) -> Option<&'n Entry> {
        self.keys.iter().copied().find(|e| e.key == key)
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Where a scalar rule takes its value when it names no source.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PathKey {
    /// `path` (or the shorthand); no source is an error.
    Path,
    /// `item` (inside arrays and maps); no source means the element itself.
    Item,
}

/// Where in the target a record's fields are being compiled.
#[derive(Clone)]
struct Scope {
    /// Dotted target path of the record (empty at the root).
    path: String,
    /// Dotted path for the sensitivity tags (union branches add their short name).
    tag_path: String,
    /// The span blamed for required sub-fields without a rule.
    anchor: Span,
    /// This is the root record's envelope, whose identity fields the engine fills.
    root_envelope: bool,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The names a union branch answers to in `branch = "…"`, the first being its Avro JSON-encoding tag.
fn branch_names(schema: &Schema) -> Vec<String> {
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

fn scalar_type(schema: &Schema) -> Option<ScalarType> {
    Some(match schema {
        Schema::Null => ScalarType::Null,
        Schema::Boolean => ScalarType::Bool,
        Schema::Int => ScalarType::Int,
        Schema::Long => ScalarType::Long,
        Schema::Float => ScalarType::Float,
        Schema::Double => ScalarType::Double,
        Schema::String | Schema::Uuid => ScalarType::String,
        Schema::Bytes => ScalarType::Bytes,
        Schema::Enum(e) => ScalarType::Enum(
            e.symbols
                .iter()
                .map(|s| s.as_str().into())
                .collect::<Vec<Box<str>>>()
                .into_boxed_slice(),
        ),
        Schema::Date => ScalarType::Date,
        Schema::TimeMillis => ScalarType::TimeMillis,
        Schema::TimeMicros => ScalarType::TimeMicros,
        Schema::TimestampMillis => ScalarType::TimestampMillis,
        Schema::TimestampMicros => ScalarType::TimestampMicros,
        Schema::TimestampNanos => ScalarType::TimestampNanos,
        Schema::LocalTimestampMillis => ScalarType::LocalTimestampMillis,
        Schema::LocalTimestampMicros => ScalarType::LocalTimestampMicros,
        Schema::LocalTimestampNanos => ScalarType::LocalTimestampNanos,
        _ => return None,
    })
}

/// How a value is chosen for a union when writing a plain-JSON constant.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ConstMode {
    /// An Avro field default: the first branch (Avro specification).
    Default,
    /// A `const`: null for null, otherwise the only non-null branch.
    Const,
}

impl Compiler<'_> {
    fn err(&mut self, span: Span, reason: impl Into<String>) {
        self.issues.push((span, reason.into()));
    }

    /// A compiled path in the current scope (or the raw record's, for `$.` paths).
    fn register(&mut self, parsed: &ParsedPath) -> RawPath {
        let scope = if parsed.from_root {
            self.scopes.first_mut()
        } else {
            self.scopes.last_mut()
        };
        match scope {
            Some(scope) => scope.path(parsed, parsed.from_root),
            // Unreachable: the raw record's scope is never popped.
            None => ScopeBuilder::new().path(parsed, parsed.from_root),
        }
    }

    /// Ends the innermost scope (never the raw record's).
    fn pop_scope(&mut self) -> ScopePlan {
        let popped = if self.scopes.len() > 1 {
            self.scopes.pop()
        } else {
            None
        };
        popped.unwrap_or_default().build()
    }

    fn resolve(&self, schema: &'static Schema) -> &'static Schema {
        match schema {
            Schema::Ref { name } => self
                .names
                .get(&name.fullname(None))
                .copied()
                .unwrap_or(schema),
            other => other,
        }
    }

    fn mask_for(&self, tag_path: &str) -> Mask {
        Mask::from_tag(self.schema.and_then(|s| s.field_tag(tag_path)))
    }

    fn string_node<'n>(&mut self, entry: &'n Entry) -> Option<&'n str> {
        match entry.value.as_str() {
            Some(s) => Some(s),
            None => {
                self.err(
                    entry.value.span,
                    format!(
                        "`{}` must be a string, found {}",
                        entry.key,
                        entry.value.type_name()
                    ),
                );
                None
            }
        }
    }

    fn bool_node(&mut self, entry: &Entry) -> Option<bool> {
        match entry.value.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.err(
                    entry.value.span,
                    format!(
                        "`{}` must be true or false, found {}",
                        entry.key,
                        entry.value.type_name()
                    ),
                );
                None
            }
        }
    }

    fn top(&mut self, root: &Node) -> Option<Compiled> {
        let entries = root.entries().unwrap_or_default();
        let get = |k: &str| entries.iter().find(|e| e.key == k);
        for e in entries {
            if ![
                "target",
                "source_system",
                "description",
                "when",
                "record_id",
                "fields",
            ]
            .contains(&e.key.as_str())
            {
                self.err(
                    e.key_span,
                    format!(
                        "unknown key `{}` (a mapping has target, source_system, description, when, [record_id] and [fields])",
                        e.key
                    ),
                );
            }
        }
        let target = match get("target") {
            None => {
                self.err(
                    Span::default(),
                    "missing `target = \"<shared schema name>\"`",
                );
                None
            }
            Some(e) => match self.string_node(e) {
                Some(name) => match shared_schema(name) {
                    Some(s) => Some(s),
                    None => {
                        let known: Vec<&str> = shared_schemas().iter().map(|s| s.name()).collect();
                        self.err(
                            e.value.span,
                            format!(
                                "unknown target schema `{name}` (shared schemas: {})",
                                known.join(", ")
                            ),
                        );
                        None
                    }
                },
                None => None,
            },
        };
        let source_system = match get("source_system") {
            None => {
                self.err(
                    Span::default(),
                    "missing `source_system = \"…\"` (e.g. \"grid.hanyin\")",
                );
                None
            }
            Some(e) => match self.string_node(e) {
                Some(s) if !s.trim().is_empty() => Some(s.to_string()),
                Some(_) => {
                    self.err(e.value.span, "`source_system` must not be empty");
                    None
                }
                None => None,
            },
        };
        let description = get("description").and_then(|e| self.string_node(e).map(String::from));
        let when = get("when").and_then(|e| self.cond(&e.value));
        let string_target = ScalarTarget {
            ty: ScalarType::String,
            union: None,
            mask: Mask::Show,
        };
        let mut ids = (None, None, None);
        match get("record_id") {
            None => self.err(
                Span::default(),
                "missing [record_id] table (source_record_id = \"<raw path>\", source_version = \"<raw path>\")",
            ),
            Some(e) => match e.value.entries() {
                None => self.err(e.value.span, "`record_id` must be a table"),
                Some(keys) => {
                    for k in keys {
                        let slot = match k.key.as_str() {
                            "source_record_id" => &mut ids.0,
                            "source_version" => &mut ids.1,
                            "partition_key" => &mut ids.2,
                            other => {
                                self.err(
                                    k.key_span,
                                    format!(
                                        "unknown key `{other}` in [record_id] (source_record_id, source_version, partition_key)"
                                    ),
                                );
                                continue;
                            }
                        };
                        let label = format!("record_id.{}", k.key);
                        if let Some(rule) = self.rule(k, &label) {
                            self.only(&rule, &VALUE_KEYS, "a record id part", &label);
                            *slot = self.value_plan(&rule, string_target.clone(), &label, PathKey::Path);
                        }
                    }
                    for (slot, name) in [(&ids.0, "source_record_id"), (&ids.1, "source_version")] {
                        if slot.is_none() && !keys.iter().any(|k| k.key == name) {
                            self.err(e.key_span, format!("[record_id] needs `{name} = \"<raw path>\"`"));
                        }
                    }
                }
            },
        }
        let mut root_plan = None;
        if let Some(schema) = target {
            self.schema = Some(schema);
            unsilo_schemas::avro::collect_names(schema.avro(), &mut self.names);
            let fields = get("fields");
            let mut spec = Spec::default();
            let anchor = match fields {
                Some(f) => {
                    match f.value.entries() {
                        Some(entries) => self.collect(entries, &mut spec),
                        None => self.err(
                            f.value.span,
                            "`fields` must be a table of target field rules",
                        ),
                    }
                    f.key_span
                }
                None => get("target").map_or(Span::default(), |e| e.key_span),
            };
            if let Schema::Record(record) = schema.avro() {
                let scope = Scope {
                    path: String::new(),
                    tag_path: String::new(),
                    anchor,
                    root_envelope: false,
                };
                root_plan = Some(self.record_plan(record, spec, &scope));
            }
        }
        let root_plan = root_plan?;
        let root_scope = self.scopes.drain(..).next().unwrap_or_default().build();
        Some(Compiled {
            plan: Plan {
                max_slots: root_scope.len() + slots_needed(&root_plan),
                root_scope,
                root: root_plan,
                when,
                source_record_id: ids.0?,
                source_version: ids.1?,
                partition_key: ids.2,
            },
            target: target?,
            source_system: source_system?,
            description,
        })
    }

    /// Adds the entries of a fields table (and nested tables, and `fields` sub-tables) to the spec tree.
    fn collect<'n>(&mut self, entries: &'n [Entry], into: &mut Spec<'n>) {
        for e in entries {
            if e.key.split('.').any(|s| s.trim().is_empty()) {
                self.err(
                    e.key_span,
                    format!("target field path `{}` has an empty part", e.key),
                );
                continue;
            }
            let mut node: &mut Spec<'n> = into;
            for seg in e.key.split('.') {
                node = node.child_mut(seg.trim(), e.key_span);
            }
            match &e.value.kind {
                Kind::Table(inner)
                    if !inner.is_empty()
                        && !inner.iter().any(|x| RULE_KEYS.contains(&x.key.as_str())) =>
                {
                    self.collect(inner, node);
                }
                kind => {
                    if let Some(prev) = node.rule {
                        let first_line = self.lines.line_col(prev.key_span.start).0;
                        self.err(
                            e.key_span,
                            format!(
                                "target field `{}` has a second rule (the first is on line {first_line}); give each field one rule",
                                e.key
                            ),
                        );
                        continue;
                    }
                    node.rule = Some(e);
                    if let Kind::Table(inner) = kind {
                        if let Some(f) = inner.iter().find(|x| x.key == "fields") {
                            match f.value.entries() {
                                Some(sub) => self.collect(sub, node),
                                None => self.err(
                                    f.value.span,
                                    "`fields` must be a table of sub-field rules",
                                ),
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reads a rule entry (shorthand path or table), reporting unknown keys.
    fn rule<'n>(&mut self, entry: &'n Entry, path: &str) -> Option<Rule<'n>> {
        match &entry.value.kind {
            Kind::Str(_) => Some(Rule {
                span: entry.key_span,
                shorthand: Some(&entry.value),
                keys: Vec::new(),
            }),
            Kind::Table(keys) => {
                let mut rule = Rule {
                    span: entry.key_span,
                    shorthand: None,
                    keys: Vec::new(),
                };
                for k in keys {
                    if RULE_KEYS.contains(&k.key.as_str()) {
                        rule.keys.push(k);
                    } else {
                        self.err(
                            k.key_span,
                            format!(
                                "unknown key `{}` in the rule for `{path}` (rule keys: {})",
                                k.key,
                                RULE_KEYS.join(", ")
                            ),
                        );
                    }
                }
                Some(rule)
            }
            _ => {
                self.err(
                    entry.value.span,
                    format!(
                        "the rule for `{path}` must be a raw path (a string) or a table, found {}; for a constant write {{ const = … }}",
                        entry.value.type_name()
                    ),
                );
                None
            }
        }
    }

    /// Reports keys of `rule` outside `allowed`.
    fn only(&mut self, rule: &Rule<'_>, allowed: &[&str], what: &str, path: &str) {
        for k in &rule.keys {
            if !allowed.contains(&k.key.as_str()) {
                self.err(
                    k.key_span,
                    format!("`{}` does not apply to {what} `{path}`", k.key),
                );
            }
        }
    }

    fn record_plan(
        &mut self,
        record: &'static RecordSchema,
        mut spec: Spec<'_>,
        scope: &Scope,
    ) -> RecordPlan {
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let path = join(&scope.path, &field.name);
            let tag_path = join(&scope.tag_path, &field.name);
            let child = spec.take_child(&field.name);
            if scope.root_envelope {
                let engine = match field.name.as_str() {
                    "record_id" => Some(EngineField::RecordId),
                    "source_system" => Some(EngineField::SourceSystem),
                    "source_record_id" => Some(EngineField::SourceRecordId),
                    "source_version" => Some(EngineField::SourceVersion),
                    "ingest_time" if child.is_none() => Some(EngineField::IngestTime),
                    _ => None,
                };
                if let Some(engine) = engine {
                    if let Some((span, _)) = child {
                        self.err(
                            span,
                            format!(
                                "`{path}` is filled by the engine (from source_system and [record_id]); remove this rule"
                            ),
                        );
                    }
                    fields.push(FieldPlan {
                        name: field.name.as_str().into(),
                        node: NodePlan::Engine(engine),
                    });
                    continue;
                }
            }
            let root_envelope = scope.path.is_empty()
                && field.name == "envelope"
                && matches!(self.resolve(&field.schema), Schema::Record(r) if r.name.fullname(None) == ENVELOPE_FULL_NAME);
            let node = match child {
                None => self.unmapped(
                    &field.schema,
                    field.default.as_ref(),
                    &path,
                    &tag_path,
                    scope,
                    root_envelope,
                ),
                Some((span, spec)) => self.field_node(
                    &field.schema,
                    field.default.as_ref(),
                    spec,
                    span,
                    &path,
                    &tag_path,
                    root_envelope,
                ),
            };
            if let Some(node) = node {
                fields.push(FieldPlan {
                    name: field.name.as_str().into(),
                    node,
                });
            }
        }
        for (name, span, _) in &spec.children {
            let known: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
            let path = join(&scope.path, name);
            self.err(
                *span,
                format!(
                    "unknown target field `{path}`: record {} has no field `{name}` (its fields: {})",
                    record.name.fullname(None),
                    known.join(", ")
                ),
            );
        }
        RecordPlan {
            fields: fields.into_boxed_slice(),
        }
    }

    /// A field without a rule: its schema default, null, or (for a record) its sub-fields' defaults.
    fn unmapped(
        &mut self,
        schema: &'static Schema,
        default: Option<&Json>,
        path: &str,
        tag_path: &str,
        scope: &Scope,
        root_envelope: bool,
    ) -> Option<NodePlan> {
        if let Some(d) = default {
            return match self.plain_const(d, schema, ConstMode::Default) {
                Ok(c) => Some(NodePlan::Const(c)),
                Err(e) => {
                    self.err(
                        scope.anchor,
                        format!("the schema default of `{path}` cannot be encoded: {e}"),
                    );
                    None
                }
            };
        }
        let resolved = self.resolve(schema);
        if let Schema::Union(u) = resolved {
            if let Some(i) = u.variants().iter().position(|v| matches!(v, Schema::Null)) {
                return Some(NodePlan::Const(null_const(&UnionPos {
                    index: i as u32,
                    tag: None,
                })));
            }
        }
        if let Schema::Record(record) = resolved {
            let inner = Scope {
                path: path.to_string(),
                tag_path: tag_path.to_string(),
                anchor: scope.anchor,
                root_envelope,
            };
            return Some(NodePlan::Record(Box::new(RecordNode {
                union: None,
                base: None,
                scope: None,
                presence: Presence::Always,
                absent: None,
                plan: self.record_plan(record, Spec::default(), &inner),
            })));
        }
        self.err(
            scope.anchor,
            format!(
                "required field `{path}` ({}) has no rule and no default in the schema",
                describe_schema(resolved)
            ),
        );
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn field_node(
        &mut self,
        schema: &'static Schema,
        default: Option<&Json>,
        mut spec: Spec<'_>,
        span: Span,
        path: &str,
        tag_path: &str,
        root_envelope: bool,
    ) -> Option<NodePlan> {
        let rule = match spec.rule {
            Some(entry) => Some(self.rule(entry, path)?),
            None => None,
        };
        let resolved = self.resolve(schema);
        let mut null_pos = None;
        let mut value_pos = None;
        let mut tag_path = tag_path.to_string();
        let mut branch_schema = resolved;
        if let Schema::Union(u) = resolved {
            let (np, vp, b) = self.union_branch(u, rule.as_ref(), span, path)?;
            null_pos = np;
            if let Some(vp) = vp {
                if vp.tag.is_some() {
                    if let Some(short) = branch_names(b).get(1).or(branch_names(b).first()).cloned()
                    {
                        tag_path = join(&tag_path, &short);
                    }
                }
                value_pos = Some(vp);
            }
            branch_schema = self.resolve(b);
        } else if let Some(r) = &rule {
            if let Some(b) = r.get("branch") {
                self.err(
                    b.key_span,
                    format!("`branch` only applies to union fields; `{path}` is not one"),
                );
            }
        }
        let missing = match default {
            Some(d) => match self.plain_const(d, schema, ConstMode::Default) {
                Ok(c) => Missing::Const(c),
                Err(e) => {
                    self.err(
                        span,
                        format!("the schema default of `{path}` cannot be encoded: {e}"),
                    );
                    Missing::Required
                }
            },
            None => match &null_pos {
                Some(p) => Missing::Const(null_const(p)),
                None => Missing::Required,
            },
        };
        let is_scalar = scalar_type(branch_schema).is_some();
        // `const` on a record, array or map: the whole value as plain JSON.
        if let (Some(r), false) = (&rule, is_scalar) {
            if let Some(c) = r.get("const") {
                self.only(r, &["const", "branch"], "a constant", path);
                return match self.plain_const(&c.value.to_json(), schema, ConstMode::Const) {
                    Ok(v) => Some(NodePlan::Const(v)),
                    Err(e) => {
                        self.err(c.value.span, format!("`const` does not fit `{path}`: {e}"));
                        None
                    }
                };
            }
        }
        match branch_schema {
            Schema::Record(record) => {
                let scope = Scope {
                    path: path.to_string(),
                    tag_path,
                    anchor: span,
                    root_envelope,
                };
                self.record_node(record, rule, spec, value_pos, null_pos, &scope)
                    .map(|n| NodePlan::Record(Box::new(n)))
            }
            Schema::Array(array) => {
                let Some(rule) = rule else {
                    self.err(
                        span,
                        format!(
                            "array field `{path}` needs a rule with `each = \"<raw array path>\"`"
                        ),
                    );
                    return None;
                };
                self.array_node(
                    &array.items,
                    rule,
                    spec,
                    value_pos,
                    missing,
                    path,
                    &tag_path,
                )
                .map(|n| NodePlan::Array(Box::new(n)))
            }
            Schema::Map(map) => {
                let Some(rule) = rule else {
                    self.err(
                        span,
                        format!(
                            "map field `{path}` needs a rule with `path = \"<raw object path>\"`"
                        ),
                    );
                    return None;
                };
                self.children_not_allowed(&mut spec, path, "a map");
                self.map_node(&map.types, rule, value_pos, missing, path, &tag_path)
                    .map(|n| NodePlan::Map(Box::new(n)))
            }
            other => {
                let Some(ty) = scalar_type(other) else {
                    self.err(
                        span,
                        format!(
                            "`{path}` has Avro type {}, which mappings do not support",
                            describe_schema(other)
                        ),
                    );
                    return None;
                };
                let had_children = self.children_not_allowed(
                    &mut spec,
                    path,
                    &format!("a {} field", ty.describe()),
                );
                let Some(rule) = rule else {
                    if !had_children {
                        self.err(span, format!("`{path}` has no rule"));
                    }
                    return None;
                };
                let mut allowed = VALUE_KEYS.to_vec();
                allowed.push("branch");
                self.only(
                    &rule,
                    &allowed,
                    &format!("the {} field", ty.describe()),
                    path,
                );
                let target = ScalarTarget {
                    ty,
                    union: value_pos,
                    mask: self.mask_for(&tag_path),
                };
                let value = self.value_plan(&rule, target, path, PathKey::Path)?;
                Some(NodePlan::Scalar(Box::new(ScalarPlan { value, missing })))
            }
        }
    }

    /// Reports sub-field rules under a field that has no sub-fields; true if there were any.
    fn children_not_allowed(&mut self, spec: &mut Spec<'_>, path: &str, what: &str) -> bool {
        let children = std::mem::take(&mut spec.children);
        let any = !children.is_empty();
        for (name, span, _) in children {
            self.err(
                span,
                format!(
                    "unknown key `{name}` under `{path}`: `{path}` is {what}, not a record, and `{name}` is not a rule key (rule keys: {})",
                    RULE_KEYS.join(", ")
                ),
            );
        }
        any
    }

    /// The null position and the value position (and branch schema) of a union field.
    #[allow(clippy::type_complexity)]
    fn union_branch(
        &mut self,
        u: &'static UnionSchema,
        rule: Option<&Rule<'_>>,
        span: Span,
        path: &str,
    ) -> Option<(Option<UnionPos>, Option<UnionPos>, &'static Schema)> {
        let variants = u.variants();
        let null_pos = variants
            .iter()
            .position(|v| matches!(v, Schema::Null))
            .map(|i| UnionPos {
                index: i as u32,
                tag: None,
            });
        let non_null: Vec<(usize, &'static Schema)> = variants
            .iter()
            .enumerate()
            .filter(|(_, v)| !matches!(v, Schema::Null))
            .collect();
        let multi = non_null.len() > 1;
        let choice = match (rule.and_then(|r| r.get("branch")), non_null.as_slice()) {
            (None, [only]) => Some(*only),
            (None, []) => None,
            (None, _) => {
                let names: Vec<String> = non_null
                    .iter()
                    .filter_map(|(_, v)| branch_names(v).last().cloned())
                    .collect();
                self.err(
                    span,
                    format!(
                        "`{path}` is a union of {}; say which with `branch = \"…\"`",
                        names.join(", ")
                    ),
                );
                return None;
            }
            (Some(b), _) => {
                let name = self.string_node(b)?;
                match non_null
                    .iter()
                    .find(|(_, v)| branch_names(v).iter().any(|n| n == name))
                {
                    Some(found) => Some(*found),
                    None => {
                        let names: Vec<String> = non_null
                            .iter()
                            .map(|(_, v)| branch_names(v).join(" / "))
                            .collect();
                        self.err(
                            b.value.span,
                            format!(
                                "`{path}` has no union branch `{name}` (branches: {})",
                                names.join(", ")
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        match choice {
            None => Some((null_pos, None, variants.first()?)),
            Some((i, schema)) => {
                let tag = multi.then(|| branch_names(self.resolve(schema))[0].as_str().into());
                Some((
                    null_pos,
                    Some(UnionPos {
                        index: i as u32,
                        tag,
                    }),
                    schema,
                ))
            }
        }
    }

    fn record_node(
        &mut self,
        record: &'static RecordSchema,
        rule: Option<Rule<'_>>,
        spec: Spec<'_>,
        union: Option<UnionPos>,
        null_pos: Option<UnionPos>,
        scope: &Scope,
    ) -> Option<RecordNode> {
        let path = &scope.path;
        let mut base = None;
        let mut when = None;
        if let Some(rule) = &rule {
            self.only(
                rule,
                &["path", "when", "fields", "branch"],
                "the record",
                path,
            );
            if let Some(node) = rule.shorthand.or(rule.get("path").map(|e| &e.value)) {
                base = self.path_set(node, path);
            }
            if let Some(w) = rule.get("when") {
                if null_pos.is_none() {
                    self.err(
                        w.key_span,
                        format!("`when` only applies to an optional record; `{path}` is required"),
                    );
                } else {
                    when = self.cond(&w.value);
                }
            }
        }
        // Sub-field paths of a record with its own `path` are read against that object: a scope of their own.
        if base.is_some() {
            self.scopes.push(ScopeBuilder::new());
        }
        let plan = self.record_plan(record, spec, scope);
        let record_scope = base.is_some().then(|| self.pop_scope());
        let presence = if null_pos.is_none() {
            Presence::Always
        } else if let Some(w) = when {
            Presence::When(w)
        } else if base.is_some() {
            Presence::Base
        } else {
            let mut probes = Vec::new();
            probe_paths(&plan, &mut probes);
            if probes.is_empty() {
                Presence::Always
            } else {
                Presence::Probe(probes.into_boxed_slice())
            }
        };
        Some(RecordNode {
            union,
            base,
            scope: record_scope,
            presence,
            absent: null_pos.as_ref().map(null_const),
            plan,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn array_node(
        &mut self,
        items: &'static Schema,
        rule: Rule<'_>,
        spec: Spec<'_>,
        union: Option<UnionPos>,
        missing: Missing,
        path: &str,
        tag_path: &str,
    ) -> Option<ArrayNode> {
        let source_node = match (rule.shorthand, rule.get("each"), rule.get("path")) {
            (Some(s), None, None) => Some(s),
            (None, Some(e), None) | (None, None, Some(e)) => Some(&e.value),
            (None, Some(_), Some(p)) => {
                self.err(
                    p.key_span,
                    format!(
                        "array field `{path}` has both `each` and `path`; they are the same thing"
                    ),
                );
                None
            }
            _ => {
                self.err(
                    rule.span,
                    format!("array field `{path}` needs `each = \"<raw array path>\"`"),
                );
                None
            }
        };
        let source = source_node.and_then(|n| self.path_set(n, path));
        let split = match rule.get("split") {
            Some(e) => match self.string_node(e) {
                Some("") => {
                    self.err(e.value.span, "`split` needs a non-empty separator");
                    None
                }
                Some(s) => Some(Box::<str>::from(s)),
                None => None,
            },
            None => None,
        };
        // Paths inside `each` are read against each element: a scope of their own.
        self.scopes.push(ScopeBuilder::new());
        let item = self.array_item(items, &rule, spec, path, tag_path);
        let item_scope = self.pop_scope();
        let item = item?;
        Some(ArrayNode {
            union,
            source: source?,
            scope: item_scope,
            split,
            item,
            missing,
        })
    }

    /// The items of an array: a record plan or a scalar rule, in the element scope.
    fn array_item(
        &mut self,
        items: &'static Schema,
        rule: &Rule<'_>,
        spec: Spec<'_>,
        path: &str,
        tag_path: &str,
    ) -> Option<ItemPlan> {
        let item_schema = self.resolve(items);
        let (item_null, item_value, item_branch) = match item_schema {
            Schema::Union(u) => {
                let (np, vp, b) = self.union_branch(u, None, rule.span, path)?;
                (np, vp, self.resolve(b))
            }
            other => (None, None, other),
        };
        Some(match item_branch {
            Schema::Record(record) => {
                let mut allowed = vec!["each", "path", "fields", "branch"];
                if let Some(s) = rule.get("split") {
                    self.err(
                        s.key_span,
                        format!("`split` makes text items; the items of `{path}` are records"),
                    );
                    allowed.push("split");
                }
                self.only(rule, &allowed, "the array of records", path);
                let scope = Scope {
                    path: path.to_string(),
                    tag_path: tag_path.to_string(),
                    anchor: rule.span,
                    root_envelope: false,
                };
                let plan = self.record_plan(record, spec, &scope);
                ItemPlan::Record(RecordNode {
                    union: item_value,
                    base: None,
                    scope: None,
                    presence: if item_null.is_some() {
                        Presence::Base
                    } else {
                        Presence::Always
                    },
                    absent: item_null.as_ref().map(null_const),
                    plan,
                })
            }
            other => {
                let Some(ty) = scalar_type(other) else {
                    self.err(rule.span, format!("the items of `{path}` have Avro type {}, which mappings do not support", describe_schema(other)));
                    return None;
                };
                let mut spec = spec;
                self.children_not_allowed(
                    &mut spec,
                    path,
                    &format!("an array of {}", ty.describe()),
                );
                let mut allowed: Vec<&str> = VALUE_KEYS
                    .iter()
                    .copied()
                    .filter(|k| *k != "path")
                    .collect();
                allowed.extend(["each", "path", "item", "split", "branch"]);
                self.only(rule, &allowed, "the array", path);
                let target = ScalarTarget {
                    ty,
                    union: item_value,
                    mask: self.mask_for(tag_path),
                };
                let value = self.value_plan(rule, target, path, PathKey::Item)?;
                let item_missing = match &item_null {
                    Some(p) => Missing::Const(null_const(p)),
                    None => Missing::Required,
                };
                ItemPlan::Scalar(ScalarPlan {
                    value,
                    missing: item_missing,
                })
            }
        })
    }

    fn map_node(
        &mut self,
        values: &'static Schema,
        rule: Rule<'_>,
        union: Option<UnionPos>,
        missing: Missing,
        path: &str,
        tag_path: &str,
    ) -> Option<MapNode> {
        let source_node = rule.shorthand.or(rule.get("path").map(|e| &e.value));
        let Some(source_node) = source_node else {
            self.err(
                rule.span,
                format!("map field `{path}` needs `path = \"<raw object path>\"`"),
            );
            return None;
        };
        let source = self.path_set(source_node, path);
        let value_schema = self.resolve(values);
        let (value_null, value_pos, branch) = match value_schema {
            Schema::Union(u) => {
                let (np, vp, b) = self.union_branch(u, None, rule.span, path)?;
                (np, vp, self.resolve(b))
            }
            other => (None, None, other),
        };
        let Some(ty) = scalar_type(branch) else {
            self.err(
                rule.span,
                format!(
                    "the values of map `{path}` have Avro type {}, which mappings do not support",
                    describe_schema(branch)
                ),
            );
            return None;
        };
        let mut allowed: Vec<&str> = VALUE_KEYS
            .iter()
            .copied()
            .filter(|k| *k != "path")
            .collect();
        allowed.extend(["path", "item", "branch"]);
        self.only(&rule, &allowed, "the map", path);
        let target = ScalarTarget {
            ty,
            union: value_pos,
            mask: self.mask_for(tag_path),
        };
        self.scopes.push(ScopeBuilder::new());
        let value = self.value_plan(&rule, target, path, PathKey::Item);
        let value_scope = self.pop_scope();
        let value = value?;
        Some(MapNode {
            union,
            source: source?,
            scope: value_scope,
            value: ScalarPlan {
                value,
                missing: match &value_null {
                    Some(p) => Missing::Const(null_const(p)),
                    None => Missing::Required,
                },
            },
            missing,
        })
    }

    /// A path or a list of paths (the first present one wins).
    fn path_set(&mut self, node: &Node, path: &str) -> Option<PathSet> {
        let texts: Vec<(&str, Span)> = match &node.kind {
            Kind::Str(s) => vec![(s.as_str(), node.span)],
            Kind::Array(items) if !items.is_empty() => {
                let mut v = Vec::new();
                for i in items {
                    match i.as_str() {
                        Some(s) => v.push((s, i.span)),
                        None => {
                            self.err(
                                i.span,
                                format!(
                                    "raw paths for `{path}` must be strings, found {}",
                                    i.type_name()
                                ),
                            );
                            return None;
                        }
                    }
                }
                v
            }
            _ => {
                self.err(
                    node.span,
                    format!("the raw path for `{path}` must be a string or a non-empty array of strings, found {}", node.type_name()),
                );
                return None;
            }
        };
        let mut paths = Vec::new();
        for (text, span) in texts {
            match ParsedPath::parse(text) {
                Ok(p) => paths.push(self.register(&p)),
                Err(e) => {
                    self.err(span, format!("bad raw path for `{path}`: {e}"));
                    return None;
                }
            }
        }
        Some(PathSet::new(paths))
    }

    fn conv(&mut self, rule: &Rule<'_>, ty: &ScalarType, path: &str) -> Option<Conv> {
        let datetime = rule.get("datetime");
        let zone_entry = rule.get("zone");
        let money_entry = rule.get("money");
        let mut ok = true;
        let formats = match datetime {
            None => None,
            Some(e) => {
                let texts: Vec<(&str, Span)> = match &e.value.kind {
                    Kind::Str(s) => vec![(s.as_str(), e.value.span)],
                    Kind::Array(items) if !items.is_empty() => items
                        .iter()
                        .filter_map(|i| i.as_str().map(|s| (s, i.span)))
                        .collect(),
                    _ => {
                        self.err(
                            e.value.span,
                            "`datetime` must be a format or a list of formats",
                        );
                        return None;
                    }
                };
                let mut formats = Vec::new();
                for (text, span) in texts {
                    match Format::parse(text) {
                        Ok(f) => formats.push(f),
                        Err(reason) => {
                            self.err(span, format!("bad date format for `{path}`: {reason}"));
                            ok = false;
                        }
                    }
                }
                Some(formats.into_boxed_slice())
            }
        };
        let zone = match zone_entry {
            None => Zone::default(),
            Some(e) => match self.string_node(e).map(Zone::parse) {
                Some(Ok(z)) => z,
                Some(Err(reason)) => {
                    self.err(e.value.span, reason);
                    ok = false;
                    Zone::default()
                }
                None => return None,
            },
        };
        let money = match money_entry {
            None => None,
            Some(e) => match self.string_node(e) {
                Some("yuan") => Some(2),
                Some("jiao") => Some(1),
                Some("fen") => Some(0),
                Some("wan_yuan") => Some(6),
                Some(other) => {
                    self.err(e.value.span, format!("unknown money unit `{other}` (yuan, jiao, fen, wan_yuan: the unit the source uses; the target is in fen)"));
                    return None;
                }
                None => return None,
            },
        };
        let is_time = matches!(
            ty,
            ScalarType::Date
                | ScalarType::TimestampMillis
                | ScalarType::TimestampMicros
                | ScalarType::TimestampNanos
                | ScalarType::LocalTimestampMillis
                | ScalarType::LocalTimestampMicros
                | ScalarType::LocalTimestampNanos
                | ScalarType::TimeMillis
                | ScalarType::TimeMicros
        );
        if let Some(e) = money_entry {
            if !matches!(ty, ScalarType::Int | ScalarType::Long) {
                self.err(
                    e.key_span,
                    format!(
                        "`money` needs an int or long field (amounts in fen); `{path}` is {}",
                        ty.describe()
                    ),
                );
                return None;
            }
            if let Some(d) = datetime {
                self.err(
                    d.key_span,
                    format!("`{path}` has both `money` and `datetime`"),
                );
                return None;
            }
        }
        if let (Some(z), None, false) = (zone_entry, datetime, is_time) {
            self.err(z.key_span, format!("`zone` only applies with `datetime` or to date and timestamp fields; `{path}` is {}", ty.describe()));
            return None;
        }
        let spec = DtSpec { formats, zone };
        let time = |unit| {
            Conv::Time(TimeConv {
                unit,
                spec: spec.clone(),
            })
        };
        let conv = match ty {
            ScalarType::String if datetime.is_some() => Conv::StrDatetime(spec.clone()),
            ScalarType::String => Conv::Str,
            ScalarType::Long if datetime.is_some() => time(TimeUnit::Millis),
            ScalarType::Long => Conv::Long { money },
            ScalarType::Int if datetime.is_none() => Conv::Int { money },
            ScalarType::Date => time(TimeUnit::Days),
            ScalarType::TimestampMillis => time(TimeUnit::Millis),
            ScalarType::TimestampMicros => time(TimeUnit::Micros),
            ScalarType::TimestampNanos => time(TimeUnit::Nanos),
            ScalarType::LocalTimestampMillis => time(TimeUnit::LocalMillis),
            ScalarType::LocalTimestampMicros => time(TimeUnit::LocalMicros),
            ScalarType::LocalTimestampNanos => time(TimeUnit::LocalNanos),
            ScalarType::TimeMillis | ScalarType::TimeMicros if datetime.is_some() => {
                self.datetime_misfit(datetime, ty, path);
                return None;
            }
            ScalarType::TimeMillis => time(TimeUnit::TimeOfDayMillis),
            ScalarType::TimeMicros => time(TimeUnit::TimeOfDayMicros),
            _ if datetime.is_some() => {
                self.datetime_misfit(datetime, ty, path);
                return None;
            }
            ScalarType::Int => Conv::Int { money },
            ScalarType::Float => Conv::Float,
            ScalarType::Double => Conv::Double,
            ScalarType::Bool => Conv::Bool,
            ScalarType::Enum(_) => Conv::Enum,
            ScalarType::Bytes => Conv::Bytes,
            ScalarType::Null => Conv::Null,
        };
        ok.then_some(conv)
    }

    fn datetime_misfit(&mut self, datetime: Option<&Entry>, ty: &ScalarType, path: &str) {
        if let Some(d) = datetime {
            self.err(
                d.key_span,
                format!(
                    "`datetime` cannot fill `{path}`, a {} field (dates and times go into date, timestamp, long or string fields)",
                    ty.describe()
                ),
            );
        }
    }

    /// A rule for one scalar value.
    fn value_plan(
        &mut self,
        rule: &Rule<'_>,
        mut target: ScalarTarget,
        path: &str,
        key: PathKey,
    ) -> Option<ValuePlan> {
        let validator = match rule.get("validate") {
            None => None,
            Some(e) => {
                let name = self.string_node(e)?;
                match Validator::from_name(name) {
                    Some(v) if target.ty == ScalarType::String => Some(v),
                    Some(v) => {
                        self.err(
                            e.key_span,
                            format!(
                                "validator `{v}` checks text; `{path}` is {}",
                                target.ty.describe()
                            ),
                        );
                        return None;
                    }
                    None => {
                        self.err(
                            e.value.span,
                            format!(
                                "unknown validator `{name}` (validators: {})",
                                Validator::ALL.map(Validator::as_str).join(", ")
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        target.mask = target.mask.with_validator(validator);
        let conv = self.conv(rule, &target.ty, path);
        let trim = match rule.get("trim") {
            Some(e) => self.bool_node(e).unwrap_or(false),
            None => false,
        };
        let blank_as_null = match rule.get("blank_as_null") {
            Some(e) => self.bool_node(e).unwrap_or(true),
            None => !matches!(target.ty, ScalarType::String | ScalarType::Bytes),
        };
        let path_node = match key {
            PathKey::Path => rule.shorthand.or(rule.get("path").map(|e| &e.value)),
            PathKey::Item => rule.get("item").map(|e| &e.value),
        };
        let path_key_name = if key == PathKey::Path { "path" } else { "item" };
        let sources: Vec<&str> = [
            (path_key_name, path_node.is_some()),
            ("const", rule.has("const")),
            ("template", rule.has("template")),
            ("concat", rule.has("concat")),
            ("cases", rule.has("cases")),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| *name)
        .collect();
        if sources.len() > 1 {
            self.err(
                rule.span,
                format!(
                    "the rule for `{path}` has both `{}` and `{}`; a rule takes one of {path_key_name}, const, template, concat, cases",
                    sources[0], sources[1]
                ),
            );
            return None;
        }
        if rule.has("separator") && !rule.has("concat") {
            if let Some(e) = rule.get("separator") {
                self.err(e.key_span, "`separator` only applies with `concat`");
            }
        }
        if rule.has("else") && !rule.has("cases") {
            if let Some(e) = rule.get("else") {
                self.err(e.key_span, "`else` only applies with `cases`");
            }
        }
        let conv = conv?;
        let source = if let Some(node) = path_node {
            Source::Path(self.path_set(node, path)?)
        } else if let Some(c) = rule.get("const") {
            for k in ["trim", "blank_as_null", "codes", "default"] {
                if let Some(e) = rule.get(k) {
                    self.err(e.key_span, format!("`const` cannot be combined with `{k}`"));
                }
            }
            Source::Const(self.make_const(&c.value, &conv, &target, validator, path, "`const`")?)
        } else if let Some(t) = rule.get("template") {
            let text = self.string_node(t)?;
            Source::Template(self.template(text, t.value.span, path)?)
        } else if let Some(c) = rule.get("concat") {
            let parts = match &c.value.kind {
                Kind::Array(items) if !items.is_empty() => {
                    let mut parts = Vec::new();
                    for i in items {
                        parts.push(self.path_set(i, path)?);
                    }
                    parts
                }
                _ => {
                    self.err(
                        c.value.span,
                        "`concat` must be a non-empty array of raw paths",
                    );
                    return None;
                }
            };
            let separator = match rule.get("separator") {
                Some(e) => self.string_node(e)?.into(),
                None => "".into(),
            };
            Source::Concat(Concat {
                parts: parts.into_boxed_slice(),
                separator,
            })
        } else if let Some(c) = rule.get("cases") {
            if let Some(e) = rule.get("codes") {
                self.err(
                    e.key_span,
                    "`codes` cannot be combined with `cases`; put the code table in a `then` rule",
                );
            }
            Source::Cases(Box::new(self.cases(
                c,
                rule.get("else"),
                &conv,
                &target,
                validator,
                path,
            )?))
        } else if key == PathKey::Item {
            Source::Element
        } else {
            self.err(
                rule.span,
                format!("the rule for `{path}` has no source: give path, const, template, concat or cases"),
            );
            return None;
        };
        let codes = match rule.get("codes") {
            None => None,
            Some(e) => Some(self.codes(e, &conv, &target, validator, path)?),
        };
        let default = match rule.get("default") {
            None => None,
            Some(e) => {
                Some(self.make_const(&e.value, &conv, &target, validator, path, "`default`")?)
            }
        };
        let single = match &source {
            Source::Path(p) => p.single().cloned(),
            _ => None,
        };
        let fast = match (single, &codes) {
            (Some(p), Some(_)) => Fast::Codes(p),
            (Some(p), None)
                if matches!(conv, Conv::Str) && !trim && !blank_as_null && validator.is_none() =>
            {
                Fast::Str(p)
            }
            _ => Fast::General,
        };
        Some(ValuePlan {
            fast,
            source,
            trim,
            blank_as_null,
            codes,
            default,
            conv,
            validate: validator,
            target,
        })
    }

    /// A constant (const, default, code-table value, cases arm) converted, validated and encoded at load.
    fn make_const(
        &mut self,
        node: &Node,
        conv: &Conv,
        target: &ScalarTarget,
        validator: Option<Validator>,
        path: &str,
        what: &str,
    ) -> Option<ConstVal> {
        let json = node.to_json();
        if json.is_array() || json.is_object() {
            self.err(
                node.span,
                format!(
                    "{what} for `{path}` must be a single value, found {}",
                    node.type_name()
                ),
            );
            return None;
        }
        let converted = convert(Raw::Json(&json), conv, target).and_then(|v| match validator {
            Some(val) => validate(v, val, target.mask),
            None => Ok(v),
        });
        match converted {
            Ok(v) => Some(scalar_const(target, &v)),
            Err(fail) => {
                self.err(
                    node.span,
                    format!(
                        "{what} does not fit `{path}` ({}): {}",
                        target.ty.describe(),
                        fail.message
                    ),
                );
                None
            }
        }
    }

    fn codes(
        &mut self,
        entry: &Entry,
        conv: &Conv,
        target: &ScalarTarget,
        validator: Option<Validator>,
        path: &str,
    ) -> Option<CodeTable> {
        let Some(entries) = entry.value.entries() else {
            self.err(
                entry.value.span,
                "`codes` must be a table of source code = target value",
            );
            return None;
        };
        if entries.is_empty() {
            self.err(entry.value.span, "`codes` is empty");
            return None;
        }
        let mut table = Vec::new();
        let mut ok = true;
        for e in entries {
            match self.make_const(
                &e.value,
                conv,
                target,
                validator,
                path,
                &format!("code table value for {:?}", e.key),
            ) {
                Some(c) => table.push((e.key.trim().into(), c)),
                None => ok = false,
            }
        }
        ok.then(|| CodeTable::new(table))
    }

    fn arm(
        &mut self,
        node: &Node,
        conv: &Conv,
        target: &ScalarTarget,
        validator: Option<Validator>,
        path: &str,
    ) -> Option<Arm> {
        match &node.kind {
            Kind::Table(keys) => {
                let entry = Entry {
                    key: "then".into(),
                    key_span: node.span,
                    value: Node {
                        span: node.span,
                        kind: Kind::Table(keys.clone()),
                    },
                };
                let rule = self.rule(&entry, path)?;
                let mut allowed = VALUE_KEYS.to_vec();
                allowed.retain(|k| *k != "validate");
                self.only(&rule, &allowed, "a cases arm of", path);
                let mut plan = self.value_plan(&rule, target.clone(), path, PathKey::Path)?;
                if plan.validate.is_none() {
                    plan.validate = validator;
                }
                Some(Arm::Plan(Box::new(plan)))
            }
            _ => Some(Arm::Const(self.make_const(
                node,
                conv,
                target,
                validator,
                path,
                "a `then`/`else` value",
            )?)),
        }
    }

    fn cases(
        &mut self,
        entry: &Entry,
        otherwise: Option<&Entry>,
        conv: &Conv,
        target: &ScalarTarget,
        validator: Option<Validator>,
        path: &str,
    ) -> Option<Cases> {
        let Kind::Array(items) = &entry.value.kind else {
            self.err(
                entry.value.span,
                "`cases` must be an array of { if = <condition>, then = <value> }",
            );
            return None;
        };
        let mut arms = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(keys) = item.entries() else {
                self.err(
                    item.span,
                    "each case must be a table { if = <condition>, then = <value> }",
                );
                ok = false;
                continue;
            };
            let mut cond = None;
            let mut then = None;
            for k in keys {
                match k.key.as_str() {
                    "if" => cond = Some(k),
                    "then" => then = Some(k),
                    other => {
                        self.err(
                            k.key_span,
                            format!("unknown key `{other}` in a case (if, then)"),
                        );
                        ok = false;
                    }
                }
            }
            let (Some(c), Some(t)) = (cond, then) else {
                self.err(item.span, "a case needs both `if` and `then`");
                ok = false;
                continue;
            };
            match (
                self.cond(&c.value),
                self.arm(&t.value, conv, target, validator, path),
            ) {
                (Some(c), Some(a)) => arms.push((c, a)),
                _ => ok = false,
            }
        }
        let otherwise = match otherwise {
            Some(e) => Some(self.arm(&e.value, conv, target, validator, path)?),
            None => None,
        };
        ok.then(|| Cases {
            arms: arms.into_boxed_slice(),
            otherwise,
        })
    }

    fn template(&mut self, text: &str, span: Span, path: &str) -> Option<Template> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        let mut placeholders = 0;
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let Some(end) = text[i + 1..].find('}').map(|p| p + i + 1) else {
                        self.err(span, format!("template for `{path}` has `{{` without `}}` (write `{{{{` for a literal brace)"));
                        return None;
                    };
                    let raw = &text[i + 1..end];
                    let parsed = match ParsedPath::parse(raw) {
                        Ok(p) => self.register(&p),
                        Err(e) => {
                            self.err(
                                span,
                                format!("template for `{path}`: bad placeholder {{{raw}}}: {e}"),
                            );
                            return None;
                        }
                    };
                    if !lit.is_empty() {
                        parts.push(TemplatePart::Lit(std::mem::take(&mut lit).into()));
                    }
                    parts.push(TemplatePart::Path(PathSet::new(vec![parsed])));
                    placeholders += 1;
                    while chars.peek().is_some_and(|(j, _)| *j <= end) {
                        chars.next();
                    }
                }
                '}' => {
                    self.err(span, format!("template for `{path}` has `}}` without `{{` (write `}}}}` for a literal brace)"));
                    return None;
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(TemplatePart::Lit(lit.into()));
        }
        if placeholders == 0 {
            self.err(
                span,
                format!(
                    "template for `{path}` has no {{placeholder}}; use `const` for a fixed value"
                ),
            );
            return None;
        }
        Some(Template {
            parts: parts.into_boxed_slice(),
            text: text.into(),
        })
    }

    /// A condition: `{ path, equals | in | exists }`, `{ all = [...] }`, `{ any = [...] }`, `{ not = {...} }`.
    fn cond(&mut self, node: &Node) -> Option<Cond> {
        let Some(keys) = node.entries() else {
            self.err(node.span, format!("a condition must be a table like {{ path = \"type\", equals = \"1\" }}, found {}", node.type_name()));
            return None;
        };
        let get = |k: &str| keys.iter().find(|e| e.key == k);
        for k in keys {
            if !["path", "equals", "in", "exists", "all", "any", "not"].contains(&k.key.as_str()) {
                self.err(k.key_span, format!("unknown key `{}` in a condition (path with equals, in or exists; all; any; not)", k.key));
                return None;
            }
        }
        let ops: Vec<&Entry> = ["equals", "in", "exists", "all", "any", "not"]
            .iter()
            .filter_map(|k| get(k))
            .collect();
        let op = match ops.as_slice() {
            [op] => *op,
            [] => {
                self.err(
                    node.span,
                    "a condition needs one of equals, in, exists, all, any, not",
                );
                return None;
            }
            [_, second, ..] => {
                self.err(second.key_span, "a condition takes one of equals, in, exists, all, any, not; combine several with all = [...]");
                return None;
            }
        };
        let needs_path = matches!(op.key.as_str(), "equals" | "in" | "exists");
        let path = match (get("path"), needs_path) {
            (Some(p), true) => Some(self.path_set(&p.value, "a condition")?),
            (None, true) => {
                self.err(op.key_span, format!("`{}` needs `path`", op.key));
                return None;
            }
            (Some(p), false) => {
                self.err(p.key_span, format!("`path` does not apply to `{}`", op.key));
                return None;
            }
            (None, false) => None,
        };
        let list = |c: &mut Compiler<'_>, e: &Entry| -> Option<Vec<Cond>> {
            match &e.value.kind {
                Kind::Array(items) if !items.is_empty() => {
                    items.iter().map(|i| c.cond(i)).collect()
                }
                _ => {
                    c.err(
                        e.value.span,
                        format!("`{}` must be a non-empty array of conditions", e.key),
                    );
                    None
                }
            }
        };
        Some(match (op.key.as_str(), path) {
            ("equals", Some(p)) => Cond::Equals(p, self.expected(&op.value)?),
            ("in", Some(p)) => match &op.value.kind {
                Kind::Array(items) if !items.is_empty() => {
                    let mut es = Vec::new();
                    for i in items {
                        es.push(self.expected(i)?);
                    }
                    Cond::In(p, es.into_boxed_slice())
                }
                _ => {
                    self.err(op.value.span, "`in` must be a non-empty array of values");
                    return None;
                }
            },
            ("exists", Some(p)) => Cond::Exists(p, self.bool_node(op)?),
            ("all", _) => Cond::All(list(self, op)?.into_boxed_slice()),
            ("any", _) => Cond::Any(list(self, op)?.into_boxed_slice()),
            ("not", _) => Cond::Not(Box::new(self.cond(&op.value)?)),
            _ => return None,
        })
    }

    fn expected(&mut self, node: &Node) -> Option<Expected> {
        Some(match &node.kind {
            Kind::Str(s) => Expected {
                text: s.trim().into(),
                int: s.trim().parse().ok(),
                float: s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                boolean: match s.trim() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                },
            },
            Kind::Int(i) => Expected {
                text: i.to_string().into(),
                int: Some(*i),
                float: Some(*i as f64),
                boolean: None,
            },
            Kind::Float(f) => Expected {
                text: f.to_string().into(),
                int: (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(*f as i64),
                float: Some(*f),
                boolean: None,
            },
            Kind::Bool(b) => Expected {
                text: b.to_string().into(),
                int: None,
                float: None,
                boolean: Some(*b),
            },
            _ => {
                self.err(
                    node.span,
                    format!(
                        "a condition compares with a string, number or boolean, found {}",
                        node.type_name()
                    ),
                );
                return None;
            }
        })
    }

    /// Encodes a plain-JSON value of any schema (defaults and whole-value constants).
    fn plain_const(
        &self,
        json: &Json,
        schema: &'static Schema,
        mode: ConstMode,
    ) -> Result<ConstVal, String> {
        let mut bytes = Vec::new();
        self.emit_plain(json, schema, mode, &mut BinSink { out: &mut bytes }, 0)?;
        let mut sink = JsonSink::default();
        self.emit_plain(json, schema, mode, &mut sink, 0)?;
        Ok(ConstVal {
            bytes: bytes.into_boxed_slice(),
            json: sink.finish(),
        })
    }

    fn emit_plain<S: Sink>(
        &self,
        json: &Json,
        schema: &'static Schema,
        mode: ConstMode,
        sink: &mut S,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 64 {
            return Err("the value is nested too deeply".into());
        }
        let schema = self.resolve(schema);
        let mismatch = || format!("{json} is not a {}", describe_schema(schema));
        match schema {
            Schema::Union(u) => {
                let variants = u.variants();
                let non_null = variants
                    .iter()
                    .filter(|v| !matches!(v, Schema::Null))
                    .count();
                let index = match mode {
                    ConstMode::Default => 0,
                    ConstMode::Const if json.is_null() => variants
                        .iter()
                        .position(|v| matches!(v, Schema::Null))
                        .ok_or_else(mismatch)?,
                    ConstMode::Const if non_null == 1 => variants
                        .iter()
                        .position(|v| !matches!(v, Schema::Null))
                        .ok_or_else(mismatch)?,
                    ConstMode::Const => {
                        return Err(
                            "a constant for a union of several types is not supported".into()
                        )
                    }
                };
                let branch = variants.get(index).ok_or_else(mismatch)?;
                let pos = UnionPos {
                    index: index as u32,
                    tag: (non_null > 1 && !matches!(branch, Schema::Null))
                        .then(|| branch_names(self.resolve(branch))[0].as_str().into()),
                };
                sink.union_begin(&pos);
                self.emit_plain(json, branch, mode, sink, depth + 1)?;
                sink.union_end(&pos);
            }
            Schema::Null => json.is_null().then(|| sink.null()).ok_or_else(mismatch)?,
            Schema::Boolean => sink.boolean(json.as_bool().ok_or_else(mismatch)?),
            Schema::Int | Schema::TimeMillis => {
                let v = json
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(mismatch)?;
                sink.int(v);
            }
            Schema::Date => {
                let days = match json {
                    Json::String(s) => CivilDate::parse_iso(s).map(|d| d.days_since_epoch()),
                    other => other.as_i64().and_then(|v| i32::try_from(v).ok()),
                };
                sink.int(days.ok_or_else(mismatch)?);
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => sink.long(json.as_i64().ok_or_else(mismatch)?),
            Schema::Float => sink.float(json.as_f64().ok_or_else(mismatch)? as f32),
            Schema::Double => sink.double(json.as_f64().ok_or_else(mismatch)?),
            Schema::String | Schema::Uuid => sink.string(json.as_str().ok_or_else(mismatch)?),
            Schema::Bytes => {
                let text = json.as_str().ok_or_else(mismatch)?;
                let bytes: Option<Vec<u8>> = text
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect();
                sink.bytes(&bytes.ok_or_else(mismatch)?);
            }
            Schema::Enum(e) => {
                let symbol = json.as_str().ok_or_else(mismatch)?;
                let index = e
                    .symbols
                    .iter()
                    .position(|s| s == symbol)
                    .ok_or_else(mismatch)?;
                sink.enumeration(index as u32, symbol);
            }
            Schema::Array(a) => {
                let items = json.as_array().ok_or_else(mismatch)?;
                sink.array_begin(items.len());
                for item in items {
                    self.emit_plain(item, &a.items, mode, sink, depth + 1)?;
                }
                sink.array_end();
            }
            Schema::Map(m) => {
                let entries = json.as_object().ok_or_else(mismatch)?;
                sink.map_begin(entries.len());
                for (k, v) in entries {
                    sink.map_key(k);
                    self.emit_plain(v, &m.types, mode, sink, depth + 1)?;
                }
                sink.map_end();
            }
            Schema::Record(r) => {
                let object = json.as_object().ok_or_else(mismatch)?;
                if let Some(unknown) = object.keys().find(|k| !r.lookup.contains_key(k.as_str())) {
                    return Err(format!(
                        "record {} has no field `{unknown}`",
                        r.name.fullname(None)
                    ));
                }
                sink.record_begin();
                for f in &r.fields {
                    sink.field(&f.name);
                    match (object.get(&f.name), &f.default) {
                        (Some(v), _) => self.emit_plain(v, &f.schema, mode, sink, depth + 1)?,
                        (None, Some(d)) => {
                            self.emit_plain(d, &f.schema, ConstMode::Default, sink, depth + 1)?
                        }
                        (None, None) => return Err(format!("field `{}` is missing", f.name)),
                    }
                }
                sink.record_end();
            }
            other => {
                return Err(format!(
                    "Avro type {} is not supported",
                    describe_schema(other)
                ))
            }
        }
        Ok(())
    }
}

/// Slots the nested scopes under a record need at most, on top of the record's own scope.
fn slots_needed(plan: &RecordPlan) -> usize {
    plan.fields
        .iter()
        .map(|f| match &f.node {
            NodePlan::Record(rn) => {
                rn.scope.as_ref().map_or(0, ScopePlan::len) + slots_needed(&rn.plan)
            }
            NodePlan::Array(an) => {
                an.scope.len()
                    + match &an.item {
                        ItemPlan::Record(rn) => slots_needed(&rn.plan),
                        ItemPlan::Scalar(_) => 0,
                    }
            }
            NodePlan::Map(mn) => mn.scope.len(),
            NodePlan::Const(_) | NodePlan::Engine(_) | NodePlan::Scalar(_) => 0,
        })
        .max()
        .unwrap_or(0)
}

/// The raw paths a record's rules read directly (for the implicit presence test of optional records).
fn probe_paths(plan: &RecordPlan, out: &mut Vec<PathSet>) {
    for f in plan.fields.iter() {
        match &f.node {
            NodePlan::Scalar(sp) => match &sp.value.source {
                Source::Path(p) => out.push(p.clone()),
                Source::Template(t) => out.extend(t.parts.iter().filter_map(|p| match p {
                    TemplatePart::Path(p) => Some(p.clone()),
                    TemplatePart::Lit(_) => None,
                })),
                Source::Concat(c) => out.extend(c.parts.iter().cloned()),
                _ => {}
            },
            NodePlan::Record(rn) => match &rn.base {
                Some(b) => out.push(b.clone()),
                None => probe_paths(&rn.plan, out),
            },
            NodePlan::Array(an) => out.push(an.source.clone()),
            NodePlan::Map(mn) => out.push(mn.source.clone()),
            NodePlan::Const(_) | NodePlan::Engine(_) => {}
        }
    }
}

fn describe_schema(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(u) => format!(
            "union [{}]",
            u.variants()
                .iter()
                .map(|v| branch_names(v).last().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        other => match scalar_type(other) {
            Some(t) => t.describe(),
            None => format!("{:?}", apache_avro::schema::SchemaKind::from(other)),
        },
    }
}

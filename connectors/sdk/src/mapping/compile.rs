//! From mapping TOML to a [`Plan`], checked against the target Avro schema.
//!
//! The compiler walks the target schema field by field (so the plan comes out in Avro order) and looks up the
//! rule for each field in a tree built from the `[fields]` table (dotted keys, nested tables and `fields`
//! sub-tables all land in the same tree). Every problem is recorded with the span of the key or value at fault
//! and compilation goes on, so one load reports all of them.
//!
//! Layout: this file holds the compiler's state and the walk over records and fields; `nodes` the record, array,
//! map and union nodes of the target schema; `values` conversions, constants, code tables, templates and
//! conditions.

mod nodes;
mod values;

use std::collections::HashMap;

use apache_avro::schema::{RecordSchema, UnionSchema};
use apache_avro::Schema;
use serde_json::Value as Json;
use unsilo_schemas::avro::branch_names;
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

/// Keys that give a rule its structure: arrays, records, conditions and union branches.
const STRUCTURE_KEYS: [&str; 6] = ["each", "item", "split", "fields", "when", "branch"];

/// Whether `key` may appear in a rule table.
fn is_rule_key(key: &str) -> bool {
    VALUE_KEYS.contains(&key) || STRUCTURE_KEYS.contains(&key)
}

/// Every key a rule table may contain, for messages.
fn rule_keys() -> String {
    let all: Vec<&str> = VALUE_KEYS.iter().chain(&STRUCTURE_KEYS).copied().collect();
    all.join(", ")
}

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
                    if !inner.is_empty() && !inner.iter().any(|x| is_rule_key(&x.key)) =>
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
                    if is_rule_key(&k.key) {
                        rule.keys.push(k);
                    } else {
                        self.err(
                            k.key_span,
                            format!(
                                "unknown key `{}` in the rule for `{path}` (rule keys: {})",
                                k.key,
                                rule_keys()
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
                    rule_keys()
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

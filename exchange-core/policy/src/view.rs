//! Subscription views: the schema a subscriber receives and the projection of shared records onto it.
//!
//! A subscription names the fields it may receive, each with a [`Treatment`]. Everything else is withheld
//! (default deny, GB/T 35273 data minimisation): a field not named by a rule, or named with `drop`, is absent
//! from the view — not nulled, absent — so the view schema itself documents what was shared.
//!
//! [`ViewPlan::build`] does all the work once per subscription: it resolves every rule path against the shared
//! schema, checks that the treatment applies to the field's type and sensitivity kind, derives the view schema
//! (masked/pseudonymised fields become strings, generalised ones the type of their generalisation, docs and
//! `x-` tags kept, `x-treatment` added, named types moved into `unsilo.view.<view>`), and compiles a tree of
//! per-field actions holding source field indices. [`ViewPlan::apply`] then only walks that tree over the decoded
//! record: no schema lookups, no name resolution, untouched subtrees cloned in one go. It runs once per record per
//! subscription, so that matters.
//!
//! Paths are the dotted paths of [`unsilo_schemas::tags`]: record fields joined with `.`, arrays and maps add
//! nothing (`parties.cert_no` is every party's `cert_no`), `["null", T]` adds nothing, a union of several
//! branches adds the branch's short name (`payload.DibaoRecipient.cert_no`). A rule on a record with `clear`
//! releases the whole subtree; more specific rules below it override (`location: clear` + `location.address:
//! drop`). A union of several branches keeps the released branches; records on a withheld branch become `null`.
//!
//! Free text (`x-pii: free_text`) released in clear still gets ID numbers and mobiles redacted
//! ([`super::treat::redact_free_text`]), unless the plan releases an ID number (resp. phone) field in clear
//! anyway — then the subscriber is entitled to them and redacting the text would protect nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock, RwLock};

use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::{json, Map, Value as Json};
use thiserror::Error;
use unsilo_schemas::{PiiKind, SharedSchema};

use super::model::{FieldRule, Treatment};
use super::treat::{self, PseudonymKey, Redaction};
use unsilo_schemas::mask::{self, MaskStyle};

/// Namespace prefix of every named type in a view schema.
pub const VIEW_NAMESPACE_PREFIX: &str = "unsilo.view";

/// Why a view cannot be built, or a record not projected. Every variant names the offending field path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ViewError {
    /// A subscription must release at least one field.
    #[error("a view must release at least one field (there are no rules, or only drop rules)")]
    EmptyRules,
    /// The view name has no letter or digit to build a namespace from.
    #[error("view name {0:?} has no ASCII letter or digit to name the view's namespace")]
    InvalidViewName(String),
    /// A rule names a path the schema does not have.
    #[error("unknown field {path:?} in schema {schema}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownField {
        /// The path as written in the rule.
        path: String,
        /// The shared schema.
        schema: String,
        /// The closest existing path, if any is close.
        suggestion: Option<String>,
    },
    /// Two rules name the same path.
    #[error("field {path:?} has more than one rule")]
    DuplicateRule {
        /// The path.
        path: String,
    },
    /// The treatment cannot be applied to the field's type.
    #[error("{treatment:?} cannot be applied to field {path:?}: {reason}")]
    NotApplicable {
        /// The path.
        path: String,
        /// The treatment asked for.
        treatment: Treatment,
        /// Why not.
        reason: String,
    },
    /// `generalise` on a field that has no defined generalisation.
    #[error("field {path:?} has no generalisation (defined: address → village code, birth date → year, coordinates → 3 decimals, timestamp → Beijing day, region/village code → county)")]
    NoGeneralisation {
        /// The path.
        path: String,
    },
    /// A rule below a field that another rule drops.
    #[error("rule on {path:?} conflicts with the drop rule on {dropped:?}")]
    ConflictingRules {
        /// The rule below.
        path: String,
        /// The dropped ancestor.
        dropped: String,
    },
    /// The shared schema has a shape views do not support (e.g. a recursive type).
    #[error("unsupported schema construct at {path:?}: {reason}")]
    UnsupportedSchema {
        /// Where.
        path: String,
        /// What.
        reason: String,
    },
    /// The generated view schema does not parse (a bug in this module, reported rather than hidden).
    #[error("the view schema does not parse: {0}")]
    ViewSchema(String),
    /// A record does not have the shape of the shared schema the plan was built for.
    #[error("record does not match the shared schema at {path:?}: {reason}")]
    RecordShape {
        /// Where.
        path: String,
        /// What was found.
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------------------------
// The shared schema as a resolved type tree (build time only).
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

impl Base {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::Null,
            "boolean" => Self::Boolean,
            "int" => Self::Int,
            "long" => Self::Long,
            "float" => Self::Float,
            "double" => Self::Double,
            "bytes" => Self::Bytes,
            "string" => Self::String,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean => "boolean",
            Self::Int => "int",
            Self::Long => "long",
            Self::Float => "float",
            Self::Double => "double",
            Self::Bytes => "bytes",
            Self::String => "string",
        }
    }
}

#[derive(Clone, Debug)]
enum SType {
    /// A primitive, possibly with a logical type; `json` is its schema text, copied into views unchanged.
    Prim {
        json: Json,
        base: Base,
        logical: Option<String>,
    },
    /// An enum or fixed: copied into views, renamed.
    Named {
        full: String,
        short: String,
        def: Map<String, Json>,
    },
    Record(Box<SRecord>),
    Array(Box<SType>),
    Map(Box<SType>),
    Union(Vec<SType>),
}

#[derive(Clone, Debug)]
struct SRecord {
    full: String,
    short: String,
    doc: Option<Json>,
    fields: Vec<SField>,
}

#[derive(Clone, Debug)]
struct SField {
    name: String,
    /// Attributes other than `name`, `type` and `default` (doc, x-sensitivity, x-pii, …).
    attrs: Map<String, Json>,
    default: Option<Json>,
    pii: Option<PiiKind>,
    ty: SType,
}

impl SType {
    fn is_null(&self) -> bool {
        matches!(
            self,
            Self::Prim {
                base: Base::Null,
                ..
            }
        )
    }

    /// Short name a branch of a multi-branch union adds to paths (as in `unsilo_schemas::tags`).
    fn branch_name(&self) -> String {
        match self {
            Self::Prim { base, .. } => base.name().to_string(),
            Self::Named { short, .. } => short.clone(),
            Self::Record(r) => r.short.clone(),
            Self::Array(_) => "array".into(),
            Self::Map(_) => "map".into(),
            Self::Union(_) => "union".into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Prim {
                base,
                logical: Some(l),
                ..
            } => format!("{} ({l})", base.name()),
            Self::Prim { base, .. } => base.name().to_string(),
            Self::Named { def, .. } => def
                .get("type")
                .and_then(Json::as_str)
                .unwrap_or("named type")
                .to_string(),
            Self::Record(_) => "a record".into(),
            Self::Array(_) => "an array".into(),
            Self::Map(_) => "a map".into(),
            Self::Union(_) => "a union of several types".into(),
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

struct Parser {
    named: HashMap<String, SType>,
    active: HashSet<String>,
}

fn split_name(
    obj: &Map<String, Json>,
    ns: Option<&str>,
) -> Option<(String, String, Option<String>)> {
    let name = obj.get("name")?.as_str()?;
    if let Some((space, short)) = name.rsplit_once('.') {
        return Some((name.to_string(), short.to_string(), Some(space.to_string())));
    }
    let space = obj
        .get("namespace")
        .and_then(Json::as_str)
        .or(ns)
        .filter(|s| !s.is_empty());
    Some(match space {
        Some(space) => (
            format!("{space}.{name}"),
            name.to_string(),
            Some(space.to_string()),
        ),
        None => (name.to_string(), name.to_string(), None),
    })
}

impl Parser {
    fn unsupported(path: &str, reason: impl Into<String>) -> ViewError {
        ViewError::UnsupportedSchema {
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    fn parse(&mut self, ty: &Json, ns: Option<&str>, path: &str) -> Result<SType, ViewError> {
        match ty {
            Json::String(name) => {
                if let Some(base) = Base::parse(name) {
                    return Ok(SType::Prim {
                        json: ty.clone(),
                        base,
                        logical: None,
                    });
                }
                let full = match ns {
                    Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
                    _ => name.clone(),
                };
                if self.active.contains(&full) || self.active.contains(name) {
                    return Err(Self::unsupported(path, format!("recursive type {name}")));
                }
                self.named
                    .get(&full)
                    .or_else(|| self.named.get(name))
                    .cloned()
                    .ok_or_else(|| {
                        Self::unsupported(path, format!("type {name} is used before it is defined"))
                    })
            }
            Json::Array(branches) => Ok(SType::Union(
                branches
                    .iter()
                    .map(|b| self.parse(b, ns, path))
                    .collect::<Result<_, _>>()?,
            )),
            Json::Object(obj) => match obj.get("type") {
                Some(Json::String(t)) if t == "record" || t == "error" => {
                    self.parse_record(obj, ns, path)
                }
                Some(Json::String(t)) if t == "enum" || t == "fixed" => {
                    let (full, short, _) = split_name(obj, ns)
                        .ok_or_else(|| Self::unsupported(path, "named type without a name"))?;
                    let parsed = SType::Named {
                        full: full.clone(),
                        short,
                        def: obj.clone(),
                    };
                    self.named.insert(full, parsed.clone());
                    Ok(parsed)
                }
                Some(Json::String(t)) if t == "array" => {
                    let items = obj
                        .get("items")
                        .ok_or_else(|| Self::unsupported(path, "array without items"))?;
                    Ok(SType::Array(Box::new(self.parse(items, ns, path)?)))
                }
                Some(Json::String(t)) if t == "map" => {
                    let values = obj
                        .get("values")
                        .ok_or_else(|| Self::unsupported(path, "map without values"))?;
                    Ok(SType::Map(Box::new(self.parse(values, ns, path)?)))
                }
                Some(Json::String(t)) => match Base::parse(t) {
                    Some(base) => Ok(SType::Prim {
                        json: ty.clone(),
                        base,
                        logical: obj
                            .get("logicalType")
                            .and_then(Json::as_str)
                            .map(str::to_string),
                    }),
                    None => self.parse(&Json::String(t.clone()), ns, path),
                },
                Some(inner) => self.parse(inner, ns, path),
                None => Err(Self::unsupported(path, "type object without \"type\"")),
            },
            _ => Err(Self::unsupported(
                path,
                "a type must be a string, an array or an object",
            )),
        }
    }

    fn parse_record(
        &mut self,
        obj: &Map<String, Json>,
        ns: Option<&str>,
        path: &str,
    ) -> Result<SType, ViewError> {
        let (full, short, space) =
            split_name(obj, ns).ok_or_else(|| Self::unsupported(path, "record without a name"))?;
        self.active.insert(full.clone());
        let raw_fields = obj
            .get("fields")
            .and_then(Json::as_array)
            .ok_or_else(|| Self::unsupported(path, "record without fields"))?;
        let mut fields = Vec::with_capacity(raw_fields.len());
        for raw in raw_fields {
            let raw = raw
                .as_object()
                .ok_or_else(|| Self::unsupported(path, "a field must be an object"))?;
            let name = raw
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| Self::unsupported(path, "field without a name"))?
                .to_string();
            let fpath = join(path, &name);
            let ty_json = raw
                .get("type")
                .ok_or_else(|| Self::unsupported(&fpath, "field without a type"))?;
            let ty = self.parse(ty_json, space.as_deref(), &fpath)?;
            let attrs: Map<String, Json> = raw
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "name" | "type" | "default"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let pii = raw
                .get("x-pii")
                .and_then(Json::as_str)
                .and_then(|s| s.parse::<PiiKind>().ok());
            fields.push(SField {
                name,
                attrs,
                default: raw.get("default").cloned(),
                pii,
                ty,
            });
        }
        self.active.remove(&full);
        let record = SType::Record(Box::new(SRecord {
            full: full.clone(),
            short,
            doc: obj.get("doc").cloned(),
            fields,
        }));
        self.named.insert(full, record.clone());
        Ok(record)
    }
}

fn parse_shared(shared: &SharedSchema) -> Result<SRecord, ViewError> {
    let mut parser = Parser {
        named: HashMap::new(),
        active: HashSet::new(),
    };
    match parser.parse(shared.json(), None, "")? {
        SType::Record(r) => Ok(*r),
        _ => Err(Parser::unsupported("", "the shared schema is not a record")),
    }
}

/// Every path a rule may name: field paths and branch paths of multi-branch unions.
fn collect_paths(ty: &SType, prefix: &str, out: &mut Vec<String>) {
    match ty {
        SType::Record(r) => {
            for f in &r.fields {
                let p = join(prefix, &f.name);
                out.push(p.clone());
                collect_paths(&f.ty, &p, out);
            }
        }
        SType::Array(inner) | SType::Map(inner) => collect_paths(inner, prefix, out),
        SType::Union(branches) => {
            let non_null: Vec<&SType> = branches.iter().filter(|b| !b.is_null()).collect();
            if let [only] = non_null.as_slice() {
                collect_paths(only, prefix, out);
            } else {
                for b in non_null {
                    let p = join(prefix, &b.branch_name());
                    out.push(p.clone());
                    collect_paths(b, &p, out);
                }
            }
        }
        SType::Prim { .. } | SType::Named { .. } => {}
    }
}

/// The existing path closest to `path`: one ending in `.path` (a missing parent), else the nearest by edit
/// distance if it is reasonably near.
fn suggest(path: &str, known: &[String]) -> Option<String> {
    let suffix = format!(".{path}");
    if let Some(p) = known.iter().find(|p| p.ends_with(&suffix)) {
        return Some(p.clone());
    }
    known
        .iter()
        .map(|p| (unsilo_schemas::avro::edit_distance(path, p), p))
        .filter(|(d, _)| *d <= path.chars().count() / 3 + 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p.clone())
}

// ---------------------------------------------------------------------------------------------------------------
// Rule selection tree
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Sel {
    rule: Option<Treatment>,
    children: BTreeMap<String, Sel>,
}

impl Sel {
    fn insert(&mut self, path: &str, treatment: Treatment) {
        let mut node = self;
        for part in path.split('.') {
            node = node.children.entry(part.to_string()).or_default();
        }
        node.rule = Some(treatment);
    }

    /// The first path with a rule below this node (for conflict messages).
    fn first_rule_below(&self, prefix: &str) -> Option<String> {
        self.children.iter().find_map(|(name, child)| {
            let p = join(prefix, name);
            if child.rule.is_some() {
                Some(p)
            } else {
                child.first_rule_below(&p)
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// View type tree (serialised to JSON once, with named types deduplicated) and the action tree.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum VType {
    Json(Json),
    Named {
        full: String,
        short: String,
        def: Map<String, Json>,
    },
    Record {
        full: String,
        short: String,
        doc: Option<Json>,
        fields: Vec<VField>,
    },
    Array(Box<VType>),
    Map(Box<VType>),
    Union(Vec<VType>),
}

#[derive(Clone, Debug)]
struct VField {
    name: String,
    attrs: Map<String, Json>,
    ty: VType,
}

impl VType {
    fn from_source(ty: &SType) -> Self {
        match ty {
            SType::Prim { json, .. } => Self::Json(json.clone()),
            SType::Named { full, short, def } => Self::Named {
                full: full.clone(),
                short: short.clone(),
                def: def.clone(),
            },
            // Records are never copied whole: a released record is projected field by field.
            SType::Record(r) => Self::Record {
                full: r.full.clone(),
                short: r.short.clone(),
                doc: r.doc.clone(),
                fields: Vec::new(),
            },
            SType::Array(i) => Self::Array(Box::new(Self::from_source(i))),
            SType::Map(i) => Self::Map(Box::new(Self::from_source(i))),
            SType::Union(bs) => Self::Union(bs.iter().map(Self::from_source).collect()),
        }
    }

    fn contains_record(&self) -> bool {
        match self {
            Self::Record { .. } => true,
            Self::Array(i) | Self::Map(i) => i.contains_record(),
            Self::Union(bs) => bs.iter().any(Self::contains_record),
            Self::Json(_) | Self::Named { .. } => false,
        }
    }

    /// Fully expanded JSON with original names: the structural identity of a type, for deduplication.
    fn canonical(&self) -> Json {
        match self {
            Self::Json(j) => j.clone(),
            Self::Named { full, def, .. } => json!({"named": full, "def": def}),
            Self::Record {
                full, doc, fields, ..
            } => json!({
                "record": full,
                "doc": doc,
                "fields": fields.iter().map(|f| json!({"name": f.name, "attrs": f.attrs, "type": f.ty.canonical()})).collect::<Vec<_>>(),
            }),
            Self::Array(i) => json!({"array": i.canonical()}),
            Self::Map(i) => json!({"map": i.canonical()}),
            Self::Union(bs) => Json::Array(bs.iter().map(Self::canonical).collect()),
        }
    }
}

/// Emits view JSON in document order, renaming named types into the view namespace and defining each once.
struct Emitter {
    namespace: String,
    /// Structural key → assigned short name.
    assigned: HashMap<String, String>,
    /// Short names in use.
    used: HashSet<String>,
    /// Assigned short names already defined earlier in the document.
    defined: HashSet<String>,
}

impl Emitter {
    fn assign(&mut self, key: String, short: &str) -> (String, bool) {
        if let Some(name) = self.assigned.get(&key) {
            let first = !self.defined.contains(name);
            return (name.clone(), first);
        }
        let mut name = short.to_string();
        let mut n = 2;
        while self.used.contains(&name) {
            name = format!("{short}_{n}");
            n += 1;
        }
        self.used.insert(name.clone());
        self.assigned.insert(key, name.clone());
        (name, true)
    }

    fn emit(&mut self, ty: &VType) -> Json {
        match ty {
            VType::Json(j) => j.clone(),
            VType::Named { full, short, def } => {
                let (name, first) = self.assign(format!("named:{full}"), short);
                if !first {
                    return Json::String(format!("{}.{name}", self.namespace));
                }
                self.defined.insert(name.clone());
                let mut out = def.clone();
                out.insert("name".into(), Json::String(name));
                out.insert("namespace".into(), Json::String(self.namespace.clone()));
                Json::Object(out)
            }
            VType::Record {
                full,
                short,
                doc,
                fields,
            } => {
                let (name, first) = self.assign(format!("record:{full}:{}", ty.canonical()), short);
                if !first {
                    return Json::String(format!("{}.{name}", self.namespace));
                }
                self.defined.insert(name.clone());
                let mut out = Map::new();
                out.insert("type".into(), "record".into());
                out.insert("name".into(), Json::String(name));
                out.insert("namespace".into(), Json::String(self.namespace.clone()));
                if let Some(doc) = doc {
                    out.insert("doc".into(), doc.clone());
                }
                let fields: Vec<Json> = fields
                    .iter()
                    .map(|f| {
                        let mut field = Map::new();
                        field.insert("name".into(), Json::String(f.name.clone()));
                        field.insert("type".into(), self.emit(&f.ty));
                        for (k, v) in &f.attrs {
                            field.insert(k.clone(), v.clone());
                        }
                        Json::Object(field)
                    })
                    .collect();
                out.insert("fields".into(), Json::Array(fields));
                Json::Object(out)
            }
            VType::Array(i) => json!({"type": "array", "items": self.emit(i)}),
            VType::Map(i) => json!({"type": "map", "values": self.emit(i)}),
            VType::Union(bs) => Json::Array(bs.iter().map(|b| self.emit(b)).collect()),
        }
    }
}

/// Where a generalised address takes its village code from.
#[derive(Clone, Debug)]
enum AddressSource {
    /// The `village_code` string field of the record holding the address (index in that record).
    Sibling(usize),
    /// `envelope.region_code` of the top-level record.
    Envelope { envelope: usize, region: usize },
}

/// What happens to one leaf value.
#[derive(Clone, Debug)]
enum Leaf {
    Clone,
    /// Clear free text with identifiers redacted per the plan's [`Redaction`].
    Redact,
    Mask(MaskStyle),
    Pseudonymise(Box<str>),
    Address(AddressSource),
    Year,
    Coordinate,
    Day,
    County,
}

/// The compiled projection of one value.
#[derive(Clone, Debug)]
enum Action {
    Leaf(Leaf),
    Record(Box<RecordPlan>),
    Array(Box<Action>),
    Map(Box<Action>),
    /// Per source branch: the view branch index and its action, or `None` for a withheld branch (→ `null` at
    /// `null_out`).
    Union {
        branches: Box<[Option<(u32, Action)>]>,
        null_out: u32,
    },
}

impl Action {
    fn is_clone(&self) -> bool {
        matches!(self, Self::Leaf(Leaf::Clone))
    }
}

#[derive(Clone, Debug)]
struct FieldPlan {
    name: String,
    src: usize,
    path: Box<str>,
    action: Action,
}

#[derive(Clone, Debug)]
struct RecordPlan {
    fields: Vec<FieldPlan>,
}

// ---------------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------------

struct Builder<'a> {
    schema_name: &'a str,
    root: &'a SRecord,
    released: Vec<FieldRule>,
    cert_clear: bool,
    phone_clear: bool,
}

fn not_applicable(path: &str, treatment: Treatment, reason: impl Into<String>) -> ViewError {
    ViewError::NotApplicable {
        path: path.to_string(),
        treatment,
        reason: reason.into(),
    }
}

fn treatment_name(t: Treatment) -> &'static str {
    match t {
        Treatment::Clear => "clear",
        Treatment::Mask => "mask",
        Treatment::Pseudonymise => "pseudonymise",
        Treatment::Generalise => "generalise",
        Treatment::Drop => "drop",
    }
}

fn is_region_code_field(name: &str) -> bool {
    name == "region_code"
        || name == "village_code"
        || name.ends_with("_region_code")
        || name.ends_with("_village_code")
}

fn is_plain_string(ty: &SType) -> bool {
    matches!(
        ty,
        SType::Prim {
            base: Base::String,
            ..
        }
    )
}

impl Builder<'_> {
    /// Projects a record; `None` when nothing of it is released.
    fn record(
        &mut self,
        rec: &SRecord,
        sel: Option<&Sel>,
        inherited: Option<Treatment>,
        path: &str,
    ) -> Result<Option<(VType, RecordPlan)>, ViewError> {
        let mut vfields = Vec::new();
        let mut plans = Vec::new();
        for (index, field) in rec.fields.iter().enumerate() {
            let fsel = sel.and_then(|s| s.children.get(&field.name));
            let fpath = join(path, &field.name);
            let treatment = fsel.and_then(|s| s.rule).or(inherited);
            let has_children = fsel.is_some_and(|s| !s.children.is_empty());
            if treatment == Some(Treatment::Drop) {
                if let Some(below) = fsel.and_then(|s| s.first_rule_below(&fpath)) {
                    return Err(ViewError::ConflictingRules {
                        path: below,
                        dropped: fpath,
                    });
                }
                continue;
            }
            if treatment.is_none() && !has_children {
                continue;
            }
            let Some((ty, action)) = self.value(&field.ty, fsel, treatment, &fpath, field, rec)?
            else {
                continue;
            };
            let mut attrs = field.attrs.clone();
            attrs.insert(
                "x-treatment".into(),
                Json::String(treatment_name(treatment.unwrap_or(Treatment::Clear)).into()),
            );
            if let Some(default) = &field.default {
                let keep = match (&ty, default) {
                    (VType::Union(bs), Json::Null) => {
                        matches!(bs.first(), Some(VType::Json(Json::String(s))) if s == "null")
                    }
                    (VType::Array(_), Json::Array(items)) => items.is_empty(),
                    _ => treatment == Some(Treatment::Clear) && !ty.contains_record(),
                };
                if keep {
                    attrs.insert("default".into(), default.clone());
                }
            }
            vfields.push(VField {
                name: field.name.clone(),
                attrs,
                ty,
            });
            plans.push(FieldPlan {
                name: field.name.clone(),
                src: index,
                path: fpath.into(),
                action,
            });
        }
        if vfields.is_empty() {
            return Ok(None);
        }
        Ok(Some((
            VType::Record {
                full: rec.full.clone(),
                short: rec.short.clone(),
                doc: rec.doc.clone(),
                fields: vfields,
            },
            RecordPlan { fields: plans },
        )))
    }

    /// Projects a value of type `ty` at `path` (a field, or a union branch below it).
    fn value(
        &mut self,
        ty: &SType,
        sel: Option<&Sel>,
        treatment: Option<Treatment>,
        path: &str,
        field: &SField,
        parent: &SRecord,
    ) -> Result<Option<(VType, Action)>, ViewError> {
        match ty {
            SType::Record(rec) => {
                if let Some(
                    t @ (Treatment::Mask | Treatment::Pseudonymise | Treatment::Generalise),
                ) = treatment
                {
                    return Err(not_applicable(
                        path,
                        t,
                        "it is a record; release it in clear or name its fields",
                    ));
                }
                let projected = self.record(rec, sel, treatment, path)?;
                Ok(projected.map(|(ty, plan)| {
                    let whole = plan.fields.len() == rec.fields.len()
                        && plan
                            .fields
                            .iter()
                            .enumerate()
                            .all(|(i, f)| f.src == i && f.action.is_clone());
                    let action = if whole {
                        Action::Leaf(Leaf::Clone)
                    } else {
                        Action::Record(Box::new(plan))
                    };
                    (ty, action)
                }))
            }
            SType::Array(inner) => {
                Ok(self
                    .value(inner, sel, treatment, path, field, parent)?
                    .map(|(ty, action)| {
                        let action = if action.is_clone() {
                            action
                        } else {
                            Action::Array(Box::new(action))
                        };
                        (VType::Array(Box::new(ty)), action)
                    }))
            }
            SType::Map(inner) => {
                Ok(self
                    .value(inner, sel, treatment, path, field, parent)?
                    .map(|(ty, action)| {
                        let action = if action.is_clone() {
                            action
                        } else {
                            Action::Map(Box::new(action))
                        };
                        (VType::Map(Box::new(ty)), action)
                    }))
            }
            SType::Union(branches) => self.union(branches, sel, treatment, path, field, parent),
            SType::Prim { .. } | SType::Named { .. } => {
                if let Some(below) = sel.and_then(|s| s.first_rule_below(path)) {
                    return Err(ViewError::UnknownField {
                        path: below,
                        schema: self.schema_name.to_string(),
                        suggestion: Some(path.to_string()),
                    });
                }
                let Some(treatment) = treatment else {
                    return Ok(None);
                };
                let (ty, leaf) = self.leaf(ty, treatment, path, field, parent)?;
                self.released.push(FieldRule {
                    field: path.to_string(),
                    treatment,
                });
                Ok(Some((ty, Action::Leaf(leaf))))
            }
        }
    }

    fn union(
        &mut self,
        branches: &[SType],
        sel: Option<&Sel>,
        treatment: Option<Treatment>,
        path: &str,
        field: &SField,
        parent: &SRecord,
    ) -> Result<Option<(VType, Action)>, ViewError> {
        let several = branches.iter().filter(|b| !b.is_null()).count() > 1;
        if several {
            if let Some(t @ (Treatment::Mask | Treatment::Pseudonymise | Treatment::Generalise)) =
                treatment
            {
                return Err(not_applicable(
                    path,
                    t,
                    "it is a union of several types; release it in clear or name its branches",
                ));
            }
        }
        // (view type, action) per source branch; None = withheld.
        let mut kept: Vec<Option<(VType, Action)>> = Vec::with_capacity(branches.len());
        for branch in branches {
            if branch.is_null() {
                kept.push(Some((
                    VType::from_source(branch),
                    Action::Leaf(Leaf::Clone),
                )));
                continue;
            }
            if !several {
                kept.push(self.value(branch, sel, treatment, path, field, parent)?);
                continue;
            }
            let bpath = join(path, &branch.branch_name());
            let bsel = sel.and_then(|s| s.children.get(&branch.branch_name()));
            let bt = bsel.and_then(|s| s.rule).or(treatment);
            if bt == Some(Treatment::Drop) {
                if let Some(below) = bsel.and_then(|s| s.first_rule_below(&bpath)) {
                    return Err(ViewError::ConflictingRules {
                        path: below,
                        dropped: bpath,
                    });
                }
                kept.push(None);
                continue;
            }
            let has_children = bsel.is_some_and(|s| !s.children.is_empty());
            if bt.is_none() && !has_children {
                kept.push(None);
                continue;
            }
            kept.push(self.value(branch, bsel, bt, &bpath, field, parent)?);
        }
        let has_null = branches.iter().any(SType::is_null);
        if kept
            .iter()
            .zip(branches)
            .all(|(k, b)| k.is_none() || b.is_null())
        {
            return Ok(None);
        }
        let mut view_branches = Vec::new();
        let mut null_out = 0u32;
        // A withheld branch is sent as null: make sure the view has a null branch, first.
        if !has_null && kept.iter().any(Option::is_none) {
            view_branches.push(VType::Json(Json::String("null".into())));
        }
        let mut mapped = Vec::with_capacity(kept.len());
        let mut identity = view_branches.is_empty();
        for (source_index, k) in kept.into_iter().enumerate() {
            match k {
                Some((ty, action)) => {
                    let out = u32::try_from(view_branches.len()).unwrap_or(u32::MAX);
                    if matches!(&ty, VType::Json(Json::String(s)) if s == "null") {
                        null_out = out;
                    }
                    identity &= action.is_clone() && out as usize == source_index;
                    view_branches.push(ty);
                    mapped.push(Some((out, action)));
                }
                None => {
                    identity = false;
                    mapped.push(None);
                }
            }
        }
        let action = if identity {
            Action::Leaf(Leaf::Clone)
        } else {
            Action::Union {
                branches: mapped.into_boxed_slice(),
                null_out,
            }
        };
        Ok(Some((VType::Union(view_branches), action)))
    }

    fn leaf(
        &mut self,
        ty: &SType,
        treatment: Treatment,
        path: &str,
        field: &SField,
        parent: &SRecord,
    ) -> Result<(VType, Leaf), ViewError> {
        let string = || VType::Json(Json::String("string".into()));
        let (base, logical) = match ty {
            SType::Prim { base, logical, .. } => (Some(*base), logical.as_deref()),
            _ => (None, None),
        };
        match treatment {
            Treatment::Clear | Treatment::Drop => {
                if base == Some(Base::String) {
                    match field.pii {
                        Some(PiiKind::CertNo) => self.cert_clear = true,
                        Some(PiiKind::Phone) => self.phone_clear = true,
                        _ => {}
                    }
                }
                let leaf = if field.pii == Some(PiiKind::FreeText) && base == Some(Base::String) {
                    Leaf::Redact
                } else {
                    Leaf::Clone
                };
                Ok((VType::from_source(ty), leaf))
            }
            Treatment::Mask | Treatment::Pseudonymise => {
                if base != Some(Base::String) {
                    return Err(not_applicable(
                        path,
                        treatment,
                        format!("it applies to strings, the field is {}", ty.describe()),
                    ));
                }
                let leaf = if treatment == Treatment::Mask {
                    Leaf::Mask(MaskStyle::for_pii(field.pii))
                } else {
                    let domain = match field.pii {
                        Some(kind) => kind.as_str().to_string(),
                        None => format!("field:{}.{path}", self.schema_name),
                    };
                    Leaf::Pseudonymise(domain.into())
                };
                Ok((string(), leaf))
            }
            Treatment::Generalise => {
                let none = || ViewError::NoGeneralisation {
                    path: path.to_string(),
                };
                match (field.pii, base, logical) {
                    (Some(PiiKind::Address), Some(Base::String), _) => {
                        let sibling = parent
                            .fields
                            .iter()
                            .position(|f| f.name == "village_code" && is_plain_string(&f.ty));
                        let source = match sibling {
                            Some(i) => AddressSource::Sibling(i),
                            None => self.envelope_region().ok_or_else(none)?,
                        };
                        Ok((string(), Leaf::Address(source)))
                    }
                    (_, Some(Base::Int), Some("date")) => {
                        Ok((VType::Json(Json::String("int".into())), Leaf::Year))
                    }
                    (Some(PiiKind::Geo), Some(Base::Double | Base::Float), _) => {
                        Ok((VType::from_source(ty), Leaf::Coordinate))
                    }
                    (_, Some(Base::Long), Some("timestamp-millis")) => {
                        Ok((VType::from_source(ty), Leaf::Day))
                    }
                    (_, Some(Base::String), None) if is_region_code_field(&field.name) => {
                        Ok((string(), Leaf::County))
                    }
                    _ => Err(none()),
                }
            }
        }
    }

    fn envelope_region(&self) -> Option<AddressSource> {
        let envelope = self.root.fields.iter().position(|f| f.name == "envelope")?;
        let SType::Record(env) = &self.root.fields[envelope].ty else {
            return None;
        };
        let region = env
            .fields
            .iter()
            .position(|f| f.name == "region_code" && is_plain_string(&f.ty))?;
        Some(AddressSource::Envelope { envelope, region })
    }
}

fn sanitise_view_name(view_name: &str) -> Result<String, ViewError> {
    let mut out: String = view_name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Err(ViewError::InvalidViewName(view_name.to_string()));
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'v');
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------------------------

/// A compiled subscription view over one shared schema: the view schema and the per-field actions that project
/// a shared record onto it. Build once per subscription, apply per record.
#[derive(Clone, Debug)]
pub struct ViewPlan {
    view_name: String,
    schema_json: Json,
    schema: Schema,
    rules: Vec<FieldRule>,
    released: Vec<FieldRule>,
    root: RecordPlan,
    redaction: Redaction,
    persons: PersonKeys,
}

impl ViewPlan {
    /// Compiles the view of `shared` that releases exactly what `rules` name (see the module docs).
    ///
    /// `view_name` names the view's namespace `unsilo.view.<view_name>`, lower-cased with anything but
    /// `[a-z0-9]` turned into `_`. Errors name the offending rule path: unknown path (with the closest existing
    /// one), duplicate rule, treatment not applicable to the field's type, `generalise` without a
    /// generalisation, rules below a dropped field, or an empty rule set.
    pub fn build(
        shared: &SharedSchema,
        rules: &[FieldRule],
        view_name: &str,
    ) -> Result<ViewPlan, ViewError> {
        if rules.is_empty() {
            return Err(ViewError::EmptyRules);
        }
        let sanitised = sanitise_view_name(view_name)?;
        let root = parse_shared(shared)?;
        let mut known = Vec::new();
        collect_paths(&SType::Record(Box::new(root.clone())), "", &mut known);
        let known_set: HashSet<&str> = known.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        let mut sel = Sel::default();
        for rule in rules {
            if !known_set.contains(rule.field.as_str()) {
                return Err(ViewError::UnknownField {
                    path: rule.field.clone(),
                    schema: shared.name().to_string(),
                    suggestion: suggest(&rule.field, &known),
                });
            }
            if !seen.insert(rule.field.as_str()) {
                return Err(ViewError::DuplicateRule {
                    path: rule.field.clone(),
                });
            }
            sel.insert(&rule.field, rule.treatment);
        }
        let mut builder = Builder {
            schema_name: shared.name(),
            root: &root,
            released: Vec::new(),
            cert_clear: false,
            phone_clear: false,
        };
        let Some((vtype, plan)) = builder.record(&root, Some(&sel), None, "")? else {
            // Only drop rules: the view would be an empty record, which Avro cannot express usefully.
            return Err(ViewError::EmptyRules);
        };
        let namespace = format!("{VIEW_NAMESPACE_PREFIX}.{sanitised}");
        let mut emitter = Emitter {
            namespace,
            assigned: HashMap::new(),
            used: HashSet::new(),
            defined: HashSet::new(),
        };
        let schema_json = emitter.emit(&vtype);
        let schema =
            Schema::parse(&schema_json).map_err(|e| ViewError::ViewSchema(e.to_string()))?;
        let mut effective = rules.to_vec();
        effective.sort_by(|a, b| a.field.cmp(&b.field));
        let mut released = builder.released;
        released.sort_by(|a, b| a.field.cmp(&b.field));
        let redaction = Redaction {
            ids: !builder.cert_clear,
            phones: !builder.phone_clear,
        };
        Ok(ViewPlan {
            view_name: sanitised,
            schema_json,
            schema,
            rules: effective,
            released,
            root: plan,
            redaction,
            persons: PersonKeys::from_record(&root),
        })
    }

    /// The sanitised view name (the last component of the view namespace).
    pub fn name(&self) -> &str {
        &self.view_name
    }

    /// The view schema as JSON, self-contained (named types defined at first use, referenced after).
    pub fn schema_json(&self) -> &Json {
        &self.schema_json
    }

    /// The parsed view schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The rules the plan was built from, sorted by path.
    pub fn rules(&self) -> &[FieldRule] {
        &self.rules
    }

    /// Every released leaf path with the treatment it actually gets, sorted by path: a record released in clear
    /// expanded to its leaves, dropped leaves left out. This is what a subscriber receives, for audit.
    pub fn released(&self) -> &[FieldRule] {
        &self.released
    }

    /// What free text released in clear gets redacted.
    pub fn redaction(&self) -> Redaction {
        self.redaction
    }

    /// Projects a record of the shared schema onto the view; the result validates against [`Self::schema`].
    pub fn apply(&self, record: &Value, key: &PseudonymKey) -> Result<Value, ViewError> {
        let Value::Record(fields) = record else {
            return Err(ViewError::RecordShape {
                path: String::new(),
                reason: format!(
                    "expected a record, found {}",
                    unsilo_schemas::avro::value_kind(record)
                ),
            });
        };
        let ctx = Ctx {
            root: fields,
            key,
            redaction: self.redaction,
        };
        apply_record(&self.root, fields, &ctx)
    }

    /// Pseudonyms of every ID number (`x-pii: cert_no`) in `record` — the same as [`person_keys`], without
    /// re-reading the schema.
    pub fn person_keys(&self, record: &Value, key: &PseudonymKey) -> Vec<String> {
        self.persons.keys(record, key)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------------------------

struct Ctx<'a> {
    root: &'a [(String, Value)],
    key: &'a PseudonymKey,
    redaction: Redaction,
}

fn shape(path: &str, expected: &str, found: &Value) -> ViewError {
    ViewError::RecordShape {
        path: path.to_string(),
        reason: format!(
            "expected {expected}, found {}",
            unsilo_schemas::avro::value_kind(found)
        ),
    }
}

fn field_value<'v>(
    fields: &'v [(String, Value)],
    index: usize,
    name: &str,
    path: &str,
) -> Result<&'v Value, ViewError> {
    match fields.get(index) {
        Some((n, v)) if n == name => Ok(v),
        _ => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| ViewError::RecordShape {
                path: path.to_string(),
                reason: "field is missing".into(),
            }),
    }
}

fn apply_record(
    plan: &RecordPlan,
    fields: &[(String, Value)],
    ctx: &Ctx<'_>,
) -> Result<Value, ViewError> {
    let mut out = Vec::with_capacity(plan.fields.len());
    for f in &plan.fields {
        let v = field_value(fields, f.src, &f.name, &f.path)?;
        out.push((
            f.name.clone(),
            apply_action(&f.action, v, fields, &f.path, ctx)?,
        ));
    }
    Ok(Value::Record(out))
}

fn apply_action(
    action: &Action,
    v: &Value,
    parent: &[(String, Value)],
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Value, ViewError> {
    match action {
        Action::Leaf(leaf) => apply_leaf(leaf, v, parent, path, ctx),
        Action::Record(plan) => match v {
            Value::Record(fields) => apply_record(plan, fields, ctx),
            other => Err(shape(path, "a record", other)),
        },
        Action::Array(inner) => match v {
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|item| apply_action(inner, item, parent, path, ctx))
                    .collect::<Result<_, _>>()?,
            )),
            other => Err(shape(path, "an array", other)),
        },
        Action::Map(inner) => match v {
            Value::Map(items) => Ok(Value::Map(
                items
                    .iter()
                    .map(|(k, item)| Ok((k.clone(), apply_action(inner, item, parent, path, ctx)?)))
                    .collect::<Result<_, ViewError>>()?,
            )),
            other => Err(shape(path, "a map", other)),
        },
        Action::Union { branches, null_out } => {
            let (index, inner) = match v {
                Value::Union(i, inner) => (*i as usize, inner.as_ref()),
                // An unwrapped value (e.g. built by hand): null goes to the null branch, anything else to the
                // only non-null branch of an optional.
                Value::Null => (
                    branches
                        .iter()
                        .position(|b| b.as_ref().is_some_and(|(o, _)| o == null_out))
                        .unwrap_or(usize::MAX),
                    v,
                ),
                other => (
                    branches
                        .iter()
                        .position(|b| b.as_ref().is_some_and(|(o, _)| o != null_out))
                        .filter(|_| branches.len() == 2)
                        .ok_or_else(|| shape(path, "a union value", other))?,
                    v,
                ),
            };
            match branches.get(index) {
                Some(Some((out, action))) => Ok(Value::Union(
                    *out,
                    Box::new(apply_action(action, inner, parent, path, ctx)?),
                )),
                Some(None) => Ok(Value::Union(*null_out, Box::new(Value::Null))),
                None => Err(ViewError::RecordShape {
                    path: path.to_string(),
                    reason: format!("union branch {index} does not exist"),
                }),
            }
        }
    }
}

fn apply_leaf(
    leaf: &Leaf,
    v: &Value,
    parent: &[(String, Value)],
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Value, ViewError> {
    fn text<'v>(v: &'v Value, path: &str) -> Result<&'v str, ViewError> {
        match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(shape(path, "a string", other)),
        }
    }
    Ok(match leaf {
        Leaf::Clone => v.clone(),
        Leaf::Redact => {
            Value::String(treat::redact_free_text(text(v, path)?, ctx.redaction).into_owned())
        }
        Leaf::Mask(style) => Value::String(mask::mask(*style, text(v, path)?)),
        Leaf::Pseudonymise(domain) => {
            Value::String(treat::pseudonym(ctx.key, domain, text(v, path)?))
        }
        Leaf::Address(source) => {
            let code = match source {
                AddressSource::Sibling(i) => parent.get(*i).map(|(_, v)| v),
                AddressSource::Envelope { envelope, region } => match ctx.root.get(*envelope) {
                    Some((_, Value::Record(env))) => env.get(*region).map(|(_, v)| v),
                    _ => None,
                },
            };
            match code {
                Some(Value::String(code)) => Value::String(code.clone()),
                Some(other) => {
                    return Err(shape(
                        path,
                        "a string village/region code next to it",
                        other,
                    ))
                }
                None => {
                    return Err(ViewError::RecordShape {
                        path: path.to_string(),
                        reason: "the village/region code the address generalises to is missing"
                            .into(),
                    })
                }
            }
        }
        Leaf::Year => match v {
            Value::Date(d) | Value::Int(d) => Value::Int(treat::birth_year(*d)),
            other => return Err(shape(path, "a date", other)),
        },
        Leaf::Coordinate => match v {
            Value::Double(x) => Value::Double(treat::round_coordinate(*x)),
            Value::Float(x) => Value::Float(treat::round_coordinate(f64::from(*x)) as f32),
            other => return Err(shape(path, "a coordinate", other)),
        },
        Leaf::Day => match v {
            Value::TimestampMillis(t) | Value::Long(t) => {
                Value::TimestampMillis(treat::day_start_beijing(*t))
            }
            other => return Err(shape(path, "a timestamp-millis", other)),
        },
        Leaf::County => Value::String(treat::county_of(text(v, path)?)),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Person keys
// ---------------------------------------------------------------------------------------------------------------

/// Where ID numbers sit in a record, compiled from the schema.
#[derive(Clone, Debug)]
enum Extract {
    CertNo,
    Record(Vec<(usize, String, Extract)>),
    Each(Box<Extract>),
    Union(Vec<Option<Extract>>),
}

/// Finds the ID numbers (`x-pii: cert_no`) of records of one schema and pseudonymises them.
#[derive(Clone, Debug)]
struct PersonKeys {
    root: Option<Extract>,
}

impl PersonKeys {
    fn from_record(rec: &SRecord) -> Self {
        Self {
            root: Self::record(rec),
        }
    }

    fn record(rec: &SRecord) -> Option<Extract> {
        let fields: Vec<_> = rec
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let ex = if f.pii == Some(PiiKind::CertNo) {
                    Self::leaf(&f.ty)
                } else {
                    Self::nested(&f.ty)
                };
                ex.map(|ex| (i, f.name.clone(), ex))
            })
            .collect();
        (!fields.is_empty()).then_some(Extract::Record(fields))
    }

    /// A cert_no field: its string values, through arrays, maps and unions.
    fn leaf(ty: &SType) -> Option<Extract> {
        match ty {
            SType::Prim {
                base: Base::String, ..
            } => Some(Extract::CertNo),
            SType::Array(i) | SType::Map(i) => Self::leaf(i).map(|e| Extract::Each(Box::new(e))),
            SType::Union(bs) => {
                let branches: Vec<_> = bs.iter().map(Self::leaf).collect();
                branches
                    .iter()
                    .any(Option::is_some)
                    .then_some(Extract::Union(branches))
            }
            _ => None,
        }
    }

    fn nested(ty: &SType) -> Option<Extract> {
        match ty {
            SType::Record(r) => Self::record(r),
            SType::Array(i) | SType::Map(i) => Self::nested(i).map(|e| Extract::Each(Box::new(e))),
            SType::Union(bs) => {
                let branches: Vec<_> = bs.iter().map(Self::nested).collect();
                branches
                    .iter()
                    .any(Option::is_some)
                    .then_some(Extract::Union(branches))
            }
            _ => None,
        }
    }

    fn keys(&self, record: &Value, key: &PseudonymKey) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            Self::walk(root, record, key, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    fn walk(ex: &Extract, v: &Value, key: &PseudonymKey, out: &mut Vec<String>) {
        match (ex, v) {
            (_, Value::Null) => {}
            (Extract::CertNo, Value::String(s)) if !s.trim().is_empty() => {
                out.push(treat::pseudonym(key, PiiKind::CertNo.as_str(), s));
            }
            (Extract::Record(fields), Value::Record(values)) => {
                for (i, name, ex) in fields {
                    if let Ok(v) = field_value(values, *i, name, name) {
                        Self::walk(ex, v, key, out);
                    }
                }
            }
            (Extract::Each(ex), Value::Array(items)) => {
                items.iter().for_each(|i| Self::walk(ex, i, key, out))
            }
            (Extract::Each(ex), Value::Map(items)) => {
                items.values().for_each(|i| Self::walk(ex, i, key, out))
            }
            (Extract::Union(branches), Value::Union(i, inner)) => {
                if let Some(Some(ex)) = branches.get(*i as usize) {
                    Self::walk(ex, inner, key, out);
                }
            }
            // An unwrapped optional value.
            (Extract::Union(branches), other) => {
                for ex in branches.iter().flatten() {
                    Self::walk(ex, other, key, out);
                }
            }
            _ => {}
        }
    }
}

/// Pseudonyms (kind `cert_no`, see [`treat::pseudonym`]) of every ID number in `record`, sorted and without
/// duplicates: the keys under which an audit log records "data about this person went to subscriber X". They
/// equal what a view with `pseudonymise` on those fields releases. Values that are null, empty or not strings
/// are skipped. Where the ID numbers sit is worked out once per shared schema and cached.
pub fn person_keys(shared: &SharedSchema, record: &Value, key: &PseudonymKey) -> Vec<String> {
    static CACHE: LazyLock<RwLock<HashMap<String, Arc<PersonKeys>>>> =
        LazyLock::new(Default::default);
    let cached = CACHE
        .read()
        .ok()
        .and_then(|cache| cache.get(shared.full_name()).cloned());
    let extractor = match cached {
        Some(extractor) => extractor,
        None => {
            let extractor = Arc::new(match parse_shared(shared) {
                Ok(root) => PersonKeys::from_record(&root),
                // Shared schemas always parse (the catalog's tests guarantee it); nothing to extract otherwise.
                Err(_) => PersonKeys { root: None },
            });
            if let Ok(mut cache) = CACHE.write() {
                cache.insert(shared.full_name().to_string(), Arc::clone(&extractor));
            }
            extractor
        }
    };
    extractor.keys(record, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use unsilo_schemas::{example_record, json_to_avro, shared_schema};

    fn rule(field: &str, treatment: Treatment) -> FieldRule {
        FieldRule {
            field: field.into(),
            treatment,
        }
    }

    fn key() -> PseudonymKey {
        PseudonymKey::from_bytes([42; 32])
    }

    fn shared(name: &str) -> SharedSchema {
        shared_schema(name).unwrap().clone()
    }

    fn example(name: &str) -> Value {
        let s = shared(name);
        json_to_avro(&example_record(name).unwrap(), s.avro()).unwrap()
    }

    /// Round-trips a view value through Avro binary and returns the decoded value.
    fn round_trip(plan: &ViewPlan, v: &Value) -> Value {
        assert!(v.validate(plan.schema()), "does not validate: {v:?}");
        let bytes = apache_avro::to_avro_datum(plan.schema(), v.clone()).unwrap();
        apache_avro::from_avro_datum(plan.schema(), &mut bytes.as_slice(), None).unwrap()
    }

    fn get<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
        let mut cur = v;
        for part in path.split('.') {
            if let Value::Union(_, inner) = cur {
                cur = inner;
            }
            let Value::Record(fields) = cur else {
                return None;
            };
            cur = fields.iter().find(|(n, _)| n == part).map(|(_, v)| v)?;
        }
        Some(match cur {
            Value::Union(_, inner) => inner,
            v => v,
        })
    }

    fn string(v: Option<&Value>) -> &str {
        match v {
            Some(Value::String(s)) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    fn field_names(schema: &Json) -> Vec<String> {
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn field<'j>(record: &'j Json, name: &str) -> &'j Json {
        record["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no field {name} in {record}"))
    }

    fn typical_grid_event_rules() -> Vec<FieldRule> {
        vec![
            rule("envelope.region_code", Treatment::Clear),
            rule("envelope.record_id", Treatment::Clear),
            rule("event_type_name", Treatment::Clear),
            rule("category", Treatment::Clear),
            rule("description", Treatment::Clear),
            rule("reported_time", Treatment::Generalise),
            rule("location.address", Treatment::Generalise),
            rule("parties.cert_no", Treatment::Pseudonymise),
            rule("parties.name", Treatment::Mask),
        ]
    }

    #[test]
    fn grid_event_view_schema_shape() {
        let s = shared("grid_event");
        let plan = ViewPlan::build(&s, &typical_grid_event_rules(), "Civil Affairs/低保").unwrap();
        let js = plan.schema_json();
        assert_eq!(plan.name(), "civil_affairs___");
        assert_eq!(js["name"], "GridEvent");
        assert_eq!(js["namespace"], "unsilo.view.civil_affairs___");
        // Default deny: only named fields, in schema order.
        assert_eq!(
            field_names(js),
            [
                "envelope",
                "event_type_name",
                "category",
                "description",
                "reported_time",
                "location",
                "parties"
            ]
        );
        let env = &field(js, "envelope")["type"];
        assert_eq!(field_names(env), ["record_id", "region_code"]);
        assert_eq!(env["namespace"], "unsilo.view.civil_affairs___");
        // Pseudonymised nullable → nullable string; masked → string; tags and docs kept; treatment recorded.
        let party = &field(js, "parties")["type"]["items"];
        assert_eq!(field_names(party), ["name", "cert_no"]);
        let cert = field(party, "cert_no");
        assert_eq!(cert["type"], json!(["null", "string"]));
        assert_eq!(cert["x-treatment"], "pseudonymise");
        assert_eq!(cert["x-pii"], "cert_no");
        assert_eq!(cert["x-sensitivity"], "S4");
        assert!(cert["doc"].as_str().unwrap().starts_with("身份证号"));
        assert_eq!(cert["default"], Json::Null);
        assert_eq!(field(party, "name")["type"], "string");
        assert_eq!(field(party, "name")["x-treatment"], "mask");
        // Generalised: address → string, timestamp stays a timestamp.
        let loc = &field(js, "location")["type"];
        assert_eq!(field_names(loc), ["address"]);
        assert_eq!(field(loc, "address")["x-treatment"], "generalise");
        assert_eq!(
            field(js, "reported_time")["type"],
            json!({"type": "long", "logicalType": "timestamp-millis"})
        );
        // Enum renamed into the view namespace, symbols kept.
        let cat = &field(js, "category")["type"];
        assert_eq!(cat["name"], "GridEventCategory");
        assert_eq!(cat["namespace"], "unsilo.view.civil_affairs___");
        assert_eq!(field(js, "category")["default"], "UNKNOWN");
        // No shared names anywhere.
        assert!(!js.to_string().contains("unsilo.grid"), "{js}");
        assert!(!js.to_string().contains("unsilo.common"), "{js}");
        // The schema the plan holds is the JSON's.
        assert_eq!(plan.schema(), &Schema::parse(js).unwrap());
        assert_eq!(plan.rules().first().unwrap().field, "category");
        assert!(plan.rules().windows(2).all(|w| w[0].field < w[1].field));
        assert_eq!(
            plan.redaction(),
            Redaction {
                ids: true,
                phones: true
            }
        );
    }

    #[test]
    fn grid_event_apply_treats_each_field() {
        let s = shared("grid_event");
        let plan = ViewPlan::build(&s, &typical_grid_event_rules(), "v1").unwrap();
        let record = example("grid_event");
        let v = plan.apply(&record, &key()).unwrap();
        let v = round_trip(&plan, &v);
        assert_eq!(string(get(&v, "envelope.region_code")), "610921100001");
        // Address → the envelope's region (Location has no village_code).
        assert_eq!(string(get(&v, "location.address")), "610921100001");
        assert_eq!(
            get(&v, "reported_time"),
            Some(&Value::TimestampMillis(1_718_640_000_000))
        );
        let Some(Value::Array(parties)) = get(&v, "parties") else {
            panic!()
        };
        assert_eq!(parties.len(), 2);
        assert_eq!(string(get(&parties[0], "name")), "张**");
        assert_eq!(
            string(get(&parties[0], "cert_no")),
            treat::pseudonym(&key(), "cert_no", "610921196803124579")
        );
        assert!(get(&parties[0], "phone").is_none());
        assert!(get(&v, "title").is_none() && get(&v, "reporter").is_none());
        // Joinable: person keys of the source equal the released pseudonyms.
        let mut released: Vec<String> = parties
            .iter()
            .map(|p| string(get(p, "cert_no")).to_string())
            .collect();
        released.sort();
        assert_eq!(person_keys(&s, &record, &key()), released);
        assert_eq!(plan.person_keys(&record, &key()), released);
        // Another key, other pseudonyms.
        let other = plan
            .apply(&record, &PseudonymKey::from_bytes([1; 32]))
            .unwrap();
        assert_ne!(other, v);
    }

    #[test]
    fn free_text_redaction_follows_clear_identifiers() {
        let s = shared("grid_event");
        let mut record = example("grid_event");
        let Value::Record(fields) = &mut record else {
            panic!()
        };
        let text = "张德明(61092119680312457x)电话15929436821";
        fields
            .iter_mut()
            .find(|(n, _)| n == "description")
            .unwrap()
            .1 = Value::String(text.into());

        let plan = ViewPlan::build(&s, &[rule("description", Treatment::Clear)], "t").unwrap();
        let v = plan.apply(&record, &key()).unwrap();
        assert_eq!(
            string(get(&v, "description")),
            "张德明([证件号已隐去])电话[手机号已隐去]"
        );

        let rules = [
            rule("description", Treatment::Clear),
            rule("parties.cert_no", Treatment::Clear),
        ];
        let plan = ViewPlan::build(&s, &rules, "t").unwrap();
        assert_eq!(
            string(get(&plan.apply(&record, &key()).unwrap(), "description")),
            "张德明(61092119680312457x)电话[手机号已隐去]"
        );

        // A phone released in clear through a whole record.
        let rules = [
            rule("description", Treatment::Clear),
            rule("reporter", Treatment::Clear),
        ];
        let plan = ViewPlan::build(&s, &rules, "t").unwrap();
        assert_eq!(
            plan.redaction(),
            Redaction {
                ids: true,
                phones: false
            }
        );
        assert_eq!(
            string(get(&plan.apply(&record, &key()).unwrap(), "description")),
            "张德明([证件号已隐去])电话15929436821"
        );

        // Free text inside arrays of records is redacted too; masked free text is not "clear".
        let rules = [
            rule("workflow.opinion", Treatment::Clear),
            rule("title", Treatment::Mask),
        ];
        let plan = ViewPlan::build(&s, &rules, "t").unwrap();
        assert!(plan
            .released()
            .iter()
            .any(|r| r.field == "workflow.opinion"));
        round_trip(&plan, &plan.apply(&record, &key()).unwrap());
    }

    #[test]
    fn clear_record_releases_subtree_and_specific_rules_override() {
        let s = shared("grid_event");
        let rules = [
            rule("location", Treatment::Clear),
            rule("location.address", Treatment::Drop),
            rule("location.lng", Treatment::Generalise),
            rule("envelope", Treatment::Clear),
        ];
        let plan = ViewPlan::build(&s, &rules, "t").unwrap();
        let js = plan.schema_json();
        assert_eq!(field_names(js), ["envelope", "location"]);
        assert_eq!(
            field_names(&field(js, "location")["type"]),
            ["lng", "lat", "coord_system"]
        );
        assert_eq!(field_names(&field(js, "envelope")["type"]).len(), 11);
        let v = round_trip(&plan, &plan.apply(&example("grid_event"), &key()).unwrap());
        assert_eq!(get(&v, "location.lng"), Some(&Value::Double(108.508)));
        assert_eq!(get(&v, "location.lat"), Some(&Value::Double(32.893562)));
        let released: Vec<(&str, Treatment)> = plan
            .released()
            .iter()
            .map(|r| (r.field.as_str(), r.treatment))
            .collect();
        assert!(released.contains(&("location.lng", Treatment::Generalise)));
        assert!(released.contains(&("envelope.grid_code", Treatment::Clear)));
        assert!(!released.iter().any(|(p, _)| *p == "location.address"));
        assert_eq!(released.len(), 3 + 11);
    }

    #[test]
    fn household_view_generalises_address_to_its_village() {
        let s = shared("household");
        let rules = [
            rule("address", Treatment::Generalise),
            rule("head_name", Treatment::Mask),
            rule("head_cert_no", Treatment::Mask),
            rule("phone", Treatment::Mask),
            rule("household_id", Treatment::Pseudonymise),
            rule("lng", Treatment::Generalise),
            rule("envelope.region_code", Treatment::Generalise),
            rule("tags", Treatment::Clear),
        ];
        let plan = ViewPlan::build(&s, &rules, "hh").unwrap();
        let js = plan.schema_json();
        assert_eq!(field(js, "phone")["type"], json!(["null", "string"]));
        assert_eq!(field(js, "head_cert_no")["type"], "string");
        assert_eq!(
            field(js, "tags")["type"],
            json!({"type": "array", "items": "string"})
        );
        assert_eq!(field(js, "tags")["default"], json!([]));
        let record = example("household");
        let v = round_trip(&plan, &plan.apply(&record, &key()).unwrap());
        let village = string(get(&record, "village_code")).to_string();
        assert_eq!(string(get(&v, "address")), village);
        let region = string(get(&record, "envelope.region_code"));
        assert_eq!(
            string(get(&v, "envelope.region_code")),
            format!("{}000000", &region[..6])
        );
        let cert = string(get(&record, "head_cert_no"));
        let masked = string(get(&v, "head_cert_no"));
        assert_eq!(masked.chars().count(), 18);
        assert!(
            masked.starts_with(&cert[..6])
                && masked.ends_with(&cert[14..])
                && masked.contains("********")
        );
        assert!(string(get(&v, "household_id")).starts_with("p1_"));
    }

    #[test]
    fn resident_view_generalises_birth_date_and_pseudonymises_arrays() {
        let s = shared("resident");
        let rules = [
            rule("birth_date", Treatment::Generalise),
            rule("cert_no", Treatment::Pseudonymise),
            rule("household_id", Treatment::Pseudonymise),
            rule("current_address", Treatment::Generalise),
            rule("registered_address", Treatment::Generalise),
            rule("special_groups", Treatment::Clear),
            rule("gender", Treatment::Clear),
        ];
        let plan = ViewPlan::build(&s, &rules, "res").unwrap();
        let js = plan.schema_json();
        assert_eq!(field(js, "birth_date")["type"], json!(["null", "int"]));
        assert_eq!(
            field(js, "registered_address")["type"],
            json!(["null", "string"])
        );
        let record = example("resident");
        let v = round_trip(&plan, &plan.apply(&record, &key()).unwrap());
        if let Some(Value::Date(d)) = get(&record, "birth_date") {
            assert_eq!(
                get(&v, "birth_date"),
                Some(&Value::Int(treat::birth_year(*d)))
            );
        } else {
            panic!("example resident has a birth date");
        }
        assert_eq!(
            string(get(&v, "current_address")),
            string(get(&record, "village_code"))
        );
        // cert_no and person_ref pseudonyms are domain-separated.
        let cert = string(get(&record, "cert_no"));
        assert_eq!(
            string(get(&v, "cert_no")),
            treat::pseudonym(&key(), "cert_no", cert)
        );
        assert_eq!(
            person_keys(&s, &record, &key()),
            vec![treat::pseudonym(&key(), "cert_no", cert)]
        );

        // The household id pseudonym in a resident view joins with grid_event's household_ids.
        let ge = shared("grid_event");
        let plan_ge =
            ViewPlan::build(&ge, &[rule("household_ids", Treatment::Pseudonymise)], "ge").unwrap();
        assert_eq!(
            field(plan_ge.schema_json(), "household_ids")["type"],
            json!({"type": "array", "items": "string"})
        );
        let v_ge = plan_ge.apply(&example("grid_event"), &key()).unwrap();
        let Some(Value::Array(ids)) = get(&v_ge, "household_ids") else {
            panic!()
        };
        assert_eq!(
            ids[0],
            Value::String(treat::pseudonym(
                &key(),
                "person_ref",
                "HH6109211000010030017"
            ))
        );
    }

    #[test]
    fn record_types_projected_differently_get_distinct_names() {
        let party = |fields: &[&str]| VType::Record {
            full: "unsilo.x.Party".into(),
            short: "Party".into(),
            doc: None,
            fields: fields
                .iter()
                .map(|f| VField {
                    name: f.to_string(),
                    attrs: Map::new(),
                    ty: VType::Json(json!("string")),
                })
                .collect(),
        };
        let root = VType::Record {
            full: "unsilo.x.Root".into(),
            short: "Root".into(),
            doc: None,
            fields: ["a", "b", "c"]
                .iter()
                .zip([party(&["name"]), party(&["cert_no"]), party(&["name"])])
                .map(|(n, ty)| VField {
                    name: n.to_string(),
                    attrs: Map::new(),
                    ty,
                })
                .collect(),
        };
        let mut emitter = Emitter {
            namespace: "unsilo.view.t".into(),
            assigned: HashMap::new(),
            used: HashSet::new(),
            defined: HashSet::new(),
        };
        let js = emitter.emit(&root);
        assert_eq!(field(&js, "a")["type"]["name"], "Party");
        assert_eq!(field(&js, "b")["type"]["name"], "Party_2");
        assert_eq!(field(&js, "c")["type"], "unsilo.view.t.Party");
        assert!(Schema::parse(&js).is_ok(), "{js}");
    }

    #[test]
    fn enums_used_twice_are_defined_once() {
        // WorkflowStage is an enum used twice; reused by reference the second time.
        let s = shared("grid_event");
        let plan = ViewPlan::build(
            &s,
            &[
                rule("workflow.stage", Treatment::Clear),
                rule("status", Treatment::Clear),
            ],
            "t",
        )
        .unwrap();
        let js = plan.schema_json();
        assert_eq!(field(js, "status")["type"]["name"], "WorkflowStage");
        assert_eq!(
            field(&field(js, "workflow")["type"]["items"], "stage")["type"],
            "unsilo.view.t.WorkflowStage"
        );
        round_trip(&plan, &plan.apply(&example("grid_event"), &key()).unwrap());
    }

    #[test]
    fn dept_record_union_branches() {
        let s = shared("dept_record");
        let rules = [
            rule("payload.DibaoRecipient.cert_no", Treatment::Mask),
            rule("payload.DibaoRecipient.village_code", Treatment::Clear),
        ];
        let plan = ViewPlan::build(&s, &rules, "mz").unwrap();
        let payload = &field(plan.schema_json(), "payload")["type"];
        // Withheld branches become null.
        assert_eq!(payload[0], "null");
        assert_eq!(payload.as_array().unwrap().len(), 2);
        let v = round_trip(&plan, &plan.apply(&example("dept_record"), &key()).unwrap());
        assert_eq!(string(get(&v, "payload.cert_no")), "610921********402X");
        // A police incident under this view: payload null.
        let known = {
            let mut k = Vec::new();
            collect_paths(
                &SType::Record(Box::new(parse_shared(&s).unwrap())),
                "",
                &mut k,
            );
            k
        };
        for tag in s.field_tags() {
            assert!(
                known.contains(&tag.path),
                "{} missing from rule paths",
                tag.path
            );
        }
        assert!(matches!(
            ViewPlan::build(&s, &[rule("payload", Treatment::Mask)], "x"),
            Err(ViewError::NotApplicable { .. })
        ));
        let plan = ViewPlan::build(&s, &[rule("payload", Treatment::Clear)], "x").unwrap();
        round_trip(&plan, &plan.apply(&example("dept_record"), &key()).unwrap());
        assert_eq!(person_keys(&s, &example("dept_record"), &key()).len(), 1);
    }

    #[test]
    fn build_errors_name_the_field() {
        let s = shared("grid_event");
        let err = |rules: &[FieldRule]| ViewPlan::build(&s, rules, "t").unwrap_err();
        assert_eq!(err(&[]), ViewError::EmptyRules);
        assert_eq!(
            err(&[rule("title", Treatment::Drop)]),
            ViewError::EmptyRules
        );
        match err(&[rule("parties.cert", Treatment::Clear)]) {
            ViewError::UnknownField {
                path, suggestion, ..
            } => {
                assert_eq!(path, "parties.cert");
                assert_eq!(suggestion.as_deref(), Some("parties.cert_no"));
            }
            other => panic!("{other:?}"),
        }
        match err(&[rule("cert_no", Treatment::Clear)]) {
            ViewError::UnknownField { suggestion, .. } => {
                assert_eq!(suggestion.as_deref(), Some("parties.cert_no"))
            }
            other => panic!("{other:?}"),
        }
        assert!(err(&[rule("title.x", Treatment::Clear)])
            .to_string()
            .contains("title.x"));
        assert_eq!(
            err(&[
                rule("title", Treatment::Clear),
                rule("title", Treatment::Mask)
            ]),
            ViewError::DuplicateRule {
                path: "title".into()
            }
        );
        let na = err(&[rule("attachment_count", Treatment::Mask)]);
        assert!(
            matches!(&na, ViewError::NotApplicable { path, treatment: Treatment::Mask, .. } if path == "attachment_count"),
            "{na}"
        );
        assert!(matches!(
            err(&[rule("category", Treatment::Pseudonymise)]),
            ViewError::NotApplicable { .. }
        ));
        let rec = err(&[rule("location", Treatment::Pseudonymise)]);
        assert!(
            matches!(&rec, ViewError::NotApplicable { path, .. } if path == "location"),
            "{rec}"
        );
        assert_eq!(
            err(&[rule("title", Treatment::Generalise)]),
            ViewError::NoGeneralisation {
                path: "title".into()
            }
        );
        assert_eq!(
            err(&[
                rule("location", Treatment::Drop),
                rule("location.lat", Treatment::Clear)
            ]),
            ViewError::ConflictingRules {
                path: "location.lat".into(),
                dropped: "location".into()
            }
        );
        assert_eq!(
            ViewPlan::build(&s, &[rule("title", Treatment::Clear)], "视图").unwrap_err(),
            ViewError::InvalidViewName("视图".into())
        );
        assert_eq!(
            ViewPlan::build(&s, &[rule("title", Treatment::Clear)], "2024 view")
                .unwrap()
                .name(),
            "v2024_view"
        );
    }

    #[test]
    fn apply_rejects_records_of_another_shape() {
        let s = shared("grid_event");
        let plan = ViewPlan::build(&s, &[rule("location.address", Treatment::Mask)], "t").unwrap();
        assert!(matches!(
            plan.apply(&Value::Null, &key()),
            Err(ViewError::RecordShape { .. })
        ));
        let other = example("household");
        let e = plan.apply(&other, &key()).unwrap_err();
        assert!(e.to_string().contains("location"), "{e}");
    }

    #[test]
    fn plans_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
        assert_send_sync::<ViewPlan>();
    }

    // -------------------------------------------------------------------------------------------------------
    // Property test
    // -------------------------------------------------------------------------------------------------------

    /// A valid-looking 18-character ID number.
    fn id_number() -> impl Strategy<Value = String> {
        (
            "[0-9]{17}",
            prop_oneof![Just("X".to_string()), Just("x".to_string()), "[0-9]"],
        )
            .prop_map(|(a, b)| format!("{a}{b}"))
    }

    fn mobile() -> impl Strategy<Value = String> {
        ("1[3-9][0-9]{9}").prop_map(|s| s)
    }

    /// Free text with embedded IDs and mobiles, always bounded by non-digits.
    fn free_text() -> impl Strategy<Value = (String, Vec<String>)> {
        prop::collection::vec(
            prop_oneof![
                "[\\u4e00-\\u9fa5a-zA-Z，。 ]{0,12}".prop_map(|s| (s, None)),
                "[0-9]{1,6}".prop_map(|s| (s, None)),
                id_number().prop_map(|s| (s.clone(), Some(s))),
                mobile().prop_map(|s| (s.clone(), Some(s))),
            ],
            0..8,
        )
        .prop_map(|parts| {
            let mut text = String::new();
            let mut secrets = Vec::new();
            for (part, secret) in parts {
                text.push('、');
                text.push_str(&part);
                secrets.extend(secret);
            }
            (text, secrets)
        })
    }

    /// Strings for other fields: Chinese names, IDs, mobiles, addresses, codes.
    fn any_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[\\u4e00-\\u9fa5]{1,4}",
            id_number(),
            mobile(),
            "[\\u4e00-\\u9fa5]{3,20}[0-9]{1,3}号",
            "[0-9]{12}",
            "[A-Za-z0-9\\u4e00-\\u9fa5]{0,10}",
        ]
    }

    /// Randomises every string and number below `v`, following `ty`; free-text fields get text with secrets.
    fn randomise(
        v: &mut Value,
        ty: &SType,
        pii: Option<PiiKind>,
        runner: &mut proptest::test_runner::TestRunner,
        secrets: &mut Vec<String>,
    ) {
        match (v, ty) {
            (Value::Record(fields), SType::Record(rec)) => {
                for ((_, fv), f) in fields.iter_mut().zip(&rec.fields) {
                    randomise(fv, &f.ty, f.pii, runner, secrets);
                }
            }
            (Value::Array(items), SType::Array(inner)) => {
                for item in items {
                    randomise(item, inner, pii, runner, secrets);
                }
            }
            (Value::Union(i, inner), SType::Union(bs)) => {
                if let Some(b) = bs.get(*i as usize) {
                    randomise(inner, b, pii, runner, secrets);
                }
            }
            (Value::String(s), _) => {
                if pii == Some(PiiKind::FreeText) {
                    let (text, found) = free_text().new_tree(runner).unwrap().current();
                    *s = text;
                    secrets.extend(found);
                } else {
                    *s = any_string().new_tree(runner).unwrap().current();
                }
            }
            (Value::Double(x), _) => {
                *x = (0u32..200_000_000).new_tree(runner).unwrap().current() as f64 / 1e6
            }
            (Value::Int(x), _) | (Value::Date(x), _) => {
                *x = (-30_000i32..30_000).new_tree(runner).unwrap().current()
            }
            (Value::TimestampMillis(x), _) | (Value::Long(x), _) => {
                *x = (-10_000_000_000_000i64..10_000_000_000_000)
                    .new_tree(runner)
                    .unwrap()
                    .current()
            }
            _ => {}
        }
    }

    /// Leaf paths present in a view value (arrays transparent, unions unwrapped), collected with their strings.
    fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Vec<String>)>) {
        match v {
            Value::Record(fields) => {
                for (n, fv) in fields {
                    leaves(fv, &join(prefix, n), out);
                }
            }
            Value::Union(_, inner) => leaves(inner, prefix, out),
            Value::Array(items) => {
                out.push((prefix.to_string(), Vec::new()));
                for i in items {
                    leaves(i, prefix, out);
                }
            }
            Value::String(s) => out.push((prefix.to_string(), vec![s.clone()])),
            _ => out.push((prefix.to_string(), Vec::new())),
        }
    }

    /// Source strings per leaf path.
    fn source_strings(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Record(fields) => {
                for (n, fv) in fields {
                    source_strings(fv, &join(prefix, n), out);
                }
            }
            Value::Union(_, inner) => source_strings(inner, prefix, out),
            Value::Array(items) => items.iter().for_each(|i| source_strings(i, prefix, out)),
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            _ => {}
        }
    }

    /// Rule paths name the branch of a multi-branch union (`payload.DibaoRecipient.cert_no`); values do not say
    /// it. Field names are snake_case, branch names are type names (CamelCase) or `map`.
    fn value_path(rule_path: &str) -> String {
        rule_path
            .split('.')
            .filter(|c| !(c.starts_with(|ch: char| ch.is_ascii_uppercase()) || *c == "map"))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// A pseudonym is hex: it can contain a short hex-looking original by pure chance. Such originals are
    /// excluded from the "never contains" check; everything else must not appear.
    fn checkable(original: &str) -> bool {
        let n = original.chars().count();
        n >= 3
            && !(n < 12 && original.chars().all(|c| c.is_ascii_hexdigit()))
            && !original.chars().all(|c| c == '*')
    }

    fn check_view(
        schema_name: &str,
        seed_rules: Vec<(usize, u8)>,
        runner_seed: u64,
    ) -> Result<(), TestCaseError> {
        let s = shared(schema_name);
        let root = parse_shared(&s).unwrap();
        let mut leaf_paths = Vec::new();
        collect_paths(&SType::Record(Box::new(root.clone())), "", &mut leaf_paths);
        // Leaf paths: those no other path extends.
        let leaf_paths: Vec<String> = leaf_paths
            .iter()
            .filter(|p| !leaf_paths.iter().any(|q| q.starts_with(&format!("{p}."))))
            .cloned()
            .collect();
        let treatments = [
            Treatment::Clear,
            Treatment::Mask,
            Treatment::Pseudonymise,
            Treatment::Generalise,
            Treatment::Drop,
        ];
        let mut rules: Vec<FieldRule> = Vec::new();
        for (i, t) in seed_rules {
            let path = &leaf_paths[i % leaf_paths.len()];
            if rules.iter().any(|r| &r.field == path) {
                continue;
            }
            rules.push(rule(path, treatments[usize::from(t) % treatments.len()]));
        }
        // Drop rules the schema cannot honour (mask on an int etc.), one at a time, as a policy author would.
        let plan = loop {
            match ViewPlan::build(&s, &rules, "prop") {
                Ok(plan) => break plan,
                Err(
                    ViewError::NotApplicable { path, .. } | ViewError::NoGeneralisation { path },
                ) => rules.retain(|r| r.field != path),
                Err(ViewError::EmptyRules) => return Ok(()),
                Err(e) => return Err(TestCaseError::fail(format!("unexpected build error {e}"))),
            }
        };
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(
            proptest::test_runner::Config::default(),
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &{
                    let mut seed = [0u8; 32];
                    seed[..8].copy_from_slice(&runner_seed.to_le_bytes());
                    seed
                },
            ),
        );
        let mut record = example(schema_name);
        let mut secrets = Vec::new();
        randomise(
            &mut record,
            &SType::Record(Box::new(root)),
            None,
            &mut runner,
            &mut secrets,
        );
        prop_assert!(record.validate(s.avro()));
        let out = plan
            .apply(&record, &key())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // (a) validates against the view schema, and survives Avro binary.
        prop_assert!(out.validate(plan.schema()), "{:?}", out);
        let bytes = apache_avro::to_avro_datum(plan.schema(), out.clone())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = apache_avro::from_avro_datum(plan.schema(), &mut bytes.as_slice(), None)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(back.validate(plan.schema()));
        // (b) leaf paths in the output ⊆ released paths (or their ancestors, for empty arrays).
        let released: HashSet<String> = plan
            .released()
            .iter()
            .map(|r| value_path(&r.field))
            .collect();
        let mut out_leaves = Vec::new();
        leaves(&out, "", &mut out_leaves);
        for (path, _) in &out_leaves {
            let ok = released.contains(path)
                || released.iter().any(|r| r.starts_with(&format!("{path}.")));
            prop_assert!(
                ok,
                "{} in output but not released ({:?})",
                path,
                plan.released()
            );
        }
        for r in plan.released() {
            let named = rules
                .iter()
                .any(|x| x.field == r.field || r.field.starts_with(&format!("{}.", x.field)));
            prop_assert!(named, "{} released without a rule", r.field);
        }
        // (c) masked and pseudonymised values never contain their original.
        let mut src = Vec::new();
        source_strings(&record, "", &mut src);
        for r in plan.released() {
            if !matches!(r.treatment, Treatment::Mask | Treatment::Pseudonymise) {
                continue;
            }
            let vpath = value_path(&r.field);
            for (_, original) in src.iter().filter(|(p, _)| p == &vpath) {
                let original = original.trim();
                if !checkable(original) {
                    continue;
                }
                for (p, strings) in &out_leaves {
                    if p == &vpath {
                        for o in strings {
                            prop_assert!(
                                !o.contains(original),
                                "{}: {:?} contains {:?}",
                                r.field,
                                o,
                                original
                            );
                        }
                    }
                }
            }
        }
        // (d) free text never carries IDs / mobiles unless those are released in clear.
        let red = plan.redaction();
        let free_text_paths: HashSet<String> = s
            .field_tags()
            .iter()
            .filter(|t| t.pii == Some(PiiKind::FreeText))
            .map(|t| t.path.clone())
            .collect();
        let clear_paths: HashSet<String> = plan
            .released()
            .iter()
            .filter(|r| r.treatment == Treatment::Clear)
            .map(|r| value_path(&r.field))
            .collect();
        for (p, strings) in &out_leaves {
            if !free_text_paths.contains(p) {
                continue;
            }
            for o in strings {
                for secret in &secrets {
                    let is_id = secret.len() == 18;
                    if (is_id && red.ids) || (!is_id && red.phones) {
                        prop_assert!(
                            !o.contains(secret.as_str()),
                            "{}: {:?} contains {:?}",
                            p,
                            o,
                            secret
                        );
                    }
                }
                // Clear free text: nothing left to redact (pseudonyms may contain digit runs by chance).
                if !clear_paths.contains(p) {
                    continue;
                }
                let again = treat::redact_free_text(o, red);
                prop_assert_eq!(again.as_ref(), o.as_str());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_views_of_random_records(
            schema in prop_oneof![Just("grid_event"), Just("household"), Just("resident"), Just("dept_record")],
            seed_rules in prop::collection::vec((0usize..200, 0u8..5), 1..14),
            runner_seed in any::<u64>(),
        ) {
            check_view(schema, seed_rules, runner_seed)?;
        }
    }
}

//! The rule selection tree, the view type tree (serialised to view-schema JSON with named types deduplicated) and the action tree.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Rule selection tree
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
pub(super) struct Sel {
    pub(super) rule: Option<Treatment>,
    pub(super) children: BTreeMap<String, Sel>,
}

impl Sel {
    pub(super) fn insert(&mut self, path: &str, treatment: Treatment) {
        let mut node = self;
        for part in path.split('.') {
            node = node.children.entry(part.to_string()).or_default();
        }
        node.rule = Some(treatment);
    }

    /// The first path with a rule below this node (for conflict messages).
    pub(super) fn first_rule_below(&self, prefix: &str) -> Option<String> {
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
pub(super) enum VType {
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
pub(super) struct VField {
    pub(super) name: String,
    pub(super) attrs: Map<String, Json>,
    pub(super) ty: VType,
}

impl VType {
    pub(super) fn from_source(ty: &SchemaType) -> Self {
        match ty {
            SchemaType::Prim { json, .. } => Self::Json(json.clone()),
            SchemaType::Named { full, short, def } => Self::Named {
                full: full.clone(),
                short: short.clone(),
                def: def.clone(),
            },
            // Records are never copied whole: a released record is projected field by field.
            SchemaType::Record(r) => Self::Record {
                full: r.full.clone(),
                short: r.short.clone(),
                doc: r.doc.clone(),
                fields: Vec::new(),
            },
            SchemaType::Array(i) => Self::Array(Box::new(Self::from_source(i))),
            SchemaType::Map(i) => Self::Map(Box::new(Self::from_source(i))),
            SchemaType::Union(bs) => Self::Union(bs.iter().map(Self::from_source).collect()),
        }
    }

    pub(super) fn contains_record(&self) -> bool {
        match self {
            Self::Record { .. } => true,
            Self::Array(i) | Self::Map(i) => i.contains_record(),
            Self::Union(bs) => bs.iter().any(Self::contains_record),
            Self::Json(_) | Self::Named { .. } => false,
        }
    }

    /// Fully expanded JSON with original names: the structural identity of a type, for deduplication.
    pub(super) fn canonical(&self) -> Json {
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
pub(super) struct Emitter {
    pub(super) namespace: String,
    /// Structural key → assigned short name.
    pub(super) assigned: HashMap<String, String>,
    /// Short names in use.
    pub(super) used: HashSet<String>,
    /// Assigned short names already defined earlier in the document.
    pub(super) defined: HashSet<String>,
}

impl Emitter {
    pub(super) fn assign(&mut self, key: String, short: &str) -> (String, bool) {
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

    pub(super) fn emit(&mut self, ty: &VType) -> Json {
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
pub(super) enum AddressSource {
    /// The `village_code` string field of the record holding the address (index in that record).
    Sibling(usize),
    /// `envelope.region_code` of the top-level record.
    Envelope { envelope: usize, region: usize },
}

/// What happens to one leaf value.
#[derive(Clone, Debug)]
pub(super) enum Leaf {
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
pub(super) enum Action {
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
    pub(super) fn is_clone(&self) -> bool {
        matches!(self, Self::Leaf(Leaf::Clone))
    }
}

#[derive(Clone, Debug)]
pub(super) struct FieldPlan {
    pub(super) name: String,
    pub(super) src: usize,
    pub(super) path: Box<str>,
    pub(super) action: Action,
}

#[derive(Clone, Debug)]
pub(super) struct RecordPlan {
    pub(super) fields: Vec<FieldPlan>,
}

//! The shared schema as a resolved type tree, read once when a view is built.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------------
// The shared schema as a resolved type tree (build time only).
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Base {
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
    pub(super) fn parse(name: &str) -> Option<Self> {
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

    pub(super) fn name(self) -> &'static str {
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
pub(super) enum SType {
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
pub(super) struct SRecord {
    pub(super) full: String,
    pub(super) short: String,
    pub(super) doc: Option<Json>,
    pub(super) fields: Vec<SField>,
}

#[derive(Clone, Debug)]
pub(super) struct SField {
    pub(super) name: String,
    /// Attributes other than `name`, `type` and `default` (doc, x-sensitivity, x-pii, …).
    pub(super) attrs: Map<String, Json>,
    pub(super) default: Option<Json>,
    pub(super) pii: Option<PiiKind>,
    pub(super) ty: SType,
}

impl SType {
    pub(super) fn is_null(&self) -> bool {
        matches!(
            self,
            Self::Prim {
                base: Base::Null,
                ..
            }
        )
    }

    /// Short name a branch of a multi-branch union adds to paths (as in `unsilo_schemas::tags`).
    pub(super) fn branch_name(&self) -> String {
        match self {
            Self::Prim { base, .. } => base.name().to_string(),
            Self::Named { short, .. } => short.clone(),
            Self::Record(r) => r.short.clone(),
            Self::Array(_) => "array".into(),
            Self::Map(_) => "map".into(),
            Self::Union(_) => "union".into(),
        }
    }

    pub(super) fn describe(&self) -> String {
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

pub(super) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

pub(super) struct Parser {
    pub(super) named: HashMap<String, SType>,
    pub(super) active: HashSet<String>,
}

pub(super) fn split_name(
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
    pub(super) fn unsupported(path: &str, reason: impl Into<String>) -> ViewError {
        ViewError::UnsupportedSchema {
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    pub(super) fn parse(
        &mut self,
        ty: &Json,
        ns: Option<&str>,
        path: &str,
    ) -> Result<SType, ViewError> {
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

    pub(super) fn parse_record(
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

pub(super) fn parse_shared(shared: &SharedSchema) -> Result<SRecord, ViewError> {
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
pub(super) fn collect_paths(ty: &SType, prefix: &str, out: &mut Vec<String>) {
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
pub(super) fn suggest(path: &str, known: &[String]) -> Option<String> {
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

//! The one Avro schema model: a schema as a resolved, tagged type tree.
//!
//! `apache_avro::Schema` is what encodes and decodes; it does not keep what the rest of unsilo reads next to
//! the types — each field's `doc`, its `x-sensitivity` and `x-pii` tags, the exact JSON of each type (which
//! view schemas copy) and the dotted paths policies name. [`SchemaRecord::parse`] reads a self-contained schema
//! (named types defined before use) once into that tree: named types resolved, unions kept with their branch
//! names, every field with its attributes. The tag reader ([`crate::tags`]), the view builder and the connector
//! scaffold walk this tree instead of each reading schema JSON their own way.
//!
//! Paths follow one rule everywhere: record fields joined with `.`; arrays, maps and `["null", T]` add nothing;
//! a union of several non-null branches adds the branch's short name (`payload.DibaoRecipient.cert_no`),
//! mirroring Avro's JSON encoding of unions.
//!
//! ```
//! use unsilo_schemas::model::SchemaRecord;
//! let schema = unsilo_schemas::shared_schema("grid_event").unwrap();
//! let tree = SchemaRecord::parse(schema.json()).unwrap();
//! assert!(tree.paths().iter().any(|p| p == "parties.cert_no"));
//! ```

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as Json};

use crate::PiiKind;

/// The primitive type under a type (its logical type aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// `null`.
    Null,
    /// `boolean`.
    Boolean,
    /// `int`.
    Int,
    /// `long`.
    Long,
    /// `float`.
    Float,
    /// `double`.
    Double,
    /// `bytes`.
    Bytes,
    /// `string`.
    String,
}

impl Base {
    /// The primitive of an Avro type name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
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

    /// Its Avro name.
    pub fn name(self) -> &'static str {
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

/// One type of the tree.
#[derive(Clone, Debug)]
pub enum SchemaType {
    /// A primitive, possibly with a logical type; `json` is its schema text as written.
    Prim {
        /// The type's JSON (`"long"` or `{"type": "long", "logicalType": …}`).
        json: Json,
        /// The primitive.
        base: Base,
        /// The logical type, if any (`timestamp-millis`, `date`, …).
        logical: Option<String>,
    },
    /// An enum or fixed.
    Named {
        /// Full name.
        full: String,
        /// Name without namespace.
        short: String,
        /// Its definition as written.
        def: Map<String, Json>,
    },
    /// A record.
    Record(Box<SchemaRecord>),
    /// An array of items.
    Array(Box<SchemaType>),
    /// A map of values (string keys).
    Map(Box<SchemaType>),
    /// A union of branches, in order.
    Union(Vec<SchemaType>),
}

/// A record type.
#[derive(Clone, Debug)]
pub struct SchemaRecord {
    /// Full name.
    pub full: String,
    /// Name without namespace.
    pub short: String,
    /// The record's `doc`, as written.
    pub doc: Option<Json>,
    /// Its fields, in order.
    pub fields: Vec<SchemaField>,
}

/// A field of a record.
#[derive(Clone, Debug)]
pub struct SchemaField {
    /// Field name.
    pub name: String,
    /// Attributes other than `name`, `type` and `default` (`doc`, `x-sensitivity`, `x-pii`, …).
    pub attrs: Map<String, Json>,
    /// The default, as written.
    pub default: Option<Json>,
    /// `x-pii`, when it names a known kind.
    pub pii: Option<PiiKind>,
    /// The field's type.
    pub ty: SchemaType,
}

/// A schema the model cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at `{path}`: {reason}")]
pub struct ModelError {
    /// Where (a dotted path; empty for the top).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl SchemaType {
    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(
            self,
            Self::Prim {
                base: Base::Null,
                ..
            }
        )
    }

    /// The name a branch of a multi-branch union adds to paths.
    pub fn branch_name(&self) -> String {
        match self {
            Self::Prim { base, .. } => base.name().to_string(),
            Self::Named { short, .. } => short.clone(),
            Self::Record(r) => r.short.clone(),
            Self::Array(_) => "array".into(),
            Self::Map(_) => "map".into(),
            Self::Union(_) => "union".into(),
        }
    }

    /// A short description for messages (`long (timestamp-millis)`, `a record`, …).
    pub fn describe(&self) -> String {
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

    /// The non-null branches of a union (the type itself otherwise).
    pub fn non_null_branches(&self) -> Vec<&SchemaType> {
        match self {
            Self::Union(branches) => branches.iter().filter(|b| !b.is_null()).collect(),
            other => vec![other],
        }
    }
}

impl SchemaField {
    /// The field's `doc` (empty when it has none).
    pub fn doc(&self) -> &str {
        self.attrs
            .get("doc")
            .and_then(Json::as_str)
            .unwrap_or_default()
    }
}

impl SchemaRecord {
    /// Reads a self-contained record schema (named types defined before use). Recursive types are refused:
    /// paths through them would be endless.
    pub fn parse(json: &Json) -> Result<SchemaRecord, ModelError> {
        let mut reader = Reader {
            named: HashMap::new(),
            active: HashSet::new(),
        };
        match reader.read(json, None, "")? {
            SchemaType::Record(r) => Ok(*r),
            _ => Err(error("", "the schema is not a record")),
        }
    }

    /// Visits every field at every depth, in order, with its dotted path (parents before children).
    pub fn visit_fields<E>(
        &self,
        visit: &mut impl FnMut(&str, &SchemaField) -> Result<(), E>,
    ) -> Result<(), E> {
        visit_record(self, "", visit)
    }

    /// Every path a policy may name: the fields' paths and the branch paths of multi-branch unions.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_record_paths(self, "", &mut out);
        out
    }
}

/// `prefix.name`, or `name` at the top.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The paths below `ty` (see [`SchemaRecord::paths`]), appended to `out`.
pub fn collect_paths(ty: &SchemaType, prefix: &str, out: &mut Vec<String>) {
    match ty {
        SchemaType::Record(r) => collect_record_paths(r, prefix, out),
        SchemaType::Array(inner) | SchemaType::Map(inner) => collect_paths(inner, prefix, out),
        SchemaType::Union(branches) => {
            let non_null: Vec<&SchemaType> = branches.iter().filter(|b| !b.is_null()).collect();
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
        SchemaType::Prim { .. } | SchemaType::Named { .. } => {}
    }
}

fn collect_record_paths(record: &SchemaRecord, prefix: &str, out: &mut Vec<String>) {
    for f in &record.fields {
        let p = join(prefix, &f.name);
        out.push(p.clone());
        collect_paths(&f.ty, &p, out);
    }
}

fn visit_record<E>(
    record: &SchemaRecord,
    prefix: &str,
    visit: &mut impl FnMut(&str, &SchemaField) -> Result<(), E>,
) -> Result<(), E> {
    for field in &record.fields {
        let path = join(prefix, &field.name);
        visit(&path, field)?;
        visit_type(&field.ty, &path, visit)?;
    }
    Ok(())
}

fn visit_type<E>(
    ty: &SchemaType,
    prefix: &str,
    visit: &mut impl FnMut(&str, &SchemaField) -> Result<(), E>,
) -> Result<(), E> {
    match ty {
        SchemaType::Record(r) => visit_record(r, prefix, visit),
        SchemaType::Array(inner) | SchemaType::Map(inner) => visit_type(inner, prefix, visit),
        SchemaType::Union(branches) => {
            let non_null: Vec<&SchemaType> = branches.iter().filter(|b| !b.is_null()).collect();
            let tagged = non_null.len() > 1;
            for b in non_null {
                let path = if tagged {
                    join(prefix, &b.branch_name())
                } else {
                    prefix.to_string()
                };
                visit_type(b, &path, visit)?;
            }
            Ok(())
        }
        SchemaType::Prim { .. } | SchemaType::Named { .. } => Ok(()),
    }
}

fn error(path: &str, reason: impl Into<String>) -> ModelError {
    ModelError {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// `(full, short, namespace)` of a named type definition.
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

/// Reads schema JSON into the tree, resolving named types.
struct Reader {
    named: HashMap<String, SchemaType>,
    /// Records being read, to refuse recursion.
    active: HashSet<String>,
}

impl Reader {
    fn read(&mut self, ty: &Json, ns: Option<&str>, path: &str) -> Result<SchemaType, ModelError> {
        match ty {
            Json::String(name) => {
                if let Some(base) = Base::parse(name) {
                    return Ok(SchemaType::Prim {
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
                    return Err(error(path, format!("recursive type {name}")));
                }
                self.named
                    .get(&full)
                    .or_else(|| self.named.get(name))
                    .cloned()
                    .ok_or_else(|| error(path, format!("type {name} is used before it is defined")))
            }
            Json::Array(branches) => Ok(SchemaType::Union(
                branches
                    .iter()
                    .map(|b| self.read(b, ns, path))
                    .collect::<Result<_, _>>()?,
            )),
            Json::Object(obj) => match obj.get("type") {
                Some(Json::String(t)) if t == "record" || t == "error" => {
                    self.read_record(obj, ns, path)
                }
                Some(Json::String(t)) if t == "enum" || t == "fixed" => {
                    let (full, short, _) = split_name(obj, ns)
                        .ok_or_else(|| error(path, "named type without a name"))?;
                    let read = SchemaType::Named {
                        full: full.clone(),
                        short,
                        def: obj.clone(),
                    };
                    self.named.insert(full, read.clone());
                    Ok(read)
                }
                Some(Json::String(t)) if t == "array" => {
                    let items = obj
                        .get("items")
                        .ok_or_else(|| error(path, "array without items"))?;
                    Ok(SchemaType::Array(Box::new(self.read(items, ns, path)?)))
                }
                Some(Json::String(t)) if t == "map" => {
                    let values = obj
                        .get("values")
                        .ok_or_else(|| error(path, "map without values"))?;
                    Ok(SchemaType::Map(Box::new(self.read(values, ns, path)?)))
                }
                Some(Json::String(t)) => match Base::parse(t) {
                    Some(base) => Ok(SchemaType::Prim {
                        json: ty.clone(),
                        base,
                        logical: obj
                            .get("logicalType")
                            .and_then(Json::as_str)
                            .map(str::to_string),
                    }),
                    None => self.read(&Json::String(t.clone()), ns, path),
                },
                Some(inner) => self.read(inner, ns, path),
                None => Err(error(path, "type object without \"type\"")),
            },
            _ => Err(error(
                path,
                "a type must be a string, an array or an object",
            )),
        }
    }

    fn read_record(
        &mut self,
        obj: &Map<String, Json>,
        ns: Option<&str>,
        path: &str,
    ) -> Result<SchemaType, ModelError> {
        let (full, short, space) =
            split_name(obj, ns).ok_or_else(|| error(path, "record without a name"))?;
        self.active.insert(full.clone());
        let raw_fields = obj
            .get("fields")
            .and_then(Json::as_array)
            .ok_or_else(|| error(path, "record without fields"))?;
        let mut fields = Vec::with_capacity(raw_fields.len());
        for raw in raw_fields {
            let raw = raw
                .as_object()
                .ok_or_else(|| error(path, "a field must be an object"))?;
            let name = raw
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| error(path, "field without a name"))?
                .to_string();
            let field_path = join(path, &name);
            let ty_json = raw
                .get("type")
                .ok_or_else(|| error(&field_path, "field without a type"))?;
            let ty = self.read(ty_json, space.as_deref(), &field_path)?;
            let attrs: Map<String, Json> = raw
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "name" | "type" | "default"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let pii = raw
                .get("x-pii")
                .and_then(Json::as_str)
                .and_then(|s| s.parse::<PiiKind>().ok());
            fields.push(SchemaField {
                name,
                attrs,
                default: raw.get("default").cloned(),
                pii,
                ty,
            });
        }
        self.active.remove(&full);
        let record = SchemaType::Record(Box::new(SchemaRecord {
            full: full.clone(),
            short,
            doc: obj.get("doc").cloned(),
            fields,
        }));
        self.named.insert(full, record.clone());
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Json {
        json!({
            "type": "record", "name": "T", "namespace": "unsilo.x",
            "fields": [
                {"name": "id", "type": "string", "doc": "id", "x-sensitivity": "S1"},
                {"name": "parties", "type": {"type": "array", "items": {
                    "type": "record", "name": "Party",
                    "fields": [{"name": "cert_no", "type": ["null", "string"], "x-pii": "cert_no"}]}}},
                {"name": "payload", "type": [
                    {"type": "record", "name": "A", "fields": [{"name": "a", "type": "int"}]},
                    {"type": "record", "name": "B", "fields": [{"name": "b", "type": "Party"}]}]},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
            ]
        })
    }

    #[test]
    fn paths_follow_records_arrays_and_tagged_unions() {
        let tree = SchemaRecord::parse(&schema()).unwrap();
        assert_eq!(
            tree.paths(),
            [
                "id",
                "parties",
                "parties.cert_no",
                "payload",
                "payload.A",
                "payload.A.a",
                "payload.B",
                "payload.B.b",
                "payload.B.b.cert_no",
                "at"
            ]
        );
        let mut fields = Vec::new();
        tree.visit_fields(&mut |path, field| {
            fields.push((path.to_owned(), field.pii));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(fields.len(), 8);
        assert!(fields.contains(&("payload.B.b.cert_no".into(), Some(PiiKind::CertNo))));
        assert_eq!(tree.fields[0].doc(), "id");
        assert_eq!(tree.fields[3].ty.describe(), "long (timestamp-millis)");
    }

    #[test]
    fn malformed_and_recursive_schemas_name_the_place() {
        let err =
            SchemaRecord::parse(&json!({"type": "record", "name": "T", "fields": [{"name": "x"}]}))
                .unwrap_err();
        assert_eq!(err.path, "x");
        let recursive = json!({"type": "record", "name": "N", "fields": [{"name": "next", "type": ["null", "N"]}]});
        let err = SchemaRecord::parse(&recursive).unwrap_err();
        assert!(err.reason.contains("recursive"), "{err}");
        let err = SchemaRecord::parse(
            &json!({"type": "record", "name": "T", "fields": [{"name": "y", "type": "Nope"}]}),
        )
        .unwrap_err();
        assert!(err.reason.contains("used before it is defined"), "{err}");
    }
}

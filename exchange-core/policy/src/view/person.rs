//! Person keys: the pseudonymous keys of the people a record is about, for the audit log.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Person keys
// ---------------------------------------------------------------------------------------------------------------

/// Where ID numbers sit in a record, compiled from the schema.
#[derive(Clone, Debug)]
pub(super) enum Extract {
    CertNo,
    Record(Vec<(usize, String, Extract)>),
    Each(Box<Extract>),
    Union(Vec<Option<Extract>>),
}

/// Finds the ID numbers (`x-pii: cert_no`) of records of one schema and pseudonymises them.
#[derive(Clone, Debug)]
pub(super) struct PersonKeys {
    pub(super) root: Option<Extract>,
}

impl PersonKeys {
    pub(super) fn from_record(rec: &SchemaRecord) -> Self {
        Self {
            root: Self::record(rec),
        }
    }

    pub(super) fn record(rec: &SchemaRecord) -> Option<Extract> {
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
    pub(super) fn leaf(ty: &SchemaType) -> Option<Extract> {
        match ty {
            SchemaType::Prim {
                base: Base::String, ..
            } => Some(Extract::CertNo),
            SchemaType::Array(i) | SchemaType::Map(i) => {
                Self::leaf(i).map(|e| Extract::Each(Box::new(e)))
            }
            SchemaType::Union(bs) => {
                let branches: Vec<_> = bs.iter().map(Self::leaf).collect();
                branches
                    .iter()
                    .any(Option::is_some)
                    .then_some(Extract::Union(branches))
            }
            _ => None,
        }
    }

    pub(super) fn nested(ty: &SchemaType) -> Option<Extract> {
        match ty {
            SchemaType::Record(r) => Self::record(r),
            SchemaType::Array(i) | SchemaType::Map(i) => {
                Self::nested(i).map(|e| Extract::Each(Box::new(e)))
            }
            SchemaType::Union(bs) => {
                let branches: Vec<_> = bs.iter().map(Self::nested).collect();
                branches
                    .iter()
                    .any(Option::is_some)
                    .then_some(Extract::Union(branches))
            }
            _ => None,
        }
    }

    pub(super) fn keys(&self, record: &Value, key: &PseudonymKey) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            Self::walk(root, record, key, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    pub(super) fn walk(ex: &Extract, v: &Value, key: &PseudonymKey, out: &mut Vec<String>) {
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
            let extractor = Arc::new(PersonKeys::from_record(shared.tree()));
            if let Ok(mut cache) = CACHE.write() {
                cache.insert(shared.full_name().to_string(), Arc::clone(&extractor));
            }
            extractor
        }
    };
    extractor.keys(record, key)
}

//! The resource catalogue (政务数据资源目录, 政务数据共享条例 Art. 13–17): one entry per shareable resource, saying
//! what it holds, who provides it, how it may be shared and on what terms.
//!
//! An entry's [`EntryTerms`] are what operators edit; every edit makes a new [`CatalogueEntry::version`] and keeps
//! the one it replaces in [`CatalogueEntry::earlier`], so the catalogue's history is on record beside the audit
//! log's. The shared schemas declare the first version of their entries (`schemas/catalogue.toml`, read by
//! [`declared_entries`]); a hub seeds its catalogue from them once.
//!
//! The entry is the outer bound of every grant on its schema ([`EntryTerms::refusal`], [`EntryTerms::items_problem`]):
//! a 不予共享 entry cannot be requested at all, a field that is not one of its data items cannot be asked for, and
//! what is not known is treated as the most restrictive case (a grade this hub does not know counts as CORE).
//!
//! ```
//! use unsilo_policy::catalogue::{declared_entries, ShareAttribute};
//! let entries = declared_entries().unwrap();
//! let grid_unit = entries.iter().find(|e| e.schema == "grid_unit").unwrap();
//! assert_eq!(grid_unit.terms.share_attribute, ShareAttribute::Unconditional);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use unsilo_schemas::classification::{is_below_core, KNOWN_GRADES};
use unsilo_schemas::Sensitivity;

/// 共享属性 (Art. 14): how a resource may be shared. The serialised names are the envelope's `share_attribute`
/// symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShareAttribute {
    /// 无条件共享: any public body may have it for its duties; decided without the provider.
    Unconditional,
    /// 有条件共享: shared on the conditions the entry states; the provider decides each request.
    Conditional,
    /// 不予共享: never shared; the entry cites the law, regulation or decision it rests on.
    NotShared,
}

impl ShareAttribute {
    /// The Chinese name, as the catalogue and its exports write it.
    pub fn title_zh(self) -> &'static str {
        match self {
            Self::Unconditional => "无条件共享",
            Self::Conditional => "有条件共享",
            Self::NotShared => "不予共享",
        }
    }

    /// The envelope symbol, e.g. `UNCONDITIONAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unconditional => "UNCONDITIONAL",
            Self::Conditional => "CONDITIONAL",
            Self::NotShared => "NOT_SHARED",
        }
    }
}

/// 共享方式: how a resource reaches a requester.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ShareMode {
    /// 接口: an interface the requester calls or is called on (pull, webhook, Kafka).
    Interface,
    /// 库表: rows written into the requester's database table.
    Database,
    /// 文件: files handed over in batches.
    File,
}

impl ShareMode {
    /// The Chinese name.
    pub fn title_zh(self) -> &'static str {
        match self {
            Self::Interface => "接口",
            Self::Database => "库表",
            Self::File => "文件",
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interface => "interface",
            Self::Database => "database",
            Self::File => "file",
        }
    }

    /// The mode a delivery channel is: a SQL table is 库表, every other channel an interface.
    pub fn of_channel(channel: &crate::model::Channel) -> Self {
        match channel {
            crate::model::Channel::Sql { .. } => Self::Database,
            _ => Self::Interface,
        }
    }
}

/// What an entry says, as operators edit it (the body of `PUT /admin/catalogue/{id}`, with `note`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryTerms {
    /// 资源名称.
    pub title: String,
    /// 资源分类: the subject classification, `/`-separated.
    pub classification: String,
    /// 数据分级 (GB/T 43697): `GENERAL`, `IMPORTANT` or `CORE`.
    pub grade: String,
    /// 共享属性.
    pub share_attribute: ShareAttribute,
    /// For 有条件共享: the conditions, with their scope and purpose (required then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<String>,
    /// For 不予共享: the law, regulation or decision the refusal rests on (required then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_shared_basis: Option<String>,
    /// 共享方式 offered.
    pub share_modes: Vec<ShareMode>,
    /// 更新频率, e.g. `实时`, `每日`.
    pub update_frequency: String,
    /// 数据格式.
    pub format: String,
    /// 使用条件: the terms every requester accepts.
    pub conditions_of_use: String,
    /// The providing organisation (提供方): the id of its agency record, which holds its name and unified social
    /// credit code. `None`: not assigned yet — the platform's security administrators decide its requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Fields of the schema that are not data items of the entry: no request may ask for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<String>,
}

impl EntryTerms {
    /// Every problem of the terms at once (empty when they are complete), each naming the field.
    pub fn problems(&self, schema: &str) -> Vec<String> {
        let mut out = Vec::new();
        let blank = |s: &str| s.trim().is_empty();
        if blank(&self.title) {
            out.push("title (资源名称) is empty".to_owned());
        }
        if blank(&self.classification) {
            out.push("classification (资源分类) is empty".to_owned());
        }
        if !KNOWN_GRADES.contains(&self.grade.as_str()) {
            out.push(format!(
                "grade `{}` is not one of {}",
                self.grade,
                KNOWN_GRADES.join(", ")
            ));
        }
        match self.share_attribute {
            ShareAttribute::Conditional if self.conditions.as_deref().is_none_or(blank) => out.push(
                "conditions: a 有条件共享 entry states its conditions, with scope and purpose (Art. 14)"
                    .to_owned(),
            ),
            ShareAttribute::NotShared if self.not_shared_basis.as_deref().is_none_or(blank) => {
                out.push(
                    "not_shared_basis: a 不予共享 entry cites the law, regulation or decision it rests on (Art. 15)"
                        .to_owned(),
                )
            }
            _ => {}
        }
        if self.share_modes.is_empty() {
            out.push("share_modes (共享方式) is empty".to_owned());
        }
        if blank(&self.update_frequency) {
            out.push("update_frequency (更新频率) is empty".to_owned());
        }
        if blank(&self.format) {
            out.push("format (数据格式) is empty".to_owned());
        }
        if blank(&self.conditions_of_use) {
            out.push("conditions_of_use (使用条件) is empty".to_owned());
        }
        let fields = schema_items(schema);
        for w in &self.withheld {
            if !fields.iter().any(|i| &i.field == w) {
                out.push(format!("withheld: `{w}` is not a field of {schema}"));
            }
        }
        if !fields.is_empty() && fields.iter().all(|i| self.withheld.contains(&i.field)) {
            out.push("withheld: every field is withheld; an entry has data items".to_owned());
        }
        for (what, text, max) in [
            ("title", &self.title, 200),
            ("classification", &self.classification, 200),
            ("conditions_of_use", &self.conditions_of_use, 2000),
        ] {
            if text.chars().count() > max {
                out.push(format!("{what} is longer than {max} characters"));
            }
        }
        out
    }

    /// Why a request on this entry is refused outright, if it is: a 不予共享 entry cannot be requested.
    pub fn refusal(&self) -> Option<String> {
        (self.share_attribute == ShareAttribute::NotShared).then(|| {
            format!(
                "this resource is 不予共享 (not shared) in the catalogue, on the basis of: {}",
                self.not_shared_basis
                    .as_deref()
                    .unwrap_or("(none on record)")
            )
        })
    }

    /// Whether the grade counts as CORE (核心数据): CORE itself, or a grade this hub does not know.
    pub fn is_core(&self) -> bool {
        !is_below_core(Some(&self.grade))
    }

    /// The requested field paths that are not the entry's data items (a path's first segment names the item;
    /// the envelope is metadata every record carries and is not an item).
    pub fn items_problem(&self, schema: &str, fields: &[&str]) -> Option<String> {
        let items = schema_items(schema);
        let outside: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|f| {
                let top = f.split('.').next().unwrap_or(f);
                top != "envelope"
                    && (self.withheld.iter().any(|w| w == top)
                        || !items.iter().any(|i| i.field == top))
            })
            .collect();
        (!outside.is_empty()).then(|| {
            format!(
                "not data items of the catalogue entry {schema}: {} (withheld or unknown)",
                outside.join(", ")
            )
        })
    }

    /// The data items: the schema's fields less the withheld ones.
    pub fn items(&self, schema: &str) -> Vec<DataItem> {
        schema_items(schema)
            .into_iter()
            .filter(|i| !self.withheld.contains(&i.field))
            .collect()
    }
}

/// One data item (信息项) of an entry: a top-level field of the shared schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DataItem {
    /// The field's name in the schema.
    pub field: String,
    /// What it is (the field's doc).
    pub title: String,
    /// Its sensitivity, `S1`..`S4` (the schema's `x-sensitivity`).
    #[serde(with = "crate::model::sensitivity_serde")]
    #[schema(value_type = String)]
    pub sensitivity: Sensitivity,
    /// Its Avro type, as the schema writes it: a name (`"string"`), a union (`["null","string"]` for an optional
    /// string) or an object (a record, an array, a logical type).
    pub avro_type: Value,
}

/// The top-level fields of a shared schema but the envelope, in schema order, with their sensitivity and doc.
/// Empty for a schema this build does not have.
pub fn schema_items(schema: &str) -> Vec<DataItem> {
    let Some(shared) = unsilo_schemas::shared_schema(schema) else {
        return Vec::new();
    };
    let fields = shared.json()["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    fields
        .iter()
        .filter_map(|f| {
            let name = f["name"].as_str()?;
            (name != "envelope").then(|| DataItem {
                field: name.to_owned(),
                title: f["doc"].as_str().unwrap_or_default().to_owned(),
                sensitivity: f["x-sensitivity"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    // Untagged is impossible in a shared schema (its tests check); fail closed regardless.
                    .unwrap_or(Sensitivity::S4),
                avro_type: f["type"].clone(),
            })
        })
        .collect()
}

/// One version of an entry's terms, as it stood before an edit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryVersion {
    /// Its version number.
    pub version: u32,
    /// The terms.
    pub terms: EntryTerms,
    /// Who made it (`hub` for the declared first version).
    pub changed_by: String,
    /// When (ms since the epoch).
    pub changed_at_ms: i64,
    /// Why.
    pub note: String,
}

/// A catalogue entry: the current terms of one resource and their history.
// Not `deny_unknown_fields`: the API shows an entry flattened with its data items (`CatalogueView`), and only
// hubs write entries (sealed on the control plane), so a newer hub's extra field must not make an older one fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogueEntry {
    /// The entry's id: the shared schema's name (one entry per shared schema).
    pub id: String,
    /// The shared schema its records have.
    pub schema: String,
    /// The current version, from 1.
    pub version: u32,
    /// The current terms.
    pub terms: EntryTerms,
    /// Who made the current version.
    pub changed_by: String,
    /// When (ms since the epoch).
    pub changed_at_ms: i64,
    /// Why.
    pub note: String,
    /// The versions it replaced, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<EntryVersion>,
    /// Bumped on every write (optimistic concurrency on the control plane).
    pub revision: u64,
}

impl CatalogueEntry {
    /// The first version of an entry for `schema`.
    pub fn first(schema: &str, terms: EntryTerms, by: &str, at_ms: i64, note: &str) -> Self {
        Self {
            id: schema.to_owned(),
            schema: schema.to_owned(),
            version: 1,
            terms,
            changed_by: by.to_owned(),
            changed_at_ms: at_ms,
            note: note.to_owned(),
            earlier: Vec::new(),
            revision: 1,
        }
    }

    /// The entry with `terms` as its next version, the current one kept in `earlier`.
    pub fn next_version(&self, terms: EntryTerms, by: &str, at_ms: i64, note: &str) -> Self {
        let mut earlier = self.earlier.clone();
        earlier.push(EntryVersion {
            version: self.version,
            terms: self.terms.clone(),
            changed_by: self.changed_by.clone(),
            changed_at_ms: self.changed_at_ms,
            note: self.note.clone(),
        });
        Self {
            id: self.id.clone(),
            schema: self.schema.clone(),
            version: self.version + 1,
            terms,
            changed_by: by.to_owned(),
            changed_at_ms: at_ms,
            note: note.to_owned(),
            earlier,
            revision: self.revision + 1,
        }
    }

    /// The terms as they stood in `version`, if it exists.
    pub fn terms_at(&self, version: u32) -> Option<&EntryTerms> {
        if version == self.version {
            return Some(&self.terms);
        }
        self.earlier
            .iter()
            .find(|v| v.version == version)
            .map(|v| &v.terms)
    }
}

/// The shipped declarations that do not load (only while editing `schemas/catalogue.toml`; a test catches it).
#[derive(Debug, thiserror::Error)]
pub enum DeclarationError {
    /// Not TOML of the expected shape.
    #[error("schemas/catalogue.toml: {0}")]
    Parse(String),
    /// An entry names no shared schema, or a shared schema has no entry.
    #[error("schemas/catalogue.toml: {0}")]
    Coverage(String),
    /// An entry's terms are incomplete.
    #[error("schemas/catalogue.toml [{schema}]: {problems}")]
    Incomplete {
        /// The entry.
        schema: String,
        /// What is wrong.
        problems: String,
    },
}

/// The first version of every shared schema's entry, as `schemas/catalogue.toml` declares them, in the shared
/// schemas' order.
pub fn declared_entries() -> Result<Vec<DeclaredEntry>, DeclarationError> {
    let declared: BTreeMap<String, EntryTerms> =
        toml::from_str(unsilo_schemas::CATALOGUE_DECLARATIONS)
            .map_err(|e| DeclarationError::Parse(e.to_string()))?;
    for name in declared.keys() {
        if unsilo_schemas::shared_schema(name).is_none() {
            return Err(DeclarationError::Coverage(format!(
                "[{name}] names no shared schema"
            )));
        }
    }
    unsilo_schemas::shared_schemas()
        .iter()
        .map(|shared| {
            let terms = declared.get(shared.name()).cloned().ok_or_else(|| {
                DeclarationError::Coverage(format!(
                    "the shared schema {} declares no entry",
                    shared.name()
                ))
            })?;
            let problems = terms.problems(shared.name());
            if !problems.is_empty() {
                return Err(DeclarationError::Incomplete {
                    schema: shared.name().to_owned(),
                    problems: problems.join("; "),
                });
            }
            Ok(DeclaredEntry {
                schema: shared.name().to_owned(),
                terms,
            })
        })
        .collect()
}

/// One shared schema's declared entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredEntry {
    /// The shared schema.
    pub schema: String,
    /// Its declared terms.
    pub terms: EntryTerms,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shared_schema_declares_a_complete_entry() {
        let entries = declared_entries().expect("declarations load");
        assert_eq!(entries.len(), unsilo_schemas::shared_schemas().len());
        for e in &entries {
            assert!(!e.terms.items(&e.schema).is_empty(), "{}", e.schema);
        }
    }

    fn household() -> EntryTerms {
        declared_entries()
            .unwrap()
            .into_iter()
            .find(|e| e.schema == "household")
            .unwrap()
            .terms
    }

    #[test]
    fn every_missing_term_is_named_at_once() {
        let mut t = household();
        t.title = " ".into();
        t.conditions = None;
        t.share_modes.clear();
        t.grade = "SECRET".into();
        let problems = t.problems("household");
        assert_eq!(problems.len(), 4, "{problems:?}");
        t.share_attribute = ShareAttribute::NotShared;
        assert!(t
            .problems("household")
            .iter()
            .any(|p| p.starts_with("not_shared_basis")));
    }

    #[test]
    fn a_not_shared_entry_refuses_and_an_unknown_grade_is_core() {
        let mut t = household();
        assert!(t.refusal().is_none() && !t.is_core());
        t.share_attribute = ShareAttribute::NotShared;
        t.not_shared_basis = Some("《某条例》第十条".into());
        assert!(t.refusal().unwrap().contains("第十条"));
        t.grade = "UNKNOWN".into();
        assert!(t.is_core());
    }

    #[test]
    fn withheld_fields_are_not_items_and_cannot_be_asked_for() {
        let mut t = household();
        assert!(t
            .items_problem("household", &["head_cert_no", "envelope.record_id"])
            .is_none());
        t.withheld = vec!["head_cert_no".into()];
        let p = t
            .items_problem("household", &["head_cert_no", "care_level", "nope"])
            .unwrap();
        assert!(
            p.contains("head_cert_no") && p.contains("nope") && !p.contains("care_level"),
            "{p}"
        );
        assert!(!t
            .items("household")
            .iter()
            .any(|i| i.field == "head_cert_no"));
    }

    #[test]
    fn an_edit_keeps_the_version_it_replaces() {
        let first = CatalogueEntry::first("household", household(), "hub", 1, "declared");
        let mut terms = household();
        terms.update_frequency = "每周".into();
        let second = first.next_version(terms, "sec", 2, "周更");
        assert_eq!((second.version, second.revision), (2, 2));
        assert_eq!(second.terms_at(1).unwrap().update_frequency, "实时");
        assert_eq!(second.terms_at(2).unwrap().update_frequency, "每周");
        assert!(second.terms_at(3).is_none());
    }
}

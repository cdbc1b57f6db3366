//! # The declarative mapping engine
//!
//! A mapping file (TOML, one per connector and target schema; the syntax is in `docs/mapping.md`) says how a
//! source system's raw JSON records become records of one shared Avro schema: raw paths, renames, code tables,
//! date and type conversions, templates, conditional values, defaults, validators and the record id recipe.
//!
//! [`Mapping::load`] checks the file against the target schema when it loads — an unknown field, a constant or
//! code of the wrong type, a required field left unmapped, a bad date format, an unknown validator — and reports
//! **all** problems as `file:line: reason`. A mapping that loads cannot fail on a record for a reason the file
//! could have told at start-up; what is left per record ([`RecordError`]) is about the data.
//!
//! The loaded [`CompiledMapping`] is a plan in Avro field order. [`CompiledMapping::encode`] runs it over a
//! `serde_json::Value` and writes Avro binary straight into a reusable buffer, with no intermediate Avro value
//! tree: constants, defaults and code-table values are pre-encoded, enum and union indices resolved, raw paths
//! pre-split. [`CompiledMapping::to_json`] runs the same plan into plain JSON for `unsilo mapping test` and for
//! debugging; the tests check that the two agree with `apache-avro` byte for byte.
//!
//! ```
//! use unsilo_connectors::mapping::Mapping;
//!
//! let mapping = Mapping::from_str(r#"
//! target = "rating"
//! source_system = "qinwuyuan"
//!
//! [record_id]
//! source_record_id = "pjbh"
//! source_version = { const = "1" }
//!
//! [fields]
//! "envelope.event_time" = { path = "pjsj", datetime = "auto" }
//! "envelope.region_code" = { path = "xzqh", validate = "region_code" }
//! "envelope.provider_org_code" = { const = "11610000MB1957289H" }
//! rating_id = "pjbh"
//! case_no = "bjbh"
//! item_code = "sxbm"
//! item_name = "sxmc"
//! org_name = "bldw"
//! org_code = { path = "bldwdm", validate = "uscc" }
//! score = "pf"
//! level = { path = "pj", codes = { "5" = "VERY_SATISFIED", "1" = "VERY_DISSATISFIED" }, default = "UNKNOWN" }
//! rated_time = { path = "pjsj", datetime = "%Y-%m-%d %H:%M:%S" }
//! "#, "rating.toml").unwrap();
//!
//! let raw = serde_json::json!({
//!     "pjbh": "PJ001", "bjbh": "BJ001", "sxbm": "001", "sxmc": "户口迁移", "bldw": "汉阴县公安局",
//!     "bldwdm": "11610921016050037T", "pf": "5", "pj": 5, "pjsj": "2024-06-18 09:32:15", "xzqh": "610921100001"
//! });
//! let mut out = Vec::new();
//! let normalised = mapping.encode(&raw, &mut out).unwrap();
//! assert_eq!(normalised.key, "PJ001");
//! assert_eq!(mapping.to_json(&raw).unwrap()["level"], "VERY_SATISFIED");
//! ```
//!
//! # Layout
//!
//! - `toml_doc`: the TOML as a tree of values with byte spans (for line numbers).
//! - `compile`: TOML + target schema → plan, collecting every load error.
//! - `plan`: the plan's types.
//! - `path`: raw paths (`a.b[0].c`, `$.root`, `@`).
//! - `datetime`: the date and time formats of Chinese source systems, and time zones.
//! - `convert`: scalar conversions and validators, shared by load-time constants and per-record values.
//! - `walk` and `sink`: running a plan into Avro binary or plain JSON.
//! - `mask`: how personal data may appear in error messages.
//! - `report`: `unsilo mapping test`'s report ([`test_mapping`]).
//! - `error`: [`MappingError`], [`LoadIssue`], [`RecordError`].

mod compile;
mod convert;
mod datetime;
mod error;
mod mask;
mod path;
mod plan;
mod report;
mod sink;
mod toml_doc;
mod walk;

use std::borrow::Cow;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use unsilo_schemas::SharedSchema;

pub use error::{LoadIssue, MappingError, RecordError, RecordErrorKind, Validator};
pub use report::{parse_samples, sample_report, test_mapping, TestMappingError};

use path::{resolve, Frame};
use plan::Plan;
use sink::{BinSink, JsonSink, Sink};
use walk::{eval_text, test, write_record, At, Ctx};

/// Loads mapping files into [`CompiledMapping`]s.
#[derive(Debug)]
pub enum Mapping {}

impl Mapping {
    /// Loads and checks the mapping file at `path`; errors name the file, line and reason.
    pub fn load(path: impl AsRef<Path>) -> Result<CompiledMapping, MappingError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// Loads and checks mapping text; `origin` names it in errors (usually the file name).
    pub fn from_str(text: &str, origin: &str) -> Result<CompiledMapping, MappingError> {
        match compile::compile(text) {
            Ok(c) => {
                for warning in classification_warnings(text) {
                    tracing::warn!(mapping = origin, "{warning}");
                }
                Ok(CompiledMapping {
                    plan: c.plan,
                    target: c.target,
                    source_system: c.source_system,
                    description: c.description,
                    origin: origin.to_string(),
                })
            }
            Err(issues) => Err(MappingError::Invalid {
                origin: origin.to_string(),
                issues,
            }),
        }
    }
}

/// The classification fields of the envelope, with the symbols the hub's gates know. A value outside them is
/// gated as the most restrictive case (grade as `CORE`, sharing class as conditional).
const CLASSIFICATION_FIELDS: [(&str, &[&str]); 2] = [
    ("data_grade", &unsilo_schemas::classification::KNOWN_GRADES),
    (
        "share_attribute",
        &unsilo_schemas::classification::KNOWN_SHARE_ATTRIBUTES,
    ),
];

/// Warnings for a mapping that can give a record a grade or sharing class the gates do not know (`UNKNOWN`, the
/// envelope's default): each names the field and says how such records are treated. Only a `const` of a known
/// symbol, or a code table whose every value and `default` are known symbols, is certain.
pub fn classification_warnings(text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let fields = doc.get("fields").and_then(toml::Value::as_table);
    let rule_of = |name: &str| -> Option<&toml::Value> {
        let fields = fields?;
        fields.get(&format!("envelope.{name}")).or_else(|| {
            let envelope = fields.get("envelope")?.as_table()?;
            envelope
                .get(name)
                .or_else(|| envelope.get("fields")?.as_table()?.get(name))
        })
    };
    let mut warnings = Vec::new();
    for (name, known) in CLASSIFICATION_FIELDS {
        let is_known = |v: &toml::Value| v.as_str().is_some_and(|s| known.contains(&s));
        let certain = rule_of(name)
            .and_then(toml::Value::as_table)
            .is_some_and(|rule| {
                match (rule.get("const"), rule.get("codes"), rule.get("default")) {
                    (Some(c), None, _) => is_known(c) && rule.len() == 1,
                    (None, Some(codes), Some(default)) => {
                        is_known(default)
                            && codes.as_table().is_some_and(|t| t.values().all(is_known))
                    }
                    _ => false,
                }
            });
        if !certain {
            let treated = if name == "data_grade" {
                "graded CORE: released only under grants two operators approved"
            } else {
                "treated as conditional: released only under grants an operator approved, never automatically"
            };
            warnings.push(format!(
                "envelope.{name}: this mapping can give records a value other than {} (UNKNOWN, the default, when it is not mapped or a code is not in the table); such records are {treated}. Map it to a constant, or give the code table a known `default`",
                known.join(", ")
            ));
        }
    }
    warnings
}

/// A loaded mapping: a plan that turns raw records of one kind into one shared schema.
#[derive(Debug)]
pub struct CompiledMapping {
    plan: Plan,
    target: &'static SharedSchema,
    source_system: String,
    description: Option<String>,
    origin: String,
}

/// What the engine tells the caller about a normalised record besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// `envelope.record_id`: the deterministic id from source system, source record id and version.
    pub record_id: String,
    /// The partition key: `[record_id] partition_key` if the mapping has one, else the source record id.
    pub key: String,
}

/// Identity of one record, evaluated before the fields.
struct Ids<'a> {
    source_record_id: Cow<'a, str>,
    source_version: Cow<'a, str>,
    record_id: String,
    key: String,
}

/// Number of value slots [`CompiledMapping::encode`] keeps on the stack (a grid event needs about 100).
const STACK_SLOTS: usize = 256;

/// Now, in milliseconds since the epoch.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl CompiledMapping {
    /// Loads and checks a mapping file (the same as [`Mapping::load`]).
    pub fn load(path: impl AsRef<Path>) -> Result<CompiledMapping, MappingError> {
        Mapping::load(path)
    }

    /// Loads and checks mapping text (the same as [`Mapping::from_str`]).
    pub fn from_str(text: &str, origin: &str) -> Result<CompiledMapping, MappingError> {
        Mapping::from_str(text, origin)
    }

    /// The target shared schema.
    pub fn target(&self) -> &'static SharedSchema {
        self.target
    }

    /// The source system id written into `envelope.source_system`.
    pub fn source_system(&self) -> &str {
        &self.source_system
    }

    /// The mapping's `description`, if it has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Where the mapping came from (the file name given to [`Mapping::load`] or [`Mapping::from_str`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the mapping's `when` selector accepts this raw record (true when it has none).
    pub fn matches(&self, raw: &Json) -> bool {
        match &self.plan.when {
            Some(cond) if raw.is_object() => {
                let mut slots = vec![None; self.plan.root_scope.len()];
                resolve(&self.plan.root_scope, raw, &mut slots);
                test(
                    cond,
                    &Frame {
                        root: &slots,
                        cur: &slots,
                    },
                )
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Appends the Avro binary encoding of the normalised record to `out`, with `envelope.ingest_time` = now
    /// (unless the mapping maps it). On error `out` is left as it was.
    pub fn encode(&self, raw: &Json, out: &mut Vec<u8>) -> Result<Normalised, RecordError> {
        self.encode_at(raw, now_millis(), out)
    }

    /// [`encode`](Self::encode) with an explicit ingest time (epoch milliseconds), for replays and tests.
    pub fn encode_at(
        &self,
        raw: &Json,
        ingest_time_millis: i64,
        out: &mut Vec<u8>,
    ) -> Result<Normalised, RecordError> {
        let start = out.len();
        let result = self.run(raw, ingest_time_millis, &mut BinSink { out: &mut *out });
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The normalised record as plain JSON (the form `unsilo_schemas::json_to_avro` reads), with
    /// `envelope.ingest_time` = now unless the mapping maps it.
    pub fn to_json(&self, raw: &Json) -> Result<Json, RecordError> {
        self.to_json_at(raw, now_millis())
    }

    /// [`to_json`](Self::to_json) with an explicit ingest time (epoch milliseconds).
    pub fn to_json_at(&self, raw: &Json, ingest_time_millis: i64) -> Result<Json, RecordError> {
        let mut sink = JsonSink::default();
        self.run(raw, ingest_time_millis, &mut sink)?;
        Ok(sink.finish())
    }

    /// Resolves the raw record's paths, evaluates the record id, and walks the plan into `sink`.
    fn run<S: Sink>(
        &self,
        raw: &Json,
        ingest_time: i64,
        sink: &mut S,
    ) -> Result<Normalised, RecordError> {
        if !raw.is_object() {
            return Err(RecordError {
                field: String::new(),
                kind: RecordErrorKind::NotAnObject,
                validator: None,
                source_path: None,
                message: "a raw record must be a JSON object".into(),
            });
        }
        let root_len = self.plan.root_scope.len();
        let needed = self.plan.max_slots.max(root_len);
        // The slots of a typical mapping fit on the stack; only very large plans allocate them.
        let mut on_stack = [None; STACK_SLOTS];
        let mut on_heap = Vec::new();
        let slots: &mut [Option<&Json>] = match on_stack.get_mut(..needed) {
            Some(slots) => slots,
            None => {
                on_heap.resize(needed, None);
                &mut on_heap
            }
        };
        let (root, free) = slots.split_at_mut(root_len);
        resolve(&self.plan.root_scope, raw, root);
        let frame = Frame {
            root: &*root,
            cur: &*root,
        };
        let ids = self.ids(&frame)?;
        let cx = Ctx {
            record_id: &ids.record_id,
            source_system: &self.source_system,
            source_record_id: &ids.source_record_id,
            source_version: &ids.source_version,
            ingest_time,
        };
        write_record(&self.plan.root, &cx, frame, free, &At::Root, sink)?;
        Ok(Normalised {
            record_id: ids.record_id,
            key: ids.key,
        })
    }

    fn ids<'a>(&'a self, frame: &Frame<'_, 'a>) -> Result<Ids<'a>, RecordError> {
        let source_record_id = eval_text(
            &self.plan.source_record_id,
            frame,
            "envelope.source_record_id",
        )?;
        if source_record_id.trim().is_empty() {
            return Err(RecordError {
                field: "envelope.source_record_id".into(),
                kind: RecordErrorKind::MissingRequired,
                validator: None,
                source_path: self.plan.source_record_id.source.describe(),
                message: "the source record id is empty".into(),
            });
        }
        let source_version =
            eval_text(&self.plan.source_version, frame, "envelope.source_version")?;
        let record_id =
            unsilo_schemas::record_id(&self.source_system, &source_record_id, &source_version);
        let key = match &self.plan.partition_key {
            Some(vp) => eval_text(vp, frame, "partition_key")?.into_owned(),
            None => source_record_id.to_string(),
        };
        Ok(Ids {
            source_record_id,
            source_version,
            record_id,
            key,
        })
    }
}

#[cfg(test)]
mod classification_tests {
    use super::classification_warnings;

    #[test]
    fn a_mapping_that_can_leave_the_grade_or_class_unknown_is_named() {
        let certain = r#"
[fields]
"envelope.data_grade" = { const = "IMPORTANT" }
"envelope.share_attribute" = { path = "gx", codes = { "1" = "UNCONDITIONAL", "2" = "CONDITIONAL" }, default = "NOT_SHARED" }
"#;
        assert!(classification_warnings(certain).is_empty());
        let from_source = r#"
[fields.envelope]
data_grade = { path = "jb", codes = { "1" = "GENERAL", "3" = "CORE" } }
"#;
        let warnings = classification_warnings(from_source);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("envelope.data_grade") && warnings[0].contains("CORE"));
        assert!(warnings[1].starts_with("envelope.share_attribute"));
        let unknown_const = "[fields]\n\"envelope.data_grade\" = { const = \"UNKNOWN\" }\n";
        assert!(classification_warnings(unknown_const)[0].contains("data_grade"));
    }
}

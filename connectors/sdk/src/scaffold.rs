//! `unsilo connector new`: a new connector definition folder that passes the conformance kit out of the box.
//!
//! [`new_connector`] walks the target shared schema and writes, under `<parent_dir>/<name>/`:
//!
//! ```text
//! connector.toml                 name, description, contract and mapping files
//! contract.json                  JSON Schema of the raw dialect
//! mappings/<target>.toml         one rule per target field (records as tables, arrays with `each`, unions with `branch`)
//! fixtures/valid/example.json    the raw sample
//! fixtures/invalid/*.json        a record that breaks the contract, bad identifiers, an impossible date, non-JSON
//! README.md                      what to edit first
//! conformance_test.rs            a test to drop into a crate's `tests/`
//! ```
//!
//! The raw dialect is the shared schema's own JSON shape — the schema's example record
//! ([`unsilo_schemas::example_record`]) without the envelope fields the engine fills itself — with the two changes
//! real sources nearly always need: instants are Beijing wall-clock text (`2024-06-18 09:32:15`) and dates are
//! `YYYY-MM-DD`, and a union payload is sent as the branch's plain value. The id recipe takes the field holding the
//! source's key and `envelope.source_version`. Identifier fields get the matching validator (`cert_no`, `uscc`,
//! `region_code`, `grid_code`, `phone`) when the sample passes it, and the contract a shape pattern for them, so
//! the invalid fixtures show the layering: shape in the contract, check digits and code tables in the mapping.
//!
//! Before anything is written, the generated definition is loaded and run over its own fixtures with
//! [`conformance::check_fixtures`]; a scaffold that would not pass is an
//! error, not a folder.
//!
//! What the mapping engine cannot express (arrays of arrays, maps of records, unions inside arrays) is left
//! out of the mapping with a comment, so the field takes its schema default; no shared schema has such a field
//! today.

mod render;
use render::*;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::TimeZone as _;
use serde_json::{json, Map, Value as Json};
use unsilo_schemas::model::{Base, SchemaField, SchemaRecord, SchemaType};
use unsilo_schemas::{shared_schema, shared_schemas, validate, SharedSchema};

use crate::conformance;
use crate::definition::{valid_name, ConnectorDefinition, DefinitionError};
use crate::mapping::Validator;

/// Why a connector could not be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not 1–64 characters of `a-z`, `0-9`, `-` and `_`.
    #[error("connector name `{name}` must be 1–64 characters of a-z, 0-9, '-' and '_' (it names the raw. and dlq. topics)")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No shared schema has this name.
    #[error("unknown target schema `{name}` (shared schemas: {known})")]
    UnknownSchema {
        /// The name given.
        name: String,
        /// The shared schemas there are, comma-separated.
        known: String,
    },
    /// The target folder exists and is not an empty folder.
    #[error("{} already exists and is not an empty folder; choose another name or parent folder", dir.display())]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
    },
    /// A file or folder could not be created.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The scaffold for this schema would not load or not pass the conformance kit (a bug in the scaffolder
    /// or an example record that does not fit its schema); nothing was written.
    #[error("cannot scaffold a connector for `{schema}`: {reason}")]
    Generate {
        /// The target schema.
        schema: String,
        /// What went wrong.
        reason: String,
    },
}

/// A scaffolded connector folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scaffold {
    /// The folder, `<parent_dir>/<name>`.
    pub dir: PathBuf,
    /// Every file written, in writing order (paths under [`Scaffold::dir`]).
    pub files: Vec<PathBuf>,
    /// The mapping file, for `unsilo mapping test <mapping> <sample>`.
    pub mapping: PathBuf,
    /// The valid raw sample, `fixtures/valid/example.json`.
    pub sample: PathBuf,
}

/// Creates `<parent_dir>/<name>/`, a connector definition from raw records to the shared schema `target_schema`
/// that loads with [`ConnectorDefinition::load`] and passes [`conformance::check_fixtures`] as generated.
///
/// Refuses a name that is not `[a-z0-9_-]{1,64}`, an unknown schema (the error lists the known ones) and a
/// target folder that exists and is not empty. Files are created, never overwritten.
pub fn new_connector(
    name: &str,
    target_schema: &str,
    parent_dir: &Path,
) -> Result<Scaffold, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName {
            name: name.to_owned(),
        });
    }
    let schema = shared_schema(target_schema).ok_or_else(|| ScaffoldError::UnknownSchema {
        name: target_schema.to_owned(),
        known: shared_schemas()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let dir = parent_dir.join(name);
    refuse_non_empty(&dir)?;
    // The test template names the folder; an absolute path makes it work wherever the template is copied.
    let shown_dir = absolute(&dir);
    let files = render(name, schema, &shown_dir)?;
    self_check(schema, &files)?;
    let written = write_all(&dir, &files)?;
    Ok(Scaffold {
        mapping: dir.join(mapping_file(schema)),
        sample: dir.join(SAMPLE_FILE),
        dir,
        files: written,
    })
}

const SAMPLE_FILE: &str = "fixtures/valid/example.json";

/// Envelope fields the engine fills itself; the raw dialect does not carry them as fields.
const ENGINE_FILLED: [&str; 5] = [
    "record_id",
    "source_system",
    "source_record_id",
    "source_version",
    "ingest_time",
];

fn mapping_file(schema: &SharedSchema) -> String {
    format!("mappings/{}.toml", schema.name())
}

fn refuse_non_empty(dir: &Path) -> Result<(), ScaffoldError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ScaffoldError::Io {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(meta) if !meta.is_dir() => Err(ScaffoldError::NotEmpty {
            dir: dir.to_path_buf(),
        }),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(|source| ScaffoldError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            if entries.next().is_some() {
                Err(ScaffoldError::NotEmpty {
                    dir: dir.to_path_buf(),
                })
            } else {
                Ok(())
            }
        }
    }
}

fn absolute(dir: &Path) -> PathBuf {
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// Loads the rendered files as a definition and runs the conformance kit over their fixtures.
fn self_check(schema: &SharedSchema, files: &[(String, String)]) -> Result<(), ScaffoldError> {
    let generate = |reason: String| ScaffoldError::Generate {
        schema: schema.name().to_owned(),
        reason,
    };
    let definition = ConnectorDefinition::load_with(|relative| {
        files
            .iter()
            .find(|(path, _)| path == relative)
            .map(|(path, text)| (path.clone(), text.clone()))
            .ok_or_else(|| DefinitionError::Read {
                path: relative.to_owned(),
                reason: "not among the scaffolded files".into(),
            })
    })
    .map_err(|e| generate(e.to_string()))?;
    let fixtures = conformance::read_fixtures(files.iter().map(|(p, t)| (p.as_str(), t.as_str())))
        .map_err(|e| generate(e.to_string()))?;
    let report = conformance::check_fixtures(&definition, &fixtures);
    if report.passed() {
        Ok(())
    } else {
        Err(generate(format!(
            "its fixtures fail conformance: {}",
            report.failures.join("; ")
        )))
    }
}

/// Writes the files, creating folders; on failure removes what it created.
fn write_all(dir: &Path, files: &[(String, String)]) -> Result<Vec<PathBuf>, ScaffoldError> {
    let mut created_dirs: Vec<PathBuf> = Vec::new();
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| {
        let mut folders: Vec<PathBuf> = vec![dir.to_path_buf()];
        for (relative, _) in files {
            let mut parent = Path::new(relative).parent();
            let mut chain = Vec::new();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                chain.push(dir.join(p));
                parent = p.parent();
            }
            chain.reverse();
            for folder in chain {
                if !folders.contains(&folder) {
                    folders.push(folder);
                }
            }
        }
        for folder in folders {
            if folder.is_dir() {
                continue;
            }
            std::fs::create_dir_all(&folder).map_err(|source| ScaffoldError::Io {
                path: folder.clone(),
                source,
            })?;
            created_dirs.push(folder);
        }
        for (relative, text) in files {
            let path = dir.join(relative);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|source| ScaffoldError::Io {
                    path: path.clone(),
                    source,
                })?;
            written.push(path.clone());
            file.write_all(text.as_bytes())
                .map_err(|source| ScaffoldError::Io { path, source })?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(written),
        Err(e) => {
            // Best effort: only what this call created, files first, then the folders (if they are empty).
            for path in written.iter().rev() {
                let _ = std::fs::remove_file(path);
            }
            for folder in created_dirs.iter().rev() {
                let _ = std::fs::remove_dir(folder);
            }
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The plan: the target schema as a tree of fields, with the raw sample's union branches chosen.
// ---------------------------------------------------------------------------------------------------------

/// A validator of `unsilo_schemas::validate`, as the mapping names it (the mapping engine's [`Validator`]).
type Check = Validator;

/// What the scaffold asks of a validator besides the mapping engine's own methods.
trait CheckExt: Sized {
    /// The name a mapping file uses (`cert_no`).
    fn name(self) -> &'static str;
    /// A shape pattern for the contract.
    fn pattern(self) -> Option<&'static str>;
    /// Whether `value` passes.
    fn accepts(self, value: &str) -> bool;
    /// The validator that fits a text field, by its `x-pii` tag and name.
    fn for_field(name: &str, pii: Option<&str>) -> Option<Self>;
}

impl CheckExt for Check {
    fn name(self) -> &'static str {
        self.as_str()
    }

    /// A shape pattern for the contract (the mapping's validator checks the rest). Phone numbers come with
    /// prefixes and separators, so they get none.
    fn pattern(self) -> Option<&'static str> {
        match self {
            Self::CertNo => Some("^[0-9]{17}[0-9Xx]$"),
            Self::Uscc => Some("^[0-9A-Z]{18}$"),
            Self::RegionCode => Some("^[0-9]{12}$"),
            Self::GridCode => Some("^[0-9]{15}$"),
            Self::Phone => None,
        }
    }

    fn accepts(self, value: &str) -> bool {
        match self {
            Self::CertNo => validate::validate_cert_no(value).is_ok(),
            Self::Uscc => validate::validate_uscc(value).is_ok(),
            Self::RegionCode => validate::validate_region_code(value).is_ok(),
            Self::GridCode => validate::validate_grid_code(value).is_ok(),
            Self::Phone => validate::validate_phone(value).is_ok(),
        }
    }

    /// The validator that fits a text field, by its `x-pii` tag and name.
    fn for_field(name: &str, pii: Option<&str>) -> Option<Self> {
        match pii {
            Some("cert_no") => return Some(Self::CertNo),
            Some("phone") => return Some(Self::Phone),
            Some("uscc") => return Some(Self::Uscc),
            _ => {}
        }
        if name == "region_code" || name.ends_with("village_code") {
            Some(Self::RegionCode)
        } else if name == "grid_code" {
            Some(Self::GridCode)
        } else if name == "uscc" || name.ends_with("org_code") {
            Some(Self::Uscc)
        } else {
            None
        }
    }
}

/// A scalar target type, as the raw dialect carries it.
#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    Text,
    Integer,
    Number,
    Boolean,
    Enum(Vec<String>),
    /// timestamp-millis: Beijing wall-clock text in the raw dialect.
    Timestamp,
    /// date: `YYYY-MM-DD` in the raw dialect.
    Date,
    /// Anything else (other logical types, bytes, fixed): passed through in the example's own form.
    Native(String),
}

#[derive(Clone, Debug)]
enum Shape {
    Scalar {
        scalar: Scalar,
        check: Option<Check>,
    },
    Record {
        fields: Vec<Field>,
    },
    RecordArray {
        fields: Vec<Field>,
    },
    ScalarArray {
        scalar: Scalar,
        check: Option<Check>,
    },
    Map {
        scalar: Scalar,
    },
    Unsupported {
        what: String,
    },
}

/// The chosen branch of a union of several non-null types.
#[derive(Clone, Debug)]
struct Branch {
    /// The name the mapping's `branch` uses (short name of a named type, else the type name).
    name: String,
    /// The names an Avro-JSON tag may use for it (full and short).
    tags: Vec<String>,
    /// The other branches, for the comment.
    others: Vec<String>,
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    doc: Option<String>,
    /// Neither nullable nor defaulted: the contract requires it.
    required: bool,
    nullable: bool,
    has_default: bool,
    branch: Option<Branch>,
    shape: Shape,
}

/// Deepest nesting the scaffolder follows.
const MAX_DEPTH: usize = 12;

/// Plans the fields of a mapping from the shared schema's tree ([`unsilo_schemas::model`]).
struct Planner;

impl Planner {
    fn fields(
        &self,
        record: &SchemaRecord,
        example: Option<&Json>,
        depth: usize,
        skip: &[&str],
    ) -> Vec<Field> {
        record
            .fields
            .iter()
            .filter(|f| !skip.contains(&f.name.as_str()))
            .map(|f| self.field(f, example.and_then(|e| e.get(&f.name)), depth))
            .collect()
    }

    fn field(&self, f: &SchemaField, example: Option<&Json>, depth: usize) -> Field {
        let name = f.name.as_str();
        let doc = f.attrs.get("doc").and_then(Json::as_str).map(str::to_owned);
        let has_default = f.default.is_some();
        let pii = f.attrs.get("x-pii").and_then(Json::as_str);
        let (nullable, branch, inner, inner_example) = match &f.ty {
            SchemaType::Union(branches) => {
                let nullable = branches.iter().any(SchemaType::is_null);
                let non_null: Vec<&SchemaType> = branches.iter().filter(|b| !b.is_null()).collect();
                match non_null.as_slice() {
                    [] => (nullable, None, None, example),
                    [only] => (nullable, None, Some(*only), example),
                    several => {
                        let (index, inner_example) = pick_branch(several, example);
                        let names: Vec<Vec<String>> =
                            several.iter().map(|b| branch_names(b)).collect();
                        let name_of = |i: usize| {
                            names
                                .get(i)
                                .and_then(|n| n.last())
                                .cloned()
                                .unwrap_or_default()
                        };
                        let branch = Branch {
                            name: name_of(index),
                            tags: names.get(index).cloned().unwrap_or_default(),
                            others: (0..several.len())
                                .filter(|i| *i != index)
                                .map(name_of)
                                .collect(),
                        };
                        (
                            nullable,
                            Some(branch),
                            several.get(index).copied(),
                            inner_example,
                        )
                    }
                }
            }
            other => (false, None, Some(other), example),
        };
        let shape = match inner {
            Some(ty) => self.shape(name, pii, ty, inner_example, depth),
            None => Shape::Scalar {
                scalar: Scalar::Native("null".into()),
                check: None,
            },
        };
        Field {
            name: name.to_owned(),
            doc,
            required: !nullable && !has_default,
            nullable,
            has_default,
            branch,
            shape,
        }
    }

    fn shape(
        &self,
        name: &str,
        pii: Option<&str>,
        ty: &SchemaType,
        example: Option<&Json>,
        depth: usize,
    ) -> Shape {
        if depth > MAX_DEPTH {
            return Shape::Unsupported {
                what: "a record nested deeper than the scaffolder follows".into(),
            };
        }
        match ty {
            SchemaType::Record(record) => Shape::Record {
                fields: self.fields(record, example, depth + 1, &[]),
            },
            SchemaType::Array(items) => {
                let items = match items.non_null_branches().as_slice() {
                    [only] => *only,
                    _ => {
                        return Shape::Unsupported {
                            what: "an array of a union of several types".into(),
                        }
                    }
                };
                match items {
                    SchemaType::Record(record) => Shape::RecordArray {
                        fields: self.fields(record, example.and_then(|e| e.get(0)), depth + 1, &[]),
                    },
                    SchemaType::Array(_) | SchemaType::Map(_) => Shape::Unsupported {
                        what: format!("an array of {}s", items.branch_name()),
                    },
                    _ => {
                        let scalar = scalar_of(items);
                        let check = (scalar == Scalar::Text)
                            .then(|| Check::for_field(name, pii))
                            .flatten();
                        Shape::ScalarArray { scalar, check }
                    }
                }
            }
            SchemaType::Map(values) => match values.non_null_branches().as_slice() {
                [v] if !matches!(
                    v,
                    SchemaType::Record(_) | SchemaType::Array(_) | SchemaType::Map(_)
                ) =>
                {
                    Shape::Map {
                        scalar: scalar_of(v),
                    }
                }
                _ => Shape::Unsupported {
                    what: "a map whose values are not scalars".into(),
                },
            },
            _ => {
                let scalar = scalar_of(ty);
                let check = (scalar == Scalar::Text)
                    .then(|| Check::for_field(name, pii))
                    .flatten();
                Shape::Scalar { scalar, check }
            }
        }
    }
}

fn scalar_of(ty: &SchemaType) -> Scalar {
    match ty {
        SchemaType::Prim { base, logical, .. } => match (base, logical.as_deref()) {
            (Base::Long, Some("timestamp-millis")) => Scalar::Timestamp,
            (Base::Int, Some("date")) => Scalar::Date,
            (Base::String, _) => Scalar::Text,
            (Base::Int | Base::Long | Base::Float | Base::Double, Some(l)) => {
                Scalar::Native(format!("{} ({l})", base.name()))
            }
            (Base::Int | Base::Long, None) => Scalar::Integer,
            (Base::Float | Base::Double, None) => Scalar::Number,
            (Base::Boolean, _) => Scalar::Boolean,
            (other, _) => Scalar::Native(other.name().to_owned()),
        },
        SchemaType::Named { def, .. } => match def.get("type").and_then(Json::as_str) {
            Some("enum") => Scalar::Enum(
                def.get("symbols")
                    .and_then(Json::as_array)
                    .map(|s| {
                        s.iter()
                            .filter_map(Json::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            other => Scalar::Native(other.unwrap_or("named type").to_owned()),
        },
        other => Scalar::Native(other.branch_name()),
    }
}

/// The names the mapping engine accepts for a union branch: full and short name, or the type name.
fn branch_names(ty: &SchemaType) -> Vec<String> {
    match ty {
        SchemaType::Record(r) => vec![r.full.clone(), r.short.clone()],
        SchemaType::Named { full, short, .. } => vec![full.clone(), short.clone()],
        other => vec![other.branch_name()],
    }
}

/// Which branch the example uses (an Avro-JSON tag `{"<name>": value}`), and the untagged example value.
fn pick_branch<'e>(
    branches: &[&SchemaType],
    example: Option<&'e Json>,
) -> (usize, Option<&'e Json>) {
    if let Some(Json::Object(o)) = example {
        if o.len() == 1 {
            if let Some((tag, inner)) = o.iter().next() {
                let short = tag.rsplit('.').next().unwrap_or(tag);
                for (i, b) in branches.iter().enumerate() {
                    let names = branch_names(b);
                    if names.iter().any(|n| n == tag || n == short) {
                        return (i, Some(inner));
                    }
                }
            }
        }
    }
    (0, example)
}

// ---------------------------------------------------------------------------------------------------------
// The raw sample: the example record in the raw dialect.
// ---------------------------------------------------------------------------------------------------------

struct RawMaker {
    /// Whether some instant has a fraction of a second (then the date format reads one).
    fraction: bool,
}

impl RawMaker {
    fn object(&mut self, fields: &[Field], example: &Json) -> Json {
        let mut out = Map::new();
        for f in fields {
            if let Some(v) = example.get(&f.name) {
                out.insert(f.name.clone(), self.field(f, v));
            }
        }
        Json::Object(out)
    }

    fn field(&mut self, f: &Field, v: &Json) -> Json {
        if v.is_null() {
            return Json::Null;
        }
        let v = match (&f.branch, v) {
            (Some(b), Json::Object(o)) if o.len() == 1 => match o.iter().next() {
                Some((tag, inner)) if b.tags.iter().any(|t| t == tag) => inner,
                _ => v,
            },
            _ => v,
        };
        match &f.shape {
            Shape::Scalar { scalar, .. } => self.scalar(scalar, v),
            Shape::Record { fields } if v.is_object() => self.object(fields, v),
            Shape::RecordArray { fields } => match v {
                Json::Array(items) => {
                    Json::Array(items.iter().map(|i| self.object(fields, i)).collect())
                }
                other => other.clone(),
            },
            Shape::ScalarArray { scalar, .. } => match v {
                Json::Array(items) => {
                    Json::Array(items.iter().map(|i| self.scalar(scalar, i)).collect())
                }
                other => other.clone(),
            },
            Shape::Map { scalar } => match v {
                Json::Object(o) => Json::Object(
                    o.iter()
                        .map(|(k, i)| (k.clone(), self.scalar(scalar, i)))
                        .collect(),
                ),
                other => other.clone(),
            },
            Shape::Record { .. } | Shape::Unsupported { .. } => v.clone(),
        }
    }

    fn scalar(&mut self, scalar: &Scalar, v: &Json) -> Json {
        match (scalar, v.as_i64()) {
            (Scalar::Timestamp, Some(millis)) => match chrono_tz::Asia::Shanghai
                .timestamp_millis_opt(millis)
                .single()
            {
                Some(t) if millis.rem_euclid(1000) == 0 => {
                    Json::from(t.format("%Y-%m-%d %H:%M:%S").to_string())
                }
                Some(t) => {
                    self.fraction = true;
                    Json::from(t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                }
                None => v.clone(),
            },
            (Scalar::Date, Some(days)) => {
                // 1970-01-01 is day 719 163 of the proleptic Gregorian calendar.
                let date = i32::try_from(days)
                    .ok()
                    .and_then(|d| d.checked_add(719_163))
                    .and_then(chrono::NaiveDate::from_num_days_from_ce_opt);
                match date {
                    Some(d) => Json::from(d.format("%Y-%m-%d").to_string()),
                    None => v.clone(),
                }
            }
            _ => v.clone(),
        }
    }
}

/// Drops a validator when a value of the sample fails it (e.g. a landline in a phone field): the scaffold
/// must accept its own sample.
fn prune_checks(fields: &mut [Field], raw: &Json) {
    for f in fields {
        let v = raw.get(&f.name).unwrap_or(&Json::Null);
        match &mut f.shape {
            Shape::Scalar { check, .. } => {
                if let (Some(c), Some(s)) = (*check, v.as_str()) {
                    if !c.accepts(s) {
                        *check = None;
                    }
                }
            }
            Shape::ScalarArray { check, .. } => {
                if let (Some(c), Some(items)) = (*check, v.as_array()) {
                    if items.iter().filter_map(Json::as_str).any(|s| !c.accepts(s)) {
                        *check = None;
                    }
                }
            }
            Shape::Record { fields } => prune_checks(fields, v),
            Shape::RecordArray { fields } => {
                for item in v.as_array().map(Vec::as_slice).unwrap_or_default() {
                    prune_checks(fields, item);
                }
            }
            Shape::Map { .. } | Shape::Unsupported { .. } => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Places in the raw sample where the invalid fixtures change something.
// ---------------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug, PartialEq)]
enum SiteKind {
    Check(Check),
    Timestamp,
    Date,
}

#[derive(Clone, Debug)]
struct Site {
    path: Vec<Step>,
    kind: SiteKind,
}

fn collect_sites(fields: &[Field], raw: &Json, at: &mut Vec<Step>, out: &mut Vec<Site>) {
    let Some(obj) = raw.as_object() else { return };
    for f in fields {
        let Some(v) = obj.get(&f.name) else { continue };
        at.push(Step::Key(f.name.clone()));
        match &f.shape {
            Shape::Scalar { scalar, check } => {
                let kind = match (scalar, check) {
                    (_, Some(c)) => Some(SiteKind::Check(*c)),
                    (Scalar::Timestamp, _) if v.is_string() => Some(SiteKind::Timestamp),
                    (Scalar::Date, _) if v.is_string() => Some(SiteKind::Date),
                    _ => None,
                };
                if let Some(kind) = kind {
                    out.push(Site {
                        path: at.clone(),
                        kind,
                    });
                }
            }
            Shape::Record { fields } => collect_sites(fields, v, at, out),
            Shape::RecordArray { fields } => {
                for (i, item) in v
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    at.push(Step::Index(i));
                    collect_sites(fields, item, at, out);
                    at.pop();
                }
            }
            Shape::ScalarArray { .. } | Shape::Map { .. } | Shape::Unsupported { .. } => {}
        }
        at.pop();
    }
}

fn at_mut<'v>(v: &'v mut Json, path: &[Step]) -> Option<&'v mut Json> {
    path.iter().try_fold(v, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// The raw sample with the value at `path` replaced (or removed, for `None`).
fn with_value(raw: &Json, path: &[Step], value: Option<Json>) -> Json {
    let mut out = raw.clone();
    if let Some((last, parent)) = path.split_last() {
        if let Some(parent) = at_mut(&mut out, parent) {
            match (last, value) {
                (Step::Key(k), Some(v)) => {
                    if let Some(o) = parent.as_object_mut() {
                        o.insert(k.clone(), v);
                    }
                }
                (Step::Key(k), None) => {
                    if let Some(o) = parent.as_object_mut() {
                        o.remove(k);
                    }
                }
                (Step::Index(i), v) => {
                    if let Some(slot) = parent.get_mut(*i) {
                        *slot = v.unwrap_or(Json::Null);
                    }
                }
            }
        }
    }
    out
}

fn dotted(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// A well-formed identifier (it passes the contract's pattern) that the validator rejects.
fn bad_identifier(check: Check, current: Option<&str>) -> Option<String> {
    let candidates: Vec<String> = match check {
        Check::CertNo => {
            let base = current
                .filter(|c| c.len() == 18 && c.is_ascii())
                .map(|c| c[..17].to_owned())
                .unwrap_or_else(|| "61092119880101123".to_owned());
            "0123456789X"
                .chars()
                .map(|c| format!("{base}{c}"))
                .collect()
        }
        Check::RegionCode => {
            let county = current
                .filter(|c| c.len() >= 6 && c.is_ascii())
                .map_or("610921", |c| &c[..6]);
            vec![
                format!("{county}999999"),
                "610921999999".into(),
                "619999000000".into(),
            ]
        }
        Check::GridCode => {
            let village = current
                .filter(|c| c.len() >= 12 && c.is_ascii())
                .map_or("610921100001", |c| &c[..12]);
            vec![format!("{village}000"), "610921999999001".into()]
        }
        Check::Uscc => {
            let base = current
                .filter(|c| c.len() == 18 && c.is_ascii())
                .map(|c| c[..17].to_owned())
                .unwrap_or_else(|| "11610921016050037".to_owned());
            "0123456789ABCDEFGHJKLMNPQRTUWXY"
                .chars()
                .map(|c| format!("{base}{c}"))
                .collect()
        }
        Check::Phone => vec!["12345678901".into()],
    };
    candidates
        .into_iter()
        .find(|c| !check.accepts(c) && check.pattern().is_none_or(|p| matches_shape(p, c)))
}

/// Whether `value` fits one of the scaffold's own simple patterns (digits and upper-case letters of a length).
fn matches_shape(pattern: &str, value: &str) -> bool {
    match pattern {
        "^[0-9]{17}[0-9Xx]$" => {
            value.len() == 18
                && value.bytes().take(17).all(|b| b.is_ascii_digit())
                && value
                    .as_bytes()
                    .get(17)
                    .is_some_and(|b| b.is_ascii_digit() || *b == b'X' || *b == b'x')
        }
        "^[0-9A-Z]{18}$" => {
            value.len() == 18
                && value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        }
        "^[0-9]{12}$" => value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()),
        "^[0-9]{15}$" => value.len() == 15 && value.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// A well-formed date or instant (it passes the contract's pattern) that is not on the calendar.
fn impossible(kind: &SiteKind) -> &'static str {
    match kind {
        SiteKind::Date => "2024-02-30",
        _ => "2024-02-30 09:30:00",
    }
}

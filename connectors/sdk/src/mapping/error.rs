//! Errors of the mapping engine.
//!
//! Two kinds, for two audiences:
//!
//! - [`MappingError`]: a mapping file that does not load. It carries **every** problem found (not just the first),
//!   each as a [`LoadIssue`] with the line it is on, and renders as `file:line: reason` lines — the operator fixes
//!   the file once, at start-up, not one error per restart.
//! - [`RecordError`]: one raw record that the mapping cannot normalise. It is machine-readable (serialises to JSON
//!   for a dead-letter header or body) and its message never contains a full ID number or phone number: values of
//!   personal-data fields are masked (ID 6+4, mobile 3+4, name to its first character) or withheld.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

/// One problem in a mapping file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadIssue {
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// 1-based column (in characters) of the offending key or value.
    pub column: usize,
    /// What is wrong, in a sentence that names the key and the target field.
    pub reason: String,
}

/// A mapping that cannot be loaded.
#[derive(Debug, Error)]
pub enum MappingError {
    /// The mapping file cannot be read.
    #[error("cannot read mapping {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The mapping file has errors; every one found is listed.
    #[error("{}", render_issues(origin, issues))]
    Invalid {
        /// Name of the file (or whatever the text came from).
        origin: String,
        /// All problems, in file order.
        issues: Vec<LoadIssue>,
    },
}

impl MappingError {
    /// The problems found (empty for [`MappingError::Io`]).
    pub fn issues(&self) -> &[LoadIssue] {
        match self {
            Self::Io { .. } => &[],
            Self::Invalid { issues, .. } => issues,
        }
    }
}

fn render_issues(origin: &str, issues: &[LoadIssue]) -> String {
    let mut text = String::new();
    for (i, issue) in issues.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&format!("{origin}:{}: {}", issue.line, issue.reason));
    }
    text
}

/// What is wrong with a raw record, as a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordErrorKind {
    /// The raw record is not a JSON object.
    NotAnObject,
    /// A required target field has no value (source missing or null, no default).
    MissingRequired,
    /// A value of a JSON type that cannot become the target type (an object for a string, `"abc"` for a boolean).
    BadType,
    /// A number that does not parse or does not fit the target (`"12,5"`, 3e10 for an int, a fraction of a fen).
    BadNumber,
    /// A code that is not in the rule's code table, or text that is not a symbol of the target enum.
    BadCode,
    /// A date or time that matches none of the rule's formats, or is not a real calendar instant.
    BadDatetime,
    /// A validator (see [`Validator`]) rejected the value.
    Validator,
}

impl RecordErrorKind {
    /// The snake_case code, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAnObject => "not_an_object",
            Self::MissingRequired => "missing_required",
            Self::BadType => "bad_type",
            Self::BadNumber => "bad_number",
            Self::BadCode => "bad_code",
            Self::BadDatetime => "bad_datetime",
            Self::Validator => "validator",
        }
    }
}

impl fmt::Display for RecordErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identifier validators a rule can ask for with `validate = "…"` (they are [`unsilo_schemas::validate`]'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Resident ID number, GB 11643 (normalised to an upper-case `X`).
    CertNo,
    /// Unified social credit code, GB 32100.
    Uscc,
    /// 12-digit region code known to the embedded division tables.
    RegionCode,
    /// 15-digit grid code: a known village code and a serial 001..999.
    GridCode,
    /// Mainland mobile number (normalised to its bare 11 digits).
    Phone,
}

impl Validator {
    /// Every validator, in documentation order.
    pub const ALL: [Validator; 5] = [
        Self::CertNo,
        Self::Uscc,
        Self::RegionCode,
        Self::GridCode,
        Self::Phone,
    ];

    /// The name used in mapping files and errors, e.g. `cert_no`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CertNo => "cert_no",
            Self::Uscc => "uscc",
            Self::RegionCode => "region_code",
            Self::GridCode => "grid_code",
            Self::Phone => "phone",
        }
    }

    /// The validator with this mapping-file name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == name)
    }
}

impl fmt::Display for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A raw record the mapping cannot normalise: which target field, what kind of problem, and a message.
///
/// Serialises as
/// `{"field":"parties[1].cert_no","kind":"validator","validator":"cert_no","source_path":"dsr[1].sfzh","message":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Error)]
#[error("{}: {message}", if field.is_empty() { "(record)" } else { field.as_str() })]
pub struct RecordError {
    /// Target field path with array indices, e.g. `parties[1].cert_no`; empty for the record as a whole.
    pub field: String,
    /// The kind of problem.
    pub kind: RecordErrorKind,
    /// The validator that failed, for [`RecordErrorKind::Validator`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validator: Option<Validator>,
    /// The raw path (or rule) the value came from, e.g. `dsr[1].sfzh`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    /// A human-readable explanation; personal data in it is masked.
    pub message: String,
}

impl RecordError {
    /// The kind as a compact label: `bad_code`, or `validator(cert_no)` for a validator failure.
    pub fn kind_label(&self) -> String {
        match self.validator {
            Some(v) => format!("{}({v})", self.kind),
            None => self.kind.to_string(),
        }
    }

    /// The error as a JSON object (what goes into a dead-letter record), the same shape as its `Serialize`.
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising a struct of strings and unit enums cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

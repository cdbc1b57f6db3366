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
//! per-field actions holding source field indices. [`ViewPlan::encode`] then only walks that tree over the decoded
//! record, writing the view's Avro bytes as it goes: no schema lookups, no name resolution, no view value built.
//! It runs once per record per subscription, so that matters. [`ViewPlan::apply`] gives the same view as a value.
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
//!
//! # Layout
//!
//! - this file: [`ViewError`] and the shared vocabulary of the submodules;
//! - `schema_tree`: the shared schema as a resolved type tree;
//! - `emit`: the rule selection tree, the view type tree (serialised to view-schema JSON) and the action tree;
//! - `build`: checking the rules against the shared schema and building the view;
//! - `plan`: [`ViewPlan`], what a built view keeps and runs per record;
//! - `apply`: applying a plan to one record;
//! - `person`: [`person_keys`], the pseudonymous keys of the people a record is about.

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

mod apply;
mod build;
mod emit;
mod person;
mod plan;
mod schema_tree;
#[cfg(test)]
mod tests;

use apply::*;
use build::*;
use emit::*;
use person::*;
use schema_tree::*;

pub use person::person_keys;
pub use plan::ViewPlan;

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

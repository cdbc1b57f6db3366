//! The sensitivity view of a schema: which fields are how sensitive and which carry personal information.
//!
//! Every field of a shared schema, at every depth, carries two custom attributes next to its `doc`:
//!
//! - `"x-sensitivity"`: `S1` public (公开), `S2` internal (内部), `S3` sensitive (敏感), `S4` sensitive personal
//!   information (敏感个人信息: ID numbers, phone numbers, exact addresses and coordinates, health, welfare and
//!   criminal-justice status, minors).
//! - `"x-pii"` (personal data only): the kind of personal data, one of [`PiiKind`]. The policy engine picks the
//!   default treatment from it (mask an ID number 6+4, a mobile 3+4, a name to its first character, generalise an
//!   address to its village code, a birth date to its year, coordinates to about 100 m).
//!
//! [`field_tags_of`] reads them from the schema tree ([`crate::model`]) into a flat list of [`FieldTag`]s keyed by dotted path: record fields are
//! joined with `.`; arrays and maps add nothing (`parties.cert_no` is the `cert_no` of every party); a union with
//! more than one non-null branch adds the branch's short type name, mirroring Avro's JSON encoding of unions
//! (`payload.DibaoRecipient.cert_no`), while `["null", T]` adds nothing.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use thiserror::Error;

use crate::model::{ModelError, SchemaRecord};

/// Sensitivity level of a field (`x-sensitivity`), ordered from least to most sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sensitivity {
    /// 公开: may be published.
    S1,
    /// 内部: for government use.
    S2,
    /// 敏感: personal or otherwise sensitive; shared only under an approved subscription.
    S3,
    /// 敏感个人信息: never released in clear without a legal basis on record.
    S4,
}

impl Sensitivity {
    /// The attribute value, `S1`..`S4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S1 => "S1",
            Self::S2 => "S2",
            Self::S3 => "S3",
            Self::S4 => "S4",
        }
    }
}

impl fmt::Display for Sensitivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Sensitivity {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "S1" => Ok(Self::S1),
            "S2" => Ok(Self::S2),
            "S3" => Ok(Self::S3),
            "S4" => Ok(Self::S4),
            _ => Err(TagError::BadSensitivity {
                path: String::new(),
                value: s.to_string(),
            }),
        }
    }
}

/// Kind of personal data in a field (`x-pii`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    /// `cert_no`: identity document number.
    CertNo,
    /// `phone`: phone number.
    Phone,
    /// `name`: a person's name.
    Name,
    /// `address`: exact address.
    Address,
    /// `geo`: coordinates of a person's home or whereabouts.
    Geo,
    /// `free_text`: free text that may mention people.
    FreeText,
    /// `birth_date`: date of birth.
    BirthDate,
    /// `person_ref`: an id that points at a person or household.
    PersonRef,
    /// `uscc`: unified social credit code of an applicant (identifies a sole trader).
    Uscc,
}

impl PiiKind {
    /// All kinds.
    pub const ALL: [PiiKind; 9] = [
        Self::CertNo,
        Self::Phone,
        Self::Name,
        Self::Address,
        Self::Geo,
        Self::FreeText,
        Self::BirthDate,
        Self::PersonRef,
        Self::Uscc,
    ];

    /// The attribute value, e.g. `cert_no`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CertNo => "cert_no",
            Self::Phone => "phone",
            Self::Name => "name",
            Self::Address => "address",
            Self::Geo => "geo",
            Self::FreeText => "free_text",
            Self::BirthDate => "birth_date",
            Self::PersonRef => "person_ref",
            Self::Uscc => "uscc",
        }
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PiiKind {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| TagError::BadPii {
                path: String::new(),
                value: s.to_string(),
            })
    }
}

/// The tags of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTag {
    /// Dotted path from the top-level record, e.g. `parties.cert_no` (see the module docs).
    pub path: String,
    /// `x-sensitivity`.
    pub sensitivity: Sensitivity,
    /// `x-pii`, for personal data.
    pub pii: Option<PiiKind>,
    /// The field's `doc`.
    pub doc: String,
}

/// A schema whose tags are missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TagError {
    /// A field has no `x-sensitivity`.
    #[error("field {path} has no x-sensitivity attribute")]
    MissingSensitivity {
        /// Path of the field.
        path: String,
    },
    /// `x-sensitivity` is not one of S1..S4.
    #[error("field {path}: x-sensitivity {value:?} is not one of S1, S2, S3, S4")]
    BadSensitivity {
        /// Path of the field.
        path: String,
        /// The value found.
        value: String,
    },
    /// `x-pii` is not a known kind.
    #[error("field {path}: x-pii {value:?} is not one of cert_no, phone, name, address, geo, free_text, birth_date, person_ref, uscc")]
    BadPii {
        /// Path of the field.
        path: String,
        /// The value found.
        value: String,
    },
    /// The schema JSON is not shaped like an Avro schema.
    #[error("malformed schema at {path}: {reason}")]
    Malformed {
        /// Where.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<ModelError> for TagError {
    fn from(e: ModelError) -> Self {
        TagError::Malformed {
            path: e.path,
            reason: e.reason,
        }
    }
}

/// Reads the field tags of an Avro schema given as JSON (self-contained: named types defined before use).
pub fn field_tags_from_json(schema: &Value) -> Result<Vec<FieldTag>, TagError> {
    field_tags_of(&SchemaRecord::parse(schema)?)
}

/// Reads the field tags of a schema tree, every field at every depth in order (parents first).
pub fn field_tags_of(tree: &SchemaRecord) -> Result<Vec<FieldTag>, TagError> {
    let mut tags = Vec::new();
    tree.visit_fields(&mut |path, field| {
        let sensitivity =
            match field.attrs.get("x-sensitivity") {
                None => {
                    return Err(TagError::MissingSensitivity {
                        path: path.to_owned(),
                    })
                }
                Some(v) => v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    TagError::BadSensitivity {
                        path: path.to_owned(),
                        value: attr_text(v),
                    }
                })?,
            };
        let pii =
            match field.attrs.get("x-pii") {
                None => None,
                Some(v) => Some(v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    TagError::BadPii {
                        path: path.to_owned(),
                        value: attr_text(v),
                    }
                })?),
            };
        tags.push(FieldTag {
            path: path.to_owned(),
            sensitivity,
            pii,
            doc: field.doc().to_owned(),
        });
        Ok(())
    })?;
    Ok(tags)
}

/// An attribute value for an error message: the text of a string, the JSON of anything else.
fn attr_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_follow_records_arrays_and_tagged_unions() {
        let schema = json!({
            "type": "record", "name": "T", "namespace": "x",
            "fields": [
                {"name": "a", "type": "string", "x-sensitivity": "S1"},
                {"name": "p", "x-sensitivity": "S4", "type": {"type": "array", "items": {
                    "type": "record", "name": "P",
                    "fields": [{"name": "cert_no", "type": ["null", "string"], "x-sensitivity": "S4", "x-pii": "cert_no"}]}}},
                {"name": "again", "type": ["null", "x.P"], "x-sensitivity": "S4"},
                {"name": "u", "x-sensitivity": "S3", "type": [
                    {"type": "record", "name": "Q", "fields": [{"name": "q", "type": "int", "x-sensitivity": "S2"}]},
                    {"type": "map", "values": "string"}]}
            ]
        });
        let tags = field_tags_from_json(&schema).unwrap();
        let paths: Vec<&str> = tags.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "a",
                "p",
                "p.cert_no",
                "again",
                "again.cert_no",
                "u",
                "u.Q.q"
            ]
        );
        assert_eq!(tags[2].pii, Some(PiiKind::CertNo));
        assert_eq!(tags[2].sensitivity, Sensitivity::S4);
    }

    #[test]
    fn missing_or_bad_tags_are_errors() {
        let missing =
            json!({"type": "record", "name": "T", "fields": [{"name": "a", "type": "string"}]});
        assert_eq!(
            field_tags_from_json(&missing),
            Err(TagError::MissingSensitivity { path: "a".into() })
        );
        let bad = json!({"type": "record", "name": "T", "fields": [{"name": "a", "type": "string", "x-sensitivity": "S5"}]});
        assert!(matches!(
            field_tags_from_json(&bad),
            Err(TagError::BadSensitivity { .. })
        ));
        let pii = json!({"type": "record", "name": "T", "fields": [
            {"name": "a", "type": "string", "x-sensitivity": "S4", "x-pii": "dna"}]});
        let err = field_tags_from_json(&pii).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("field a: x-pii \"dna\" is not one of"),
            "{err}"
        );
    }

    #[test]
    fn sensitivity_orders_and_round_trips() {
        assert!(Sensitivity::S1 < Sensitivity::S4);
        for s in ["S1", "S2", "S3", "S4"] {
            assert_eq!(s.parse::<Sensitivity>().unwrap().as_str(), s);
        }
        for k in PiiKind::ALL {
            assert_eq!(k.as_str().parse::<PiiKind>(), Ok(k));
        }
    }
}

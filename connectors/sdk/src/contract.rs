//! The raw contract: a JSON Schema of what a source system sends, checked before any mapping.
//!
//! A record that breaks the contract is rejected with every violation listed (stage `contract`), each naming the
//! JSON pointer at fault. Violation messages never contain the offending value, because raw records carry
//! personal data (ID numbers, phone numbers) that must not spread into logs and reasons.
//!
//! Schemas are compiled once when the connector loads; remote `$ref`s are not resolved (no network at run time).

use std::path::Path;

use crate::sdk::RejectReason;

/// Errors loading a contract.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The file could not be read.
    #[error("cannot read raw contract {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not JSON, or not a valid JSON Schema.
    #[error("invalid raw contract {origin}: {reason}")]
    Invalid {
        /// The file or name it came from.
        origin: String,
        /// Why.
        reason: String,
    },
}

/// A compiled raw contract.
pub struct Contract {
    origin: String,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// At most this many violations are reported per record.
const MAX_VIOLATIONS: usize = 10;

impl Contract {
    /// Compiles a contract from JSON Schema text; `origin` names it in errors (usually the file path).
    pub fn from_str(text: &str, origin: &str) -> Result<Self, ContractError> {
        let schema: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ContractError::Invalid {
                origin: origin.to_owned(),
                reason: format!("not JSON: {e}"),
            })?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| ContractError::Invalid {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            origin: origin.to_owned(),
            validator,
        })
    }

    /// Reads and compiles a contract file.
    pub fn load(path: &Path) -> Result<Self, ContractError> {
        let text = std::fs::read_to_string(path).map_err(|e| ContractError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// Where the contract came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Checks a raw record. On violation, the reason lists up to ten violations, each with its JSON pointer.
    pub fn check(&self, raw: &serde_json::Value) -> Result<(), RejectReason> {
        if self.validator.is_valid(raw) {
            return Ok(());
        }
        let mut first_field = None;
        let mut messages = Vec::new();
        for e in self.validator.iter_errors(raw).take(MAX_VIOLATIONS) {
            let pointer = e.instance_path().to_string();
            let at = if pointer.is_empty() {
                "/".to_owned()
            } else {
                pointer
            };
            if first_field.is_none() {
                first_field = Some(at.clone());
            }
            messages.push(format!("{at}: {}", e.masked()));
        }
        Err(RejectReason {
            stage: "contract",
            code: "contract_violation".into(),
            field: first_field,
            message: messages.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract() -> Contract {
        let schema = json!({
            "type": "object",
            "required": ["eventId", "sfzh"],
            "properties": {
                "eventId": {"type": "string", "minLength": 1},
                "sfzh": {"type": "string", "pattern": "^[0-9]{17}[0-9Xx]$"},
                "level": {"enum": ["1", "2", "3"]}
            }
        });
        Contract::from_str(&schema.to_string(), "test.json").expect("compiles")
    }

    #[test]
    fn a_conforming_record_passes() {
        assert!(contract()
            .check(&json!({"eventId": "E1", "sfzh": "11010519491231002X"}))
            .is_ok());
    }

    #[test]
    fn violations_name_the_field_and_never_echo_the_value() {
        let reason = contract()
            .check(&json!({"eventId": "", "sfzh": "610921198801011234567", "level": "9"}))
            .expect_err("must fail");
        assert_eq!(reason.stage, "contract");
        assert_eq!(reason.code, "contract_violation");
        assert!(reason.message.contains("/sfzh"), "{}", reason.message);
        assert!(reason.message.contains("/level"), "{}", reason.message);
        assert!(reason.message.contains("/eventId"), "{}", reason.message);
        assert!(
            !reason.message.contains("610921198801011234567"),
            "value leaked: {}",
            reason.message
        );
    }

    #[test]
    fn a_missing_required_field_is_reported() {
        let reason = contract()
            .check(&json!({"eventId": "E1"}))
            .expect_err("must fail");
        assert!(reason.message.contains("sfzh"), "{}", reason.message);
    }

    #[test]
    fn a_broken_schema_fails_to_load_with_its_origin() {
        let err = Contract::from_str("{\"type\": 12}", "bad.json").expect_err("must fail");
        assert!(err.to_string().contains("bad.json"), "{err}");
        let err = Contract::from_str("not json", "bad.json").expect_err("must fail");
        assert!(err.to_string().contains("not JSON"), "{err}");
    }
}

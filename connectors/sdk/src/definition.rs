//! A connector definition: the raw contract and the mappings of one source system, and the normaliser that
//! applies them to each raw record.
//!
//! A definition is a folder (or, for the built-in connectors, the same files compiled into the binary):
//!
//! ```text
//! connector.toml        name, description, contract file, mapping files
//! contract.json         JSON Schema of what the source sends
//! mappings/*.toml       one mapping per target shared schema (see docs/mapping.md)
//! fixtures/valid/*.json     sample raw records that must normalise
//! fixtures/invalid/*.json   sample raw records that must be rejected (with the expected reason code)
//! ```
//!
//! Everything is checked when the definition loads — a bad mapping fails at start with file, line and reason,
//! never on a record at 3 a.m.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use unsilo_schemas::SharedSchema;

use crate::contract::{Contract, ContractError};
use crate::mapping::{CompiledMapping, MappingError, RecordErrorKind};
use crate::sdk::{RawInput, RejectReason};

/// Errors loading a connector definition.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// `connector.toml` is malformed (the message names key and line).
    #[error("invalid connector definition {path}: {reason}")]
    Manifest {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The raw contract does not compile.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// A mapping does not load (the message names file, line and reason).
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// No built-in connector has this name.
    #[error("no built-in connector named `{name}` (built-in: {known})")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
}

/// `connector.toml`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Connector name: lower-case letters, digits and `-`/`_`; names the `raw.` and `dlq.` topics.
    pub name: String,
    /// What the source system is, in Chinese and English.
    pub description: String,
    /// The raw contract file, relative to the definition folder.
    pub contract: String,
    /// The mapping files, relative to the definition folder. A raw record goes to the first mapping whose
    /// `when` selector matches it.
    pub mappings: Vec<String>,
}

/// A loaded, checked connector definition.
pub struct ConnectorDefinition {
    manifest: Manifest,
    contract: Contract,
    mappings: Vec<CompiledMapping>,
}

impl std::fmt::Debug for ConnectorDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorDefinition")
            .field("name", &self.manifest.name)
            .field("mappings", &self.mappings.len())
            .finish_non_exhaustive()
    }
}

/// A raw record normalised into a shared schema.
#[derive(Clone, Debug)]
pub struct NormalisedRecord {
    /// The shared schema.
    pub schema: &'static SharedSchema,
    /// The deterministic record id.
    pub record_id: String,
    /// The partition key (the source's record id), so every version of one source record stays in order.
    pub key: String,
}

/// Whether `name` is a valid connector or mapping name: 1 to 64 of `a-z`, `0-9`, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Reads the files of a definition folder on disk, by path relative to it: `(path shown in errors, contents)`.
pub fn folder_reader(
    dir: &Path,
) -> impl Fn(&str) -> Result<(String, String), DefinitionError> + '_ {
    move |relative: &str| {
        let path: PathBuf = dir.join(relative);
        let text = std::fs::read_to_string(&path).map_err(|e| DefinitionError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok((path.display().to_string(), text))
    }
}

/// The files a definition is made of — `connector.toml` and the contract and mappings it names, by path — read
/// through `read` (a folder's [`folder_reader`], a built-in's): what a hub pushes to an edge node, signed.
pub fn definition_files(
    read: impl Fn(&str) -> Result<(String, String), DefinitionError>,
) -> Result<std::collections::BTreeMap<String, String>, DefinitionError> {
    let (origin, manifest_text) = read("connector.toml")?;
    let manifest: Manifest =
        toml::from_str(&manifest_text).map_err(|e| DefinitionError::Manifest {
            path: origin,
            reason: e.to_string(),
        })?;
    let mut files = std::collections::BTreeMap::new();
    for relative in std::iter::once(&manifest.contract).chain(&manifest.mappings) {
        files.insert(relative.clone(), read(relative)?.1);
    }
    files.insert("connector.toml".into(), manifest_text);
    Ok(files)
}

impl ConnectorDefinition {
    /// Loads a definition from a folder on disk.
    pub fn load(dir: &Path) -> Result<Self, DefinitionError> {
        Self::load_with(folder_reader(dir))
    }

    /// Loads a definition through `read`, which maps a path relative to the definition folder to
    /// `(origin name for errors, contents)`. Used for folders on disk and for the compiled-in built-ins.
    pub fn load_with(
        read: impl Fn(&str) -> Result<(String, String), DefinitionError>,
    ) -> Result<Self, DefinitionError> {
        let (manifest_origin, manifest_text) = read("connector.toml")?;
        let manifest: Manifest =
            toml::from_str(&manifest_text).map_err(|e| DefinitionError::Manifest {
                path: manifest_origin.clone(),
                reason: e.to_string(),
            })?;
        if !valid_name(&manifest.name) {
            return Err(DefinitionError::Manifest {
                path: manifest_origin,
                reason: format!(
                    "name `{}` must be 1–64 characters of a-z, 0-9, '-' and '_'",
                    manifest.name
                ),
            });
        }
        if manifest.mappings.is_empty() {
            return Err(DefinitionError::Manifest {
                path: manifest_origin,
                reason: "`mappings` lists no mapping file".into(),
            });
        }
        let (contract_origin, contract_text) = read(&manifest.contract)?;
        let contract = Contract::from_str(&contract_text, &contract_origin)?;
        let mut mappings = Vec::with_capacity(manifest.mappings.len());
        for file in &manifest.mappings {
            let (origin, text) = read(file)?;
            mappings.push(CompiledMapping::from_str(&text, &origin)?);
        }
        Ok(Self {
            manifest,
            contract,
            mappings,
        })
    }

    /// The connector's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The raw contract every record is checked against first.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// The compiled mappings, in selection order.
    pub fn mappings(&self) -> &[CompiledMapping] {
        &self.mappings
    }

    /// The shared schemas this connector produces.
    pub fn target_schemas(&self) -> Vec<&'static SharedSchema> {
        let mut out: Vec<&'static SharedSchema> = Vec::new();
        for m in &self.mappings {
            if !out.iter().any(|s| s.name() == m.target().name()) {
                out.push(m.target());
            }
        }
        out
    }

    /// Normalises one raw record: contract check, mapping selection, mapping with validators, Avro encoding.
    /// On success the Avro binary of the record is appended to `out`; on rejection `out` is unchanged.
    pub fn normalise(
        &self,
        input: &RawInput,
        out: &mut Vec<u8>,
    ) -> Result<NormalisedRecord, RejectReason> {
        self.normalise_at(input, crate::mapping::now_millis(), out)
    }

    /// [`normalise`](Self::normalise) with the time the record entered the hub (`envelope.ingest_time`, epoch
    /// milliseconds): now for a new record, its first arrival for one re-normalised or replayed.
    pub fn normalise_at(
        &self,
        input: &RawInput,
        ingest_time_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<NormalisedRecord, RejectReason> {
        let raw = match &input.parsed {
            Ok(v) => v,
            Err(reason) => {
                return Err(RejectReason {
                    stage: "parse",
                    code: "unreadable_input".into(),
                    field: None,
                    message: reason.clone(),
                })
            }
        };
        self.contract.check(raw)?;
        let Some(mapping) = self.mappings.iter().find(|m| m.matches(raw)) else {
            return Err(RejectReason {
                stage: "mapping",
                code: "no_mapping".into(),
                field: None,
                message: format!(
                    "no mapping of connector `{}` applies to this record (none of their `when` selectors match)",
                    self.manifest.name
                ),
            });
        };
        match mapping.encode_at(raw, ingest_time_ms, out) {
            Ok(n) => Ok(NormalisedRecord {
                schema: mapping.target(),
                record_id: n.record_id,
                key: n.key,
            }),
            Err(e) => Err(RejectReason {
                stage: if e.kind == RecordErrorKind::Validator {
                    "validation"
                } else {
                    "mapping"
                },
                code: e.kind_label(),
                field: (!e.field.is_empty()).then(|| e.field.clone()),
                message: e.message.clone(),
            }),
        }
    }
}

//! The catalog of shared schemas: the `.avsc` files compiled into the crate, composed and parsed once.
//!
//! The files under `schemas/avro/` are the single source of truth. Each entity schema's first field is
//! `{"name": "envelope", "type": "unsilo.common.Envelope", …}`, a reference by name. For registration the catalog
//! composes a **self-contained** schema: the first reference to `unsilo.common.Envelope` is replaced by the
//! envelope's full definition (later ones stay references to it), so a Confluent-compatible registry and any
//! Avro library can use the text without knowing about other files. Docs and `x-` attributes are kept.

use std::sync::LazyLock;

use apache_avro::Schema;
use serde_json::Value;
use thiserror::Error;

use crate::model::SchemaRecord;
use crate::tags::{field_tags_of, FieldTag, TagError};

/// Full name of the envelope record every entity schema starts with.
pub const ENVELOPE_FULL_NAME: &str = "unsilo.common.Envelope";

/// One embedded `.avsc` file.
struct SchemaFile {
    domain: &'static str,
    name: &'static str,
    text: &'static str,
}

macro_rules! schema_file {
    ($domain:literal, $name:literal) => {
        SchemaFile {
            domain: $domain,
            name: $name,
            text: include_str!(concat!("../avro/", $domain, "/", $name, ".avsc")),
        }
    };
}

const ENVELOPE_FILE: SchemaFile = schema_file!("common", "envelope");

/// The entity schemas, in catalog order.
const ENTITY_FILES: [SchemaFile; 9] = [
    schema_file!("grid", "grid_event"),
    schema_file!("grid", "grid_unit"),
    schema_file!("grid", "household"),
    schema_file!("grid", "resident"),
    schema_file!("hotline", "hotline_ticket"),
    schema_file!("qinwuyuan", "service_case"),
    schema_file!("qinwuyuan", "rating"),
    schema_file!("qinwuyuan", "appeal"),
    schema_file!("dept", "dept_record"),
];

/// An embedded schema file that does not load (only possible while editing the files; tests catch it).
#[derive(Debug, Error)]
pub(crate) enum LoadError {
    #[error("avro/{domain}/{name}.avsc is not JSON: {source}")]
    Json {
        domain: &'static str,
        name: &'static str,
        source: serde_json::Error,
    },
    #[error("avro/{domain}/{name}.avsc is not a valid Avro schema once composed: {source}")]
    Avro {
        domain: &'static str,
        name: &'static str,
        source: Box<apache_avro::Error>,
    },
    #[error("avro/{domain}/{name}.avsc must be a record schema")]
    NotARecord {
        domain: &'static str,
        name: &'static str,
    },
    #[error("avro/{domain}/{name}.avsc: {source}")]
    Tags {
        domain: &'static str,
        name: &'static str,
        source: TagError,
    },
}

/// A shared schema: its names, its self-contained JSON, the parsed Avro schema and its field tags.
#[derive(Debug, Clone)]
pub struct SharedSchema {
    name: &'static str,
    domain: &'static str,
    source: &'static str,
    full_name: String,
    json: Value,
    avro: Schema,
    tree: SchemaRecord,
    field_tags: Vec<FieldTag>,
}

impl SharedSchema {
    /// Short name, the file stem, e.g. `grid_event`.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Domain, the folder, e.g. `grid`.
    pub fn domain(&self) -> &str {
        self.domain
    }

    /// Full Avro name, e.g. `unsilo.grid.GridEvent`.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// The self-contained schema as JSON (envelope inlined, docs and `x-` attributes kept).
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The self-contained schema as JSON text, as registered in the schema registry.
    pub fn schema_string(&self) -> String {
        self.json.to_string()
    }

    /// The `.avsc` file as written (the envelope only referenced by name).
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Path of the source file inside `schemas/`, e.g. `avro/grid/grid_event.avsc`.
    pub fn source_path(&self) -> String {
        format!("avro/{}/{}.avsc", self.domain, self.name)
    }

    /// The parsed Avro schema.
    pub fn avro(&self) -> &Schema {
        &self.avro
    }

    /// The bus topic of normalised records of this schema: `std.<name>`.
    pub fn topic(&self) -> String {
        crate::names::std_topic(self.name)
    }

    /// The registry subject of the topic's values (Confluent TopicNameStrategy): `std.<name>-value`.
    pub fn subject(&self) -> String {
        crate::names::value_subject(&self.topic())
    }

    /// Sensitivity and personal-data tags of every field at every depth (see [`crate::tags`]).
    pub fn field_tags(&self) -> &[FieldTag] {
        &self.field_tags
    }

    /// The schema as a resolved, tagged type tree ([`crate::model`]), read once.
    pub fn tree(&self) -> &SchemaRecord {
        &self.tree
    }

    /// The tags of one field by dotted path, e.g. `parties.cert_no`.
    pub fn field_tag(&self, path: &str) -> Option<&FieldTag> {
        self.field_tags.iter().find(|t| t.path == path)
    }
}

/// Replaces the first reference to `name` in a type position of `ty` with `definition`.
fn inline_first(ty: &mut Value, name: &str, definition: &Value) -> bool {
    match ty {
        Value::String(s) if s == name => {
            *ty = definition.clone();
            true
        }
        Value::Array(branches) => branches
            .iter_mut()
            .any(|b| inline_first(b, name, definition)),
        Value::Object(obj) => match obj.get("type").and_then(Value::as_str) {
            Some("record" | "error") => match obj.get_mut("fields").and_then(Value::as_array_mut) {
                Some(fields) => fields
                    .iter_mut()
                    .filter_map(|f| f.get_mut("type"))
                    .any(|t| inline_first(t, name, definition)),
                None => false,
            },
            Some("array") => obj
                .get_mut("items")
                .is_some_and(|t| inline_first(t, name, definition)),
            Some("map") => obj
                .get_mut("values")
                .is_some_and(|t| inline_first(t, name, definition)),
            _ => obj
                .get_mut("type")
                .is_some_and(|t| t.is_object() && inline_first(t, name, definition)),
        },
        _ => false,
    }
}

fn load(file: &SchemaFile, envelope: Option<&Value>) -> Result<SharedSchema, LoadError> {
    let (domain, name) = (file.domain, file.name);
    let mut json: Value = serde_json::from_str(file.text).map_err(|source| LoadError::Json {
        domain,
        name,
        source,
    })?;
    if let Some(envelope) = envelope {
        inline_first(&mut json, ENVELOPE_FULL_NAME, envelope);
    }
    let avro = Schema::parse(&json).map_err(|source| LoadError::Avro {
        domain,
        name,
        source: Box::new(source),
    })?;
    let full_name = match &avro {
        Schema::Record(record) => record.name.fullname(None),
        _ => return Err(LoadError::NotARecord { domain, name }),
    };
    let tree = SchemaRecord::parse(&json).map_err(|source| LoadError::Tags {
        domain,
        name,
        source: source.into(),
    })?;
    let field_tags = field_tags_of(&tree).map_err(|source| LoadError::Tags {
        domain,
        name,
        source,
    })?;
    Ok(SharedSchema {
        name,
        domain,
        source: file.text,
        full_name,
        json,
        avro,
        tree,
        field_tags,
    })
}

static ENVELOPE: LazyLock<SharedSchema> = LazyLock::new(|| {
    load(&ENVELOPE_FILE, None).unwrap_or_else(|e| panic!("embedded schema is invalid: {e}"))
});

static SCHEMAS: LazyLock<Vec<SharedSchema>> = LazyLock::new(|| {
    let envelope = envelope_schema().json();
    // The files are compiled in and `tests::every_embedded_file_loads` loads each one, so a built crate
    // cannot fail here; the message names the file for whoever edits one.
    ENTITY_FILES
        .iter()
        .map(|file| {
            load(file, Some(envelope)).unwrap_or_else(|e| panic!("embedded schema is invalid: {e}"))
        })
        .collect()
});

/// All entity schemas (every shared schema except the bare envelope), parsed on first use.
pub fn shared_schemas() -> &'static [SharedSchema] {
    &SCHEMAS
}

/// The entity schema with this short name (e.g. `grid_event`).
pub fn shared_schema(name: &str) -> Option<&'static SharedSchema> {
    shared_schemas().iter().find(|s| s.name == name)
}

/// The envelope schema (`unsilo.common.Envelope`) on its own.
pub fn envelope_schema() -> &'static SharedSchema {
    &ENVELOPE
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn every_embedded_file_loads() {
        let envelope = load(&ENVELOPE_FILE, None).unwrap();
        assert_eq!(envelope.full_name(), ENVELOPE_FULL_NAME);
        for file in &ENTITY_FILES {
            let schema = load(file, Some(envelope.json())).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(schema.name(), file.name);
        }
    }

    #[test]
    fn every_avsc_file_on_disk_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
        let mut on_disk = BTreeSet::new();
        for domain in std::fs::read_dir(&root).unwrap() {
            let domain = domain.unwrap();
            for file in std::fs::read_dir(domain.path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "avsc") {
                    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                    on_disk.insert(format!("{}/{stem}", domain.file_name().to_string_lossy()));
                }
            }
        }
        let embedded: BTreeSet<String> = ENTITY_FILES
            .iter()
            .chain([&ENVELOPE_FILE])
            .map(|f| format!("{}/{}", f.domain, f.name))
            .collect();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn names_topics_and_subjects() {
        let names: Vec<&str> = shared_schemas().iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "grid_event",
                "grid_unit",
                "household",
                "resident",
                "hotline_ticket",
                "service_case",
                "rating",
                "appeal",
                "dept_record"
            ]
        );
        let event = shared_schema("grid_event").unwrap();
        assert_eq!(event.domain(), "grid");
        assert_eq!(event.full_name(), "unsilo.grid.GridEvent");
        assert_eq!(event.topic(), "std.grid_event");
        assert_eq!(event.subject(), "std.grid_event-value");
        assert_eq!(event.source_path(), "avro/grid/grid_event.avsc");
        assert!(shared_schema("envelope").is_none());
        assert!(shared_schema("nope").is_none());
        for schema in shared_schemas() {
            let expected_ns = format!("unsilo.{}.", schema.domain());
            assert!(
                schema.full_name().starts_with(&expected_ns),
                "{}",
                schema.full_name()
            );
        }
    }

    #[test]
    fn envelope_is_first_field_and_inlined_once() {
        for schema in shared_schemas() {
            let source: Value = serde_json::from_str(schema.source()).unwrap();
            assert_eq!(source["fields"][0]["name"], "envelope", "{}", schema.name());
            assert_eq!(
                source["fields"][0]["type"],
                ENVELOPE_FULL_NAME,
                "{}",
                schema.name()
            );
            let inlined = &schema.json()["fields"][0]["type"];
            assert_eq!(inlined, envelope_schema().json(), "{}", schema.name());
            let text = schema.schema_string();
            assert_eq!(
                text.matches("\"name\":\"Envelope\"").count(),
                1,
                "{}",
                schema.name()
            );
            assert!(
                !text.contains("\"type\":\"unsilo.common.Envelope\""),
                "{}",
                schema.name()
            );
        }
    }

    #[test]
    fn schema_string_reparses_and_keeps_docs_and_tags() {
        for schema in shared_schemas() {
            let text = schema.schema_string();
            let reparsed =
                Schema::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", schema.name()));
            assert_eq!(&reparsed, schema.avro(), "{}", schema.name());
            let json: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(&json, schema.json());
            let Schema::Record(record) = &reparsed else {
                panic!("not a record")
            };
            let envelope = &record.fields[0];
            assert!(
                envelope.doc.as_deref().is_some_and(|d| d.contains("信封")),
                "{}",
                schema.name()
            );
            assert_eq!(
                envelope.custom_attributes.get("x-sensitivity"),
                Some(&Value::from("S2"))
            );
            assert_eq!(
                crate::tags::field_tags_from_json(&json).unwrap(),
                schema.field_tags()
            );
        }
    }

    #[test]
    fn inline_replaces_only_the_first_reference() {
        let mut json = serde_json::json!({"type": "record", "name": "T", "fields": [
            {"name": "a", "type": ["null", "E"]},
            {"name": "b", "type": {"type": "array", "items": "E"}}]});
        let def = serde_json::json!({"type": "enum", "name": "E", "symbols": ["A"]});
        assert!(inline_first(&mut json, "E", &def));
        assert_eq!(json["fields"][0]["type"][1], def);
        assert_eq!(json["fields"][1]["type"]["items"], "E");
        assert!(Schema::parse(&json).is_ok());
    }

    #[test]
    fn field_tags_cover_nested_and_union_fields() {
        let event = shared_schema("grid_event").unwrap();
        let tag = event.field_tag("parties.cert_no").unwrap();
        assert_eq!(tag.sensitivity, crate::Sensitivity::S4);
        assert_eq!(tag.pii, Some(crate::PiiKind::CertNo));
        assert!(event.field_tag("envelope.region_code").is_some());
        assert!(event.field_tag("workflow.opinion").is_some());
        let dept = shared_schema("dept_record").unwrap();
        assert_eq!(
            dept.field_tag("payload.DibaoRecipient.cert_no")
                .unwrap()
                .pii,
            Some(crate::PiiKind::CertNo)
        );
        assert_eq!(
            dept.field_tag("payload.PoliceIncident.place").unwrap().pii,
            Some(crate::PiiKind::Address)
        );
    }
}

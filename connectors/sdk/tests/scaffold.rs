//! `unsilo connector new` ([`unsilo_connectors::scaffold::new_connector`]): every shared schema scaffolds into a
//! folder that loads, passes the conformance kit as generated and whose mapping reproduces the schema's example
//! record; bad names, unknown schemas and occupied folders are refused; and the connector guide's mapping and
//! transport examples are real.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use unsilo_connectors::conformance;
use unsilo_connectors::definition::ConnectorDefinition;
use unsilo_connectors::mapping::{self, Mapping};
use unsilo_connectors::scaffold::{new_connector, Scaffold, ScaffoldError};
use unsilo_connectors::transport::file_drop::FileDropConfig;
use unsilo_connectors::transport::http_poll::HttpPollConfig;
use unsilo_connectors::transport::kafka_topic::KafkaTopicConfig;
use unsilo_connectors::transport::sql_poll::SqlPollConfig;
use unsilo_schemas::{example_record, json_to_avro, record_id, shared_schemas, PiiKind};

fn connector_name(schema: &str) -> String {
    format!("new-{}", schema.replace('_', "-"))
}

fn scaffold(parent: &Path, schema: &str) -> Scaffold {
    new_connector(&connector_name(schema), schema, parent)
        .unwrap_or_else(|e| panic!("{schema}: {e}"))
}

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path);
            }
        }
    }
    out
}

fn read_json(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_shared_schema_scaffolds_a_connector_that_passes_conformance() {
    assert_eq!(
        shared_schemas().len(),
        9,
        "a new shared schema: this test covers it automatically"
    );
    for schema in shared_schemas() {
        let name = schema.name();
        let tmp = tempfile::tempdir().unwrap();
        let s = scaffold(tmp.path(), name);
        assert_eq!(s.dir, tmp.path().join(connector_name(name)));

        // The list returned is exactly what is on disk, and has every part of a definition folder.
        let listed: BTreeSet<PathBuf> = s.files.iter().cloned().collect();
        assert_eq!(listed.len(), s.files.len(), "{name}: a file listed twice");
        assert_eq!(files_under(&s.dir), listed, "{name}");
        for part in [
            "connector.toml",
            "contract.json",
            &format!("mappings/{name}.toml"),
            "fixtures/valid/example.json",
            "README.md",
            "conformance_test.rs",
        ] {
            assert!(listed.contains(&s.dir.join(part)), "{name}: no {part}");
        }
        assert_eq!(s.mapping, s.dir.join(format!("mappings/{name}.toml")));
        assert_eq!(s.sample, s.dir.join("fixtures/valid/example.json"));

        // What the generated conformance_test.rs does.
        let definition = ConnectorDefinition::load(&s.dir)
            .unwrap_or_else(|e| panic!("{name}: does not load:\n{e}"));
        assert_eq!(definition.name(), connector_name(name));
        let targets: Vec<&str> = definition
            .target_schemas()
            .iter()
            .map(|t| t.name())
            .collect();
        assert_eq!(targets, [name]);
        let fixtures =
            conformance::read_fixture_dir(&s.dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let report = conformance::check_fixtures(&definition, &fixtures);
        report.assert_passed(&connector_name(name));

        // The invalid fixtures show each layer rejecting what it is for.
        let expects: BTreeSet<(String, Option<String>)> = fixtures
            .iter()
            .filter_map(|f| f.expect.clone())
            .map(|e| (e.stage, e.code))
            .collect();
        let has =
            |stage: &str, code: &str| expects.contains(&(stage.to_owned(), Some(code.to_owned())));
        assert!(has("contract", "contract_violation"), "{name}: {expects:?}");
        assert!(
            has("validation", "validator(region_code)"),
            "{name}: {expects:?}"
        );
        assert!(has("mapping", "bad_datetime"), "{name}: {expects:?}");
        assert!(has("parse", "unreadable_input"), "{name}: {expects:?}");
        let has_cert_no = schema
            .field_tags()
            .iter()
            .any(|t| t.pii == Some(PiiKind::CertNo));
        assert_eq!(
            has("validation", "validator(cert_no)"),
            has_cert_no,
            "{name}: {expects:?}"
        );
        assert_eq!(
            fixtures.iter().filter(|f| f.expect.is_none()).count(),
            1,
            "{name}"
        );
    }
}

#[test]
fn the_scaffolded_mapping_reproduces_the_example_record() {
    for schema in shared_schemas() {
        let name = schema.name();
        let connector = connector_name(name);
        let tmp = tempfile::tempdir().unwrap();
        let s = scaffold(tmp.path(), name);
        let mapping = Mapping::load(&s.mapping).unwrap_or_else(|e| panic!("{e}"));
        let raw = read_json(&s.sample);
        let example = example_record(name).unwrap();

        // The raw dialect leaves out what the engine fills, and writes instants as Beijing wall-clock text.
        let raw_envelope = raw["envelope"].as_object().unwrap();
        for engine_filled in ["record_id", "source_system", "ingest_time"] {
            assert!(
                !raw_envelope.contains_key(engine_filled),
                "{name}: raw has envelope.{engine_filled}"
            );
        }
        let event_time = raw_envelope["event_time"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: event_time"));
        assert_eq!(
            event_time.len(),
            "2024-06-18 09:32:15".len(),
            "{name}: {event_time}"
        );

        let ingest = example["envelope"]["ingest_time"].as_i64().unwrap();
        let out = mapping
            .to_json_at(&raw, ingest)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let envelope = &out["envelope"];
        let source_record_id = envelope["source_record_id"].as_str().unwrap();
        let version = example["envelope"]["source_version"].as_str().unwrap();
        assert_eq!(envelope["source_system"], connector.as_str(), "{name}");
        assert_eq!(envelope["source_version"], version, "{name}");
        assert_eq!(
            envelope["record_id"],
            record_id(&connector, source_record_id, version),
            "{name}"
        );
        // The key is the example's own source record id, or a required field of it (grid_unit's grid_code).
        let example_values: Vec<&Json> = example.as_object().unwrap().values().collect();
        assert!(
            example["envelope"]["source_record_id"] == source_record_id
                || example_values.contains(&&Json::from(source_record_id)),
            "{name}: source record id {source_record_id}"
        );

        // Everything else is the example record, field for field.
        let mut expected = example.clone();
        let e = expected["envelope"].as_object_mut().unwrap();
        e.insert("source_system".into(), Json::from(connector.as_str()));
        e.insert("source_record_id".into(), Json::from(source_record_id));
        e.insert("record_id".into(), envelope["record_id"].clone());
        let got = json_to_avro(&out, schema.avro()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = json_to_avro(&expected, schema.avro()).unwrap();
        assert_eq!(got, want, "{name}:\n got {out:#}\nwant {expected:#}");
    }
}

#[test]
fn mapping_test_runs_on_the_scaffold_as_the_readme_says() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scaffold(tmp.path(), "hotline_ticket");
    let report = mapping::test_mapping(&s.mapping, &s.sample).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.contains("1 sample: 1 normalised, 0 rejected, 0 skipped"),
        "{report}"
    );
    assert!(report.contains("GD20240612000862"), "{report}");

    let readme = std::fs::read_to_string(s.dir.join("README.md")).unwrap();
    assert!(
        readme.contains(
            "unsilo mapping test mappings/hotline_ticket.toml fixtures/valid/example.json"
        ),
        "{readme}"
    );
    for file in files_under(&s.dir.join("fixtures/invalid")) {
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            readme.contains(&format!("fixtures/invalid/{file_name}")),
            "README misses {file_name}"
        );
    }
}

#[test]
fn the_fixtures_catch_a_mapping_that_lost_its_checks() {
    // A fixture that cannot fail proves nothing: drop the region-code validator, or the date format, and the
    // conformance kit must notice.
    let tmp = tempfile::tempdir().unwrap();
    let s = scaffold(tmp.path(), "rating");
    let text = std::fs::read_to_string(&s.mapping).unwrap();
    for (from, to, fixture) in [
        (", validate = \"region_code\"", "", "bad_region_code.json"),
        (
            "\"envelope.event_time\" = { path = \"envelope.event_time\", datetime = \"%Y-%m-%d %H:%M:%S\" }",
            "\"envelope.event_time\" = { const = 1715599293000 }",
            "impossible_date.json",
        ),
    ] {
        assert!(text.contains(from), "the scaffold no longer has {from}:\n{text}");
        std::fs::write(&s.mapping, text.replacen(from, to, 1)).unwrap();
        let definition = ConnectorDefinition::load(&s.dir).unwrap_or_else(|e| panic!("{e}"));
        let fixtures = conformance::read_fixture_dir(&s.dir).unwrap();
        let report = conformance::check_fixtures(&definition, &fixtures);
        assert!(!report.passed(), "weakened with {to:?} and still passes");
        assert!(
            report.failures.iter().any(|f| f.contains(fixture)),
            "{fixture} should fail: {:?}",
            report.failures
        );
        std::fs::write(&s.mapping, &text).unwrap();
    }

    // And a valid sample that no longer fits the contract is reported as such.
    let mut raw = read_json(&s.sample);
    raw.as_object_mut().unwrap().remove("rating_id");
    std::fs::write(&s.sample, raw.to_string()).unwrap();
    let definition = ConnectorDefinition::load(&s.dir).unwrap();
    let report =
        conformance::check_fixtures(&definition, &conformance::read_fixture_dir(&s.dir).unwrap());
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("example.json") && f.contains("contract")),
        "{:?}",
        report.failures
    );
}

#[test]
fn the_test_template_checks_the_scaffolded_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let s = new_connector("12345-hotline_b", "hotline_ticket", tmp.path()).unwrap();
    let template = std::fs::read_to_string(s.dir.join("conformance_test.rs")).unwrap();
    let literal = format!(
        "const DEFINITION_DIR: &str = {:?};",
        s.dir.display().to_string()
    );
    assert!(template.contains(&literal), "{template}");
    // A name may start with a digit and contain '-': the test function name must still be an identifier.
    assert!(
        template.contains("fn conformance_12345_hotline_b() {"),
        "{template}"
    );
    for call in [
        "ConnectorDefinition::load(&dir)",
        "conformance::read_fixture_dir(&dir)",
        "conformance::check_fixtures(&definition, &fixtures)",
        "report.assert_passed(definition.name())",
    ] {
        assert!(template.contains(call), "{call} missing:\n{template}");
    }
}

#[test]
fn a_relative_parent_gives_an_absolute_path_in_the_test_template() {
    // The CLI passes the current directory's relative paths; the template must still find the folder.
    let tmp = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let relative = tmp
        .path()
        .strip_prefix(std::env::current_dir().unwrap())
        .unwrap()
        .to_path_buf();
    assert!(relative.is_relative());
    let s = new_connector("rel", "rating", &relative).unwrap();
    assert_eq!(s.dir, relative.join("rel"));
    let template = std::fs::read_to_string(s.dir.join("conformance_test.rs")).unwrap();
    let absolute = tmp.path().join("rel");
    assert!(
        template.contains(&format!("{:?}", absolute.display().to_string())),
        "{template}"
    );
}

#[test]
fn bad_names_are_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let too_long = "a".repeat(65);
    for name in [
        "",
        too_long.as_str(),
        "Grid",
        "my connector",
        "../escape",
        "a/b",
        "a.b",
        "热线",
        "grid\n",
    ] {
        match new_connector(name, "rating", tmp.path()) {
            Err(e @ ScaffoldError::InvalidName { .. }) => {
                assert!(e.to_string().contains("a-z, 0-9"), "{e}");
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    assert!(files_under(tmp.path()).is_empty());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // The longest name there may be, and every allowed character.
    let longest = "a".repeat(64);
    new_connector(&longest, "rating", tmp.path()).unwrap();
    new_connector("dept-sql_2", "rating", tmp.path()).unwrap();
}

#[test]
fn an_unknown_schema_is_refused_with_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let err = new_connector("x", "grid_events", tmp.path()).unwrap_err();
    assert!(
        matches!(err, ScaffoldError::UnknownSchema { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("grid_events"), "{message}");
    for schema in shared_schemas() {
        assert!(
            message.contains(schema.name()),
            "{message} lacks {}",
            schema.name()
        );
    }
    assert!(
        new_connector("x", "envelope", tmp.path()).is_err(),
        "the bare envelope is not a target"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn an_occupied_folder_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let err = new_connector("taken", "resident", tmp.path()).unwrap_err();
    assert!(matches!(err, ScaffoldError::NotEmpty { .. }), "{err:?}");
    assert!(err.to_string().contains("taken"), "{err}");
    assert_eq!(files_under(&dir), BTreeSet::from([dir.join("notes.txt")]));
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );

    // A file where the folder would go.
    std::fs::write(tmp.path().join("a-file"), "x").unwrap();
    let err = new_connector("a-file", "resident", tmp.path()).unwrap_err();
    assert!(matches!(err, ScaffoldError::NotEmpty { .. }), "{err:?}");

    // An empty folder is fine, and a missing parent is created.
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    new_connector("empty", "resident", tmp.path()).unwrap();
    let s = new_connector("deep", "resident", &tmp.path().join("a/b")).unwrap();
    assert!(s.dir.join("connector.toml").is_file());
}

// ---------------------------------------------------------------------------------------------------------
// docs/writing-a-connector.md: the examples marked `<!-- checked: … -->` are real.
// ---------------------------------------------------------------------------------------------------------

fn guide() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/writing-a-connector.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The body of the fenced code block right after the marker `<!-- checked: {what} -->`.
fn checked_block(guide: &str, what: &str) -> String {
    let marker = format!("<!-- checked: {what} -->");
    let (_, after) = guide
        .split_once(&marker)
        .unwrap_or_else(|| panic!("the guide has no {marker}"));
    let (_, fence) = after.split_once("```").unwrap();
    let (_, body) = fence.split_once('\n').unwrap();
    let (body, _) = body.split_once("\n```").unwrap();
    body.to_owned()
}

#[test]
fn the_guides_cookbook_mapping_loads_and_normalises_its_sample() {
    let guide = guide();
    let text = checked_block(&guide, "cookbook mapping");
    let mapping =
        Mapping::from_str(&text, "writing-a-connector.md").unwrap_or_else(|e| panic!("{e}"));
    let sample: Json = serde_json::from_str(&checked_block(&guide, "cookbook sample")).unwrap();
    let out = mapping.to_json(&sample).unwrap_or_else(|e| panic!("{e}"));
    let expected: Json = serde_json::from_str(&checked_block(&guide, "cookbook output")).unwrap();
    for (path, want) in expected.as_object().unwrap() {
        let pointer = format!("/{}", path.replace('.', "/"));
        assert_eq!(out.pointer(&pointer), Some(want), "{path} in {out:#}");
    }
}

#[test]
fn the_guides_hub_configuration_has_the_transports_real_keys() {
    let text = checked_block(&guide(), "hub configuration");
    let config: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let connectors = config["connectors"].as_array().unwrap();
    let mut seen = BTreeSet::new();
    for c in connectors {
        let table = c.as_table().unwrap();
        let transport = table["transport"].as_str().unwrap();
        let definition = table["definition"].as_str().unwrap();
        assert!(definition.starts_with("builtin:") || !definition.is_empty());
        for key in table.keys() {
            assert!(
                ["name", "definition", "transport", transport].contains(&key.as_str()),
                "unexpected key {key} in the {transport} example"
            );
        }
        let section = table
            .get(transport)
            .cloned()
            .unwrap_or_else(|| panic!("the {transport} example has no [connectors.{transport}]"));
        match transport {
            "http_push" => {
                let keys: Vec<&String> = section.as_table().unwrap().keys().collect();
                assert_eq!(keys, ["token_sha256"]);
                let digest = section["token_sha256"].as_str().unwrap();
                assert!(
                    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{digest}"
                );
            }
            "http_poll" => {
                let config: HttpPollConfig = section
                    .try_into()
                    .unwrap_or_else(|e| panic!("http_poll: {e}"));
                config.build().unwrap_or_else(|e| panic!("http_poll: {e}"));
            }
            "sql_poll" => {
                let config: SqlPollConfig = section
                    .try_into()
                    .unwrap_or_else(|e| panic!("sql_poll: {e}"));
                config.build().unwrap_or_else(|e| panic!("sql_poll: {e}"));
            }
            "file_drop" => {
                let config: FileDropConfig = section
                    .try_into()
                    .unwrap_or_else(|e| panic!("file_drop: {e}"));
                config.build().unwrap_or_else(|e| panic!("file_drop: {e}"));
            }
            "kafka_topic" => {
                let config: KafkaTopicConfig = section
                    .try_into()
                    .unwrap_or_else(|e| panic!("kafka_topic: {e}"));
                config
                    .build()
                    .unwrap_or_else(|e| panic!("kafka_topic: {e}"));
            }
            other => panic!("unknown transport {other}"),
        }
        seen.insert(transport.to_owned());
    }
    let all: BTreeSet<String> = [
        "http_push",
        "http_poll",
        "sql_poll",
        "file_drop",
        "kafka_topic",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(seen, all, "the guide shows one example per transport");
}

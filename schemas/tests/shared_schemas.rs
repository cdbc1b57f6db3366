//! Whole-catalog checks: the conventions every shared schema follows, and the example records.

use apache_avro::{from_avro_datum, to_avro_datum};
use serde_json::{Map, Value};
use unsilo_schemas::validate::{
    validate_cert_no, validate_grid_code, validate_phone, validate_region_code, validate_uscc,
    Gender, RegionLevel,
};
use unsilo_schemas::{
    envelope_schema, example_record, json_to_avro, record_id, shared_schema, shared_schemas,
    PiiKind, Sensitivity,
};

/// Every schema, including the bare envelope.
fn all_schemas() -> Vec<&'static unsilo_schemas::SharedSchema> {
    shared_schemas().iter().chain([envelope_schema()]).collect()
}

/// Calls `visit` on every JSON object in `json`, with a description of where it is.
fn walk_objects<'a>(json: &'a Value, visit: &mut dyn FnMut(&'a Map<String, Value>)) {
    match json {
        Value::Object(obj) => {
            visit(obj);
            obj.values().for_each(|v| walk_objects(v, visit));
        }
        Value::Array(items) => items.iter().for_each(|v| walk_objects(v, visit)),
        _ => {}
    }
}

/// Every field definition (member of a record's `fields`) at every depth, with its record's name.
fn all_fields(json: &Value) -> Vec<(String, &Map<String, Value>)> {
    let mut fields = Vec::new();
    walk_objects(json, &mut |obj| {
        if obj.get("type").and_then(Value::as_str) == Some("record") {
            let record = obj["name"].as_str().unwrap_or("?").to_string();
            for field in obj["fields"].as_array().into_iter().flatten() {
                fields.push((
                    record.clone(),
                    field.as_object().expect("field is an object"),
                ));
            }
        }
    });
    fields
}

fn has_cjk_and_ascii_letters(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
        && text.chars().any(|c| c.is_ascii_alphabetic())
}

/// The non-null type of a field: `T` for `["null", T]`.
fn value_type(field: &Map<String, Value>) -> &Value {
    match &field["type"] {
        Value::Array(branches) if branches.len() == 2 && branches[0] == "null" => &branches[1],
        other => other,
    }
}

#[test]
fn every_field_record_and_enum_has_a_bilingual_doc() {
    for schema in all_schemas() {
        let mut count = 0;
        walk_objects(schema.json(), &mut |obj| {
            let is_named = matches!(
                obj.get("type").and_then(Value::as_str),
                Some("record" | "enum")
            );
            let is_field = obj.contains_key("name") && !is_named;
            if is_named || is_field {
                count += 1;
                let doc = obj.get("doc").and_then(Value::as_str).unwrap_or_default();
                assert!(
                    has_cjk_and_ascii_letters(doc),
                    "{}: {:?} has doc {doc:?}",
                    schema.name(),
                    obj["name"]
                );
            }
        });
        assert!(count > 10, "{}", schema.name());
    }
}

#[test]
fn every_field_has_a_sensitivity_and_valid_pii_kind() {
    for schema in all_schemas() {
        for (record, field) in all_fields(schema.json()) {
            let name = field["name"].as_str().unwrap();
            let sensitivity = field.get("x-sensitivity").and_then(Value::as_str);
            assert!(
                matches!(sensitivity, Some("S1" | "S2" | "S3" | "S4")),
                "{}: {record}.{name} has x-sensitivity {sensitivity:?}",
                schema.name()
            );
            if let Some(pii) = field.get("x-pii") {
                let pii = pii.as_str().unwrap_or_default();
                assert!(
                    PiiKind::ALL.iter().any(|k| k.as_str() == pii),
                    "{}: {record}.{name} x-pii {pii}",
                    schema.name()
                );
            }
        }
    }
}

/// The personal-data kind a field must carry, judged from its name.
fn expected_pii(name: &str) -> Option<PiiKind> {
    const PERSON_NAMES: [&str; 6] = [
        "name",
        "head_name",
        "caller_name",
        "rater_name",
        "operator_name",
        "contact_name",
    ];
    const FREE_TEXT: [&str; 10] = [
        "title",
        "description",
        "content",
        "comment",
        "reply",
        "opinion",
        "summary",
        "reason",
        "return_reason",
        "handling_result",
    ];
    if name.ends_with("cert_no") {
        Some(PiiKind::CertNo)
    } else if name.ends_with("phone") {
        Some(PiiKind::Phone)
    } else if name == "uscc" {
        Some(PiiKind::Uscc)
    } else if name.ends_with("address") || name == "place" {
        Some(PiiKind::Address)
    } else if name == "lng" || name == "lat" {
        Some(PiiKind::Geo)
    } else if name.ends_with("birth_date") {
        Some(PiiKind::BirthDate)
    } else if PERSON_NAMES.contains(&name) {
        Some(PiiKind::Name)
    } else if FREE_TEXT.contains(&name) {
        Some(PiiKind::FreeText)
    } else if name == "household_id"
        || name == "resident_id"
        || name == "household_ids"
        || name == "resident_ids"
    {
        Some(PiiKind::PersonRef)
    } else {
        None
    }
}

#[test]
fn personal_data_is_tagged_with_its_kind_and_level() {
    for schema in shared_schemas() {
        let tags = schema.field_tags();
        for tag in tags {
            let name = tag.path.rsplit('.').next().unwrap();
            let prefix = format!("{}.", tag.path);
            let is_leaf = !tags.iter().any(|t| t.path.starts_with(&prefix));
            if let Some(kind) = expected_pii(name).filter(|_| is_leaf) {
                // Organisation names (org_name, unit_name, …) are not personal data; the list above names people only.
                assert_eq!(tag.pii, Some(kind), "{}: {}", schema.name(), tag.path);
            }
            match tag.pii {
                Some(PiiKind::CertNo | PiiKind::Phone | PiiKind::Address | PiiKind::Geo) => {
                    assert_eq!(
                        tag.sensitivity,
                        Sensitivity::S4,
                        "{}: {}",
                        schema.name(),
                        tag.path
                    )
                }
                Some(
                    PiiKind::Name | PiiKind::FreeText | PiiKind::BirthDate | PiiKind::PersonRef,
                ) => {
                    assert!(
                        tag.sensitivity >= Sensitivity::S3,
                        "{}: {}",
                        schema.name(),
                        tag.path
                    )
                }
                Some(PiiKind::Uscc) => assert!(
                    tag.sensitivity >= Sensitivity::S2,
                    "{}: {}",
                    schema.name(),
                    tag.path
                ),
                None => {}
            }
        }
    }
}

#[test]
fn a_field_is_at_least_as_sensitive_as_anything_inside_it() {
    for schema in shared_schemas() {
        let tags = schema.field_tags();
        for outer in tags {
            let prefix = format!("{}.", outer.path);
            for inner in tags.iter().filter(|t| t.path.starts_with(&prefix)) {
                assert!(
                    outer.sensitivity >= inner.sensitivity,
                    "{}: {} is {} but contains {} ({})",
                    schema.name(),
                    outer.path,
                    outer.sensitivity,
                    inner.path,
                    inner.sensitivity
                );
            }
        }
    }
}

#[test]
fn every_enum_has_unknown_as_default() {
    for schema in all_schemas() {
        walk_objects(schema.json(), &mut |obj| {
            if obj.get("type").and_then(Value::as_str) == Some("enum") {
                let symbols: Vec<&str> = obj["symbols"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert!(
                    symbols.contains(&"UNKNOWN"),
                    "{}: {:?}",
                    schema.name(),
                    obj["name"]
                );
                assert_eq!(
                    obj.get("default"),
                    Some(&Value::from("UNKNOWN")),
                    "{}: {:?}",
                    schema.name(),
                    obj["name"]
                );
            }
        });
        // A field whose type is an enum defaults to UNKNOWN too, so the field can be added compatibly.
        let mut enum_names = Vec::new();
        walk_objects(schema.json(), &mut |obj| {
            if obj.get("type").and_then(Value::as_str) == Some("enum") {
                let ns = obj["namespace"].as_str().unwrap_or_default();
                enum_names.push(format!("{ns}.{}", obj["name"].as_str().unwrap_or_default()));
            }
        });
        for (record, field) in all_fields(schema.json()) {
            let is_enum = match &field["type"] {
                Value::Object(t) => t.get("type") == Some(&Value::from("enum")),
                Value::String(t) => enum_names.contains(t),
                _ => false,
            };
            if is_enum {
                assert_eq!(
                    field.get("default"),
                    Some(&Value::from("UNKNOWN")),
                    "{record}.{}",
                    field["name"]
                );
            }
        }
    }
}

#[test]
fn identifiers_are_strings_and_optional_fields_default_to_null() {
    for schema in all_schemas() {
        for (record, field) in all_fields(schema.json()) {
            let name = field["name"].as_str().unwrap();
            let ident = ["cert_no", "region_code", "phone", "uscc", "_code"]
                .iter()
                .any(|s| name.ends_with(s));
            if ident {
                assert_eq!(
                    value_type(field),
                    "string",
                    "{}: {record}.{name}",
                    schema.name()
                );
            }
            if field["type"].get("type") == Some(&Value::from("array")) {
                assert_eq!(
                    field.get("default"),
                    Some(&Value::Array(vec![])),
                    "{}: {record}.{name}",
                    schema.name()
                );
            }
            if let Value::Array(branches) = &field["type"] {
                if branches[0] == "null" {
                    assert_eq!(
                        field.get("default"),
                        Some(&Value::Null),
                        "{}: {record}.{name}",
                        schema.name()
                    );
                }
            }
        }
    }
}

#[test]
fn schemas_are_realistic_in_size() {
    for schema in shared_schemas() {
        let top_level = schema.json()["fields"].as_array().unwrap().len();
        assert!(
            (8..=30).contains(&top_level),
            "{} has {top_level} top-level fields",
            schema.name()
        );
    }
}

#[test]
fn every_example_converts_validates_and_round_trips() {
    for schema in shared_schemas() {
        let example = example_record(schema.name())
            .unwrap_or_else(|| panic!("no example for {}", schema.name()));
        let value = json_to_avro(&example, schema.avro())
            .unwrap_or_else(|e| panic!("{}: {e}", schema.name()));
        assert!(
            value.validate(schema.avro()),
            "{} example does not validate",
            schema.name()
        );
        let bytes = to_avro_datum(schema.avro(), value.clone()).unwrap();
        let decoded = from_avro_datum(schema.avro(), &mut bytes.as_slice(), None).unwrap();
        assert_eq!(decoded, value, "{} round trip", schema.name());
    }
}

#[test]
fn a_broken_example_is_rejected_with_its_path() {
    let schema = shared_schema("grid_event").unwrap();
    let mut example = example_record("grid_event").unwrap();
    example["parties"][1]["role"] = Value::from("BYSTANDER");
    let err = json_to_avro(&example, schema.avro()).unwrap_err();
    assert_eq!(err.path(), "parties[1].role");
    example["parties"][1]["role"] = Value::from("WITNESS");
    example["envelope"]["event_time"] = Value::from("2024-06-18");
    let err = json_to_avro(&example, schema.avro()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "envelope.event_time: expected timestamp-millis, found string"
    );
}

/// Runs the validator that fits each identifier-like key of an example.
fn check_identifiers(schema: &str, json: &Value, checked: &mut usize) {
    match json {
        Value::Object(obj) => {
            for (key, value) in obj {
                if let Some(text) = value.as_str() {
                    let context = format!("{schema}: {key} = {text}");
                    if key.ends_with("cert_no") {
                        let id =
                            validate_cert_no(text).unwrap_or_else(|e| panic!("{context}: {e}"));
                        assert_eq!(id.as_str(), text, "{context}: not normalised");
                        *checked += 1;
                    } else if key.ends_with("phone") {
                        assert_eq!(validate_phone(text).as_deref(), Ok(text), "{context}");
                        *checked += 1;
                    } else if key == "region_code" {
                        validate_region_code(text).unwrap_or_else(|e| panic!("{context}: {e}"));
                        *checked += 1;
                    } else if key.ends_with("village_code") {
                        let region =
                            validate_region_code(text).unwrap_or_else(|e| panic!("{context}: {e}"));
                        assert_eq!(region.level(), RegionLevel::Village, "{context}");
                        *checked += 1;
                    } else if key == "grid_code" {
                        validate_grid_code(text).unwrap_or_else(|e| panic!("{context}: {e}"));
                        *checked += 1;
                    } else if key.ends_with("org_code") || key == "uscc" {
                        let code = validate_uscc(text).unwrap_or_else(|e| panic!("{context}: {e}"));
                        assert_eq!(code.as_str(), text, "{context}");
                        *checked += 1;
                    }
                }
                check_identifiers(schema, value, checked);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| check_identifiers(schema, v, checked)),
        _ => {}
    }
}

#[test]
fn identifiers_in_the_examples_pass_the_validators() {
    let mut checked = 0;
    for schema in shared_schemas() {
        let example = example_record(schema.name()).unwrap();
        check_identifiers(schema.name(), &example, &mut checked);
    }
    // 9 envelopes × (region + provider org) at least, plus ID numbers, phones and grid codes.
    assert!(checked >= 50, "only {checked} identifiers checked");
}

#[test]
fn example_envelopes_are_consistent() {
    for schema in shared_schemas() {
        let example = example_record(schema.name()).unwrap();
        let envelope = &example["envelope"];
        let text = |key: &str| {
            envelope[key]
                .as_str()
                .unwrap_or_else(|| panic!("{}: {key}", schema.name()))
        };
        assert_eq!(
            text("record_id"),
            record_id(
                text("source_system"),
                text("source_record_id"),
                text("source_version")
            ),
            "{}",
            schema.name()
        );
        if let Some(grid) = envelope["grid_code"].as_str() {
            assert!(
                grid.starts_with(text("region_code")),
                "{}: grid {grid} outside its region",
                schema.name()
            );
        }
        let event = envelope["event_time"].as_i64().unwrap();
        let ingest = envelope["ingest_time"].as_i64().unwrap();
        assert!(
            event <= ingest,
            "{}: ingested before it happened",
            schema.name()
        );
    }
}

#[test]
fn resident_example_agrees_with_its_id_number() {
    let resident = example_record("resident").unwrap();
    let id = validate_cert_no(resident["cert_no"].as_str().unwrap()).unwrap();
    assert_eq!(
        resident["birth_date"].as_i64(),
        Some(i64::from(id.birth_date().days_since_epoch()))
    );
    let gender = if id.gender() == Gender::Male {
        "MALE"
    } else {
        "FEMALE"
    };
    assert_eq!(resident["gender"], gender);
}

#[test]
fn dept_payload_accepts_tagged_and_untagged_branches() {
    let schema = shared_schema("dept_record").unwrap();
    let mut example = example_record("dept_record").unwrap();
    let tagged = json_to_avro(&example, schema.avro()).unwrap();
    let row = example["payload"]["unsilo.dept.DibaoRecipient"].clone();
    example["payload"] = row;
    assert_eq!(
        json_to_avro(&example, schema.avro()).unwrap(),
        tagged,
        "untagged record picks the same branch"
    );
    example["payload"] = serde_json::json!({"XM": "赵桂芳", "SFZH": "61092119520818402X"});
    let generic = json_to_avro(&example, schema.avro()).unwrap();
    assert!(generic.validate(schema.avro()));
}

/// No validator panics on any input: non-ASCII text of every length, control characters, empty strings.
#[test]
fn validators_never_panic_on_strange_input() {
    use unsilo_schemas::validate::{
        validate_cert_no, validate_grid_code, validate_phone, validate_region_code, validate_uscc,
    };
    let pieces = [
        "", "1", "X", "x", "一", "é", "\u{0}", "𠀀", " ", "+", "-", "８",
    ];
    for len in 0..=20 {
        for p in pieces {
            for q in ["6", "一", "1"] {
                let s: String = std::iter::repeat_n(p, len / 2)
                    .chain(std::iter::repeat_n(q, len - len / 2))
                    .collect();
                let _ = validate_cert_no(&s);
                let _ = validate_uscc(&s);
                let _ = validate_region_code(&s);
                let _ = validate_grid_code(&s);
                let _ = validate_phone(&s);
            }
        }
    }
}

use super::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use unsilo_schemas::{example_record, json_to_avro, shared_schema};

fn rule(field: &str, treatment: Treatment) -> FieldRule {
    FieldRule {
        field: field.into(),
        treatment,
    }
}

fn key() -> PseudonymKey {
    PseudonymKey::from_bytes([42; 32])
}

fn shared(name: &str) -> SharedSchema {
    shared_schema(name).unwrap().clone()
}

fn example(name: &str) -> Value {
    let s = shared(name);
    json_to_avro(&example_record(name).unwrap(), s.avro()).unwrap()
}

/// Round-trips a view value through Avro binary and returns the decoded value.
fn round_trip(plan: &ViewPlan, v: &Value) -> Value {
    assert!(v.validate(plan.schema()), "does not validate: {v:?}");
    let bytes = apache_avro::to_avro_datum(plan.schema(), v.clone()).unwrap();
    apache_avro::from_avro_datum(plan.schema(), &mut bytes.as_slice(), None).unwrap()
}

fn get<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for part in path.split('.') {
        if let Value::Union(_, inner) = cur {
            cur = inner;
        }
        let Value::Record(fields) = cur else {
            return None;
        };
        cur = fields.iter().find(|(n, _)| n == part).map(|(_, v)| v)?;
    }
    Some(match cur {
        Value::Union(_, inner) => inner,
        v => v,
    })
}

fn string(v: Option<&Value>) -> &str {
    match v {
        Some(Value::String(s)) => s,
        other => panic!("not a string: {other:?}"),
    }
}

fn field_names(schema: &Json) -> Vec<String> {
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn field<'j>(record: &'j Json, name: &str) -> &'j Json {
    record["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {record}"))
}

fn typical_grid_event_rules() -> Vec<FieldRule> {
    vec![
        rule("envelope.region_code", Treatment::Clear),
        rule("envelope.record_id", Treatment::Clear),
        rule("event_type_name", Treatment::Clear),
        rule("category", Treatment::Clear),
        rule("description", Treatment::Clear),
        rule("reported_time", Treatment::Generalise),
        rule("location.address", Treatment::Generalise),
        rule("parties.cert_no", Treatment::Pseudonymise),
        rule("parties.name", Treatment::Mask),
    ]
}

#[test]
fn grid_event_view_schema_shape() {
    let s = shared("grid_event");
    let plan = ViewPlan::build(&s, &typical_grid_event_rules(), "Civil Affairs/低保").unwrap();
    let js = plan.schema_json();
    assert_eq!(plan.name(), "civil_affairs___");
    assert_eq!(js["name"], "GridEvent");
    assert_eq!(js["namespace"], "unsilo.view.civil_affairs___");
    // Default deny: only named fields, in schema order.
    assert_eq!(
        field_names(js),
        [
            "envelope",
            "event_type_name",
            "category",
            "description",
            "reported_time",
            "location",
            "parties"
        ]
    );
    let env = &field(js, "envelope")["type"];
    assert_eq!(field_names(env), ["record_id", "region_code"]);
    assert_eq!(env["namespace"], "unsilo.view.civil_affairs___");
    // Pseudonymised nullable → nullable string; masked → string; tags and docs kept; treatment recorded.
    let party = &field(js, "parties")["type"]["items"];
    assert_eq!(field_names(party), ["name", "cert_no"]);
    let cert = field(party, "cert_no");
    assert_eq!(cert["type"], json!(["null", "string"]));
    assert_eq!(cert["x-treatment"], "pseudonymise");
    assert_eq!(cert["x-pii"], "cert_no");
    assert_eq!(cert["x-sensitivity"], "S4");
    assert!(cert["doc"].as_str().unwrap().starts_with("身份证号"));
    assert_eq!(cert["default"], Json::Null);
    assert_eq!(field(party, "name")["type"], "string");
    assert_eq!(field(party, "name")["x-treatment"], "mask");
    // Generalised: address → string, timestamp stays a timestamp.
    let loc = &field(js, "location")["type"];
    assert_eq!(field_names(loc), ["address"]);
    assert_eq!(field(loc, "address")["x-treatment"], "generalise");
    assert_eq!(
        field(js, "reported_time")["type"],
        json!({"type": "long", "logicalType": "timestamp-millis"})
    );
    // Enum renamed into the view namespace, symbols kept.
    let cat = &field(js, "category")["type"];
    assert_eq!(cat["name"], "GridEventCategory");
    assert_eq!(cat["namespace"], "unsilo.view.civil_affairs___");
    assert_eq!(field(js, "category")["default"], "UNKNOWN");
    // No shared names anywhere.
    assert!(!js.to_string().contains("unsilo.grid"), "{js}");
    assert!(!js.to_string().contains("unsilo.common"), "{js}");
    // The schema the plan holds is the JSON's.
    assert_eq!(plan.schema(), &Schema::parse(js).unwrap());
    assert_eq!(plan.rules().first().unwrap().field, "category");
    assert!(plan.rules().windows(2).all(|w| w[0].field < w[1].field));
    assert_eq!(
        plan.redaction(),
        Redaction {
            ids: true,
            phones: true
        }
    );
}

#[test]
fn grid_event_apply_treats_each_field() {
    let s = shared("grid_event");
    let plan = ViewPlan::build(&s, &typical_grid_event_rules(), "v1").unwrap();
    let record = example("grid_event");
    let v = plan.apply(&record, &key()).unwrap();
    let v = round_trip(&plan, &v);
    assert_eq!(string(get(&v, "envelope.region_code")), "610921100001");
    // Address → the envelope's region (Location has no village_code).
    assert_eq!(string(get(&v, "location.address")), "610921100001");
    assert_eq!(
        get(&v, "reported_time"),
        Some(&Value::TimestampMillis(1_718_640_000_000))
    );
    let Some(Value::Array(parties)) = get(&v, "parties") else {
        panic!()
    };
    assert_eq!(parties.len(), 2);
    assert_eq!(string(get(&parties[0], "name")), "张**");
    assert_eq!(
        string(get(&parties[0], "cert_no")),
        treat::pseudonym(&key(), "cert_no", "610921196803124579")
    );
    assert!(get(&parties[0], "phone").is_none());
    assert!(get(&v, "title").is_none() && get(&v, "reporter").is_none());
    // Joinable: person keys of the source equal the released pseudonyms.
    let mut released: Vec<String> = parties
        .iter()
        .map(|p| string(get(p, "cert_no")).to_string())
        .collect();
    released.sort();
    assert_eq!(person_keys(&s, &record, &key()), released);
    assert_eq!(plan.person_keys(&record, &key()), released);
    // Another key, other pseudonyms.
    let other = plan
        .apply(&record, &PseudonymKey::from_bytes([1; 32]))
        .unwrap();
    assert_ne!(other, v);
}

#[test]
fn free_text_redaction_follows_clear_identifiers() {
    let s = shared("grid_event");
    let mut record = example("grid_event");
    let Value::Record(fields) = &mut record else {
        panic!()
    };
    let text = "张德明(61092119680312457x)电话15929436821";
    fields
        .iter_mut()
        .find(|(n, _)| n == "description")
        .unwrap()
        .1 = Value::String(text.into());

    let plan = ViewPlan::build(&s, &[rule("description", Treatment::Clear)], "t").unwrap();
    let v = plan.apply(&record, &key()).unwrap();
    assert_eq!(
        string(get(&v, "description")),
        "张德明([证件号已隐去])电话[手机号已隐去]"
    );

    let rules = [
        rule("description", Treatment::Clear),
        rule("parties.cert_no", Treatment::Clear),
    ];
    let plan = ViewPlan::build(&s, &rules, "t").unwrap();
    assert_eq!(
        string(get(&plan.apply(&record, &key()).unwrap(), "description")),
        "张德明(61092119680312457x)电话[手机号已隐去]"
    );

    // A phone released in clear through a whole record.
    let rules = [
        rule("description", Treatment::Clear),
        rule("reporter", Treatment::Clear),
    ];
    let plan = ViewPlan::build(&s, &rules, "t").unwrap();
    assert_eq!(
        plan.redaction(),
        Redaction {
            ids: true,
            phones: false
        }
    );
    assert_eq!(
        string(get(&plan.apply(&record, &key()).unwrap(), "description")),
        "张德明([证件号已隐去])电话15929436821"
    );

    // Free text inside arrays of records is redacted too; masked free text is not "clear".
    let rules = [
        rule("workflow.opinion", Treatment::Clear),
        rule("title", Treatment::Mask),
    ];
    let plan = ViewPlan::build(&s, &rules, "t").unwrap();
    assert!(plan
        .released()
        .iter()
        .any(|r| r.field == "workflow.opinion"));
    round_trip(&plan, &plan.apply(&record, &key()).unwrap());
}

#[test]
fn clear_record_releases_subtree_and_specific_rules_override() {
    let s = shared("grid_event");
    let rules = [
        rule("location", Treatment::Clear),
        rule("location.address", Treatment::Drop),
        rule("location.lng", Treatment::Generalise),
        rule("envelope", Treatment::Clear),
    ];
    let plan = ViewPlan::build(&s, &rules, "t").unwrap();
    let js = plan.schema_json();
    assert_eq!(field_names(js), ["envelope", "location"]);
    assert_eq!(
        field_names(&field(js, "location")["type"]),
        ["lng", "lat", "coord_system"]
    );
    assert_eq!(field_names(&field(js, "envelope")["type"]).len(), 11);
    let v = round_trip(&plan, &plan.apply(&example("grid_event"), &key()).unwrap());
    assert_eq!(get(&v, "location.lng"), Some(&Value::Double(108.508)));
    assert_eq!(get(&v, "location.lat"), Some(&Value::Double(32.893562)));
    let released: Vec<(&str, Treatment)> = plan
        .released()
        .iter()
        .map(|r| (r.field.as_str(), r.treatment))
        .collect();
    assert!(released.contains(&("location.lng", Treatment::Generalise)));
    assert!(released.contains(&("envelope.grid_code", Treatment::Clear)));
    assert!(!released.iter().any(|(p, _)| *p == "location.address"));
    assert_eq!(released.len(), 3 + 11);
}

#[test]
fn household_view_generalises_address_to_its_village() {
    let s = shared("household");
    let rules = [
        rule("address", Treatment::Generalise),
        rule("head_name", Treatment::Mask),
        rule("head_cert_no", Treatment::Mask),
        rule("phone", Treatment::Mask),
        rule("household_id", Treatment::Pseudonymise),
        rule("lng", Treatment::Generalise),
        rule("envelope.region_code", Treatment::Generalise),
        rule("tags", Treatment::Clear),
    ];
    let plan = ViewPlan::build(&s, &rules, "hh").unwrap();
    let js = plan.schema_json();
    assert_eq!(field(js, "phone")["type"], json!(["null", "string"]));
    assert_eq!(field(js, "head_cert_no")["type"], "string");
    assert_eq!(
        field(js, "tags")["type"],
        json!({"type": "array", "items": "string"})
    );
    assert_eq!(field(js, "tags")["default"], json!([]));
    let record = example("household");
    let v = round_trip(&plan, &plan.apply(&record, &key()).unwrap());
    let village = string(get(&record, "village_code")).to_string();
    assert_eq!(string(get(&v, "address")), village);
    let region = string(get(&record, "envelope.region_code"));
    assert_eq!(
        string(get(&v, "envelope.region_code")),
        format!("{}000000", &region[..6])
    );
    let cert = string(get(&record, "head_cert_no"));
    let masked = string(get(&v, "head_cert_no"));
    assert_eq!(masked.chars().count(), 18);
    assert!(
        masked.starts_with(&cert[..6])
            && masked.ends_with(&cert[14..])
            && masked.contains("********")
    );
    assert!(string(get(&v, "household_id")).starts_with("p1_"));
}

#[test]
fn resident_view_generalises_birth_date_and_pseudonymises_arrays() {
    let s = shared("resident");
    let rules = [
        rule("birth_date", Treatment::Generalise),
        rule("cert_no", Treatment::Pseudonymise),
        rule("household_id", Treatment::Pseudonymise),
        rule("current_address", Treatment::Generalise),
        rule("registered_address", Treatment::Generalise),
        rule("special_groups", Treatment::Clear),
        rule("gender", Treatment::Clear),
    ];
    let plan = ViewPlan::build(&s, &rules, "res").unwrap();
    let js = plan.schema_json();
    assert_eq!(field(js, "birth_date")["type"], json!(["null", "int"]));
    assert_eq!(
        field(js, "registered_address")["type"],
        json!(["null", "string"])
    );
    let record = example("resident");
    let v = round_trip(&plan, &plan.apply(&record, &key()).unwrap());
    if let Some(Value::Date(d)) = get(&record, "birth_date") {
        assert_eq!(
            get(&v, "birth_date"),
            Some(&Value::Int(treat::birth_year(*d)))
        );
    } else {
        panic!("example resident has a birth date");
    }
    assert_eq!(
        string(get(&v, "current_address")),
        string(get(&record, "village_code"))
    );
    // cert_no and person_ref pseudonyms are domain-separated.
    let cert = string(get(&record, "cert_no"));
    assert_eq!(
        string(get(&v, "cert_no")),
        treat::pseudonym(&key(), "cert_no", cert)
    );
    assert_eq!(
        person_keys(&s, &record, &key()),
        vec![treat::pseudonym(&key(), "cert_no", cert)]
    );

    // The household id pseudonym in a resident view joins with grid_event's household_ids.
    let ge = shared("grid_event");
    let plan_ge =
        ViewPlan::build(&ge, &[rule("household_ids", Treatment::Pseudonymise)], "ge").unwrap();
    assert_eq!(
        field(plan_ge.schema_json(), "household_ids")["type"],
        json!({"type": "array", "items": "string"})
    );
    let v_ge = plan_ge.apply(&example("grid_event"), &key()).unwrap();
    let Some(Value::Array(ids)) = get(&v_ge, "household_ids") else {
        panic!()
    };
    assert_eq!(
        ids[0],
        Value::String(treat::pseudonym(
            &key(),
            "person_ref",
            "HH6109211000010030017"
        ))
    );
}

#[test]
fn record_types_projected_differently_get_distinct_names() {
    let party = |fields: &[&str]| VType::Record {
        full: "unsilo.x.Party".into(),
        short: "Party".into(),
        doc: None,
        fields: fields
            .iter()
            .map(|f| VField {
                name: f.to_string(),
                attrs: Map::new(),
                ty: VType::Json(json!("string")),
            })
            .collect(),
    };
    let root = VType::Record {
        full: "unsilo.x.Root".into(),
        short: "Root".into(),
        doc: None,
        fields: ["a", "b", "c"]
            .iter()
            .zip([party(&["name"]), party(&["cert_no"]), party(&["name"])])
            .map(|(n, ty)| VField {
                name: n.to_string(),
                attrs: Map::new(),
                ty,
            })
            .collect(),
    };
    let mut emitter = Emitter {
        namespace: "unsilo.view.t".into(),
        assigned: HashMap::new(),
        used: HashSet::new(),
        defined: HashSet::new(),
    };
    let js = emitter.emit(&root);
    assert_eq!(field(&js, "a")["type"]["name"], "Party");
    assert_eq!(field(&js, "b")["type"]["name"], "Party_2");
    assert_eq!(field(&js, "c")["type"], "unsilo.view.t.Party");
    assert!(Schema::parse(&js).is_ok(), "{js}");
}

#[test]
fn enums_used_twice_are_defined_once() {
    // WorkflowStage is an enum used twice; reused by reference the second time.
    let s = shared("grid_event");
    let plan = ViewPlan::build(
        &s,
        &[
            rule("workflow.stage", Treatment::Clear),
            rule("status", Treatment::Clear),
        ],
        "t",
    )
    .unwrap();
    let js = plan.schema_json();
    assert_eq!(field(js, "status")["type"]["name"], "WorkflowStage");
    assert_eq!(
        field(&field(js, "workflow")["type"]["items"], "stage")["type"],
        "unsilo.view.t.WorkflowStage"
    );
    round_trip(&plan, &plan.apply(&example("grid_event"), &key()).unwrap());
}

#[test]
fn dept_record_union_branches() {
    let s = shared("dept_record");
    let rules = [
        rule("payload.DibaoRecipient.cert_no", Treatment::Mask),
        rule("payload.DibaoRecipient.village_code", Treatment::Clear),
    ];
    let plan = ViewPlan::build(&s, &rules, "mz").unwrap();
    let payload = &field(plan.schema_json(), "payload")["type"];
    // Withheld branches become null.
    assert_eq!(payload[0], "null");
    assert_eq!(payload.as_array().unwrap().len(), 2);
    let v = round_trip(&plan, &plan.apply(&example("dept_record"), &key()).unwrap());
    assert_eq!(string(get(&v, "payload.cert_no")), "610921********402X");
    // A police incident under this view: payload null.
    let known = s.tree().paths();
    for tag in s.field_tags() {
        assert!(
            known.contains(&tag.path),
            "{} missing from rule paths",
            tag.path
        );
    }
    assert!(matches!(
        ViewPlan::build(&s, &[rule("payload", Treatment::Mask)], "x"),
        Err(ViewError::NotApplicable { .. })
    ));
    let plan = ViewPlan::build(&s, &[rule("payload", Treatment::Clear)], "x").unwrap();
    round_trip(&plan, &plan.apply(&example("dept_record"), &key()).unwrap());
    assert_eq!(person_keys(&s, &example("dept_record"), &key()).len(), 1);
}

#[test]
fn build_errors_name_the_field() {
    let s = shared("grid_event");
    let err = |rules: &[FieldRule]| ViewPlan::build(&s, rules, "t").unwrap_err();
    assert_eq!(err(&[]), ViewError::EmptyRules);
    assert_eq!(
        err(&[rule("title", Treatment::Drop)]),
        ViewError::EmptyRules
    );
    match err(&[rule("parties.cert", Treatment::Clear)]) {
        ViewError::UnknownField {
            path, suggestion, ..
        } => {
            assert_eq!(path, "parties.cert");
            assert_eq!(suggestion.as_deref(), Some("parties.cert_no"));
        }
        other => panic!("{other:?}"),
    }
    match err(&[rule("cert_no", Treatment::Clear)]) {
        ViewError::UnknownField { suggestion, .. } => {
            assert_eq!(suggestion.as_deref(), Some("parties.cert_no"))
        }
        other => panic!("{other:?}"),
    }
    assert!(err(&[rule("title.x", Treatment::Clear)])
        .to_string()
        .contains("title.x"));
    assert_eq!(
        err(&[
            rule("title", Treatment::Clear),
            rule("title", Treatment::Mask)
        ]),
        ViewError::DuplicateRule {
            path: "title".into()
        }
    );
    let na = err(&[rule("attachment_count", Treatment::Mask)]);
    assert!(
        matches!(&na, ViewError::NotApplicable { path, treatment: Treatment::Mask, .. } if path == "attachment_count"),
        "{na}"
    );
    assert!(matches!(
        err(&[rule("category", Treatment::Pseudonymise)]),
        ViewError::NotApplicable { .. }
    ));
    let rec = err(&[rule("location", Treatment::Pseudonymise)]);
    assert!(
        matches!(&rec, ViewError::NotApplicable { path, .. } if path == "location"),
        "{rec}"
    );
    assert_eq!(
        err(&[rule("title", Treatment::Generalise)]),
        ViewError::NoGeneralisation {
            path: "title".into()
        }
    );
    assert_eq!(
        err(&[
            rule("location", Treatment::Drop),
            rule("location.lat", Treatment::Clear)
        ]),
        ViewError::ConflictingRules {
            path: "location.lat".into(),
            dropped: "location".into()
        }
    );
    assert_eq!(
        ViewPlan::build(&s, &[rule("title", Treatment::Clear)], "视图").unwrap_err(),
        ViewError::InvalidViewName("视图".into())
    );
    assert_eq!(
        ViewPlan::build(&s, &[rule("title", Treatment::Clear)], "2024 view")
            .unwrap()
            .name(),
        "v2024_view"
    );
}

#[test]
fn apply_rejects_records_of_another_shape() {
    let s = shared("grid_event");
    let plan = ViewPlan::build(&s, &[rule("location.address", Treatment::Mask)], "t").unwrap();
    assert!(matches!(
        plan.apply(&Value::Null, &key()),
        Err(ViewError::RecordShape { .. })
    ));
    let other = example("household");
    let e = plan.apply(&other, &key()).unwrap_err();
    assert!(e.to_string().contains("location"), "{e}");
}

#[test]
fn plans_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<ViewPlan>();
}

// -------------------------------------------------------------------------------------------------------
// Property test
// -------------------------------------------------------------------------------------------------------

/// A valid-looking 18-character ID number.
fn id_number() -> impl Strategy<Value = String> {
    (
        "[0-9]{17}",
        prop_oneof![Just("X".to_string()), Just("x".to_string()), "[0-9]"],
    )
        .prop_map(|(a, b)| format!("{a}{b}"))
}

fn mobile() -> impl Strategy<Value = String> {
    ("1[3-9][0-9]{9}").prop_map(|s| s)
}

/// Free text with embedded IDs and mobiles, always bounded by non-digits.
fn free_text() -> impl Strategy<Value = (String, Vec<String>)> {
    prop::collection::vec(
        prop_oneof![
            "[\\u4e00-\\u9fa5a-zA-Z，。 ]{0,12}".prop_map(|s| (s, None)),
            "[0-9]{1,6}".prop_map(|s| (s, None)),
            id_number().prop_map(|s| (s.clone(), Some(s))),
            mobile().prop_map(|s| (s.clone(), Some(s))),
        ],
        0..8,
    )
    .prop_map(|parts| {
        let mut text = String::new();
        let mut secrets = Vec::new();
        for (part, secret) in parts {
            text.push('、');
            text.push_str(&part);
            secrets.extend(secret);
        }
        (text, secrets)
    })
}

/// Strings for other fields: Chinese names, IDs, mobiles, addresses, codes.
fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[\\u4e00-\\u9fa5]{1,4}",
        id_number(),
        mobile(),
        "[\\u4e00-\\u9fa5]{3,20}[0-9]{1,3}号",
        "[0-9]{12}",
        "[A-Za-z0-9\\u4e00-\\u9fa5]{0,10}",
    ]
}

/// Randomises every string and number below `v`, following `ty`; free-text fields get text with secrets.
fn randomise(
    v: &mut Value,
    ty: &SchemaType,
    pii: Option<PiiKind>,
    runner: &mut proptest::test_runner::TestRunner,
    secrets: &mut Vec<String>,
) {
    match (v, ty) {
        (Value::Record(fields), SchemaType::Record(rec)) => {
            for ((_, fv), f) in fields.iter_mut().zip(&rec.fields) {
                randomise(fv, &f.ty, f.pii, runner, secrets);
            }
        }
        (Value::Array(items), SchemaType::Array(inner)) => {
            for item in items {
                randomise(item, inner, pii, runner, secrets);
            }
        }
        (Value::Union(i, inner), SchemaType::Union(bs)) => {
            if let Some(b) = bs.get(*i as usize) {
                randomise(inner, b, pii, runner, secrets);
            }
        }
        (Value::String(s), _) => {
            if pii == Some(PiiKind::FreeText) {
                let (text, found) = free_text().new_tree(runner).unwrap().current();
                *s = text;
                secrets.extend(found);
            } else {
                *s = any_string().new_tree(runner).unwrap().current();
            }
        }
        (Value::Double(x), _) => {
            *x = (0u32..200_000_000).new_tree(runner).unwrap().current() as f64 / 1e6
        }
        (Value::Int(x), _) | (Value::Date(x), _) => {
            *x = (-30_000i32..30_000).new_tree(runner).unwrap().current()
        }
        (Value::TimestampMillis(x), _) | (Value::Long(x), _) => {
            *x = (-10_000_000_000_000i64..10_000_000_000_000)
                .new_tree(runner)
                .unwrap()
                .current()
        }
        _ => {}
    }
}

/// Leaf paths present in a view value (arrays transparent, unions unwrapped), collected with their strings.
fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Vec<String>)>) {
    match v {
        Value::Record(fields) => {
            for (n, fv) in fields {
                leaves(fv, &join(prefix, n), out);
            }
        }
        Value::Union(_, inner) => leaves(inner, prefix, out),
        Value::Array(items) => {
            out.push((prefix.to_string(), Vec::new()));
            for i in items {
                leaves(i, prefix, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), vec![s.clone()])),
        _ => out.push((prefix.to_string(), Vec::new())),
    }
}

/// Source strings per leaf path.
fn source_strings(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Record(fields) => {
            for (n, fv) in fields {
                source_strings(fv, &join(prefix, n), out);
            }
        }
        Value::Union(_, inner) => source_strings(inner, prefix, out),
        Value::Array(items) => items.iter().for_each(|i| source_strings(i, prefix, out)),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        _ => {}
    }
}

/// Rule paths name the branch of a multi-branch union (`payload.DibaoRecipient.cert_no`); values do not say
/// it. Field names are snake_case, branch names are type names (CamelCase) or `map`.
fn value_path(rule_path: &str) -> String {
    rule_path
        .split('.')
        .filter(|c| !(c.starts_with(|ch: char| ch.is_ascii_uppercase()) || *c == "map"))
        .collect::<Vec<_>>()
        .join(".")
}

/// A pseudonym is hex: it can contain a short hex-looking original by pure chance. Such originals are
/// excluded from the "never contains" check; everything else must not appear.
fn checkable(original: &str) -> bool {
    let n = original.chars().count();
    n >= 3
        && !(n < 12 && original.chars().all(|c| c.is_ascii_hexdigit()))
        && !original.chars().all(|c| c == '*')
}

fn check_view(
    schema_name: &str,
    seed_rules: Vec<(usize, u8)>,
    runner_seed: u64,
) -> Result<(), TestCaseError> {
    let s = shared(schema_name);
    let root = s.tree();
    let leaf_paths = root.paths();
    // Leaf paths: those no other path extends.
    let leaf_paths: Vec<String> = leaf_paths
        .iter()
        .filter(|p| !leaf_paths.iter().any(|q| q.starts_with(&format!("{p}."))))
        .cloned()
        .collect();
    let treatments = [
        Treatment::Clear,
        Treatment::Mask,
        Treatment::Pseudonymise,
        Treatment::Generalise,
        Treatment::Drop,
    ];
    let mut rules: Vec<FieldRule> = Vec::new();
    for (i, t) in seed_rules {
        let path = &leaf_paths[i % leaf_paths.len()];
        if rules.iter().any(|r| &r.field == path) {
            continue;
        }
        rules.push(rule(path, treatments[usize::from(t) % treatments.len()]));
    }
    // Drop rules the schema cannot honour (mask on an int etc.), one at a time, as a policy author would.
    let plan = loop {
        match ViewPlan::build(&s, &rules, "prop") {
            Ok(plan) => break plan,
            Err(ViewError::NotApplicable { path, .. } | ViewError::NoGeneralisation { path }) => {
                rules.retain(|r| r.field != path)
            }
            Err(ViewError::EmptyRules) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("unexpected build error {e}"))),
        }
    };
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &{
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&runner_seed.to_le_bytes());
            seed
        }),
    );
    let mut record = example(schema_name);
    let mut secrets = Vec::new();
    randomise(
        &mut record,
        &SchemaType::Record(Box::new(root.clone())),
        None,
        &mut runner,
        &mut secrets,
    );
    prop_assert!(record.validate(s.avro()));
    let out = plan
        .apply(&record, &key())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    // (a) validates against the view schema, and survives Avro binary.
    prop_assert!(out.validate(plan.schema()), "{:?}", out);
    let bytes = apache_avro::to_avro_datum(plan.schema(), out.clone())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = apache_avro::from_avro_datum(plan.schema(), &mut bytes.as_slice(), None)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(back.validate(plan.schema()));
    // (b) leaf paths in the output ⊆ released paths (or their ancestors, for empty arrays).
    let released: HashSet<String> = plan
        .released()
        .iter()
        .map(|r| value_path(&r.field))
        .collect();
    let mut out_leaves = Vec::new();
    leaves(&out, "", &mut out_leaves);
    for (path, _) in &out_leaves {
        let ok =
            released.contains(path) || released.iter().any(|r| r.starts_with(&format!("{path}.")));
        prop_assert!(
            ok,
            "{} in output but not released ({:?})",
            path,
            plan.released()
        );
    }
    for r in plan.released() {
        let named = rules
            .iter()
            .any(|x| x.field == r.field || r.field.starts_with(&format!("{}.", x.field)));
        prop_assert!(named, "{} released without a rule", r.field);
    }
    // (c) masked and pseudonymised values never contain their original.
    let mut src = Vec::new();
    source_strings(&record, "", &mut src);
    for r in plan.released() {
        if !matches!(r.treatment, Treatment::Mask | Treatment::Pseudonymise) {
            continue;
        }
        let vpath = value_path(&r.field);
        for (_, original) in src.iter().filter(|(p, _)| p == &vpath) {
            let original = original.trim();
            if !checkable(original) {
                continue;
            }
            for (p, strings) in &out_leaves {
                if p == &vpath {
                    for o in strings {
                        prop_assert!(
                            !o.contains(original),
                            "{}: {:?} contains {:?}",
                            r.field,
                            o,
                            original
                        );
                    }
                }
            }
        }
    }
    // (d) free text never carries IDs / mobiles unless those are released in clear.
    let red = plan.redaction();
    let free_text_paths: HashSet<String> = s
        .field_tags()
        .iter()
        .filter(|t| t.pii == Some(PiiKind::FreeText))
        .map(|t| t.path.clone())
        .collect();
    let clear_paths: HashSet<String> = plan
        .released()
        .iter()
        .filter(|r| r.treatment == Treatment::Clear)
        .map(|r| value_path(&r.field))
        .collect();
    for (p, strings) in &out_leaves {
        if !free_text_paths.contains(p) {
            continue;
        }
        for o in strings {
            for secret in &secrets {
                let is_id = secret.len() == 18;
                if (is_id && red.ids) || (!is_id && red.phones) {
                    prop_assert!(
                        !o.contains(secret.as_str()),
                        "{}: {:?} contains {:?}",
                        p,
                        o,
                        secret
                    );
                }
            }
            // Clear free text: nothing left to redact (pseudonyms may contain digit runs by chance).
            if !clear_paths.contains(p) {
                continue;
            }
            let again = treat::redact_free_text(o, red);
            prop_assert_eq!(again.as_ref(), o.as_str());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_views_of_random_records(
        schema in prop_oneof![Just("grid_event"), Just("household"), Just("resident"), Just("dept_record")],
        seed_rules in prop::collection::vec((0usize..200, 0u8..5), 1..14),
        runner_seed in any::<u64>(),
    ) {
        check_view(schema, seed_rules, runner_seed)?;
    }
}

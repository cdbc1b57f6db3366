//! Identity mappings generated from the schemas: every shared schema, every field kind.

use super::*;

/// Named types of a schema's JSON by full name.
fn named_types(ty: &Json, ns: &str, out: &mut Map<String, Json>) {
    match ty {
        Json::Array(branches) => branches.iter().for_each(|b| named_types(b, ns, out)),
        Json::Object(o) => {
            let ns = o.get("namespace").and_then(Json::as_str).unwrap_or(ns);
            match o.get("type").and_then(Json::as_str) {
                Some("record") | Some("enum") => {
                    let name = o["name"].as_str().unwrap();
                    let full = if name.contains('.') {
                        name.to_string()
                    } else {
                        format!("{ns}.{name}")
                    };
                    out.insert(full, ty.clone());
                    if let Some(fields) = o.get("fields").and_then(Json::as_array) {
                        for f in fields {
                            named_types(&f["type"], ns, out);
                        }
                    }
                }
                Some("array") => named_types(&o["items"], ns, out),
                Some("map") => named_types(&o["values"], ns, out),
                _ => {}
            }
        }
        _ => {}
    }
}

fn resolve<'a>(ty: &'a Json, names: &'a Map<String, Json>) -> &'a Json {
    match ty {
        Json::String(s) => names.get(s).unwrap_or(ty),
        other => other,
    }
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The TOML rule mapping `raw_path` (relative) onto a value of type `ty`, as an inline value.
fn identity_rule(
    ty: &Json,
    value: Option<&Json>,
    raw_path: &str,
    names: &Map<String, Json>,
    skip: &[&str],
) -> String {
    let ty = resolve(ty, names);
    match ty {
        Json::Array(branches) => {
            let non_null: Vec<&Json> = branches.iter().filter(|b| *b != "null").collect();
            if non_null.len() == 1 {
                return identity_rule(non_null[0], value, raw_path, names, skip);
            }
            // Several branches: the example value is tagged with the branch name.
            let (tag, inner) = value
                .and_then(Json::as_object)
                .and_then(|o| o.iter().next())
                .unwrap();
            let branch = non_null
                .iter()
                .map(|b| resolve(b, names))
                .find(|b| {
                    b.get("name")
                        .and_then(Json::as_str)
                        .is_some_and(|n| tag.ends_with(n))
                        || b.get("type") == Some(&json!(tag))
                })
                .unwrap();
            let inner_path = format!("{raw_path}[{}]", q(tag));
            let rule = identity_rule(branch, Some(inner), &inner_path, names, skip);
            let short = tag.rsplit('.').next().unwrap();
            let inner = rule
                .strip_prefix("{ ")
                .and_then(|r| r.strip_suffix(" }"))
                .unwrap();
            format!("{{ branch = {}, {inner} }}", q(short))
        }
        Json::Object(o) => match o.get("type").and_then(Json::as_str) {
            Some("record") => {
                let subs: Vec<String> = o["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| !skip.contains(&f["name"].as_str().unwrap()))
                    .map(|f| {
                        let name = f["name"].as_str().unwrap();
                        let v = value.and_then(|v| v.get(name));
                        format!(
                            "{name} = {}",
                            identity_rule(&f["type"], v, name, names, &[])
                        )
                    })
                    .collect();
                format!(
                    "{{ path = {}, fields = {{ {} }} }}",
                    q(raw_path),
                    subs.join(", ")
                )
            }
            Some("array") => {
                let items = resolve(&o["items"], names);
                if items.get("type") == Some(&json!("record")) {
                    let inner = identity_rule(items, None, "@", names, &[]);
                    let fields = inner.split_once("fields = ").unwrap().1;
                    format!("{{ each = {}, fields = {}", q(raw_path), fields)
                } else {
                    format!("{{ each = {} }}", q(raw_path))
                }
            }
            Some("map") => format!("{{ path = {} }}", q(raw_path)),
            _ => q(raw_path),
        },
        _ => q(raw_path),
    }
}

/// A mapping that takes every field of `example` from the same place in the raw record.
fn identity_mapping(schema: &SharedSchema, example: &Json) -> String {
    let mut names = Map::new();
    named_types(schema.json(), "", &mut names);
    let mut text = format!(
        "target = {}\nsource_system = {}\n\n[record_id]\nsource_record_id = \"envelope.source_record_id\"\nsource_version = \"envelope.source_version\"\n\n[fields]\n",
        q(schema.name()),
        q(example["envelope"]["source_system"].as_str().unwrap())
    );
    for f in schema.json()["fields"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let skip: &[&str] = if name == "envelope" {
            &[
                "record_id",
                "source_system",
                "source_record_id",
                "source_version",
            ]
        } else {
            &[]
        };
        let rule = identity_rule(&f["type"], example.get(name), name, &names, skip);
        text.push_str(&format!("{name} = {rule}\n"));
    }
    text
}

#[test]
fn every_example_record_round_trips_through_an_identity_mapping() {
    assert_eq!(shared_schemas().len(), 9);
    for schema in shared_schemas() {
        let example = example_record(schema.name()).unwrap();
        let text = identity_mapping(schema, &example);
        let mapping = Mapping::from_str(&text, &format!("{}.identity.toml", schema.name()))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let ingest = example["envelope"]["ingest_time"].as_i64().unwrap();
        let json = assert_oracle(&mapping, &example, ingest);
        assert_same_record(schema, &json, &example);
    }
}

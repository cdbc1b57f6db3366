//! Rendering a new connector: its design (contract, mapping, fixtures chosen from the plan and the raw sample) written out as the files of the scaffold.

use super::*;

// ---------------------------------------------------------------------------------------------------------
// Rendering.
// ---------------------------------------------------------------------------------------------------------

pub(super) const TIMESTAMP_PATTERN: &str =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?$";
pub(super) const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

/// Everything [`new_connector`] decides before it writes.
pub(super) struct Design {
    pub(super) name: String,
    pub(super) schema: &'static SharedSchema,
    pub(super) fields: Vec<Field>,
    pub(super) raw: Json,
    /// Raw path of the source's key: a top-level field, or `envelope.source_record_id`.
    pub(super) id_path: Vec<Step>,
    /// The `datetime` format of instants in the raw dialect.
    pub(super) timestamp_format: &'static str,
}

pub(super) fn design(name: &str, schema: &'static SharedSchema) -> Result<Design, ScaffoldError> {
    let generate = |reason: &str| ScaffoldError::Generate {
        schema: schema.name().to_owned(),
        reason: reason.to_owned(),
    };
    let example = unsilo_schemas::example_record(schema.name())
        .ok_or_else(|| generate("it has no example record"))?;
    let envelope = example
        .get("envelope")
        .ok_or_else(|| generate("its example record has no envelope"))?;
    let mut fields = Planner.fields(schema.tree(), Some(&example), 0, &[]);
    for f in &mut fields {
        if f.name == "envelope" {
            if let Shape::Record { fields } = &mut f.shape {
                fields.retain(|sub| !ENGINE_FILLED.contains(&sub.name.as_str()));
            }
        }
    }
    let mut maker = RawMaker { fraction: false };
    let mut raw = maker.object(&fields, &example);
    // The id recipe: the field holding the source's key, else the first required text field, else the
    // envelope's own source_record_id (then kept in the raw dialect).
    let source_id = envelope.get("source_record_id").filter(|v| v.is_string());
    let id_field = fields
        .iter()
        .filter(|f| {
            f.name != "envelope"
                && matches!(
                    f.shape,
                    Shape::Scalar {
                        scalar: Scalar::Text,
                        ..
                    }
                )
        })
        .find(|f| source_id.is_some() && example.get(&f.name) == source_id)
        .or_else(|| {
            fields
                .iter()
                .filter(|f| f.name != "envelope" && f.required)
                .find(|f| {
                    matches!(
                        f.shape,
                        Shape::Scalar {
                            scalar: Scalar::Text,
                            ..
                        }
                    ) && example.get(&f.name).is_some_and(Json::is_string)
                })
        })
        .map(|f| f.name.clone());
    let raw_envelope = raw
        .get_mut("envelope")
        .and_then(Json::as_object_mut)
        .ok_or_else(|| generate("its example envelope is not an object"))?;
    let version = envelope
        .get("source_version")
        .cloned()
        .unwrap_or_else(|| Json::from("1"));
    raw_envelope.insert("source_version".into(), version);
    let id_path = match id_field {
        Some(f) => vec![Step::Key(f)],
        None => {
            let id = source_id
                .cloned()
                .ok_or_else(|| generate("its example has no source record id"))?;
            raw_envelope.insert("source_record_id".into(), id);
            vec![
                Step::Key("envelope".into()),
                Step::Key("source_record_id".into()),
            ]
        }
    };
    prune_checks(&mut fields, &raw);
    Ok(Design {
        name: name.to_owned(),
        schema,
        fields,
        raw,
        id_path,
        timestamp_format: if maker.fraction {
            "%Y-%m-%d %H:%M:%S%.f"
        } else {
            "%Y-%m-%d %H:%M:%S"
        },
    })
}

/// All files of the scaffold, `(path relative to the folder, contents)`.
pub(super) fn render(
    name: &str,
    schema: &'static SharedSchema,
    dir: &Path,
) -> Result<Vec<(String, String)>, ScaffoldError> {
    let d = design(name, schema)?;
    let pretty = |v: &Json| serde_json::to_string_pretty(v).map(|s| s + "\n");
    let json_error = |e: serde_json::Error| ScaffoldError::Generate {
        schema: schema.name().to_owned(),
        reason: e.to_string(),
    };
    let mut files = vec![
        ("connector.toml".to_owned(), render_manifest(&d)),
        (
            "contract.json".to_owned(),
            pretty(&render_contract(&d)).map_err(json_error)?,
        ),
        (mapping_file(schema), render_mapping(&d)),
        (SAMPLE_FILE.to_owned(), pretty(&d.raw).map_err(json_error)?),
    ];
    let invalid = invalid_fixtures(&d);
    for fixture in &invalid {
        let body = json!({
            "expect": { "stage": fixture.stage, "code": fixture.code },
            "record": fixture.record,
        });
        files.push((
            format!("fixtures/invalid/{}.json", fixture.file),
            pretty(&body).map_err(json_error)?,
        ));
    }
    files.push(("README.md".to_owned(), render_readme(&d, &invalid)));
    files.push(("conformance_test.rs".to_owned(), render_test(&d, dir)));
    Ok(files)
}

pub(super) struct Invalid {
    pub(super) file: String,
    pub(super) stage: &'static str,
    pub(super) code: String,
    pub(super) record: Json,
    /// What it shows, for the README.
    pub(super) shows: String,
}

pub(super) fn invalid_fixtures(d: &Design) -> Vec<Invalid> {
    let mut out = Vec::new();
    let id = dotted(&d.id_path);
    out.push(Invalid {
        file: "contract_missing_id".into(),
        stage: "contract",
        code: "contract_violation".into(),
        record: with_value(&d.raw, &d.id_path, None),
        shows: format!("a record without its key `{id}` breaks the raw contract"),
    });
    let mut sites = Vec::new();
    collect_sites(&d.fields, &d.raw, &mut Vec::new(), &mut sites);
    for (check, file) in [
        (Check::CertNo, "bad_cert_no"),
        (Check::RegionCode, "bad_region_code"),
    ] {
        let Some(site) = sites.iter().find(|s| s.kind == SiteKind::Check(check)) else {
            continue;
        };
        let current =
            at_mut(&mut d.raw.clone(), &site.path).and_then(|v| v.as_str().map(str::to_owned));
        let Some(bad) = bad_identifier(check, current.as_deref()) else {
            continue;
        };
        out.push(Invalid {
            file: file.into(),
            stage: "validation",
            code: format!("validator({})", check.name()),
            record: with_value(&d.raw, &site.path, Some(Json::from(bad))),
            shows: format!(
                "`{}` has the right shape for the contract but fails the `{}` validator in the mapping",
                dotted(&site.path),
                check.name()
            ),
        });
    }
    if let Some(site) = sites
        .iter()
        .find(|s| matches!(s.kind, SiteKind::Timestamp | SiteKind::Date))
    {
        let bad = impossible(&site.kind);
        out.push(Invalid {
            file: "impossible_date".into(),
            stage: "mapping",
            code: "bad_datetime".into(),
            record: with_value(&d.raw, &site.path, Some(Json::from(bad))),
            shows: format!(
                "`{}` = `{bad}` matches the contract's pattern but is not on the calendar",
                dotted(&site.path)
            ),
        });
    }
    out.push(Invalid {
        file: "not_json".into(),
        stage: "parse",
        code: "unreadable_input".into(),
        record: Json::from("{\"truncated\": "),
        shows: "bytes that are not JSON at all (a string `record` is sent as raw bytes)".into(),
    });
    out
}

/// A TOML basic string.
pub(super) fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be.
pub(super) fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_owned()
    } else {
        toml_str(s)
    }
}

pub(super) fn render_manifest(d: &Design) -> String {
    format!(
        "# The `{name}` connector: raw records → shared schema `{target}`. See README.md in this folder and\n\
         # docs/writing-a-connector.md.\n\
         name = {name_q}\n\
         description = {description}\n\
         contract = \"contract.json\"\n\
         mappings = [{mapping}]\n",
        name = d.name,
        target = d.schema.name(),
        name_q = toml_str(&d.name),
        description = toml_str(&format!("{}：源系统名称 / what the source system is (edit me)", d.name)),
        mapping = toml_str(&mapping_file(d.schema)),
    )
}

// ----- the mapping -----

pub(super) fn render_mapping(d: &Design) -> String {
    let mut out = String::new();
    let target = d.schema;
    let _ = writeln!(
        out,
        "# {file}: raw records of `{name}` → shared schema `{short}` ({full}, topic {topic}).\n\
         #\n\
         # Generated by `unsilo connector new` for a raw dialect that uses the shared schema's own field names\n\
         # (fixtures/valid/example.json). Left of `=` are target fields (keep them); right are raw paths and\n\
         # conversions (change them to your source's). Full syntax: docs/mapping.md. Try it with\n\
         #   unsilo mapping test {file} fixtures/valid/example.json\n\
         #\n\
         # Enums: this sample sends the target symbols (listed on each line); a real source sends its own codes,\n\
         # mapped with codes = {{ \"1\" = \"…\", … }} and a default. Instants: Beijing wall-clock text here; a\n\
         # source that sends epoch numbers uses datetime = \"epoch_millis\" (or \"epoch_seconds\").",
        file = mapping_file(target),
        name = d.name,
        short = target.name(),
        full = target.full_name(),
        topic = target.topic(),
    );
    let _ = writeln!(out, "target = {}", toml_str(target.name()));
    let _ = writeln!(
        out,
        "source_system = {}            # part of every record id: never change it once records flow",
        toml_str(&d.name)
    );
    let _ = writeln!(
        out,
        "description = {}",
        toml_str(&format!("{} → {}", d.name, target.name()))
    );
    let _ = writeln!(out, "\n[record_id]");
    let _ = writeln!(
        out,
        "source_record_id = {}   # the source's own key of the record (also the partition key)",
        toml_str(&dotted(&d.id_path))
    );
    let _ = writeln!(
        out,
        "source_version = \"envelope.source_version\"   # changes whenever the source changes the record (an update time, a version number)"
    );
    let _ = writeln!(out, "\n[fields]");
    // The envelope as dotted keys at the top, as in docs/mapping.md; the engine fills the rest of it.
    let mut tables: Vec<(String, &Field)> = Vec::new();
    for f in &d.fields {
        if f.name == "envelope" {
            if let Shape::Record { fields } = &f.shape {
                let _ = writeln!(
                    out,
                    "# envelope: the engine fills record_id, source_system, source_record_id, source_version and ingest_time."
                );
                for sub in fields {
                    if let Some(line) = scalar_line(
                        sub,
                        &format!("envelope.{}", sub.name),
                        &format!("envelope.{}", sub.name),
                        d,
                    ) {
                        out.push_str(&line);
                    }
                }
            }
        }
    }
    for f in d.fields.iter().filter(|f| f.name != "envelope") {
        match scalar_line(f, &f.name, &f.name, d) {
            Some(line) => out.push_str(&line),
            None => tables.push((format!("fields.{}", toml_key(&f.name)), f)),
        }
    }
    for (header, f) in tables {
        render_table(&mut out, &header, f, d);
    }
    out
}

/// The one-line rule of a field that is not a table (scalars, arrays of scalars, maps, unsupported ones as a
/// comment); `None` for records and arrays of records.
pub(super) fn scalar_line(f: &Field, key: &str, raw_path: &str, d: &Design) -> Option<String> {
    let key = if key.contains('.') {
        toml_str(key)
    } else {
        toml_key(key)
    };
    let path = toml_str(raw_path);
    let branch = f
        .branch
        .as_ref()
        .map(|b| format!("branch = {}, ", toml_str(&b.name)))
        .unwrap_or_default();
    let (rule, comment) = match &f.shape {
        Shape::Record { .. } | Shape::RecordArray { .. } => return None,
        Shape::Unsupported { what } => {
            return Some(format!(
                "# {key}: {what} — a mapping cannot fill it, so it takes its schema default{}\n",
                if f.has_default || f.nullable {
                    ""
                } else {
                    " (it has none: this mapping will not load until the schema or the engine changes)"
                }
            ))
        }
        Shape::Scalar { scalar, check } => {
            let extra = value_keys(scalar, *check, d);
            let rule = if branch.is_empty() && extra.is_empty() {
                path
            } else {
                format!("{{ {branch}path = {path}{extra} }}")
            };
            (rule, scalar_comment(&f.name, scalar))
        }
        Shape::ScalarArray { scalar, check } => {
            let extra = value_keys(scalar, *check, d);
            (
                format!("{{ {branch}each = {path}{extra} }}"),
                scalar_comment(&f.name, scalar).map(|c| format!("each item: {c}")),
            )
        }
        Shape::Map { scalar } => {
            let extra = value_keys(scalar, None, d);
            (
                format!("{{ {branch}path = {path}{extra} }}"),
                Some("a map: the raw object's values, converted one by one".into()),
            )
        }
    };
    let comment = match (&f.branch, comment) {
        (Some(b), c) => Some(format!(
            "a union: this mapping writes its `{}` branch (others: {}){}",
            b.name,
            b.others.join(", "),
            c.map(|c| format!("; {c}")).unwrap_or_default()
        )),
        (None, c) => c,
    };
    Some(match comment {
        Some(c) => format!("{key} = {rule}   # {c}\n"),
        None => format!("{key} = {rule}\n"),
    })
}

pub(super) fn value_keys(scalar: &Scalar, check: Option<Check>, d: &Design) -> String {
    let mut s = String::new();
    match scalar {
        Scalar::Timestamp => {
            let _ = write!(s, ", datetime = {}", toml_str(d.timestamp_format));
        }
        Scalar::Date => s.push_str(", datetime = \"%Y-%m-%d\""),
        _ => {}
    }
    if let Some(c) = check {
        let _ = write!(s, ", validate = {}", toml_str(c.name()));
    }
    s
}

pub(super) fn scalar_comment(name: &str, scalar: &Scalar) -> Option<String> {
    match scalar {
        Scalar::Enum(symbols) => Some(symbols.join(" | ")),
        Scalar::Integer if name.ends_with("_fen") => {
            Some("in fen; a source that sends yuan: money = \"yuan\"".into())
        }
        Scalar::Native(kind) => Some(format!(
            "Avro {kind}: the raw value in the field's own unit"
        )),
        _ => None,
    }
}

/// A record (or array of records) as a TOML table with its `fields` sub-table and nested tables.
pub(super) fn render_table(out: &mut String, header: &str, f: &Field, d: &Design) {
    let (fields, head) = match &f.shape {
        Shape::Record { fields } => {
            let what = match (&f.branch, f.nullable) {
                (Some(b), _) => format!(
                    "a union: this mapping writes its `{}` branch (others: {}). A source with several kinds of record has one mapping per kind, each with `when = {{ … }}` and its own branch",
                    b.name,
                    b.others.join(", ")
                ),
                (None, true) => "an optional record: written when the raw object is present and not null".into(),
                (None, false) => "a record: sub-field paths are relative to the raw object named by `path`".into(),
            };
            (fields, format!("# {}: {what}.\n[{header}]\npath = {}\n", f.name, toml_str(&f.name)))
        }
        Shape::RecordArray { fields } => (
            fields,
            format!(
                "# {}: an array of records, one per element of the raw array; sub-field paths are relative to each element.\n[{header}]\neach = {}\n",
                f.name,
                toml_str(&f.name)
            ),
        ),
        _ => return,
    };
    out.push('\n');
    out.push_str(&head);
    if let Some(b) = &f.branch {
        let _ = writeln!(out, "branch = {}", toml_str(&b.name));
    }
    let _ = writeln!(out, "\n[{header}.fields]");
    let mut nested = Vec::new();
    for sub in fields {
        match scalar_line(sub, &sub.name, &sub.name, d) {
            Some(line) => out.push_str(&line),
            None => nested.push((format!("{header}.fields.{}", toml_key(&sub.name)), sub)),
        }
    }
    for (h, sub) in nested {
        render_table(out, &h, sub, d);
    }
}

// ----- the contract -----

pub(super) fn render_contract(d: &Design) -> Json {
    let mut root = object_schema(&d.fields, false, "");
    // The raw dialect also carries the id recipe's parts.
    if let Some(envelope) = root.pointer_mut("/properties/envelope") {
        if let Some(props) = envelope.get_mut("properties").and_then(Json::as_object_mut) {
            props.insert(
                "source_version".into(),
                json!({ "type": "string", "minLength": 1, "description": "The source's version of the record (→ envelope.source_version, part of the record id)." }),
            );
            if d.id_path.len() == 2 {
                props.insert(
                    "source_record_id".into(),
                    json!({ "type": "string", "minLength": 1, "description": "The source's key of the record (→ envelope.source_record_id, part of the record id)." }),
                );
            }
        }
        add_required(envelope, "source_version");
        if d.id_path.len() == 2 {
            add_required(envelope, "source_record_id");
        }
    }
    if let [Step::Key(id)] = d.id_path.as_slice() {
        add_required(&mut root, id);
        if let Some(p) = root.pointer_mut(&format!(
            "/properties/{}",
            id.replace('~', "~0").replace('/', "~1")
        )) {
            if let Some(o) = p.as_object_mut() {
                o.insert("minLength".into(), json!(1));
            }
        }
    }
    let mut out = Map::new();
    out.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    out.insert("title".into(), json!(format!("{} raw record", d.name)));
    out.insert(
        "description".into(),
        json!(format!(
            "What the `{}` source sends, one record per JSON object. Generated from shared schema `{}` for a raw dialect with its field names: edit it to describe the real source. Error messages never repeat values, but they do quote this schema's keywords: keep personal data out of it.",
            d.name,
            d.schema.name()
        )),
    );
    if let Json::Object(body) = root {
        out.extend(body);
    }
    Json::Object(out)
}

pub(super) fn add_required(schema: &mut Json, name: &str) {
    if let Some(o) = schema.as_object_mut() {
        let required = o.entry("required").or_insert_with(|| json!([]));
        if let Some(list) = required.as_array_mut() {
            if !list.iter().any(|v| v == name) {
                list.push(json!(name));
            }
        }
    }
}

pub(super) fn object_schema(fields: &[Field], nullable: bool, prefix: &str) -> Json {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields {
        if f.required {
            required.push(json!(f.name));
        }
        props.insert(
            f.name.clone(),
            field_schema(f, &format!("{prefix}{}", f.name)),
        );
    }
    let mut o = Map::new();
    o.insert(
        "type".into(),
        if nullable {
            json!(["object", "null"])
        } else {
            json!("object")
        },
    );
    o.insert("properties".into(), Json::Object(props));
    if !required.is_empty() {
        o.insert("required".into(), Json::Array(required));
    }
    Json::Object(o)
}

/// The contract of one field; `target` is its dotted target path, for the description.
pub(super) fn field_schema(f: &Field, target: &str) -> Json {
    let nested = format!("{target}.");
    let mut s = match &f.shape {
        Shape::Scalar { scalar, check } => scalar_schema(scalar, *check, f.nullable),
        Shape::Record { fields } => object_schema(fields, f.nullable, &nested),
        Shape::RecordArray { fields } => json!({
            "type": if f.nullable { json!(["array", "null"]) } else { json!("array") },
            "items": object_schema(fields, false, &nested),
        }),
        Shape::ScalarArray { scalar, check } => json!({
            "type": if f.nullable { json!(["array", "null"]) } else { json!("array") },
            "items": scalar_schema(scalar, *check, false),
        }),
        Shape::Map { scalar } => json!({
            "type": if f.nullable { json!(["object", "null"]) } else { json!("object") },
            "additionalProperties": scalar_schema(scalar, None, true),
        }),
        Shape::Unsupported { .. } => json!({}),
    };
    let sent_as = match &f.shape {
        Shape::Scalar {
            scalar: Scalar::Timestamp,
            ..
        } => " Sent as Beijing wall-clock text, YYYY-MM-DD HH:MM:SS.",
        Shape::Scalar {
            scalar: Scalar::Date,
            ..
        } => " Sent as YYYY-MM-DD.",
        _ => "",
    };
    let branch = f
        .branch
        .as_ref()
        .map(|b| format!(" Sent as the plain value of its {} branch.", b.name))
        .unwrap_or_default();
    if let Some(o) = s.as_object_mut() {
        let doc = f
            .doc
            .as_deref()
            .map(|d| format!(": {}", d.trim_end_matches('.')))
            .unwrap_or_default();
        o.insert(
            "description".into(),
            json!(format!("→ {target}{doc}.{sent_as}{branch}")),
        );
    }
    s
}

pub(super) fn scalar_schema(scalar: &Scalar, check: Option<Check>, nullable: bool) -> Json {
    let typed = |t: &str| {
        if nullable {
            json!([t, "null"])
        } else {
            json!(t)
        }
    };
    match scalar {
        Scalar::Text => match check.and_then(Check::pattern) {
            Some(p) => json!({ "type": typed("string"), "pattern": p }),
            None => json!({ "type": typed("string") }),
        },
        Scalar::Integer => json!({ "type": typed("integer") }),
        Scalar::Number => json!({ "type": typed("number") }),
        Scalar::Boolean => json!({ "type": typed("boolean") }),
        Scalar::Enum(symbols) => {
            let mut list: Vec<Json> = symbols.iter().map(|s| json!(s)).collect();
            if nullable {
                list.push(Json::Null);
            }
            json!({ "enum": list })
        }
        Scalar::Timestamp => json!({ "type": typed("string"), "pattern": TIMESTAMP_PATTERN }),
        Scalar::Date => json!({ "type": typed("string"), "pattern": DATE_PATTERN }),
        Scalar::Native(_) => json!({}),
    }
}

// ----- the README and the test template -----

pub(super) fn render_readme(d: &Design, invalid: &[Invalid]) -> String {
    let target = d.schema;
    let mapping = mapping_file(target);
    let mut fixtures = String::new();
    for i in invalid {
        let _ = writeln!(
            fixtures,
            "| `fixtures/invalid/{}.json` | `{}` | `{}` | {} |",
            i.file, i.stage, i.code, i.shows
        );
    }
    format!(
        r#"# The `{name}` connector

Raw records of one source system → shared schema `{short}` (`{full}`, topic `{topic}`). Scaffolded by
`unsilo connector new {name} --schema {short}`; as generated it passes the conformance kit for a made-up raw
dialect that uses the shared schema's own field names. Make it describe your real source. The guide is
docs/writing-a-connector.md; the mapping syntax is docs/mapping.md.

## What to edit first

1. **`fixtures/valid/example.json`**: replace it with real records from the source, anonymised (invented
   names, ID numbers and credit codes that have valid check characters, real region codes). Everything else
   follows from what the source really sends.
2. **`contract.json`**: the JSON Schema of that raw record: the source's field names, types, required
   fields and formats. It is checked before the mapping runs. A record that breaks it goes to `dlq.<connector>`.
3. **`{mapping}`**: change the right-hand sides to the source's paths. Set `source_system` once, for good
   (it is part of every record id). Choose `[record_id]` (the source's key and its version or update time). Add
   `codes = {{ … }}` tables for the enums and `datetime` formats for the source's dates. Use `const` for the
   envelope fields the source does not send (`provider_org_code`, `data_grade`, `share_attribute`).
4. **`connector.toml`**: the description (中文 / English).
5. **`fixtures/invalid/`**: keep one fixture for each way bad input is caught, rewritten for the real dialect:

| fixture | stage | code | shows |
|---|---|---|---|
{fixtures}
## Check it

```sh
unsilo mapping test {mapping} fixtures/valid/example.json   # what comes out, or why it is rejected
unsilo connector check .                                    # the conformance kit over all fixtures
```

`conformance_test.rs` runs the same check under `cargo test`: copy it into a crate's `tests/` folder (with
`unsilo-connectors` as a dev-dependency) and set `DEFINITION_DIR` to this folder relative to that crate.

## Run it

```toml
[[connectors]]
name = "{name}"
definition = "path/to/{name}"    # this folder, relative to where the hub runs
transport = "http_push"

[connectors.http_push]
token_sha256 = "<printf %s \"$TOKEN\" | sha256sum>"
```
"#,
        name = d.name,
        short = target.name(),
        full = target.full_name(),
        topic = target.topic(),
    )
}

pub(super) fn render_test(d: &Design, dir: &Path) -> String {
    let ident: String = d
        .name
        .chars()
        .map(|c| if c == '-' { '_' } else { c })
        .collect();
    let dir_literal = format!("{:?}", dir.display().to_string());
    format!(
        r#"//! Conformance test of the `{name}` connector, generated by `unsilo connector new`.
//!
//! Copy this file into a crate's `tests/` folder (with `unsilo-connectors` as a dev-dependency) and run
//! `cargo test`. It proves what `unsilo connector check` proves: the definition loads (the contract compiles,
//! every mapping loads against its target schema), every valid fixture normalises with a stable record id, and
//! every invalid fixture is rejected at the stage and with the code it expects.

use std::path::Path;

use unsilo_connectors::conformance;
use unsilo_connectors::definition::ConnectorDefinition;

/// The connector folder, relative to the `Cargo.toml` of the crate this test is in (or absolute). Generated
/// as the absolute path the folder was created at: make it relative before you commit.
pub(super) const DEFINITION_DIR: &str = {dir_literal};

#[test]
pub(super) fn conformance_{ident}() {{
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFINITION_DIR);
    let definition = ConnectorDefinition::load(&dir)
        .unwrap_or_else(|e| panic!("{{}}: the definition does not load:\n{{e}}", dir.display()));
    let fixtures = conformance::read_fixture_dir(&dir)
        .unwrap_or_else(|e| panic!("{{}}: the fixtures do not read: {{e}}", dir.display()));
    let report = conformance::check_fixtures(&definition, &fixtures);
    report.assert_passed(definition.name());
}}
"#,
        name = d.name,
    )
}

//! The mapping engine against its oracle and its users' expectations.
//!
//! - Every shared schema's example record goes through a mapping (an identity mapping generated from the
//!   schema, and for grid_event, hotline_ticket and dept_record a mapping from an invented raw dialect in
//!   `tests/fixtures/mapping/`), and the fast path's Avro bytes must decode (apache-avro) to exactly what
//!   `unsilo_schemas::json_to_avro` makes of `to_json`'s output — and re-encode to the same bytes.
//! - Randomised and malformed raw records give the same answer on both paths, a `RecordError` instead of a
//!   panic, and leave the output buffer as it was.
//! - Each kind of load error names its line.

use std::path::{Path, PathBuf};

use apache_avro::types::Value as Avro;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value as Json};
use unsilo_connectors::mapping::{
    parse_samples, test_mapping, CompiledMapping, Mapping, MappingError, RecordError,
    RecordErrorKind, TestMappingError, Validator,
};
use unsilo_schemas::{example_record, json_to_avro, shared_schema, shared_schemas, SharedSchema};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mapping")
        .join(name)
}

fn load(name: &str) -> CompiledMapping {
    Mapping::load(fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn raw(name: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn has_map_with_several_entries(v: &Avro) -> bool {
    match v {
        Avro::Map(m) => m.len() > 1 || m.values().any(has_map_with_several_entries),
        Avro::Record(fields) => fields.iter().any(|(_, v)| has_map_with_several_entries(v)),
        Avro::Array(items) => items.iter().any(has_map_with_several_entries),
        Avro::Union(_, inner) => has_map_with_several_entries(inner),
        _ => false,
    }
}

/// The oracle: `encode` appends bytes that apache-avro decodes to `json_to_avro(to_json(raw))`, and that
/// apache-avro's own encoder reproduces byte for byte.
fn assert_oracle(mapping: &CompiledMapping, raw: &Json, ingest: i64) -> Json {
    let schema = mapping.target().avro();
    let mut out = vec![0xAB, 0xCD];
    let normalised = mapping
        .encode_at(raw, ingest, &mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", mapping.origin()));
    assert_eq!(&out[..2], [0xAB, 0xCD], "encode must append");
    let bytes = out[2..].to_vec();
    let json = mapping
        .to_json_at(raw, ingest)
        .unwrap_or_else(|e| panic!("{}: {e}", mapping.origin()));
    let expected = json_to_avro(&json, schema).unwrap_or_else(|e| {
        panic!(
            "{}: to_json output does not convert: {e}\n{json:#}",
            mapping.origin()
        )
    });
    let mut reader = &bytes[..];
    let decoded = apache_avro::from_avro_datum(schema, &mut reader, None)
        .unwrap_or_else(|e| panic!("{}: bytes do not decode: {e}", mapping.origin()));
    assert!(
        reader.is_empty(),
        "{}: {} trailing bytes",
        mapping.origin(),
        reader.len()
    );
    assert_eq!(decoded, expected, "{}", mapping.origin());
    if !has_map_with_several_entries(&expected) {
        let reference = apache_avro::to_avro_datum(schema, expected).unwrap();
        assert_eq!(
            reference,
            bytes,
            "{}: bytes differ from apache-avro's",
            mapping.origin()
        );
    }
    assert_eq!(json["envelope"]["record_id"], normalised.record_id);
    assert_eq!(json["envelope"]["source_system"], mapping.source_system());
    json
}

/// Two plain-JSON records are the same Avro record.
fn assert_same_record(schema: &SharedSchema, actual: &Json, expected: &Json) {
    let a = json_to_avro(actual, schema.avro()).unwrap();
    let e = json_to_avro(expected, schema.avro()).unwrap();
    if a != e {
        panic!(
            "{}: records differ\nactual:   {}\nexpected: {}",
            schema.name(),
            serde_json::to_string_pretty(actual).unwrap(),
            serde_json::to_string_pretty(expected).unwrap()
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Identity mappings generated from the schemas: every shared schema, every field kind.
// ---------------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------------
// Mappings from invented raw dialects reproduce the schemas' example records.
// ---------------------------------------------------------------------------------------------------------

fn assert_dialect_reproduces_example(mapping_file: &str, raw_file: &str, schema: &str) {
    let mapping = load(mapping_file);
    let raw = raw(raw_file);
    assert!(mapping.matches(&raw));
    let example = example_record(schema).unwrap();
    let ingest = example["envelope"]["ingest_time"].as_i64().unwrap();
    let json = assert_oracle(&mapping, &raw, ingest);
    assert_same_record(shared_schema(schema).unwrap(), &json, &example);
}

#[test]
fn grid_platform_dialect_reproduces_the_grid_event_example() {
    assert_dialect_reproduces_example("grid_event.toml", "grid_event.raw.json", "grid_event");
}

#[test]
fn hotline_dialect_reproduces_the_hotline_ticket_example() {
    assert_dialect_reproduces_example(
        "hotline_ticket.toml",
        "hotline_ticket.raw.json",
        "hotline_ticket",
    );
    let n = load("hotline_ticket.toml")
        .encode_at(&raw("hotline_ticket.raw.json"), 0, &mut Vec::new())
        .unwrap();
    assert_eq!(n.key, "GD20240612000862");
    assert_eq!(n.record_id, "ccfdeeab5e5362f556f71f055e95a039");
}

fn dept_rows() -> Vec<Json> {
    parse_samples(&std::fs::read_to_string(fixture("dept.raw.jsonl")).unwrap()).unwrap()
}

#[test]
fn department_exports_pick_their_mapping_and_payload_branch() {
    let dibao = load("dept_dibao.toml");
    let police = load("dept_police.toml");
    let other = load("dept_other.toml");
    let rows = dept_rows();
    assert_eq!(rows.len(), 3);
    let pick = |raw: &Json| -> &CompiledMapping {
        [&dibao, &police, &other]
            .into_iter()
            .find(|m| m.matches(raw))
            .unwrap()
    };
    // The 民政 roster row reproduces the dept_record example, money in yuan turned into fen.
    assert_eq!(pick(&rows[0]).origin(), dibao.origin());
    let example = example_record("dept_record").unwrap();
    let json = assert_oracle(
        &dibao,
        &rows[0],
        example["envelope"]["ingest_time"].as_i64().unwrap(),
    );
    assert_same_record(dibao.target(), &json, &example);
    assert_eq!(
        json["payload"]["unsilo.dept.DibaoRecipient"]["monthly_allowance_fen"],
        52_000
    );

    assert_eq!(pick(&rows[1]).origin(), police.origin());
    let json = assert_oracle(&police, &rows[1], 1);
    let incident = &json["payload"]["unsilo.dept.PoliceIncident"];
    assert_eq!(incident["occurred_time"], 1_718_690_400_000_i64);
    assert_eq!(incident["handling_result"], Json::Null);
    assert_eq!(
        json["envelope"]["source_version"],
        "2024-06-18T15:00:00+08:00"
    );
    assert_eq!(json["envelope"]["region_code"], "610921000000");

    assert_eq!(pick(&rows[2]).origin(), other.origin());
    let json = assert_oracle(&other, &rows[2], 1);
    assert_eq!(
        json["payload"],
        json!({"map": {"xm": "王某", "jzje": "300", "ffbz": "true"}})
    );
    assert_eq!(
        json["envelope"]["source_record_id"],
        "t_yf_jzxx:YF2024-0311"
    );
    assert_eq!(json["envelope"]["source_version"], "2024-06-02 08:00:00");

    // A delete of a roster row is not taken by the roster mapping (`when` with all/not).
    let mut delete = rows[0].clone();
    delete["op"] = json!("D");
    assert!(!dibao.matches(&delete));
    assert!(!dibao.matches(&json!([1, 2])));
}

// ---------------------------------------------------------------------------------------------------------
// Record-level behaviour.
// ---------------------------------------------------------------------------------------------------------

fn grid() -> (CompiledMapping, Json) {
    (load("grid_event.toml"), raw("grid_event.raw.json"))
}

fn reject(mapping: &CompiledMapping, raw: &Json) -> RecordError {
    let mut out = vec![1, 2, 3];
    let e = mapping.encode_at(raw, 0, &mut out).unwrap_err();
    assert_eq!(
        out,
        [1, 2, 3],
        "a rejected record must leave the buffer as it was"
    );
    assert_eq!(
        mapping.to_json_at(raw, 0).unwrap_err(),
        e,
        "both paths must reject alike"
    );
    e
}

#[test]
fn validator_failures_name_field_and_never_echo_identifiers() {
    let (mapping, mut raw) = grid();
    raw["dsr"][1]["sfzh"] = json!("610921198506073517");
    let e = reject(&mapping, &raw);
    assert_eq!(e.field, "parties[1].cert_no");
    assert_eq!(e.kind, RecordErrorKind::Validator);
    assert_eq!(e.validator, Some(Validator::CertNo));
    assert_eq!(e.kind_label(), "validator(cert_no)");
    assert_eq!(e.source_path.as_deref(), Some("sfzh"));
    assert!(e.message.contains("610921********3517"), "{}", e.message);
    assert!(!e.to_string().contains("610921198506073517"));
    assert!(!e.to_string().contains("19850607"));
    assert_eq!(
        e.to_json(),
        json!({"field": "parties[1].cert_no", "kind": "validator", "validator": "cert_no", "source_path": "sfzh",
               "message": e.message})
    );

    let (mapping, mut raw) = grid();
    raw["sbr"]["sjh"] = json!("2389151237");
    let e = reject(&mapping, &raw);
    assert_eq!(e.field, "reporter.phone");
    assert!(e.message.contains("238***1237"), "{}", e.message);
    assert!(!e.message.contains("2389151237"));

    let (mapping, mut raw) = grid();
    raw["dz"]["xzqh"] = json!("610921999999");
    let e = reject(&mapping, &raw);
    assert_eq!(
        (e.field.as_str(), e.validator),
        ("envelope.region_code", Some(Validator::RegionCode))
    );
}

#[test]
fn data_errors_have_stable_kinds() {
    type Case = (fn(&mut Json), &'static str, RecordErrorKind);
    let cases: Vec<Case> = vec![
        (
            |r| r["sjdl"] = json!({"a": 1}),
            "category",
            RecordErrorKind::BadType,
        ),
        (
            |r| r["jjcd"] = json!("9"),
            "urgency",
            RecordErrorKind::BadCode,
        ),
        (
            |r| r["sbsj"] = json!("2024-06-31 09:32:15"),
            "envelope.event_time",
            RecordErrorKind::BadDatetime,
        ),
        (
            |r| r["lzjl"][2]["sj"] = json!("2024061915204"),
            "workflow[2].time",
            RecordErrorKind::BadDatetime,
        ),
        (
            |r| r["fjs"] = json!("三"),
            "attachment_count",
            RecordErrorKind::BadNumber,
        ),
        (
            |r| r["fjs"] = json!(1e12),
            "attachment_count",
            RecordErrorKind::BadNumber,
        ),
        (
            |r| r["dz"]["jd"] = json!("东经108度"),
            "location.lng",
            RecordErrorKind::BadNumber,
        ),
        (
            |r| {
                r.as_object_mut().unwrap().remove("sjlx");
            },
            "event_type_code",
            RecordErrorKind::MissingRequired,
        ),
        (
            |r| r["sbr"] = Json::Null,
            "reporter.member_id",
            RecordErrorKind::MissingRequired,
        ),
        (
            |r| r["lzjl"][0] = json!("not an object"),
            "workflow[0]",
            RecordErrorKind::BadType,
        ),
        (
            |r| {
                r.as_object_mut().unwrap().remove("sjbh");
            },
            "envelope.source_record_id",
            RecordErrorKind::MissingRequired,
        ),
        (
            |r| r["sjbh"] = json!("  "),
            "envelope.source_record_id",
            RecordErrorKind::MissingRequired,
        ),
    ];
    for (mutate, field, kind) in cases {
        let (mapping, mut raw) = grid();
        mutate(&mut raw);
        let e = reject(&mapping, &raw);
        assert_eq!((e.field.as_str(), e.kind), (field, kind), "{e}");
    }
    let (mapping, _) = grid();
    for not_an_object in [json!([]), json!("x"), json!(1), Json::Null] {
        assert_eq!(
            reject(&mapping, &not_an_object).kind,
            RecordErrorKind::NotAnObject
        );
    }
}

#[test]
fn optional_parts_and_lenient_shapes() {
    let (mapping, mut raw) = grid();
    // Missing optional values become null or their defaults; a single object stands for an array of one.
    for key in ["fssj", "gdh", "jasj", "fjs", "glhh", "glry", "lzjl"] {
        raw.as_object_mut().unwrap().remove(key);
    }
    raw["dsr"] = json!({"xm": "张德明", "js": "9"});
    raw["zt"] = json!("77");
    let json = assert_oracle(&mapping, &raw, 5);
    assert_eq!(json["occurred_time"], Json::Null);
    assert_eq!(json["closed_time"], Json::Null);
    assert_eq!(json["attachment_count"], 0);
    assert_eq!(json["household_ids"], json!([]));
    assert_eq!(json["workflow"], json!([]));
    assert_eq!(json["status"], "UNKNOWN");
    assert_eq!(json["envelope"]["ingest_time"], 5);
    assert_eq!(
        json["parties"],
        json!([{"name": "张德明", "cert_no": null, "phone": null, "role": "OTHER"}])
    );

    // Hotline: no callback time, no completion → both optional records are null.
    let mapping = load("hotline_ticket.toml");
    let mut ticket = self::raw("hotline_ticket.raw.json");
    ticket["hfxx"] = json!({"myd": "满意"});
    ticket["bjxx"] = Json::Null;
    ticket["jjcd"] = json!(3);
    let json = assert_oracle(&mapping, &ticket, 1);
    assert_eq!(json["callback"], Json::Null);
    assert_eq!(json["completion"], Json::Null);
    assert_eq!(json["urgency"], "NORMAL");
    assert_eq!(json["confidential"], true);
}

#[test]
fn ingest_time_is_now_unless_given() {
    let (mapping, raw) = grid();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let json = mapping.to_json(&raw).unwrap();
    let ingest = json["envelope"]["ingest_time"].as_i64().unwrap();
    assert!(
        ingest >= before && ingest < before + 600_000,
        "{ingest} vs {before}"
    );
    let mut out = Vec::new();
    let n = mapping.encode(&raw, &mut out).unwrap();
    assert_eq!(n.record_id, "3ccd3895a9132f275794a833e441f63e");
    assert_eq!(n.key, "SJ20240618000173");
}

/// A small mapping onto `rating` to exercise one rule at a time.
fn rating_with(extra: &str) -> Result<CompiledMapping, MappingError> {
    Mapping::from_str(&format!("{RATING}{extra}"), "rating.toml")
}

const RATING: &str = r#"target = "rating"
source_system = "qinwuyuan"

[record_id]
source_record_id = "pjbh"
source_version = { const = "1" }

[fields]
"envelope.event_time" = { path = "pjsj", datetime = "auto" }
"envelope.region_code" = { path = "xzqh", validate = "region_code" }
"envelope.provider_org_code" = { const = "12610000MB2960F19E" }
rating_id = "pjbh"
case_no = "bjbh"
item_code = "sxbm"
item_name = "sxmc"
org_name = "bldw"
org_code = { path = "bldwdm", validate = "uscc" }
score = "pf"
rated_time = { path = "pjsj", datetime = "auto" }
"#;

fn rating_raw() -> Json {
    json!({
        "pjbh": "PJ20240513000456", "bjbh": "6109021240506000123", "sxbm": "11610902MB2975X39A4000117004000",
        "sxmc": "食品经营许可（新办）", "bldw": "安康市汉滨区行政审批服务局", "bldwdm": "11610902MB2975X39A",
        "pf": "2", "pjsj": "2024-05-13 19:21:33", "xzqh": "610902001003"
    })
}

fn rated(mapping: &CompiledMapping, raw: &Json) -> Json {
    assert_oracle(mapping, raw, 0)
}

#[test]
fn datetimes_in_every_format_and_zone() {
    // 2021-09-14 09:21 Beijing time.
    const T: i64 = 1_631_582_460_000;
    let cases = [
        (json!("2021/9/14 9:21"), "auto", T),
        (json!("2021-09-14 09:21:00"), "auto", T),
        (json!("2021年9月14日 9时21分"), "auto", T),
        (json!("20210914092100"), "auto", T),
        (json!(20_210_914_092_100_i64), "auto", T),
        (json!("20210914"), "auto", T - 33_660_000),
        (json!(1_631_582_460), "auto", T),
        (json!(1_631_582_460_000_i64), "auto", T),
        (json!("1631582460000"), "epoch_millis", T),
        (json!("1631582460"), "epoch_seconds", T),
        (json!("2021-09-14T01:21:00Z"), "iso8601", T),
        (json!("2021-09-14T09:21:00+08:00"), "auto", T),
        (json!("14.09.2021 09:21"), "%d.%m.%Y %H:%M", T),
    ];
    for (value, format, want) in cases {
        let m = rating_with(&format!(
            "\"rectification.deadline\" = {{ path = \"x\", datetime = \"{format}\" }}\n"
        ))
        .unwrap();
        let mut raw = rating_raw();
        raw["x"] = value.clone();
        let json = rated(&m, &raw);
        assert_eq!(
            json["rectification"]["deadline"], want,
            "{value} as {format}"
        );
    }
    // Another zone for wall-clock times; instants with an offset are not moved.
    let m = rating_with(
        "\"rectification.deadline\" = { path = \"x\", datetime = \"auto\", zone = \"UTC\" }\n",
    )
    .unwrap();
    let mut raw = rating_raw();
    raw["x"] = json!("2021-09-14 01:21");
    assert_eq!(rated(&m, &raw)["rectification"]["deadline"], T);
    raw["x"] = json!("2021-09-14T09:21:00+08:00");
    assert_eq!(rated(&m, &raw)["rectification"]["deadline"], T);
    // A list of formats is tried in order; datetimes into a string field become RFC 3339 text.
    let m =
        rating_with("comment = { path = \"x\", datetime = [\"%Y%m%d%H%M\", \"epoch_seconds\"] }\n")
            .unwrap();
    raw["x"] = json!("202109140921");
    assert_eq!(rated(&m, &raw)["comment"], "2021-09-14T09:21:00+08:00");
    raw["x"] = json!(1_631_582_460);
    assert_eq!(rated(&m, &raw)["comment"], "2021-09-14T09:21:00+08:00");
}

#[test]
fn conversions_codes_cases_templates() {
    let m = rating_with(
        r#"level = { path = "pj", codes = { "1" = "VERY_DISSATISFIED", "2" = "DISSATISFIED", "5" = "VERY_SATISFIED" }, default = "UNKNOWN" }
channel = { cases = [
    { if = { path = "qd", in = ["pc", "web"] }, then = "PC" },
    { if = { all = [{ path = "qd", equals = "app" }, { path = "sb", exists = true }] }, then = "APP" },
    { if = { path = "qd", equals = 12345 }, then = { path = "qd", codes = { "12345" = "HOTLINE" } } },
], else = "UNKNOWN" }
comment = { template = "{pl}（{{原文}}）", trim = true }
rater_name = { concat = ["xing", "ming"], separator = "" }
reason_tags = { path = "bq", split = "、" }
"rectification.status" = { const = "PENDING" }
"rectification.revisit_satisfied" = "hfmy"
"rectification.reply" = { path = "hf", default = "（未回复）" }
"#,
    )
    .unwrap();
    let mut raw = rating_raw();
    raw["pj"] = json!(2);
    raw["qd"] = json!("app");
    raw["sb"] = json!("iPhone");
    raw["pl"] = json!("  跑了两趟 ");
    raw["xing"] = json!("刘");
    raw["ming"] = json!(" 洋");
    raw["bq"] = json!("多次跑动、材料要求不一致、");
    raw["hfmy"] = json!("否");
    let json = rated(&m, &raw);
    assert_eq!(json["level"], "DISSATISFIED");
    assert_eq!(json["channel"], "APP");
    assert_eq!(json["comment"], "跑了两趟（{原文}）");
    assert_eq!(json["rater_name"], "刘洋");
    assert_eq!(json["reason_tags"], json!(["多次跑动", "材料要求不一致"]));
    assert_eq!(json["score"], 2);
    assert_eq!(
        json["rectification"],
        json!({"status": "PENDING", "deadline": null, "reply": "（未回复）", "rectified_time": null, "revisit_satisfied": false})
    );
    raw["qd"] = json!("web");
    raw["pj"] = json!("7");
    assert_eq!(rated(&m, &raw)["channel"], "PC");
    assert_eq!(rated(&m, &raw)["level"], "UNKNOWN");
    raw["qd"] = json!(12345);
    assert_eq!(rated(&m, &raw)["channel"], "HOTLINE");
    raw["qd"] = json!("app");
    raw.as_object_mut().unwrap().remove("sb");
    assert_eq!(rated(&m, &raw)["channel"], "UNKNOWN");
    raw["hfmy"] = json!("Y");
    assert_eq!(rated(&m, &raw)["rectification"]["revisit_satisfied"], true);
    raw["hfmy"] = json!("也许");
    let e = reject(&m, &raw);
    assert_eq!(
        (e.field.as_str(), e.kind),
        ("rectification.revisit_satisfied", RecordErrorKind::BadType)
    );
}

/// A minimal grid_event mapping (18 lines; `location` on line 16).
const GRID_MIN: &str = r#"target = "grid_event"
source_system = "grid.test"
[record_id]
source_record_id = "id"
source_version = { const = "1" }
[fields]
"envelope.event_time" = { path = "t", datetime = "epoch_millis" }
"envelope.region_code" = { const = "610921100001" }
"envelope.provider_org_code" = { const = "11610921016050037T" }
event_no = "id"
event_type_code = { const = "0101" }
event_type_name = { const = "邻里纠纷" }
title = "id"
description = "id"
reported_time = { path = "t", datetime = "epoch_millis" }
location = { fields = { address = { const = "-" } } }
reporter = { path = "who", fields = { member_id = "id", name = "name" } }
workflow = { each = "steps", fields = { time = "$.t", org_name = { template = "{$.org}/{unit}" }, stage = { const = "HANDLING" } } }
"#;

#[test]
fn root_paths_from_inside_each() {
    assert_eq!(
        GRID_MIN.lines().nth(15).map(|l| l.starts_with("location")),
        Some(true)
    );
    let m = Mapping::from_str(GRID_MIN, "inline.toml").unwrap_or_else(|e| panic!("{e}"));
    let raw = json!({"id": "E1", "t": 1_718_674_335_000_i64, "org": "城关镇", "who": {"id": "W1", "name": "刘"},
                     "steps": [{"unit": "综治中心"}, {"unit": "南街社区"}]});
    let json = assert_oracle(&m, &raw, 0);
    assert_eq!(json["workflow"][1]["org_name"], "城关镇/南街社区");
    assert_eq!(json["workflow"][0]["time"], 1_718_674_335_000_i64);
    assert_eq!(json["reporter"]["member_id"], "W1");
}

// ---------------------------------------------------------------------------------------------------------
// Load errors: file, line and reason, all of them.
// ---------------------------------------------------------------------------------------------------------

/// The issues of a mapping that must not load, as (line, reason).
fn load_errors(text: &str) -> Vec<(usize, String)> {
    match Mapping::from_str(text, "rating.toml") {
        Ok(_) => panic!("mapping loaded but should not:\n{text}"),
        Err(e) => {
            let rendered = e.to_string();
            for issue in e.issues() {
                assert!(
                    rendered.contains(&format!("rating.toml:{}: {}", issue.line, issue.reason)),
                    "{rendered}"
                );
            }
            e.issues()
                .iter()
                .map(|i| (i.line, i.reason.clone()))
                .collect()
        }
    }
}

/// Asserts exactly one error, on `line`, whose reason contains `needle`.
fn assert_one_error(text: &str, line: usize, needle: &str) {
    let errors = load_errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].0, line, "{errors:#?}");
    assert!(
        errors[0].1.contains(needle),
        "{:?} does not mention {needle:?}",
        errors[0].1
    );
}

/// RATING with line `n` (1-based) replaced.
fn replace_line(n: usize, with: &str) -> String {
    RATING
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == n { with } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_base_rating_mapping_loads_and_has_19_lines() {
    assert!(rating_with("").is_ok());
    assert_eq!(RATING.lines().count(), 19);
    assert_eq!(RATING.lines().nth(17), Some("score = \"pf\""));
}

#[test]
fn load_error_toml_syntax() {
    assert_one_error(&replace_line(18, "score = "), 18, "TOML syntax error");
}

#[test]
fn load_error_unknown_target_field() {
    assert_one_error(
        &format!("{RATING}scroe = \"pf\"\n"),
        20,
        "unknown target field `scroe`",
    );
    assert_one_error(
        &format!("{RATING}\"rectification.statuss\" = \"x\"\n"),
        20,
        "unknown target field `rectification.statuss`",
    );
    assert_one_error(
        &format!("{RATING}comment.text = \"pl\"\n"),
        20,
        "`comment` is a string field, not a record",
    );
}

#[test]
fn load_error_unknown_target_schema() {
    assert_one_error(
        &replace_line(1, "target = \"ratings\""),
        1,
        "unknown target schema `ratings`",
    );
}

#[test]
fn load_error_const_of_the_wrong_type() {
    assert_one_error(
        &replace_line(18, "score = { const = \"five\" }"),
        18,
        "`const` does not fit `score` (int)",
    );
    assert_one_error(
        &format!("{RATING}channel = {{ const = \"FAX\" }}\n"),
        20,
        "not a symbol of the enum",
    );
    assert_one_error(
        &format!("{RATING}reason_tags = {{ const = [1, 2] }}\n"),
        20,
        "`const` does not fit `reason_tags`",
    );
}

#[test]
fn load_error_code_outside_the_enum() {
    let text = format!("{RATING}\n[fields.level]\npath = \"pj\"\n\n[fields.level.codes]\n\"5\" = \"VERY_SATISFIED\"\n\"1\" = \"TERRIBLE\"\n");
    assert_one_error(&text, 26, "code table value for \"1\" does not fit `level`");
    assert!(load_errors(&text)[0]
        .1
        .contains("\"TERRIBLE\" is not a symbol"));
}

#[test]
fn load_error_datetime_into_a_boolean() {
    assert_one_error(
        &format!("{RATING}\"rectification.revisit_satisfied\" = {{ path = \"x\", datetime = \"auto\" }}\n"),
        20,
        "`datetime` cannot fill `rectification.revisit_satisfied`, a boolean field",
    );
    // Into a string it is fine.
    assert!(rating_with("comment = { path = \"x\", datetime = \"auto\" }\n").is_ok());
}

#[test]
fn load_error_bad_date_format() {
    assert_one_error(
        &replace_line(
            19,
            "rated_time = { path = \"pjsj\", datetime = \"%Y-%m-%d %Q\" }",
        ),
        19,
        "%Q is not supported",
    );
    assert_one_error(
        &replace_line(
            19,
            "rated_time = { path = \"pjsj\", datetime = \"yyyy-MM-dd\" }",
        ),
        19,
        "bad date format",
    );
    assert_one_error(
        &replace_line(
            19,
            "rated_time = { path = \"pjsj\", zone = \"Asia/Beijing\" }",
        ),
        19,
        "unknown time zone",
    );
}

#[test]
fn load_error_required_field_unmapped() {
    // Without case_no (line 13), the error points at [fields] (line 8).
    let text = RATING.replace("case_no = \"bjbh\"\n", "");
    assert_one_error(&text, 8, "required field `case_no` (string) has no rule");
    // A required field inside a mapped record points at that record's rule (line 16).
    let text = GRID_MIN.replace(
        "location = { fields = { address = { const = \"-\" } } }",
        "location = { fields = { lng = \"x\" } }",
    );
    assert_one_error(
        &text,
        16,
        "required field `location.address` (string) has no rule",
    );
}

#[test]
fn load_error_unknown_or_misplaced_validator() {
    assert_one_error(
        &format!("{RATING}comment = {{ path = \"pl\", validate = \"id_card\" }}\n"),
        20,
        "unknown validator `id_card`",
    );
    assert_one_error(
        &replace_line(18, "score = { path = \"pf\", validate = \"phone\" }"),
        18,
        "validator `phone` checks text",
    );
    // A constant is validated at load.
    assert_one_error(&replace_line(11, "\"envelope.provider_org_code\" = { const = \"12610000MB2960F19F\", validate = \"uscc\" }"), 11, "fails the uscc check");
}

#[test]
fn load_error_rule_shape() {
    assert_one_error(
        &format!("{RATING}comment = {{ pth = \"pl\" }}\n"),
        20,
        "unknown key `pth`",
    );
    assert_one_error(
        &format!("{RATING}comment = {{ path = \"pl\", const = \"x\" }}\n"),
        20,
        "has both `path` and `const`",
    );
    assert_one_error(
        &format!("{RATING}comment = {{ trim = true }}\n"),
        20,
        "has no source",
    );
    assert_one_error(&format!("{RATING}comment = \"a..b\"\n"), 20, "bad raw path");
    assert_one_error(&format!("{RATING}comment = 5\n"), 20, "must be a raw path");
    assert_one_error(
        &format!("{RATING}comment = {{ path = \"pl\", money = \"yuan\" }}\n"),
        20,
        "`money` needs an int or long field",
    );
    assert_one_error(
        &format!("{RATING}comment = {{ template = \"{{pl\" }}\n"),
        20,
        "without `}`",
    );
    assert_one_error(
        &format!(
            "{RATING}comment = {{ path = \"x\", when = {{ path = \"a\", exists = true }} }}\n"
        ),
        20,
        "`when` does not apply",
    );
    assert_one_error(&format!("{RATING}level = {{ cases = [{{ if = {{ path = \"a\", equal = 1 }}, then = \"SATISFIED\" }}] }}\n"), 20, "unknown key `equal` in a condition");
}

#[test]
fn load_error_field_mapped_twice_and_engine_fields() {
    // TOML itself rejects a repeated key; a quoted dotted path and a table can still name one field twice.
    assert_one_error(
        &format!("{RATING}rating_id = \"x\"\n"),
        20,
        "duplicate key `rating_id`",
    );
    assert_one_error(
        &format!("{RATING}\"rectification.reply\" = \"a\"\nrectification = {{ fields = {{ reply = \"b\" }} }}\n"),
        21,
        "second rule (the first is on line 20)",
    );
    assert_one_error(
        &format!("{RATING}\"envelope.record_id\" = \"id\"\n"),
        20,
        "filled by the engine",
    );
}

#[test]
fn load_error_union_without_branch() {
    let text = "target = \"dept_record\"\nsource_system = \"d\"\n[record_id]\nsource_record_id = \"k\"\nsource_version = \"v\"\n[fields]\n\"envelope.event_time\" = \"t\"\n\"envelope.region_code\" = \"r\"\n\"envelope.provider_org_code\" = \"o\"\ndept_org_code = \"o\"\ndept_name = \"n\"\ntable_name = \"t\"\nrecord_key = \"k\"\npayload = { path = \"row\" }\n";
    assert_one_error(text, 14, "say which with `branch");
    assert_one_error(
        &text.replace(
            "{ path = \"row\" }",
            "{ path = \"row\", branch = \"Dibao\" }",
        ),
        14,
        "no union branch `Dibao`",
    );
}

#[test]
fn load_error_missing_top_level_parts() {
    let errors = load_errors("target = \"rating\"\nsorce_system = \"x\"\n");
    let reasons: Vec<&str> = errors.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("unknown key `sorce_system`")),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("missing `source_system")),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("missing [record_id]")),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("required field `rating_id`")),
        "{reasons:#?}"
    );
    assert_eq!(
        errors
            .iter()
            .find(|(_, r)| r.contains("sorce_system"))
            .unwrap()
            .0,
        2
    );
}

#[test]
fn all_load_errors_are_reported_in_line_order() {
    let text = replace_line(18, "score = { const = \"five\" }").replace(
        "case_no = \"bjbh\"",
        "case_no = { path = \"bjbh\", validate = \"nope\" }",
    ) + "\nscroe = 1\ncomment = { path = \"x\", datetime = \"%Q\" }\n";
    let errors = load_errors(&text);
    let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [13, 18, 20, 21], "{errors:#?}");
    let rendered = Mapping::from_str(&text, "m/rating.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(rendered.lines().count(), 4);
    assert!(
        rendered.lines().all(|l| l.starts_with("m/rating.toml:")),
        "{rendered}"
    );
}

#[test]
fn load_reports_a_missing_file() {
    let e = Mapping::load("/nonexistent/grid_event.toml").unwrap_err();
    assert!(matches!(e, MappingError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/grid_event.toml"));
}

// ---------------------------------------------------------------------------------------------------------
// Randomised and malformed input: the same answer on both paths, never a panic.
// ---------------------------------------------------------------------------------------------------------

fn junk(rng: &mut StdRng, depth: usize) -> Json {
    match rng.random_range(0..16) {
        0 => Json::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<u64>()),
        4 => json!(rng.random::<f64>() * 10f64.powi(rng.random_range(-10..300))),
        5 => json!(rng.random_range(-5..20)),
        6 => json!(
            [
                "", " ", "\u{3000}", "是", "否", "Y", "N", "0", "1", "null", "NaN", "inf", "-0",
                "1e999"
            ][rng.random_range(0..14)]
        ),
        7 => json!(
            [
                "2024-02-30 10:00",
                "2024/6/18 9:21",
                "20240618",
                "20240618092100",
                "1718674335",
                "1718674335000",
                "2024年6月18日 9时21分",
                "2024-06-18T01:21:00Z",
                "9999-12-31 23:59:59",
                "0000-01-01",
                "2024-13-01"
            ][rng.random_range(0..11)]
        ),
        8 => json!(
            [
                "610921196803124579",
                "61092119680312457X",
                "13891512376",
                "+86 138 9151 2376",
                "610921100001",
                "610921100001003",
                "11610921016050037T",
                "12.50",
                "520.005"
            ][rng.random_range(0..9)]
        ),
        9 => {
            let len = rng.random_range(0..40);
            json!((0..len)
                .map(|_| char::from_u32(rng.random_range(0..0x11_0000)).unwrap_or('\u{FFFD}'))
                .collect::<String>())
        }
        10 => json!("\u{0}\u{1}\u{7f}\u{FFFD}\u{FEFF}\u{202E}"),
        11 => json!("x".repeat(rng.random_range(0..5000))),
        12 if depth < 4 => Json::Array(
            (0..rng.random_range(0..4))
                .map(|_| junk(rng, depth + 1))
                .collect(),
        ),
        13 if depth < 4 => {
            let mut m = Map::new();
            for k in ["xm", "sfzh", "js", "hj", "sj", "a"] {
                if rng.random_bool(0.5) {
                    m.insert(k.to_string(), junk(rng, depth + 1));
                }
            }
            Json::Object(m)
        }
        14 => deep(rng.random_range(1..200)),
        _ => json!(rng.random_range(0..10).to_string()),
    }
}

fn deep(depth: usize) -> Json {
    let mut v = json!("bottom");
    for i in 0..depth {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "a": v })
        };
    }
    v
}

/// Every leaf and container path of a JSON document, as a list of keys and indices.
fn paths(v: &Json, prefix: &mut Vec<Json>, out: &mut Vec<Vec<Json>>) {
    out.push(prefix.clone());
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                prefix.push(json!(k));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Json::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(json!(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Json, path: &[Json]) -> Option<&'a mut Json> {
    let mut cur = v;
    for step in path {
        cur = match step {
            Json::String(k) => cur.get_mut(k.as_str())?,
            Json::Number(i) => cur.get_mut(i.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn mutate(rng: &mut StdRng, base: &Json) -> Json {
    let mut v = base.clone();
    let mut all = Vec::new();
    paths(&v, &mut Vec::new(), &mut all);
    for _ in 0..rng.random_range(1..5) {
        let path = &all[rng.random_range(0..all.len())];
        if path.is_empty() {
            continue;
        }
        let replacement = junk(rng, 0);
        if rng.random_bool(0.2) {
            // Remove the key instead.
            let (last, parent) = path.split_last().unwrap();
            if let (Some(Json::Object(m)), Json::String(k)) = (at_mut(&mut v, parent), last) {
                m.remove(k);
            }
        } else if let Some(slot) = at_mut(&mut v, path) {
            *slot = replacement;
        }
    }
    v
}

fn check_both_paths_agree(mapping: &CompiledMapping, raw: &Json) -> bool {
    let mut out = vec![7u8; 3];
    let encoded = mapping.encode_at(raw, 42, &mut out);
    let json = mapping.to_json_at(raw, 42);
    match (encoded, json) {
        (Ok(_), Ok(_)) => {
            assert_oracle(mapping, raw, 42);
            true
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert_eq!(out, [7, 7, 7]);
            assert!(!a.message.is_empty());
            false
        }
        (a, b) => panic!("paths disagree on {raw}:\nencode: {a:?}\nto_json: {b:?}"),
    }
}

#[test]
fn randomised_raw_records_agree_with_the_oracle_or_are_rejected() {
    let mut rng = StdRng::seed_from_u64(20_240_618);
    let sets = [
        (load("grid_event.toml"), raw("grid_event.raw.json")),
        (load("hotline_ticket.toml"), raw("hotline_ticket.raw.json")),
        (load("dept_dibao.toml"), dept_rows()[0].clone()),
        (load("dept_other.toml"), dept_rows()[2].clone()),
    ];
    for (mapping, base) in &sets {
        let (mut ok, mut rejected) = (0, 0);
        for _ in 0..1500 {
            let raw = mutate(&mut rng, base);
            if check_both_paths_agree(mapping, &raw) {
                ok += 1;
            } else {
                rejected += 1;
            }
        }
        // The generator must exercise both outcomes, or the test proves little.
        assert!(
            ok > 100 && rejected > 100,
            "{}: {ok} ok, {rejected} rejected",
            mapping.origin()
        );
    }
}

#[test]
fn malformed_top_level_input_is_rejected_without_panic() {
    let (mapping, base) = grid();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..500 {
        let v = junk(&mut rng, 0);
        check_both_paths_agree(&mapping, &v);
        // Junk spliced in at every top-level key.
        let mut raw = base.clone();
        for value in raw.as_object_mut().unwrap().values_mut() {
            if rng.random_bool(0.3) {
                *value = junk(&mut rng, 0);
            }
        }
        check_both_paths_agree(&mapping, &raw);
    }
    let mut raw = base.clone();
    raw["dz"] = deep(2_000);
    raw["dsr"] = Json::Array(vec![deep(120); 50]);
    assert!(!check_both_paths_agree(&mapping, &raw));
    let mut raw = base;
    raw["fjs"] = json!(u64::MAX);
    raw["jasj"] = json!(i64::MAX);
    assert!(!check_both_paths_agree(&mapping, &raw));
}

#[test]
fn the_example_in_the_mapping_docs_loads_and_runs() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/mapping.md"),
    )
    .unwrap();
    let start = docs.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &docs[start..start + docs[start..].find("```").unwrap()];
    let mapping = Mapping::from_str(block, "docs/mapping.md").unwrap_or_else(|e| panic!("{e}"));
    let json = assert_oracle(&mapping, &raw("grid_event.raw.json"), 0);
    assert_eq!(
        json["envelope"]["record_id"],
        "3ccd3895a9132f275794a833e441f63e"
    );
    assert_eq!(
        json["location"]["address"],
        "陕西省安康市汉阴县城关镇南街社区3组17号"
    );
}

// ---------------------------------------------------------------------------------------------------------
// `unsilo mapping test`.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn mapping_test_report_shows_records_rejections_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let good = raw("grid_event.raw.json");
    let mut bad = good.clone();
    bad["dsr"][0]["sfzh"] = json!("610921196803124570");
    let other = json!({"type": "household"});
    let samples = dir.path().join("samples.json");
    std::fs::write(
        &samples,
        serde_json::to_string(&json!([good, bad, other])).unwrap(),
    )
    .unwrap();
    let report = test_mapping(&fixture("grid_event.toml"), &samples).unwrap();
    assert!(
        report.contains("→ grid_event (std.grid_event), source system grid.hanyin"),
        "{report}"
    );
    assert!(
        report.contains("sample 1: ok: record_id 3ccd3895a9132f275794a833e441f63e"),
        "{report}"
    );
    assert!(
        report.contains("\"title\": \"南街社区两户因排水沟堵塞发生争执\""),
        "{report}"
    );
    assert!(
        report.contains("sample 2: rejected: parties[0].cert_no"),
        "{report}"
    );
    assert!(report.contains("validator(cert_no)"), "{report}");
    assert!(!report.contains("610921196803124570"), "{report}");
    assert!(report.contains("sample 3: skipped"), "{report}");
    assert!(
        report.contains("3 samples: 1 normalised, 1 rejected, 1 skipped"),
        "{report}"
    );

    // JSON lines work too.
    let lines = dir.path().join("samples.jsonl");
    std::fs::copy(fixture("dept.raw.jsonl"), &lines).unwrap();
    let report = test_mapping(&fixture("dept_other.toml"), &lines).unwrap();
    assert!(
        report.contains("3 samples: 3 normalised, 0 rejected, 0 skipped"),
        "{report}"
    );

    // A sample that is not JSON names its line; a bad mapping is the mapping's error.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"a\": 1}\n{\"a\": \n").unwrap();
    match test_mapping(&fixture("dept_other.toml"), &broken) {
        Err(TestMappingError::Sample { line, .. }) => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
    let bad_mapping = dir.path().join("bad.toml");
    std::fs::write(&bad_mapping, "target = \"nope\"\n").unwrap();
    let e = test_mapping(&bad_mapping, &lines).unwrap_err();
    assert!(matches!(e, TestMappingError::Mapping(_)));
    assert!(
        e.to_string()
            .contains("bad.toml:1: unknown target schema `nope`"),
        "{e}"
    );
}

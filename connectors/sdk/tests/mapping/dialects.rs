//! Mappings from invented raw dialects reproduce the schemas' example records.

use super::*;

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

pub(crate) fn dept_rows() -> Vec<Json> {
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

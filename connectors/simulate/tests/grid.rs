//! The built-in `grid` connector (county grid-management platforms) and its simulator.
//!
//! - The definition folder is compiled in whole; every valid fixture normalises into the schema its `msgType`
//!   names, every invalid fixture is rejected at the stage and with the code it expects, and the conformance kit
//!   agrees.
//! - One event, hand-checked, decodes from Avro with Chinese text intact, Beijing times right and codes mapped;
//!   each workflow step of it is a version with its own record id.
//! - The generator: 2 000 well-formed records all normalise, 2 000 malformed ones are all rejected at the stage
//!   their malformation names, the same seed gives the same record ids, events move through their workflow and
//!   close after 3–6 steps, about a tenth of households are red.
//! - The simulator against a small hub on loopback that normalises with the real definition: counts, retries,
//!   a refused token, shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use apache_avro::types::Value as Avro;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use unsilo_connectors::builtin;
use unsilo_connectors::conformance::{check_fixtures, read_fixtures};
use unsilo_connectors::definition::{ConnectorDefinition, NormalisedRecord};
use unsilo_connectors::sdk::{RawInput, RejectReason, Shutdown};
use unsilo_simulate::grid::{
    generate, run, Error, GridGenerator, GridSimulatorOptions, Malformation,
};

fn definition() -> ConnectorDefinition {
    builtin::definition("grid").unwrap_or_else(|e| panic!("{e}"))
}

fn normalise(
    def: &ConnectorDefinition,
    raw: &Value,
) -> Result<(NormalisedRecord, Vec<u8>), RejectReason> {
    let input = RawInput::from_json_bytes(serde_json::to_vec(raw).unwrap(), "test");
    let mut out = Vec::new();
    def.normalise(&input, &mut out).map(|n| (n, out))
}

fn fixture(name: &str) -> Value {
    let (_, text) = builtin::fixtures("grid")
        .into_iter()
        .find(|(path, _)| path.ends_with(name))
        .unwrap_or_else(|| panic!("no fixture {name}"));
    serde_json::from_str(text).unwrap()
}

fn decode(n: &NormalisedRecord, bytes: &[u8]) -> Avro {
    let mut reader = bytes;
    let v = apache_avro::from_avro_datum(n.schema.avro(), &mut reader, None).unwrap();
    assert!(reader.is_empty(), "{} trailing bytes", reader.len());
    v
}

/// The value at a dotted path of a decoded record (`workflow[1].due_time`), looking through unions.
fn at<'a>(v: &'a Avro, path: &str) -> &'a Avro {
    let mut cur = v;
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
            None => (part, None),
        };
        cur = unwrap_union(cur);
        let Avro::Record(fields) = cur else {
            panic!("{path}: {name} is not in a record: {cur:?}")
        };
        cur = &fields
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{path}: no field {name}"))
            .1;
        if let Some(i) = index {
            let Avro::Array(items) = unwrap_union(cur) else {
                panic!("{path}: {name} is not an array")
            };
            cur = &items[i];
        }
    }
    unwrap_union(cur)
}

fn unwrap_union(v: &Avro) -> &Avro {
    match v {
        Avro::Union(_, inner) => inner,
        other => other,
    }
}

fn text(v: &Avro) -> &str {
    match v {
        Avro::String(s) => s,
        Avro::Enum(_, s) => s,
        other => panic!("not text: {other:?}"),
    }
}

fn millis(v: &Avro) -> i64 {
    match v {
        Avro::TimestampMillis(t) => *t,
        other => panic!("not a timestamp: {other:?}"),
    }
}

fn schema_of(msg_type: &str) -> &'static str {
    match msg_type {
        "EVENT" => "grid_event",
        "HOUSEHOLD" => "household",
        "RESIDENT" => "resident",
        "GRID" => "grid_unit",
        other => panic!("unexpected msgType {other}"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The definition and its fixtures
// ---------------------------------------------------------------------------------------------------------

#[test]
fn every_valid_fixture_normalises_into_the_schema_its_msg_type_names() {
    let def = definition();
    let mut seen = BTreeSet::new();
    let mut count = 0;
    for (path, text) in builtin::fixtures("grid") {
        if !path.starts_with("fixtures/valid/") {
            continue;
        }
        count += 1;
        let raw: Value = serde_json::from_str(text).unwrap();
        let (n, bytes) =
            normalise(&def, &raw).unwrap_or_else(|e| panic!("{path} is rejected: {e:?}"));
        let expected = schema_of(raw["msgType"].as_str().unwrap());
        assert_eq!(n.schema.name(), expected, "{path}");
        assert_eq!(n.record_id.len(), 32, "{path}");
        let decoded = decode(&n, &bytes);
        assert_eq!(
            text_at(&decoded, "envelope.record_id"),
            n.record_id,
            "{path}"
        );
        assert_eq!(
            text_at(&decoded, "envelope.source_system"),
            "grid",
            "{path}"
        );
        assert_eq!(
            text_at(&decoded, "envelope.source_version"),
            raw["gxsj"].as_str().unwrap(),
            "{path}"
        );
        seen.insert(expected);
    }
    assert!(count >= 15, "only {count} valid fixtures");
    assert_eq!(seen.len(), 4, "fixtures for every schema: {seen:?}");
}

fn text_at<'a>(v: &'a Avro, path: &str) -> &'a str {
    text(at(v, path))
}

#[test]
fn every_invalid_fixture_is_rejected_at_the_stage_and_with_the_code_it_expects() {
    let def = definition();
    let mut stages = BTreeSet::new();
    let mut count = 0;
    for (path, text) in builtin::fixtures("grid") {
        if !path.starts_with("fixtures/invalid/") {
            continue;
        }
        count += 1;
        let f: Value = serde_json::from_str(text).unwrap();
        let expect = &f["expect"];
        let reason = match normalise(&def, &f["record"]) {
            Ok(n) => panic!("{path} was accepted as {}", n.0.record_id),
            Err(r) => r,
        };
        assert_eq!(
            reason.stage,
            expect["stage"].as_str().unwrap(),
            "{path}: {reason:?}"
        );
        assert_eq!(
            reason.code,
            expect["code"].as_str().unwrap(),
            "{path}: {reason:?}"
        );
        stages.insert(reason.stage);
        // Reasons never repeat a full ID number.
        let raw = serde_json::to_string(&f["record"]).unwrap();
        for id in [
            "610921196105170317",
            "610921196105170318",
            "61092119610517031X",
        ] {
            if raw.contains(id) {
                assert!(!reason.message.contains(id), "{path}: {}", reason.message);
            }
        }
    }
    assert!(count >= 15, "only {count} invalid fixtures");
    assert_eq!(
        stages,
        BTreeSet::from(["contract", "mapping", "validation"]),
        "invalid fixtures for every stage"
    );
}

#[test]
fn the_fixtures_pass_the_conformance_kit() {
    let def = definition();
    let fixtures = read_fixtures(builtin::fixtures("grid")).unwrap();
    let report = check_fixtures(&def, &fixtures);
    report.assert_passed("grid");
    assert!(report.checked >= 30);
}

#[test]
fn each_workflow_step_of_an_event_is_a_version_with_its_own_record_id() {
    let def = definition();
    let stages = [
        "REPORTED",
        "ACCEPTED",
        "DISPATCHED",
        "HANDLING",
        "SUPERVISED",
        "CLOSED",
    ];
    let names = [
        "reported",
        "accepted",
        "dispatched",
        "handling",
        "supervised",
        "closed",
    ];
    let mut ids = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        let raw = fixture(&format!("event_{}_{name}.json", i + 1));
        let (n, bytes) = normalise(&def, &raw).unwrap();
        assert_eq!(
            n.key, "SJ610921202407090042",
            "all versions share the partition key"
        );
        assert!(
            ids.insert(n.record_id.clone()),
            "{name}: record id repeated"
        );
        let v = decode(&n, &bytes);
        assert_eq!(text_at(&v, "status"), stages[i]);
        let Avro::Array(steps) = at(&v, "workflow") else {
            panic!()
        };
        assert_eq!(steps.len(), i + 1);
        assert_eq!(text_at(&v, &format!("workflow[{i}].stage")), stages[i]);
        let closed = at(&v, "closed_time");
        assert_eq!(
            matches!(closed, Avro::Null),
            stages[i] != "CLOSED",
            "{name}"
        );
    }
    // The same version twice is the same record id (a replay does not fork identities).
    let raw = fixture("event_3_dispatched.json");
    assert_eq!(
        normalise(&def, &raw).unwrap().0.record_id,
        normalise(&def, &raw).unwrap().0.record_id
    );
}

#[test]
fn the_closed_event_decodes_to_the_hand_checked_values() {
    let def = definition();
    let (n, bytes) = normalise(&def, &fixture("event_6_closed.json")).unwrap();
    assert_eq!(n.schema.name(), "grid_event");
    let v = decode(&n, &bytes);
    assert_eq!(
        text_at(&v, "envelope.source_record_id"),
        "SJ610921202407090042"
    );
    assert_eq!(text_at(&v, "envelope.source_version"), "20240716162018");
    assert_eq!(text_at(&v, "envelope.region_code"), "610921107200");
    assert_eq!(text_at(&v, "envelope.grid_code"), "610921107200002");
    assert_eq!(
        text_at(&v, "envelope.provider_org_code"),
        "11610921016050037T"
    );
    assert_eq!(text_at(&v, "envelope.data_grade"), "GENERAL");
    assert_eq!(text_at(&v, "event_no"), "SJ610921202407090042");
    assert_eq!(text_at(&v, "event_type_code"), "0302");
    assert_eq!(text_at(&v, "event_type_name"), "地质灾害隐患");
    assert_eq!(text_at(&v, "category"), "SAFETY_HAZARD");
    assert_eq!(text_at(&v, "urgency"), "URGENT");
    assert_eq!(text_at(&v, "title"), "三塘村7组一农户屋后边坡出现裂缝");
    assert!(text_at(&v, "description").starts_with("7月9日巡查发现，三塘村7组陈德福家屋后边坡"));
    // "2024/7/9 8:15" and "2024/7/9 7:40" in Beijing are 00:15 and the previous day's 23:40 UTC.
    assert_eq!(millis(at(&v, "reported_time")), 1_720_484_100_000);
    assert_eq!(millis(at(&v, "envelope.event_time")), 1_720_484_100_000);
    assert_eq!(millis(at(&v, "occurred_time")), 1_720_482_000_000);
    assert_eq!(millis(at(&v, "closed_time")), 1_721_118_000_000);
    assert_eq!(
        text_at(&v, "location.address"),
        "陕西省安康市汉阴县漩涡镇三塘村7组21号"
    );
    assert_eq!(at(&v, "location.lng"), &Avro::Double(108.452371));
    assert_eq!(at(&v, "location.lat"), &Avro::Double(32.781046));
    assert_eq!(text_at(&v, "location.coord_system"), "CGCS2000");
    assert_eq!(text_at(&v, "reporter.name"), "陈秀梅");
    assert_eq!(text_at(&v, "reporter.phone"), "13892567120");
    assert_eq!(text_at(&v, "parties[0].name"), "陈德福");
    assert_eq!(text_at(&v, "parties[0].cert_no"), "610921196105170316");
    assert_eq!(text_at(&v, "parties[0].role"), "INVOLVED");
    assert_eq!(text_at(&v, "household_ids[0]"), "HH6109211072000020021");
    assert_eq!(text_at(&v, "resident_ids[1]"), "RK610921107200002002102");
    assert_eq!(text_at(&v, "status"), "CLOSED");
    assert_eq!(text_at(&v, "handling_level"), "TOWN");
    assert_eq!(at(&v, "attachment_count"), &Avro::Int(4));
    assert_eq!(at(&v, "hotline_ticket_no"), &Avro::Null);
    // The workflow: grid member reports, the town accepts with a deadline, the county dispatches, …
    let stages: Vec<&str> = (0..6)
        .map(|i| text_at(&v, &format!("workflow[{i}].stage")))
        .collect();
    assert_eq!(
        stages,
        [
            "REPORTED",
            "ACCEPTED",
            "DISPATCHED",
            "HANDLING",
            "SUPERVISED",
            "CLOSED"
        ]
    );
    let levels: Vec<&str> = (0..6)
        .map(|i| text_at(&v, &format!("workflow[{i}].level")))
        .collect();
    assert_eq!(
        levels,
        ["GRID", "TOWN", "COUNTY", "COUNTY", "COUNTY", "TOWN"]
    );
    assert_eq!(millis(at(&v, "workflow[0].time")), 1_720_484_132_000);
    assert_eq!(millis(at(&v, "workflow[1].time")), 1_720_486_025_000);
    assert_eq!(millis(at(&v, "workflow[5].time")), 1_721_118_018_000);
    assert_eq!(
        at(&v, "workflow[0].org_code"),
        &Avro::Null,
        "blank becomes null"
    );
    assert_eq!(at(&v, "workflow[0].due_time"), &Avro::Null);
    assert_eq!(text_at(&v, "workflow[1].org_name"), "漩涡镇综治中心");
    assert_eq!(text_at(&v, "workflow[1].org_code"), "11610921016050061B");
    assert_eq!(text_at(&v, "workflow[1].operator_name"), "刘建平");
    assert_eq!(millis(at(&v, "workflow[1].due_time")), 1_720_778_400_000);
    assert_eq!(text_at(&v, "workflow[3].org_name"), "汉阴县自然资源局");
    assert_eq!(
        text_at(&v, "workflow[5].opinion"),
        "边坡已完成清方和截排水沟修建，经回访住户满意，予以结案。"
    );
}

#[test]
fn households_and_residents_decode_with_care_level_tags_and_codes_mapped() {
    let def = definition();
    let (n, bytes) = normalise(&def, &fixture("household_red.json")).unwrap();
    let v = decode(&n, &bytes);
    assert_eq!(n.schema.name(), "household");
    assert_eq!(text_at(&v, "care_level"), "RED");
    assert_eq!(text_at(&v, "head_name"), "陈德福");
    assert_eq!(text_at(&v, "envelope.data_grade"), "IMPORTANT");
    assert_eq!(
        at(&v, "tags"),
        &Avro::Array(vec![
            Avro::String("脱贫户".into()),
            Avro::String("监测户".into())
        ])
    );
    // gxsj "20240709110230" in Beijing.
    assert_eq!(millis(at(&v, "envelope.event_time")), 1_720_494_150_000);
    for (file, level) in [
        ("household_yellow.json", "YELLOW"),
        ("household_green.json", "GREEN"),
    ] {
        let (n, bytes) = normalise(&def, &fixture(file)).unwrap();
        assert_eq!(text_at(&decode(&n, &bytes), "care_level"), level, "{file}");
    }
    let (n, bytes) = normalise(&def, &fixture("household_green.json")).unwrap();
    assert_eq!(
        at(&decode(&n, &bytes), "tags"),
        &Avro::Array(vec![]),
        "an empty hbq is no tag"
    );

    let (n, bytes) = normalise(&def, &fixture("resident_spouse_disabled.json")).unwrap();
    let v = decode(&n, &bytes);
    assert_eq!(text_at(&v, "cert_type"), "RESIDENT_ID");
    assert_eq!(text_at(&v, "gender"), "FEMALE");
    assert_eq!(text_at(&v, "ethnicity"), "汉族");
    assert_eq!(text_at(&v, "relation_to_head"), "SPOUSE");
    assert_eq!(at(&v, "phone"), &Avro::Null);
    // 1963-11-02 is 2 252 days before 1970-01-01.
    assert_eq!(at(&v, "birth_date"), &Avro::Date(-2252));
    assert_eq!(
        at(&v, "special_groups"),
        &Avro::Array(vec![
            Avro::Enum(2, "DISABLED".into()),
            Avro::Enum(11, "POVERTY_MONITORED".into())
        ])
    );
    let (n, bytes) = normalise(&def, &fixture("resident_hk_macao_permit.json")).unwrap();
    let v = decode(&n, &bytes);
    assert_eq!(text_at(&v, "cert_type"), "HK_MACAO_PERMIT");
    assert_eq!(text_at(&v, "cert_no"), "H60315827");
    assert_eq!(text_at(&v, "population_type"), "OVERSEAS");
    assert_eq!(at(&v, "registered_address"), &Avro::Null);
}

// ---------------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------------

#[test]
fn two_thousand_well_formed_generated_records_all_normalise() {
    let def = definition();
    let records = generate(11, &["610921", "610114"], 0.0, 2_000);
    assert_eq!(records.len(), 2_000);
    let mut by_schema: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.malformation, None);
        let (n, bytes) = normalise(&def, &r.record)
            .unwrap_or_else(|e| panic!("record {i} rejected: {e:?}\n{:#}", r.record));
        decode(&n, &bytes);
        *by_schema.entry(n.schema.name()).or_insert(0) += 1;
    }
    assert_eq!(by_schema.len(), 4, "{by_schema:?}");
    assert!(by_schema["grid_event"] > 1_000, "{by_schema:?}");
}

#[test]
fn two_thousand_malformed_generated_records_are_all_rejected_at_the_stage_their_malformation_names()
{
    let def = definition();
    let records = generate(12, &["610921", "610114"], 1.0, 2_000);
    let mut seen: BTreeMap<Malformation, usize> = BTreeMap::new();
    let mut codes = BTreeSet::new();
    for (i, r) in records.iter().enumerate() {
        let m = r
            .malformation
            .unwrap_or_else(|| panic!("record {i} is not malformed"));
        let reason = match normalise(&def, &r.record) {
            Ok(_) => panic!("record {i} ({m:?}) was accepted:\n{:#}", r.record),
            Err(reason) => reason,
        };
        assert_eq!(
            reason.stage,
            m.expected_stage(),
            "record {i} ({m:?}): {reason:?}"
        );
        assert!(
            reason.code.starts_with(m.expected_code_prefix()),
            "record {i} ({m:?}): {reason:?}"
        );
        *seen.entry(m).or_insert(0) += 1;
        codes.insert(reason.code);
    }
    assert_eq!(seen.len(), Malformation::ALL.len(), "{seen:?}");
    assert!(codes.contains("validator(cert_no)"), "{codes:?}");
    assert!(codes.contains("validator(grid_code)"), "{codes:?}");
}

#[test]
fn a_share_of_malformed_records_is_about_that_share() {
    let records = generate(13, &["610921"], 0.1, 3_000);
    let malformed = records.iter().filter(|r| r.malformation.is_some()).count();
    assert!((200..=400).contains(&malformed), "{malformed} of 3000");
}

#[test]
fn the_same_seed_gives_the_same_records_and_record_ids() {
    let def = definition();
    let ids = |seed: u64| -> Vec<String> {
        generate(seed, &["610921", "610114"], 0.1, 2_000)
            .iter()
            .map(|r| match normalise(&def, &r.record) {
                Ok((n, _)) => n.record_id,
                Err(reason) => format!("rejected {}/{}", reason.stage, reason.code),
            })
            .collect()
    };
    let a = ids(21);
    assert_eq!(a, ids(21));
    assert_eq!(
        generate(21, &["610921"], 0.3, 200),
        generate(21, &["610921"], 0.3, 200)
    );
    let b = ids(22);
    let accepted_b: BTreeSet<&String> = b.iter().filter(|id| !id.starts_with("rejected")).collect();
    let shared = a
        .iter()
        .filter(|id| !id.starts_with("rejected") && accepted_b.contains(id))
        .count();
    assert!(shared < 10, "a different seed shares {shared} record ids");
    let distinct: BTreeSet<&String> = a.iter().filter(|id| !id.starts_with("rejected")).collect();
    let accepted = a.iter().filter(|id| !id.starts_with("rejected")).count();
    assert_eq!(distinct.len(), accepted, "record ids repeat within a run");
}

#[test]
fn generated_events_move_through_their_workflow_and_close_after_3_to_6_steps() {
    let records = generate(31, &["610921", "610114"], 0.0, 6_000);
    let mut events: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &records {
        if r.record["msgType"] == "EVENT" {
            events
                .entry(r.record["sjbh"].as_str().unwrap().to_owned())
                .or_default()
                .push(&r.record);
        }
    }
    assert!(events.len() > 300, "{} events", events.len());
    let mut closed = 0;
    let mut lengths = BTreeSet::new();
    let mut stages = BTreeSet::new();
    for (no, versions) in &events {
        let mut previous_gxsj = String::new();
        for (k, v) in versions.iter().enumerate() {
            let steps = v["lcjl"].as_array().unwrap();
            assert_eq!(
                steps.len(),
                k + 1,
                "{no}: version {k} has {} steps",
                steps.len()
            );
            assert_eq!(steps[0]["hj"], "10", "{no}: first step is 上报");
            assert_eq!(
                v["sjzt"], steps[k]["hj"],
                "{no}: sjzt is the last step's hj"
            );
            if k > 0 {
                assert_eq!(
                    &steps[..k],
                    versions[k - 1]["lcjl"].as_array().unwrap().as_slice()
                );
            }
            let gxsj = v["gxsj"].as_str().unwrap().to_owned();
            assert!(gxsj > previous_gxsj, "{no}: gxsj must grow");
            previous_gxsj = gxsj;
            stages.insert(steps[k]["hj"].as_str().unwrap().to_owned());
        }
        let last = versions.last().unwrap();
        if last["sjzt"] == "90" {
            closed += 1;
            let n = versions.len();
            assert!((3..=6).contains(&n), "{no}: closed after {n} steps");
            lengths.insert(n);
            assert!(last["jasj"].is_string(), "{no}: a closed event has jasj");
        } else {
            assert!(versions.len() < 6, "{no}: open after 6 steps");
            assert!(last.get("jasj").is_none());
        }
    }
    assert!(
        closed > events.len() / 2,
        "{closed} of {} events closed",
        events.len()
    );
    assert_eq!(lengths, BTreeSet::from([3, 4, 5, 6]));
    let expected: BTreeSet<String> = ["10", "20", "30", "40", "50", "60", "90"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(stages, expected);
}

#[test]
fn grids_come_first_then_households_with_about_a_tenth_red_then_their_residents() {
    let mut care: BTreeMap<String, usize> = BTreeMap::new();
    for seed in 0..6 {
        let mut generator = GridGenerator::new(seed, &["610921", "610114"], 0.0);
        let mut grids_seen = BTreeSet::new();
        let mut households_seen = BTreeSet::new();
        let mut saw_event = false;
        for _ in 0..600 {
            let r = generator.next_record().record;
            match r["msgType"].as_str().unwrap() {
                "GRID" => {
                    grids_seen.insert(r["wgbm"].as_str().unwrap().to_owned());
                }
                "HOUSEHOLD" => {
                    let grid = r["wgbm"].as_str().unwrap();
                    assert!(grids_seen.contains(grid), "household before its grid");
                    if households_seen.insert(r["hhbh"].as_str().unwrap().to_owned()) && !saw_event
                    {
                        *care
                            .entry(r["gxdj"].as_str().unwrap().to_owned())
                            .or_insert(0) += 1;
                    }
                }
                "RESIDENT" => {
                    let hh = r["hhbh"].as_str().unwrap();
                    assert!(
                        households_seen.contains(hh),
                        "resident before its household"
                    );
                }
                "EVENT" => {
                    saw_event = true;
                    assert!(grids_seen.contains(r["wgbm"].as_str().unwrap()));
                }
                other => panic!("{other}"),
            }
        }
        assert!(saw_event, "seed {seed}: no event in 600 records");
    }
    let total: usize = care.values().sum();
    let red = care.get("3").copied().unwrap_or(0);
    assert!(total > 200, "{care:?}");
    assert!(
        red * 100 >= total * 5 && red * 100 <= total * 17,
        "{red} red of {total}: {care:?}"
    );
    assert!(care.get("2").copied().unwrap_or(0) > red, "{care:?}");
}

// ---------------------------------------------------------------------------------------------------------
// The simulator against a small hub on loopback
// ---------------------------------------------------------------------------------------------------------

const TOKEN: &str = "grid-test-token";

#[derive(Clone)]
struct Hub {
    def: Arc<ConnectorDefinition>,
    /// Answer 503 to this many requests first.
    unavailable: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    record_ids: Arc<Mutex<Vec<String>>>,
}

/// What the real hub does at `POST /ingest/grid`, with the real definition: 401 without the token, one object
/// or an array, 200 / 207 / 422 with per-record `results`.
async fn ingest(
    State(hub): State<Hub>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    if hub
        .unavailable
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error_code": "unavailable"})),
        );
    }
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error_code": "unauthorized"})),
        );
    }
    hub.requests.fetch_add(1, Ordering::SeqCst);
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    let items = match parsed {
        Value::Array(items) => items,
        one => vec![one],
    };
    let (mut accepted, mut rejected, mut results) = (0, 0, Vec::new());
    for (index, raw) in items.iter().enumerate() {
        match normalise(&hub.def, raw) {
            Ok((n, _)) => {
                accepted += 1;
                hub.record_ids.lock().unwrap().push(n.record_id.clone());
                results.push(json!({"index": index, "status": "accepted", "record_id": n.record_id, "schema": n.schema.name()}));
            }
            Err(reason) => {
                rejected += 1;
                results.push(json!({"index": index, "status": "rejected", "error": reason}));
            }
        }
    }
    let status = match (accepted, rejected) {
        (_, 0) => StatusCode::OK,
        (0, _) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::MULTI_STATUS,
    };
    (
        status,
        Json(json!({"accepted": accepted, "rejected": rejected, "results": results})),
    )
}

async fn start_hub(unavailable: usize) -> (String, Hub) {
    let hub = Hub {
        def: Arc::new(definition()),
        unavailable: Arc::new(AtomicUsize::new(unavailable)),
        requests: Arc::new(AtomicUsize::new(0)),
        record_ids: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new()
        .route("/ingest/grid", post(ingest))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hub)
}

fn options(hub_url: String) -> GridSimulatorOptions {
    GridSimulatorOptions {
        hub_url,
        token: TOKEN.into(),
        rate: 0.0,
        malformed_share: 0.0,
        seed: 5,
        limit: Some(100),
        batch_size: 25,
        counties: vec!["610921".into(), "610114".into()],
    }
}

#[tokio::test]
async fn the_simulator_pushes_batches_and_counts_what_the_hub_accepted_and_rejected() {
    let (url, hub) = start_hub(0).await;
    let stats = run(
        GridSimulatorOptions {
            malformed_share: 0.2,
            limit: Some(310),
            ..options(url)
        },
        Shutdown::never(),
    )
    .await
    .unwrap();
    assert_eq!(stats.sent, 310);
    assert_eq!(stats.accepted + stats.rejected, 310);
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        13,
        "12 batches of 25 and one of 10"
    );
    assert_eq!(stats.requests, 13);
    assert_eq!(stats.retries, 0);
    assert!(stats.malformed_sent > 30, "{stats:?}");
    assert_eq!(stats.rejected, stats.malformed_sent, "{stats:?}");
    assert_eq!(stats.unexpected_rejections, 0, "{stats:?}");
    assert_eq!(stats.malformed_accepted, 0, "{stats:?}");
    assert_eq!(
        stats.rejected_by_reason.values().sum::<u64>(),
        stats.rejected,
        "{stats:?}"
    );
    assert_eq!(
        stats.accepted_by_schema.values().sum::<u64>(),
        stats.accepted
    );
    assert_eq!(hub.record_ids.lock().unwrap().len() as u64, stats.accepted);
    // What went over HTTP is what the generator makes from the same seed.
    let expected: Vec<String> = generate(5, &["610921", "610114"], 0.2, 310)
        .iter()
        .filter_map(|r| normalise(&definition(), &r.record).ok())
        .map(|(n, _)| n.record_id)
        .collect();
    assert_eq!(*hub.record_ids.lock().unwrap(), expected);
}

#[tokio::test]
async fn single_records_go_as_one_object_each() {
    let (url, hub) = start_hub(0).await;
    let stats = run(
        GridSimulatorOptions {
            batch_size: 1,
            limit: Some(7),
            ..options(url)
        },
        Shutdown::never(),
    )
    .await
    .unwrap();
    assert_eq!((stats.sent, stats.accepted, stats.requests), (7, 7, 7));
    assert_eq!(hub.requests.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn the_simulator_retries_while_the_hub_is_unavailable() {
    let (url, hub) = start_hub(2).await;
    let stats = run(
        GridSimulatorOptions {
            limit: Some(30),
            batch_size: 30,
            ..options(url)
        },
        Shutdown::never(),
    )
    .await
    .unwrap();
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.accepted, 30);
    assert_eq!(hub.requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        hub.record_ids.lock().unwrap().len(),
        30,
        "nothing lost, nothing doubled"
    );
}

#[tokio::test]
async fn a_refused_token_stops_the_simulator() {
    let (url, hub) = start_hub(0).await;
    let err = run(
        GridSimulatorOptions {
            token: "wrong".into(),
            ..options(url)
        },
        Shutdown::never(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { status: 401 }), "{err}");
    assert_eq!(hub.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn shutdown_while_waiting_to_retry_ends_the_run_cleanly() {
    // Bind and drop a listener: nothing listens on the port afterwards.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (trigger, shutdown) = Shutdown::new();
    let handle = tokio::spawn(run(options(url), shutdown));
    // Shutdown during the backoff ends the run without an error and without anything counted.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    trigger.trigger();
    let stats = handle.await.unwrap().unwrap();
    assert_eq!(stats.sent, 0);
    assert!(stats.retries >= 1, "{stats:?}");
}

#[tokio::test]
async fn shutdown_stops_an_unlimited_run() {
    let (url, hub) = start_hub(0).await;
    let (trigger, shutdown) = Shutdown::new();
    let handle = tokio::spawn(run(
        GridSimulatorOptions {
            limit: None,
            rate: 200.0,
            batch_size: 10,
            ..options(url)
        },
        shutdown,
    ));
    while hub.requests.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    trigger.trigger();
    let stats = handle.await.unwrap().unwrap();
    assert!(stats.sent >= 30, "{stats:?}");
    assert_eq!(stats.sent % 10, 0, "whole batches only: {stats:?}");
    assert_eq!(stats.sent, stats.accepted);
}

#[test]
fn unusable_options_are_refused_with_the_option_named() {
    let base = options("http://127.0.0.1:1".into());
    let cases = [
        (
            GridSimulatorOptions {
                hub_url: "127.0.0.1:8080".into(),
                ..base.clone()
            },
            "hub_url",
        ),
        (
            GridSimulatorOptions {
                token: " ".into(),
                ..base.clone()
            },
            "token",
        ),
        (
            GridSimulatorOptions {
                rate: -1.0,
                ..base.clone()
            },
            "rate",
        ),
        (
            GridSimulatorOptions {
                rate: f64::NAN,
                ..base.clone()
            },
            "rate",
        ),
        (
            GridSimulatorOptions {
                malformed_share: 1.5,
                ..base.clone()
            },
            "malformed_share",
        ),
        (
            GridSimulatorOptions {
                batch_size: 0,
                ..base.clone()
            },
            "batch_size",
        ),
    ];
    for (o, name) in cases {
        match o.validate() {
            Err(Error::InvalidOptions(m)) => assert!(m.contains(name), "{m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(base.validate().is_ok());
    assert!(
        !format!("{base:?}").contains(TOKEN),
        "Debug must not show the token"
    );
    let parsed: GridSimulatorOptions =
        serde_json::from_value(json!({"token": "t", "rate": 5})).unwrap();
    assert_eq!(
        parsed.batch_size,
        GridSimulatorOptions::default().batch_size
    );
    assert!(
        serde_json::from_value::<GridSimulatorOptions>(json!({"token": "t", "rte": 5})).is_err()
    );
}

//! Record-level behaviour.

use super::*;

pub(crate) fn grid() -> (CompiledMapping, Json) {
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
pub(crate) fn rating_with(extra: &str) -> Result<CompiledMapping, MappingError> {
    Mapping::from_str(&format!("{RATING}{extra}"), "rating.toml")
}

pub(crate) const RATING: &str = r#"target = "rating"
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
pub(crate) const GRID_MIN: &str = r#"target = "grid_event"
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

//! The shared records the property draws: the vocabulary of their enums and codes, and strategies for
//! `grid_event`, `household` and `resident` records with every field randomised.

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------------------------

pub(crate) const SCHEMAS: [&str; 3] = ["grid_event", "household", "resident"];

/// 12-digit Shaanxi division codes; filters test their prefixes.
pub(crate) const REGIONS: &[&str] = &[
    "610921100001",
    "610921107200",
    "610922100000",
    "610114001002",
    "610502100201",
];
pub(crate) const REGION_PREFIXES: &[&str] = &["61", "6109", "610921", "6101", "6105", "62"];
/// First six digits of generated ID numbers.
pub(crate) const ID_REGIONS: &[&str] = &["610921", "610922", "610114", "610502", "110105"];
pub(crate) const MOBILE_PREFIXES: &[&str] = &["13", "15", "18", "17", "19", "14", "16"];
pub(crate) const USCC: &[&str] = &["11610921016050037T", "91350100M000100Y43"];
pub(crate) const SOURCE_SYSTEMS: &[&str] = &["grid.hanyin", "grid.shiquan", "hotline.12345"];

pub(crate) const DATA_GRADE: &[&str] = &["GENERAL", "IMPORTANT", "CORE", "UNKNOWN"];
pub(crate) const SHARE: &[&str] = &["UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED", "UNKNOWN"];
pub(crate) const EVENT_TYPES: &[&str] = &["0101", "0203", "0501", "9999"];
pub(crate) const CATEGORY: &[&str] = &[
    "DISPUTE",
    "PUBLIC_SECURITY",
    "SAFETY_HAZARD",
    "ENVIRONMENT",
    "INFRASTRUCTURE",
    "LIVELIHOOD",
    "HEALTH",
    "PETITION",
    "OTHER",
    "UNKNOWN",
];
pub(crate) const URGENCY: &[&str] = &["NORMAL", "URGENT", "CRITICAL", "UNKNOWN"];
pub(crate) const COORD: &[&str] = &["WGS84", "GCJ02", "BD09", "CGCS2000", "UNKNOWN"];
pub(crate) const ROLE: &[&str] = &[
    "APPLICANT",
    "RESPONDENT",
    "VICTIM",
    "INVOLVED",
    "WITNESS",
    "OTHER",
    "UNKNOWN",
];
pub(crate) const STAGE: &[&str] = &[
    "REPORTED",
    "ACCEPTED",
    "DISPATCHED",
    "HANDLING",
    "SUPERVISED",
    "RETURNED",
    "CLOSED",
    "UNKNOWN",
];
pub(crate) const LEVEL: &[&str] = &["GRID", "VILLAGE", "TOWN", "COUNTY", "CITY", "UNKNOWN"];
pub(crate) const CARE: &[&str] = &["GREEN", "YELLOW", "RED", "UNKNOWN"];
pub(crate) const RESIDENCE: &[&str] =
    &["RESIDENT", "REGISTERED_ABSENT", "NON_REGISTERED", "UNKNOWN"];
pub(crate) const HOUSEHOLD_TAGS: &[&str] = &["脱贫户", "监测户", "低保户", "五保户", "留守户"];
pub(crate) const CERT_TYPE: &[&str] = &[
    "RESIDENT_ID",
    "HK_MACAO_PERMIT",
    "TAIWAN_PERMIT",
    "PASSPORT",
    "FOREIGNER_PR",
    "OTHER",
    "UNKNOWN",
];
pub(crate) const GENDER: &[&str] = &["MALE", "FEMALE", "UNKNOWN"];
pub(crate) const ETHNICITY: &[&str] = &["汉族", "回族", "满族"];
pub(crate) const RELATION: &[&str] = &[
    "HEAD",
    "SPOUSE",
    "CHILD",
    "PARENT",
    "GRANDCHILD",
    "GRANDPARENT",
    "SIBLING",
    "CHILD_IN_LAW",
    "OTHER",
    "UNKNOWN",
];
pub(crate) const MARITAL: &[&str] = &["UNMARRIED", "MARRIED", "DIVORCED", "WIDOWED", "UNKNOWN"];
pub(crate) const POPULATION: &[&str] = &["REGISTERED", "FLOATING", "OVERSEAS", "UNKNOWN"];
pub(crate) const SPECIAL: &[&str] = &[
    "DIBAO",
    "TEKUN",
    "DISABLED",
    "ELDERLY_ALONE",
    "LEFT_BEHIND_CHILD",
    "VETERAN",
    "UNKNOWN",
];
pub(crate) const RESIDENT_STATUS: &[&str] = &["NORMAL", "MOVED_OUT", "DECEASED", "UNKNOWN"];

pub(crate) const TREATMENTS: [Treatment; 5] = [
    Treatment::Clear,
    Treatment::Mask,
    Treatment::Pseudonymise,
    Treatment::Generalise,
    Treatment::Drop,
];

/// "Now" of every case (2025-06-15); expiries are drawn around it.
pub(crate) const NOW_MS: i64 = 1_750_000_000_000;

pub(crate) fn shared(name: &str) -> &'static SharedSchema {
    unsilo_schemas::shared_schema(name).unwrap_or_else(|| panic!("no shared schema {name}"))
}

pub(crate) fn key() -> PseudonymKey {
    PseudonymKey::from_bytes([7; 32])
}

pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------------------------

/// A valid-looking resident ID number: region, birth date, sequence, GB 11643 check character (sometimes a
/// lower-case `x`, as people type it).
pub(crate) fn id_number() -> impl Strategy<Value = String> {
    (
        prop::sample::select(ID_REGIONS),
        1930u32..2020,
        1u32..=12,
        1u32..=28,
        0u32..1000,
        any::<bool>(),
    )
        .prop_map(|(region, y, m, d, seq, lower)| {
            let first17 = format!("{region}{y:04}{m:02}{d:02}{seq:03}");
            let check = unsilo_schemas::validate::cert_no::cert_no_check_char(&first17)
                .expect("17 digits have a check character");
            let check = if lower {
                check.to_ascii_lowercase()
            } else {
                check
            };
            format!("{first17}{check}")
        })
}

/// A mainland mobile number, `1[3-9]` + 9 digits.
pub(crate) fn mobile() -> impl Strategy<Value = String> {
    (prop::sample::select(MOBILE_PREFIXES), 0u32..1_000_000_000)
        .prop_map(|(p, n)| format!("{p}{n:09}"))
}

/// Reference to the case's n-th ID number / mobile, resolved once the pools are known.
pub(crate) fn id_ref() -> impl Strategy<Value = String> {
    (0usize..8).prop_map(|k| format!("⟦I{k}⟧"))
}

pub(crate) fn phone_ref() -> impl Strategy<Value = String> {
    (0usize..8).prop_map(|k| format!("⟦P{k}⟧"))
}

/// Digit-free text (digits come only as separate segments, so digit runs are what the generator says they are).
pub(crate) fn words() -> impl Strategy<Value = String> {
    "[\\u4e00-\\u9fa5a-zA-Z ，。]{0,10}"
}

pub(crate) fn name() -> impl Strategy<Value = String> {
    "[\\u4e00-\\u9fa5]{1,4}"
}

pub(crate) fn address() -> impl Strategy<Value = String> {
    "[\\u4e00-\\u9fa5]{3,14}[0-9]{1,3}号"
}

/// Free text: words, short numbers, the case's ID numbers (as stored or with the check character's case
/// flipped) and mobiles (bare, `+86…`, `86…`), each segment separated by a non-digit.
pub(crate) fn free_text() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        4 => words(),
        1 => "[0-9]{1,6}",
        2 => (0usize..8).prop_map(|k| format!("身份证⟦I{k}⟧")),
        1 => (0usize..8).prop_map(|k| format!("⟦i{k}⟧")),
        2 => (0usize..8).prop_map(|k| format!("电话⟦P{k}⟧")),
        1 => (0usize..8).prop_map(|k| format!("+86⟦P{k}⟧")),
        1 => (0usize..8).prop_map(|k| format!("86⟦P{k}⟧")),
    ];
    let separator = prop::sample::select(&["，", "：", "。", " ", "(", ")", "、"][..]);
    prop::collection::vec((segment, separator), 0..8).prop_map(|parts| {
        let mut text = String::new();
        for (segment, separator) in parts {
            text.push_str(&segment);
            text.push_str(separator);
        }
        text
    })
}

pub(crate) fn ts() -> impl Strategy<Value = i64> {
    1_700_000_000_000i64..1_760_000_000_000
}

pub(crate) fn degrees(lo: u32, hi: u32) -> impl Strategy<Value = f64> {
    (lo * 1_000_000..hi * 1_000_000).prop_map(|x| f64::from(x) / 1e6)
}

pub(crate) fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(options).prop_map(str::to_owned)
}

pub(crate) fn envelope() -> impl Strategy<Value = Json> {
    (
        "[0-9a-f]{32}",
        pick(SOURCE_SYSTEMS),
        "[A-Z]{2}[0-9]{8,14}",
        1u32..50,
        ts(),
        ts(),
        pick(REGIONS),
        proptest::option::of(0u32..1000),
        pick(USCC),
        pick(DATA_GRADE),
        pick(SHARE),
    )
        .prop_map(
            |(rid, sys, srid, version, event, ingest, region, grid, org, grade, share)| {
                json!({
                    "record_id": rid,
                    "source_system": sys,
                    "source_record_id": srid,
                    "source_version": version.to_string(),
                    "event_time": event,
                    "ingest_time": ingest,
                    "grid_code": grid.map(|g| format!("{region}{g:03}")),
                    "region_code": region,
                    "provider_org_code": org,
                    "data_grade": grade,
                    "share_attribute": share,
                })
            },
        )
}

/// Overwrites the example record's fields with `fields`, which must name every field of it: every field of
/// every generated record is randomised, and a new schema field makes this fail until the generator knows it.
pub(crate) fn from_example(schema: &str, fields: Json) -> Json {
    let mut record = unsilo_schemas::example_record(schema).expect("example record");
    let (Json::Object(target), Json::Object(fields)) = (&mut record, fields) else {
        panic!("records are objects");
    };
    let missing: Vec<&String> = target.keys().filter(|k| !fields.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "generator for {schema} leaves {missing:?} as in the example"
    );
    for (k, v) in fields {
        assert!(target.contains_key(&k), "{schema} has no field {k}");
        target.insert(k, v);
    }
    record
}

pub(crate) fn grid_event_record() -> impl Strategy<Value = Json> {
    let head = (
        envelope(),
        "SJ[0-9]{14}",
        pick(EVENT_TYPES),
        "[\\u4e00-\\u9fa5]{2,6}",
        pick(CATEGORY),
        pick(URGENCY),
        free_text(),
        free_text(),
        proptest::option::of(ts()),
        ts(),
    );
    let location = (
        address(),
        proptest::option::of(degrees(105, 111)),
        proptest::option::of(degrees(31, 34)),
        pick(COORD),
    )
        .prop_map(|(address, lng, lat, cs)| {
            json!({"address": address, "lng": lng, "lat": lat, "coord_system": cs})
        });
    let reporter = ("WGY[0-9]{15}", name(), proptest::option::of(phone_ref()))
        .prop_map(|(id, name, phone)| json!({"member_id": id, "name": name, "phone": phone}));
    let party = (
        name(),
        proptest::option::of(id_ref()),
        proptest::option::of(phone_ref()),
        pick(ROLE),
    )
        .prop_map(|(name, cert, phone, role)| {
            json!({"name": name, "cert_no": cert, "phone": phone, "role": role})
        });
    let step = (
        pick(STAGE),
        ts(),
        pick(LEVEL),
        "[\\u4e00-\\u9fa5]{4,10}",
        proptest::option::of(pick(USCC)),
        proptest::option::of(name()),
        proptest::option::of(free_text()),
        proptest::option::of(ts()),
    )
        .prop_map(|(stage, time, level, org, code, operator, opinion, due)| {
            json!({"stage": stage, "time": time, "level": level, "org_name": org, "org_code": code,
                   "operator_name": operator, "opinion": opinion, "due_time": due})
        });
    let tail = (
        location,
        reporter,
        prop::collection::vec(party, 0..4),
        prop::collection::vec("HH[0-9]{19}", 0..3),
        prop::collection::vec("RK[0-9]{21}", 0..3),
        pick(STAGE),
        pick(LEVEL),
        prop::collection::vec(step, 0..4),
        0i32..10,
        proptest::option::of("12345-[0-9]{4}-[0-9]{5}"),
        proptest::option::of(ts()),
    );
    (head, tail).prop_map(
        |(
            (env, event_no, type_code, type_name, category, urgency, title, description, occurred, reported),
            (location, reporter, parties, households, residents, status, level, workflow, attachments, ticket, closed),
        )| {
            from_example(
                "grid_event",
                json!({
                    "envelope": env, "event_no": event_no, "event_type_code": type_code,
                    "event_type_name": type_name, "category": category, "urgency": urgency, "title": title,
                    "description": description, "occurred_time": occurred, "reported_time": reported,
                    "location": location, "reporter": reporter, "parties": parties,
                    "household_ids": households, "resident_ids": residents, "status": status,
                    "handling_level": level, "workflow": workflow, "attachment_count": attachments,
                    "hotline_ticket_no": ticket, "closed_time": closed,
                }),
            )
        },
    )
}

pub(crate) fn household_record() -> impl Strategy<Value = Json> {
    (
        (
            envelope(),
            "HH[0-9]{19}",
            pick(REGIONS),
            0u32..1000,
            address(),
            name(),
            id_ref(),
            proptest::option::of(phone_ref()),
        ),
        (
            0i32..12,
            pick(CARE),
            pick(RESIDENCE),
            prop::collection::vec(pick(HOUSEHOLD_TAGS), 0..3),
            proptest::option::of(degrees(105, 111)),
            proptest::option::of(degrees(31, 34)),
            pick(COORD),
        ),
    )
        .prop_map(
            |(
                (env, id, village, grid, address, head, cert, phone),
                (members, care, residence, tags, lng, lat, cs),
            )| {
                from_example(
                    "household",
                    json!({
                        "envelope": env, "household_id": id, "grid_code": format!("{village}{grid:03}"),
                        "village_code": village, "address": address, "head_name": head, "head_cert_no": cert,
                        "phone": phone, "member_count": members, "care_level": care,
                        "residence_status": residence, "tags": tags, "lng": lng, "lat": lat,
                        "coord_system": cs,
                    }),
                )
            },
        )
}

pub(crate) fn resident_record() -> impl Strategy<Value = Json> {
    (
        (
            envelope(),
            "RK[0-9]{21}",
            pick(CERT_TYPE),
            id_ref(),
            name(),
            pick(GENDER),
            proptest::option::of(-15_000i32..20_000),
            proptest::option::of(pick(ETHNICITY)),
            proptest::option::of(phone_ref()),
        ),
        (
            "HH[0-9]{19}",
            pick(RELATION),
            pick(MARITAL),
            pick(POPULATION),
            proptest::option::of(address()),
            address(),
            proptest::option::of(0u32..1000),
            pick(REGIONS),
            prop::collection::vec(pick(SPECIAL), 0..3),
            pick(RESIDENT_STATUS),
        ),
    )
        .prop_map(
            |(
                (env, id, cert_type, cert, name, gender, birth, ethnicity, phone),
                (household, relation, marital, population, registered, current, grid, village, groups, status),
            )| {
                from_example(
                    "resident",
                    json!({
                        "envelope": env, "resident_id": id, "cert_type": cert_type, "cert_no": cert,
                        "name": name, "gender": gender, "birth_date": birth, "ethnicity": ethnicity,
                        "phone": phone, "household_id": household, "relation_to_head": relation,
                        "marital_status": marital, "population_type": population,
                        "registered_address": registered, "current_address": current,
                        "grid_code": grid.map(|g| format!("{village}{g:03}")), "village_code": village,
                        "special_groups": groups, "status": status,
                    }),
                )
            },
        )
}

/// Replaces the `⟦I3⟧` / `⟦i3⟧` (check character's case flipped) / `⟦P3⟧` references in every string.
pub(crate) fn resolve(json: &mut Json, ids: &[String], phones: &[String]) {
    pub(crate) fn resolve_str(s: &str, ids: &[String], phones: &[String]) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find('⟦') {
            out.push_str(&rest[..start]);
            let after = &rest[start + '⟦'.len_utf8()..];
            let end = after.find('⟧').expect("closed reference");
            let (kind, index) = after[..end].split_at(1);
            let k: usize = index.parse().expect("reference index");
            match kind {
                "I" => out.push_str(&ids[k % ids.len()]),
                "i" => {
                    let id = &ids[k % ids.len()];
                    if id.ends_with('X') {
                        out.push_str(&id.to_ascii_lowercase());
                    } else {
                        out.push_str(&id.to_ascii_uppercase());
                    }
                }
                "P" => out.push_str(&phones[k % phones.len()]),
                other => panic!("unknown reference kind {other}"),
            }
            rest = &after[end + '⟧'.len_utf8()..];
        }
        out.push_str(rest);
        out
    }
    match json {
        Json::String(s) => *s = resolve_str(s, ids, phones),
        Json::Array(items) => items.iter_mut().for_each(|i| resolve(i, ids, phones)),
        Json::Object(map) => map.values_mut().for_each(|v| resolve(v, ids, phones)),
        _ => {}
    }
}

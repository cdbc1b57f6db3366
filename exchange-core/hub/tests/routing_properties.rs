//! Property test of the router's pure core, [`RoutingTable::route`]: no record leaks to a subscription that may
//! not have it, and what is released is only what the subscription was granted, treated as granted.
//!
//! Each case draws one shared record (`grid_event`, `household` or `resident`: the shipped example with every
//! field randomised, resident ID numbers and mobiles in the ID/phone fields and written into the free text) and a
//! handful of subscriptions over its schema (random granted field rules and treatments, random CEL filters from a
//! small grammar, random lifecycle status, expiry and view schema id). They go into a [`ControlState`]; the table
//! is built from it, the record routed, and every release checked:
//!
//! 1. releases go exactly to the subscriptions that are `active`, have a view schema id, compile, are not past
//!    their expiry at `now_ms`, and whose filter matches the record (`Filter::matches`) — never to a requested,
//!    approved, rejected, revoked or expired one, nor to one of another schema;
//! 2. each release is a Confluent frame with the subscription's view schema id and decodes, completely, with the
//!    route's view schema; every leaf path in it (and in the view schema) is granted by the subscription's rules
//!    (a rule naming a record releases its subtree, a more specific rule overrides, `drop` withholds);
//! 3. masked and pseudonymised values never contain their original (clear ones other than free text are the
//!    original, pseudonyms are `p1_` + 32 hex, generalised addresses do not contain the address); and no input
//!    ID number or mobile number appears anywhere in a release — decoded strings or raw bytes — unless the
//!    subscription releases an ID-number (resp. phone) field in clear;
//! 4. building and routing never panic and `route` returns `Ok`;
//! 5. the classification gates hold whatever the subscriptions say: a `NOT_SHARED` (不予共享) record is released
//!    to no one, and a `CORE`-grade record only to subscriptions approved by two different operators (双人复核).
//!
//! The table is then rebuilt, with the first table as `previous`, from a second state in which some of the
//! subscriptions changed (revoked, expired, re-filtered, narrowed, re-activated…), and the same checks run on it:
//! a route reused from an older table must never outlive a revocation.
//!
//! Filters are also evaluated by a small reference evaluator of the grammar (CEL semantics as documented in
//! `policy::filter`: a null ordered or called on is an error, a null is unequal to any value, commutative
//! `&&`/`||`, `exists`/`all`), which must agree with `Filter::matches`; deliberately broken filters must not
//! compile (and those subscriptions must release nothing).
//!
//! `the_property_catches_broken_routers` keeps the property honest: it runs the same checks against routers
//! broken on purpose (a view wider than granted, status, expiry or filter ignored, treatments skipped, free text
//! not redacted) and requires each to be caught by the check meant for it.
//!
//! `PROPTEST_CASES=<n>` runs more cases than the default 200.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Instant;

use apache_avro::schema::Schema;
use apache_avro::types::Value;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{json, Value as Json};
use unsilo_bus::wire;
use unsilo_hub::control::ControlState;
use unsilo_hub::router::{Release, RoutingTable};
use unsilo_policy::filter::Filter;
use unsilo_policy::model::{
    Approval, Channel, FieldRule, Subscription, SubscriptionSpec, SubscriptionStatus, Treatment,
};
use unsilo_policy::treat::PseudonymKey;
use unsilo_policy::view::{ViewError, ViewPlan};
use unsilo_schemas::{PiiKind, SharedSchema};

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------------------------

const SCHEMAS: [&str; 3] = ["grid_event", "household", "resident"];

/// 12-digit Shaanxi division codes; filters test their prefixes.
const REGIONS: &[&str] = &[
    "610921100001",
    "610921107200",
    "610922100000",
    "610114001002",
    "610502100201",
];
const REGION_PREFIXES: &[&str] = &["61", "6109", "610921", "6101", "6105", "62"];
/// First six digits of generated ID numbers.
const ID_REGIONS: &[&str] = &["610921", "610922", "610114", "610502", "110105"];
const MOBILE_PREFIXES: &[&str] = &["13", "15", "18", "17", "19", "14", "16"];
const USCC: &[&str] = &["11610921016050037T", "91350100M000100Y43"];
const SOURCE_SYSTEMS: &[&str] = &["grid.hanyin", "grid.shiquan", "hotline.12345"];

const DATA_GRADE: &[&str] = &["GENERAL", "IMPORTANT", "CORE", "UNKNOWN"];
const SHARE: &[&str] = &["UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED", "UNKNOWN"];
const EVENT_TYPES: &[&str] = &["0101", "0203", "0501", "9999"];
const CATEGORY: &[&str] = &[
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
const URGENCY: &[&str] = &["NORMAL", "URGENT", "CRITICAL", "UNKNOWN"];
const COORD: &[&str] = &["WGS84", "GCJ02", "BD09", "CGCS2000", "UNKNOWN"];
const ROLE: &[&str] = &[
    "APPLICANT",
    "RESPONDENT",
    "VICTIM",
    "INVOLVED",
    "WITNESS",
    "OTHER",
    "UNKNOWN",
];
const STAGE: &[&str] = &[
    "REPORTED",
    "ACCEPTED",
    "DISPATCHED",
    "HANDLING",
    "SUPERVISED",
    "RETURNED",
    "CLOSED",
    "UNKNOWN",
];
const LEVEL: &[&str] = &["GRID", "VILLAGE", "TOWN", "COUNTY", "CITY", "UNKNOWN"];
const CARE: &[&str] = &["GREEN", "YELLOW", "RED", "UNKNOWN"];
const RESIDENCE: &[&str] = &["RESIDENT", "REGISTERED_ABSENT", "NON_REGISTERED", "UNKNOWN"];
const HOUSEHOLD_TAGS: &[&str] = &["脱贫户", "监测户", "低保户", "五保户", "留守户"];
const CERT_TYPE: &[&str] = &[
    "RESIDENT_ID",
    "HK_MACAO_PERMIT",
    "TAIWAN_PERMIT",
    "PASSPORT",
    "FOREIGNER_PR",
    "OTHER",
    "UNKNOWN",
];
const GENDER: &[&str] = &["MALE", "FEMALE", "UNKNOWN"];
const ETHNICITY: &[&str] = &["汉族", "回族", "满族"];
const RELATION: &[&str] = &[
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
const MARITAL: &[&str] = &["UNMARRIED", "MARRIED", "DIVORCED", "WIDOWED", "UNKNOWN"];
const POPULATION: &[&str] = &["REGISTERED", "FLOATING", "OVERSEAS", "UNKNOWN"];
const SPECIAL: &[&str] = &[
    "DIBAO",
    "TEKUN",
    "DISABLED",
    "ELDERLY_ALONE",
    "LEFT_BEHIND_CHILD",
    "VETERAN",
    "UNKNOWN",
];
const RESIDENT_STATUS: &[&str] = &["NORMAL", "MOVED_OUT", "DECEASED", "UNKNOWN"];

const TREATMENTS: [Treatment; 5] = [
    Treatment::Clear,
    Treatment::Mask,
    Treatment::Pseudonymise,
    Treatment::Generalise,
    Treatment::Drop,
];

/// "Now" of every case (2025-06-15); expiries are drawn around it.
const NOW_MS: i64 = 1_750_000_000_000;

fn shared(name: &str) -> &'static SharedSchema {
    unsilo_schemas::shared_schema(name).unwrap_or_else(|| panic!("no shared schema {name}"))
}

fn key() -> PseudonymKey {
    PseudonymKey::from_bytes([7; 32])
}

fn join(prefix: &str, name: &str) -> String {
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
fn id_number() -> impl Strategy<Value = String> {
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
fn mobile() -> impl Strategy<Value = String> {
    (prop::sample::select(MOBILE_PREFIXES), 0u32..1_000_000_000)
        .prop_map(|(p, n)| format!("{p}{n:09}"))
}

/// Reference to the case's n-th ID number / mobile, resolved once the pools are known.
fn id_ref() -> impl Strategy<Value = String> {
    (0usize..8).prop_map(|k| format!("⟦I{k}⟧"))
}

fn phone_ref() -> impl Strategy<Value = String> {
    (0usize..8).prop_map(|k| format!("⟦P{k}⟧"))
}

/// Digit-free text (digits come only as separate segments, so digit runs are what the generator says they are).
fn words() -> impl Strategy<Value = String> {
    "[\\u4e00-\\u9fa5a-zA-Z ，。]{0,10}"
}

fn name() -> impl Strategy<Value = String> {
    "[\\u4e00-\\u9fa5]{1,4}"
}

fn address() -> impl Strategy<Value = String> {
    "[\\u4e00-\\u9fa5]{3,14}[0-9]{1,3}号"
}

/// Free text: words, short numbers, the case's ID numbers (as stored or with the check character's case
/// flipped) and mobiles (bare, `+86…`, `86…`), each segment separated by a non-digit.
fn free_text() -> impl Strategy<Value = String> {
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

fn ts() -> impl Strategy<Value = i64> {
    1_700_000_000_000i64..1_760_000_000_000
}

fn degrees(lo: u32, hi: u32) -> impl Strategy<Value = f64> {
    (lo * 1_000_000..hi * 1_000_000).prop_map(|x| f64::from(x) / 1e6)
}

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(options).prop_map(str::to_owned)
}

fn envelope() -> impl Strategy<Value = Json> {
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
fn from_example(schema: &str, fields: Json) -> Json {
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

fn grid_event_record() -> impl Strategy<Value = Json> {
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

fn household_record() -> impl Strategy<Value = Json> {
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

fn resident_record() -> impl Strategy<Value = Json> {
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
fn resolve(json: &mut Json, ids: &[String], phones: &[String]) {
    fn resolve_str(s: &str, ids: &[String], phones: &[String]) -> String {
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

// ---------------------------------------------------------------------------------------------------------------
// Filters: a small grammar of CEL over the schemas, rendered to source and evaluated by a reference evaluator
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }

    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
            Self::Eq => a == b,
            Self::Ne => a != b,
        }
    }
}

/// A predicate on one element of an array of records (`parties.exists(p, p.role == "VICTIM")`).
#[derive(Clone, Debug)]
enum ElemPred {
    /// `v.field == "lit"` on a non-nullable string/enum field.
    Eq(&'static str, String),
    /// `v.field.startsWith("lit")`, field possibly nullable (null: error).
    StartsWith(&'static str, String),
}

/// One comparison. `src` is the field as written in the filter (`region_code` for `envelope.region_code`),
/// `path` its dotted path in the record.
#[derive(Clone, Debug)]
enum Atom {
    Const(bool),
    /// `src == "lit"` / `!=`; a null nullable field is unequal to any string.
    StrEq {
        src: &'static str,
        path: &'static str,
        lit: String,
        negate: bool,
    },
    /// `src in ["a", "b"]`, non-nullable field.
    In {
        src: &'static str,
        path: &'static str,
        lits: Vec<String>,
    },
    /// `"lit" in src` on an array field.
    Contains {
        src: &'static str,
        path: &'static str,
        lit: String,
    },
    /// `src.startsWith("lit")`; null: error.
    StartsWith {
        src: &'static str,
        path: &'static str,
        lit: String,
    },
    /// `src <op> n`; null: error.
    Num {
        src: &'static str,
        path: &'static str,
        op: Cmp,
        lit: String,
    },
    /// `src == null` / `src != null`.
    Null {
        src: &'static str,
        path: &'static str,
        is_null: bool,
    },
    /// `has(src)`.
    Has {
        src: &'static str,
        path: &'static str,
    },
    /// `array.exists(v, pred)` or `array.all(v, pred)`.
    Quantified {
        array: &'static str,
        all: bool,
        pred: ElemPred,
    },
    /// Source that must not compile.
    Broken(&'static str),
}

#[derive(Clone, Debug)]
enum Expr {
    Atom(Atom),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

impl Atom {
    fn render(&self) -> String {
        match self {
            Self::Const(b) => b.to_string(),
            Self::StrEq {
                src, lit, negate, ..
            } => format!("{src} {} {}", if *negate { "!=" } else { "==" }, quote(lit)),
            Self::In { src, lits, .. } => format!(
                "{src} in [{}]",
                lits.iter().map(|l| quote(l)).collect::<Vec<_>>().join(", ")
            ),
            Self::Contains { src, lit, .. } => format!("{} in {src}", quote(lit)),
            Self::StartsWith { src, lit, .. } => format!("{src}.startsWith({})", quote(lit)),
            Self::Num { src, op, lit, .. } => format!("{src} {} {lit}", op.symbol()),
            Self::Null { src, is_null, .. } => {
                format!("{src} {} null", if *is_null { "==" } else { "!=" })
            }
            Self::Has { src, .. } => format!("has({src})"),
            Self::Quantified { array, all, pred } => {
                let body = match pred {
                    ElemPred::Eq(f, lit) => format!("v.{f} == {}", quote(lit)),
                    ElemPred::StartsWith(f, lit) => format!("v.{f}.startsWith({})", quote(lit)),
                };
                format!("{array}.{}(v, {body})", if *all { "all" } else { "exists" })
            }
            Self::Broken(src) => (*src).to_string(),
        }
    }

    fn broken(&self) -> bool {
        matches!(self, Self::Broken(_))
    }
}

impl Expr {
    fn render(&self) -> String {
        match self {
            Self::Atom(a) => a.render(),
            Self::Not(e) => format!("!({})", e.render()),
            Self::And(a, b) => format!("({}) && ({})", a.render(), b.render()),
            Self::Or(a, b) => format!("({}) || ({})", a.render(), b.render()),
        }
    }

    fn broken(&self) -> bool {
        match self {
            Self::Atom(a) => a.broken(),
            Self::Not(e) => e.broken(),
            Self::And(a, b) | Self::Or(a, b) => a.broken() || b.broken(),
        }
    }
}

/// CEL's result of a filter on a record: a value or a runtime error (a null where a value is needed).
type Eval = Result<bool, ()>;

fn lookup<'a>(json: &'a Json, path: &str) -> &'a Json {
    path.split('.').fold(json, |v, part| &v[part])
}

fn eval_atom(atom: &Atom, record: &Json) -> Eval {
    let string = |path: &str| lookup(record, path).as_str().map(str::to_owned);
    match atom {
        Atom::Const(b) => Ok(*b),
        Atom::StrEq {
            path, lit, negate, ..
        } => Ok((string(path).as_deref() == Some(lit.as_str())) != *negate),
        Atom::In { path, lits, .. } => {
            let v = string(path).ok_or(())?;
            Ok(lits.contains(&v))
        }
        Atom::Contains { path, lit, .. } => Ok(lookup(record, path)
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i.as_str() == Some(lit)))),
        Atom::StartsWith { path, lit, .. } => Ok(string(path).ok_or(())?.starts_with(lit.as_str())),
        Atom::Num { path, op, lit, .. } => {
            let v = lookup(record, path);
            // A null is unequal to any number; ordering it is an error.
            if v.is_null() {
                return match op {
                    Cmp::Eq => Ok(false),
                    Cmp::Ne => Ok(true),
                    _ => Err(()),
                };
            }
            let v = v.as_f64().ok_or(())?;
            let n: f64 = lit.parse().expect("numeric literal");
            Ok(op.holds(v, n))
        }
        Atom::Null { path, is_null, .. } => Ok(lookup(record, path).is_null() == *is_null),
        Atom::Has { path, .. } => Ok(!lookup(record, path).is_null()),
        Atom::Quantified { array, all, pred } => {
            let items = lookup(record, array)
                .as_array()
                .cloned()
                .unwrap_or_default();
            let results: Vec<Eval> = items
                .iter()
                .map(|item| match pred {
                    ElemPred::Eq(f, lit) => Ok(item[*f].as_str() == Some(lit.as_str())),
                    ElemPred::StartsWith(f, lit) => {
                        Ok(item[*f].as_str().ok_or(())?.starts_with(lit.as_str()))
                    }
                })
                .collect();
            if *all {
                if results.contains(&Ok(false)) {
                    Ok(false)
                } else if results.contains(&Err(())) {
                    Err(())
                } else {
                    Ok(true)
                }
            } else if results.contains(&Ok(true)) {
                Ok(true)
            } else if results.contains(&Err(())) {
                Err(())
            } else {
                Ok(false)
            }
        }
        Atom::Broken(_) => unreachable!("broken filters are not evaluated"),
    }
}

fn eval(expr: &Expr, record: &Json) -> Eval {
    match expr {
        Expr::Atom(a) => eval_atom(a, record),
        Expr::Not(e) => eval(e, record).map(|b| !b),
        // Commutative error semantics: false && error = false, true || error = true.
        Expr::And(a, b) => match (eval(a, record), eval(b, record)) {
            (Ok(false), _) | (_, Ok(false)) => Ok(false),
            (Ok(true), Ok(true)) => Ok(true),
            _ => Err(()),
        },
        Expr::Or(a, b) => match (eval(a, record), eval(b, record)) {
            (Ok(true), _) | (_, Ok(true)) => Ok(true),
            (Ok(false), Ok(false)) => Ok(false),
            _ => Err(()),
        },
    }
}

type AtomStrategy = BoxedStrategy<Atom>;

fn str_eq(src: &'static str, path: &'static str, lits: &'static [&'static str]) -> AtomStrategy {
    (pick(lits), any::<bool>())
        .prop_map(move |(lit, negate)| Atom::StrEq {
            src,
            path,
            lit,
            negate,
        })
        .boxed()
}

fn one_of(src: &'static str, path: &'static str, lits: &'static [&'static str]) -> AtomStrategy {
    prop::sample::subsequence(lits, 1..=lits.len().min(3))
        .prop_map(move |lits| Atom::In {
            src,
            path,
            lits: lits.into_iter().map(str::to_owned).collect(),
        })
        .boxed()
}

fn contains(src: &'static str, path: &'static str, lits: &'static [&'static str]) -> AtomStrategy {
    pick(lits)
        .prop_map(move |lit| Atom::Contains { src, path, lit })
        .boxed()
}

fn starts(src: &'static str, path: &'static str, lits: &'static [&'static str]) -> AtomStrategy {
    pick(lits)
        .prop_map(move |lit| Atom::StartsWith { src, path, lit })
        .boxed()
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop::sample::select(&[Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge, Cmp::Eq, Cmp::Ne][..])
}

fn int_cmp(src: &'static str, path: &'static str, range: std::ops::Range<i64>) -> AtomStrategy {
    (cmp(), range)
        .prop_map(move |(op, n)| Atom::Num {
            src,
            path,
            op,
            lit: n.to_string(),
        })
        .boxed()
}

fn double_cmp(src: &'static str, path: &'static str, lo: u32, hi: u32) -> AtomStrategy {
    (cmp(), lo * 10..hi * 10)
        .prop_map(move |(op, n)| Atom::Num {
            src,
            path,
            op,
            lit: format!("{:.1}", f64::from(n) / 10.0),
        })
        .boxed()
}

fn nullness(src: &'static str, path: &'static str) -> AtomStrategy {
    prop_oneof![
        any::<bool>().prop_map(move |is_null| Atom::Null { src, path, is_null }),
        Just(Atom::Has { src, path }),
    ]
    .boxed()
}

fn quantified(array: &'static str, preds: BoxedStrategy<ElemPred>) -> AtomStrategy {
    (any::<bool>(), preds)
        .prop_map(move |(all, pred)| Atom::Quantified { array, all, pred })
        .boxed()
}

fn broken(schema: &'static str) -> AtomStrategy {
    let specific: &'static [&'static str] = match schema {
        "grid_event" => &[
            "category == \"dispute\"",
            "parties.exists(p, p.role == \"PARTY\")",
        ],
        "household" => &["care_level == \"PURPLE\"", "member_count == \"3\""],
        _ => &["gender == \"M\"", "birth_date.startsWith(\"19\")"],
    };
    prop_oneof![
        prop::sample::select(specific),
        prop::sample::select(
            &[
                "regoin_code.startsWith(\"6109\")",
                "region_code == null",
                "region_code > 5",
                "true &&",
                "size(1) == 1",
                "region_code",
            ][..]
        ),
    ]
    .prop_map(Atom::Broken)
    .boxed()
}

/// The comparisons a filter over `schema` is built from.
fn atom(schema: &'static str) -> AtomStrategy {
    let common = vec![
        any::<bool>().prop_map(Atom::Const).boxed(),
        starts("region_code", "envelope.region_code", REGION_PREFIXES),
        starts(
            "envelope.region_code",
            "envelope.region_code",
            REGION_PREFIXES,
        ),
        str_eq("data_grade", "envelope.data_grade", DATA_GRADE),
        one_of("share_attribute", "envelope.share_attribute", SHARE),
        str_eq("source_system", "envelope.source_system", SOURCE_SYSTEMS),
        nullness("envelope.grid_code", "envelope.grid_code"),
        int_cmp(
            "envelope.event_time",
            "envelope.event_time",
            1_700_000_000_000..1_760_000_000_000,
        ),
    ];
    let specific = match schema {
        "grid_event" => vec![
            str_eq("category", "category", CATEGORY),
            one_of("category", "category", CATEGORY),
            str_eq("urgency", "urgency", URGENCY),
            one_of("status", "status", STAGE),
            str_eq("handling_level", "handling_level", LEVEL),
            str_eq("event_type_code", "event_type_code", EVENT_TYPES),
            one_of("event_type_code", "event_type_code", EVENT_TYPES),
            int_cmp("attachment_count", "attachment_count", 0..10),
            int_cmp(
                "occurred_time",
                "occurred_time",
                1_700_000_000_000..1_760_000_000_000,
            ),
            starts(
                "hotline_ticket_no",
                "hotline_ticket_no",
                &["12345", "12345-1"],
            ),
            starts("reporter.phone", "reporter.phone", &["13", "15", "18"]),
            nullness("hotline_ticket_no", "hotline_ticket_no"),
            nullness("occurred_time", "occurred_time"),
            nullness("closed_time", "closed_time"),
            nullness("reporter.phone", "reporter.phone"),
            nullness("location.lng", "location.lng"),
            double_cmp("location.lng", "location.lng", 105, 111),
            str_eq("location.coord_system", "location.coord_system", COORD),
            quantified(
                "parties",
                prop_oneof![
                    pick(ROLE).prop_map(|r| ElemPred::Eq("role", r)),
                    pick(&["13", "15", "18"]).prop_map(|p| ElemPred::StartsWith("phone", p)),
                    pick(&["6109", "6101"]).prop_map(|p| ElemPred::StartsWith("cert_no", p)),
                ]
                .boxed(),
            ),
            quantified(
                "workflow",
                prop_oneof![
                    pick(STAGE).prop_map(|s| ElemPred::Eq("stage", s)),
                    pick(LEVEL).prop_map(|s| ElemPred::Eq("level", s)),
                ]
                .boxed(),
            ),
        ],
        "household" => vec![
            str_eq("care_level", "care_level", CARE),
            one_of("care_level", "care_level", CARE),
            str_eq("residence_status", "residence_status", RESIDENCE),
            one_of("coord_system", "coord_system", COORD),
            starts("village_code", "village_code", REGION_PREFIXES),
            str_eq("village_code", "village_code", REGIONS),
            int_cmp("member_count", "member_count", 0..12),
            double_cmp("lng", "lng", 105, 111),
            double_cmp("lat", "lat", 31, 34),
            nullness("lng", "lng"),
            nullness("phone", "phone"),
            starts("phone", "phone", &["13", "15", "18"]),
            contains("tags", "tags", HOUSEHOLD_TAGS),
            starts("head_cert_no", "head_cert_no", &["6109", "6101", "1101"]),
        ],
        _ => vec![
            str_eq("gender", "gender", GENDER),
            one_of("cert_type", "cert_type", CERT_TYPE),
            str_eq("marital_status", "marital_status", MARITAL),
            one_of("population_type", "population_type", POPULATION),
            str_eq("relation_to_head", "relation_to_head", RELATION),
            str_eq("status", "status", RESIDENT_STATUS),
            str_eq("ethnicity", "ethnicity", ETHNICITY),
            int_cmp("birth_date", "birth_date", -15_000..20_000),
            nullness("birth_date", "birth_date"),
            nullness("registered_address", "registered_address"),
            nullness("phone", "phone"),
            starts("phone", "phone", &["13", "15", "18"]),
            starts("village_code", "village_code", REGION_PREFIXES),
            starts("cert_no", "cert_no", &["6109", "6101", "1101"]),
            contains("special_groups", "special_groups", SPECIAL),
        ],
    };
    let atoms: Vec<AtomStrategy> = common.into_iter().chain(specific).collect();
    let valid = prop::strategy::Union::new(atoms).boxed();
    prop_oneof![60 => valid, 1 => broken(schema)].boxed()
}

fn filter(schema: &'static str) -> impl Strategy<Value = Expr> {
    let leaf = atom(schema).prop_map(Expr::Atom);
    prop_oneof![
        // Often the plain `true` a subscription starts with.
        2 => Just(Expr::Atom(Atom::Const(true))),
        5 => leaf.prop_recursive(3, 8, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            ]
        }),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Expiry {
    None,
    /// Long past.
    Past(i64),
    /// Exactly now: expired (delivery stops *at* the expiry).
    Now,
    /// One millisecond from now: still delivering.
    JustAfter,
    Future(i64),
}

impl Expiry {
    fn at(self, now: i64) -> Option<i64> {
        match self {
            Self::None => None,
            Self::Past(d) => Some(now - d),
            Self::Now => Some(now),
            Self::JustAfter => Some(now + 1),
            Self::Future(d) => Some(now + d),
        }
    }
}

fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        3 => Just(Expiry::None),
        2 => (1i64..10_000_000_000).prop_map(Expiry::Past),
        1 => Just(Expiry::Now),
        1 => Just(Expiry::JustAfter),
        2 => (2i64..10_000_000_000).prop_map(Expiry::Future),
    ]
}

fn status() -> impl Strategy<Value = SubscriptionStatus> {
    prop_oneof![
        2 => Just(SubscriptionStatus::Requested),
        2 => Just(SubscriptionStatus::Approved),
        6 => Just(SubscriptionStatus::Active),
        1 => Just(SubscriptionStatus::Rejected),
        2 => Just(SubscriptionStatus::Revoked),
        2 => Just(SubscriptionStatus::Expired),
    ]
}

/// How a subscription differs in the second state (the table is rebuilt with the first one as `previous`).
#[derive(Clone, Debug)]
enum Change {
    Same,
    Status(SubscriptionStatus),
    Filter(Expr),
    Expiry(Expiry),
    /// The operator narrowed the grant: its first rule is gone.
    Narrowed,
    /// Re-registered view schema.
    ViewId,
}

fn change(schema: &'static str) -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => Just(Change::Same),
        4 => status().prop_map(Change::Status),
        1 => filter(schema).prop_map(Change::Filter),
        1 => expiry().prop_map(Change::Expiry),
        1 => Just(Change::Narrowed),
        1 => Just(Change::ViewId),
    ]
}

/// One generated subscription: rules as (index into the schema's tag paths, treatment index).
#[derive(Clone, Debug)]
struct SubGen {
    rules: Vec<(usize, usize)>,
    /// Keep rules the view cannot honour instead of pruning them (the subscription must then never route).
    keep_invalid: bool,
    filter: Expr,
    status: SubscriptionStatus,
    expiry: Expiry,
    /// Whether a non-active subscription has a view schema id (an approved one that is activating, a revoked one).
    view_id: bool,
    change: Change,
}

fn sub_gen(schema: &'static str) -> impl Strategy<Value = SubGen> {
    (
        prop::collection::vec((0usize..1000, 0usize..TREATMENTS.len()), 1..10),
        prop::bool::weighted(0.05),
        filter(schema),
        status(),
        expiry(),
        any::<bool>(),
        change(schema),
    )
        .prop_map(
            |(rules, keep_invalid, filter, status, expiry, view_id, change)| SubGen {
                rules,
                keep_invalid,
                filter,
                status,
                expiry,
                view_id,
                change,
            },
        )
}

/// One generated case.
#[derive(Clone, Debug)]
struct Case {
    schema: &'static str,
    record: Json,
    ids: Vec<String>,
    phones: Vec<String>,
    subs: Vec<SubGen>,
    now_ms: i64,
}

fn case_of(
    schema: &'static str,
    record: impl Strategy<Value = Json> + 'static,
) -> BoxedStrategy<Case> {
    (
        record,
        prop::collection::vec(id_number(), 1..4),
        prop::collection::vec(mobile(), 1..4),
        prop::collection::vec(sub_gen(schema), 1..6),
        0i64..1_000,
    )
        .prop_map(move |(mut record, ids, phones, subs, jitter)| {
            resolve(&mut record, &ids, &phones);
            Case {
                schema,
                record,
                ids,
                phones,
                subs,
                now_ms: NOW_MS + jitter,
            }
        })
        .boxed()
}

fn any_case() -> impl Strategy<Value = Case> {
    prop_oneof![
        case_of("grid_event", grid_event_record()),
        case_of("household", household_record()),
        case_of("resident", resident_record()),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// Building the control state
// ---------------------------------------------------------------------------------------------------------------

/// What the test knows of a subscription it put into the state.
#[derive(Clone, Debug)]
struct Built {
    subscription: Subscription,
    /// The granted rules (what the router must apply).
    rules: Vec<FieldRule>,
    filter: Expr,
    /// The rules build a view and the filter compiles: the subscription is routable at all.
    compiles: bool,
}

fn spec(
    schema: &str,
    fields: Vec<FieldRule>,
    filter: String,
    expires_at_ms: Option<i64>,
) -> SubscriptionSpec {
    SubscriptionSpec {
        schema: schema.to_owned(),
        filter,
        fields,
        purpose: "property test".into(),
        legal_basis: Some("test".into()),
        expires_at_ms,
        backfill_from_ms: None,
        retain_days: None,
        channel: Channel::Pull,
    }
}

/// Every top-level field in clear: what the requests ask for, so that a router that used the request instead of
/// the grant would release far more than granted.
fn everything(shared: &SharedSchema) -> Vec<FieldRule> {
    shared
        .field_tags()
        .iter()
        .filter(|t| !t.path.contains('.'))
        .map(|t| FieldRule {
            field: t.path.clone(),
            treatment: Treatment::Clear,
        })
        .collect()
}

/// The rules of `gen` over `shared`, without the ones the view cannot honour (unless `keep_invalid`); `None` if
/// nothing is left.
fn rules_of(
    shared: &SharedSchema,
    gen: &SubGen,
    view_name: &str,
) -> Option<(Vec<FieldRule>, bool)> {
    let paths: Vec<&str> = shared
        .field_tags()
        .iter()
        .map(|t| t.path.as_str())
        .collect();
    let mut rules: Vec<FieldRule> = Vec::new();
    for &(p, t) in &gen.rules {
        let field = paths[p % paths.len()];
        if rules.iter().any(|r| r.field == field) {
            continue;
        }
        rules.push(FieldRule {
            field: field.to_owned(),
            treatment: TREATMENTS[t],
        });
    }
    loop {
        match ViewPlan::build(shared, &rules, view_name) {
            Ok(_) => return Some((rules, true)),
            Err(_) if gen.keep_invalid => return Some((rules, false)),
            Err(
                ViewError::NotApplicable { path, .. }
                | ViewError::NoGeneralisation { path }
                | ViewError::ConflictingRules { path, .. },
            ) => rules.retain(|r| r.field != path),
            Err(ViewError::EmptyRules) => return None,
            Err(e) => panic!("unexpected view error for {rules:?}: {e}"),
        }
    }
}

fn subscription(
    schema: &str,
    i: usize,
    rules: &[FieldRule],
    filter: &Expr,
    status: SubscriptionStatus,
    expiry: Option<i64>,
    view_id: Option<i32>,
) -> Subscription {
    let granted = spec(schema, rules.to_vec(), filter.render(), expiry);
    let has_grant = !matches!(
        status,
        SubscriptionStatus::Requested | SubscriptionStatus::Rejected
    );
    let (requested, granted) = if has_grant {
        (
            spec(schema, everything(shared(schema)), "true".into(), None),
            Some(granted),
        )
    } else {
        (granted, None)
    };
    let agency = format!("agency-{i}");
    let name = format!("sub-{i}");
    Subscription {
        id: Subscription::id_of(&agency, &name),
        agency,
        name,
        status,
        requested,
        granted,
        approved_above_clearance: Vec::new(),
        view_schema_id: view_id,
        requested_at_ms: NOW_MS - 86_400_000,
        decided_by: None,
        decided_at_ms: None,
        reason: None,
        // Every other subscription was approved by two different operators, so CORE-grade records can reach it.
        approvals: (0..if i.is_multiple_of(2) { 2 } else { 1 })
            .map(|n| Approval {
                operator: format!("operator-{n}"),
                at_ms: NOW_MS - 3_600_000,
            })
            .collect(),
        auto_approved: false,
        revision: 1,
    }
}

/// The two control states of a case: as generated, and after each subscription's [`Change`].
fn states(case: &Case) -> (Vec<Built>, Vec<Built>) {
    let shared = shared(case.schema);
    let mut first = Vec::new();
    let mut second = Vec::new();
    for (i, gen) in case.subs.iter().enumerate() {
        let view_name = format!("agency-{i}.sub-{i}");
        let Some((rules, rules_ok)) = rules_of(shared, gen, &view_name) else {
            continue;
        };
        let filter_ok = Filter::compile(&gen.filter.render(), shared.avro()).is_ok();
        let view_id = 1000 + i as i32;
        let has_view_id = gen.status == SubscriptionStatus::Active || gen.view_id;
        let sub = subscription(
            case.schema,
            i,
            &rules,
            &gen.filter,
            gen.status,
            gen.expiry.at(case.now_ms),
            has_view_id.then_some(view_id),
        );
        first.push(Built {
            subscription: sub.clone(),
            rules: rules.clone(),
            filter: gen.filter.clone(),
            compiles: rules_ok && filter_ok,
        });
        let mut status = gen.status;
        let mut filter = gen.filter.clone();
        let mut expiry = gen.expiry.at(case.now_ms);
        let mut later_rules = rules.clone();
        let mut later_view_id = has_view_id.then_some(view_id);
        match &gen.change {
            Change::Same => {}
            Change::Status(s) => {
                status = *s;
                if status == SubscriptionStatus::Active {
                    later_view_id = Some(view_id);
                }
            }
            Change::Filter(f) => filter = f.clone(),
            Change::Expiry(e) => expiry = e.at(case.now_ms),
            Change::Narrowed => {
                if later_rules.len() > 1 {
                    later_rules.remove(0);
                }
            }
            Change::ViewId => later_view_id = later_view_id.map(|v| v + 500),
        }
        let later_rules_ok = ViewPlan::build(shared, &later_rules, &view_name).is_ok();
        let later_filter_ok = Filter::compile(&filter.render(), shared.avro()).is_ok();
        let mut later = subscription(
            case.schema,
            i,
            &later_rules,
            &filter,
            status,
            expiry,
            later_view_id,
        );
        later.revision = 2;
        second.push(Built {
            subscription: later,
            rules: later_rules,
            filter,
            compiles: later_rules_ok && later_filter_ok,
        });
    }
    (first, second)
}

/// A subscription of another schema in the same state: active, everything in clear, `true`; it must never get a
/// record of this schema.
fn foreign(schema: &str) -> Subscription {
    let other = SCHEMAS
        .iter()
        .find(|s| **s != schema)
        .expect("another schema");
    let mut s = subscription(
        other,
        99,
        &everything(shared(other)),
        &Expr::Atom(Atom::Const(true)),
        SubscriptionStatus::Active,
        None,
        Some(9999),
    );
    s.id = "foreign.everything".into();
    s.agency = "foreign".into();
    s.name = "everything".into();
    s
}

fn control_state(schema: &str, built: &[Built]) -> ControlState {
    let mut state = ControlState::default();
    for b in built {
        state
            .subscriptions
            .insert(b.subscription.id.clone(), b.subscription.clone());
    }
    let f = foreign(schema);
    state.subscriptions.insert(f.id.clone(), f);
    state
}

// ---------------------------------------------------------------------------------------------------------------
// Checking releases
// ---------------------------------------------------------------------------------------------------------------

/// The record as the router sees it: converted, encoded and decoded with the shared schema.
fn decoded_record(schema: &str, json: &Json) -> Value {
    let avro = shared(schema).avro();
    let value = unsilo_schemas::json_to_avro(json, avro)
        .unwrap_or_else(|e| panic!("generated {schema} record does not convert: {e}\n{json:#}"));
    let bytes = apache_avro::to_avro_datum(avro, value).expect("encodes");
    apache_avro::from_avro_datum(avro, &mut bytes.as_slice(), None).expect("decodes")
}

/// The treatment a leaf path gets under `rules`: that of the most specific rule naming it or an ancestor.
fn effective(rules: &[FieldRule], path: &str) -> Option<Treatment> {
    rules
        .iter()
        .filter(|r| r.field == path || path.starts_with(&format!("{}.", r.field)))
        .max_by_key(|r| r.field.len())
        .map(|r| r.treatment)
}

/// Leaf field paths of the shared schema (tag paths no other path extends), with their PII kind.
fn leaf_tags(shared: &SharedSchema) -> Vec<(String, Option<PiiKind>)> {
    let tags = shared.field_tags();
    tags.iter()
        .filter(|t| {
            let prefix = format!("{}.", t.path);
            !tags.iter().any(|o| o.path.starts_with(&prefix))
        })
        .map(|t| (t.path.clone(), t.pii))
        .collect()
}

/// Leaf paths present in a value (arrays and unions transparent; an empty array or map counts as its own path).
fn value_leaves(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Record(fields) => {
            for (n, fv) in fields {
                value_leaves(fv, &join(prefix, n), out);
            }
        }
        Value::Union(_, inner) => value_leaves(inner, prefix, out),
        Value::Array(items) if !items.is_empty() => {
            items.iter().for_each(|i| value_leaves(i, prefix, out))
        }
        Value::Map(items) if !items.is_empty() => {
            items.values().for_each(|i| value_leaves(i, prefix, out))
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// Leaf paths of a view schema.
fn schema_leaves<'s>(
    s: &'s Schema,
    prefix: &str,
    records: &mut HashMap<String, &'s Schema>,
    out: &mut BTreeSet<String>,
) {
    match s {
        Schema::Record(r) => {
            records.insert(r.name.fullname(None), s);
            for f in &r.fields {
                schema_leaves(&f.schema, &join(prefix, &f.name), records, out);
            }
        }
        Schema::Array(a) => schema_leaves(&a.items, prefix, records, out),
        Schema::Map(m) => schema_leaves(&m.types, prefix, records, out),
        Schema::Union(u) => {
            for b in u.variants() {
                if *b != Schema::Null {
                    schema_leaves(b, prefix, records, out);
                }
            }
        }
        Schema::Ref { name } => match records.get(&name.fullname(None)).copied() {
            Some(r) => schema_leaves(r, prefix, records, out),
            None => {
                out.insert(prefix.to_string());
            }
        },
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// Pairs every leaf of a view value with the source value it came from.
fn pair_leaves<'a>(
    src: &'a Value,
    view: &'a Value,
    path: &str,
    out: &mut Vec<(String, &'a Value, &'a Value)>,
) -> Result<(), String> {
    match (src, view) {
        (Value::Record(s), Value::Record(v)) => {
            for (n, vv) in v {
                let fpath = join(path, n);
                let sv = s
                    .iter()
                    .find(|(sn, _)| sn == n)
                    .map(|(_, sv)| sv)
                    .ok_or_else(|| format!("view field {fpath} is not in the shared record"))?;
                pair_leaves(sv, vv, &fpath, out)?;
            }
            Ok(())
        }
        (Value::Array(s), Value::Array(v)) => {
            if s.len() != v.len() {
                return Err(format!(
                    "{path}: {} elements released of {}",
                    v.len(),
                    s.len()
                ));
            }
            for (si, vi) in s.iter().zip(v) {
                pair_leaves(si, vi, path, out)?;
            }
            Ok(())
        }
        (Value::Union(_, s), Value::Union(_, v)) => pair_leaves(s, v, path, out),
        (Value::Union(_, s), v) => pair_leaves(s, v, path, out),
        (s, Value::Union(_, v)) => pair_leaves(s, v, path, out),
        (s, v) => {
            out.push((path.to_string(), s, v));
            Ok(())
        }
    }
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) | Value::Enum(_, s) => out.push(s),
        Value::Record(fields) => fields.iter().for_each(|(_, f)| strings(f, out)),
        Value::Union(_, inner) => strings(inner, out),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Map(items) => items.iter().for_each(|(k, i)| {
            out.push(k);
            strings(i, out);
        }),
        _ => {}
    }
}

/// A pseudonym is 32 hex digits: a short all-hex original can sit in it by chance, so only longer or non-hex
/// originals are held to "never contained".
fn checkable(original: &str) -> bool {
    let n = original.chars().count();
    n >= 3
        && !(n < 12 && original.chars().all(|c| c.is_ascii_hexdigit()))
        && !original.chars().all(|c| c == '*')
}

fn is_pseudonym(s: &str) -> bool {
    s.len() == 35
        && s.starts_with("p1_")
        && s[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Coverage counters, printed at the end (and checked: the property must have been exercised).
#[derive(Default)]
struct Stats {
    cases: AtomicUsize,
    subscriptions: AtomicUsize,
    releases: AtomicUsize,
    withheld_by_status: AtomicUsize,
    withheld_by_expiry: AtomicUsize,
    withheld_by_filter: AtomicUsize,
    withheld_not_shared: AtomicUsize,
    withheld_core: AtomicUsize,
    broken: AtomicUsize,
    secrets_checked: AtomicUsize,
    masked_or_pseudonymised: AtomicUsize,
    cert_or_phone_clear: AtomicUsize,
    filter_errors: AtomicUsize,
}

fn bump(counter: &AtomicUsize, n: usize) {
    counter.fetch_add(n, AtomicOrdering::Relaxed);
}

/// An enum symbol of the record's envelope, read independently of the router.
fn envelope_symbol<'r>(record: &'r Value, name: &str) -> Option<&'r str> {
    let Value::Record(fields) = record else {
        return None;
    };
    let (_, Value::Record(envelope)) = fields.iter().find(|(n, _)| n == "envelope")? else {
        return None;
    };
    match envelope.iter().find(|(n, _)| n == name)? {
        (_, Value::Enum(_, symbol)) => Some(symbol.as_str()),
        _ => None,
    }
}

/// How many different operators approved the subscription.
fn distinct_approvers(s: &Subscription) -> usize {
    s.approvals
        .iter()
        .map(|a| a.operator.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}

/// Routes `record` through a table built from `built` and checks every release. `label` says which table.
fn check_table(
    case: &Case,
    record: &Value,
    built: &[Built],
    table: &RoutingTable,
    label: &str,
    stats: &Stats,
    sabotage: Sabotage,
) -> Result<(), TestCaseError> {
    let shared = shared(case.schema);
    let leaves = leaf_tags(shared);
    let mut releases: Vec<Release> = Vec::new();
    table
        .route(record, case.now_ms, &key(), &mut releases)
        .map_err(|e| TestCaseError::fail(format!("{label}: route failed: {e}")))?;
    if sabotage == Sabotage::UnredactedText {
        unredact(case.schema, record, built, table, &mut releases);
    }

    // Property 1: exactly the delivering subscriptions whose filter matches.
    let mut released: BTreeMap<String, &Release> = BTreeMap::new();
    for r in &releases {
        let route = table.subscriptions.get(r.route).ok_or_else(|| {
            TestCaseError::fail(format!(
                "{label}: release of route {} of {}",
                r.route,
                table.subscriptions.len()
            ))
        })?;
        if released.insert(route.subscription.clone(), r).is_some() {
            return Err(TestCaseError::fail(format!(
                "{label}: {} got the record twice",
                route.subscription
            )));
        }
    }
    if released.contains_key("foreign.everything") {
        return Err(TestCaseError::fail(format!(
            "{label}: a {} record went to a subscription of another schema",
            case.schema
        )));
    }
    for b in built {
        let s = &b.subscription;
        let spec = s.spec();
        let filter = Filter::compile(&spec.filter, shared.avro());
        if let Ok(f) = &filter {
            // The reference evaluator must agree with the product's filter.
            let reference = eval(&b.filter, &case.record);
            prop_assert_eq!(
                f.matches(record),
                reference == Ok(true),
                "{}: filter `{}` disagrees with the reference evaluation ({:?})",
                label,
                spec.filter,
                reference
            );
            if reference.is_err() {
                bump(&stats.filter_errors, 1);
            }
        } else {
            prop_assert!(
                b.filter.broken(),
                "{}: filter `{}` of the supported grammar does not compile: {}",
                label,
                spec.filter,
                filter
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
        }
        if b.filter.broken() {
            prop_assert!(
                filter.is_err(),
                "{}: broken filter `{}` compiled",
                label,
                spec.filter
            );
        }
        let active = s.status == SubscriptionStatus::Active && s.view_schema_id.is_some();
        let live = spec.expires_at_ms.is_none_or(|e| case.now_ms < e);
        let matches = filter.as_ref().is_ok_and(|f| f.matches(record));
        let share = envelope_symbol(record, "share_attribute");
        let grade = envelope_symbol(record, "data_grade");
        let gates_pass =
            share != Some("NOT_SHARED") && (grade != Some("CORE") || distinct_approvers(s) >= 2);
        let expected = active && live && b.compiles && matches && gates_pass;
        let got = released.contains_key(&s.id);
        if active && live && b.compiles && matches && !gates_pass {
            if share == Some("NOT_SHARED") {
                bump(&stats.withheld_not_shared, 1);
            } else {
                bump(&stats.withheld_core, 1);
            }
        }
        if !b.compiles {
            bump(&stats.broken, 1);
        } else if !active && matches {
            bump(&stats.withheld_by_status, 1);
        } else if active && !live && matches {
            bump(&stats.withheld_by_expiry, 1);
        } else if active && live && !matches {
            bump(&stats.withheld_by_filter, 1);
        }
        prop_assert!(
            got == expected,
            "{}: subscription {} (status {}, expires {:?}, now {}, view id {:?}, compiles {}, filter `{}` matches \
             {}, share {:?}, grade {:?}, approvers {}) {}",
            label,
            s.id,
            s.status.as_str(),
            spec.expires_at_ms,
            case.now_ms,
            s.view_schema_id,
            b.compiles,
            spec.filter,
            matches,
            share,
            grade,
            distinct_approvers(s),
            if got {
                "got a release it must not have"
            } else {
                "got no release"
            }
        );
    }
    bump(&stats.subscriptions, built.len());
    bump(&stats.releases, releases.len());

    // Properties 2 and 3, per release.
    for b in built {
        let Some(release) = released.get(&b.subscription.id) else {
            continue;
        };
        let s = &b.subscription;
        let route = &table.subscriptions[release.route];
        prop_assert_eq!(route.view_schema_id, s.view_schema_id.unwrap_or(-1));
        prop_assert_eq!(&route.topic, &s.topic());
        let mut sorted = b.rules.clone();
        sorted.sort_by(|x, y| x.field.cmp(&y.field));
        prop_assert_eq!(
            &route.fields,
            &sorted,
            "{}: route of {} audits other fields",
            label,
            s.id
        );

        let (id, mut body) = wire::decode(&release.value)
            .map_err(|e| TestCaseError::fail(format!("{label}: {}: bad frame: {e}", s.id)))?;
        prop_assert_eq!(i64::from(id), i64::from(s.view_schema_id.unwrap_or(-1)));
        let raw = body;
        let view_schema = route.compiled.plan.schema();
        let view = apache_avro::from_avro_datum(view_schema, &mut body, None).map_err(|e| {
            TestCaseError::fail(format!("{label}: {}: release does not decode: {e}", s.id))
        })?;
        prop_assert!(
            body.is_empty(),
            "{}: {} trailing bytes after the view record",
            label,
            body.len()
        );

        let granted = |path: &str| effective(&b.rules, path).is_some_and(|t| t != Treatment::Drop);
        let granted_leaves: Vec<&str> = leaves
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| granted(p))
            .collect();
        let allowed = |p: &str| {
            granted_leaves.contains(&p)
                || granted_leaves
                    .iter()
                    .any(|g| g.starts_with(&format!("{p}.")))
        };
        let mut present = BTreeSet::new();
        value_leaves(&view, "", &mut present);
        let mut in_schema = BTreeSet::new();
        schema_leaves(view_schema, "", &mut HashMap::new(), &mut in_schema);
        for p in present.iter().chain(&in_schema) {
            prop_assert!(
                allowed(p),
                "{}: {} released `{}`, not granted by {:?}\nview: {:?}",
                label,
                s.id,
                p,
                b.rules,
                view
            );
        }

        // Treatments, leaf by leaf.
        let mut pairs = Vec::new();
        pair_leaves(record, &view, "", &mut pairs)
            .map_err(|e| TestCaseError::fail(format!("{label}: {}: {e}", s.id)))?;
        let pii = |p: &str| leaves.iter().find(|(l, _)| l == p).and_then(|(_, k)| *k);
        let cert_clear = leaves.iter().any(|(p, k)| {
            *k == Some(PiiKind::CertNo) && effective(&b.rules, p) == Some(Treatment::Clear)
        });
        let phone_clear = leaves.iter().any(|(p, k)| {
            *k == Some(PiiKind::Phone) && effective(&b.rules, p) == Some(Treatment::Clear)
        });
        if cert_clear || phone_clear {
            bump(&stats.cert_or_phone_clear, 1);
        }
        for (path, src, out) in &pairs {
            let treatment = effective(&b.rules, path);
            if matches!(src, Value::Null) {
                prop_assert_eq!(
                    *out,
                    &Value::Null,
                    "{}: {}: null released as a value",
                    label,
                    path
                );
                continue;
            }
            match treatment {
                Some(Treatment::Clear) => {
                    if pii(path) != Some(PiiKind::FreeText) || (cert_clear && phone_clear) {
                        prop_assert_eq!(*out, *src, "{}: {}: clear value changed", label, path);
                    }
                }
                Some(Treatment::Mask) => {
                    bump(&stats.masked_or_pseudonymised, 1);
                    let (Value::String(original), Value::String(masked)) = (src, out) else {
                        return Err(TestCaseError::fail(format!(
                            "{label}: {path}: masked non-string {out:?}"
                        )));
                    };
                    let original = original.trim();
                    prop_assert_eq!(masked.chars().count(), original.chars().count());
                    if original.chars().count() >= 3 && !original.chars().all(|c| c == '*') {
                        prop_assert!(
                            !masked.contains(original),
                            "{}: {}: masked {:?} contains the original {:?}",
                            label,
                            path,
                            masked,
                            original
                        );
                    }
                }
                Some(Treatment::Pseudonymise) => {
                    bump(&stats.masked_or_pseudonymised, 1);
                    let (Value::String(original), Value::String(p)) = (src, out) else {
                        return Err(TestCaseError::fail(format!(
                            "{label}: {path}: pseudonymised non-string {out:?}"
                        )));
                    };
                    prop_assert!(
                        is_pseudonym(p),
                        "{}: {}: {:?} is no pseudonym",
                        label,
                        path,
                        p
                    );
                    let original = original.trim();
                    if checkable(original) {
                        prop_assert!(
                            !p.contains(original),
                            "{}: {}: pseudonym {:?} contains the original {:?}",
                            label,
                            path,
                            p,
                            original
                        );
                    }
                }
                Some(Treatment::Generalise) => {
                    if let (Value::String(original), Value::String(g)) = (src, out) {
                        if pii(path) == Some(PiiKind::Address) {
                            prop_assert!(
                                !g.contains(original.trim()),
                                "{}: {}: generalised {:?} contains the address",
                                label,
                                path,
                                g
                            );
                        }
                    }
                }
                other => {
                    return Err(TestCaseError::fail(format!(
                        "{label}: {}: {path} released with treatment {other:?}",
                        s.id
                    )))
                }
            }
        }

        // No ID number or mobile anywhere, unless released in clear.
        let mut texts = Vec::new();
        strings(&view, &mut texts);
        let raw_text = String::from_utf8_lossy(raw).to_ascii_uppercase();
        for id in &case.ids {
            if cert_clear {
                continue;
            }
            bump(&stats.secrets_checked, 1);
            let upper = id.to_ascii_uppercase();
            for t in &texts {
                prop_assert!(
                    !t.to_ascii_uppercase().contains(&upper),
                    "{}: {} received ID number {} without an ID-number field in clear: {:?}",
                    label,
                    s.id,
                    id,
                    t
                );
            }
            prop_assert!(
                !raw_text.contains(&upper),
                "{}: {}: ID number {} in the release bytes",
                label,
                s.id,
                id
            );
        }
        for phone in &case.phones {
            if phone_clear {
                continue;
            }
            bump(&stats.secrets_checked, 1);
            for t in &texts {
                prop_assert!(
                    !t.contains(phone.as_str()),
                    "{}: {} received mobile {} without a phone field in clear: {:?}",
                    label,
                    s.id,
                    phone,
                    t
                );
            }
            prop_assert!(
                !raw_text.contains(phone.as_str()),
                "{}: {}: mobile {} in the release bytes",
                label,
                s.id,
                phone
            );
        }
    }
    Ok(())
}

fn describe(built: &[Built]) -> String {
    let mut out = String::new();
    for b in built {
        let s = &b.subscription;
        let _ = writeln!(
            out,
            "  {} status={} view_id={:?} expires={:?} compiles={} filter=`{}` rules={:?}",
            s.id,
            s.status.as_str(),
            s.view_schema_id,
            s.spec().expires_at_ms,
            b.compiles,
            s.spec().filter,
            b.rules
                .iter()
                .map(|r| format!("{}:{}", r.field, r.treatment.as_str()))
                .collect::<Vec<_>>()
        );
    }
    out
}

fn message(e: &TestCaseError) -> String {
    match e {
        TestCaseError::Fail(r) | TestCaseError::Reject(r) => r.message().to_owned(),
    }
}

fn run_case(case: &Case, stats: &Stats, sabotage: Sabotage) -> Result<(), TestCaseError> {
    let record = decoded_record(case.schema, &case.record);
    let (first, second) = states(case);
    let context = |label: &str, built: &[Built]| {
        format!(
            "{label} table, {} record, now {}:\nrecord: {:#}\nsubscriptions:\n{}",
            case.schema,
            case.now_ms,
            case.record,
            describe(built)
        )
    };
    let mut t1 = RoutingTable::build(
        &control_state(case.schema, &first),
        case.schema,
        &RoutingTable::default(),
    );
    if sabotage != Sabotage::None {
        t1 = sabotaged(case.schema, &first, t1, sabotage);
    }
    check_table(case, &record, &first, &t1, "first", stats, sabotage).map_err(|e| {
        TestCaseError::fail(format!("{}\n{}", message(&e), context("first", &first)))
    })?;
    if sabotage != Sabotage::None {
        return Ok(());
    }
    // The same state rebuilt on itself: reuse must not change anything.
    let again = RoutingTable::build(&control_state(case.schema, &first), case.schema, &t1);
    check_table(case, &record, &first, &again, "rebuilt", stats, sabotage).map_err(|e| {
        TestCaseError::fail(format!("{}\n{}", message(&e), context("rebuilt", &first)))
    })?;
    // The changed state, built on the first table.
    let t2 = RoutingTable::build(&control_state(case.schema, &second), case.schema, &t1);
    check_table(case, &record, &second, &t2, "changed", stats, sabotage).map_err(|e| {
        TestCaseError::fail(format!("{}\n{}", message(&e), context("changed", &second)))
    })?;
    bump(&stats.cases, 1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Sabotage: broken routers the checks above must reject
// ---------------------------------------------------------------------------------------------------------------

/// A deliberately broken router, to show that the property fails when routing leaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sabotage {
    /// The real router.
    None,
    /// Each route's view releases one more field, in clear, than granted.
    WidenView,
    /// The table is built as if every subscription were active.
    IgnoreStatus,
    /// Routes forget their expiry.
    IgnoreExpiry,
    /// Routes match every record.
    IgnoreFilter,
    /// Masked, pseudonymised and generalised fields are released in clear.
    UntreatedValues,
    /// Free text is released without redaction.
    UnredactedText,
    /// Every route may receive CORE-grade records, as if two operators had approved each.
    CoreToEveryone,
}

fn sabotaged(
    schema: &str,
    built: &[Built],
    mut table: RoutingTable,
    sabotage: Sabotage,
) -> RoutingTable {
    let shared = shared(schema);
    let rules_of_route = |id: &str| {
        built
            .iter()
            .find(|b| b.subscription.id == id)
            .map(|b| b.rules.clone())
            .unwrap_or_default()
    };
    match sabotage {
        Sabotage::None | Sabotage::UnredactedText => {}
        Sabotage::IgnoreStatus => {
            let all_active: Vec<Built> = built
                .iter()
                .cloned()
                .map(|mut b| {
                    b.subscription.status = SubscriptionStatus::Active;
                    b.subscription.view_schema_id.get_or_insert(4242);
                    if b.subscription.granted.is_none() {
                        b.subscription.granted = Some(b.subscription.requested.clone());
                    }
                    b
                })
                .collect();
            table = RoutingTable::build(
                &control_state(schema, &all_active),
                schema,
                &RoutingTable::default(),
            );
            // Keep the real view schema ids so that only the status is wrong.
            for r in &mut table.subscriptions {
                if let Some(b) = built.iter().find(|b| b.subscription.id == r.subscription) {
                    r.view_schema_id = b.subscription.view_schema_id.unwrap_or(4242);
                }
            }
        }
        Sabotage::IgnoreExpiry => table
            .subscriptions
            .iter_mut()
            .for_each(|r| r.expires_at_ms = None),
        Sabotage::CoreToEveryone => table
            .subscriptions
            .iter_mut()
            .for_each(|r| r.core_allowed = true),
        Sabotage::IgnoreFilter => table
            .subscriptions
            .iter_mut()
            .for_each(|r| r.compiled.filter = Filter::match_all(shared.avro())),
        Sabotage::WidenView => {
            for r in &mut table.subscriptions {
                let rules = rules_of_route(&r.subscription);
                let extra = leaf_tags(shared).into_iter().find_map(|(leaf, _)| {
                    if effective(&rules, &leaf).is_some_and(|t| t != Treatment::Drop) {
                        return None;
                    }
                    let mut wider = rules.clone();
                    wider.retain(|x| x.field != leaf);
                    wider.push(FieldRule {
                        field: leaf,
                        treatment: Treatment::Clear,
                    });
                    ViewPlan::build(shared, &wider, &r.subscription).ok()
                });
                if let Some(plan) = extra {
                    r.compiled.plan = std::sync::Arc::new(plan);
                }
            }
        }
        Sabotage::UntreatedValues => {
            for r in &mut table.subscriptions {
                let clear: Vec<FieldRule> = rules_of_route(&r.subscription)
                    .into_iter()
                    .map(|mut x| {
                        if x.treatment != Treatment::Drop {
                            x.treatment = Treatment::Clear;
                        }
                        x
                    })
                    .collect();
                if let Ok(plan) = ViewPlan::build(shared, &clear, &r.subscription) {
                    r.compiled.plan = std::sync::Arc::new(plan);
                }
            }
        }
    }
    table
}

/// Puts the source's free text back where it is released in clear, as a router that forgot to redact would.
fn unredact(
    schema: &str,
    record: &Value,
    built: &[Built],
    table: &RoutingTable,
    releases: &mut [Release],
) {
    fn restore(src: &Value, view: &mut Value, path: &str, free_text: &[String]) {
        match (src, view) {
            (Value::Record(s), Value::Record(v)) => {
                for (n, vv) in v.iter_mut() {
                    if let Some((_, sv)) = s.iter().find(|(sn, _)| sn == n) {
                        restore(sv, vv, &join(path, n), free_text);
                    }
                }
            }
            (Value::Array(s), Value::Array(v)) => {
                for (si, vi) in s.iter().zip(v.iter_mut()) {
                    restore(si, vi, path, free_text);
                }
            }
            (Value::Union(_, s), Value::Union(_, v)) => restore(s, v, path, free_text),
            (Value::String(s), v @ Value::String(_)) if free_text.iter().any(|f| f == path) => {
                *v = Value::String(s.clone());
            }
            _ => {}
        }
    }
    for release in releases {
        let route = &table.subscriptions[release.route];
        let rules = built
            .iter()
            .find(|b| b.subscription.id == route.subscription)
            .map(|b| b.rules.clone())
            .unwrap_or_default();
        let free_text: Vec<String> = shared(schema)
            .field_tags()
            .iter()
            .filter(|t| t.pii == Some(PiiKind::FreeText))
            .filter(|t| effective(&rules, &t.path) == Some(Treatment::Clear))
            .map(|t| t.path.clone())
            .collect();
        let (id, mut body) = wire::decode(&release.value).expect("framed");
        let schema = route.compiled.plan.schema();
        let mut view = apache_avro::from_avro_datum(schema, &mut body, None).expect("decodes");
        restore(record, &mut view, "", &free_text);
        let body = apache_avro::to_avro_datum(schema, view).expect("encodes");
        release.value = wire::encode(id, &body);
    }
}

const CASES: u32 = 200;

#[test]
fn routing_never_leaks() {
    let stats = Stats::default();
    let started = Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES),
        // Nothing is written next to the sources; a failure prints the minimal input instead.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&any_case(), |case| run_case(&case, &stats, Sabotage::None));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => panic!(
            "routing property failed: {}\nminimal case: {case:#?}",
            reason.message()
        ),
        Err(e) => panic!("{e}"),
    }
    let n = |c: &AtomicUsize| c.load(AtomicOrdering::Relaxed);
    eprintln!(
        "routing_never_leaks: {} cases in {:.1?}; {} subscription checks, {} releases; withheld by status {}, \
         by expiry {}, by filter {}, by the NOT_SHARED gate {}, by the CORE gate {}; not compiling {}; filters \
         erring at run time {}; masked/pseudonymised values {}; ID/mobile absence checks {}; releases with an \
         ID/phone field in clear {}",
        n(&stats.cases),
        started.elapsed(),
        n(&stats.subscriptions),
        n(&stats.releases),
        n(&stats.withheld_by_status),
        n(&stats.withheld_by_expiry),
        n(&stats.withheld_by_filter),
        n(&stats.withheld_not_shared),
        n(&stats.withheld_core),
        n(&stats.broken),
        n(&stats.filter_errors),
        n(&stats.masked_or_pseudonymised),
        n(&stats.secrets_checked),
        n(&stats.cert_or_phone_clear),
    );
    // The properties were exercised, not vacuously true.
    assert!(
        n(&stats.releases) >= 50,
        "too few releases to mean anything"
    );
    assert!(
        n(&stats.withheld_by_status) >= 20,
        "too few non-active matching subscriptions"
    );
    assert!(
        n(&stats.withheld_by_expiry) >= 5,
        "too few expired active subscriptions"
    );
    assert!(
        n(&stats.withheld_by_filter) >= 20,
        "too few filtered-out records"
    );
    assert!(
        n(&stats.withheld_not_shared) >= 5 && n(&stats.withheld_core) >= 5,
        "too few records held back by the classification gates"
    );
    assert!(n(&stats.secrets_checked) >= 100, "too few ID/mobile checks");
    assert!(
        n(&stats.masked_or_pseudonymised) >= 50,
        "too few treated values"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Hand-built lifecycle cases
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn revoked_and_expired_subscriptions_get_nothing_an_identical_active_one_does() {
    let schema = "grid_event";
    let record = decoded_record(
        schema,
        &unsilo_schemas::example_record(schema).expect("example"),
    );
    let rules = vec![
        FieldRule {
            field: "event_no".into(),
            treatment: Treatment::Clear,
        },
        FieldRule {
            field: "parties.cert_no".into(),
            treatment: Treatment::Pseudonymise,
        },
        FieldRule {
            field: "description".into(),
            treatment: Treatment::Clear,
        },
    ];
    let filter = Expr::Atom(Atom::Const(true));
    let now = NOW_MS;
    let cases = [
        ("revoked", SubscriptionStatus::Revoked, None),
        ("expired", SubscriptionStatus::Expired, Some(now - 60_000)),
        // Past its expiry but not yet marked expired by the lifecycle: the router must stop by itself.
        ("lapsed", SubscriptionStatus::Active, Some(now - 1)),
        ("at-expiry", SubscriptionStatus::Active, Some(now)),
        ("active", SubscriptionStatus::Active, Some(now + 60_000)),
    ];
    let mut state = ControlState::default();
    for (i, (name, status, expiry)) in cases.iter().enumerate() {
        let mut s = subscription(
            schema,
            i,
            &rules,
            &filter,
            *status,
            *expiry,
            Some(100 + i as i32),
        );
        s.agency = "civil-affairs".into();
        s.name = (*name).into();
        s.id = Subscription::id_of(&s.agency, &s.name);
        state.subscriptions.insert(s.id.clone(), s);
    }
    let table = RoutingTable::build(&state, schema, &RoutingTable::default());
    let mut out = Vec::new();
    table.route(&record, now, &key(), &mut out).expect("routes");
    let got: Vec<&str> = out
        .iter()
        .map(|r| table.subscriptions[r.route].subscription.as_str())
        .collect();
    assert_eq!(got, ["civil-affairs.active"]);
    let (id, mut body) = wire::decode(&out[0].value).expect("framed");
    assert_eq!(id, 104);
    let route = &table.subscriptions[out[0].route];
    let view = apache_avro::from_avro_datum(route.compiled.plan.schema(), &mut body, None)
        .expect("decodes");
    let text = format!("{view:?}");
    assert!(text.contains("SJ20240618000173"), "{text}");
    assert!(!text.contains("610921196803124579"), "{text}");

    // Revoking the active one (table rebuilt on the previous one, as the router does) stops it too.
    let mut revoked = state.clone();
    let s = revoked
        .subscriptions
        .get_mut("civil-affairs.active")
        .expect("active");
    s.status = SubscriptionStatus::Revoked;
    s.revision += 1;
    let table = RoutingTable::build(&revoked, schema, &table);
    let mut out = Vec::new();
    table.route(&record, now, &key(), &mut out).expect("routes");
    assert!(out.is_empty(), "{} releases after revocation", out.len());
    // And the active one, routed later than its expiry, gets nothing.
    let table = RoutingTable::build(&state, schema, &table);
    let mut out = Vec::new();
    table
        .route(&record, now + 60_000, &key(), &mut out)
        .expect("routes");
    assert!(out.is_empty(), "{} releases at expiry", out.len());
}

/// The property can fail: each broken router is caught within a few hundred cases (deterministic seed).
#[test]
fn the_property_catches_broken_routers() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{RngAlgorithm, TestRng};

    let must_release_nothing: &[&str] = &["got a release it must not have"];
    for (sabotage, caught_by) in [
        (Sabotage::WidenView, &["not granted by"][..]),
        (Sabotage::IgnoreStatus, must_release_nothing),
        (Sabotage::IgnoreExpiry, must_release_nothing),
        (Sabotage::IgnoreFilter, must_release_nothing),
        (Sabotage::CoreToEveryone, must_release_nothing),
        (
            Sabotage::UntreatedValues,
            &[
                "is no pseudonym",
                "contains the original",
                "non-string",
                "contains the address",
            ][..],
        ),
        (
            Sabotage::UnredactedText,
            &["received ID number", "received mobile"][..],
        ),
    ] {
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        let stats = Stats::default();
        let strategy = any_case();
        let caught = (0..300).find_map(|_| {
            let case = strategy.new_tree(&mut runner).expect("case").current();
            run_case(&case, &stats, sabotage).err()
        });
        let Some(reason) = caught else {
            panic!("{sabotage:?}: 300 cases and the property never failed");
        };
        let reason = message(&reason);
        let first_line = reason.lines().next().unwrap_or_default();
        assert!(
            caught_by.iter().any(|c| first_line.contains(c)),
            "{sabotage:?} caught by the wrong check: {first_line}"
        );
        eprintln!("{sabotage:?} caught: {first_line}");
    }
}

//! [`PushGenerator`]: the records a 秦务员 run pushes — cases, ratings and appeals with their later changes,
//! some malformed on purpose — deterministic for the options and the start time.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, FixedOffset};
use rand::Rng;
use serde_json::{json, Map, Value};
use unsilo_schemas::validate::{uscc_check_char, RegionTable};

use super::catalogue::{
    AppealTopic, ApplicantKind, Dept, Item, Licence, APPEAL_TOPICS, BAD_COMMENTS, BAD_TAGS, DEPTS,
    FAIR_COMMENTS, FAIR_TAGS, GOOD_COMMENTS, GOOD_TAGS, INSTITUTIONS, ITEMS, RECTIFICATIONS,
    TRADE_NAMES,
};
use super::{format_time, QinwuyuanOptions, RATE_RANGE, TIME_SCALE_RANGE};
use crate::clock::{close_of_business, floor_second, format_with, DAY, HOUR, MINUTE, SECOND};
use crate::fake::Faker;
use crate::options::{clamped, SHARE};

/// What a pushed record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// 办件 (`dataType` `BJ`).
    ServiceCase,
    /// 好差评 (`PJ`).
    Rating,
    /// 诉求 (`SQ`).
    Appeal,
}

impl RecordKind {
    /// The shared schema the record normalises into.
    pub fn schema(self) -> &'static str {
        match self {
            RecordKind::ServiceCase => "service_case",
            RecordKind::Rating => "rating",
            RecordKind::Appeal => "appeal",
        }
    }
}

/// One generated record.
#[derive(Clone, Debug, PartialEq)]
pub struct PushRecord {
    /// What it is.
    pub kind: RecordKind,
    /// Whether it carries a defect (and must be rejected).
    pub malformed: bool,
    /// The record as the platform pushes it.
    pub record: Value,
}

/// A department of a county.
#[derive(Clone, Debug)]
struct Unit {
    pub(super) name: String,
    uscc: String,
}

/// The next change of an entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    CaseAccept,
    /// The rating itself (its first version).
    Rated,
    CaseFinish,
    RatingRectifying,
    RatingRectified,
    RatingVerified,
    AppealAccept,
    AppealReply,
    AppealClose,
}

/// A case, rating or appeal with changes still to come.
#[derive(Debug)]
struct Entity {
    pub(super) kind: RecordKind,
    pub(super) record: Map<String, Value>,
    pub(super) version: i64,
    step: Step,
    /// The department concerned.
    pub(super) dept: Unit,
    pub(super) item: Option<&'static Item>,
    pub(super) topic: Option<&'static AppealTopic>,
    /// The applicant or appellant: name, mobile.
    person: (String, String),
    pub(super) county: String,
    town_name: String,
    pub(super) place: String,
}

/// A defect put into a malformed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Defect {
    /// No `dataType`: the contract rejects it.
    MissingType,
    /// `areaCode` names no division: the validator rejects it.
    UnknownRegion,
    /// The record's main date on 30 February: the mapping rejects it.
    ImpossibleDate,
    /// Something only this kind of record has: a broken ID number, credit code or mobile, a score of 0.
    KindSpecific,
}

const DEFECTS: [Defect; 4] = [
    Defect::MissingType,
    Defect::UnknownRegion,
    Defect::ImpossibleDate,
    Defect::KindSpecific,
];

/// Breaks a credit code's check character (keeping it 18 upper-case characters).
fn corrupt_uscc(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == '0' { '1' } else { '0' };
    }
    chars.into_iter().collect()
}

/// Generates the records a 秦务员 run pushes — deterministic for the options' seed, rate, time scale, malformed
/// share and counties, and the start time.
#[derive(Debug)]
pub struct PushGenerator {
    faker: Faker,
    /// Simulated time of the last record.
    clock: i64,
    next_arrival: i64,
    /// Mean simulated milliseconds between new cases and appeals.
    mean_gap_ms: f64,
    malformed_share: f64,
    /// Changes to come, by (time, sequence).
    queue: BTreeMap<(i64, u64), Entity>,
    sequence: u64,
    case_serial: u64,
    rating_serial: u64,
    appeal_serial: u64,
    /// Departments by county.
    units: BTreeMap<String, Vec<(Dept, Unit)>>,
    /// Recently completed cases: (case number, department, county), for appeals about a case.
    recent_cases: VecDeque<(String, Unit, String)>,
}

impl PushGenerator {
    /// A generator for these options, whose first record is at `start`.
    pub fn new(options: &QinwuyuanOptions, start: DateTime<FixedOffset>) -> Self {
        let counties: Vec<&str> = options.counties.iter().map(String::as_str).collect();
        // Out-of-range options (`run` refuses them) are brought into range rather than panicking.
        let rate = clamped(options.rate, RATE_RANGE, 1.0);
        let scale = clamped(options.time_scale, TIME_SCALE_RANGE, 1.0);
        let start_ms = floor_second(start.timestamp_millis());
        Self {
            faker: Faker::for_counties(options.seed, &counties),
            clock: start_ms,
            next_arrival: start_ms,
            mean_gap_ms: 4.0 * 1000.0 * scale / rate,
            malformed_share: clamped(options.malformed_share, SHARE, 0.0),
            queue: BTreeMap::new(),
            sequence: 0,
            case_serial: 0,
            rating_serial: 0,
            appeal_serial: 0,
            units: BTreeMap::new(),
            recent_cases: VecDeque::new(),
        }
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            low
        } else {
            self.faker.rng().random_range(low..high)
        }
    }

    fn unit(&mut self, county: &str, dept: Dept) -> Unit {
        let faker = &mut self.faker;
        let units = self.units.entry(county.to_owned()).or_insert_with(|| {
            let table = RegionTable::shaanxi();
            let name = table.name(county).unwrap_or("本县").to_owned();
            let city = table
                .get(county)
                .and_then(|r| r.parent_code())
                .and_then(|c| table.name(c))
                .unwrap_or("")
                .to_owned();
            DEPTS
                .iter()
                .map(|d| {
                    (
                        *d,
                        Unit {
                            name: d.name(&name, &city),
                            uscc: faker.uscc(county, true),
                        },
                    )
                })
                .collect()
        });
        units
            .iter()
            .find(|(d, _)| *d == dept)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| Unit {
                name: format!("{county}人民政府"),
                uscc: String::new(),
            })
    }

    /// A credit code of a public institution (事业单位, type 12) registered in `county`.
    fn institution_uscc(&mut self, county: &str) -> String {
        let government = self.faker.uscc(county, true);
        let first17: String = format!("12{}", government.get(2..17).unwrap_or_default());
        match uscc_check_char(&first17) {
            Ok(c) => format!("{first17}{c}"),
            Err(_) => government,
        }
    }

    fn schedule(&mut self, at: i64, entity: Entity) {
        self.sequence += 1;
        self.queue.insert((at, self.sequence), entity);
    }

    /// The next record, in simulated time order.
    pub fn next_record(&mut self) -> PushRecord {
        let due = self.queue.first_key_value().map(|(k, _)| k.0);
        if let Some(at) = due.filter(|at| *at <= self.next_arrival) {
            if let Some((_, entity)) = self.queue.pop_first() {
                self.clock = self.clock.max(at);
                return self.advance(entity);
            }
        }
        self.clock = self.clock.max(self.next_arrival);
        let u: f64 = self.faker.rng().random();
        let gap = -self.mean_gap_ms * (1.0 - u).ln();
        self.next_arrival = floor_second(self.clock.saturating_add((gap as i64).max(SECOND)));
        if self.faker.chance(0.8) {
            self.new_case()
        } else {
            self.new_appeal()
        }
    }

    /// Writes the entity's next version and, if it is malformed, spoils the copy pushed.
    fn emit(&mut self, entity: &mut Entity) -> PushRecord {
        entity.version += 1;
        entity
            .record
            .insert("dataVersion".into(), json!(entity.version));
        entity
            .record
            .insert("updateTime".into(), json!(format_time(self.clock)));
        let mut record = entity.record.clone();
        let malformed = self.faker.chance(self.malformed_share);
        if malformed {
            let defect = *self.faker.pick(&DEFECTS);
            self.spoil(&mut record, entity.kind, defect);
        }
        PushRecord {
            kind: entity.kind,
            malformed,
            record: Value::Object(record),
        }
    }

    fn spoil(&mut self, record: &mut Map<String, Value>, kind: RecordKind, defect: Defect) {
        let main_time = match kind {
            RecordKind::ServiceCase => "applyTime",
            RecordKind::Rating => "evaluateTime",
            RecordKind::Appeal => "submitTime",
        };
        match defect {
            Defect::MissingType => {
                record.shift_remove("dataType");
            }
            Defect::UnknownRegion => {
                let county = record
                    .get("areaCode")
                    .and_then(Value::as_str)
                    .and_then(|c| c.get(..6))
                    .unwrap_or("610921")
                    .to_owned();
                record.insert("areaCode".into(), json!(format!("{county}999999")));
            }
            Defect::ImpossibleDate => {
                let time = record
                    .get(main_time)
                    .and_then(Value::as_str)
                    .unwrap_or("2024-01-01 00:00:00")
                    .to_owned();
                let year = time.get(..4).unwrap_or("2024");
                let clock = time.get(10..).unwrap_or(" 00:00:00");
                record.insert(main_time.into(), json!(format!("{year}-02-30{clock}")));
            }
            Defect::KindSpecific => match kind {
                RecordKind::ServiceCase => {
                    let cert = record
                        .get("applicantCertNo")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let person =
                        record.get("applicantCertType").and_then(Value::as_str) == Some("111");
                    match cert {
                        Some(c) if person => {
                            let broken = self.faker.corrupt_cert_no(&c);
                            record.insert("applicantCertNo".into(), json!(broken));
                        }
                        _ => {
                            let code = record
                                .get("acceptDeptCode")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            let broken = corrupt_uscc(code);
                            record.insert("acceptDeptCode".into(), json!(broken));
                        }
                    }
                }
                RecordKind::Rating => {
                    if self.faker.chance(0.5) {
                        record.insert("score".into(), json!(0));
                    } else {
                        let code = record
                            .get("deptCode")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let broken = corrupt_uscc(code);
                        record.insert("deptCode".into(), json!(broken));
                    }
                }
                RecordKind::Appeal => {
                    let phone = record
                        .get("appellantPhone")
                        .and_then(Value::as_str)
                        .unwrap_or("13800000000");
                    // A second digit of 2 is no mainland mobile number.
                    let broken = format!("12{}", phone.get(2..).unwrap_or("000000000"));
                    record.insert("appellantPhone".into(), json!(broken));
                }
            },
        }
    }

    /// A channel code `"1"`–`"4"`: a roll of 0..100 below `cuts[0]` gives `"1"`, below `cuts[1]` `"2"`, below
    /// `cuts[2]` `"3"`, else `"4"`.
    fn channel(&mut self, cuts: [u32; 3]) -> &'static str {
        let roll = self.faker.rng().random_range(0..100u32);
        match cuts.iter().position(|cut| roll < *cut) {
            Some(0) => "1",
            Some(1) => "2",
            Some(_) => "3",
            None => "4",
        }
    }

    /// A first version of a record of `data_type` (`BJ`, `PJ`, `SQ`) in the village `area_code`, stamped now.
    fn new_record(&self, data_type: &str, area_code: &str) -> Map<String, Value> {
        let mut record = Map::new();
        record.insert("dataType".into(), json!(data_type));
        record.insert("dataVersion".into(), json!(1));
        record.insert("areaCode".into(), json!(area_code));
        record.insert("updateTime".into(), json!(format_time(self.clock)));
        record
    }

    fn new_case(&mut self) -> PushRecord {
        let item = self.faker.pick_weighted(ITEMS, |i| i.weight);
        let village = self.faker.village();
        let county = village.code().get(..6).unwrap_or("610921").to_owned();
        let table = RegionTable::shaanxi();
        let county_name = table.name(&county).unwrap_or("本县").to_owned();
        let town_code = village.parent_code().unwrap_or_default();
        let town_name = table.name(town_code).unwrap_or("").to_owned();
        let dept = self.unit(&county, item.dept);
        let person = self.faker.person();
        let address = self.faker.address(village);
        // 1 网上办 (PC), 2 掌上办 (app), 3 窗口, 4 自助终端.
        let channel = self.channel([30, 65, 95]);
        self.case_serial += 1;
        let project_no = format!(
            "{county}{channel}{}{:06}",
            format_with(self.clock, "%y%m%d"),
            self.case_serial % 1_000_000
        );
        let mut record = self.new_record("BJ", village.code());
        record.insert("projectNo".into(), json!(project_no));
        record.insert(
            "taskCode".into(),
            json!(format!("{}{}", dept.uscc, item.basic_code)),
        );
        record.insert("taskName".into(), json!(item.name));
        record.insert("taskType".into(), json!(item.task_type));
        match item.applicant {
            ApplicantKind::Person => {
                record.insert("applicantType".into(), json!("1"));
                record.insert("applicantName".into(), json!(person.name));
                record.insert("applicantCertType".into(), json!("111"));
                record.insert("applicantCertNo".into(), json!(person.cert_no));
            }
            ApplicantKind::Enterprise => {
                let trade = *self.faker.pick(TRADE_NAMES);
                let industry = if item.industry.is_empty() {
                    "商贸"
                } else {
                    item.industry
                };
                record.insert("applicantType".into(), json!("2"));
                record.insert(
                    "applicantName".into(),
                    json!(format!("{county_name}{trade}{industry}有限公司")),
                );
                record.insert("applicantCertType".into(), json!("001"));
                record.insert(
                    "applicantCertNo".into(),
                    json!(self.faker.uscc(&county, false)),
                );
            }
            ApplicantKind::Organisation => {
                let institution = *self.faker.pick(INSTITUTIONS);
                record.insert("applicantType".into(), json!("3"));
                record.insert(
                    "applicantName".into(),
                    json!(format!("{county_name}{institution}")),
                );
                record.insert("applicantCertType".into(), json!("001"));
                record.insert(
                    "applicantCertNo".into(),
                    json!(self.institution_uscc(&county)),
                );
            }
        }
        record.insert("contactName".into(), json!(person.name));
        record.insert("contactPhone".into(), json!(person.phone));
        record.insert("contactAddress".into(), json!(address));
        record.insert("acceptDeptName".into(), json!(dept.name));
        record.insert("acceptDeptCode".into(), json!(dept.uscc));
        record.insert("channel".into(), json!(channel));
        let cross_region = self.faker.chance(0.03);
        let mut entity = Entity {
            kind: RecordKind::ServiceCase,
            record,
            version: 0,
            step: Step::CaseAccept,
            dept,
            item: Some(item),
            topic: None,
            person: (person.name.clone(), person.phone.clone()),
            county: county_name,
            town_name,
            place: village
                .name()
                .trim_end_matches("居委会")
                .trim_end_matches("村委会")
                .to_owned(),
        };
        if channel == "3" {
            // At a window the case is accepted on the spot (收件即受理).
            let applied = self.clock - self.between(5 * MINUTE, 40 * MINUTE);
            entity.record.insert("caseStatus".into(), json!("2"));
            entity
                .record
                .insert("applyTime".into(), json!(format_time(applied)));
            self.accept(&mut entity);
        } else {
            entity.record.insert("caseStatus".into(), json!("1"));
            entity
                .record
                .insert("applyTime".into(), json!(format_time(self.clock)));
            entity
                .record
                .insert("promiseDays".into(), json!(item.promise_days));
            let d = self.between(30 * MINUTE, DAY);
            let at = self.clock.saturating_add(d);
            entity.step = Step::CaseAccept;
            let pushed = self.emit_case(&mut entity, cross_region);
            self.schedule(at, entity);
            return pushed;
        }
        let pushed = self.emit_case(&mut entity, cross_region);
        let finish = self.finish_time(&entity);
        entity.step = Step::CaseFinish;
        self.schedule(finish, entity);
        pushed
    }

    /// Writes the fields every case version has in the platform's order, then emits.
    fn emit_case(&mut self, entity: &mut Entity, cross_region: bool) -> PushRecord {
        let promise_days = entity.item.map_or(5, |i| i.promise_days);
        if !entity.record.contains_key("promiseDays") {
            entity
                .record
                .insert("promiseDays".into(), json!(promise_days));
        }
        if !entity.record.contains_key("crossRegion") {
            entity.record.insert(
                "crossRegion".into(),
                json!(if cross_region { "1" } else { "0" }),
            );
        }
        self.emit(entity)
    }

    /// Accepts a case now: 受理时间 and 承诺办结时间.
    fn accept(&mut self, entity: &mut Entity) {
        let days = entity.item.map_or(5, |i| i.promise_days);
        entity
            .record
            .insert("acceptTime".into(), json!(format_time(self.clock)));
        // Working days, roughly: seven calendar days per five working days.
        let promise = close_of_business(self.clock.saturating_add((days * 7 / 5).max(1) * DAY));
        entity
            .record
            .insert("promiseTime".into(), json!(format_time(promise)));
        entity.record.insert("promiseDays".into(), json!(days));
    }

    fn finish_time(&mut self, entity: &Entity) -> i64 {
        let days = entity.item.map_or(5, |i| i.promise_days).max(1);
        let low = 2 * HOUR;
        let high = (days * 7 / 5).max(1) * DAY;
        self.clock.saturating_add(self.between(low, high))
    }

    fn licence_no(&mut self, entity: &Entity) -> Option<String> {
        let item = entity.item?;
        let county_code = entity
            .record
            .get("areaCode")
            .and_then(Value::as_str)
            .and_then(|c| c.get(..6))
            .unwrap_or("610921")
            .to_owned();
        let year = format_with(self.clock, "%Y");
        let n: u32 = self.faker.rng().random_range(1..9_999_999);
        match item.licence {
            Licence::None => None,
            Licence::Food => Some(format!("JY1{county_code}{n:07}")),
            Licence::Business => Some(self.faker.uscc(&county_code, false)),
            Licence::RealEstate => Some(format!("陕({year}){}不动产权第{n:07}号", entity.county)),
            Licence::Construction => Some(format!(
                "{county_code}{}{:02}01",
                format_with(self.clock, "%Y%m%d"),
                n % 100
            )),
            Licence::RoadTransport => Some(format!("{county_code}{:06}", n % 1_000_000)),
            Licence::WaterDrawing => Some(format!("取水(陕)字[{year}]第{:04}号", n % 10_000)),
        }
    }

    /// The next change of an entity whose time has come.
    fn advance(&mut self, mut entity: Entity) -> PushRecord {
        match entity.step {
            Step::CaseAccept => {
                let denied = entity.item.is_some_and(|i| self.faker.chance(i.deny / 2.0));
                if denied {
                    entity.record.insert("caseStatus".into(), json!("3"));
                    return self.emit(&mut entity);
                }
                entity.record.insert("caseStatus".into(), json!("2"));
                self.accept(&mut entity);
                let pushed = self.emit(&mut entity);
                let finish = self.finish_time(&entity);
                entity.step = Step::CaseFinish;
                self.schedule(finish, entity);
                pushed
            }
            Step::CaseFinish => {
                let denied = entity.item.is_some_and(|i| self.faker.chance(i.deny / 2.0));
                entity.record.insert("caseStatus".into(), json!("6"));
                entity
                    .record
                    .insert("handleResult".into(), json!(if denied { "2" } else { "1" }));
                entity
                    .record
                    .insert("finishTime".into(), json!(format_time(self.clock)));
                if !denied {
                    if let Some(no) = self.licence_no(&entity) {
                        entity.record.insert("certificateNo".into(), json!(no));
                    }
                }
                let pushed = self.emit(&mut entity);
                if let Some(no) = entity.record.get("projectNo").and_then(Value::as_str) {
                    self.recent_cases.push_back((
                        no.to_owned(),
                        entity.dept.clone(),
                        entity.county.clone(),
                    ));
                    if self.recent_cases.len() > 64 {
                        self.recent_cases.pop_front();
                    }
                }
                if self.faker.chance(0.6) {
                    let d = self.between(10 * MINUTE, 2 * DAY);
                    let at = self.clock.saturating_add(d);
                    let rating = self.new_rating(&entity);
                    self.schedule(at, rating);
                }
                pushed
            }
            Step::Rated | Step::RatingRectifying | Step::RatingRectified | Step::RatingVerified => {
                self.rectify(entity)
            }
            Step::AppealAccept | Step::AppealReply | Step::AppealClose => self.appeal_step(entity),
        }
    }

    /// A rating of a completed case, pushed when its time comes.
    fn new_rating(&mut self, case: &Entity) -> Entity {
        let record = Map::new();
        let mut rating = Entity {
            kind: RecordKind::Rating,
            record,
            version: 0,
            step: Step::Rated,
            dept: case.dept.clone(),
            item: case.item,
            topic: None,
            person: case.person.clone(),
            county: case.county.clone(),
            town_name: case.town_name.clone(),
            place: case.place.clone(),
        };
        let get = |k: &str| case.record.get(k).cloned().unwrap_or(Value::Null);
        let channel = match case.record.get("channel").and_then(Value::as_str) {
            Some("1") => "1",
            Some("2") => "2",
            Some("3") if self.faker.chance(0.7) => "3",
            Some("3") => "4",
            _ => "6",
        };
        let score: i64 = match self.faker.rng().random_range(0..100) {
            0..=69 => 5,
            70..=84 => 4,
            85..=91 => 3,
            92..=96 => 2,
            _ => 1,
        };
        let (tags, comments) = match score {
            4..=5 => (GOOD_TAGS, GOOD_COMMENTS),
            3 => (FAIR_TAGS, FAIR_COMMENTS),
            _ => (BAD_TAGS, BAD_COMMENTS),
        };
        let n = self.faker.rng().random_range(1..=2usize.min(tags.len()));
        let mut chosen: Vec<&str> = Vec::new();
        while chosen.len() < n {
            let t = *self.faker.pick(tags);
            if !chosen.contains(&t) {
                chosen.push(t);
            }
        }
        let comment = *self.faker.pick(comments);
        // Placeholders until the rating is pushed: the record is built in full when its time comes.
        let r = &mut rating.record;
        r.insert("dataType".into(), json!("PJ"));
        r.insert("dataVersion".into(), json!(1));
        r.insert("areaCode".into(), get("areaCode"));
        r.insert("updateTime".into(), Value::Null);
        r.insert("evaluateNo".into(), Value::Null);
        r.insert("projectNo".into(), get("projectNo"));
        r.insert("taskCode".into(), get("taskCode"));
        r.insert("taskName".into(), get("taskName"));
        r.insert("deptName".into(), json!(case.dept.name));
        r.insert("deptCode".into(), json!(case.dept.uscc));
        r.insert("score".into(), json!(score));
        r.insert("evaluateTags".into(), json!(chosen));
        r.insert("evaluateContent".into(), json!(comment));
        r.insert("raterName".into(), json!(case.person.0));
        r.insert("raterPhone".into(), json!(case.person.1));
        r.insert("evaluateChannel".into(), json!(channel));
        r.insert("evaluateTime".into(), Value::Null);
        rating
    }

    /// Rating steps: the rating itself (version 1), then for bad ones 整改中 → 已整改 → 已回访核实.
    fn rectify(&mut self, mut rating: Entity) -> PushRecord {
        if rating.step == Step::Rated {
            self.rating_serial += 1;
            let number = format!(
                "PJ{}{:06}",
                format_with(self.clock, "%Y%m%d"),
                self.rating_serial % 1_000_000
            );
            rating.record.insert("evaluateNo".into(), json!(number));
            rating
                .record
                .insert("evaluateTime".into(), json!(format_time(self.clock)));
            let pushed = self.emit(&mut rating);
            let bad = rating
                .record
                .get("score")
                .and_then(Value::as_i64)
                .is_some_and(|s| s <= 2);
            if bad {
                let d = self.between(2 * HOUR, DAY);
                let at = self.clock.saturating_add(d);
                rating.step = Step::RatingRectifying;
                self.schedule(at, rating);
            }
            return pushed;
        }
        match rating.step {
            Step::RatingRectifying => {
                let deadline = close_of_business(self.clock.saturating_add(7 * DAY));
                rating.record.insert("rectifyStatus".into(), json!("2"));
                rating
                    .record
                    .insert("rectifyDeadline".into(), json!(format_time(deadline)));
                let pushed = self.emit(&mut rating);
                let d = self.between(DAY, 5 * DAY);
                let at = self.clock.saturating_add(d);
                rating.step = Step::RatingRectified;
                self.schedule(at, rating);
                pushed
            }
            Step::RatingRectified => {
                let text = *self.faker.pick(RECTIFICATIONS);
                rating.record.insert("rectifyStatus".into(), json!("3"));
                rating.record.insert("rectifyContent".into(), json!(text));
                rating
                    .record
                    .insert("rectifyTime".into(), json!(format_time(self.clock)));
                let pushed = self.emit(&mut rating);
                let d = self.between(HOUR, 2 * DAY);
                let at = self.clock.saturating_add(d);
                rating.step = Step::RatingVerified;
                self.schedule(at, rating);
                pushed
            }
            _ => {
                let satisfied = self.faker.chance(0.8);
                rating.record.insert("rectifyStatus".into(), json!("4"));
                rating.record.insert(
                    "revisitSatisfied".into(),
                    json!(if satisfied { "1" } else { "0" }),
                );
                self.emit(&mut rating)
            }
        }
    }

    fn new_appeal(&mut self) -> PushRecord {
        let topic = self.faker.pick_weighted(APPEAL_TOPICS, |t| t.weight);
        let village = self.faker.village();
        let county = village.code().get(..6).unwrap_or("610921").to_owned();
        let table = RegionTable::shaanxi();
        let county_name = table.name(&county).unwrap_or("本县").to_owned();
        let town_name = table
            .name(village.parent_code().unwrap_or_default())
            .unwrap_or("")
            .to_owned();
        let place = village
            .name()
            .trim_end_matches("居委会")
            .trim_end_matches("村委会")
            .to_owned();
        let related = if topic.about_case && !self.recent_cases.is_empty() {
            let i = self.faker.rng().random_range(0..self.recent_cases.len());
            self.recent_cases.get(i).cloned()
        } else {
            None
        };
        let dept = match (&related, topic.dept) {
            // A complaint about a case goes to the department that handled it.
            (Some((_, unit, _)), d) if d != Dept::ServiceCentre => unit.clone(),
            _ => self.unit(&county, topic.dept),
        };
        let person = self.faker.person();
        let months = self.faker.rng().random_range(2..=8);
        let amount = format!("{:.1}", self.faker.rng().random_range(0.8..9.0));
        let fill = |t: &str| {
            t.replace("{county}", &county_name)
                .replace("{place}", &format!("{town_name}{place}"))
                .replace("{months}", &months.to_string())
                .replace("{amount}", &amount)
        };
        let title = fill(self.faker.pick::<&str>(topic.titles));
        let content = fill(self.faker.pick::<&str>(topic.contents));
        // 1 PC, 2 秦务员APP, 3 小程序, 4 窗口.
        let channel = self.channel([20, 75, 95]);
        self.appeal_serial += 1;
        let number = format!(
            "SQ{}{:06}",
            format_with(self.clock, "%Y%m%d"),
            self.appeal_serial % 1_000_000
        );
        let mut record = self.new_record("SQ", village.code());
        record.insert("appealNo".into(), json!(number));
        record.insert("appealType".into(), json!(topic.kind));
        record.insert("appellantName".into(), json!(person.name));
        record.insert("appellantCertNo".into(), json!(person.cert_no));
        record.insert("appellantPhone".into(), json!(person.phone));
        record.insert(
            "anonymous".into(),
            json!(if topic.kind == "3" && self.faker.chance(0.3) {
                "1"
            } else {
                "0"
            }),
        );
        record.insert("title".into(), json!(title));
        record.insert("content".into(), json!(content));
        record.insert("targetDeptName".into(), json!(dept.name));
        if !dept.uscc.is_empty() && self.faker.chance(0.8) {
            record.insert("targetDeptCode".into(), json!(dept.uscc));
        }
        if let Some((case_no, _, _)) = &related {
            record.insert("relatedProjectNo".into(), json!(case_no));
        }
        record.insert("channel".into(), json!(channel));
        record.insert("appealStatus".into(), json!("1"));
        record.insert("submitTime".into(), json!(format_time(self.clock)));
        let mut entity = Entity {
            kind: RecordKind::Appeal,
            record,
            version: 0,
            step: Step::AppealAccept,
            dept,
            item: None,
            topic: Some(topic),
            person: (person.name, person.phone),
            county: county_name,
            town_name,
            place,
        };
        let pushed = self.emit(&mut entity);
        let d = self.between(HOUR, DAY);
        let at = self.clock.saturating_add(d);
        self.schedule(at, entity);
        pushed
    }

    /// Appeal steps: 已受理 (or 不予受理), 已答复, 已办结 with the appellant's satisfaction.
    fn appeal_step(&mut self, mut appeal: Entity) -> PushRecord {
        match appeal.step {
            Step::AppealAccept => {
                if self.faker.chance(0.05) {
                    appeal.record.insert("appealStatus".into(), json!("3"));
                    return self.emit(&mut appeal);
                }
                let deadline = close_of_business(self.clock.saturating_add(7 * DAY));
                appeal.record.insert("appealStatus".into(), json!("2"));
                appeal
                    .record
                    .insert("replyDeadline".into(), json!(format_time(deadline)));
                if self.faker.chance(0.1) {
                    // Transferred to the 12345 hotline to be handled there.
                    let ticket = format!(
                        "GD{}{:06}",
                        format_with(self.clock, "%Y%m%d"),
                        self.faker.rng().random_range(1..999_999)
                    );
                    appeal
                        .record
                        .insert("hotlineTicketNo".into(), json!(ticket));
                }
                let pushed = self.emit(&mut appeal);
                let d = self.between(6 * HOUR, 6 * DAY);
                let at = self.clock.saturating_add(d);
                appeal.step = Step::AppealReply;
                self.schedule(at, appeal);
                pushed
            }
            Step::AppealReply => {
                let reply = appeal.topic.map_or(
                    "您好，您反映的问题已转相关部门办理。",
                    |t| *self.faker.pick(t.replies),
                );
                appeal.record.insert("appealStatus".into(), json!("5"));
                appeal
                    .record
                    .insert("replyTime".into(), json!(format_time(self.clock)));
                appeal
                    .record
                    .insert("replyDeptName".into(), json!(appeal.dept.name));
                appeal.record.insert("replyContent".into(), json!(reply));
                let pushed = self.emit(&mut appeal);
                let d = self.between(2 * HOUR, 3 * DAY);
                let at = self.clock.saturating_add(d);
                appeal.step = Step::AppealClose;
                self.schedule(at, appeal);
                pushed
            }
            _ => {
                let satisfaction = match self.faker.rng().random_range(0..100) {
                    0..=74 => "1",
                    75..=91 => "2",
                    _ => "3",
                };
                appeal.record.insert("appealStatus".into(), json!("6"));
                appeal
                    .record
                    .insert("satisfaction".into(), json!(satisfaction));
                self.emit(&mut appeal)
            }
        }
    }
}

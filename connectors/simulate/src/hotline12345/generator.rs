//! [`WorkOrderGenerator`]: the hotline's tickets and every later version of them (受理, 派单, 办理, 回访, 办结),
//! deterministic for the options and the start time.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use rand::Rng;
use serde_json::{json, Map, Value};
use unsilo_schemas::validate::RegionTable;

use super::catalogue::{
    CountyUnits, Dept, Topic, Unit, CHANNELS, COMMENTS, EXTENSION_REASONS, TOPICS,
};
use super::{format_time, to_ms, Hotline12345Options, HOTLINE_UNIT, RATE_RANGE, TIME_SCALE_RANGE};
use crate::clock::{beijing, close_of_business, floor_second, DAY, HOUR, MINUTE, SECOND};
use crate::fake::Faker;
use crate::options::{clamped, SHARE};

/// What is wrong with a malformed ticket (the same in each of its versions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Defect {
    /// `sqnr` left out: the contract rejects it.
    MissingContent,
    /// `ldsj` written `2024-09-14 09:21:00`: the contract rejects it.
    DashedCallTime,
    /// `ldsj` on 30 February: the mapping rejects it (`bad_datetime`).
    ImpossibleCallDate,
    /// `sqlx` = `9`: the mapping rejects it (`bad_code`).
    UnknownAppealType,
    /// `xzqh` names no division: the validator rejects it.
    UnknownRegion,
}

const DEFECTS: [Defect; 5] = [
    Defect::MissingContent,
    Defect::DashedCallTime,
    Defect::ImpossibleCallDate,
    Defect::UnknownAppealType,
    Defect::UnknownRegion,
];

impl Defect {
    fn spoil(self, record: &mut Map<String, Value>) {
        let call_time = record
            .get("ldsj")
            .and_then(Value::as_str)
            .unwrap_or("20240101000000")
            .to_owned();
        match self {
            Defect::MissingContent => {
                record.shift_remove("sqnr");
            }
            Defect::DashedCallTime => {
                let t = &call_time;
                let dashed = if t.len() == 14 && t.is_ascii() {
                    format!(
                        "{}-{}-{} {}:{}:{}",
                        &t[0..4],
                        &t[4..6],
                        &t[6..8],
                        &t[8..10],
                        &t[10..12],
                        &t[12..14]
                    )
                } else {
                    "2024-01-01 00:00:00".to_owned()
                };
                record.insert("ldsj".into(), Value::String(dashed));
            }
            Defect::ImpossibleCallDate => {
                let t = &call_time;
                let impossible = if t.len() == 14 && t.is_ascii() {
                    format!("{}0230{}", &t[0..4], &t[8..14])
                } else {
                    "20240230000000".to_owned()
                };
                record.insert("ldsj".into(), Value::String(impossible));
            }
            Defect::UnknownAppealType => {
                record.insert("sqlx".into(), Value::String("9".into()));
            }
            Defect::UnknownRegion => {
                let code = record
                    .get("xzqh")
                    .and_then(Value::as_str)
                    .filter(|c| c.len() >= 6 && c.is_ascii())
                    .map_or("610921".to_owned(), |c| c[..6].to_owned());
                record.insert("xzqh".into(), Value::String(format!("{code}999999")));
            }
        }
    }
}

/// One version of a ticket, as the API returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct TicketVersion {
    /// The simulated time of the change (`gxsj`), in epoch milliseconds.
    pub updated_ms: i64,
    /// The raw work order, as the API returns it.
    pub record: Value,
}

/// One ticket's whole life: every version, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    /// 工单编号.
    pub ticket_no: String,
    /// Whether every version carries a defect (and must be rejected).
    pub malformed: bool,
    /// The versions, in time order, each at least a second after the previous one.
    pub versions: Vec<TicketVersion>,
}

/// Builds a ticket's versions.
struct Life {
    pub(super) record: Map<String, Value>,
    /// 派单记录, 退单申请, 延期申请: written into the record when not empty.
    dispatches: Vec<Map<String, Value>>,
    pub(super) returns: Vec<Value>,
    extensions: Vec<Map<String, Value>>,
    pub(super) at: i64,
    pub(super) versions: Vec<TicketVersion>,
    pub(super) defect: Option<Defect>,
}

impl Life {
    /// Moves the ticket's clock on by `delay` (at least a second) and returns the new time.
    fn step(&mut self, delay: i64) -> i64 {
        self.at = floor_second(self.at.saturating_add(delay.max(SECOND)));
        self.at
    }

    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.record.insert(key.to_owned(), value.into());
    }

    fn publish(&mut self, status: &str) {
        self.set("gdzt", status);
        let lists = [
            (
                "pdjl",
                self.dispatches
                    .iter()
                    .cloned()
                    .map(Value::Object)
                    .collect::<Vec<_>>(),
            ),
            ("tdjl", self.returns.clone()),
            (
                "yqsq",
                self.extensions.iter().cloned().map(Value::Object).collect(),
            ),
        ];
        for (key, items) in lists {
            if !items.is_empty() {
                self.set(key, Value::Array(items));
            }
        }
        // The update time comes last, as the vendor's API writes it.
        self.record.shift_remove("gxsj");
        self.set("gxsj", format_time(self.at));
        let mut record = self.record.clone();
        if let Some(defect) = self.defect {
            defect.spoil(&mut record);
        }
        self.versions.push(TicketVersion {
            updated_ms: self.at,
            record: Value::Object(record),
        });
    }
}

/// Where a dispatched ticket goes.
struct Routing {
    ticket_no: String,
    pub(super) urgent: bool,
    /// The unit that handles it.
    pub(super) lead: Unit,
    /// The town or street government that assists, if any.
    assist: Option<Unit>,
    /// The unit it goes to first by mistake, which returns it (退单), if any.
    misrouted: Option<Unit>,
    /// The grid event number when the grid platform gets it too.
    grid_event_no: Option<String>,
}

/// The text variables of one ticket.
struct Vars {
    pub(super) county: String,
    pub(super) town: String,
    pub(super) place: String,
    pub(super) n: u32,
    pub(super) days: u32,
    pub(super) months: u32,
    pub(super) amount: String,
    pub(super) year: i32,
}

impl Vars {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{county}", &self.county)
            .replace("{town}", &self.town)
            .replace("{place}", &self.place)
            .replace("{n}", &self.n.to_string())
            .replace("{days}", &self.days.to_string())
            .replace("{months}", &self.months.to_string())
            .replace("{amount}", &self.amount)
            .replace("{year}", &self.year.to_string())
    }
}

fn short_place(name: &str) -> String {
    name.trim_end_matches("居委会")
        .trim_end_matches("村委会")
        .trim_end_matches("委员会")
        .to_owned()
}

/// Generates the tickets of a run — deterministic for the options' seed, rate, time scale, malformed share and
/// counties, and the start time.
///
/// Ticket *n* (from 0) is called in at `start + n / rate × time_scale` seconds (plus a jitter within that gap),
/// so the same generator also tells when each ticket is created.
#[derive(Debug)]
pub struct WorkOrderGenerator {
    faker: Faker,
    start_ms: i64,
    /// Simulated milliseconds between two tickets.
    gap_ms: f64,
    created: u64,
    malformed_share: f64,
    units: BTreeMap<String, CountyUnits>,
}

impl WorkOrderGenerator {
    /// A generator for these options, whose first ticket is called in at `start`.
    pub fn new(options: &Hotline12345Options, start: DateTime<FixedOffset>) -> Self {
        let counties: Vec<&str> = options.counties.iter().map(String::as_str).collect();
        // Out-of-range options (`run` refuses them) are brought into range rather than panicking.
        let rate = clamped(options.rate, RATE_RANGE, 1.0);
        let scale = clamped(options.time_scale, TIME_SCALE_RANGE, 1.0);
        Self {
            faker: Faker::for_counties(options.seed, &counties),
            start_ms: floor_second(to_ms(&start)),
            gap_ms: 1000.0 * scale / rate,
            created: 0,
            malformed_share: clamped(options.malformed_share, SHARE, 0.0),
            units: BTreeMap::new(),
        }
    }

    /// How many tickets have been generated.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// The simulated time (epoch milliseconds) from which the next ticket may be called in.
    pub fn next_ticket_ms(&self) -> i64 {
        self.start_ms
            .saturating_add((self.created as f64 * self.gap_ms) as i64)
    }

    fn units(&mut self, county: &str) -> &CountyUnits {
        let faker = &mut self.faker;
        self.units
            .entry(county.to_owned())
            .or_insert_with(|| CountyUnits::new(faker, county))
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            low
        } else {
            self.faker.rng().random_range(low..high)
        }
    }

    /// The next ticket, with its whole life.
    pub fn next_ticket(&mut self) -> Ticket {
        let base = self.next_ticket_ms();
        self.created += 1;
        let serial = self.created;
        let jitter = self.between(0, (self.gap_ms as i64).max(1));
        let called = floor_second(base.saturating_add(jitter));

        let village = self.faker.village();
        let county_code = village.code().get(..6).unwrap_or("610921").to_owned();
        let town_code = village.parent_code().unwrap_or_default().to_owned();
        let table = RegionTable::shaanxi();
        let town_name = table.name(&town_code).unwrap_or("").to_owned();
        let (county_name, area_code) = {
            let u = self.units(&county_code);
            (u.name.clone(), u.area_code)
        };

        let topic = self.faker.pick_weighted(TOPICS, |t| t.weight);

        let year = DateTime::from_timestamp_millis(called)
            .map(|t| chrono::Datelike::year(&t.with_timezone(&beijing())))
            .unwrap_or(2024);
        let vars = Vars {
            county: county_name.clone(),
            town: town_name.clone(),
            place: short_place(village.name()),
            n: self.faker.rng().random_range(2..=12),
            days: self.faker.rng().random_range(3..=20),
            months: self.faker.rng().random_range(2..=8),
            amount: format!("{:.1}", self.faker.rng().random_range(0.8..15.0)),
            year: year + 1,
        };
        let defect = if self.faker.chance(self.malformed_share) {
            Some(*self.faker.pick(&DEFECTS))
        } else {
            None
        };

        let call_day = format_time(called)
            .get(..8)
            .unwrap_or("20240101")
            .to_owned();
        let ticket_no = format!("GD{call_day}{:06}", serial % 1_000_000);
        let kind = *self.faker.pick(topic.kinds);
        let channel = self.faker.pick_weighted(CHANNELS, |c| c.1).0;
        let caller = self.faker.person();
        let caller_name = if self.faker.chance(0.12) {
            String::new()
        } else {
            caller.name.clone()
        };
        let caller_phone = if self.faker.chance(0.2) {
            // Xi'an numbers have eight digits, Ankang's seven.
            let local = if area_code == "029" {
                self.faker.rng().random_range(80_000_000..90_000_000)
            } else {
                self.faker.rng().random_range(5_000_000..5_600_000)
            };
            format!("{area_code}-{local}")
        } else {
            caller.phone.clone()
        };
        let title = vars.fill(self.faker.pick::<&str>(topic.titles));
        let content = vars.fill(self.faker.pick::<&str>(topic.contents));
        let address = self.faker.address(village);
        let urgent = self.faker.chance(topic.urgent);

        let mut record = Map::new();
        record.insert("gdbh".into(), json!(ticket_no));
        record.insert("slqd".into(), json!(channel));
        record.insert("sqlx".into(), json!(kind));
        record.insert("ldsj".into(), json!(format_time(called)));
        record.insert("ldrxm".into(), json!(caller_name));
        record.insert("ldrdh".into(), json!(caller_phone));
        record.insert(
            "sfbm".into(),
            json!(if self.faker.chance(0.3) { "1" } else { "0" }),
        );
        record.insert("gdbt".into(), json!(title));
        record.insert("sqnr".into(), json!(content));
        record.insert("sqfl".into(), json!(topic.code));
        record.insert("sqflmc".into(), json!(topic.category));
        record.insert("xzqh".into(), json!(village.code()));
        record.insert("sqdz".into(), json!(address));
        if self.faker.chance(0.7) {
            let (lng, lat) = self.faker.coordinates(village);
            record.insert("jd".into(), json!(lng));
            record.insert("wd".into(), json!(lat));
        }
        record.insert("jjcd".into(), json!(if urgent { "2" } else { "1" }));

        let mut life = Life {
            record,
            dispatches: Vec::new(),
            returns: Vec::new(),
            extensions: Vec::new(),
            at: called,
            versions: Vec::new(),
            defect,
        };
        // 登记: the agent registers the call.
        let d = self.between(2 * MINUTE, 10 * MINUTE);
        life.step(d);
        life.publish("01");

        if self.faker.chance(topic.direct) {
            self.answer_directly(&mut life, topic, &vars);
        } else {
            let lead = self.units(&county_code).unit(topic.lead, &town_code);
            let town = self.units(&county_code).unit(Dept::Town, &town_code);
            let fallback = Unit {
                name: format!("{county_name}人民政府办公室"),
                uscc: String::new(),
            };
            let lead = lead.or_else(|| town.clone()).unwrap_or(fallback);
            let assist = if topic.town_assists && topic.lead != Dept::Town {
                town.clone()
            } else {
                None
            };
            // Sometimes the first dispatch goes to the wrong unit, which returns the ticket.
            let misrouted = if self.faker.chance(0.12) {
                let wrong = if topic.lead == Dept::Town {
                    self.units(&county_code)
                        .unit(Dept::CityManagement, &town_code)
                } else {
                    town.clone()
                };
                wrong.filter(|w| w.name != lead.name)
            } else {
                None
            };
            let transfer_to_grid = topic.on_site && self.faker.chance(0.1);
            let routing = Routing {
                ticket_no: ticket_no.clone(),
                urgent,
                lead,
                assist,
                misrouted,
                grid_event_no: transfer_to_grid
                    .then(|| format!("WG{call_day}{:04}", serial % 10_000)),
            };
            self.dispatch_and_handle(&mut life, topic, &vars, routing);
        }
        Ticket {
            ticket_no,
            malformed: defect.is_some(),
            versions: life.versions,
        }
    }

    /// A consultation (or praise) the agent answers at once: 直接答复办结, then maybe a callback, then archived.
    fn answer_directly(&mut self, life: &mut Life, topic: &Topic, vars: &Vars) {
        let d = self.between(3 * MINUTE, 25 * MINUTE);
        self.conclude(life, topic, vars, d, HOTLINE_UNIT.into(), "02", 0.6);
    }

    /// 办结 by `unit` after `delay`: the resolution and reply recorded and published as `status`; then, with
    /// probability `callback_chance`, the citizen is called back; the ticket is archived (`08`) within two days.
    #[allow(clippy::too_many_arguments)]
    fn conclude(
        &mut self,
        life: &mut Life,
        topic: &Topic,
        vars: &Vars,
        delay: i64,
        unit: String,
        status: &str,
        callback_chance: f64,
    ) {
        let t = life.step(delay);
        let (resolution, reply) = *self.faker.pick(topic.replies);
        life.set("bjsj", format_time(t));
        life.set("bjdw", unit);
        life.set("jjqk", resolution);
        life.set("bjnr", vars.fill(reply));
        life.publish(status);
        if self.faker.chance(callback_chance) {
            self.callback(life);
        }
        let d = self.between(HOUR, 2 * DAY);
        life.step(d);
        life.publish("08");
    }

    fn callback(&mut self, life: &mut Life) {
        let d = self.between(4 * HOUR, 2 * DAY);
        let t = life.step(d);
        life.set("hfsj", format_time(t));
        if self.faker.chance(0.85) {
            let roll = self.faker.rng().random_range(0..100);
            let satisfaction = match roll {
                0..=71 => "1",
                72..=89 => "2",
                _ => "3",
            };
            let comments = COMMENTS
                .iter()
                .find(|(code, _)| *code == satisfaction)
                .map_or(&[""][..], |(_, c)| *c);
            let comment = *self.faker.pick(comments);
            life.set("sfjt", "1");
            life.set("myd", satisfaction);
            life.set("hfyj", comment);
        } else {
            life.set("sfjt", "0");
        }
        life.publish("07");
    }

    fn dispatch_entry(
        ticket_no: &str,
        number: usize,
        unit: &Unit,
        lead: bool,
        at: i64,
        due: i64,
    ) -> Map<String, Value> {
        let mut entry = Map::new();
        let pdid = format!("PD{}-{number}", ticket_no.trim_start_matches("GD"));
        entry.insert("pdid".into(), json!(pdid));
        entry.insert("cbdw".into(), json!(unit.name));
        if !unit.uscc.is_empty() {
            entry.insert("cbdwdm".into(), json!(unit.uscc));
        }
        entry.insert("sfzb".into(), json!(if lead { "1" } else { "0" }));
        entry.insert("pdsj".into(), json!(format_time(at)));
        entry.insert("blsx".into(), json!(format_time(due)));
        entry.insert("sfth".into(), json!("0"));
        entry
    }

    /// Dispatches (派单) to the lead unit and the assisting one; returns the new dispatches' indices.
    fn dispatch(
        &mut self,
        life: &mut Life,
        ticket_no: &str,
        urgent: bool,
        lead: &Unit,
        assist: Option<&Unit>,
    ) -> Vec<usize> {
        let d = self.between(10 * MINUTE, 90 * MINUTE);
        let t = life.step(d);
        let days = if urgent {
            2
        } else {
            self.faker.rng().random_range(3..=7)
        };
        let due = close_of_business(t.saturating_add(days * DAY));
        let mut indices = Vec::new();
        for (unit, is_lead) in std::iter::once((lead, true)).chain(assist.map(|a| (a, false))) {
            let n = life.dispatches.len();
            life.dispatches.push(Self::dispatch_entry(
                ticket_no,
                n + 1,
                unit,
                is_lead,
                t,
                due,
            ));
            indices.push(n);
        }
        indices
    }

    /// The units sign for their dispatches (签收), a few minutes apart.
    fn sign(&mut self, life: &mut Life, indices: &[usize]) {
        let d = self.between(20 * MINUTE, 6 * HOUR);
        let mut t = life.step(d);
        for (k, i) in indices.iter().enumerate() {
            if k > 0 {
                t = life.step(7 * MINUTE);
            }
            if let Some(entry) = life.dispatches.get_mut(*i) {
                entry.insert("qssj".into(), json!(format_time(t)));
            }
        }
        life.publish("04");
    }

    fn pdid(life: &Life, index: Option<&usize>) -> Value {
        index
            .and_then(|i| life.dispatches.get(*i))
            .and_then(|e| e.get("pdid"))
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn dispatch_and_handle(
        &mut self,
        life: &mut Life,
        topic: &Topic,
        vars: &Vars,
        routing: Routing,
    ) {
        let Routing {
            ticket_no,
            urgent,
            lead,
            assist,
            misrouted,
            grid_event_no,
        } = routing;
        let ticket_no = ticket_no.as_str();
        if let Some(wrong) = misrouted {
            // 派单 to the wrong unit, which signs, asks to return it (退单), and the centre approves: the
            // approved return is written on the dispatch itself, the request in 退单申请.
            let indices = self.dispatch(life, ticket_no, urgent, &wrong, None);
            life.publish("03");
            self.sign(life, &indices);
            let d = self.between(HOUR, 6 * HOUR);
            let asked = life.step(d);
            let d = self.between(20 * MINUTE, 3 * HOUR);
            let approved = life.step(d);
            let reason = format!("该诉求属{}职责范围，申请退回改派。", lead.name);
            let pdid = Self::pdid(life, indices.first());
            if let Some(entry) = indices.first().and_then(|i| life.dispatches.get_mut(*i)) {
                entry.insert("sfth".into(), json!("1"));
                entry.insert("thsj".into(), json!(format_time(approved)));
                entry.insert("thyy".into(), json!(reason));
            }
            life.returns.push(json!({
                "pdid": pdid,
                "sqdw": wrong.name,
                "sqsj": format_time(asked),
                "tdyy": reason,
                "shjg": "1",
                "shsj": format_time(approved),
                "shyj": format!("同意退回，改派{}办理。", lead.name),
            }));
            life.publish("05");
        }
        let indices = self.dispatch(life, ticket_no, urgent, &lead, assist.as_ref());
        if let Some(no) = grid_event_no {
            life.set("wgsjbh", no);
        }
        life.publish("03");
        self.sign(life, &indices);

        // Sometimes the lead asks to return it and the centre refuses (不予退回).
        if self.faker.chance(0.05) {
            let d = self.between(HOUR, 8 * HOUR);
            let asked = life.step(d);
            let d = self.between(30 * MINUTE, 4 * HOUR);
            let decided = life.step(d);
            let pdid = Self::pdid(life, indices.first());
            life.returns.push(json!({
                "pdid": pdid,
                "sqdw": lead.name,
                "sqsj": format_time(asked),
                "tdyy": "诉求地址不详，无法核查，申请退回。",
                "shjg": "2",
                "shsj": format_time(decided),
                "shyj": "来电人已说明具体位置，请承办单位实地排查，不予退回。",
            }));
            life.publish("04");
        }

        // Sometimes an extension (延期): asked, then decided.
        if self.faker.chance(0.1) {
            let d = self.between(DAY, 3 * DAY);
            let asked = life.step(d);
            let days: i64 = self.faker.rng().random_range(3..=10);
            let reason = *self.faker.pick(EXTENSION_REASONS);
            let mut request = Map::new();
            request.insert("sqdw".into(), json!(lead.name));
            request.insert("sqsj".into(), json!(format_time(asked)));
            request.insert("sqts".into(), json!(days));
            request.insert("yqly".into(), json!(reason));
            request.insert("shjg".into(), json!("0"));
            life.extensions.push(request);
            life.publish("04");
            let d = self.between(2 * HOUR, 8 * HOUR);
            let decided = life.step(d);
            let approve = self.faker.chance(0.8);
            if let Some(last) = life.extensions.last_mut() {
                last.insert(
                    "pzts".into(),
                    if approve { json!(days) } else { Value::Null },
                );
                last.insert("shjg".into(), json!(if approve { "1" } else { "2" }));
                last.insert("shsj".into(), json!(format_time(decided)));
            }
            life.publish("04");
        }

        // 办结.
        let d = self.between(6 * HOUR, 4 * DAY);
        self.conclude(life, topic, vars, d, lead.name.clone(), "06", 0.9);
    }
}

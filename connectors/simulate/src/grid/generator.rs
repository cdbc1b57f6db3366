//! [`GridGenerator`]: the simulated grid platform itself, which makes every record deterministically from a seed.

use std::collections::{HashMap, VecDeque};

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use rand::Rng;
use serde_json::{json, Map, Value};
use unsilo_schemas::validate::{Region, RegionTable};

use super::reference::{
    app_time, birth_year, compact_time, minutes, numeral, provider_uscc, village_display,
    EventKind, DEDICATED_PLACES, EVENT_KINDS, RED_TAGS, UNMAPPED_MSG_TYPES, YELLOW_TAGS,
};
use super::state::{County, Grid, Household, Member, OpenEvent, Pending, Resident, Step, PATHS};
use super::{GeneratedRecord, Malformation};
use crate::fake::{Faker, Person, DEFAULT_COUNTIES};

/// Villages per county whose grids the simulator sets up.
const VILLAGES_PER_COUNTY: usize = 3;
/// At most this many events are open (not yet closed) at once.
const MAX_OPEN_EVENTS: usize = 200;
/// Share of records, once set up, that report a new event (the rest move open events on, or update the registry).
const NEW_EVENT_SHARE: f64 = 0.2;
/// Share of records, once set up, that are a new version of a household, resident or grid.
const REGISTRY_UPDATE_SHARE: f64 = 0.05;

/// The grid platform's data, generated deterministically from a seed.
///
/// ```
/// use unsilo_simulate::grid::GridGenerator;
///
/// let mut a = GridGenerator::new(7, &["610921"], 0.0);
/// let mut b = GridGenerator::new(7, &["610921"], 0.0);
/// let first = a.next_record();
/// assert_eq!(first, b.next_record());
/// assert_eq!(first.record["msgType"], "GRID");
/// ```
#[derive(Debug)]
pub struct GridGenerator {
    faker: Faker,
    malformed_share: f64,
    clock: NaiveDateTime,
    counties: Vec<County>,
    grids: Vec<Grid>,
    households: Vec<Household>,
    pending: VecDeque<Pending>,
    open: Vec<OpenEvent>,
    event_serials: HashMap<String, u32>,
    org_codes: HashMap<String, String>,
    staff: HashMap<String, String>,
    total_weight: u32,
}

impl GridGenerator {
    /// A generator for the given 6-digit county codes (unknown ones are ignored; none known means 汉阴县 and
    /// 阎良区), with the given share (0.0–1.0) of malformed records.
    pub fn new(seed: u64, counties: &[&str], malformed_share: f64) -> Self {
        let table = RegionTable::shaanxi();
        let mut known: Vec<&str> = counties
            .iter()
            .copied()
            .filter(|c| table.villages_of_county(c).next().is_some())
            .collect();
        known.dedup();
        if known.is_empty() {
            known = DEFAULT_COUNTIES.to_vec();
        }
        let start = NaiveDate::from_ymd_opt(2024, 6, 3)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .unwrap_or_default();
        let mut g = Self {
            faker: Faker::for_counties(seed, &known),
            malformed_share: if malformed_share.is_finite() {
                malformed_share.clamp(0.0, 1.0)
            } else {
                0.0
            },
            clock: start,
            counties: Vec::new(),
            grids: Vec::new(),
            households: Vec::new(),
            pending: VecDeque::new(),
            open: Vec::new(),
            event_serials: HashMap::new(),
            org_codes: HashMap::new(),
            staff: HashMap::new(),
            total_weight: EVENT_KINDS.iter().map(|k| k.weight).sum(),
        };
        for county in known {
            g.set_up_county(county);
        }
        g
    }

    /// The next record (deterministic from the seed).
    pub fn next_record(&mut self) -> GeneratedRecord {
        self.clock += chrono::Duration::seconds(self.faker.rng().random_range(10..=120));
        let record = self.next_clean();
        if self.faker.chance(self.malformed_share) {
            let which = *self.faker.pick(&Malformation::ALL);
            let mut record = record;
            self.malform(&mut record, which);
            GeneratedRecord {
                record,
                malformation: Some(which),
            }
        } else {
            GeneratedRecord {
                record,
                malformation: None,
            }
        }
    }

    /// The next `n` records.
    pub fn next_batch(&mut self, n: usize) -> Vec<GeneratedRecord> {
        (0..n).map(|_| self.next_record()).collect()
    }

    // ---- set-up: grids, households, residents ----

    fn set_up_county(&mut self, code: &str) {
        let table = RegionTable::shaanxi();
        let chain: Vec<String> = table
            .chain(&format!("{code:0<12}"))
            .iter()
            .map(|r| r.name().to_owned())
            .collect();
        let name = chain.last().cloned().unwrap_or_else(|| code.to_owned());
        let county = self.counties.len();
        self.counties.push(County {
            code: code.to_owned(),
            name,
            provider: provider_uscc(code),
            prefix: chain.concat(),
        });
        let villages: Vec<&'static Region> = table.villages_of_county(code).collect();
        if villages.is_empty() {
            return;
        }
        let mut chosen: Vec<&'static Region> = Vec::new();
        for _ in 0..VILLAGES_PER_COUNTY * 4 {
            if chosen.len() == VILLAGES_PER_COUNTY {
                break;
            }
            let v = *self.faker.pick(&villages);
            if !chosen.iter().any(|c| c.code() == v.code()) {
                chosen.push(v);
            }
        }
        for (i, village) in chosen.iter().enumerate() {
            let grids = self.faker.rng().random_range(1..=3usize);
            let leader = Member {
                id: format!("WGZ{}", village.code()),
                name: self.faker.name(),
                phone: self.faker.phone(),
            };
            for serial in 1..=grids {
                let g = self.new_grid(county, village, serial, "1", Some(leader.clone()));
                self.pending.push_back(Pending::Grid(g));
                let households = self.faker.rng().random_range(5..=9usize);
                for _ in 0..households {
                    let h = self.new_household(g);
                    self.pending.push_back(Pending::Household(h));
                    for r in 0..self.households[h].residents.len() {
                        self.pending.push_back(Pending::Resident(h, r));
                    }
                }
            }
            if i == 0 {
                // One dedicated grid (专属网格: a school, a clinic, an industrial park) per county.
                let g = self.new_grid(county, village, 20 + grids, "2", None);
                self.pending.push_back(Pending::Grid(g));
            }
        }
    }

    fn new_grid(
        &mut self,
        county: usize,
        village: &'static Region,
        serial: usize,
        kind: &'static str,
        leader: Option<Member>,
    ) -> usize {
        let table = RegionTable::shaanxi();
        let village_name = village_display(village.name());
        let town_code = village.parent_code().unwrap_or_default().to_owned();
        let town_name = table.name(&town_code).unwrap_or_default().to_owned();
        let code = format!("{}{serial:03}", village.code());
        let name = if kind == "2" {
            let place = *self.faker.pick(DEDICATED_PLACES);
            format!("{town_name}{village_name}{place}专属网格")
        } else {
            format!("{town_name}{village_name}第{}网格", numeral(serial))
        };
        let centre = self.faker.coordinates(village);
        let half = self.faker.rng().random_range(0.0008..0.004);
        let (household_count, population) = if kind == "2" {
            (0, 0)
        } else {
            let hs = self.faker.rng().random_range(18..=32u32);
            (hs, hs * 3 + self.faker.rng().random_range(0..=hs))
        };
        let established = NaiveDate::from_ymd_opt(
            self.faker.rng().random_range(2016..=2021),
            self.faker.rng().random_range(1..=12),
            self.faker.rng().random_range(1..=28),
        )
        .unwrap_or_default();
        let member = Member {
            id: format!("WGY{code}"),
            name: self.faker.name(),
            phone: self.faker.phone(),
        };
        self.grids.push(Grid {
            county,
            code,
            name,
            kind,
            village,
            village_name,
            town_code,
            town_name,
            leader,
            member,
            centre,
            half,
            household_count,
            population,
            established,
            households: Vec::new(),
        });
        self.grids.len() - 1
    }

    /// A person born in `years`, of `gender` (`1`/`2`) if given: redrawn a few times, then taken as it is.
    fn person_born(
        &mut self,
        years: std::ops::RangeInclusive<i32>,
        gender: Option<&str>,
    ) -> Person {
        let mut p = self.faker.person();
        for _ in 0..40 {
            if years.contains(&birth_year(&p)) && gender.is_none_or(|g| g == p.gender_code) {
                break;
            }
            p = self.faker.person();
        }
        p
    }

    fn new_household(&mut self, grid: usize) -> usize {
        let serial = self.grids[grid].households.len() + 1;
        let id = format!("HH{}{serial:04}", self.grids[grid].code);
        let group = self.faker.rng().random_range(1..=12u32);
        let house = self.faker.rng().random_range(1..=80u32);
        let g = &self.grids[grid];
        let address = format!(
            "{}{}{}{group}组{house}号",
            self.counties[g.county].prefix, g.town_name, g.village_name
        );
        let registered_address = format!(
            "陕西省{}{}{}{group}组{house}号",
            self.counties[g.county].name, g.town_name, g.village_name
        );
        let (lng, lat) = g.centre;
        let half = g.half;
        let roll: f64 = self.faker.rng().random();
        let care = if roll < 0.10 {
            "3"
        } else if roll < 0.35 {
            "2"
        } else {
            "1"
        };
        let residence = {
            let r: f64 = self.faker.rng().random();
            if r < 0.85 {
                "1"
            } else if r < 0.95 {
                "2"
            } else {
                "3"
            }
        };
        let mut tags: Vec<&'static str> = Vec::new();
        match care {
            "3" => {
                tags.push(*self.faker.pick(RED_TAGS));
                if self.faker.chance(0.5) {
                    let t = *self.faker.pick(RED_TAGS);
                    if !tags.contains(&t) {
                        tags.push(t);
                    }
                }
            }
            "2" => tags.push(*self.faker.pick(YELLOW_TAGS)),
            _ => {
                if self.faker.chance(0.05) {
                    tags.push("军属户");
                }
            }
        }

        // Members: a head, often a spouse, children, sometimes a parent or a grandchild.
        let alone = care == "2" && tags.contains(&"独居老人户");
        let head_male = self.faker.chance(if alone { 0.4 } else { 0.8 });
        let head_years = if alone { 1940..=1955 } else { 1940..=1990 };
        let head = self.person_born(head_years, Some(if head_male { "1" } else { "2" }));
        let head_year = birth_year(&head);
        let surname: String = head.name.chars().take(1).collect();
        let mut members: Vec<(Person, &'static str)> = vec![(head, "02")];
        if !alone {
            if self.faker.chance(0.8) {
                let spouse = self.person_born(
                    head_year - 5..=head_year + 5,
                    Some(if head_male { "2" } else { "1" }),
                );
                members.push((spouse, "10"));
            }
            let children = self.faker.rng().random_range(0..=2usize);
            for _ in 0..children {
                let mut child = self.person_born(head_year + 20..=head_year + 35, None);
                child.name = format!(
                    "{surname}{}",
                    child.name.chars().skip(1).collect::<String>()
                );
                let relation = if child.gender_code == "1" { "20" } else { "30" };
                members.push((child, relation));
            }
            if head_year >= 1975 && self.faker.chance(0.3) {
                let parent = self.person_born(head_year - 32..=head_year - 20, None);
                members.push((parent, "50"));
            }
            if head_year <= 1965 && self.faker.chance(0.3) {
                let mut grandchild = self.person_born(2008..=2020, None);
                grandchild.name = format!(
                    "{surname}{}",
                    grandchild.name.chars().skip(1).collect::<String>()
                );
                members.push((grandchild, "40"));
            }
        }
        let phone = if self.faker.chance(0.1) {
            String::new()
        } else {
            members
                .first()
                .map(|(p, _)| p.phone.clone())
                .unwrap_or_default()
        };
        let mut residents = Vec::with_capacity(members.len());
        for (i, (person, relation)) in members.into_iter().enumerate() {
            let age = 2024 - birth_year(&person);
            let marital = match relation {
                "02" if alone => "30",
                "02" | "10" | "50" => "20",
                _ if age >= 24 && self.faker.chance(0.6) => "20",
                _ => "10",
            };
            let mut special: Vec<&'static str> = Vec::new();
            match care {
                "3" if i == 0 => {
                    special.push(*self.faker.pick(&["01", "02", "12", "07"]));
                }
                "3" if self.faker.chance(0.3) => special.push("03"),
                "2" if age >= 70 && alone => special.push("04"),
                "2" if age < 16 && tags.contains(&"留守户") => special.push("05"),
                "2" if age >= 65 && tags.contains(&"留守户") => special.push("06"),
                "2" if tags.contains(&"残疾人户") && i == 0 => special.push("03"),
                _ => {}
            }
            if (20..=60).contains(&age) && self.faker.chance(0.03) {
                special.push(*self.faker.pick(&["08", "09", "11"]));
            }
            let (cert_type, cert_no, population_type) = if self.faker.chance(0.01) {
                let permit = format!("H{:08}", self.faker.rng().random_range(0..100_000_000u32));
                ("516", permit, "3")
            } else if self.faker.chance(0.05) {
                (
                    "111",
                    person.cert_no.clone(),
                    "2", // a floating resident
                )
            } else {
                ("111", person.cert_no.clone(), "1")
            };
            let status = if self.faker.chance(0.02) { "2" } else { "1" };
            residents.push(Resident {
                id: format!("RK{}{serial:04}{:02}", self.grids[grid].code, i + 1),
                cert_type,
                cert_no,
                relation,
                marital,
                population_type,
                registered_address: if population_type == "1" {
                    registered_address.clone()
                } else {
                    String::new()
                },
                special,
                status,
                person,
            });
        }
        let location = (
            ((lng + self.faker.rng().random_range(-half..half)) * 1e6).round() / 1e6,
            ((lat + self.faker.rng().random_range(-half..half)) * 1e6).round() / 1e6,
        );
        self.households.push(Household {
            grid,
            id,
            group,
            address,
            care,
            residence,
            tags,
            phone,
            location,
            residents,
        });
        let h = self.households.len() - 1;
        self.grids[grid].households.push(h);
        h
    }

    // ---- records ----

    fn envelope(&mut self, msg_type: &str, county: usize) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("msgType".into(), json!(msg_type));
        let id: u128 = self.faker.rng().random();
        m.insert("msgId".into(), json!(format!("{id:032x}")));
        m.insert("tgdwdm".into(), json!(self.counties[county].provider));
        m
    }

    fn grid_json(&mut self, g: usize) -> Value {
        let county = self.grids[g].county;
        let mut m = self.envelope("GRID", county);
        let grid = &self.grids[g];
        let (lng, lat) = grid.centre;
        let h = grid.half;
        let r4 = |x: f64| (x * 1e4).round() / 1e4;
        let area = (2.0 * h * 111.32 * lat.to_radians().cos()) * (2.0 * h * 110.57);
        m.insert("wgbm".into(), json!(grid.code));
        m.insert("wgmc".into(), json!(grid.name));
        m.insert("wglx".into(), json!(grid.kind));
        m.insert("sqdm".into(), json!(grid.village.code()));
        if let Some(leader) = &grid.leader {
            m.insert("wgz".into(), leader.to_json());
        }
        m.insert("wgy".into(), grid.member.to_json());
        m.insert("hs".into(), json!(grid.household_count.to_string()));
        m.insert("rks".into(), json!(grid.population.to_string()));
        if grid.kind == "1" {
            m.insert(
                "wgfw".into(),
                json!(format!(
                    "POLYGON(({a} {b},{c} {b},{c} {d},{a} {d},{a} {b}))",
                    a = r4(lng - h),
                    b = r4(lat - h),
                    c = r4(lng + h),
                    d = r4(lat + h)
                )),
            );
        }
        m.insert("zxjd".into(), json!(format!("{lng:.6}")));
        m.insert("zxwd".into(), json!(format!("{lat:.6}")));
        m.insert("zbxt".into(), json!("4"));
        m.insert("mj".into(), json!(format!("{area:.3}")));
        m.insert("wgzt".into(), json!("1"));
        m.insert(
            "hdrq".into(),
            json!(grid.established.format("%Y-%m-%d").to_string()),
        );
        m.insert("gxsj".into(), json!(compact_time(self.clock)));
        Value::Object(m)
    }

    fn household_json(&mut self, h: usize) -> Value {
        let county = self.grids[self.households[h].grid].county;
        let mut m = self.envelope("HOUSEHOLD", county);
        let hh = &self.households[h];
        let grid = &self.grids[hh.grid];
        let head = hh.residents.first();
        m.insert("hhbh".into(), json!(hh.id));
        m.insert("wgbm".into(), json!(grid.code));
        m.insert("sqdm".into(), json!(grid.village.code()));
        m.insert("zz".into(), json!(hh.address));
        m.insert(
            "hzxm".into(),
            json!(head.map(|r| r.person.name.as_str()).unwrap_or_default()),
        );
        m.insert(
            "hzsfzh".into(),
            json!(head.map(|r| r.person.cert_no.as_str()).unwrap_or_default()),
        );
        m.insert("lxdh".into(), json!(hh.phone));
        m.insert(
            "jtrks".into(),
            json!(hh
                .residents
                .iter()
                .filter(|r| r.status == "1")
                .count()
                .to_string()),
        );
        m.insert("gxdj".into(), json!(hh.care));
        m.insert("rhzt".into(), json!(hh.residence));
        m.insert("hbq".into(), json!(hh.tags.join(",")));
        m.insert("jd".into(), json!(format!("{:.6}", hh.location.0)));
        m.insert("wd".into(), json!(format!("{:.6}", hh.location.1)));
        m.insert("zbxt".into(), json!("4"));
        m.insert("gxsj".into(), json!(compact_time(self.clock)));
        Value::Object(m)
    }

    fn resident_json(&mut self, h: usize, r: usize) -> Value {
        let county = self.grids[self.households[h].grid].county;
        let mut m = self.envelope("RESIDENT", county);
        let hh = &self.households[h];
        let grid = &self.grids[hh.grid];
        let Some(res) = hh.residents.get(r) else {
            return Value::Object(m);
        };
        let ethnicity = match res.person.ethnicity {
            "回族" => "03",
            "满族" => "11",
            "蒙古族" => "02",
            _ => "01",
        };
        m.insert("rybh".into(), json!(res.id));
        m.insert("zjlx".into(), json!(res.cert_type));
        m.insert("zjhm".into(), json!(res.cert_no));
        m.insert("xm".into(), json!(res.person.name));
        m.insert("xb".into(), json!(res.person.gender_code));
        m.insert("csrq".into(), json!(res.person.birth));
        m.insert("mz".into(), json!(ethnicity));
        let phone = if 2024 - birth_year(&res.person) >= 16 {
            res.person.phone.as_str()
        } else {
            ""
        };
        m.insert("lxdh".into(), json!(phone));
        m.insert("hhbh".into(), json!(hh.id));
        m.insert("yhzgx".into(), json!(res.relation));
        m.insert("hyzk".into(), json!(res.marital));
        m.insert("rklx".into(), json!(res.population_type));
        m.insert("hjdz".into(), json!(res.registered_address));
        m.insert("xzz".into(), json!(hh.address));
        m.insert("wgbm".into(), json!(grid.code));
        m.insert("sqdm".into(), json!(grid.village.code()));
        m.insert("tsrq".into(), json!(res.special));
        m.insert("ryzt".into(), json!(res.status));
        m.insert("gxsj".into(), json!(compact_time(self.clock)));
        Value::Object(m)
    }

    fn next_clean(&mut self) -> Value {
        if let Some(p) = self.pending.pop_front() {
            return match p {
                Pending::Grid(g) => self.grid_json(g),
                Pending::Household(h) => self.household_json(h),
                Pending::Resident(h, r) => self.resident_json(h, r),
            };
        }
        let roll: f64 = self.faker.rng().random();
        if roll < REGISTRY_UPDATE_SHARE && !self.households.is_empty() {
            return self.registry_update();
        }
        if self.open.is_empty()
            || (self.open.len() < MAX_OPEN_EVENTS && roll < REGISTRY_UPDATE_SHARE + NEW_EVENT_SHARE)
        {
            if let Some(e) = self.new_event() {
                self.open.push(e);
            }
        }
        if self.open.is_empty() {
            // No grid with households at all (cannot happen with real counties): a grid record instead.
            let g = self.faker.rng().random_range(0..self.grids.len().max(1));
            return if self.grids.is_empty() {
                json!({ "msgType": "GRID" })
            } else {
                self.grid_json(g)
            };
        }
        // A new event is sent at once (its report); otherwise an open event moves on by one step.
        let i = if self.open.last().is_some_and(|e| e.sent == 0) {
            self.open.len() - 1
        } else {
            self.faker.rng().random_range(0..self.open.len())
        };
        let event = &mut self.open[i];
        event.sent += 1;
        let record = render_event(event);
        if event.sent >= event.steps.len() {
            self.open.swap_remove(i);
        }
        record
    }

    /// A new version of a household (re-tagged care level), a resident (new phone, moved out) or a grid (new
    /// grid member).
    fn registry_update(&mut self) -> Value {
        let h = self.faker.rng().random_range(0..self.households.len());
        let roll: f64 = self.faker.rng().random();
        if roll < 0.6 {
            // 关心等级 is re-assessed: mostly one step towards green, sometimes up.
            let care = self.households[h].care;
            let new = match care {
                "3" => "2",
                "2" => *self.faker.pick(&["1", "3"]),
                _ => "2",
            };
            let hh = &mut self.households[h];
            hh.care = new;
            match new {
                "3" if !hh.tags.contains(&"监测户") => hh.tags.push("监测户"),
                "1" => hh.tags.retain(|t| *t == "脱贫户" || *t == "军属户"),
                _ => {}
            }
            self.household_json(h)
        } else if roll < 0.9 && !self.households[h].residents.is_empty() {
            let r = self
                .faker
                .rng()
                .random_range(0..self.households[h].residents.len());
            let phone = self.faker.phone();
            let moved = self.faker.chance(0.1);
            let res = &mut self.households[h].residents[r];
            res.person.phone = phone;
            if moved && r > 0 {
                res.status = "2";
            }
            self.resident_json(h, r)
        } else {
            let g = self.households[h].grid;
            let member = Member {
                id: self.grids[g].member.id.clone(),
                name: self.faker.name(),
                phone: self.faker.phone(),
            };
            self.grids[g].member = member;
            self.grid_json(g)
        }
    }

    fn org_code(&mut self, county: usize, org: &str) -> String {
        if let Some(c) = self.org_codes.get(org) {
            return c.clone();
        }
        let code = self.faker.uscc(&self.counties[county].code, true);
        self.org_codes.insert(org.to_owned(), code.clone());
        code
    }

    fn operator(&mut self, org: &str) -> String {
        if let Some(n) = self.staff.get(org) {
            return n.clone();
        }
        let name = self.faker.name();
        self.staff.insert(org.to_owned(), name.clone());
        name
    }

    fn pick_kind(&mut self) -> &'static EventKind {
        let mut n = self.faker.rng().random_range(0..self.total_weight.max(1));
        for k in EVENT_KINDS {
            if n < k.weight {
                return k;
            }
            n -= k.weight;
        }
        &EVENT_KINDS[0]
    }

    fn new_event(&mut self) -> Option<OpenEvent> {
        let base_grids: Vec<usize> = (0..self.grids.len())
            .filter(|g| !self.grids[*g].households.is_empty())
            .collect();
        if base_grids.is_empty() {
            return None;
        }
        let g = *self.faker.pick(&base_grids);
        let kind = self.pick_kind();
        let county = self.grids[g].county;
        let county_name = self.counties[county].name.clone();

        // Parties: residents of the grid (their household linked), or a passer-by without an ID number.
        let mut parties: Vec<Value> = Vec::new();
        let mut household_ids: Vec<String> = Vec::new();
        let mut resident_ids: Vec<String> = Vec::new();
        let mut first_household: Option<usize> = None;
        for p in 0..kind.parties {
            let stranger = p == 1 && self.faker.chance(0.3);
            if stranger {
                let person = self.faker.person();
                let phone = if self.faker.chance(0.5) {
                    person.phone
                } else {
                    String::new()
                };
                parties.push(
                    json!({ "xm": person.name, "sfzh": "", "lxdh": phone, "js": kind.roles[p] }),
                );
                continue;
            }
            let hs = self.grids[g].households.clone();
            let h = *self.faker.pick(&hs);
            let n = self.households[h].residents.len();
            if n == 0 {
                continue;
            }
            // Parties are adults (born 2006 or earlier); the head if the household has no other.
            let adults: Vec<usize> = (0..n)
                .filter(|r| birth_year(&self.households[h].residents[*r].person) <= 2006)
                .collect();
            let r = if adults.is_empty() {
                0
            } else {
                *self.faker.pick(&adults)
            };
            let res = &self.households[h].residents[r];
            let cert = if res.cert_type == "111" {
                res.cert_no.clone()
            } else {
                String::new()
            };
            parties.push(json!({
                "xm": res.person.name,
                "sfzh": cert,
                "lxdh": res.person.phone,
                "js": kind.roles[p],
            }));
            if !household_ids.contains(&self.households[h].id) {
                household_ids.push(self.households[h].id.clone());
            }
            resident_ids.push(res.id.clone());
            first_household.get_or_insert(h);
        }

        let grid = &self.grids[g];
        let group = match first_household {
            Some(h) => self.households[h].group,
            None => self.faker.rng().random_range(1..=12u32),
        };
        let place = match first_household {
            Some(h) => self.households[h].address.clone(),
            None => format!(
                "{}{}{}{group}组",
                self.counties[county].prefix, grid.town_name, grid.village_name
            ),
        };
        let village_name = grid.village_name.clone();
        let member = grid.member.clone();
        let (lng, lat) = grid.centre;
        let half = grid.half;
        let title_pattern = *self.faker.pick(kind.titles);
        let detail = *self.faker.pick(kind.details);
        let title = title_pattern
            .replace("{v}", &village_name)
            .replace("{g}", &group.to_string())
            .replace("{x}", detail);
        let reported = self.clock;
        let from_hotline = self.faker.chance(0.08);
        let note = *self.faker.pick(kind.notes);
        let description = if from_hotline {
            format!("接12345热线转办：群众反映{title}。网格员上门核实，情况属实。{note}")
        } else {
            format!(
                "{}月{}日，网格员{}巡查发现：{title}。{note}",
                reported.month(),
                reported.day(),
                member.name
            )
        };
        let mut urgency = kind.urgency;
        if self.faker.chance(0.1) {
            urgency = if urgency == "1" { "2" } else { "3" };
        }

        let date = reported.format("%Y%m%d").to_string();
        let serial = self
            .event_serials
            .entry(format!("{}{date}", self.counties[county].code))
            .or_insert(0);
        *serial = (*serial % 9999) + 1;
        let event_no = format!("SJ{}{date}{:04}", self.counties[county].code, *serial);

        let mut base = Map::new();
        base.insert("msgType".into(), json!("EVENT"));
        base.insert("msgId".into(), json!(""));
        base.insert("tgdwdm".into(), json!(self.counties[county].provider));
        base.insert("sjbh".into(), json!(event_no));
        base.insert("sjbt".into(), json!(title));
        base.insert("sjms".into(), json!(description));
        base.insert("sjlx".into(), json!(kind.code));
        base.insert("sjlxmc".into(), json!(kind.name));
        base.insert("sjdl".into(), json!(kind.category));
        base.insert("jjcd".into(), json!(urgency));
        if self.faker.chance(0.7) {
            let before = self.faker.rng().random_range(10..=720);
            base.insert("fssj".into(), json!(app_time(reported - minutes(before))));
        }
        base.insert("sbsj".into(), json!(app_time(reported)));
        base.insert("sqdm".into(), json!(self.grids[g].village.code()));
        base.insert("wgbm".into(), json!(self.grids[g].code));
        base.insert("fsdd".into(), json!(place));
        let jd = lng + self.faker.rng().random_range(-half..half);
        let wd = lat + self.faker.rng().random_range(-half..half);
        base.insert("jd".into(), json!(format!("{jd:.6}")));
        base.insert("wd".into(), json!(format!("{wd:.6}")));
        base.insert("zbxt".into(), json!("4"));
        base.insert("sbr".into(), member.to_json());
        base.insert("dsr".into(), Value::Array(parties));
        if !household_ids.is_empty() {
            base.insert("glhh".into(), json!(household_ids));
            base.insert("glry".into(), json!(resident_ids));
        }
        base.insert(
            "fjsl".into(),
            json!(self.faker.rng().random_range(0..=6u32).to_string()),
        );
        if from_hotline {
            let ticket = format!(
                "GD{date}{:06}",
                self.faker.rng().random_range(1..1_000_000u32)
            );
            base.insert("rxgdbh".into(), json!(ticket));
        }

        let steps = self.plan_steps(g, kind, &county_name, reported, from_hotline);
        Some(OpenEvent {
            base,
            steps,
            sent: 0,
        })
    }

    fn plan_steps(
        &mut self,
        g: usize,
        kind: &EventKind,
        county_name: &str,
        reported: NaiveDateTime,
        from_hotline: bool,
    ) -> Vec<Step> {
        let total: u32 = PATHS.iter().map(|(_, w)| *w).sum();
        let mut n = self.faker.rng().random_range(0..total.max(1));
        let mut path: &[&str] = PATHS[0].0;
        for (p, w) in PATHS {
            if n < *w {
                path = p;
                break;
            }
            n -= *w;
        }
        let county = self.grids[g].county;
        let grid_org = {
            let grid = &self.grids[g];
            // 三塘村第二网格: the grid's name without the town.
            grid.name
                .strip_prefix(grid.town_name.as_str())
                .unwrap_or(&grid.name)
                .to_owned()
        };
        let village_org = {
            let name = self.grids[g].village.name();
            if name.ends_with("村委会") {
                format!("{}村委会", self.grids[g].village_name)
            } else {
                name.to_owned()
            }
        };
        let town_org = format!("{}综治中心", self.grids[g].town_name);
        let town_key = self.grids[g].town_code.clone();
        let centre_org = format!("{county_name}社会治理综合服务中心");
        let department = format!("{county_name}{}", kind.department);
        let dispatched = path.contains(&"30");
        // Without a dispatch, a village handles simple events, a town the rest.
        let local_level = if !dispatched && (path.len() == 3 || self.faker.chance(0.5)) {
            "2"
        } else {
            "3"
        };
        let reporter = self.grids[g].member.name.clone();
        let mut steps: Vec<Step> = Vec::with_capacity(path.len());
        let mut at = reported;
        let mut handled_by_department = dispatched;
        for (i, stage) in path.iter().enumerate() {
            if i > 0 {
                let gap = match *stage {
                    "20" => self.faker.rng().random_range(5..=90),
                    "30" => self.faker.rng().random_range(10..=120),
                    "40" => self.faker.rng().random_range(60..=1800),
                    "50" => self.faker.rng().random_range(1440..=4320),
                    "60" => self.faker.rng().random_range(60..=1440),
                    _ => self.faker.rng().random_range(60..=2880),
                };
                at += minutes(gap);
            }
            let (level, org) = match *stage {
                "10" => ("1", grid_org.clone()),
                "20" if local_level == "2" => ("2", village_org.clone()),
                "20" => ("3", town_org.clone()),
                "30" | "50" => ("4", centre_org.clone()),
                "60" => ("4", department.clone()),
                "40" if handled_by_department => ("4", department.clone()),
                "40" | "90" if local_level == "2" => ("2", village_org.clone()),
                _ => ("3", town_org.clone()),
            };
            if *stage == "60" {
                // Returned: the town handles it itself afterwards.
                handled_by_department = false;
            }
            let org_code = match level {
                "1" | "2" => String::new(),
                "3" => {
                    let key = format!("{town_key}镇人民政府");
                    self.org_code(county, &key)
                }
                _ if org == centre_org => self.counties[county].provider.clone(),
                _ => self.org_code(county, &org),
            };
            let operator = if *stage == "10" {
                reporter.clone()
            } else {
                self.operator(&org)
            };
            let opinion = self.opinion(stage, level, &department, from_hotline);
            let due = match *stage {
                "20" | "30" | "50" => {
                    let day = (at + chrono::Duration::days(3)).date();
                    day.and_hms_opt(18, 0, 0)
                }
                _ => None,
            };
            steps.push(Step {
                stage,
                level,
                at,
                org,
                org_code,
                operator,
                opinion,
                due,
            });
        }
        steps
    }

    fn opinion(
        &mut self,
        stage: &str,
        level: &str,
        department: &str,
        from_hotline: bool,
    ) -> String {
        let pick = |f: &mut Faker, options: &[&str]| (*f.pick(options)).to_owned();
        match stage {
            "10" if from_hotline => "接12345工单转办，已上门核实，情况属实，请求处置。".to_owned(),
            "10" => pick(
                &mut self.faker,
                &[
                    "已现场核实，情况属实，先行劝导并上报。",
                    "现场拍照取证，已告知当事人等待处理结果。",
                    "已初步处置，需上级协调解决。",
                ],
            ),
            "20" if level == "2" => pick(
                &mut self.faker,
                &[
                    "已受理，由村（社区）调委会负责化解。",
                    "已受理，村两委安排专人跟进。",
                ],
            ),
            "20" => pick(
                &mut self.faker,
                &["已受理，镇综治中心牵头办理。", "已受理，报县级分流。"],
            ),
            "30" => format!("分流至{department}办理，限3个工作日内办结。"),
            "40" if level == "4" => pick(
                &mut self.faker,
                &[
                    "已安排人员现场处置，正在落实整改。",
                    "已约谈相关责任人，限期整改。",
                    "已联系相关单位上门维修。",
                ],
            ),
            "40" => pick(
                &mut self.faker,
                &[
                    "组织双方现场协商，达成初步意见。",
                    "已协调相关人员现场处理。",
                ],
            ),
            "50" => format!("已超办理时限，请{department}加快办理进度并及时反馈。"),
            "60" => "经核实，该事项不属于本单位职责范围，申请退回。".to_owned(),
            _ => pick(
                &mut self.faker,
                &[
                    "问题已解决，经回访群众满意，予以结案。",
                    "经调解双方达成一致，签订调解协议，结案。",
                    "整改完成，现场复核无误，结案。",
                ],
            ),
        }
    }

    // ---- malformations ----

    fn malform(&mut self, record: &mut Value, which: Malformation) {
        let Some(m) = record.as_object_mut() else {
            return;
        };
        let msg_type = m
            .get("msgType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match which {
            Malformation::BadIdentifier => self.break_identifier(m, &msg_type),
            Malformation::MissingField => {
                let required: &[&str] = match msg_type.as_str() {
                    "EVENT" => &[
                        "sjbh", "sbsj", "sqdm", "wgbm", "lcjl", "sjzt", "sbr", "gxsj",
                    ],
                    "HOUSEHOLD" => &["hhbh", "gxdj", "hzsfzh", "wgbm", "gxsj"],
                    "RESIDENT" => &["rybh", "zjhm", "xm", "hhbh", "gxsj"],
                    _ => &["wgbm", "wgmc", "wgy", "gxsj"],
                };
                let key = *self.faker.pick(required);
                m.remove(key);
            }
            Malformation::GarbageDate => {
                let year = self.clock.year();
                match msg_type.as_str() {
                    "EVENT" => {
                        let garbage = [
                            format!("{year}/2/30 9:21"),
                            format!("{year}/6/31 14:05"),
                            format!("{year}/13/2 8:40"),
                            format!("{year}/7/9 25:10"),
                            "上午9点20分".to_owned(),
                            "0000/00/00 00:00".to_owned(),
                        ];
                        let g = self.faker.pick(&garbage).clone();
                        m.insert("sbsj".into(), json!(g));
                    }
                    "RESIDENT" => {
                        let birth = m
                            .get("csrq")
                            .and_then(Value::as_str)
                            .and_then(|s| s.get(..4))
                            .unwrap_or("1970")
                            .to_owned();
                        let bad = *self.faker.pick(&["0230", "0431", "1301", "0000"]);
                        m.insert("csrq".into(), json!(format!("{birth}{bad}")));
                    }
                    "GRID" => {
                        let bad = *self.faker.pick(&["2017-02-30", "2018-13-01", "2019-04-31"]);
                        m.insert("hdrq".into(), json!(bad));
                    }
                    _ => {
                        // `gxsj` keeps its 14-digit shape (the contract passes) but names no real instant.
                        let t = compact_time(self.clock);
                        let bad = format!(
                            "{}13{}",
                            t.get(..4).unwrap_or("2024"),
                            t.get(6..).unwrap_or("01000000")
                        );
                        m.insert("gxsj".into(), json!(bad));
                    }
                }
            }
            Malformation::UnknownCode => match msg_type.as_str() {
                "EVENT" => match self.faker.rng().random_range(0..4) {
                    0 => {
                        m.insert("sjdl".into(), json!("42"));
                    }
                    1 => {
                        m.insert("jjcd".into(), json!("7"));
                    }
                    2 => {
                        m.insert("sjzt".into(), json!("70"));
                    }
                    _ => {
                        if let Some(last) = m
                            .get_mut("lcjl")
                            .and_then(Value::as_array_mut)
                            .and_then(|a| a.last_mut())
                            .and_then(Value::as_object_mut)
                        {
                            last.insert("hj".into(), json!("35"));
                        }
                    }
                },
                "HOUSEHOLD" => {
                    let bad = *self.faker.pick(&["0", "4", "5", "9"]);
                    m.insert("gxdj".into(), json!(bad));
                }
                "RESIDENT" => {
                    if self.faker.chance(0.5) {
                        m.insert("mz".into(), json!("60"));
                    } else {
                        m.insert("yhzgx".into(), json!("65"));
                    }
                }
                _ => {
                    m.insert("wglx".into(), json!("9"));
                }
            },
            Malformation::UnknownMsgType => {
                let t = *self.faker.pick(UNMAPPED_MSG_TYPES);
                m.insert("msgType".into(), json!(t));
            }
        }
    }

    fn break_identifier(&mut self, m: &mut Map<String, Value>, msg_type: &str) {
        let cert_key: Option<&str> = match msg_type {
            "HOUSEHOLD" => Some("hzsfzh"),
            "RESIDENT" if m.get("zjlx").and_then(Value::as_str) == Some("111") => Some("zjhm"),
            _ => None,
        };
        if let Some(key) = cert_key {
            if let Some(cert) = m.get(key).and_then(Value::as_str).map(str::to_owned) {
                let broken = self.faker.corrupt_cert_no(&cert);
                m.insert(key.into(), json!(broken));
                return;
            }
        }
        if msg_type == "EVENT" {
            let party = m
                .get_mut("dsr")
                .and_then(Value::as_array_mut)
                .and_then(|ps| {
                    ps.iter_mut().find(|p| {
                        p.get("sfzh")
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty())
                    })
                });
            if let Some(p) = party {
                let cert = p
                    .get("sfzh")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let broken = self.faker.corrupt_cert_no(&cert);
                p["sfzh"] = json!(broken);
                return;
            }
        }
        // No ID number on this record: a grid code with serial 000 (validator(grid_code)).
        if let Some(code) = m.get("wgbm").and_then(Value::as_str) {
            let village = code.get(..12).unwrap_or(code).to_owned();
            m.insert("wgbm".into(), json!(format!("{village}000")));
        }
    }
}

/// An event as sent after its `sent` first steps: the fixed fields, the steps so far, the state of the last.
fn render_event(e: &OpenEvent) -> Value {
    let mut m = e.base.clone();
    let steps = &e.steps[..e.sent.min(e.steps.len())];
    m.insert(
        "lcjl".into(),
        Value::Array(steps.iter().map(Step::to_json).collect()),
    );
    if let Some(last) = steps.last() {
        m.insert("sjzt".into(), json!(last.stage));
        m.insert("czcj".into(), json!(last.level));
        m.insert("gxsj".into(), json!(compact_time(last.at)));
        if last.stage == "90" {
            m.insert("jasj".into(), json!(app_time(last.at)));
        }
    }
    // The message id differs per push of the same event.
    let id = format!(
        "{}{:02}",
        m.get("sjbh").and_then(Value::as_str).unwrap_or_default(),
        e.sent
    );
    m.insert("msgId".into(), json!(id));
    Value::Object(m)
}

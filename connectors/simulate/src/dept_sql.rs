//! Simulator of the departmental databases behind the `dept-sql` connector: the civil-affairs (民政) 低保 roster
//! in PostgreSQL (`mz_dbdx`) and the public-security (公安) incident table in MySQL/MariaDB (`ga_jqxx`).
//!
//! [`run`] creates the tables if they are missing ([`postgres_ddl`], [`mysql_ddl`]) and then INSERTs new rows and
//! UPDATEs earlier ones at the configured rate, the way the departments' own systems write their exchange tables:
//! every write sets `czbz` (操作标志: `I` insert, `U` update) and moves `gxsj` (更新时间) forward, so the hub's SQL
//! poll on `(gxsj, id)` sees each change. `gxsj` is Beijing wall-clock time and strictly increases from one write
//! to the next, so no two writes of one simulator share a cursor position.
//!
//! A configurable share of the rows is malformed, each with exactly one [`Defect`]: an ID number with a wrong
//! check digit, a village code that does not exist, a negative allowance, a mistyped reporter phone.
//!
//! The rows come from [`DibaoGenerator`] and [`IncidentGenerator`], pure and deterministic from their seed, so
//! tests and benchmarks draw the same rows without a database ([`sample_dibao_rows`], [`sample_incident_rows`]
//! give them as the SQL poll would read them).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;
use unsilo_schemas::redact::redact_url;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, MySqlConnection, PgConnection};
use tracing::info;
use unsilo_schemas::validate::{validate_region_code, Region, RegionTable};

use super::fake::Faker;
use unsilo_connectors::sdk::Shutdown;

/// Default name of the 低保 roster table (PostgreSQL).
pub const DIBAO_TABLE: &str = "mz_dbdx";
/// Default name of the incident table (MySQL/MariaDB).
pub const INCIDENT_TABLE: &str = "ga_jqxx";
/// The county the simulated departments belong to: 汉阴县.
pub const COUNTY: &str = "610921";
/// How many recent rows per table the generators remember as candidates for an UPDATE.
const REMEMBERED_ROWS: usize = 10_000;

/// Options of the dept-sql simulator (`unsilo simulate dept-sql`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeptSqlOptions {
    /// PostgreSQL URL for the 低保 roster, e.g. `postgres://postgres@127.0.0.1:5432/test`. Without it the roster
    /// is not simulated.
    #[serde(default)]
    pub postgres_url: Option<String>,
    /// MySQL/MariaDB URL for the incident table, e.g. `mysql://root@127.0.0.1:3306/test`. Without it the
    /// incident table is not simulated.
    #[serde(default)]
    pub mysql_url: Option<String>,
    /// The roster table's name (a plain identifier).
    #[serde(default = "default_dibao_table")]
    pub dibao_table: String,
    /// The incident table's name (a plain identifier).
    #[serde(default = "default_incident_table")]
    pub incident_table: String,
    /// Writes (INSERT or UPDATE) per second, per table.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Share of the written rows that are malformed (0.0–1.0).
    #[serde(default)]
    pub malformed_share: f64,
    /// Share of the writes that UPDATE an earlier row instead of inserting one (0.0–1.0).
    #[serde(default = "default_update_share")]
    pub update_share: f64,
    /// Seed of the fake data: the same seed writes the same rows.
    #[serde(default)]
    pub seed: u64,
    /// Stop after this many writes per table; without it, run until shutdown.
    #[serde(default)]
    pub limit: Option<u64>,
}

fn default_dibao_table() -> String {
    DIBAO_TABLE.to_owned()
}

fn default_incident_table() -> String {
    INCIDENT_TABLE.to_owned()
}

fn default_rate() -> f64 {
    5.0
}

fn default_update_share() -> f64 {
    0.2
}

impl Default for DeptSqlOptions {
    fn default() -> Self {
        Self {
            postgres_url: None,
            mysql_url: None,
            dibao_table: default_dibao_table(),
            incident_table: default_incident_table(),
            rate: default_rate(),
            malformed_share: 0.0,
            update_share: default_update_share(),
            seed: 0,
            limit: None,
        }
    }
}

impl fmt::Debug for DeptSqlOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeptSqlOptions")
            .field(
                "postgres_url",
                &self.postgres_url.as_deref().map(redact_url),
            )
            .field("mysql_url", &self.mysql_url.as_deref().map(redact_url))
            .field("dibao_table", &self.dibao_table)
            .field("incident_table", &self.incident_table)
            .field("rate", &self.rate)
            .field("malformed_share", &self.malformed_share)
            .field("update_share", &self.update_share)
            .field("seed", &self.seed)
            .field("limit", &self.limit)
            .finish()
    }
}

/// What the simulator wrote to one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableStats {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Writes (inserts and updates) of malformed rows.
    pub malformed: u64,
}

/// What the simulator wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The 低保 roster (PostgreSQL).
    pub dibao: TableStats,
    /// The incident table (MySQL/MariaDB).
    pub incidents: TableStats,
}

/// Why the simulator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options cannot work.
    #[error("dept-sql simulator: {0}")]
    Config(String),
    /// A database refused a connection or a statement.
    #[error("dept-sql simulator: {database}: {message}")]
    Database {
        /// The database URL, password masked.
        database: String,
        /// What went wrong.
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------------------------

/// The one thing wrong with a malformed row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Defect {
    /// `sfzh` has a wrong check digit.
    BadCertNo,
    /// `sqdm` / `xzqh` is 12 digits but no known village.
    UnknownVillage,
    /// `bzje` is negative.
    NegativeAllowance,
    /// `bjrdh` is a mistyped mobile number (ten digits).
    BadPhone,
}

impl Defect {
    /// The stage and code the `dept-sql` connector rejects such a row with.
    pub fn expected_rejection(self) -> (&'static str, &'static str) {
        match self {
            Defect::BadCertNo => ("validation", "validator(cert_no)"),
            Defect::UnknownVillage => ("validation", "validator(region_code)"),
            Defect::NegativeAllowance => ("contract", "contract_violation"),
            Defect::BadPhone => ("validation", "validator(phone)"),
        }
    }
}

/// A row of the 低保 roster `mz_dbdx` (without its `id`, which the database assigns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DibaoRow {
    /// 身份证号 of the applicant (户主).
    pub sfzh: String,
    /// 姓名.
    pub xm: String,
    /// 性别: `1` male, `2` female.
    pub xb: &'static str,
    /// 联系电话.
    pub lxdh: Option<String>,
    /// 家庭人口: household members covered.
    pub jtrk: i32,
    /// 月保障金额 in fen (the table stores yuan with two decimals).
    pub bzje_fen: i64,
    /// 保障类别: `1` urban, `2` rural.
    pub bzlb: &'static str,
    /// 开始年月 `YYYYMM`.
    pub ksny: String,
    /// 终止年月 `YYYYMM`, for a terminated allowance.
    pub jsny: Option<String>,
    /// 社区(村)代码, 12 digits.
    pub sqdm: String,
    /// 状态: `1` 在保, `2` 暂停, `3` 停保.
    pub zt: &'static str,
    /// 操作标志: `I` or `U`.
    pub czbz: &'static str,
    /// 更新时间 (Beijing wall-clock time, millisecond precision).
    pub gxsj: NaiveDateTime,
    /// What is wrong with the row, if it is malformed.
    pub defect: Option<Defect>,
}

impl DibaoRow {
    /// `bzje` as the table holds it: yuan with two decimals, e.g. `650.00`.
    pub fn bzje_text(&self) -> String {
        yuan_text(self.bzje_fen)
    }

    /// The row as the SQL poll reads it from PostgreSQL: column → value.
    pub fn to_json(&self, id: i64) -> Value {
        json!({
            "id": id,
            "sfzh": self.sfzh,
            "xm": self.xm,
            "xb": self.xb,
            "lxdh": self.lxdh,
            "jtrk": self.jtrk,
            "bzje": self.bzje_text(),
            "bzlb": self.bzlb,
            "ksny": self.ksny,
            "jsny": self.jsny,
            "sqdm": self.sqdm,
            "zt": self.zt,
            "czbz": self.czbz,
            "gxsj": timestamp_text(self.gxsj),
        })
    }
}

/// A row of the incident table `ga_jqxx` (without its `id`, which the database assigns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentRow {
    /// 警情编号.
    pub jqbh: String,
    /// 警情类别代码.
    pub jqlb: &'static str,
    /// 报警时间 (Beijing wall-clock time, whole seconds).
    pub bjsj: NaiveDateTime,
    /// 发案地点.
    pub fadd: String,
    /// 行政区划代码 of the place, 12 digits.
    pub xzqh: String,
    /// 简要情况.
    pub jyqk: String,
    /// 管辖单位: the police station.
    pub gxdw: String,
    /// 报警人电话.
    pub bjrdh: Option<String>,
    /// 处理结果, once handled.
    pub cljg: Option<String>,
    /// 操作标志: `I` or `U`.
    pub czbz: &'static str,
    /// 更新时间 (Beijing wall-clock time, millisecond precision).
    pub gxsj: NaiveDateTime,
    /// What is wrong with the row, if it is malformed.
    pub defect: Option<Defect>,
}

impl IncidentRow {
    /// The row as the SQL poll reads it from MySQL/MariaDB: column → value.
    pub fn to_json(&self, id: i64) -> Value {
        json!({
            "id": id,
            "jqbh": self.jqbh,
            "jqlb": self.jqlb,
            "bjsj": timestamp_text(self.bjsj),
            "fadd": self.fadd,
            "xzqh": self.xzqh,
            "jyqk": self.jyqk,
            "gxdw": self.gxdw,
            "bjrdh": self.bjrdh,
            "cljg": self.cljg,
            "czbz": self.czbz,
            "gxsj": timestamp_text(self.gxsj),
        })
    }
}

/// One write a generator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<R> {
    /// Insert a new row. Inserts are numbered 0, 1, 2, … in the order the generator makes them.
    Insert(R),
    /// Update the row of the `ordinal`-th insert to `row` (all of its columns).
    Update {
        /// Which insert's row.
        ordinal: u64,
        /// The row's new contents.
        row: R,
    },
}

/// Yuan with two decimals from fen: `65000` → `650.00`, `-30000` → `-300.00`.
fn yuan_text(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A timestamp as the SQL poll writes it: `YYYY-MM-DD HH:MM:SS[.fff]`.
fn timestamp_text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.f").to_string()
}

/// A 12-digit code in the county that names no division (a typo'd or retired village code).
fn unknown_village_code(faker: &mut Faker) -> String {
    use rand::Rng;
    let code = format!(
        "{COUNTY}9{:02}{:03}",
        faker.rng().random_range(0..100u32),
        faker.rng().random_range(1..1000u32)
    );
    if validate_region_code(&code).is_err() {
        code
    } else {
        format!("{COUNTY}999999")
    }
}

/// The police station of a village: its town's name without 镇 / 街道办事处 / 乡, plus 派出所.
fn station_of(village: &Region) -> String {
    let town = village
        .parent_code()
        .and_then(|code| RegionTable::shaanxi().get(code))
        .map_or("城关镇", Region::name);
    let stem = ["街道办事处", "街道", "镇", "乡"]
        .iter()
        .find_map(|suffix| town.strip_suffix(suffix))
        .unwrap_or(town);
    format!("{stem}派出所")
}

/// A month `YYYYMM` between January 2015 and `at`'s month.
fn month_before(faker: &mut Faker, at: NaiveDateTime) -> String {
    use rand::Rng;
    let end = at.year() * 12 + at.month0() as i32;
    let start = 2015 * 12;
    let m = faker.rng().random_range(start..=end.max(start));
    format!("{:04}{:02}", m / 12, m % 12 + 1)
}

// ---------------------------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------------------------

/// Deterministic generator of writes to the 低保 roster.
#[derive(Debug)]
pub struct DibaoGenerator {
    faker: Faker,
    malformed_share: f64,
    update_share: f64,
    inserts: u64,
    recent: VecDeque<(u64, DibaoRow)>,
}

impl DibaoGenerator {
    /// A generator with this seed, share of malformed rows and share of updates (both clamped to 0.0–1.0).
    pub fn new(seed: u64, malformed_share: f64, update_share: f64) -> Self {
        Self {
            faker: Faker::for_counties(seed, &[COUNTY]),
            malformed_share: clamp_share(malformed_share),
            update_share: clamp_share(update_share),
            inserts: 0,
            recent: VecDeque::new(),
        }
    }

    /// The next write, stamped `gxsj = at`.
    pub fn next_op(&mut self, at: NaiveDateTime) -> Op<DibaoRow> {
        if !self.recent.is_empty() && self.faker.chance(self.update_share) {
            let i = rand::Rng::random_range(self.faker.rng(), 0..self.recent.len());
            let (ordinal, old) = self.recent[i].clone();
            let row = self.updated(old, at);
            self.recent[i] = (ordinal, row.clone());
            return Op::Update { ordinal, row };
        }
        let row = self.new_row(at);
        let ordinal = self.inserts;
        self.inserts += 1;
        self.recent.push_back((ordinal, row.clone()));
        if self.recent.len() > REMEMBERED_ROWS {
            self.recent.pop_front();
        }
        Op::Insert(row)
    }

    /// A new roster row.
    pub fn new_row(&mut self, at: NaiveDateTime) -> DibaoRow {
        use rand::Rng;
        let f = &mut self.faker;
        let person = f.person();
        let village = f.village();
        let urban = village.name().ends_with("居委会");
        let jtrk = *f.pick(&[1, 1, 2, 2, 2, 3, 3, 4, 5]);
        // Per person and month: urban 300–700 yuan, rural 150–450 yuan (the gap to the local standard).
        let per_person = if urban {
            f.rng().random_range(300..=700i64)
        } else {
            f.rng().random_range(150..=450i64)
        };
        let cents = *f.pick(&[0i64, 0, 0, 50]);
        let zt = *f.pick(&["1", "1", "1", "1", "1", "1", "1", "1", "2", "3"]);
        let ksny = month_before(f, at);
        let jsny = (zt == "3").then(|| month_before(f, at).max(ksny.clone()));
        let lxdh = f.chance(0.8).then(|| person.phone.clone());
        let mut row = DibaoRow {
            sfzh: person.cert_no,
            xm: person.name,
            xb: person.gender_code,
            lxdh,
            jtrk,
            bzje_fen: per_person * 100 * i64::from(jtrk) + cents,
            bzlb: if urban { "1" } else { "2" },
            ksny,
            jsny,
            sqdm: village.code().to_owned(),
            zt,
            czbz: "I",
            gxsj: at,
            defect: None,
        };
        if f.chance(self.malformed_share) {
            let defect = *f.pick(&[
                Defect::BadCertNo,
                Defect::UnknownVillage,
                Defect::NegativeAllowance,
            ]);
            match defect {
                Defect::BadCertNo => row.sfzh = f.corrupt_cert_no(&row.sfzh),
                Defect::UnknownVillage => row.sqdm = unknown_village_code(f),
                _ => row.bzje_fen = -row.bzje_fen.max(1),
            }
            row.defect = Some(defect);
        }
        row
    }

    /// A later version of `row`: a new allowance, status or household size (its defect, if any, stays).
    fn updated(&mut self, mut row: DibaoRow, at: NaiveDateTime) -> DibaoRow {
        use rand::Rng;
        let f = &mut self.faker;
        match f.rng().random_range(0..3u8) {
            0 => {
                let delta = f.rng().random_range(-50..=80i64) * 100;
                let magnitude = (row.bzje_fen.abs() + delta).max(10_000);
                row.bzje_fen = if row.defect == Some(Defect::NegativeAllowance) {
                    -magnitude
                } else {
                    magnitude
                };
            }
            1 => {
                row.zt = *f.pick(&["1", "2", "3"]);
                row.jsny = (row.zt == "3").then(|| format!("{:04}{:02}", at.year(), at.month()));
            }
            _ => row.jtrk = (row.jtrk + *f.pick(&[-1, 1])).clamp(1, 8),
        }
        row.czbz = "U";
        row.gxsj = at;
        row
    }
}

/// 警情类别: code, name, weight, summaries (`{}` is where the place goes).
const INCIDENT_TYPES: &[(&str, u32, &[&str])] = &[
    (
        "0101",
        14,
        &[
            "报警人称其停放在{}的电动自行车被盗。",
            "报警人称其家中现金及首饰被盗，门锁有撬动痕迹。",
        ],
    ),
    (
        "0102",
        8,
        &[
            "报警人称接到自称客服的电话，被骗转账人民币三千余元。",
            "报警人称在网上购买农资被骗，对方已失联。",
        ],
    ),
    ("0103", 2, &["报警人称在{}被人抢走手机一部。"]),
    (
        "0201",
        24,
        &[
            "报警人称邻居因排水沟堵塞与其发生争执，请求民警到场处理。",
            "报警人称与邻居因宅基地界线发生纠纷。",
            "报警人称家庭成员因赡养老人问题发生争吵。",
        ],
    ),
    ("0202", 6, &["报警人称在{}被人殴打，面部受轻伤。"]),
    ("0203", 3, &["报警人称{}有人酒后滋事，影响周边群众休息。"]),
    (
        "0301",
        18,
        &[
            "报警人称在{}两辆小型轿车发生剐蹭，无人员受伤。",
            "报警人称一辆三轮车在{}侧翻，驾驶人腿部受伤。",
        ],
    ),
    ("0401", 3, &["报警人称{}一处柴草堆起火，火势已基本控制。"]),
    (
        "0501",
        17,
        &[
            "报警人称其母亲走失，最后出现在{}附近，请求协助寻找。",
            "报警人称一名老人在{}摔倒，请求帮助。",
        ],
    ),
    ("0601", 4, &["群众举报{}有人聚众赌博。"]),
    ("9900", 1, &["报警人反映{}附近路灯损坏，存在安全隐患。"]),
];

/// 处理结果 an update may set.
const HANDLING_RESULTS: &[&str] = &[
    "已调解，双方达成和解",
    "已立案侦查",
    "已移交交警大队处理",
    "已找到走失人员并送其回家",
    "经查不属实，已向报警人说明",
    "已出警处置，现场秩序恢复",
    "已告知报警人向相关部门反映",
];

/// Deterministic generator of writes to the incident table.
#[derive(Debug)]
pub struct IncidentGenerator {
    faker: Faker,
    malformed_share: f64,
    update_share: f64,
    inserts: u64,
    /// Serial of the last incident number (the last four digits of 警情编号).
    serial: u32,
    recent: VecDeque<(u64, IncidentRow)>,
}

impl IncidentGenerator {
    /// A generator with this seed, share of malformed rows and share of updates (both clamped to 0.0–1.0).
    pub fn new(seed: u64, malformed_share: f64, update_share: f64) -> Self {
        Self {
            // A stream of its own, so the two tables do not depend on each other's pace.
            faker: Faker::for_counties(seed ^ 0x9e37_79b9_7f4a_7c15, &[COUNTY]),
            malformed_share: clamp_share(malformed_share),
            update_share: clamp_share(update_share),
            inserts: 0,
            serial: 0,
            recent: VecDeque::new(),
        }
    }

    /// The next write, stamped `gxsj = at`.
    pub fn next_op(&mut self, at: NaiveDateTime) -> Op<IncidentRow> {
        if !self.recent.is_empty() && self.faker.chance(self.update_share) {
            let i = rand::Rng::random_range(self.faker.rng(), 0..self.recent.len());
            let (ordinal, mut row) = self.recent[i].clone();
            row.cljg = Some((*self.faker.pick(HANDLING_RESULTS)).to_owned());
            row.czbz = "U";
            row.gxsj = at;
            self.recent[i] = (ordinal, row.clone());
            return Op::Update { ordinal, row };
        }
        let row = self.new_row(at);
        let ordinal = self.inserts;
        self.inserts += 1;
        self.recent.push_back((ordinal, row.clone()));
        if self.recent.len() > REMEMBERED_ROWS {
            self.recent.pop_front();
        }
        Op::Insert(row)
    }

    /// A new incident, reported up to two hours before `at`.
    pub fn new_row(&mut self, at: NaiveDateTime) -> IncidentRow {
        use rand::Rng;
        let f = &mut self.faker;
        let total: u32 = INCIDENT_TYPES.iter().map(|(_, w, _)| w).sum();
        let mut draw = f.rng().random_range(0..total);
        let (jqlb, summaries) = INCIDENT_TYPES
            .iter()
            .find(|(_, w, _)| {
                if draw < *w {
                    true
                } else {
                    draw -= w;
                    false
                }
            })
            .map_or((INCIDENT_TYPES[0].0, INCIDENT_TYPES[0].2), |(c, _, s)| {
                (*c, *s)
            });
        let village = f.village();
        let place = f.address(village);
        let short_place = village
            .name()
            .trim_end_matches("居委会")
            .trim_end_matches("村委会")
            .to_owned();
        let summary = (*f.pick(summaries)).replace("{}", &short_place);
        let back = chrono::Duration::seconds(f.rng().random_range(0..7200));
        let bjsj = whole_seconds(at - back);
        self.serial = (self.serial + 1) % 10_000;
        let serial = self.serial;
        let f = &mut self.faker;
        let mut row = IncidentRow {
            jqbh: format!("J{COUNTY}{}{serial:04}", bjsj.format("%Y%m%d")),
            jqlb,
            bjsj,
            fadd: place,
            xzqh: village.code().to_owned(),
            jyqk: summary,
            gxdw: station_of(village),
            bjrdh: f.chance(0.85).then(|| f.phone()),
            cljg: None,
            czbz: "I",
            gxsj: at,
            defect: None,
        };
        if f.chance(self.malformed_share) {
            let defect = *f.pick(&[Defect::UnknownVillage, Defect::BadPhone]);
            match defect {
                Defect::UnknownVillage => row.xzqh = unknown_village_code(f),
                _ => {
                    let phone = f.phone();
                    row.bjrdh = Some(phone[..10].to_owned());
                }
            }
            row.defect = Some(defect);
        }
        row
    }
}

/// Drops the sub-second part of a time (报警时间 is a DATETIME of whole seconds).
fn whole_seconds(t: NaiveDateTime) -> NaiveDateTime {
    chrono::Timelike::with_nanosecond(&t, 0).unwrap_or(t)
}

fn clamp_share(share: f64) -> f64 {
    crate::options::clamped(share, crate::options::SHARE, 0.0)
}

/// The base time of the sample rows: 2024-06-18 09:00:00 Beijing time.
fn sample_base() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 6, 18)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .unwrap_or_default()
}

/// `count` new roster rows as the SQL poll reads them (ids 1, 2, …; `gxsj` one second apart), each with its
/// defect — for tests and benchmarks without a database.
pub fn sample_dibao_rows(
    seed: u64,
    malformed_share: f64,
    count: usize,
) -> Vec<(Value, Option<Defect>)> {
    let mut g = DibaoGenerator::new(seed, malformed_share, 0.0);
    (0..count)
        .map(|i| {
            let at = sample_base() + chrono::Duration::seconds(i as i64);
            let row = g.new_row(at);
            (row.to_json(i as i64 + 1), row.defect)
        })
        .collect()
}

/// `count` new incident rows as the SQL poll reads them (ids 1, 2, …; `gxsj` one second apart), each with its
/// defect — for tests and benchmarks without a database.
pub fn sample_incident_rows(
    seed: u64,
    malformed_share: f64,
    count: usize,
) -> Vec<(Value, Option<Defect>)> {
    let mut g = IncidentGenerator::new(seed, malformed_share, 0.0);
    (0..count)
        .map(|i| {
            let at = sample_base() + chrono::Duration::seconds(i as i64);
            let row = g.new_row(at);
            (row.to_json(i as i64 + 1), row.defect)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// DDL
// ---------------------------------------------------------------------------------------------------------------

/// Checks that a table name is a plain identifier, so it can be put into SQL text.
fn check_table(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 48;
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "table name {name:?} must be a plain identifier of at most 48 letters, digits and `_`"
        )))
    }
}

/// The PostgreSQL DDL of the 低保 roster `table` (table, index and comments), one statement per item.
pub fn postgres_ddl(table: &str) -> Vec<String> {
    vec![
        format!(
            r#"CREATE TABLE IF NOT EXISTS "{table}" (
    id    BIGSERIAL     PRIMARY KEY,
    sfzh  VARCHAR(18)   NOT NULL,
    xm    VARCHAR(50)   NOT NULL,
    xb    VARCHAR(1)    NOT NULL,
    lxdh  VARCHAR(20),
    jtrk  INTEGER       NOT NULL,
    bzje  NUMERIC(10,2) NOT NULL,
    bzlb  VARCHAR(1)    NOT NULL,
    ksny  VARCHAR(6)    NOT NULL,
    jsny  VARCHAR(6),
    sqdm  VARCHAR(12)   NOT NULL,
    zt    VARCHAR(1)    NOT NULL,
    czbz  VARCHAR(1)    NOT NULL DEFAULT 'I',
    gxsj  TIMESTAMP(3)  NOT NULL DEFAULT LOCALTIMESTAMP(3)
)"#
        ),
        format!(r#"CREATE INDEX IF NOT EXISTS "{table}_gxsj_id" ON "{table}" (gxsj, id)"#),
        format!(r#"COMMENT ON TABLE "{table}" IS '低保对象名册'"#),
    ]
}

/// The MySQL/MariaDB DDL of the incident table `table`.
pub fn mysql_ddl(table: &str) -> Vec<String> {
    vec![format!(
        r#"CREATE TABLE IF NOT EXISTS `{table}` (
    id    BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    jqbh  VARCHAR(32)  NOT NULL COMMENT '警情编号',
    jqlb  VARCHAR(4)   NOT NULL COMMENT '警情类别代码',
    bjsj  DATETIME     NOT NULL COMMENT '报警时间',
    fadd  VARCHAR(200) NOT NULL COMMENT '发案地点',
    xzqh  VARCHAR(12)  NOT NULL COMMENT '行政区划代码',
    jyqk  VARCHAR(500) NOT NULL COMMENT '简要情况',
    gxdw  VARCHAR(50)  NOT NULL COMMENT '管辖单位',
    bjrdh VARCHAR(20)  NULL     COMMENT '报警人电话',
    cljg  VARCHAR(200) NULL     COMMENT '处理结果',
    czbz  VARCHAR(1)   NOT NULL DEFAULT 'I' COMMENT '操作标志 I/U/D',
    gxsj  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT '更新时间',
    KEY idx_gxsj_id (gxsj, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='警情信息'"#
    )]
}

// ---------------------------------------------------------------------------------------------------------------
// Running against the databases
// ---------------------------------------------------------------------------------------------------------------

/// Gives out `gxsj` values: Beijing wall-clock time in whole milliseconds, strictly increasing.
#[derive(Debug, Default)]
struct Clock {
    last_ms: i64,
}

impl Clock {
    fn next(&mut self) -> NaiveDateTime {
        let now = Utc::now().timestamp_millis() + 8 * 3_600_000;
        self.last_ms = now.max(self.last_ms + 1);
        DateTime::from_timestamp_millis(self.last_ms)
            .map(|t| t.naive_utc())
            .unwrap_or_default()
    }
}

/// Paces writes at `rate` per second: ticks of at least a millisecond, several writes per tick above 1000/s,
/// up to an optional limit.
struct Pacer {
    interval: tokio::time::Interval,
    per_tick: u64,
    /// Writes still allowed in the current tick.
    due: u64,
    /// Writes left before the limit; `None`: no limit.
    left: Option<u64>,
}

impl Pacer {
    fn new(rate: f64, limit: Option<u64>) -> Self {
        let (period, per_tick) = if rate <= 1000.0 {
            // At most a day between writes, so a tiny rate cannot overflow the timer.
            let period = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX);
            (period.min(Duration::from_secs(86_400)), 1)
        } else {
            (Duration::from_millis(1), (rate / 1000.0).round() as u64)
        };
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            interval,
            per_tick,
            due: 0,
            left: limit,
        }
    }

    /// Waits until the next write is due; `false` once shutdown is requested or the limit is reached.
    async fn next_write(&mut self, shutdown: &mut Shutdown) -> bool {
        if self.left == Some(0) {
            return false;
        }
        while self.due == 0 {
            match self.tick(shutdown).await {
                Some(writes) => self.due = writes,
                None => return false,
            }
        }
        self.due -= 1;
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        true
    }

    /// Waits for the next tick; `None` once shutdown is requested.
    async fn tick(&mut self, shutdown: &mut Shutdown) -> Option<u64> {
        tokio::select! {
            _ = self.interval.tick() => Some(self.per_tick),
            () = shutdown.wait() => None,
        }
    }
}

/// Creates the tables if missing (idempotent), so that a hub polling them can start before the first write.
pub async fn prepare(options: &DeptSqlOptions) -> Result<(), Error> {
    check_table(&options.dibao_table)?;
    check_table(&options.incident_table)?;
    if let Some(url) = &options.postgres_url {
        connect_postgres(url, &options.dibao_table).await?;
    }
    if let Some(url) = &options.mysql_url {
        connect_mysql(url, &options.incident_table).await?;
    }
    Ok(())
}

/// Connects to PostgreSQL and creates the roster table if it is missing.
async fn connect_postgres(url: &str, table: &str) -> Result<PgConnection, Error> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| db_error(url, "cannot connect", e))?;
    for statement in postgres_ddl(table) {
        conn.execute(statement.as_str())
            .await
            .map_err(|e| db_error(url, "cannot create the roster table", e))?;
    }
    Ok(conn)
}

/// Connects to MySQL / MariaDB and creates the incident table if it is missing.
async fn connect_mysql(url: &str, table: &str) -> Result<MySqlConnection, Error> {
    let mut conn = MySqlConnection::connect(url)
        .await
        .map_err(|e| db_error(url, "cannot connect", e))?;
    for statement in mysql_ddl(table) {
        conn.execute(statement.as_str())
            .await
            .map_err(|e| db_error(url, "cannot create the incident table", e))?;
    }
    Ok(conn)
}

/// Creates the tables if missing, then writes rows at the configured rate until `limit` writes per table are done
/// or `shutdown` fires. The roster goes to `postgres_url`, the incidents to `mysql_url` (either may be left out,
/// not both).
pub async fn run(options: DeptSqlOptions, shutdown: Shutdown) -> Result<Stats, Error> {
    if options.postgres_url.is_none() && options.mysql_url.is_none() {
        return Err(Error::Config("give postgres_url, mysql_url or both".into()));
    }
    if !(options.rate.is_finite() && options.rate > 0.0) {
        return Err(Error::Config(format!(
            "rate must be a positive number of writes per second, not {}",
            options.rate
        )));
    }
    for (name, share) in [
        ("malformed_share", options.malformed_share),
        ("update_share", options.update_share),
    ] {
        crate::options::within(name, share, crate::options::SHARE).map_err(Error::Config)?;
    }
    check_table(&options.dibao_table)?;
    check_table(&options.incident_table)?;
    let dibao = async {
        match &options.postgres_url {
            Some(url) => run_dibao(url, &options, shutdown.clone()).await,
            None => Ok(TableStats::default()),
        }
    };
    let incidents = async {
        match &options.mysql_url {
            Some(url) => run_incidents(url, &options, shutdown.clone()).await,
            None => Ok(TableStats::default()),
        }
    };
    let (dibao, incidents) = tokio::join!(dibao, incidents);
    let stats = Stats {
        dibao: dibao?,
        incidents: incidents?,
    };
    info!(?stats, "Dept-sql simulator stopped.");
    Ok(stats)
}

fn db_error(url: &str, context: &str, e: sqlx::Error) -> Error {
    let masked = redact_url(url);
    let mut message = format!("{context}: {e}");
    // Drivers may quote the URL they were given; keep only the masked form.
    if masked != url {
        message = message.replace(url, &masked);
    }
    Error::Database {
        database: masked,
        message,
    }
}

impl<R> Op<R> {
    /// The row, and for an update the id the database gave the row it updates (`ids` holds the
    /// ids of the inserts so far, in order).
    fn with_row_id<I: Copy>(self, ids: &[I]) -> Result<(R, Option<I>), Error> {
        match self {
            Op::Insert(row) => Ok((row, None)),
            Op::Update { ordinal, row } => usize::try_from(ordinal)
                .ok()
                .and_then(|i| ids.get(i))
                .map(|id| (row, Some(*id)))
                .ok_or_else(|| Error::Config("an update names a row never inserted".into())),
        }
    }
}

impl TableStats {
    fn count(&mut self, update: bool, malformed: bool) {
        if update {
            self.updated += 1;
        } else {
            self.inserted += 1;
        }
        if malformed {
            self.malformed += 1;
        }
    }
}

async fn run_dibao(
    url: &str,
    options: &DeptSqlOptions,
    mut shutdown: Shutdown,
) -> Result<TableStats, Error> {
    let table = &options.dibao_table;
    let mut conn = connect_postgres(url, table).await?;
    let insert = format!(
        r#"INSERT INTO "{table}" (sfzh, xm, xb, lxdh, jtrk, bzje, bzlb, ksny, jsny, sqdm, zt, czbz, gxsj)
           VALUES ($1, $2, $3, $4, $5, CAST($6 AS NUMERIC(10,2)), $7, $8, $9, $10, $11, $12, $13) RETURNING id"#
    );
    let update = format!(
        r#"UPDATE "{table}" SET sfzh = $1, xm = $2, xb = $3, lxdh = $4, jtrk = $5, bzje = CAST($6 AS NUMERIC(10,2)),
           bzlb = $7, ksny = $8, jsny = $9, sqdm = $10, zt = $11, czbz = $12, gxsj = $13 WHERE id = $14"#
    );
    let mut generator =
        DibaoGenerator::new(options.seed, options.malformed_share, options.update_share);
    let mut ids: Vec<i64> = Vec::new();
    let mut clock = Clock::default();
    info!(database = %redact_url(url), table = %table, "Dept-sql simulator writing the dibao roster.");
    let mut stats = TableStats::default();
    let mut pacer = Pacer::new(options.rate, options.limit);
    while pacer.next_write(&mut shutdown).await {
        let (row, target) = generator.next_op(clock.next()).with_row_id(&ids)?;
        let query = |sql| {
            sqlx::query(sql)
                .bind(row.sfzh.clone())
                .bind(row.xm.clone())
                .bind(row.xb)
                .bind(row.lxdh.clone())
                .bind(row.jtrk)
                .bind(row.bzje_text())
                .bind(row.bzlb)
                .bind(row.ksny.clone())
                .bind(row.jsny.clone())
                .bind(row.sqdm.clone())
                .bind(row.zt)
                .bind(row.czbz)
                .bind(row.gxsj)
        };
        match target {
            None => {
                let inserted = query(&insert)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| db_error(url, "INSERT failed", e))?;
                let id: i64 = sqlx::Row::try_get(&inserted, 0)
                    .map_err(|e| db_error(url, "INSERT returned no id", e))?;
                ids.push(id);
            }
            Some(id) => {
                query(&update)
                    .bind(id)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| db_error(url, "UPDATE failed", e))?;
            }
        }
        stats.count(target.is_some(), row.defect.is_some());
    }
    // Closing politely is a courtesy; the writes are already committed.
    let _ = conn.close().await;
    Ok(stats)
}

async fn run_incidents(
    url: &str,
    options: &DeptSqlOptions,
    mut shutdown: Shutdown,
) -> Result<TableStats, Error> {
    let table = &options.incident_table;
    let mut conn = connect_mysql(url, table).await?;
    let insert = format!(
        "INSERT INTO `{table}` (jqbh, jqlb, bjsj, fadd, xzqh, jyqk, gxdw, bjrdh, cljg, czbz, gxsj) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    let update = format!(
        "UPDATE `{table}` SET jqbh = ?, jqlb = ?, bjsj = ?, fadd = ?, xzqh = ?, jyqk = ?, gxdw = ?, bjrdh = ?, \
         cljg = ?, czbz = ?, gxsj = ? WHERE id = ?"
    );
    let mut generator =
        IncidentGenerator::new(options.seed, options.malformed_share, options.update_share);
    let mut ids: Vec<u64> = Vec::new();
    let mut clock = Clock::default();
    info!(database = %redact_url(url), table = %table, "Dept-sql simulator writing the incident table.");
    let mut stats = TableStats::default();
    let mut pacer = Pacer::new(options.rate, options.limit);
    while pacer.next_write(&mut shutdown).await {
        let (row, target) = generator.next_op(clock.next()).with_row_id(&ids)?;
        let query = |sql| {
            sqlx::query(sql)
                .bind(row.jqbh.clone())
                .bind(row.jqlb)
                .bind(row.bjsj)
                .bind(row.fadd.clone())
                .bind(row.xzqh.clone())
                .bind(row.jyqk.clone())
                .bind(row.gxdw.clone())
                .bind(row.bjrdh.clone())
                .bind(row.cljg.clone())
                .bind(row.czbz)
                .bind(row.gxsj)
        };
        match target {
            None => {
                let done = query(&insert)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| db_error(url, "INSERT failed", e))?;
                ids.push(done.last_insert_id());
            }
            Some(id) => {
                query(&update)
                    .bind(id)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| db_error(url, "UPDATE failed", e))?;
            }
        }
        stats.count(target.is_some(), row.defect.is_some());
    }
    let _ = conn.close().await;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_times_read_as_the_poll_writes_them() {
        assert_eq!(yuan_text(65_000), "650.00");
        assert_eq!(yuan_text(38_550), "385.50");
        assert_eq!(yuan_text(-30_000), "-300.00");
        assert_eq!(yuan_text(5), "0.05");
        let t = sample_base();
        assert_eq!(timestamp_text(t), "2024-06-18 09:00:00");
        let t = t + chrono::Duration::milliseconds(417);
        assert_eq!(timestamp_text(t), "2024-06-18 09:00:00.417");
    }

    #[test]
    fn stations_are_named_after_towns() {
        let village = RegionTable::shaanxi().get("610921101201");
        assert_eq!(village.map(station_of).as_deref(), Some("涧池派出所"));
    }

    #[test]
    fn the_clock_never_repeats() {
        let mut c = Clock::default();
        let a = c.next();
        let b = c.next();
        assert!(b > a);
    }

    #[test]
    fn same_seed_same_writes() {
        let at = sample_base();
        let (mut a, mut b) = (
            DibaoGenerator::new(3, 0.3, 0.3),
            DibaoGenerator::new(3, 0.3, 0.3),
        );
        let (mut c, mut d) = (
            IncidentGenerator::new(3, 0.3, 0.3),
            IncidentGenerator::new(3, 0.3, 0.3),
        );
        for _ in 0..50 {
            assert_eq!(a.next_op(at), b.next_op(at));
            assert_eq!(c.next_op(at), d.next_op(at));
        }
    }

    #[test]
    fn bad_table_names_are_refused() {
        assert!(check_table("mz_dbdx").is_ok());
        assert!(check_table("mz;drop").is_err());
        assert!(check_table("").is_err());
    }
}

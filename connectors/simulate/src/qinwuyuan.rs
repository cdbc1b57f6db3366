//! Simulator of the 秦务员 government-service platform, which pushes its records to the hub.
//!
//! It `POST`s to the hub's ingest endpoint (`/ingest/qinwuyuan`) with `Authorization: Bearer <token>`, one JSON
//! object per request or an array of `batch_size` records, at `rate` records per second:
//!
//! - **办件** (`dataType` `BJ`): a citizen or enterprise applies for a service item (低保认定, 食品经营许可,
//!   户口迁移 …) online, in the app or at a window; the case is accepted (or not), then completed with a result
//!   and, for licences, a certificate number. Each change is pushed again with `dataVersion` one higher.
//! - **好差评** (`PJ`): most completed cases are rated 1–5; a bad rating (1–2) goes through rectification
//!   (整改中 → 已整改 → 已回访核实), pushed as new versions.
//! - **诉求** (`SQ`): appeals to a department — consultations, complaints (some about a case), suggestions,
//!   praise — accepted, replied to and closed with the appellant's satisfaction; some are transferred to 12345.
//!
//! A `malformed_share` of records carries one defect (no `dataType`, an unknown region, an impossible date, a
//! broken ID number, credit code or mobile number, a score out of range), so they end on the dead-letter topic.
//!
//! The hub answers `200` (all accepted), `207` (some rejected) or `422` (all rejected) with per-record `results`;
//! the simulator counts them, and compares each outcome with what it generated (`Stats::unexpected`). `5xx`,
//! `408`, `429` and connection failures are retried with exponential backoff; other answers (a wrong token,
//! an unknown connector) stop the run with an error.
//!
//! Records carry simulated times: new cases and appeals arrive on average every `4 × time_scale / rate`
//! simulated seconds (each brings about four records over its life), so the simulated clock runs about
//! `time_scale` times faster than the wall clock.
//! [`PushGenerator`] is the same generator without HTTP, deterministic for a seed and a start time. The raw
//! format is documented in `connectors/builtin/qinwuyuan/README.md`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use rand::Rng;
use serde_json::{json, Map, Value};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};
use unsilo_schemas::validate::{uscc_check_char, RegionTable};

use super::clock::{
    beijing, close_of_business, floor_second, format_with, wall_clock_ms, DAY, HOUR, MINUTE, SECOND,
};
use super::fake::{Faker, DEFAULT_COUNTIES};
use unsilo_connectors::sdk::Shutdown;

/// The platform's time format.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// The longest a retry waits.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first retry's wait.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------------------------
// Options, statistics, errors
// ---------------------------------------------------------------------------------------------------------------

/// Options of the 秦务员 simulator.
#[derive(Clone)]
pub struct QinwuyuanOptions {
    /// The hub's ingest endpoint, e.g. `http://127.0.0.1:8080/ingest/qinwuyuan`.
    pub url: String,
    /// The connector's push token, sent as `Authorization: Bearer <token>`. Never logged.
    pub token: String,
    /// Records per (wall-clock) second.
    pub rate: f64,
    /// Share of records with a defect, from 0.0 to 1.0.
    pub malformed_share: f64,
    /// Seed of the random generator: the same seed and start give the same records.
    pub seed: u64,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// Records per request; 1 sends a single JSON object, more send a JSON array.
    pub batch_size: usize,
    /// How often one request is retried after a `5xx`, `408`, `429` or a connection failure before the run
    /// stops with an error.
    pub max_retries: u32,
    /// About how many simulated seconds pass per wall-clock second.
    pub time_scale: f64,
    /// The simulated time at which the run starts; `None` for the wall clock at start.
    pub start: Option<DateTime<FixedOffset>>,
    /// 6-digit codes of the counties the records come from (unknown ones are ignored).
    pub counties: Vec<String>,
    /// How long one request may take.
    pub timeout: Duration,
}

impl Default for QinwuyuanOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080/ingest/qinwuyuan".to_owned(),
            token: String::new(),
            rate: 20.0,
            malformed_share: 0.02,
            seed: 61,
            limit: None,
            batch_size: 1,
            max_retries: 10,
            time_scale: 600.0,
            start: None,
            counties: DEFAULT_COUNTIES.iter().map(|c| (*c).to_owned()).collect(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for QinwuyuanOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QinwuyuanOptions")
            .field("url", &self.url)
            .field("token", &"***")
            .field("rate", &self.rate)
            .field("malformed_share", &self.malformed_share)
            .field("seed", &self.seed)
            .field("limit", &self.limit)
            .field("batch_size", &self.batch_size)
            .field("max_retries", &self.max_retries)
            .field("time_scale", &self.time_scale)
            .field("start", &self.start)
            .field("counties", &self.counties)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a simulator run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records the hub answered for.
    pub sent: u64,
    /// Of which generated with a defect.
    pub malformed_sent: u64,
    /// Records the hub accepted.
    pub accepted: u64,
    /// Records the hub rejected (they are on its dead-letter topic).
    pub rejected: u64,
    /// Records whose outcome differs from how they were generated: a valid record rejected or a malformed one
    /// accepted (only counted when the hub's answer lists per-record results).
    pub unexpected: u64,
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// Requests repeated after a `5xx`, `408`, `429` or a connection failure.
    pub retries: u64,
}

/// Why the simulator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options cannot work.
    #[error("invalid 秦务员 simulator options: {0}")]
    Options(String),
    /// The HTTP client could not be set up.
    #[error("HTTP client: {0}")]
    Client(String),
    /// The hub refused the request for a reason retrying cannot fix (wrong token, unknown connector, bad body).
    #[error("the hub refused the push with HTTP {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The hub's message.
        message: String,
    },
    /// The hub kept failing.
    #[error("the hub did not take the push after {attempts} attempts; last: {last}")]
    GaveUp {
        /// Requests made for the batch.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The hub's answer could not be read.
    #[error("unreadable answer from the hub (HTTP {status}): {reason}")]
    BadAnswer {
        /// The HTTP status.
        status: u16,
        /// Why.
        reason: String,
    },
}

use crate::options::{clamped, within, SHARE};

/// The slowest and fastest rates (per second) and time scales the simulator takes.
const RATE_RANGE: (f64, f64) = (0.001, 1_000_000.0);
const TIME_SCALE_RANGE: (f64, f64) = (0.001, 10_000_000.0);
/// The largest batch (the hub takes bodies up to 16 MiB).
const MAX_BATCH: usize = 10_000;

fn check(options: &QinwuyuanOptions) -> Result<(), Error> {
    within("rate", options.rate, RATE_RANGE).map_err(Error::Options)?;
    within("malformed_share", options.malformed_share, SHARE).map_err(Error::Options)?;
    within("time_scale", options.time_scale, TIME_SCALE_RANGE).map_err(Error::Options)?;
    if !(1..=MAX_BATCH).contains(&options.batch_size) {
        return Err(Error::Options(format!(
            "batch_size must be between 1 and {MAX_BATCH}, not {}",
            options.batch_size
        )));
    }
    match reqwest::Url::parse(&options.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        _ => Err(Error::Options(
            "url must be an absolute http:// or https:// URL".into(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------------------------------

fn format_time(ms: i64) -> String {
    format_with(ms, TIME_FORMAT)
}

// ---------------------------------------------------------------------------------------------------------------
// Service items, departments, appeal topics
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dept {
    CivilAffairs,
    MarketRegulation,
    HumanResources,
    Police,
    NaturalResources,
    Housing,
    MedicalInsurance,
    Transport,
    Water,
    CityManagement,
    ServiceCentre,
}

impl Dept {
    fn name(self, county: &str, city: &str) -> String {
        let short = county.trim_end_matches(['县', '区']);
        let district = county.ends_with('区');
        match self {
            Dept::CivilAffairs => format!("{county}民政局"),
            Dept::MarketRegulation => format!("{county}市场监督管理局"),
            Dept::HumanResources => format!("{county}人力资源和社会保障局"),
            Dept::Police if district => format!("{city}公安局{short}分局"),
            Dept::Police => format!("{county}公安局"),
            Dept::NaturalResources if district => format!("{city}自然资源和规划局{short}分局"),
            Dept::NaturalResources => format!("{county}自然资源局"),
            Dept::Housing => format!("{county}住房和城乡建设局"),
            Dept::MedicalInsurance => format!("{county}医疗保障局"),
            Dept::Transport => format!("{county}交通运输局"),
            Dept::Water if district => format!("{county}水务局"),
            Dept::Water => format!("{county}水利局"),
            Dept::CityManagement => format!("{county}城市管理和综合执法局"),
            Dept::ServiceCentre => format!("{county}政务服务中心"),
        }
    }
}

const DEPTS: [Dept; 11] = [
    Dept::CivilAffairs,
    Dept::MarketRegulation,
    Dept::HumanResources,
    Dept::Police,
    Dept::NaturalResources,
    Dept::Housing,
    Dept::MedicalInsurance,
    Dept::Transport,
    Dept::Water,
    Dept::CityManagement,
    Dept::ServiceCentre,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApplicantKind {
    Person,
    Enterprise,
    Organisation,
}

/// How a case's certificate number is written, if the item issues one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Licence {
    None,
    /// 食品经营许可证: JY + 1 + county + 7 digits.
    Food,
    /// 营业执照: a new unified social credit code.
    Business,
    /// 不动产权证书: 陕(year)<county>不动产权第NNNNNNN号.
    RealEstate,
    /// 建筑工程施工许可证: county + date + serial.
    Construction,
    /// 道路运输经营许可证: 陕交运管许可<county short>字 + digits.
    RoadTransport,
    /// 取水许可证: 取水(陕)字[year]第NNNN号.
    WaterDrawing,
}

/// A service item (政务服务事项) citizens apply for.
#[derive(Debug)]
struct Item {
    weight: u32,
    /// The 13-digit part of the implementation code after the department's credit code.
    basic_code: &'static str,
    name: &'static str,
    /// National item type code: 01 行政许可, 05 行政给付, 07 行政确认, 20 公共服务 …
    task_type: &'static str,
    dept: Dept,
    applicant: ApplicantKind,
    promise_days: i64,
    licence: Licence,
    /// Enterprise names' industry word, e.g. 餐饮.
    industry: &'static str,
    /// Chance of 不予受理 / 不予许可.
    deny: f64,
}

const ITEMS: &[Item] = &[
    Item {
        weight: 10,
        basic_code: "4000105003000",
        name: "城乡居民最低生活保障对象认定",
        task_type: "05",
        dept: Dept::CivilAffairs,
        applicant: ApplicantKind::Person,
        promise_days: 20,
        licence: Licence::None,
        industry: "",
        deny: 0.15,
    },
    Item {
        weight: 6,
        basic_code: "4000105011000",
        name: "临时救助对象认定",
        task_type: "05",
        dept: Dept::CivilAffairs,
        applicant: ApplicantKind::Person,
        promise_days: 10,
        licence: Licence::None,
        industry: "",
        deny: 0.1,
    },
    Item {
        weight: 6,
        basic_code: "4000105022000",
        name: "困难残疾人生活补贴和重度残疾人护理补贴申请",
        task_type: "05",
        dept: Dept::CivilAffairs,
        applicant: ApplicantKind::Person,
        promise_days: 20,
        licence: Licence::None,
        industry: "",
        deny: 0.05,
    },
    Item {
        weight: 8,
        basic_code: "4000117004000",
        name: "食品经营许可（新办）",
        task_type: "01",
        dept: Dept::MarketRegulation,
        applicant: ApplicantKind::Enterprise,
        promise_days: 10,
        licence: Licence::Food,
        industry: "餐饮",
        deny: 0.05,
    },
    Item {
        weight: 10,
        basic_code: "4000117001000",
        name: "个体工商户设立登记",
        task_type: "01",
        dept: Dept::MarketRegulation,
        applicant: ApplicantKind::Person,
        promise_days: 3,
        licence: Licence::Business,
        industry: "",
        deny: 0.02,
    },
    Item {
        weight: 10,
        basic_code: "4000213001000",
        name: "城乡居民基本养老保险参保登记",
        task_type: "20",
        dept: Dept::HumanResources,
        applicant: ApplicantKind::Person,
        promise_days: 5,
        licence: Licence::None,
        industry: "",
        deny: 0.01,
    },
    Item {
        weight: 8,
        basic_code: "4000707002000",
        name: "户口迁移（省内）",
        task_type: "07",
        dept: Dept::Police,
        applicant: ApplicantKind::Person,
        promise_days: 5,
        licence: Licence::None,
        industry: "",
        deny: 0.03,
    },
    Item {
        weight: 7,
        basic_code: "4000707016000",
        name: "不动产转移登记",
        task_type: "07",
        dept: Dept::NaturalResources,
        applicant: ApplicantKind::Person,
        promise_days: 5,
        licence: Licence::RealEstate,
        industry: "",
        deny: 0.02,
    },
    Item {
        weight: 4,
        basic_code: "4000101009000",
        name: "建筑工程施工许可证核发",
        task_type: "01",
        dept: Dept::Housing,
        applicant: ApplicantKind::Enterprise,
        promise_days: 7,
        licence: Licence::Construction,
        industry: "建筑工程",
        deny: 0.05,
    },
    Item {
        weight: 8,
        basic_code: "4002020003000",
        name: "城乡居民医保门诊慢特病待遇认定",
        task_type: "20",
        dept: Dept::MedicalInsurance,
        applicant: ApplicantKind::Person,
        promise_days: 15,
        licence: Licence::None,
        industry: "",
        deny: 0.08,
    },
    Item {
        weight: 3,
        basic_code: "4000101031000",
        name: "道路货物运输经营许可",
        task_type: "01",
        dept: Dept::Transport,
        applicant: ApplicantKind::Enterprise,
        promise_days: 20,
        licence: Licence::RoadTransport,
        industry: "物流",
        deny: 0.05,
    },
    Item {
        weight: 2,
        basic_code: "4000101045000",
        name: "取水许可",
        task_type: "01",
        dept: Dept::Water,
        applicant: ApplicantKind::Organisation,
        promise_days: 20,
        licence: Licence::WaterDrawing,
        industry: "",
        deny: 0.05,
    },
];

/// Words enterprises are named with.
const TRADE_NAMES: &[&str] = &[
    "秦味轩",
    "汉江源",
    "鑫盛",
    "华泰",
    "佳禾",
    "恒通",
    "凤鸣",
    "丰达",
    "瑞祥",
    "安和",
    "聚福",
    "宏远",
];

/// Public institutions that apply for water-drawing permits.
const INSTITUTIONS: &[&str] = &[
    "第二中学",
    "人民医院",
    "中医医院",
    "职业技术教育中心",
    "自来水公司",
];

/// Reason tags by score class.
const GOOD_TAGS: &[&str] = &[
    "办事效率高",
    "一次办好",
    "服务态度好",
    "材料精简",
    "全程网办",
    "指引清晰",
];
const FAIR_TAGS: &[&str] = &["等待时间较长", "流程较复杂"];
const BAD_TAGS: &[&str] = &[
    "多次跑动",
    "材料要求不一致",
    "超时办理",
    "态度冷淡",
    "系统卡顿",
];

const GOOD_COMMENTS: &[&str] = &[
    "材料一次性告知，很快就办好了，点赞！",
    "在手机上就办完了，不用跑腿，方便。",
    "工作人员很耐心，讲得很清楚。",
    "",
];
const FAIR_COMMENTS: &[&str] = &["办是办好了，就是等的时间有点长。", ""];
const BAD_COMMENTS: &[&str] = &[
    "网上提交后又让去窗口补交纸质材料，跑了两趟。",
    "超过承诺时间好几天才办结，也没人通知。",
    "窗口工作人员态度不好，问几句就不耐烦。",
];
const RECTIFICATIONS: &[&str] = &[
    "已核实，窗口人员未按一次性告知要求执行，已批评教育并更新材料清单，实现全程网办。",
    "已约谈相关科室负责人，优化审批流程，压缩办理时限，并向评价人当面致歉。",
    "经核查系系统接口故障导致进度未及时推送，已修复并建立办结短信提醒。",
];

/// What appeals are about.
#[derive(Debug)]
struct AppealTopic {
    weight: u32,
    /// 诉求类型 code.
    kind: &'static str,
    dept: Dept,
    /// Whether it is about one of the appellant's cases (then `relatedProjectNo` is set, when there is one).
    about_case: bool,
    titles: &'static [&'static str],
    contents: &'static [&'static str],
    replies: &'static [&'static str],
}

const APPEAL_TOPICS: &[AppealTopic] = &[
    AppealTopic {
        weight: 8,
        kind: "1",
        dept: Dept::MedicalInsurance,
        about_case: false,
        titles: &["咨询灵活就业人员医保缴费办理方式", "咨询异地就医备案如何办理"],
        contents: &[
            "本人为灵活就业人员，户籍在{county}，想咨询城镇职工医保个人缴费能否在秦务员APP上办理，缴费基数如何确定。",
            "家中老人长期随子女在外省居住，想咨询异地就医备案在秦务员上怎么办理，需要哪些材料。",
        ],
        replies: &[
            "您好，灵活就业人员可通过秦务员APP“社保缴费”模块办理，缴费基数可在当年全省平均工资60%至300%之间自主选择。",
            "您好，异地长期居住人员可在秦务员APP“医保服务”中办理异地就医备案，填写居住地信息即可，无需提交纸质材料。",
        ],
    },
    AppealTopic {
        weight: 6,
        kind: "3",
        dept: Dept::CivilAffairs,
        about_case: true,
        titles: &["反映低保申请审核时间过长", "反映临时救助申请迟迟没有结果"],
        contents: &[
            "我在秦务员上提交的低保申请已经一个多月了，一直显示审核中，打电话问镇上也说不清楚，希望尽快给个结果。",
            "家里突发变故申请了临时救助，超过承诺时间还没有消息，希望相关部门加快办理。",
        ],
        replies: &[
            "您好，经核实您的申请已完成入户调查，因需补充共同生活家庭成员收入证明导致延误，工作人员已电话告知补充方式，预计5个工作日内办结。",
            "您好，您的申请已审核通过，救助金将于本月底前发放至您的社保卡账户，给您带来不便深表歉意。",
        ],
    },
    AppealTopic {
        weight: 5,
        kind: "3",
        dept: Dept::ServiceCentre,
        about_case: true,
        titles: &["投诉窗口工作人员服务态度差", "反映网上已提交材料窗口仍要求重复提交"],
        contents: &[
            "今天到政务服务中心窗口办理业务，工作人员一直玩手机，问问题也不耐烦，希望加强管理。",
            "材料已在秦务员上传并审核通过，到窗口又被要求提交纸质复印件，来回跑了两趟，希望真正做到一网通办。",
        ],
        replies: &[
            "您好，中心已调取监控核实情况，对相关工作人员进行了批评教育并扣减当月考核分，感谢您的监督。",
            "您好，经核实系窗口人员未及时查看网上材料，中心已重申“网上已收不再收”要求，并向您致歉。",
        ],
    },
    AppealTopic {
        weight: 4,
        kind: "3",
        dept: Dept::Housing,
        about_case: false,
        titles: &["反映小区附近工地夜间施工噪音扰民"],
        contents: &["{place}附近工地每天晚上十点以后还在施工，搅拌机声音很大，孩子无法休息，希望相关部门管一管。"],
        replies: &["您好，经现场核查，已责令该工地停止夜间高噪声作业，并将持续开展夜间巡查。"],
    },
    AppealTopic {
        weight: 4,
        kind: "2",
        dept: Dept::HumanResources,
        about_case: false,
        titles: &["求助追讨被拖欠的工资"],
        contents: &["我在{county}一处工地干了{months}个月，包工头拖欠工资{amount}万元一直不给，电话也不接，请求帮助。"],
        replies: &["您好，劳动保障监察大队已立案调查，已责令施工总承包单位限期支付，请保持电话畅通配合调查。"],
    },
    AppealTopic {
        weight: 3,
        kind: "3",
        dept: Dept::CityManagement,
        about_case: false,
        titles: &["反映{place}路灯长期不亮"],
        contents: &["{place}一带路灯坏了快一个月了，晚上出门黑乎乎的，希望尽快修好。"],
        replies: &["您好，维修人员已更换损坏灯具和线路，该路段路灯已恢复照明。"],
    },
    AppealTopic {
        weight: 3,
        kind: "5",
        dept: Dept::ServiceCentre,
        about_case: false,
        titles: &["建议秦务员APP增加办件进度短信提醒"],
        contents: &["建议秦务员APP在办件每个环节完成后都发短信提醒，现在只能自己反复登录查看，很不方便。"],
        replies: &["感谢您的建议。办件进度短信提醒功能已列入平台优化计划，预计下季度上线。"],
    },
    AppealTopic {
        weight: 2,
        kind: "6",
        dept: Dept::ServiceCentre,
        about_case: true,
        titles: &["表扬政务服务中心窗口工作人员"],
        contents: &["为老人办理业务时，窗口工作人员主动延时服务，耐心帮忙填表，特此表扬。"],
        replies: &["感谢您的表扬，我们已将您的表扬转达相关窗口工作人员，并将继续提升服务质量。"],
    },
];

// ---------------------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------------------

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
    name: String,
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
    kind: RecordKind,
    record: Map<String, Value>,
    version: i64,
    step: Step,
    /// The department concerned.
    dept: Unit,
    item: Option<&'static Item>,
    topic: Option<&'static AppealTopic>,
    /// The applicant or appellant: name, mobile.
    person: (String, String),
    county: String,
    town_name: String,
    place: String,
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

/// The first `count` records of a run with these options starting at `start`, without HTTP.
pub fn generate(
    options: &QinwuyuanOptions,
    start: DateTime<FixedOffset>,
    count: usize,
) -> Vec<PushRecord> {
    let mut generator = PushGenerator::new(options, start);
    (0..count).map(|_| generator.next_record()).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Pushing
// ---------------------------------------------------------------------------------------------------------------

/// The hub's answer to one push: per-record outcome (`true` = accepted) when it lists them, and the counts.
struct Answer {
    outcomes: Option<Vec<bool>>,
    accepted: u64,
    rejected: u64,
}

fn read_answer(status: u16, body: &[u8], records: usize) -> Result<Answer, Error> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let outcomes = parsed
        .as_ref()
        .and_then(|v| v.get("results"))
        .and_then(Value::as_array)
        .map(|results| {
            let mut outcomes = vec![status == 200; records];
            for r in results {
                let index = r.get("index").and_then(Value::as_u64).map(|i| i as usize);
                let accepted = r.get("status").and_then(Value::as_str) == Some("accepted");
                if let Some(slot) = index.and_then(|i| outcomes.get_mut(i)) {
                    *slot = accepted;
                }
            }
            outcomes
        })
        .filter(|o| o.len() == records);
    if let Some(o) = &outcomes {
        let accepted = o.iter().filter(|a| **a).count() as u64;
        return Ok(Answer {
            outcomes,
            accepted,
            rejected: records as u64 - accepted,
        });
    }
    let count = |key: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_u64)
    };
    match (status, count("accepted"), count("rejected")) {
        (_, Some(accepted), Some(rejected)) => Ok(Answer {
            outcomes: None,
            accepted,
            rejected,
        }),
        (200, _, _) => Ok(Answer {
            outcomes: None,
            accepted: records as u64,
            rejected: 0,
        }),
        (422, _, _) => Ok(Answer {
            outcomes: None,
            accepted: 0,
            rejected: records as u64,
        }),
        _ => Err(Error::BadAnswer {
            status,
            reason: "no per-record results or counts in the answer".into(),
        }),
    }
}

/// The hub's message in an error answer, cut short (the hub never echoes secrets, but keep logs small).
fn hub_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    text.chars().take(300).collect()
}

/// Posts one body, retrying transient failures with exponential backoff. `Ok(None)` if shutdown came first.
async fn post(
    client: &reqwest::Client,
    options: &QinwuyuanOptions,
    body: Vec<u8>,
    records: usize,
    stats: &mut Stats,
    shutdown: &mut Shutdown,
) -> Result<Option<Answer>, Error> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        stats.requests += 1;
        let request = client
            .post(&options.url)
            .bearer_auth(&options.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send();
        let result = tokio::select! {
            r = request => r,
            () = shutdown.wait() => return Ok(None),
        };
        let failure = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = match response.bytes().await {
                    Ok(b) => b.to_vec(),
                    Err(e) => {
                        // The answer was lost on the way: the hub may or may not have stored the records. Pushing
                        // again is safe, as record ids are deterministic.
                        format!("reading the answer: {e}").into_bytes()
                    }
                };
                match status {
                    200 | 207 | 422 => return read_answer(status, &bytes, records).map(Some),
                    408 | 429 | 500..=599 => format!("HTTP {status}: {}", hub_message(&bytes)),
                    _ => {
                        return Err(Error::Refused {
                            status,
                            message: hub_message(&bytes),
                        })
                    }
                }
            }
            Err(e) => {
                // reqwest errors name the URL, which holds no secret (the token is in a header).
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                text
            }
        };
        if attempts > options.max_retries {
            return Err(Error::GaveUp {
                attempts,
                last: failure,
            });
        }
        stats.retries += 1;
        warn!(
            attempt = attempts,
            wait_ms = backoff.as_millis() as u64,
            failure = %failure,
            "Push failed; retrying."
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return Ok(None),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Pushes records to the hub at the configured rate until `limit` records are answered for or `shutdown`
/// fires; returns what the hub made of them.
pub async fn run(options: QinwuyuanOptions, mut shutdown: Shutdown) -> Result<Stats, Error> {
    check(&options)?;
    let start_ms = options
        .start
        .as_ref()
        .map_or_else(|| floor_second(wall_clock_ms()), |s| s.timestamp_millis());
    let start = DateTime::from_timestamp_millis(start_ms)
        .map(|t| t.with_timezone(&beijing()))
        .ok_or_else(|| Error::Options(format!("start {start_ms} ms is out of range")))?;
    let mut generator = PushGenerator::new(&options, start);
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .build()
        .map_err(|e| Error::Client(e.to_string()))?;
    let period = Duration::try_from_secs_f64(options.batch_size as f64 / options.rate)
        .map_err(|e| Error::Options(format!("batch_size / rate is no interval: {e}")))?
        .max(Duration::from_micros(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stats = Stats::default();
    let mut generated: u64 = 0;
    info!(
        rate = options.rate,
        batch_size = options.batch_size,
        malformed_share = options.malformed_share,
        "秦务员 simulator pushing."
    );
    loop {
        let remaining = options.limit.map(|l| l.saturating_sub(generated));
        if remaining == Some(0) {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => break,
        }
        let n = remaining.map_or(options.batch_size, |r| {
            usize::try_from(r).map_or(options.batch_size, |r| r.min(options.batch_size))
        });
        let batch: Vec<PushRecord> = (0..n).map(|_| generator.next_record()).collect();
        generated += n as u64;
        let body = match batch.as_slice() {
            [one] => serde_json::to_vec(&one.record),
            many => serde_json::to_vec(&many.iter().map(|r| &r.record).collect::<Vec<_>>()),
        }
        .map_err(|e| Error::Client(format!("encoding the batch: {e}")))?;
        let Some(answer) = post(&client, &options, body, n, &mut stats, &mut shutdown).await?
        else {
            break;
        };
        stats.sent += n as u64;
        stats.malformed_sent += batch.iter().filter(|r| r.malformed).count() as u64;
        stats.accepted += answer.accepted;
        stats.rejected += answer.rejected;
        if let Some(outcomes) = &answer.outcomes {
            stats.unexpected += batch
                .iter()
                .zip(outcomes)
                .filter(|(r, accepted)| r.malformed == **accepted)
                .count() as u64;
        }
        debug!(
            records = n,
            accepted = answer.accepted,
            rejected = answer.rejected,
            "Push answered."
        );
    }
    info!(?stats, "秦务员 simulator stopped.");
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::test_start as start;

    #[test]
    fn records_come_in_time_order_and_versions_count_up() {
        // A slow arrival rate, so that 3 000 records cover weeks and every kind of change.
        let options = QinwuyuanOptions {
            malformed_share: 0.0,
            time_scale: 20_000.0,
            ..QinwuyuanOptions::default()
        };
        let records = generate(&options, start(), 3_000);
        let mut last_version: std::collections::HashMap<String, i64> = Default::default();
        let mut previous = String::new();
        for r in &records {
            let time = r.record["updateTime"]
                .as_str()
                .expect("updateTime")
                .to_owned();
            assert!(time >= previous, "{time} after {previous}");
            previous = time;
            let id = ["projectNo", "evaluateNo", "appealNo"]
                .iter()
                .find_map(|k| match r.kind.schema() {
                    "service_case" if *k == "projectNo" => r.record[*k].as_str(),
                    "rating" if *k == "evaluateNo" => r.record[*k].as_str(),
                    "appeal" if *k == "appealNo" => r.record[*k].as_str(),
                    _ => None,
                })
                .expect("an id")
                .to_owned();
            let version = r.record["dataVersion"].as_i64().expect("a version");
            let before = last_version.insert(id.clone(), version).unwrap_or(0);
            assert_eq!(version, before + 1, "{id}");
        }
        for kind in [
            RecordKind::ServiceCase,
            RecordKind::Rating,
            RecordKind::Appeal,
        ] {
            assert!(records.iter().any(|r| r.kind == kind), "{kind:?}");
        }
        assert!(records
            .iter()
            .any(|r| r.record.get("rectifyStatus").is_some_and(|s| s == "4")));
        assert!(records
            .iter()
            .any(|r| r.record.get("appealStatus").is_some_and(|s| s == "6")));
    }

    #[test]
    fn answers_are_read_per_record() {
        let body = br#"{"accepted":1,"rejected":1,"results":[{"index":0,"status":"accepted"},{"index":1,"status":"rejected"}]}"#;
        let a = read_answer(207, body, 2).expect("readable");
        assert_eq!(a.outcomes, Some(vec![true, false]));
        assert_eq!((a.accepted, a.rejected), (1, 1));
        let a = read_answer(200, b"", 3).expect("a bare 200 means all accepted");
        assert_eq!((a.accepted, a.rejected), (3, 0));
        assert!(read_answer(207, b"<html>", 3).is_err());
    }

    #[test]
    fn options_are_checked_and_the_token_never_printed() {
        let options = QinwuyuanOptions {
            token: "s3cret-token".into(),
            ..QinwuyuanOptions::default()
        };
        assert!(!format!("{options:?}").contains("s3cret-token"));
        assert!(check(&options).is_ok());
        let bad = QinwuyuanOptions {
            url: "ftp://hub".into(),
            ..QinwuyuanOptions::default()
        };
        assert!(matches!(check(&bad), Err(Error::Options(_))));
        let bad = QinwuyuanOptions {
            malformed_share: 1.5,
            ..QinwuyuanOptions::default()
        };
        assert!(matches!(check(&bad), Err(Error::Options(_))));
    }
}
